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

/// How long a lease is honoured before another run may take it over.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// How long a run waits for a lease before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(120);
/// A holder with less than this left on its lease does not write: the write might land after
/// another run took the lease over.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// How many times [`StateStore::update_json`] starts over after a conditional write found the
/// object changed.
pub const CONFLICT_RETRIES: u32 = 4;
/// Takeover markers older than this are deleted by the next takeover.
const MARKER_KEEP: Duration = Duration::from_secs(3600);

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

/// A claim taken with [`StateStore::try_claim`].
#[derive(Debug)]
pub struct Claim {
    key: String,
}

pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    local_dir: Option<PathBuf>,
    owner: String,
    /// The backend supports `If-Match` puts (S3); the local filesystem does not.
    conditional_update: bool,
    lease_ttl: Duration,
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
        })
    }

    /// Hold leases for `ttl` instead of [`LEASE_TTL`] (a store whose writes are slow).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> StateStore {
        self.lease_ttl = ttl;
        self
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
        serde_json::to_vec_pretty(&env)
            .map(Bytes::from)
            .map_err(|source| StateError::Encode {
                key: key.into(),
                source,
            })
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
            match self.update_once(key, &mut f).await {
                Err(StateError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(
                        "state object {key} in {} changed while we updated it; trying again ({attempt}/{CONFLICT_RETRIES})",
                        self.location
                    );
                    let pause = 20 + rand::random::<u64>() % (80 * u64::from(attempt));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                other => return other,
            }
        }
    }

    async fn update_once<T, R, F>(&self, key: &str, f: &mut F) -> Result<R, StateError>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnMut(&mut T) -> R,
    {
        let lease_key = format!("locks/{}.lease", key.replace('/', "_"));
        let expires_at = self.acquire(&lease_key).await?;
        let result = async {
            let read = self.get_json_versioned::<T>(key).await?;
            let mut value = read.value.unwrap_or_default();
            let r = f(&mut value);
            let bytes = Self::encode(key, &value)?;
            let margin = chrono::TimeDelta::from_std(LEASE_MARGIN).unwrap_or_default();
            if Utc::now() + margin > expires_at {
                return Err(StateError::LeaseLost {
                    location: self.location.clone(),
                    key: key.into(),
                });
            }
            let mode = match (self.conditional_update, read.version) {
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
                .put_opts(&self.path(key), PutPayload::from(bytes.clone()), opts)
                .await
            {
                Ok(_) => Ok(r),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {
                    // object_store retries a PUT whose answer was lost; the retry then fails its
                    // precondition against our own first write. Only a different content is a
                    // real conflict.
                    if self.get(key).await?.is_some_and(|now| now == bytes) {
                        return Ok(r);
                    }
                    Err(StateError::Conflict {
                        location: self.location.clone(),
                        key: key.into(),
                    })
                }
                Err(e) => Err(self.err(e)),
            }
        }
        .await;
        self.release(&lease_key).await;
        result
    }

    /// Create the lease object `lease_key` (ours for `ttl`) if there is none: `Some(expiry)` when
    /// created, `None` when one exists already.
    async fn create_lease(
        &self,
        lease_key: &str,
        ttl: Duration,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        let ttl = chrono::TimeDelta::from_std(ttl).unwrap_or(chrono::TimeDelta::MAX);
        let lease = Lease {
            owner: self.owner.clone(),
            expires_at: Utc::now() + ttl,
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
            .put_opts(&self.path(lease_key), PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(Some(lease.expires_at)),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Take the lease `lease_key`; returns when it expires.
    async fn acquire(&self, lease_key: &str) -> Result<DateTime<Utc>, StateError> {
        let started = std::time::Instant::now();
        loop {
            if let Some(expires_at) = self.create_lease(lease_key, self.lease_ttl).await? {
                return Ok(expires_at);
            }
            let Some(held) = self.get(lease_key).await? else {
                continue;
            };
            let holder = serde_json::from_slice::<Lease>(&held).ok();
            if let Some(h) = &holder
                && h.owner == self.owner
            {
                // Our own create went through but its answer was lost and the put retried.
                return Ok(h.expires_at);
            }
            // An unreadable lease cannot be honoured; it is treated as expired.
            if holder.as_ref().is_none_or(|l| l.expires_at < Utc::now()) {
                self.take_over(lease_key, &held).await?;
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

    /// Claim `key` for exclusive work without waiting (a spooled batch being re-sent): `None`
    /// when another live process holds it. A claim left by a process that died is taken over
    /// once it is older than `ttl`. Release it with [`StateStore::release_claim`] when done.
    pub async fn try_claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>, StateError> {
        let claim_key = format!("locks/{}.claim", key.replace('/', "_"));
        for _ in 0..2 {
            if self.create_lease(&claim_key, ttl).await?.is_some() {
                return Ok(Some(Claim { key: claim_key }));
            }
            let Some(held) = self.get(&claim_key).await? else {
                continue;
            };
            match serde_json::from_slice::<Lease>(&held) {
                Ok(h) if h.owner == self.owner => return Ok(Some(Claim { key: claim_key })),
                Ok(h) if h.expires_at >= Utc::now() => return Ok(None),
                // Expired or unreadable: the process that held it is gone.
                _ => self.take_over(&claim_key, &held).await?,
            }
        }
        Ok(None)
    }

    /// Give a claim back (only our own: one that expired and was taken over stays).
    pub async fn release_claim(&self, claim: Claim) {
        self.release(&claim.key).await;
    }

    /// Remove an expired lease, claiming the removal first: of several runs that saw the same
    /// expired lease, only the one that creates the marker deletes it, so none of them can delete
    /// a fresh lease another has just taken.
    async fn take_over(&self, lease_key: &str, expired: &[u8]) -> Result<(), StateError> {
        let marker = format!("{lease_key}.taken-{:016x}", fnv1a(expired));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(
                &self.path(&marker),
                PutPayload::from(self.owner.clone().into_bytes()),
                opts,
            )
            .await
        {
            Ok(_) => {
                tracing::warn!(
                    "taking over expired lease {lease_key} in {} (a run crashed or stalled)",
                    self.location
                );
                self.delete(lease_key).await?;
                self.prune_markers(lease_key).await;
                Ok(())
            }
            // Another run claimed this takeover; wait for the lease it takes.
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {
                tokio::time::sleep(Duration::from_millis(20 + rand::random::<u64>() % 80)).await;
                Ok(())
            }
            Err(e) => Err(self.err(e)),
        }
    }

    async fn prune_markers(&self, lease_key: &str) {
        use futures::TryStreamExt;
        let base = self.path("locks");
        let items: Vec<_> = match self.store.list(Some(&base)).try_collect().await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!("could not list old lease markers: {e}");
                return;
            }
        };
        let keep = chrono::TimeDelta::from_std(MARKER_KEEP).unwrap_or(chrono::TimeDelta::MAX);
        let lease_name = lease_key.rsplit('/').next().unwrap_or(lease_key);
        let prefix = format!("{lease_name}.taken-");
        for m in items {
            let old = m.last_modified + keep < Utc::now();
            if !old
                || !m
                    .location
                    .filename()
                    .is_some_and(|n| n.starts_with(&prefix))
            {
                continue;
            }
            if let Err(e) = self.store.delete(&m.location).await {
                tracing::warn!("could not delete old lease marker {}: {e}", m.location);
            }
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

/// FNV-1a: a stable, dependency-free name for an expired lease's content.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
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

    #[tokio::test]
    async fn a_writer_whose_lease_ran_out_does_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path().to_str().unwrap())
            .unwrap()
            .with_lease_ttl(LEASE_MARGIN + Duration::from_millis(500));
        store.put_json("x.json", &vec![1u32]).await.unwrap();
        let err = store
            .update_json("x.json", |v: &mut Vec<u32>| {
                // A stalled writer: by the time it writes, another run may own the lease.
                std::thread::sleep(Duration::from_millis(700));
                v.push(2);
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::LeaseLost { .. }), "{err}");
        let v: Vec<u32> = store.get_json("x.json").await.unwrap().unwrap();
        assert_eq!(v, vec![1]);
        assert!(
            store.list("locks").await.unwrap().is_empty(),
            "lease released"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_expired_lease_is_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap().to_string();
        let store = StateStore::open(&url).unwrap();
        let crashed = Lease {
            owner: "crashed-run".into(),
            expires_at: Utc::now() - chrono::TimeDelta::seconds(5),
        };
        store
            .put(
                "locks/n.json.lease",
                Bytes::from(serde_json::to_vec(&crashed).unwrap()),
            )
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..6u32 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let store = StateStore::open(&url).unwrap();
                store
                    .update_json("n.json", |v: &mut Vec<u32>| v.push(i))
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut v: Vec<u32> = store.get_json("n.json").await.unwrap().unwrap();
        v.sort();
        assert_eq!(v, vec![0, 1, 2, 3, 4, 5]);
        let locks = store.list("locks").await.unwrap();
        assert_eq!(
            locks.len(),
            1,
            "one takeover marker, no lease left: {locks:?}"
        );
        assert!(locks[0].starts_with("locks/n.json.lease.taken-"));
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
