//! Row memory: each row's last result, carried forward between runs ("light green = inferred").
//!
//! The dashboard's query layer cannot bridge a gap longer than ten minutes (`fill(last, N)` caps
//! N at 600 s), yet a stable-suite row is observed once a day and a CronJob may run only some
//! collectors (`--only`). So the tool itself remembers, per row, the last *known* result (value,
//! compared number, status, observation time, unit, tags), the one before it
//! (`previous_value`, for deltas), what the latest run emitted, and a short history of statuses
//! for the board's strip. It lives in one state object, [`ROWS_KEY`], updated under the store's
//! lease so overlapping runs merge instead of overwriting each other.
//!
//! Rules, applied to every row of the plan in every run ([`reconcile`]):
//! - **refreshed**: the row got a result with a value this run (pass, warn or fail; or unknown
//!   with a value, e.g. NaN). It is emitted as is and, unless unknown, becomes the row's last
//!   known result. If its observation is older than the row's `carry_forward` limit it is
//!   emitted as `unknown` ("stale: …"): old data is not news.
//! - **not refreshed**: the collector was not run (`--only`), failed, timed out, or returned no
//!   matching observation. If the last known result was observed within `carry_forward` of now
//!   it is emitted again with its value and status and `inferred = true` (the schema adds the
//!   `inferred:true` tag and `<prefix>.state.carry_forward`); otherwise the row is `unknown`,
//!   saying how long ago it was last observed.
//! - Age is measured from the observation's own time (when it was true of the world), falling
//!   back to the run that stored it.
//! - A status that differs from what the previous run emitted is a [`StatusChange`]; a row seen
//!   for the first time is not.
//! - A result older than the stored last known one (an overlapping run that collected earlier but
//!   wrote later) does not replace it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::identities::{IdHash, IdSet, hash_id};
use super::{StateError, StateStore};
use crate::checks::{CheckDef, CheckResult, Encoding, NewInRun, StatusChange};
use crate::checks::{RowId, Status};
use crate::duration::format_duration;
use crate::observation::{UnknownReason, Value};

/// The state object holding every row's memory.
pub const ROWS_KEY: &str = "rows.json";
/// How many past statuses each row keeps for the board's history strip.
pub const HISTORY_LEN: usize = 24;

/// Every row's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowMemory {
    #[serde(default)]
    pub rows: Vec<StoredRow>,
    /// The timestamp of the last COUNT point sent for each series (a hash of its metric name and
    /// tags, see `run::ledger`): the next point of a series is stamped after it, so two points
    /// of one series never share a second (Datadog would keep only the last one written).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub series_stamps: BTreeMap<String, i64>,
}

/// What is remembered about one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRow {
    pub row: RowId,
    pub title: String,
    /// The condition in human form when the row was last written.
    pub condition: String,
    /// The last result that had a status other than `unknown` (never an inferred one).
    #[serde(default)]
    pub last_known: Option<CheckResult>,
    /// When the run that stored `last_known` took place.
    #[serde(default)]
    pub last_known_at: Option<DateTime<Utc>>,
    /// The compared value of the last known result before `last_known`, for deltas.
    #[serde(default)]
    pub previous_value: Option<f64>,
    /// What the latest run emitted for this row (possibly inferred or unknown).
    pub current: CheckResult,
    /// When the latest run that wrote this row took place.
    pub updated_at: DateTime<Utc>,
    /// The latest statuses, oldest first, at most [`HISTORY_LEN`].
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// What this row has handed to the delivery ledger: sample and event identities. (Named
    /// `ledger` on disk: the earlier `delivered` map of plain identities is not read, so an
    /// upgrade starts every row from a baseline instead of re-sending its window.)
    #[serde(
        default,
        rename = "ledger",
        skip_serializing_if = "Delivered::is_empty"
    )]
    pub delivered: Delivered,
    /// On disk only: `current` holds the same samples as `last_known`, written once (see
    /// [`RowMemory::compact`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub current_samples_are_last_known: bool,
}

/// What a row has handed to the delivery ledger, so each distribution sample is sent once and
/// each counted event is one COUNT increment, over the life of the state store.
///
/// An identity is recorded in the same step as the ledger batch that carries its sample or
/// increment is made durable (see `run::ledger`): never before, so a run killed before its batch
/// is written loses nothing, and never after, so a run killed after it sends nothing twice. It
/// is kept while the source can still show it: until it has not been seen for
/// [`IDENTITY_RETENTION`], whether or not a given run's listing shows it (a run re-run days
/// later disappears from the results while in progress and comes back when it finishes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    /// When this row's identity memory began: the run that recorded its baseline. `None` until a
    /// run with identities has been reconciled; that run records what it sees as a baseline and
    /// sends none of it (a memory that does not cover an event does not send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// The identities seen, hashed, with when each was last seen.
    #[serde(default, skip_serializing_if = "IdSet::is_empty")]
    pub ids: IdSet,
}

impl Delivered {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.since.is_none()
    }
}

/// Identities that a durable but not yet delivered ledger batch carries, by row
/// ([`RowId`]'s displayed form): known, so not new, even before the row memory records them.
pub type Pending = HashMap<String, HashSet<IdHash>>;

/// How long an identity is kept after it was last seen: longer than any window a collector
/// lists (7 days by default) plus a day, so neither a late re-run nor an overlapping run that
/// collected a little earlier can send it again.
pub const IDENTITY_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

/// How far ahead of the run an observation may be stamped (clock skew) before it is refused,
/// as Datadog refuses points more than ten minutes ahead.
pub const MAX_FUTURE: TimeDelta = TimeDelta::minutes(10);

/// At most this many identities are kept per row (the longest unseen go first): a bound on the
/// state store whatever a collector returns. It is above what the largest accepted input gives
/// (a 16 MiB `file` holds under a million samples), since a row past it would send its oldest
/// samples again; a million identities are 16 MB of `rows.json` (12 bytes each, base64).
pub const MAX_DELIVERED_IDS: usize = 1_000_000;

impl StoredRow {
    /// Change of the compared value between the last two known results.
    pub fn delta(&self) -> Option<f64> {
        Some(self.last_known.as_ref()?.compared? - self.previous_value?)
    }
}

/// One past status of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub status: Status,
    #[serde(default)]
    pub inferred: bool,
}

/// At most this many samples are kept per row (the newest): the p50/p90 of a carried-forward row
/// are computed from them. 100,000 samples are about 1 MB of `rows.json`.
pub const MAX_SAMPLES_PER_ROW: usize = 100_000;

impl RowMemory {
    /// Before writing: keep at most [`MAX_SAMPLES_PER_ROW`] samples per result, and write a
    /// row's samples once when `current` and `last_known` hold the same ones (a fresh row).
    pub fn compact(&mut self) {
        fn cap(r: &mut CheckResult) {
            if let Some(Value::Samples(s)) = &mut r.value
                && s.len() > MAX_SAMPLES_PER_ROW
            {
                s.drain(..s.len() - MAX_SAMPLES_PER_ROW);
            }
        }
        for row in &mut self.rows {
            cap(&mut row.current);
            if let Some(k) = &mut row.last_known {
                cap(k);
            }
            let same = matches!(&row.current.value, Some(Value::Samples(_)))
                && row.last_known.as_ref().map(|k| &k.value) == Some(&row.current.value);
            if same {
                row.current.value = None;
            }
            row.current_samples_are_last_known = same;
        }
    }

    /// After reading: undo [`RowMemory::compact`]'s sharing.
    pub fn expand(&mut self) {
        for row in &mut self.rows {
            if std::mem::take(&mut row.current_samples_are_last_known)
                && let Some(k) = &row.last_known
            {
                row.current.value = k.value.clone();
            }
        }
    }

    pub fn get(&self, row: &RowId) -> Option<&StoredRow> {
        self.rows.iter().find(|r| &r.row == row)
    }

    /// Find a row by the `category/workflow/task/check` form [`RowId`] displays as.
    pub fn find(&self, text: &str) -> Option<&StoredRow> {
        self.rows.iter().find(|r| r.row.to_string() == text)
    }

    /// Forget a row (by its displayed form); true when it was there.
    pub fn remove(&mut self, text: &str) -> bool {
        let before = self.rows.len();
        self.rows.retain(|r| r.row.to_string() != text);
        self.rows.len() != before
    }
}

/// What reconciling one run with the memory gives.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    /// One result per row of the plan (index into `checks`), carried forward where due.
    pub results: Vec<(usize, CheckResult)>,
    pub changes: Vec<StatusChange>,
    /// The memory after this run, for the board.
    pub memory: RowMemory,
    /// Per row (displayed form), the identities whose samples or increments this run sends for
    /// the first time: the manifest of the run's ledger batch.
    pub new_ids: BTreeMap<String, Vec<IdHash>>,
    /// Identities recorded as a baseline (a row with no identity memory yet), not sent.
    pub baselined: usize,
}

/// Apply one run's fresh results (`fresh`: indexes into `checks`) to the memory, returning what
/// to emit for every row. See the module docs for the rules.
pub fn reconcile(
    memory: &mut RowMemory,
    checks: &[CheckDef],
    fresh: &[(usize, CheckResult)],
    now: DateTime<Utc>,
    pending: &Pending,
) -> Reconciled {
    let fresh: BTreeMap<usize, &CheckResult> = fresh.iter().map(|(i, r)| (*i, r)).collect();
    memory.expand();
    let mut out = Reconciled::default();
    for (i, def) in checks.iter().enumerate() {
        let stored = memory.rows.iter().position(|r| r.row == def.row);
        let last_known = stored.and_then(|p| memory.rows[p].last_known.as_ref());
        let last_known_at = stored.and_then(|p| memory.rows[p].last_known_at);
        let mut emitted = decide(def, fresh.get(&i).copied(), last_known, last_known_at, now);
        let mut delivered = stored
            .map(|p| std::mem::take(&mut memory.rows[p].delivered))
            .unwrap_or_default();
        let key = def.row.to_string();
        let settled = settle(def, &mut emitted, &mut delivered, pending.get(&key), now);
        if settled.baselined > 0 {
            tracing::info!(
                row = %def.row,
                "{} identities recorded as a baseline, not sent: the row memory did not cover them (first run, or lost or reset state)",
                settled.baselined
            );
        }
        out.baselined += settled.baselined;
        if !settled.new_ids.is_empty() {
            out.new_ids.insert(key, settled.new_ids);
        }

        let entry = HistoryEntry {
            at: now,
            status: emitted.status,
            inferred: emitted.inferred,
        };
        // Only a fresh result that this run accepted (not stale, not from the future).
        let fresh_known = fresh
            .get(&i)
            .filter(|r| r.status != Status::Unknown && emitted.status != Status::Unknown)
            .copied();
        match stored {
            Some(p) => {
                let row = &mut memory.rows[p];
                if row.current.status != emitted.status {
                    out.changes.push(StatusChange {
                        row: def.row.clone(),
                        title: def.title.clone(),
                        from: row.current.status,
                        to: emitted.status,
                        value: emitted.value.as_ref().map(|_| emitted.display_value()),
                        condition: def.condition.human(),
                    });
                }
                if let Some(new) = fresh_known {
                    let newer = match (&row.last_known, new.observed_at) {
                        (Some(old), Some(t)) => old.observed_at.is_none_or(|o| t >= o),
                        _ => true,
                    };
                    if newer {
                        if let Some(old) = &row.last_known
                            && old.observed_at != new.observed_at
                        {
                            row.previous_value = old.compared;
                        }
                        row.last_known = Some(new.clone());
                        row.last_known_at = Some(now);
                    }
                }
                row.title = def.title.clone();
                row.condition = def.condition.human();
                row.current = emitted.clone();
                row.updated_at = now;
                row.delivered = delivered;
                push_history(&mut row.history, entry);
            }
            None => memory.rows.push(StoredRow {
                row: def.row.clone(),
                title: def.title.clone(),
                condition: def.condition.human(),
                last_known: fresh_known.cloned(),
                last_known_at: fresh_known.map(|_| now),
                previous_value: None,
                current: emitted.clone(),
                updated_at: now,
                history: vec![entry],
                delivered,
                current_samples_are_last_known: false,
            }),
        }
        out.results.push((i, emitted));
    }
    out.memory = memory.clone();
    memory.compact();
    out
}

/// What [`settle`] decided for one row.
#[derive(Debug, Default)]
struct Settled {
    /// Identities first sent by this run.
    new_ids: Vec<IdHash>,
    /// Identities recorded as a baseline and not sent.
    baselined: usize,
}

/// Decide what of a row's fresh value no run has delivered yet ([`CheckResult::new_in_run`]),
/// and record its identities. Inferred and unknown rows send no samples and no increments.
///
/// - A distribution sends the samples whose identity is new; with no identities (or not one per
///   sample) every sample is new to this run (a probe's latency, measured now).
/// - A count whose identities are one per counted event sends the events first seen now as one
///   COUNT increment with the row's `interval`, and nothing when none is new; without identities
///   it is a level only.
/// - An identity is new when neither the row memory nor a pending ledger batch (`pending`) holds
///   it. A row with no identity memory yet (`since` unset: its first run, or a lost, reset or
///   upgraded state store) records what it sees as a baseline and sends none of it: what a
///   memory does not cover is not news, and a week of history is not a spike at deploy time.
fn settle(
    def: &CheckDef,
    emitted: &mut CheckResult,
    delivered: &mut Delivered,
    pending: Option<&HashSet<IdHash>>,
    now: DateTime<Utc>,
) -> Settled {
    emitted.new_in_run = None;
    let ids = std::mem::take(&mut emitted.ids);
    let mut out = Settled::default();
    if emitted.inferred || emitted.status == Status::Unknown {
        // A source that answered with nothing to identify (no samples yet: the row cannot be
        // judged) still starts the row's memory: what it brings later is news, not backlog.
        if !emitted.inferred
            && ids.is_empty()
            && emitted.value.is_some()
            && delivered.since.is_none()
        {
            delivered.since = Some(now);
        }
        return out;
    }
    let stamp = now.timestamp();
    // Which of `ids` are new, recording all of them; duplicates within the run count once.
    let mut record = |delivered: &mut Delivered, ids: &[String]| -> Vec<bool> {
        let baseline = delivered.since.is_none();
        let mut this_run = HashSet::with_capacity(ids.len());
        let new: Vec<bool> = ids
            .iter()
            .map(|id| {
                let h = hash_id(id);
                let new = this_run.insert(h)
                    && !delivered.ids.contains(h)
                    && !pending.is_some_and(|p| p.contains(&h));
                if new {
                    if baseline {
                        out.baselined += 1;
                    } else {
                        out.new_ids.push(h);
                    }
                }
                new && !baseline
            })
            .collect();
        for h in &this_run {
            delivered.ids.see(*h, stamp);
        }
        delivered
            .ids
            .forget_before(stamp - IDENTITY_RETENTION.as_secs() as i64);
        delivered.ids.cap(MAX_DELIVERED_IDS);
        if baseline {
            delivered.since = Some(now);
        }
        new
    };
    match def.encoding {
        Encoding::Distribution => {
            let samples: Vec<f64> = match &emitted.value {
                Some(Value::Samples(s)) => s.clone(),
                Some(v) => v.as_number().into_iter().collect(),
                None => Vec::new(),
            };
            // One identity per sample (none for none: such a run still starts the memory, so
            // the samples a later run brings are not taken for a backlog).
            let samples = if ids.len() == samples.len() {
                let new = record(delivered, &ids);
                samples
                    .into_iter()
                    .zip(new)
                    .filter_map(|(v, new)| new.then_some(v))
                    .collect()
            } else {
                samples
            };
            emitted.new_in_run = Some(NewInRun {
                samples: samples.into_iter().filter(|x| x.is_finite()).collect(),
                increment: None,
            });
        }
        Encoding::Count => {
            let identified = emitted
                .compared
                .is_some_and(|n| n >= 0.0 && n.fract() == 0.0 && n == ids.len() as f64);
            if !identified {
                emitted.new_in_run = Some(NewInRun::default());
                return out;
            }
            let new = record(delivered, &ids).iter().filter(|n| **n).count();
            emitted.new_in_run = Some(NewInRun {
                samples: Vec::new(),
                increment: (new > 0).then_some((new as f64, def.interval)),
            });
        }
        Encoding::Status | Encoding::Gauge => {}
    }
    out
}

/// The result to emit for one row this run.
fn decide(
    def: &CheckDef,
    fresh: Option<&CheckResult>,
    last_known: Option<&CheckResult>,
    last_known_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> CheckResult {
    let limit = def.carry_forward;
    if let Some(r) = fresh
        && r.value.is_some()
    {
        let mut r = r.clone();
        // A clock or a source that says "the future" is not trusted: such a value would pass
        // and then be carried forward for as long as it stays "young".
        if let Some(at) = r.observed_at
            && at > now + MAX_FUTURE
        {
            r.reason = Some(format!(
                "future timestamp: observed at {} is {} ahead of this run (at most {} is accepted)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                format_duration(Duration::from_secs((at - now).num_seconds().max(0) as u64)),
                format_duration(MAX_FUTURE.to_std().unwrap_or_default())
            ));
            r.status = Status::Unknown;
            r.unknown_reason = Some(UnknownReason::FutureTimestamp);
            r.value = None;
            r.compared = None;
            return r;
        }
        if r.status != Status::Unknown
            && let Some(age) = age(r.observed_at, None, now)
            && age > limit
        {
            r.reason = Some(stale_reason(age, limit, None));
            r.status = Status::Unknown;
            r.unknown_reason = Some(UnknownReason::Stale);
            r.value = None;
            r.compared = None;
        }
        return r;
    }
    let why = match fresh {
        Some(r) => r
            .reason
            .clone()
            .unwrap_or_else(|| "no usable observation".into()),
        None => format!(
            "no observation: collector {} was not run in this run",
            def.collector
        ),
    };
    if let Some(last) = last_known {
        let age = age(last.observed_at, last_known_at, now).unwrap_or(Duration::MAX);
        if age <= limit {
            let mut r = last.clone();
            r.row = def.row.clone();
            r.inferred = true;
            r.reason = Some(format!(
                "carried forward: observed {} ago (limit {}); this run: {why}",
                crate::duration::format_age(age),
                format_duration(limit)
            ));
            return r;
        }
        let mut r = def.unknown_result(UnknownReason::Stale, stale_reason(age, limit, Some(&why)));
        r.observed_at = last.observed_at;
        r.tags = last.tags.clone();
        return r;
    }
    match fresh {
        Some(r) => r.clone(),
        None => def.unknown_result(UnknownReason::NoData, why),
    }
}

/// What a stored row shows at `now` (the board, `state show`): what its latest run emitted,
/// turned `unknown` once its observation is past the row's `carry_forward` limit.
pub fn displayed(stored: &StoredRow, carry_forward: Duration, now: DateTime<Utc>) -> CheckResult {
    let mut r = stored.current.clone();
    if r.status == Status::Unknown {
        return r;
    }
    let fallback = if r.inferred {
        stored.last_known_at
    } else {
        Some(stored.updated_at)
    };
    if let Some(age) = age(r.observed_at, fallback, now)
        && age > carry_forward
    {
        r.status = Status::Unknown;
        r.unknown_reason = Some(UnknownReason::Stale);
        r.inferred = false;
        r.value = None;
        r.compared = None;
        r.reason = Some(stale_reason(age, carry_forward, None));
    }
    r
}

/// How old an observation is at `now` (zero for one from the future).
fn age(
    observed_at: Option<DateTime<Utc>>,
    fallback: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let at = observed_at.or(fallback)?;
    Some(
        (now - at)
            .max(TimeDelta::zero())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

fn stale_reason(age: Duration, limit: Duration, now: Option<&str>) -> String {
    let mut s = format!(
        "stale: last observed {} ago, past the carry-forward limit of {}",
        format_duration(Duration::from_secs(age.as_secs())),
        format_duration(limit)
    );
    if let Some(n) = now {
        s.push_str(&format!("; this run: {n}"));
    }
    s
}

fn push_history(history: &mut Vec<HistoryEntry>, entry: HistoryEntry) {
    history.push(entry);
    // Overlapping runs may write out of order; keep the strip in time order.
    history.sort_by_key(|e| e.at);
    if history.len() > HISTORY_LEN {
        history.drain(..history.len() - HISTORY_LEN);
    }
}

/// Which stored rows a run retires: those of a repository its collector no longer covers.
pub type Retired<'a> = dyn Fn(&RowId) -> bool + Send + Sync + 'a;

/// Never retire anything (a job whose collectors make no rows per repository).
pub fn retire_none(_: &RowId) -> bool {
    false
}

/// Forget the rows `retired` names, returning how many: a repository archived, removed or
/// filtered out leaves the matrix instead of going stale for ever.
pub fn retire(memory: &mut RowMemory, retired: &Retired<'_>) -> usize {
    let before = memory.rows.len();
    memory.rows.retain(|r| {
        let gone = retired(&r.row);
        if gone {
            tracing::info!(row = %r.row, "row retired: its repository is no longer covered");
        }
        !gone
    });
    before - memory.rows.len()
}

/// Reconcile a run with the stored memory. With `write`, under the store's lease (so two
/// overlapping runs both land); without (a dry run), on a copy that is not saved.
///
/// If the store cannot be read or written, the error is returned along with a reconciliation
/// against an empty memory, so the run still emits every row (fresh or `unknown`).
pub async fn remember(
    state: &StateStore,
    checks: &[CheckDef],
    fresh: &[(usize, CheckResult)],
    now: DateTime<Utc>,
    write: bool,
    retired: &Retired<'_>,
) -> (Reconciled, Option<StateError>) {
    let none = Pending::new();
    let stored = if write {
        state
            .update_json(ROWS_KEY, |m: &mut RowMemory| {
                retire(m, retired);
                reconcile(m, checks, fresh, now, &none)
            })
            .await
    } else {
        state
            .get_json::<RowMemory>(ROWS_KEY)
            .await
            .map(|m| reconcile(&mut m.unwrap_or_default(), checks, fresh, now, &none))
    };
    match stored {
        Ok(r) => (r, None),
        Err(e) => (
            reconcile(&mut RowMemory::default(), checks, fresh, now, &none),
            Some(e),
        ),
    }
}

/// Read the memory (empty when there is none yet).
pub async fn load(state: &StateStore) -> Result<RowMemory, StateError> {
    let mut memory: RowMemory = state.get_json(ROWS_KEY).await?.unwrap_or_default();
    memory.expand();
    Ok(memory)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checks::{Aggregate, Condition, Encoding, Summary};
    use crate::observation::{Observation, Value};

    /// A daily stable-suite row (`>0.5`) for tests.
    pub(crate) fn def(task: &str, carry_forward_hours: u64) -> CheckDef {
        CheckDef {
            row: RowId {
                source: "stable_suite".into(),
                workflow_category: "training".into(),
                workflow_name: "multigpu_arena".into(),
                task: task.into(),
                check: "reward".into(),
                repo: None,
            },
            collector: "stable_suite".into(),
            signal: "reward".into(),
            matches: BTreeMap::new(),
            aggregate: Aggregate::Latest,
            condition: Condition::parse(">0.5").unwrap(),
            warn: None,
            encoding: Encoding::Gauge,
            metric: "training.reward".into(),
            summary: Summary::P90,
            percentiles: false,
            interval: 600,
            unit: None,
            carry_forward: Duration::from_secs(carry_forward_hours * 3600),
            tags: BTreeMap::new(),
            title: format!("Reward {task}"),
        }
    }

    fn t(hours: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::hours(hours)
    }

    fn observe(d: &CheckDef, value: f64, at: DateTime<Utc>) -> CheckResult {
        d.evaluate(Ok(&[Observation::new("reward", Value::Number(value), at)]))
    }

    /// A daily row observed at hour 0, then runs in which its collector does not run.
    fn run_without_data(hours_later: i64) -> CheckResult {
        let d = def("hearts", 26);
        let mut memory = RowMemory::default();
        reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, observe(&d, 0.8, t(0)))],
            t(0),
            &Pending::new(),
        );
        let out = reconcile(&mut memory, &[d], &[], t(hours_later), &Pending::new());
        out.results[0].1.clone()
    }

    #[test]
    fn daily_row_observed_20h_ago_is_inferred() {
        let r = run_without_data(20);
        assert_eq!(r.status, Status::Pass);
        assert!(r.inferred);
        assert_eq!(r.compared, Some(0.8));
        assert_eq!(r.observed_at, Some(t(0)));
        assert!(r.reason.unwrap().contains("observed 20h ago"));
    }

    #[test]
    fn daily_row_observed_30h_ago_is_unknown() {
        let r = run_without_data(30);
        assert_eq!(r.status, Status::Unknown);
        assert!(!r.inferred);
        assert_eq!(r.value, None);
        assert_eq!(r.unknown_reason, Some(UnknownReason::Stale));
        let reason = r.reason.unwrap();
        assert!(
            reason.starts_with("stale: last observed 30h ago"),
            "{reason}"
        );
    }

    #[test]
    fn failed_collector_is_bridged_and_fresh_stale_data_is_unknown() {
        let d = def("hearts", 26);
        let mut memory = RowMemory::default();
        reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, observe(&d, 0.2, t(0)))],
            t(0),
            &Pending::new(),
        );
        let failed = d.evaluate(Err((
            UnknownReason::CollectorTimeout,
            "timed out after 60s",
        )));
        let out = reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, failed)],
            t(2),
            &Pending::new(),
        );
        let r = &out.results[0].1;
        assert_eq!((r.status, r.inferred), (Status::Fail, true));
        assert!(r.reason.as_ref().unwrap().contains("timed out"));
        // A fresh observation that is itself 27h old is not news.
        let old = observe(&d, 0.9, t(3) - TimeDelta::hours(27));
        let out = reconcile(&mut memory, &[d], &[(0, old)], t(3), &Pending::new());
        assert_eq!(out.results[0].1.status, Status::Unknown);
        assert_eq!(out.results[0].1.unknown_reason, Some(UnknownReason::Stale));
        assert!(
            out.results[0]
                .1
                .reason
                .as_ref()
                .unwrap()
                .starts_with("stale")
        );
    }

    #[test]
    fn status_changes_and_deltas() {
        let d = def("hearts", 26);
        let mut memory = RowMemory::default();
        let first = reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, observe(&d, 0.8, t(0)))],
            t(0),
            &Pending::new(),
        );
        assert!(first.changes.is_empty(), "a first sighting is not a change");
        let second = reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, observe(&d, 0.3, t(1)))],
            t(1),
            &Pending::new(),
        );
        assert_eq!(second.changes.len(), 1);
        let c = &second.changes[0];
        assert_eq!((c.from, c.to), (Status::Pass, Status::Fail));
        assert_eq!(c.value.as_deref(), Some("0.3"));
        assert_eq!(c.condition, ">0.5");
        let row = memory.get(&d.row).unwrap();
        assert_eq!(row.previous_value, Some(0.8));
        assert!((row.delta().unwrap() + 0.5).abs() < 1e-9);
        // Fail carried forward is still fail: no change.
        let third = reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[],
            t(2),
            &Pending::new(),
        );
        assert!(third.changes.is_empty());
        // Past the limit: fail -> unknown is a change.
        let fourth = reconcile(&mut memory, &[d], &[], t(40), &Pending::new());
        assert_eq!(fourth.changes[0].to, Status::Unknown);
        let row = &memory.rows[0];
        let statuses: Vec<(Status, bool)> =
            row.history.iter().map(|h| (h.status, h.inferred)).collect();
        assert_eq!(
            statuses,
            [
                (Status::Pass, false),
                (Status::Fail, false),
                (Status::Fail, true),
                (Status::Unknown, false)
            ]
        );
    }

    #[test]
    fn samples_are_written_once_and_capped() {
        let mut d = def("hearts", 26);
        d.encoding = Encoding::Distribution;
        d.aggregate = Aggregate::Merge;
        let n = MAX_SAMPLES_PER_ROW + 10;
        let samples: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let r = d.evaluate(Ok(&[Observation::new(
            "reward",
            Value::Samples(samples),
            t(0),
        )]));
        let mut memory = RowMemory::default();
        reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, r)],
            t(0),
            &Pending::new(),
        );
        let text = serde_json::to_string(&memory).unwrap();
        // Once on disk, capped: about 100,000 numbers, not twice that.
        let numbers = text.matches(',').count();
        assert!(numbers < MAX_SAMPLES_PER_ROW + 1_000, "{numbers} commas");
        let mut back: RowMemory = serde_json::from_str(&text).unwrap();
        back.expand();
        let Some(Value::Samples(s)) = &back.rows[0].current.value else {
            panic!("current lost its samples");
        };
        assert_eq!(s.len(), MAX_SAMPLES_PER_ROW);
        assert_eq!(s.last(), Some(&((n - 1) as f64)), "the newest are kept");
    }

    #[test]
    fn an_observation_from_the_future_is_refused_and_never_carried() {
        let d = def("hearts", 26);
        let mut memory = RowMemory::default();
        let ahead = observe(&d, 0.9, t(0) + TimeDelta::minutes(11));
        let out = reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, ahead)],
            t(0),
            &Pending::new(),
        );
        let r = &out.results[0].1;
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.unknown_reason, Some(UnknownReason::FutureTimestamp));
        assert!(
            r.reason
                .as_deref()
                .unwrap_or("")
                .starts_with("future timestamp"),
            "{r:?}"
        );
        assert!(memory.rows[0].last_known.is_none(), "not remembered");
        // Within the ten minutes of clock skew Datadog also accepts: fine.
        let skewed = observe(&d, 0.9, t(1) + TimeDelta::minutes(9));
        let out = reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, skewed)],
            t(1),
            &Pending::new(),
        );
        assert_eq!(out.results[0].1.status, Status::Pass);
        // The year 2999 is not carried forward for ever.
        let far = observe(&d, 0.9, t(0) + TimeDelta::days(365 * 900));
        let out = reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, far)],
            t(2),
            &Pending::new(),
        );
        assert_eq!(out.results[0].1.status, Status::Unknown);
    }

    #[test]
    fn an_older_result_written_later_does_not_replace_a_newer_one() {
        let d = def("hearts", 26);
        let mut memory = RowMemory::default();
        reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, observe(&d, 0.9, t(2)))],
            t(2),
            &Pending::new(),
        );
        reconcile(
            &mut memory,
            std::slice::from_ref(&d),
            &[(0, observe(&d, 0.1, t(1)))],
            t(2),
            &Pending::new(),
        );
        let last = memory.rows[0].last_known.as_ref().unwrap();
        assert_eq!(last.compared, Some(0.9));
    }

    #[test]
    fn history_is_bounded_and_displayed_goes_stale() {
        let d = def("hearts", 1);
        let mut memory = RowMemory::default();
        for h in 0..(HISTORY_LEN as i64 + 5) {
            reconcile(
                &mut memory,
                std::slice::from_ref(&d),
                &[(0, observe(&d, 0.9, t(h)))],
                t(h),
                &Pending::new(),
            );
        }
        let row = &memory.rows[0];
        assert_eq!(row.history.len(), HISTORY_LEN);
        let last = t(HISTORY_LEN as i64 + 4);
        assert_eq!(row.history.last().unwrap().at, last);
        assert_eq!(
            displayed(row, d.carry_forward, last + TimeDelta::minutes(30)).status,
            Status::Pass
        );
        let later = displayed(row, d.carry_forward, last + TimeDelta::hours(2));
        assert_eq!(later.status, Status::Unknown);
        assert_eq!(later.unknown_reason, Some(UnknownReason::Stale));
        assert!(later.reason.unwrap().starts_with("stale"));
    }
}
