//! Importing artifacts: list, skip what was imported before, read and parse the rest, and keep
//! a checkpoint so the next import picks up only new artifacts.
//!
//! The checkpoint lives in the state store under `stable_suite/checkpoint/<hash of URL>.json`
//! and lists every artifact key seen with its ETag and size (a re-uploaded artifact, with a new
//! ETag or size, is read again). Malformed artifacts go into it too, so one bad file is reported
//! once rather than every hour; objects that could not be *read* (a network error) do not, so
//! they are retried. A malformed mark records the [`READER_REVISION`] that refused it: a build
//! whose readers accept more (a Parquet codec that was not built in before) reads the file again
//! instead of skipping it forever. An import returns the checkpoint entries it would add; the caller saves
//! them only after the metrics were delivered, and never in a dry run.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::observation::Observation;
use crate::stable_suite::source::{ArtifactRef, ArtifactSource, MAX_ARTIFACT_BYTES, SourceError};
use crate::stable_suite::{Artifact, ArtifactError};
use crate::state::{StateError, StateStore};

/// The revision of the artifact readers. Bump it when a reader starts accepting artifacts an
/// earlier build refused, so that their malformed marks are retried once. 1: snappy and
/// uncompressed Parquet pages only (a mark without a revision); 2: zstd, gzip, lz4 and brotli.
pub const READER_REVISION: u32 = 2;

/// How many objects are fetched at once.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// What the checkpoint remembers of one artifact object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub size: u64,
    /// False for an artifact that was refused as malformed.
    pub valid: bool,
    /// For a malformed artifact, the [`READER_REVISION`] that refused it (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<u32>,
}

/// The artifacts already imported from one URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub url: String,
    pub artifacts: BTreeMap<String, Seen>,
}

impl Checkpoint {
    /// Whether `r` is new or changed since it was last imported, or was refused as malformed
    /// by an older revision of the readers.
    pub fn is_new(&self, r: &ArtifactRef) -> bool {
        match self.artifacts.get(&r.key) {
            None => true,
            Some(seen) => {
                seen.size != r.size
                    || (r.etag.is_some() && seen.etag != r.etag)
                    || (!seen.valid && seen.refused_by.unwrap_or(1) < READER_REVISION)
            }
        }
    }
}

/// The state key of the checkpoint for `url`. FNV-1a is used because it is stable across
/// builds and platforms (std's hasher is not), and the URL itself is stored inside.
pub fn checkpoint_key(url: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.trim_end_matches('/').bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("stable_suite/checkpoint/{hash:016x}.json")
}

pub async fn load_checkpoint(state: &StateStore, url: &str) -> Result<Checkpoint, StateError> {
    Ok(state
        .get_json::<Checkpoint>(&checkpoint_key(url))
        .await?
        .unwrap_or_else(|| Checkpoint {
            url: url.to_string(),
            artifacts: BTreeMap::new(),
        }))
}

/// Add `entries` to the checkpoint of `url`, under the state store's lease so two imports
/// running at once do not lose each other's entries.
pub async fn commit_checkpoint(
    state: &StateStore,
    url: &str,
    entries: &BTreeMap<String, Seen>,
) -> Result<(), StateError> {
    if entries.is_empty() {
        return Ok(());
    }
    state
        .update_json(&checkpoint_key(url), |cp: &mut Checkpoint| {
            cp.url = url.to_string();
            cp.artifacts
                .extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        })
        .await
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Shift every artifact's time so the newest one finished "now" (bundled example data).
    pub rebase_timestamps: bool,
    pub concurrency: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            rebase_timestamps: false,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// What one import found.
#[derive(Debug, Default)]
pub struct ImportBatch {
    /// Objects in the listing that look like artifacts.
    pub listed: usize,
    /// Skipped because the checkpoint already has them.
    pub already_imported: usize,
    /// The valid new artifacts, by object name.
    pub artifacts: Vec<(String, Artifact)>,
    /// Malformed artifacts, each naming its file and field.
    pub bad: Vec<ArtifactError>,
    /// Objects that could not be read this time (retried next import).
    pub unread: Vec<String>,
    /// Paths under the source that could not be listed (a symlink loop, a directory without
    /// permission), each naming the path and why; everything else was imported.
    pub unlisted: Vec<String>,
    /// Checkpoint entries for everything read this time (valid and malformed).
    pub checkpoint: BTreeMap<String, Seen>,
}

impl ImportBatch {
    /// The observations of every new artifact, shifted for `rebase_timestamps` if asked.
    pub fn observations(&self, opts: &ImportOptions, now: DateTime<Utc>) -> Vec<Observation> {
        let shift = match self.artifacts.iter().map(|(_, a)| a.finished_at).max() {
            Some(newest) if opts.rebase_timestamps => now - newest,
            _ => chrono::TimeDelta::zero(),
        };
        self.artifacts
            .iter()
            .flat_map(|(_, a)| a.observations(shift))
            .collect()
    }
}

/// An artifact that says it finished later than this past `now` is refused by name: its
/// value would be the row's latest and turn it `unknown` (a time from the future is not
/// trusted), hiding a valid run imported beside it. The same bound as the row memory's.
pub const MAX_AHEAD: chrono::TimeDelta = crate::state::rows::MAX_FUTURE;

/// Refuse an artifact that finished in the future (more than [`MAX_AHEAD`] past `now`).
fn check_not_future(name: &str, a: &Artifact, now: DateTime<Utc>) -> Result<(), ArtifactError> {
    if a.finished_at > now + MAX_AHEAD {
        return Err(ArtifactError::new(
            name,
            Some("finished_at"),
            format!(
                "{} is in the future (this import runs at {}); refused so that it does not hide the other runs; it is read again on the next import",
                a.finished_at.to_rfc3339(),
                now.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ));
    }
    Ok(())
}

/// List `source`, and read and parse every artifact `checkpoint` does not have (all of them
/// when there is no checkpoint). Only a failed listing is an error; a bad or unreadable artifact
/// is recorded in the batch and the rest are still imported. An artifact from the future
/// ([`MAX_AHEAD`] past `now`) is bad but left out of the checkpoint, so it is read again (a
/// runner whose clock ran ahead is imported once its time has come).
pub async fn import(
    source: &ArtifactSource,
    checkpoint: Option<&Checkpoint>,
    opts: &ImportOptions,
    now: DateTime<Utc>,
) -> Result<ImportBatch, SourceError> {
    let listing = source.list_reporting().await?;
    let listed = listing.artifacts;
    let mut batch = ImportBatch {
        listed: listed.len(),
        unlisted: listing.problems,
        ..Default::default()
    };
    let new: Vec<ArtifactRef> = listed
        .into_iter()
        .filter(|r| checkpoint.is_none_or(|cp| cp.is_new(r)))
        .collect();
    batch.already_imported = batch.listed - new.len();
    let mut reads = futures::stream::iter(new)
        .map(|r| async move {
            if r.size > MAX_ARTIFACT_BYTES {
                return (r, Ok(None));
            }
            let got = source.read(&r).await;
            (r, got.map(Some))
        })
        .buffer_unordered(opts.concurrency.max(1));
    while let Some((r, got)) = reads.next().await {
        let name = source.describe(&r);
        let parsed = match got {
            Err(e) => {
                tracing::warn!("{e}; it will be retried on the next import");
                batch.unread.push(name);
                continue;
            }
            Ok(None) => Err(ArtifactError::new(
                &name,
                None,
                format!(
                    "{} bytes is larger than the {MAX_ARTIFACT_BYTES} an artifact may have",
                    r.size
                ),
            )),
            Ok(Some(bytes)) => crate::stable_suite::parse(&bytes, r.format, &name),
        };
        let future = match &parsed {
            Ok(a) => check_not_future(&name, a, now).err(),
            Err(_) => None,
        };
        if let Some(e) = future {
            batch.bad.push(e);
            continue;
        }
        let valid = parsed.is_ok();
        match parsed {
            Ok(a) => batch.artifacts.push((name, a)),
            Err(e) => batch.bad.push(e),
        }
        batch.checkpoint.insert(
            r.key.clone(),
            Seen {
                etag: r.etag.clone(),
                size: r.size,
                valid,
                refused_by: (!valid).then_some(READER_REVISION),
            },
        );
    }
    // buffer_unordered finishes in any order; keep reports and observations deterministic.
    batch.artifacts.sort_by(|a, b| a.0.cmp(&b.0));
    batch.bad.sort_by(|a, b| a.file.cmp(&b.file));
    batch.unread.sort();
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_are_stable_and_ignore_a_trailing_slash() {
        assert_eq!(checkpoint_key("s3://b/p/"), checkpoint_key("s3://b/p"));
        assert_ne!(checkpoint_key("s3://b/p"), checkpoint_key("s3://b/q"));
        let key = checkpoint_key("s3://b/p");
        let hash = key
            .strip_prefix("stable_suite/checkpoint/")
            .and_then(|k| k.strip_suffix(".json"))
            .unwrap();
        assert_eq!(hash.len(), 16);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_changed_object_is_new_again() {
        let mut cp = Checkpoint::default();
        let r = ArtifactRef {
            key: "a.json".into(),
            size: 10,
            etag: Some("e1".into()),
            format: crate::stable_suite::Format::Json,
        };
        assert!(cp.is_new(&r));
        cp.artifacts.insert(
            "a.json".into(),
            Seen {
                etag: Some("e1".into()),
                size: 10,
                valid: true,
                refused_by: None,
            },
        );
        assert!(!cp.is_new(&r));
        let changed = ArtifactRef {
            etag: Some("e2".into()),
            ..r.clone()
        };
        assert!(cp.is_new(&changed));
    }

    #[test]
    fn a_file_refused_by_older_readers_is_read_again_once() {
        let r = ArtifactRef {
            key: "polars.parquet".into(),
            size: 10,
            etag: Some("e1".into()),
            format: crate::stable_suite::Format::Parquet,
        };
        let mark = |refused_by| Checkpoint {
            url: "u".into(),
            artifacts: BTreeMap::from([(
                r.key.clone(),
                Seen {
                    etag: Some("e1".into()),
                    size: 10,
                    valid: false,
                    refused_by,
                },
            )]),
        };
        // A mark written before revisions were recorded ("Disabled feature at compile time").
        let old: Checkpoint = serde_json::from_str(
            r#"{"url":"u","artifacts":{"polars.parquet":{"etag":"e1","size":10,"valid":false}}}"#,
        )
        .unwrap();
        assert_eq!(old, mark(None));
        assert!(old.is_new(&r));
        assert!(mark(Some(READER_REVISION - 1)).is_new(&r));
        assert!(!mark(Some(READER_REVISION)).is_new(&r));
    }
}
