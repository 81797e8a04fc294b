//! The delivery ledger: what a run sends is durable before the first request.
//!
//! A CronJob's pod can be SIGKILLed at any instant (an OOM kill, a grace period that ran out), a
//! Datadog outage can last hours, two jobs can overlap, and the state store can be lost. Counted
//! events and distribution samples are sent once each (see [`crate::state::rows`]), so the one
//! rule that holds through all of it is write-ahead: the spool is the ledger.
//!
//! Under the row memory's lease, one step ([`prepare`]):
//! 1. read every pending batch in the spool: the identities their manifests carry are known (a
//!    run killed after writing its batch but before writing the row memory sent nothing twice);
//! 2. reconcile the run with the row memory (carry-forward, what is new, baselines) and build
//!    the run's metrics; stamp each COUNT point after the last one of its series;
//! 3. take over (claim and absorb) every earlier batch no live process is sending: its gauges
//!    still count if fresh, its increments and samples are re-stamped once they near Datadog's
//!    one-hour limit ([`SpoolBatch::absorb`]), so the spool holds about one batch per job;
//! 4. write the run's batch (entries, manifest of new identities, the keys it absorbed) under a
//!    new key, claimed by this run; then the row memory records the identities.
//!
//! Then the batch is sent ([`crate::sinks::datadog::DatadogSink::deliver_ledger`]) and removed,
//! or written back with what the intake could not take yet. A kill before step 4 loses nothing
//! (nothing was recorded; the next run sees the same events as new); after it, the next run
//! whose claim check finds the batch abandoned takes it over. The one window left is a kill
//! after Datadog stored a request and before its answer arrived: the request is sent again,
//! which Datadog's last-write-wins absorbs for COUNT and GAUGE points (same series, same second,
//! same value) but not for distribution samples.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::checks::{CheckDef, CheckResult};
use crate::schema::{Metric, MetricValue};
use crate::sinks::datadog::normalize::{Dropped, Window};
use crate::sinks::datadog::spool::{Spool, SpoolBatch, series_key};
use crate::state::rows::{Pending, ROWS_KEY, Reconciled, RowMemory, reconcile};
use crate::state::{CONFLICT_RETRIES, Claim, StateError, StateStore};

/// How long a series' last COUNT stamp is remembered: past Datadog's one-hour window no later
/// point can share its second.
const STAMP_KEEP_SECS: i64 = 2 * 86_400;

/// Builds the run's metrics from its reconciled results.
pub type BuildMetrics<'a> = dyn Fn(&[(usize, CheckResult)]) -> Vec<Metric> + Sync + 'a;
/// Builds the ledger's own figures (re-stamped points, baselined identities).
pub type LedgerFigures<'a> = dyn Fn(usize, usize) -> Vec<Metric> + Sync + 'a;

/// What a run hands the ledger.
pub struct RunInput<'a> {
    /// The rows the job evaluates, and their fresh results (indexes into `rows`).
    pub rows: &'a [CheckDef],
    pub fresh: &'a [(usize, CheckResult)],
    /// When the run was taken (carry-forward ages) and when its metrics are stamped (Unix
    /// seconds).
    pub now: DateTime<Utc>,
    pub stamp: i64,
    /// How long the claims on batches last (the delivery deadline plus a margin).
    pub claim_ttl: std::time::Duration,
    pub build: &'a BuildMetrics<'a>,
    pub own_metrics: &'a LedgerFigures<'a>,
    /// Stored rows to forget (a repository no longer covered).
    pub retired: &'a crate::state::rows::Retired<'a>,
}

/// A run's batch, durable in the spool and claimed by the run.
pub struct LedgerBatch {
    pub key: String,
    pub batch: SpoolBatch,
    pub claim: Claim,
}

/// What [`prepare`] made of a run.
pub struct Prepared {
    pub reconciled: Reconciled,
    /// The run's own metrics (COUNT points stamped per series), as built.
    pub metrics: Vec<Metric>,
    pub batch: LedgerBatch,
    /// Increments and samples of earlier batches re-stamped to this run.
    pub restamped: usize,
    /// Points of earlier batches dropped (gauges past the hour) and of this run that cannot be
    /// sent at all.
    pub dropped: Dropped,
}

/// What one attempt under the lease produced.
struct Attempt {
    reconciled: Reconciled,
    metrics: Vec<Metric>,
    batch: SpoolBatch,
    restamped: usize,
    dropped: Dropped,
    /// Earlier batches taken over, with our claims on them.
    absorbed: Vec<(String, Claim)>,
    /// Leftovers: batches an earlier absorber took over but did not get to remove.
    leftovers: Vec<String>,
}

/// Reconcile the run and make its batch durable (steps 1–4 of the module docs). `build` turns
/// the reconciled results into the run's metrics, stamped at `stamp` (Unix seconds). On an
/// error nothing was recorded: the caller sends the run's gauges without the ledger and
/// nothing counted (a later run finds the same events new).
pub async fn prepare(state: &Arc<StateStore>, run: &RunInput<'_>) -> Result<Prepared, StateError> {
    let spool = Spool::new(state.clone());
    let key = Spool::new_key();
    let Some(own_claim) = spool.claim_for(&key, run.claim_ttl).await? else {
        // A fresh random key is never claimed already; a store that says so is not usable.
        return Err(StateError::LeaseLost {
            location: state.location().to_string(),
            key,
        });
    };
    let mut tries = 0;
    let attempt = loop {
        let mut update = match state.begin_update::<RowMemory>(ROWS_KEY).await {
            Ok(u) => u,
            Err(e) => {
                spool.release(own_claim).await;
                return Err(e);
            }
        };
        let made = one_attempt(&spool, &mut update.value, &key, run).await;
        let attempt = match made {
            Ok(a) => a,
            Err(e) => {
                state.abandon_update(update).await;
                spool.release(own_claim).await;
                return Err(e);
            }
        };
        match state.finish_update_holding(update).await {
            Ok(held) => {
                // Remove what was taken over before another run reads the spool: one that
                // listed it afterwards and found our batch already sent would send it again.
                let absorbed = attempt.absorbed.iter().map(|(k, _)| k);
                for old in absorbed.chain(&attempt.leftovers) {
                    if let Err(e) = spool.remove(old).await {
                        // Harmless while our batch, which lists it as taken over, is pending;
                        // once ours is delivered a run could send it again (the store is
                        // failing: the error says how).
                        tracing::error!(
                            "cannot remove spool batch {old}, taken over by {key}: {e}"
                        );
                    }
                }
                state.release_update(held).await;
                break attempt;
            }
            Err(StateError::Conflict { .. }) if tries < CONFLICT_RETRIES => {
                // Our batch stays written: the next attempt overwrites it under the same key.
                tries += 1;
                state.conflict_pause(ROWS_KEY, tries).await;
            }
            Err(e) => {
                // The row memory did not record the batch's identities, but its manifest does:
                // the batch is delivered by the next run, and nothing is counted twice.
                spool.release(own_claim).await;
                return Err(e);
            }
        }
    };
    for (_, claim) in attempt.absorbed {
        spool.release(claim).await;
    }
    if attempt.restamped > 0 {
        tracing::warn!(
            "{} increments and samples waited past Datadog's one-hour limit and were re-stamped to this run",
            attempt.restamped
        );
    }
    Ok(Prepared {
        reconciled: attempt.reconciled,
        metrics: attempt.metrics,
        batch: LedgerBatch {
            key,
            batch: attempt.batch,
            claim: own_claim,
        },
        restamped: attempt.restamped,
        dropped: attempt.dropped,
    })
}

async fn one_attempt(
    spool: &Spool,
    memory: &mut RowMemory,
    own_key: &str,
    run: &RunInput<'_>,
) -> Result<Attempt, StateError> {
    // 1. Every pending batch: its identities are known, its absorbed list names leftovers.
    let mut pending = Pending::new();
    let mut earlier: Vec<(String, SpoolBatch)> = Vec::new();
    let mut absorbed_already: HashSet<String> = HashSet::new();
    for k in spool.keys().await? {
        if k == own_key {
            continue;
        }
        let Some(b) = spool.load(&k).await? else {
            continue;
        };
        for (row, ids) in &b.manifest {
            pending.entry(row.clone()).or_default().extend(ids);
        }
        absorbed_already.extend(b.absorbed.iter().cloned());
        earlier.push((k, b));
    }
    // 2. Reconcile and build; one COUNT point per series per second.
    let stamp = run.stamp;
    crate::state::rows::retire(memory, run.retired);
    let mut reconciled = reconcile(memory, run.rows, run.fresh, run.now, &pending);
    let mut metrics = (run.build)(&reconciled.results);
    let stamps = &mut memory.series_stamps;
    stamps.retain(|_, ts| *ts >= stamp - STAMP_KEEP_SECS);
    for m in &mut metrics {
        if matches!(m.value, MetricValue::Count { .. }) {
            m.timestamp = next_stamp(stamps, &m.name, &m.tags, m.timestamp);
        }
    }
    let window = Window::new(stamp);
    let mut dropped = Dropped::default();
    let mut batch = SpoolBatch::from_metrics(&metrics, window, &mut dropped);
    batch.manifest = std::mem::take(&mut reconciled.new_ids)
        .into_iter()
        .collect::<BTreeMap<_, _>>();
    // 3. Take over what no live process is sending.
    let mut absorbed = Vec::new();
    let mut leftovers = Vec::new();
    let mut restamped = 0;
    for (k, _) in earlier {
        if absorbed_already.contains(&k) {
            leftovers.push(k);
            continue;
        }
        let Some(claim) = spool.claim_for(&k, run.claim_ttl).await? else {
            tracing::info!("spooled batch {k} is being sent by another run");
            continue;
        };
        // Still there now that it is ours? A run that sent it released its claim only after
        // removing it.
        let Some(old) = spool.load(&k).await? else {
            spool.release(claim).await;
            continue;
        };
        let mut stamp_of =
            |metric: &str, tags: &[String], at: i64| next_stamp(stamps, metric, tags, at);
        restamped += batch
            .absorb(old, &k, stamp, &mut stamp_of, &mut dropped)
            .restamped;
        absorbed.push((k, claim));
    }
    let own = (run.own_metrics)(restamped, reconciled.baselined);
    let mut own_dropped = Dropped::default();
    let extra = SpoolBatch::from_metrics(&own, window, &mut own_dropped);
    batch.series.extend(extra.series);
    metrics.extend(own);
    // 4. Durable before the row memory records anything.
    if let Err(e) = spool.put(own_key, &batch).await {
        for (_, claim) in absorbed {
            spool.release(claim).await;
        }
        return Err(e);
    }
    Ok(Attempt {
        reconciled,
        metrics,
        batch,
        restamped,
        dropped,
        absorbed,
        leftovers,
    })
}

/// The stamp for the next COUNT point of a series wanted at `at`: after the series' last one.
fn next_stamp(stamps: &mut BTreeMap<String, i64>, metric: &str, tags: &[String], at: i64) -> i64 {
    let key = series_key(metric, tags);
    let ts = match stamps.get(&key) {
        Some(last) if *last >= at => last + 1,
        _ => at,
    };
    stamps.insert(key, ts);
    ts
}
