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
//! created with put-if-absent, which both backends honour) so two overlapping runs cannot lose
//! each other's updates; a lease left by a crashed run expires.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Default location when neither `--state`, `INFRA_HEALTH_STATE` nor config names one.
pub const DEFAULT_STATE_DIR: &str = ".infra-health";

/// How long a lease is honoured before another run may take it over.
const LEASE_TTL: Duration = Duration::from_secs(60);
/// How long a run waits for a lease before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(120);

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
        "state store {location}: timed out after {waited:?} waiting for the lease on {key} (held by {holder})"
    )]
    LeaseTimeout {
        location: String,
        key: String,
        holder: String,
        waited: Duration,
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

#[derive(Serialize, Deserialize)]
struct Lease {
    owner: String,
    expires_at: DateTime<Utc>,
}

pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    local_dir: Option<PathBuf>,
    owner: String,
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
        let owner = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StateError::BadUrl {
                    url: url.into(),
                    why: "no bucket name".into(),
                });
            }
            let store = crate::store_url::s3(bucket).map_err(|e| match e {
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
                prefix: Path::from(prefix.trim_matches('/')),
                location: url.to_string(),
                local_dir: None,
                owner,
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
        })
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
        let Some(bytes) = self.get(key).await? else {
            return Ok(None);
        };
        let problem = match serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes) {
            Ok(env) if env.format != STATE_FORMAT => format!(
                "written in state format {}, this build reads format {STATE_FORMAT}",
                env.format
            ),
            Ok(env) => match serde_json::from_value::<T>(env.data) {
                Ok(v) => return Ok(Some(v)),
                Err(e) => format!("unexpected content: {e}"),
            },
            Err(e) => format!("not valid JSON: {e}"),
        };
        let aside = format!("{key}.corrupt-{}", Utc::now().format("%Y%m%dT%H%M%S"));
        tracing::warn!(
            "state object {key} in {} is unusable ({problem}); moved it to {aside} and starting from empty",
            self.location
        );
        self.put(&aside, bytes).await?;
        self.delete(key).await?;
        Ok(None)
    }

    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        let env = Envelope {
            format: STATE_FORMAT,
            written_at: Utc::now(),
            data: value,
        };
        let bytes = serde_json::to_vec_pretty(&env).map_err(|source| StateError::Encode {
            key: key.into(),
            source,
        })?;
        self.put(key, Bytes::from(bytes)).await
    }

    /// Read-modify-write `key` under a lease so overlapping runs never lose an update.
    pub async fn update_json<T, R, F>(&self, key: &str, f: F) -> Result<R, StateError>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnOnce(&mut T) -> R,
    {
        let lease_key = format!("locks/{}.lease", key.replace('/', "_"));
        self.acquire(&lease_key).await?;
        let result = async {
            let mut value: T = self.get_json(key).await?.unwrap_or_default();
            let r = f(&mut value);
            self.put_json(key, &value).await?;
            Ok(r)
        }
        .await;
        self.release(&lease_key).await;
        result
    }

    async fn acquire(&self, lease_key: &str) -> Result<(), StateError> {
        let started = std::time::Instant::now();
        let path = self.path(lease_key);
        loop {
            let lease = Lease {
                owner: self.owner.clone(),
                expires_at: Utc::now()
                    + chrono::TimeDelta::from_std(LEASE_TTL).unwrap_or(chrono::TimeDelta::MAX),
            };
            let body = serde_json::to_vec(&lease).map_err(|source| StateError::Encode {
                key: lease_key.into(),
                source,
            })?;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&path, PutPayload::from(body), opts)
                .await
            {
                Ok(_) => return Ok(()),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(self.err(e)),
            }
            let holder = match self.get(lease_key).await? {
                Some(b) => serde_json::from_slice::<Lease>(&b).ok(),
                None => continue,
            };
            let expired = holder.as_ref().is_none_or(|l| l.expires_at < Utc::now());
            if expired {
                tracing::warn!("taking over expired lease {lease_key} in {}", self.location);
                self.delete(lease_key).await?;
                continue;
            }
            if started.elapsed() > LEASE_WAIT {
                return Err(StateError::LeaseTimeout {
                    location: self.location.clone(),
                    key: lease_key.into(),
                    holder: holder.map(|l| l.owner).unwrap_or_default(),
                    waited: LEASE_WAIT,
                });
            }
            let pause = 20 + rand::random::<u64>() % 80;
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    async fn release(&self, lease_key: &str) {
        // Only delete our own lease: if ours expired and another run took over, leave theirs.
        if let Ok(Some(b)) = self.get(lease_key).await
            && let Ok(l) = serde_json::from_slice::<Lease>(&b)
            && l.owner == self.owner
            && let Err(e) = self.delete(lease_key).await
        {
            tracing::warn!("could not release lease {lease_key}: {e}");
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_updates_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap().to_string();
        let mut tasks = Vec::new();
        for i in 0..8u32 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let store = StateStore::open(&url).unwrap();
                for j in 0..5u32 {
                    store
                        .update_json("counter.json", |v: &mut Vec<u32>| v.push(i * 100 + j))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let store = StateStore::open(&url).unwrap();
        let v: Vec<u32> = store.get_json("counter.json").await.unwrap().unwrap();
        assert_eq!(v.len(), 40);
    }
}
