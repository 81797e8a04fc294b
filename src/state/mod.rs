//! The state store: the only thing that persists between runs.
//!
//! One store, addressed by URL: `file:///path` or a plain path (default `./.infra-health/`) on a
//! laptop, `s3://bucket/prefix` in Kubernetes, both through `object_store` so the code paths are
//! the same. It holds the GitHub response cache and checkpoints, each row's last observation
//! (carry-forward), the spool of undelivered Datadog requests and dashboard ids.
//!
//! Writes are whole-object puts, which `object_store` makes atomic on both backends (a temp file
//! and a rename locally, a single PUT on S3), so a reader never sees a torn file.
//! Read-modify-write goes through [`StateStore::update_json`], which holds a lease (an object
//! created with put-if-absent, which both backends honour: `If-None-Match: *` on S3, a hard link
//! locally) so two overlapping runs cannot lose each other's updates; a lease left by a crashed
//! run expires after [`LEASE_TTL`]. Belt and braces against a lease that expired under a stalled
//! writer:
//! - taking over an expired lease is itself claimed with put-if-absent (a marker named after the
//!   expired lease's content), so two waiters cannot both delete it and both think they hold it;
//! - a writer whose lease is about to expire refuses to write ([`StateError::LeaseLost`]);
//! - on S3 the write is conditional on the ETag read (`If-Match`), or `If-None-Match: *` for a new
//!   object, so even a writer that lost its lease cannot overwrite a newer version; the update
//!   then starts over on the new version ([`StateError::Conflict`] once that keeps failing).
//!
//! Layout: `rows.json` (each row's memory, see [`rows`]), `board.html`, `payloads/…` (local
//! sink), `locks/…` (leases), plus whatever collectors and sinks keep under their own prefixes.

pub mod identities;
mod lease;
pub mod rows;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use lease::{Claim, LEASE_TTL};
use lease::{LEASE_MARGIN, hostname};

/// Default location when neither `--state`, `INFRA_HEALTH_STATE` nor config names one.
pub const DEFAULT_STATE_DIR: &str = ".infra-health";

/// The state store URL: `--state` (`flag`), then `INFRA_HEALTH_STATE`, then the config's
/// `[state] url` (`configured`), then `./.infra-health`.
pub fn url_for(flag: Option<&str>, configured: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::env::var("INFRA_HEALTH_STATE")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .or_else(|| configured.map(str::to_string))
        .unwrap_or_else(|| DEFAULT_STATE_DIR.to_string())
}

/// How many times [`StateStore::update_json`] starts over after a conditional write found the
/// object changed.
pub const CONFLICT_RETRIES: u32 = 4;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("invalid state URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("state store {location}: {source}")]
    Store {
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("state store {location}: cannot create directory: {source}")]
    Io {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state object {key} could not be encoded: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "state store {location}: {key} was changed by another run each time this one tried to update it; nothing was overwritten, the update is lost for this run only"
    )]
    Conflict { location: String, key: String },
    #[error(
        "state store {location}: the lease on {key} ran out before the write (the store is too slow?); not writing, so another run's update is not overwritten"
    )]
    LeaseLost { location: String, key: String },
    #[error(
        "state store {location}: timed out after {waited:?} waiting for the lease on {key} (held by {holder})"
    )]
    LeaseTimeout {
        location: String,
        key: String,
        holder: String,
        waited: Duration,
    },
    #[error(
        "state store {location}: stopped waiting for the lease on {key} (held by {holder}): the process was asked to stop; nothing was written"
    )]
    LeaseInterrupted {
        location: String,
        key: String,
        holder: String,
    },
}

/// The on-disk envelope of every JSON state object: a format version so that a newer or older
/// layout is recognised instead of misread.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: u32,
    written_at: DateTime<Utc>,
    data: T,
}

/// Version of the envelope this build writes and reads.
pub const STATE_FORMAT: u32 = 1;

pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    local_dir: Option<PathBuf>,
    owner: String,
    /// The backend supports `If-Match` puts (S3); the local filesystem does not.
    conditional_update: bool,
    lease_ttl: Duration,
    /// The clock leases and claims are judged by: the wall clock, or a run's pinned clock that
    /// moves on with the time the process has been running (see [`StateStore::with_clock`]).
    clock: Option<(DateTime<Utc>, std::time::Instant)>,
    /// Old takeover markers (lock debris) were swept away once by this store.
    debris_swept: std::sync::atomic::AtomicBool,
}

/// A JSON state object as read, with the version it was read at (for a conditional write).
struct Versioned<T> {
    value: Option<T>,
    version: Option<UpdateVersion>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("location", &self.location)
            .finish()
    }
}

impl StateStore {
    /// Open the store at `url`: `file:///abs/dir`, `s3://bucket/prefix`, or a plain path.
    ///
    /// S3 settings come from the usual AWS environment (`AWS_REGION`, credentials or IRSA web
    /// identity, `AWS_ENDPOINT_URL` for S3-compatible servers).
    pub fn open(url: &str) -> Result<StateStore, StateError> {
        Self::open_with(url, std::env::vars())
    }

    /// [`open`](Self::open) with the environment given explicitly (`AWS_*` variables are read
    /// from it), so a caller can point one store at another S3 endpoint than the process's.
    pub fn open_with(
        url: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<StateStore, StateError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let owner = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        if url.starts_with("s3://") {
            let Some((bucket, prefix)) = crate::store_url::split_s3_url(url) else {
                return Err(StateError::BadUrl {
                    url: url.into(),
                    why: "no bucket name".into(),
                });
            };
            let store = crate::store_url::s3_with_env(bucket, &env).map_err(|e| match e {
                crate::store_url::S3Error::BadEndpoint { endpoint, why } => {
                    StateError::BadUrl { url: endpoint, why }
                }
                crate::store_url::S3Error::Build { source, .. } => StateError::Store {
                    location: url.into(),
                    source,
                },
            })?;
            return Ok(StateStore {
                store: Arc::new(store),
                prefix: Path::from(prefix),
                location: url.to_string(),
                local_dir: None,
                owner,
                conditional_update: true,
                lease_ttl: LEASE_TTL,
                clock: None,
                debris_swept: Default::default(),
            });
        }
        let dir = match url.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None if url.contains("://") => {
                return Err(StateError::BadUrl {
                    url: url.into(),
                    why: "expected file://, s3:// or a directory path".into(),
                });
            }
            None => PathBuf::from(url),
        };
        Self::open_dir(&dir, owner)
    }

    fn open_dir(dir: &FsPath, owner: String) -> Result<StateStore, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            location: dir.display().to_string(),
            source,
        })?;
        let abs = std::fs::canonicalize(dir).map_err(|source| StateError::Io {
            location: dir.display().to_string(),
            source,
        })?;
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(&abs).map_err(|source| {
                StateError::Store {
                    location: abs.display().to_string(),
                    source,
                }
            })?;
        Ok(StateStore {
            store: Arc::new(store),
            prefix: Path::default(),
            location: abs.display().to_string(),
            local_dir: Some(abs),
            owner,
            conditional_update: false,
            lease_ttl: LEASE_TTL,
            clock: None,
            debris_swept: Default::default(),
        })
    }

    /// Hold leases for `ttl` instead of [`LEASE_TTL`] (a store whose writes are slow).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> StateStore {
        self.lease_ttl = ttl;
        self
    }

    /// Judge leases and claims by a clock that reads `start` now and moves on with the process:
    /// a run taken at a pinned time (tests, a replay) sees the leases of runs it follows expire
    /// as they would have in real time.
    pub fn with_clock(mut self, start: DateTime<Utc>) -> StateStore {
        self.clock = Some((start, std::time::Instant::now()));
        self
    }

    /// Now, by the store's clock (see [`StateStore::with_clock`]).
    pub fn now(&self) -> DateTime<Utc> {
        match self.clock {
            Some((start, at)) => {
                start + chrono::TimeDelta::from_std(at.elapsed()).unwrap_or_default()
            }
            None => Utc::now(),
        }
    }

    /// Where the store lives, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The directory on disk, for a `file://` store (the local sink and board write there).
    pub fn local_dir(&self) -> Option<&FsPath> {
        self.local_dir.as_deref()
    }

    fn path(&self, key: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in key.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    fn err(&self, source: object_store::Error) -> StateError {
        StateError::Store {
            location: self.location.clone(),
            source,
        }
    }

    /// Raw bytes of `key`, or `None` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StateError> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.err(e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Whether the store answers at all: a metadata read of the row memory (absent is fine). A
    /// store that cannot be reached (network, credentials, bucket) is an error, so a run can stop
    /// before collecting anything instead of failing every read and write one by one.
    pub async fn reachable(&self) -> Result<(), StateError> {
        match self.store.head(&self.path(rows::ROWS_KEY)).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Replace `key` atomically.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StateError> {
        self.store
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StateError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Keys under `prefix`, relative to the store root, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        use futures::TryStreamExt;
        let base = self.path(prefix);
        let items: Vec<_> = self
            .store
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        let root = self.prefix.as_ref();
        let mut keys: Vec<String> = items
            .into_iter()
            .map(|m| {
                let full = m.location.to_string();
                full.strip_prefix(root)
                    .map(|s| s.trim_start_matches('/').to_string())
                    .unwrap_or(full)
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Read a JSON state object. A corrupt object, or one written in another format version,
    /// is reported, moved aside to `<key>.corrupt-<time>` and treated as absent: the run goes
    /// on from empty instead of crashing on yesterday's bad write.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        Ok(self.get_json_versioned(key).await?.value)
    }

    async fn get_json_versioned<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Versioned<T>, StateError> {
        let (bytes, version) = match self.store.get(&self.path(key)).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                (r.bytes().await.map_err(|e| self.err(e))?, version)
            }
            Err(object_store::Error::NotFound { .. }) => {
                return Ok(Versioned {
                    value: None,
                    version: None,
                });
            }
            Err(e) => return Err(self.err(e)),
        };
        let problem = match decode::<T>(&bytes) {
            Ok(v) => {
                return Ok(Versioned {
                    value: Some(v),
                    version: Some(version),
                });
            }
            Err(problem) => problem,
        };
        let aside = format!(
            "{key}.corrupt-{}-{:08x}",
            Utc::now().format("%Y%m%dT%H%M%S"),
            rand::random::<u32>()
        );
        tracing::warn!(
            "state object {key} in {} is unusable ({problem}); moved it to {aside} and starting from empty",
            self.location
        );
        self.put(&aside, bytes).await?;
        self.delete(key).await?;
        Ok(Versioned {
            value: None,
            version: None,
        })
    }

    fn encode<T: Serialize>(key: &str, value: &T) -> Result<Bytes, StateError> {
        let env = Envelope {
            format: STATE_FORMAT,
            written_at: Utc::now(),
            data: value,
        };
        let text = serde_json::to_string_pretty(&env).map_err(|source| StateError::Encode {
            key: key.into(),
            source,
        })?;
        // The state store is an edge where text leaves the process: no secret's value is
        // written, whatever a row's reason or a collector's checkpoint picked up.
        Ok(Bytes::from(crate::secret::redact(&text).into_owned()))
    }

    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        self.put(key, Self::encode(key, value)?).await
    }

    /// Read-modify-write `key` under a lease so overlapping runs never lose an update.
    ///
    /// `f` runs on the current value (or `T::default()` when the object is absent or was
    /// unusable and moved aside). On S3 the write is also conditional on the version read: if
    /// the object changed under us anyway, nothing is written and the whole update (lease, read,
    /// `f`, write) is tried again, up to [`CONFLICT_RETRIES`] times, so `f` may run more than once
    /// and must only change the value it is given. A lease that ran out, or conflicts that go on,
    /// are errors that say so.
    ///
    /// The lease alone cannot guarantee a single writer on S3: deletes are not conditional, and a
    /// DELETE the client retried after a lost answer can remove a lease another run has just
    /// taken. The conditional write is what keeps every update; the retry keeps the run going.
    pub async fn update_json<T, R, F>(&self, key: &str, mut f: F) -> Result<R, StateError>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnMut(&mut T) -> R,
    {
        let mut attempt = 0;
        loop {
            let mut update = self.begin_update::<T>(key).await?;
            let r = f(&mut update.value);
            match self.finish_update(update).await {
                Ok(()) => return Ok(r),
                Err(StateError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    self.conflict_pause(key, attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Log a conflict and wait a little before trying an update again.
    pub async fn conflict_pause(&self, key: &str, attempt: u32) {
        tracing::warn!(
            "state object {key} in {} changed while we updated it; trying again ({attempt}/{CONFLICT_RETRIES})",
            self.location
        );
        let pause = 20 + rand::random::<u64>() % (80 * u64::from(attempt));
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }

    /// The first half of [`StateStore::update_json`], for an update that does its own I/O while
    /// the lease is held (the delivery ledger writes its batch between reading and writing the
    /// row memory): take the lease on `key` and read it. Finish with
    /// [`StateStore::finish_update`] (write, release) or [`StateStore::abandon_update`]
    /// (release only); on [`StateError::Conflict`] start over, as `update_json` does.
    pub async fn begin_update<T>(&self, key: &str) -> Result<Update<T>, StateError>
    where
        T: DeserializeOwned + Default,
    {
        let lease_key = format!("locks/{}.lease", key.replace('/', "_"));
        let expires_at = self.acquire(&lease_key).await?;
        match self.get_json_versioned::<T>(key).await {
            Ok(read) => Ok(Update {
                key: key.to_string(),
                lease_key,
                expires_at,
                version: read.version,
                value: read.value.unwrap_or_default(),
            }),
            Err(e) => {
                self.release(&lease_key).await;
                Err(e)
            }
        }
    }

    /// Give up an update: nothing is written, the lease is released.
    pub async fn abandon_update<T>(&self, update: Update<T>) {
        self.release(&update.lease_key).await;
    }

    /// Write an update's value (conditionally on the version read, on S3) and release the lease.
    pub async fn finish_update<T: Serialize>(&self, update: Update<T>) -> Result<(), StateError> {
        let held = self.finish_update_holding(update).await?;
        self.release_update(held).await;
        Ok(())
    }

    /// [`StateStore::finish_update`] that keeps the lease on success, for work that must be
    /// done before another run reads the object (the ledger removes the batches it took over).
    /// Release it with [`StateStore::release_update`]; on an error it is released already.
    pub async fn finish_update_holding<T: Serialize>(
        &self,
        update: Update<T>,
    ) -> Result<HeldUpdate, StateError> {
        let lease = update.lease_key.clone();
        match self.write_update(update).await {
            Ok(()) => Ok(HeldUpdate { lease_key: lease }),
            Err(e) => {
                self.release(&lease).await;
                Err(e)
            }
        }
    }

    /// Release the lease of an update written with [`StateStore::finish_update_holding`].
    pub async fn release_update(&self, held: HeldUpdate) {
        self.release(&held.lease_key).await;
    }

    async fn write_update<T: Serialize>(&self, update: Update<T>) -> Result<(), StateError> {
        let Update {
            key,
            lease_key,
            expires_at,
            version,
            value,
        } = update;
        let result = async {
            let bytes = Self::encode(&key, &value)?;
            let margin = chrono::TimeDelta::from_std(LEASE_MARGIN).unwrap_or_default();
            if self.now() + margin > expires_at {
                return Err(StateError::LeaseLost {
                    location: self.location.clone(),
                    key: key.clone(),
                });
            }
            let mode = match (self.conditional_update, version) {
                (false, _) => PutMode::Overwrite,
                (true, None) => PutMode::Create,
                (true, Some(v)) => PutMode::Update(v),
            };
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&self.path(&key), PutPayload::from(bytes.clone()), opts)
                .await
            {
                Ok(_) => Ok(()),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {
                    // object_store retries a PUT whose answer was lost; the retry then fails its
                    // precondition against our own first write. Only a different content is a
                    // real conflict.
                    if self.get(&key).await?.is_some_and(|now| now == bytes) {
                        return Ok(());
                    }
                    Err(StateError::Conflict {
                        location: self.location.clone(),
                        key: key.clone(),
                    })
                }
                Err(e) => Err(self.err(e)),
            }
        }
        .await;
        let _ = lease_key;
        result
    }
}

/// An update written with its lease still held ([`StateStore::finish_update_holding`]).
pub struct HeldUpdate {
    lease_key: String,
}

/// An update in progress ([`StateStore::begin_update`]): the value read, under the lease.
pub struct Update<T> {
    key: String,
    lease_key: String,
    expires_at: DateTime<Utc>,
    version: Option<UpdateVersion>,
    pub value: T,
}

/// Decode an envelope, or say why it cannot be used.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match serde_json::from_slice::<Envelope<serde_json::Value>>(bytes) {
        Ok(env) if env.format != STATE_FORMAT => Err(format!(
            "written in state format {}, this build reads format {STATE_FORMAT}",
            env.format
        )),
        Ok(env) => {
            serde_json::from_value::<T>(env.data).map_err(|e| format!("unexpected content: {e}"))
        }
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn json_round_trip_and_corrupt_objects_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(store.get_json::<Vec<u32>>("a/b.json").await.unwrap(), None);
        store.put_json("a/b.json", &vec![1u32, 2]).await.unwrap();
        assert_eq!(
            store.get_json::<Vec<u32>>("a/b.json").await.unwrap(),
            Some(vec![1, 2])
        );
        store
            .put("a/b.json", Bytes::from_static(b"{not json"))
            .await
            .unwrap();
        assert_eq!(store.get_json::<Vec<u32>>("a/b.json").await.unwrap(), None);
        let keys = store.list("a").await.unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].starts_with("a/b.json.corrupt-"));
    }

    #[tokio::test]
    async fn unknown_format_version_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path().to_str().unwrap()).unwrap();
        let newer = br#"{"format": 99, "written_at": "2030-01-01T00:00:00Z", "data": [1]}"#;
        store
            .put("rows.json", Bytes::from_static(newer))
            .await
            .unwrap();
        let added = store
            .update_json("rows.json", |v: &mut Vec<u32>| {
                v.push(7);
                v.len()
            })
            .await
            .unwrap();
        assert_eq!(added, 1, "started from empty");
        let keys = store.list("").await.unwrap();
        let aside: Vec<&String> = keys.iter().filter(|k| k.contains(".corrupt-")).collect();
        assert_eq!(aside.len(), 1, "{keys:?}");
        assert_eq!(store.get(aside[0]).await.unwrap().unwrap().as_ref(), newer);
    }
}
