//! The spool: requests that could not be delivered, kept in the state store for the next run.
//!
//! One object per undelivered request under `spool/`, named by time so the oldest is re-sent
//! first. An object holds the entries themselves (metric, tags, timestamp, values), never a
//! header and never the key. The next run reads each object, drops the points that have left
//! Datadog's window (counted), re-sends the rest, writes whatever still fails as new objects
//! and only then deletes the old one: a crash in between can duplicate a batch, never lose it.
//!
//! Jobs that share a state store overlap (the chart's ten-minute job and its hourly import):
//! each batch is claimed ([`StateStore::try_claim`]) before it is read and sent, and the claim is
//! released only after the batch is deleted or rewritten, so a batch is delivered by one process
//! only. A claim left by a process that died is taken over after [`CLAIM_TTL`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::encode::{DistributionSeries, EncodedRequest, Entry, Series};
use super::normalize::{Dropped, Window};
use crate::state::{StateError, StateStore};

pub const PREFIX: &str = "spool";

/// How long a claim on a spooled batch is honoured: longer than any delivery deadline, so a
/// slow but live process keeps its batch; a dead one's batch is re-sent after this.
pub const CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// One spooled request's entries.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SpoolBatch {
    #[serde(default)]
    pub series: Vec<Series<'static>>,
    #[serde(default)]
    pub distribution_points: Vec<DistributionSeries<'static>>,
}

impl SpoolBatch {
    pub fn from_entries(entries: Vec<Entry<'static>>) -> SpoolBatch {
        let mut b = SpoolBatch::default();
        for e in entries {
            match e {
                Entry::Series(s) => b.series.push(s),
                Entry::Distribution(d) => b.distribution_points.push(d),
            }
        }
        b
    }

    pub fn from_request(req: &EncodedRequest) -> Result<SpoolBatch, String> {
        req.entries()
            .map(SpoolBatch::from_entries)
            .map_err(|e| e.to_string())
    }

    pub fn len(&self) -> usize {
        self.series.len() + self.distribution_points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn points(&self) -> usize {
        self.series.len()
            + self
                .distribution_points
                .iter()
                .map(DistributionSeries::point_count)
                .sum::<usize>()
    }

    /// Keep only what may still be sent at `window`, counting the rest.
    pub fn retain_window(&mut self, window: Window, dropped: &mut Dropped) {
        self.series.retain(|s| window.keep_series(s, dropped));
        self.distribution_points
            .retain(|d| window.keep_distribution(d, dropped));
    }

    pub fn into_entries(self) -> Vec<Entry<'static>> {
        self.series
            .into_iter()
            .map(Entry::Series)
            .chain(
                self.distribution_points
                    .into_iter()
                    .map(Entry::Distribution),
            )
            .collect()
    }
}

/// The spool in a state store.
pub struct Spool {
    state: Arc<StateStore>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Spool {
    pub fn new(state: Arc<StateStore>) -> Spool {
        Spool { state }
    }

    /// Spooled objects, oldest first (objects moved aside as corrupt are skipped).
    pub async fn keys(&self) -> Result<Vec<String>, StateError> {
        let mut keys = self.state.list(PREFIX).await?;
        keys.retain(|k| k.ends_with(".json"));
        Ok(keys)
    }

    pub async fn load(&self, key: &str) -> Result<Option<SpoolBatch>, StateError> {
        self.state.get_json(key).await
    }

    /// Store a batch; returns its key.
    pub async fn write(&self, batch: &SpoolBatch) -> Result<String, StateError> {
        let key = format!(
            "{PREFIX}/{}-{:06}-{:08x}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000,
            rand::random::<u32>()
        );
        self.state.put_json(&key, batch).await?;
        Ok(key)
    }

    pub async fn remove(&self, key: &str) -> Result<(), StateError> {
        self.state.delete(key).await
    }

    /// Claim a batch before re-sending it; `None` when another process is on it.
    pub async fn claim(&self, key: &str) -> Result<Option<crate::state::Claim>, StateError> {
        self.state.try_claim(key, CLAIM_TTL).await
    }

    pub async fn release(&self, claim: crate::state::Claim) {
        self.state.release_claim(claim).await
    }
}
