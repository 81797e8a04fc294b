//! Checks: the rows of the health matrix, and how a row turns observations into a status.
//!
//! A check is declared in config: which collector and signal it reads (and which tags the
//! observation must carry), its identifying tags, its condition (`<5m`), an optional looser
//! `warn` condition and how its value is encoded. Evaluating it gives `pass`, `warn`, `fail` or
//! `unknown`, never a guess: a row with no data is `unknown`, not a placeholder zero.

pub mod condition;
pub mod row;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::observation::{Observation, UnknownReason, Value};
pub use condition::Condition;
pub use row::{RowId, Status, pipeline_for_source};

/// The `unavailable` signal (defined with the observation it names): evaluation falls back to it
/// only when no observation of the row's own signal matched.
use crate::observation::UNAVAILABLE_SIGNAL;

/// How a row's value is sent to Datadog (the seed's encoding rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// A health check: GAUGE 1 = pass, 0 = fail.
    Status,
    /// A number: GAUGE of the value (with its `unit` tag).
    Gauge,
    /// A count: COUNT over the row's `interval`.
    Count,
    /// Durations and latencies: DISTRIBUTION of every sample, plus optional p50/p90 gauges.
    Distribution,
}

/// Which single number a row compares when its observation is a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    P50,
    P90,
    P95,
    P99,
    Max,
    Min,
    Mean,
    Count,
    Sum,
}

impl Summary {
    pub fn of(self, samples: &[f64]) -> Option<f64> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return match self {
                Summary::Count | Summary::Sum => Some(0.0),
                _ => None,
            };
        }
        v.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            // Nearest-rank percentile: a value that was actually observed.
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        Some(match self {
            Summary::P50 => pct(50.0),
            Summary::P90 => pct(90.0),
            Summary::P95 => pct(95.0),
            Summary::P99 => pct(99.0),
            Summary::Max => v[v.len() - 1],
            Summary::Min => v[0],
            Summary::Mean => v.iter().sum::<f64>() / v.len() as f64,
            Summary::Count => v.len() as f64,
            Summary::Sum => v.iter().sum(),
        })
    }
}

/// How to combine several matching observations into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The most recent one (ties: the last listed).
    #[default]
    Latest,
    Sum,
    Max,
    Min,
    /// How many observations matched.
    Count,
    /// Every sample of every match, as one set of samples.
    Merge,
}

/// A validated row of the matrix.
#[derive(Debug, Clone)]
pub struct CheckDef {
    pub row: RowId,
    /// Collector instance name.
    pub collector: String,
    pub signal: String,
    /// Tags an observation must carry (all of them) to feed this row.
    pub matches: BTreeMap<String, String>,
    pub aggregate: Aggregate,
    pub condition: Condition,
    pub warn: Option<Condition>,
    pub encoding: Encoding,
    /// `<domain>.<signal>` part of the metric name, e.g. `ci.workflow.success`.
    pub metric: String,
    pub summary: Summary,
    /// Emit `<metric>.p50` and `<metric>.p90` gauges next to a distribution.
    pub percentiles: bool,
    /// COUNT interval in seconds.
    pub interval: u64,
    pub unit: Option<String>,
    /// How long the last observation may be carried forward as "inferred".
    pub carry_forward: Duration,
    /// Extra tags for this row's metrics.
    pub tags: BTreeMap<String, String>,
    /// Human description for the terminal and board.
    pub title: String,
}

/// The result of evaluating one row in one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    pub row: RowId,
    pub status: Status,
    /// The observed value (samples kept whole for the distribution).
    pub value: Option<Value>,
    /// The number the condition was compared with, when there was one.
    pub compared: Option<f64>,
    pub unit: Option<String>,
    pub observed_at: Option<DateTime<Utc>>,
    /// Why the status is `unknown`, or other context, in words (terminal, board).
    pub reason: Option<String>,
    /// Why the status is `unknown`, as the schema tags it (`None` for a row with a status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<UnknownReason>,
    /// Optional tags taken from the observation (`repo`, `branch`, …).
    pub tags: BTreeMap<String, String>,
    /// Carried forward from an earlier run ("light green").
    #[serde(default)]
    pub inferred: bool,
    /// Which collector fed it.
    pub collector: String,
    /// Identities of the samples (parallel to them) or of the counted events, from the
    /// observations ([`Observation::ids`]). Used by the row memory to tell what is new; not kept
    /// in the state store.
    #[serde(skip)]
    pub ids: Vec<String>,
    /// What this run sends for the first time, decided by the row memory
    /// ([`crate::state::rows`]): `None` for an inferred or unknown row, which sends no samples
    /// and no increments. Not kept in the state store.
    #[serde(skip)]
    pub new_in_run: Option<NewInRun>,
}

impl CheckResult {
    /// A short human rendering of the row's value, as the terminal matrix, the board and the
    /// row memory show it: `4m12s` for durations, `3` for counts, `-` for none.
    pub fn display_value(&self) -> String {
        let seconds = self
            .unit
            .as_deref()
            .is_some_and(|u| u == "second" || u == "seconds");
        let number = |n: f64| -> String {
            // Past ~30,000 years a duration reads better as a number (and would overflow one).
            if seconds && n.is_finite() && (0.0..1e12).contains(&n) {
                // Whole seconds past a minute: "4m39s" reads better than "4m38s700ms".
                let n = if n >= 60.0 {
                    n.round()
                } else {
                    (n * 10.0).round() / 10.0
                };
                return crate::duration::format_duration(std::time::Duration::from_secs_f64(n));
            }
            crate::observation::human_number(n)
        };
        match (&self.value, self.compared) {
            (Some(Value::Samples(s)), Some(c)) => format!("{} (n={})", number(c), s.len()),
            (_, Some(c)) if !matches!(self.value, Some(Value::Text(_))) => number(c),
            (Some(Value::Text(t)), _) => t.clone(),
            (Some(v), _) => v.to_string(),
            (None, _) => "-".into(),
        }
    }
}

/// The part of a fresh row's value that no earlier run has delivered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewInRun {
    /// Distribution samples to send: those whose identity was not delivered before (every
    /// sample, when the source gives no identities).
    pub samples: Vec<f64>,
    /// For a count with identities: events first seen in this run (the COUNT increment) and
    /// the seconds since the row's previous delivered increment (its `interval`).
    pub increment: Option<(f64, u64)>,
}

/// A row whose status differs from the one the previous run emitted (for Datadog events).
///
/// Computed by the row memory ([`crate::state::rows`]) under the state lease, so of two
/// overlapping runs only one reports a given transition. A row seen for the first time is not a
/// change, and a row going from `pass` to `pass (inferred)` is not either: the status is the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub row: RowId,
    pub title: String,
    pub from: Status,
    pub to: Status,
    /// The new value as the terminal shows it, when there is one.
    pub value: Option<String>,
    /// The row's condition in human form (`<5m`).
    pub condition: String,
}

impl CheckDef {
    /// This check's row for one repository of its collector: it reads only that repository's
    /// observations (made per run by the run's `per_repo` step).
    pub fn for_repo(&self, repo: &str) -> CheckDef {
        let mut d = self.clone();
        d.row = self.row.for_repo(repo);
        d.matches.insert("repo".into(), repo.into());
        d
    }

    /// An `unknown` result for this row, with no value (missing data is never a zero): `why`
    /// for the schema, `reason` in words.
    pub fn unknown_result(&self, why: UnknownReason, reason: impl Into<String>) -> CheckResult {
        CheckResult {
            row: self.row.clone(),
            status: Status::Unknown,
            value: None,
            compared: None,
            unit: self.unit.clone(),
            observed_at: None,
            reason: Some(reason.into()),
            unknown_reason: Some(why),
            // A row of one repository says which even when it has no observation.
            tags: self
                .row
                .repo
                .iter()
                .map(|r| ("repo".to_string(), r.clone()))
                .collect(),
            inferred: false,
            collector: self.collector.clone(),
            ids: Vec::new(),
            new_in_run: None,
        }
    }

    /// Evaluate this row against its collector's output (`Err` = the collector failed, why and
    /// in which words).
    pub fn evaluate(
        &self,
        observations: Result<&[Observation], (UnknownReason, &str)>,
    ) -> CheckResult {
        let mut result = CheckResult {
            reason: None,
            ..self.unknown_result(UnknownReason::NoData, "")
        };
        let observations = match observations {
            Ok(o) => o,
            Err((why, reason)) => {
                result.reason = Some(format!("collector {} failed: {reason}", self.collector));
                result.unknown_reason = Some(why);
                return result;
            }
        };
        let matching: Vec<&Observation> = observations
            .iter()
            .filter(|o| {
                o.signal == self.signal
                    && self
                        .matches
                        .iter()
                        .all(|(k, v)| o.tags.get(k).is_some_and(|ov| ov == v))
            })
            .collect();
        let Some(latest) = matching.iter().max_by_key(|o| o.timestamp) else {
            let explained = observations.iter().find_map(|o| match &o.value {
                Value::Text(text)
                    if o.signal == UNAVAILABLE_SIGNAL
                        && self
                            .matches
                            .iter()
                            .all(|(k, v)| o.tags.get(k).is_none_or(|ov| ov == v)) =>
                {
                    // A source that says "unavailable" without saying why in type (a file or a
                    // command's output) gets the catch-all.
                    Some((
                        o.unknown_reason.unwrap_or(UnknownReason::InvalidValue),
                        text.clone(),
                    ))
                }
                _ => None,
            });
            if let Some((why, text)) = explained {
                result.reason = Some(text);
                result.unknown_reason = Some(why);
                return result;
            }
            result.reason = Some(format!(
                "no observation of signal {:?}{} from collector {}",
                self.signal,
                describe_matches(&self.matches),
                self.collector
            ));
            return result;
        };
        result.observed_at = Some(latest.timestamp);
        if result.unit.is_none() {
            result.unit = latest.unit.clone();
        }
        for key in crate::observation::OPTIONAL_TAGS {
            if let Some(v) = latest.tags.get(*key) {
                result.tags.insert((*key).to_string(), v.clone());
            }
        }
        let value = match self.combine(&matching) {
            Ok(v) => v,
            Err(reason) => {
                result.reason = Some(reason);
                result.unknown_reason = Some(UnknownReason::InvalidValue);
                return result;
            }
        };
        result.ids = self.identities(&matching);
        let compared_value = match &value {
            Value::Samples(s) => match self.summary.of(s) {
                Some(n) => Value::Number(n),
                None => {
                    result.value = Some(value);
                    result.reason = Some("no samples to summarise".into());
                    result.unknown_reason = Some(UnknownReason::InvalidValue);
                    return result;
                }
            },
            other => other.clone(),
        };
        result.compared = compared_value.as_number();
        result.value = Some(value);
        result.unknown_reason = None;
        result.status = match self.condition.evaluate(&compared_value) {
            Ok(true) => Status::Pass,
            Ok(false) => match &self.warn {
                Some(w) if matches!(w.evaluate(&compared_value), Ok(true)) => Status::Warn,
                _ => Status::Fail,
            },
            Err(e) => {
                result.reason = Some(e.to_string());
                result.unknown_reason = Some(match e {
                    condition::EvalError::NotANumber => UnknownReason::NotANumber,
                    condition::EvalError::NeedsSummary
                    | condition::EvalError::TypeMismatch { .. } => UnknownReason::InvalidValue,
                });
                Status::Unknown
            }
        };
        result
    }

    /// The identities behind the combined value: those of the latest observation, or of every
    /// merged or summed one, in order. Whether they really identify the value (one per sample,
    /// one per counted event) is for the row memory to judge, by the row's encoding.
    fn identities(&self, matching: &[&Observation]) -> Vec<String> {
        match self.aggregate {
            Aggregate::Latest => matching
                .iter()
                .max_by_key(|o| o.timestamp)
                .map(|o| o.ids.clone())
                .unwrap_or_default(),
            Aggregate::Merge | Aggregate::Sum => matching
                .iter()
                .flat_map(|o| o.ids.iter().cloned())
                .collect(),
            Aggregate::Max | Aggregate::Min | Aggregate::Count => Vec::new(),
        }
    }

    fn combine(&self, matching: &[&Observation]) -> Result<Value, String> {
        let numbers = || -> Result<Vec<f64>, String> {
            matching
                .iter()
                .map(|o| {
                    o.value.as_number().ok_or_else(|| {
                        format!(
                            "aggregate {:?} needs numbers, signal {:?} has {}",
                            self.aggregate, self.signal, o.value
                        )
                    })
                })
                .collect()
        };
        Ok(match self.aggregate {
            Aggregate::Latest => {
                // max_by_key keeps the last of equal keys, so "latest" is stable for ties.
                matching
                    .iter()
                    .max_by_key(|o| o.timestamp)
                    .map(|o| o.value.clone())
                    .ok_or("no observation")?
            }
            Aggregate::Sum => Value::Number(numbers()?.iter().sum()),
            Aggregate::Max => Value::Number(numbers()?.into_iter().fold(f64::NAN, f64::max)),
            Aggregate::Min => Value::Number(numbers()?.into_iter().fold(f64::NAN, f64::min)),
            Aggregate::Count => Value::Number(matching.len() as f64),
            Aggregate::Merge => {
                let mut all = Vec::new();
                for o in matching {
                    match &o.value {
                        Value::Samples(s) => all.extend_from_slice(s),
                        v => all.push(v.as_number().ok_or_else(|| {
                            format!("aggregate merge needs numbers or samples, got {v}")
                        })?),
                    }
                }
                Value::Samples(all)
            }
        })
    }
}

fn describe_matches(m: &BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" with {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(condition: &str) -> CheckDef {
        CheckDef {
            row: RowId {
                source: "cron".into(),
                workflow_category: "ci".into(),
                workflow_name: "ci_smoothness".into(),
                task: "duration".into(),
                check: "p90".into(),
                repo: None,
            },
            collector: "c".into(),
            signal: "s".into(),
            matches: BTreeMap::new(),
            aggregate: Aggregate::Latest,
            condition: Condition::parse(condition).unwrap(),
            warn: None,
            encoding: Encoding::Gauge,
            metric: "ci.x".into(),
            summary: Summary::P90,
            percentiles: false,
            interval: 600,
            unit: None,
            carry_forward: Duration::from_secs(1800),
            tags: BTreeMap::new(),
            title: String::new(),
        }
    }

    fn obs(v: Value) -> Observation {
        Observation::new("s", v, Utc::now())
    }

    #[test]
    fn huge_values_display_in_scientific_notation_and_never_panic() {
        let d = def(">0");
        let r = d.evaluate(Ok(&[obs(Value::Number(1e308))]));
        assert_eq!(r.display_value(), "1e308");
        let mut seconds = r.clone();
        seconds.unit = Some("second".into());
        // As a duration this would overflow; it prints as a number instead.
        assert_eq!(seconds.display_value(), "1e308");
        seconds.compared = Some(90.0);
        assert_eq!(seconds.display_value(), "1m30s");
    }

    #[test]
    fn exact_comparisons() {
        let d = def("<1");
        assert_eq!(
            d.evaluate(Ok(&[obs(Value::Number(1.0))])).status,
            Status::Fail
        );
        assert_eq!(
            d.evaluate(Ok(&[obs(Value::Number(0.99))])).status,
            Status::Pass
        );
    }

    #[test]
    fn unknown_for_missing_nan_and_failed_collector() {
        let d = def("<1");
        let r = d.evaluate(Ok(&[]));
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.unknown_reason, Some(UnknownReason::NoData));
        assert!(r.reason.unwrap().contains("no observation"));
        let r = d.evaluate(Ok(&[obs(Value::Number(f64::NAN))]));
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.unknown_reason, Some(UnknownReason::NotANumber));
        let r = d.evaluate(Err((UnknownReason::CollectorTimeout, "timed out after 5s")));
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.unknown_reason, Some(UnknownReason::CollectorTimeout));
        assert!(r.reason.unwrap().contains("timed out"));
    }

    #[test]
    fn warn_sits_between_pass_and_fail() {
        let mut d = def("<5m");
        d.warn = Some(Condition::parse("<8m").unwrap());
        let secs = |s: f64| d.evaluate(Ok(&[obs(Value::Samples(vec![s; 10]))])).status;
        assert_eq!(secs(200.0), Status::Pass);
        assert_eq!(secs(400.0), Status::Warn);
        assert_eq!(secs(600.0), Status::Fail);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(Summary::P50.of(&v), Some(5.0));
        assert_eq!(Summary::P90.of(&v), Some(9.0));
        assert_eq!(Summary::Max.of(&v), Some(10.0));
        assert_eq!(Summary::P90.of(&[]), None);
        assert_eq!(Summary::Count.of(&[]), Some(0.0));
    }

    #[test]
    fn matches_select_by_tag() {
        let mut d = def("==success");
        d.matches.insert("workflow".into(), "tests".into());
        let a = obs(Value::Text("failure".into())).with_tag("workflow", "bench");
        let b = obs(Value::Text("success".into())).with_tag("workflow", "tests");
        assert_eq!(d.evaluate(Ok(&[a, b])).status, Status::Pass);
    }
}
