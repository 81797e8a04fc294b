//! The leases: the lease that [`StateStore::update_json`] holds around a read-modify-write
//! (taken with put-if-absent, taken over once expired, released only by its owner) and the
//! claims the Datadog spool takes on a batch it re-sends ([`StateStore::try_claim`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{StateError, StateStore};

/// How long a lease is honoured before another run may take it over.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// How long a run waits for a lease before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(120);
/// A holder with less than this left on its lease does not write: the write might land after
/// another run took the lease over.
pub(super) const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// Takeover markers older than this are debris: the runs that saw the same expired lease acted
/// on it within moments. The first lease a store takes sweeps them away (every lease's, not
/// only its own), so markers left behind by crashes never pile up.
const MARKER_KEEP: Duration = Duration::from_secs(600);

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

impl StateStore {
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
            expires_at: self.now() + ttl,
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
    pub(super) async fn acquire(&self, lease_key: &str) -> Result<DateTime<Utc>, StateError> {
        if !self
            .debris_swept
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.prune_markers(None).await;
        }
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
            if holder.as_ref().is_none_or(|l| l.expires_at < self.now()) {
                self.take_over(lease_key, &held).await?;
                continue;
            }
            // A stop request (SIGTERM) ends the wait at once: a stale lease can hold for a
            // minute, longer than the grace period; the caller goes on without this update.
            if crate::shutdown::requested() {
                return Err(StateError::LeaseInterrupted {
                    location: self.location.clone(),
                    key: lease_key.into(),
                    holder: holder.map(|l| l.owner).unwrap_or_default(),
                });
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
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(pause)) => {}
                () = crate::shutdown::requested_wait() => {}
            }
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
                Ok(h) if h.expires_at >= self.now() => return Ok(None),
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
                self.prune_markers(Some(lease_key)).await;
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

    /// Delete takeover markers older than [`MARKER_KEEP`]: those of `lease_key`, or of every
    /// lease (`None`).
    async fn prune_markers(&self, lease_key: Option<&str>) {
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
        let prefix = lease_key.map(|k| {
            let lease_name = k.rsplit('/').next().unwrap_or(k);
            format!("{lease_name}.taken-")
        });
        for m in items {
            let old = m.last_modified + keep < Utc::now();
            let marker = m.location.filename().is_some_and(|n| match &prefix {
                Some(p) => n.starts_with(p.as_str()),
                None => n.contains(".taken-"),
            });
            if !old || !marker {
                continue;
            }
            if let Err(e) = self.store.delete(&m.location).await {
                tracing::warn!("could not delete old lease marker {}: {e}", m.location);
            }
        }
    }

    pub(super) async fn release(&self, lease_key: &str) {
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

/// FNV-1a: a stable, dependency-free name for an expired lease's content.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(super) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

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

    #[tokio::test]
    async fn old_takeover_markers_of_every_lease_are_swept_away() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        std::fs::create_dir_all(&locks).unwrap();
        let old = std::time::SystemTime::now() - (MARKER_KEEP + Duration::from_secs(60));
        for name in [
            "rows.json.lease.taken-00000000000000aa",
            "other.json.lease.taken-00000000000000bb",
            "spool_x.json.claim.taken-00000000000000cc",
        ] {
            let f = std::fs::File::create(locks.join(name)).unwrap();
            f.set_modified(old).unwrap();
        }
        // A fresh marker is kept: a run may be acting on it right now.
        std::fs::write(locks.join("rows.json.lease.taken-00000000000000dd"), "run").unwrap();
        let store = StateStore::open(dir.path().to_str().unwrap()).unwrap();
        store
            .update_json("x.json", |v: &mut Vec<u32>| v.push(1))
            .await
            .unwrap();
        let left = store.list("locks").await.unwrap();
        assert_eq!(left, vec!["locks/rows.json.lease.taken-00000000000000dd"]);
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
