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

use std::collections::BTreeMap;

use super::encode::{DistributionSeries, EncodedRequest, Entry, LIMITS, Series, samples_per_entry};
use super::normalize::{Dropped, MAX_AGE_SECS, Window};
use crate::schema::Metric;
use crate::state::identities::IdHash;
use crate::state::{StateError, StateStore};

pub const PREFIX: &str = "spool";

/// How long a claim on a spooled batch is honoured: longer than the default delivery deadline
/// (5 minutes), so a slow but live process keeps its batch, and shorter than a ten-minute cron
/// period, so the next run takes over the batch of one that was killed. See [`claim_ttl`].
pub const CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 60);

/// The claim a run takes on a batch it sends: [`CLAIM_TTL`], or its delivery deadline plus two
/// minutes when that is longer.
pub fn claim_ttl(deadline: std::time::Duration) -> std::time::Duration {
    CLAIM_TTL.max(deadline + std::time::Duration::from_secs(120))
}

/// One spooled batch: entries to send, and what they stand for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SpoolBatch {
    #[serde(default)]
    pub series: Vec<Series<'static>>,
    #[serde(default)]
    pub distribution_points: Vec<DistributionSeries<'static>>,
    /// The identities whose samples or increments this batch carries, by row: while the batch
    /// is pending they are known to every run, even one that finds them missing from the row
    /// memory (a run killed between writing its batch and writing the memory).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub manifest: BTreeMap<String, Vec<IdHash>>,
    /// Keys of earlier batches whose entries this one took over ([`SpoolBatch::absorb`]): one
    /// of them still in the spool is left over from a run killed before it removed it, and is
    /// removed unsent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absorbed: Vec<String>,
}

/// Points older than this when a batch is prepared are re-stamped instead of sent as they are
/// (COUNT increments and distribution samples) or dropped (gauges): Datadog keeps nothing over
/// an hour old, and a batch may take the delivery deadline to go out.
pub const RESTAMP_AGE_SECS: i64 = MAX_AGE_SECS - 600;

/// What [`SpoolBatch::absorb`] did with an earlier batch's points.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Absorbed {
    /// Increments and samples re-stamped to this run (merged into its point for the series).
    pub restamped: usize,
}

/// The key of a series for "one point per series per second": its metric name and tags.
pub fn series_key(metric: &str, tags: &[String]) -> String {
    format!(
        "{:016x}",
        crate::state::identities::hash_id(&format!("{metric}|{}", tags.join(",")))
    )
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

    /// A run's metrics as a batch: the same entries the request builder would send
    /// (distributions split into entries that fit a request); points that cannot be sent at
    /// all (outside the window, not finite) are left out and counted.
    pub fn from_metrics(metrics: &[Metric], window: Window, dropped: &mut Dropped) -> SpoolBatch {
        let mut b = SpoolBatch::default();
        for m in metrics {
            match window.entry(m) {
                Ok(Entry::Series(s)) => b.series.push(s.into_owned()),
                Ok(Entry::Distribution(d)) => b
                    .distribution_points
                    .extend(d.into_owned().into_chunks(samples_per_entry(LIMITS))),
                Err((reason, points)) => dropped.add(reason, points),
            }
        }
        b
    }

    /// Take over an earlier pending batch `old` (stored under `key`), for a run taken at `now`:
    /// - gauges still inside Datadog's window are kept as they are (a level, stamped when it was
    ///   true); older ones are dropped and counted as expired;
    /// - COUNT increments and distribution samples still comfortably inside the window are kept
    ///   with their own timestamps; older ones are re-stamped to this run: added to this batch's
    ///   point for the same series when it has one (an increment is summed, samples pooled), else
    ///   a point of their own stamped by `stamp` (which keeps one point per series per second).
    ///   Nothing counted ages out while it waits for Datadog.
    pub fn absorb(
        &mut self,
        old: SpoolBatch,
        key: &str,
        now: i64,
        stamp: &mut dyn FnMut(&str, &[String], i64) -> i64,
        dropped: &mut Dropped,
    ) -> Absorbed {
        let mut out = Absorbed::default();
        let window = Window::new(now);
        let stale = |ts: i64| ts < now - RESTAMP_AGE_SECS;
        for s in old.series {
            let ts = s.points[0].timestamp;
            if s.kind != 1 {
                if window.keep_series(&s, dropped) {
                    self.series.push(s);
                }
                continue;
            }
            if !stale(ts) {
                self.series.push(s);
                continue;
            }
            out.restamped += 1;
            let value = s.points[0].value;
            let fresh = self.series.iter_mut().find(|e| {
                e.kind == 1
                    && !stale(e.points[0].timestamp)
                    && e.metric == s.metric
                    && e.tags == s.tags
            });
            match fresh {
                Some(e) => e.points[0].value += value,
                None => {
                    let mut s = s;
                    s.points[0].timestamp = stamp(&s.metric, &s.tags, now);
                    self.series.push(s);
                }
            }
        }
        for d in old.distribution_points {
            if !stale(d.points[0].0) {
                self.distribution_points.push(d);
                continue;
            }
            out.restamped += d.points[0].1.len();
            let fresh = self.distribution_points.iter_mut().find(|e| {
                !stale(e.points[0].0)
                    && e.metric == d.metric
                    && e.tags == d.tags
                    && e.points[0].1.len() + d.points[0].1.len() <= samples_per_entry(LIMITS)
            });
            match fresh {
                Some(e) => e.points[0].1.to_mut().extend_from_slice(&d.points[0].1),
                None => {
                    let mut d = d;
                    d.points[0].0 = now;
                    self.distribution_points.push(d);
                }
            }
        }
        for (row, ids) in old.manifest {
            self.manifest.entry(row).or_default().extend(ids);
        }
        self.absorbed.push(key.to_string());
        self.absorbed.extend(old.absorbed);
        out
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

    /// A new batch key, in time order.
    pub fn new_key() -> String {
        format!(
            "{PREFIX}/{}-{:06}-{:08x}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000,
            rand::random::<u32>()
        )
    }

    /// Store a batch; returns its key.
    pub async fn write(&self, batch: &SpoolBatch) -> Result<String, StateError> {
        let key = Self::new_key();
        self.state.put_json(&key, batch).await?;
        Ok(key)
    }

    /// Store `batch` under `key` (a whole-object put: a reader sees the old or the new content).
    pub async fn put(&self, key: &str, batch: &SpoolBatch) -> Result<(), StateError> {
        self.state.put_json(key, batch).await
    }

    pub async fn remove(&self, key: &str) -> Result<(), StateError> {
        self.state.delete(key).await
    }

    /// Claim a batch before re-sending it; `None` when another process is on it.
    pub async fn claim(&self, key: &str) -> Result<Option<crate::state::Claim>, StateError> {
        self.state.try_claim(key, CLAIM_TTL).await
    }

    /// [`Spool::claim`] for `ttl` (the ledger's claims last the delivery deadline, not more).
    pub async fn claim_for(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<crate::state::Claim>, StateError> {
        self.state.try_claim(key, ttl).await
    }

    pub async fn release(&self, claim: crate::state::Claim) {
        self.state.release_claim(claim).await
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::sinks::datadog::encode::Point;

    fn series(metric: &str, kind: u8, ts: i64, value: f64) -> Series<'static> {
        Series {
            metric: Cow::Owned(metric.into()),
            kind,
            points: [Point {
                timestamp: ts,
                value,
            }],
            tags: Cow::Owned(vec!["row:a".into()]),
            unit: None,
            interval: (kind == 1).then_some(600),
        }
    }

    fn dist(ts: i64, values: &[f64]) -> DistributionSeries<'static> {
        DistributionSeries {
            metric: Cow::Owned("d".into()),
            points: [(ts, Cow::Owned(values.to_vec()))],
            tags: Cow::Owned(vec!["row:a".into()]),
        }
    }

    #[test]
    fn absorbing_keeps_fresh_points_restamps_old_counts_and_samples_and_drops_old_gauges() {
        let now = 100_000;
        let old_ts = now - 3_500; // past the re-stamp age, still inside Datadog's hour
        let ancient = now - 7_200;
        let mut mine = SpoolBatch {
            series: vec![series("c", 1, now, 2.0), series("g", 3, now, 1.0)],
            distribution_points: vec![dist(now, &[1.0])],
            ..Default::default()
        };
        let old = SpoolBatch {
            series: vec![
                series("c", 1, old_ts, 3.0),    // merged into mine: 5
                series("c", 1, now - 600, 4.0), // fresh: kept as is
                series("e", 1, ancient, 7.0),   // no point of mine: stamped anew
                series("g", 3, now - 600, 0.5), // a fresh gauge: kept
                series("g", 3, ancient, 0.0),   // an old gauge: dropped
            ],
            distribution_points: vec![dist(ancient, &[2.0, 3.0]), dist(now - 60, &[4.0])],
            manifest: BTreeMap::from([("row".to_string(), vec![7])]),
            absorbed: vec!["spool/older.json".into()],
        };
        let mut dropped = Dropped::default();
        let mut stamped = Vec::new();
        let mut stamp = |m: &str, _: &[String], at: i64| {
            stamped.push(m.to_string());
            at + 1
        };
        let a = mine.absorb(old, "spool/old.json", now, &mut stamp, &mut dropped);
        assert_eq!(a.restamped, 2 + 2, "two increments and two samples");
        assert_eq!(stamped, ["e"]);
        let points: Vec<(&str, i64, f64)> = mine
            .series
            .iter()
            .map(|s| (s.metric.as_ref(), s.points[0].timestamp, s.points[0].value))
            .collect();
        assert_eq!(
            points,
            [
                ("c", now, 5.0),
                ("g", now, 1.0),
                ("c", now - 600, 4.0),
                ("e", now + 1, 7.0),
                ("g", now - 600, 0.5),
            ]
        );
        assert_eq!(dropped.describe(), "1 expired");
        let d: Vec<(i64, Vec<f64>)> = mine
            .distribution_points
            .iter()
            .map(|d| (d.points[0].0, d.points[0].1.to_vec()))
            .collect();
        assert_eq!(d, [(now, vec![1.0, 2.0, 3.0]), (now - 60, vec![4.0])]);
        assert_eq!(mine.manifest["row"], [7]);
        assert_eq!(mine.absorbed, ["spool/old.json", "spool/older.json"]);
    }
}
