//! What a collector hands back: one measured signal at one moment.
//!
//! Collectors know their source and nothing else: they never decide pass/fail and never build
//! Datadog payloads. An [`Observation`] is the whole contract between a collector and the checks
//! that read it, so it stays small and source-neutral.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

/// Tags a row or an observation may add beyond the required ones. Anything else from an
/// observation stays out of the metric: every distinct tag set is a billed custom metric.
pub const OPTIONAL_TAGS: &[&str] = &[
    "repo",
    "branch",
    "commit_sha",
    "runner",
    "region",
    "zone",
    "unit",
    "label",
    "environment",
    "inferred",
    "collector",
    "reason",
    "error_type",
];

use serde::{Deserialize, Serialize};

/// The value of a signal.
///
/// `Samples` carries many measurements of one signal (workflow durations, probe latencies): the
/// checks summarise it (p50/p90) and the schema turns it into a DISTRIBUTION.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Text(String),
    Samples(Vec<f64>),
}

impl Value {
    /// The single number this value stands for, when it has one. Samples have none: a check
    /// must say which summary (p50, p90, …) it compares.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Text(_) | Value::Samples(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => f.write_str(&human_number(*n)),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(s) => f.write_str(s),
            Value::Samples(s) => write!(f, "{} samples", s.len()),
        }
    }
}

/// A number as a person reads it in the matrix, the summary and the board: whole numbers as
/// they are (`3`, `-12`), others to three decimals (`0.875`), and very large or very small ones
/// in scientific notation (`1e308`, `2.5e-7`), never as hundreds of digits.
pub fn human_number(n: f64) -> String {
    if !n.is_finite() {
        return format!("{n}");
    }
    let magnitude = n.abs();
    if magnitude >= 1e15 || (magnitude > 0.0 && magnitude < 1e-3) {
        let text = format!("{n:.3e}");
        return match text.split_once('e') {
            Some((mantissa, exp)) if mantissa.contains('.') => format!(
                "{}e{exp}",
                mantissa.trim_end_matches('0').trim_end_matches('.')
            ),
            _ => text,
        };
    }
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{n:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// The longest identity ([`Observation::ids`]) an observation may carry, in bytes: an id names
/// a sample or an event (a request id, a sha), and every id is kept in the row memory.
pub const MAX_ID_BYTES: usize = 256;

/// Check the identities an outside source (a `file` or an `exec` observation) gives with a
/// value: one per sample of [`Value::Samples`], for a number one per counted event (or one, for
/// a single sample), at most one for a flag or text; each at most [`MAX_ID_BYTES`] bytes and
/// none repeated. The error says which rule was broken, for a message naming the observation.
pub fn check_ids(value: &Value, ids: &[String]) -> Result<(), String> {
    if ids.is_empty() {
        return Ok(());
    }
    let fits = match value {
        Value::Samples(s) => ids.len() == s.len(),
        Value::Number(n) => ids.len() == 1 || *n == ids.len() as f64,
        Value::Bool(_) | Value::Text(_) => ids.len() == 1,
    };
    if !fits {
        let expected = match value {
            Value::Samples(s) => format!("one per sample ({})", s.len()),
            Value::Number(n) => format!("one per counted event ({}) or one", human_number(*n)),
            Value::Bool(_) | Value::Text(_) => "at most one".to_string(),
        };
        return Err(format!("{} ids, expected {expected}", ids.len()));
    }
    if let Some((i, id)) = ids
        .iter()
        .enumerate()
        .find(|(_, id)| id.len() > MAX_ID_BYTES)
    {
        return Err(format!(
            "ids[{i}] is {} bytes, more than the {MAX_ID_BYTES} an id may have",
            id.len()
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
        let shown: String = dup.chars().take(64).collect();
        return Err(format!(
            "id {shown:?} appears more than once; each sample or event has its own id"
        ));
    }
    Ok(())
}

/// Signal of an observation that explains why rows have no data ([`Observation::unavailable`]):
/// its value is the reason (text), its tags say which rows it covers (a row whose `match` it
/// satisfies).
pub const UNAVAILABLE_SIGNAL: &str = "unavailable";

/// Why a row has no status: the closed set of causes an `unknown` row can have.
///
/// Whoever makes a row `unknown` says why with one of these (the run for a collector that timed
/// out, panicked or failed; a collector for a workflow that does not exist; the checks for a
/// value they cannot judge; the row memory for stale or future data), next to a human `reason`
/// text for the terminal and the board. The schema sends [`UnknownReason::tag`] as the
/// `reason` tag of `check.unknown`: a short, bounded value (free text would be a new custom
/// metric per message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownReason {
    /// No observation fed the row (or its collector did not run).
    NoData,
    /// The collector ran past its timeout (the run's, or its own, e.g. an exec probe's).
    CollectorTimeout,
    /// The collector returned an error, was cancelled or was interrupted by a signal.
    CollectorFailed,
    /// The collector's task panicked.
    CollectorPanic,
    /// The last observation is older than the row's carry-forward limit.
    Stale,
    /// The value is NaN or infinite.
    NotANumber,
    /// The value cannot be judged by the row's condition (wrong type, no samples, …).
    InvalidValue,
    /// A workflow the collector lists does not exist in the repository.
    WorkflowNotFound,
    /// The source produced more output than the collector accepts.
    OutputTooLarge,
    /// The observation claims a time too far in the future to trust.
    FutureTimestamp,
    /// The repository's first collection did not fit in the run's GitHub request budget: it
    /// goes on next run, and until it is whole the row shows no partial value.
    Backfilling,
}

impl UnknownReason {
    /// Every reason, in the order of the enum (the docs' `reason` list is checked against it).
    pub const ALL: [UnknownReason; 11] = [
        UnknownReason::NoData,
        UnknownReason::CollectorTimeout,
        UnknownReason::CollectorFailed,
        UnknownReason::CollectorPanic,
        UnknownReason::Stale,
        UnknownReason::NotANumber,
        UnknownReason::InvalidValue,
        UnknownReason::WorkflowNotFound,
        UnknownReason::OutputTooLarge,
        UnknownReason::FutureTimestamp,
        UnknownReason::Backfilling,
    ];

    /// The value of the `reason` tag on the wire (stable: dashboards and monitors filter on it).
    pub fn tag(self) -> &'static str {
        match self {
            UnknownReason::NoData => "no_data",
            UnknownReason::CollectorTimeout => "collector_timeout",
            UnknownReason::CollectorFailed => "collector_failed",
            UnknownReason::CollectorPanic => "collector_panic",
            UnknownReason::Stale => "stale",
            UnknownReason::NotANumber => "not_a_number",
            UnknownReason::InvalidValue => "invalid_value",
            UnknownReason::WorkflowNotFound => "workflow_not_found",
            UnknownReason::OutputTooLarge => "output_too_large",
            UnknownReason::FutureTimestamp => "future_timestamp",
            UnknownReason::Backfilling => "backfilling",
        }
    }

    /// Where a variant sits in [`ALL`](Self::ALL): a new variant does not compile until it is
    /// given a place there (and so in the docs, which a test checks against `ALL`).
    pub fn position(self) -> usize {
        match self {
            UnknownReason::NoData => 0,
            UnknownReason::CollectorTimeout => 1,
            UnknownReason::CollectorFailed => 2,
            UnknownReason::CollectorPanic => 3,
            UnknownReason::Stale => 4,
            UnknownReason::NotANumber => 5,
            UnknownReason::InvalidValue => 6,
            UnknownReason::WorkflowNotFound => 7,
            UnknownReason::OutputTooLarge => 8,
            UnknownReason::FutureTimestamp => 9,
            UnknownReason::Backfilling => 10,
        }
    }
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// One measured signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The collector-defined name of the signal, e.g. `workflow.conclusion`; checks select on it.
    pub signal: String,
    pub value: Value,
    /// Unit of a numeric value as Datadog names units (`second`, `steps_per_sec`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// When the signal was true of the world (not when we looked).
    pub timestamp: DateTime<Utc>,
    /// Qualifiers (`workflow`, `repo`, `label`, …); checks select on them and the optional ones
    /// (`repo`, `branch`, `runner`, …) become metric tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Identities of what the value is made of: one per sample of [`Value::Samples`] (run id and
    /// attempt, job id, PR number, eval request id, artifact id), or one per event counted by a
    /// number (a commit sha, a flaky run's id). The pipeline sends each distribution sample once
    /// and each counted event once as a COUNT increment, over the life of the state store
    /// (docs/delivery-over-time.md). Empty when the source has none: then every sample of a run
    /// is new to that run, and a count is sent as a level only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// For an observation of the `unavailable` signal ([`UNAVAILABLE_SIGNAL`]):
    /// why the rows it stands for have no data. Its text value is the human reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<UnknownReason>,
}

impl Observation {
    pub fn new(signal: impl Into<String>, value: Value, timestamp: DateTime<Utc>) -> Self {
        Observation {
            signal: signal.into(),
            value,
            unit: None,
            timestamp,
            tags: BTreeMap::new(),
            ids: Vec::new(),
            unknown_reason: None,
        }
    }

    /// An observation of the `unavailable` signal: the rows it stands for (by its tags) are
    /// `unknown` for `reason`, explained by `why`.
    pub fn unavailable(reason: UnknownReason, why: String, timestamp: DateTime<Utc>) -> Self {
        Observation {
            unknown_reason: Some(reason),
            ..Observation::new(UNAVAILABLE_SIGNAL, Value::Text(why), timestamp)
        }
    }

    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Identities of the samples or counted events (see [`Observation::ids`]).
    pub fn with_ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ids = ids.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }
}

/// One self-metric a collector kind may report, as its kind declares it
/// (`collectors::CollectorKind::self_metrics`): its path under the prefix, the identifying tags
/// that differ from the defaults, and the chart it joins on the dashboard. The catalog and the
/// dashboard read these declarations (and name no collector); the collector reports values of
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfMetricDecl {
    /// Path under the prefix, `<domain>.<name>`: `github.requests`.
    pub path: &'static str,
    /// The `source` tag, when it is not the run's: a stable-suite import's counts are
    /// `source:stable_suite` whichever job ran it.
    pub source: Option<&'static str>,
    /// The `task` tag, when it is not the path's first segment.
    pub task: Option<&'static str>,
    /// Reported only when the source tells (GitHub's rate-limit headers): a dashboard or a
    /// check must not expect a point every run.
    pub sometimes: bool,
    /// The dashboard chart it is drawn on; `None`: a chart of its own family (`<domain>`),
    /// summed per collector.
    pub chart: Option<SelfMetricChart>,
}

/// How the dashboard draws declared self-metrics: every declaration naming the same `title`
/// is one line of that chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfMetricChart {
    pub title: &'static str,
    /// How the collectors' series are combined: `sum` for costs and counts, `min` for a level
    /// where the lowest one matters (a quota left).
    pub aggregation: &'static str,
    /// One line per collector, or one line for them all.
    pub per_collector: bool,
}

impl SelfMetricDecl {
    /// A self-metric at `path`, tagged with the run's source and `task:<first segment>`.
    pub const fn new(path: &'static str) -> SelfMetricDecl {
        SelfMetricDecl {
            path,
            source: None,
            task: None,
            sometimes: false,
            chart: None,
        }
    }

    pub const fn source(self, source: &'static str) -> SelfMetricDecl {
        SelfMetricDecl {
            source: Some(source),
            ..self
        }
    }

    pub const fn task(self, task: &'static str) -> SelfMetricDecl {
        SelfMetricDecl {
            task: Some(task),
            ..self
        }
    }

    pub const fn sometimes(self) -> SelfMetricDecl {
        SelfMetricDecl {
            sometimes: true,
            ..self
        }
    }

    /// Drawn on the chart `title`, summed over every collector (a cost, a count).
    pub const fn chart(self, title: &'static str) -> SelfMetricDecl {
        self.drawn(title, "sum", false)
    }

    /// Drawn on the chart `title`, summed per collector.
    pub const fn chart_per_collector(self, title: &'static str) -> SelfMetricDecl {
        self.drawn(title, "sum", true)
    }

    /// Drawn on the chart `title`, the lowest per collector (a quota left).
    pub const fn chart_lowest(self, title: &'static str) -> SelfMetricDecl {
        self.drawn(title, "min", true)
    }

    const fn drawn(
        self,
        title: &'static str,
        aggregation: &'static str,
        per_collector: bool,
    ) -> SelfMetricDecl {
        SelfMetricDecl {
            chart: Some(SelfMetricChart {
                title,
                aggregation,
                per_collector,
            }),
            ..self
        }
    }

    /// This metric with a value, status `pass`.
    pub fn value(&self, value: f64) -> SelfMetric {
        SelfMetric {
            path: self.path.to_string(),
            value,
            failing: false,
            source: self.source.map(str::to_string),
            task: self.task.map(str::to_string),
        }
    }
}

/// One self-metric a collector reports about its own work (`github.requests` = 42).
#[derive(Debug, Clone, PartialEq)]
pub struct SelfMetric {
    /// Path under the prefix, `<domain>.<name>`: `github.requests`.
    pub path: String,
    pub value: f64,
    /// Sent with `status:fail` instead of `pass` (a stable-suite import that met malformed
    /// artifacts).
    pub failing: bool,
    /// The `source` tag, when it is not the run's (see [`SelfMetricDecl::source`]).
    pub source: Option<String>,
    /// The `task` tag, when it is not the path's first segment.
    pub task: Option<String>,
}

impl SelfMetric {
    /// Report it as `fail` when `failing`.
    pub fn failing(self, failing: bool) -> SelfMetric {
        SelfMetric { failing, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::{UnknownReason, Value, check_ids, human_number};

    #[test]
    fn huge_and_tiny_numbers_print_in_scientific_notation() {
        assert_eq!(human_number(1e308), "1e308");
        assert_eq!(human_number(-1.2345e20), "-1.234e20");
        assert_eq!(human_number(2.5e-7), "2.5e-7");
        assert_eq!(human_number(3.0), "3");
        assert_eq!(human_number(0.875), "0.875");
        assert_eq!(human_number(0.0), "0");
        assert!(human_number(f64::MAX).len() < 12);
        assert_eq!(Value::Number(1e308).to_string(), "1e308");
    }

    #[test]
    fn identities_must_match_the_values_fit_and_be_distinct() {
        let ids = |n: usize| (0..n).map(|i| format!("id-{i}")).collect::<Vec<_>>();
        let samples = Value::Samples(vec![1.0, 2.0, 3.0]);
        assert!(check_ids(&samples, &ids(3)).is_ok());
        assert!(check_ids(&samples, &[]).is_ok());
        let err = check_ids(&samples, &ids(2)).unwrap_err();
        assert!(
            err.contains("2 ids") && err.contains("one per sample (3)"),
            "{err}"
        );
        assert!(check_ids(&Value::Number(4.0), &ids(4)).is_ok());
        assert!(check_ids(&Value::Number(4.0), &ids(1)).is_ok());
        assert!(check_ids(&Value::Number(4.0), &ids(3)).is_err());
        assert!(check_ids(&Value::Text("x".into()), &ids(2)).is_err());
        let long = vec!["x".repeat(257), "y".into(), "z".into()];
        let err = check_ids(&samples, &long).unwrap_err();
        assert!(err.contains("ids[0]") && err.contains("256"), "{err}");
        let ok = vec!["x".repeat(256), "y".into(), "z".into()];
        assert!(check_ids(&samples, &ok).is_ok());
        let dup = vec!["a".to_string(), "b".into(), "a".into()];
        let err = check_ids(&samples, &dup).unwrap_err();
        assert!(
            err.contains("\"a\"") && err.contains("more than once"),
            "{err}"
        );
    }

    #[test]
    fn every_unknown_reason_is_in_all_at_its_position() {
        for (i, r) in UnknownReason::ALL.iter().enumerate() {
            assert_eq!(r.position(), i, "{r:?}");
        }
        let tags: std::collections::BTreeSet<&str> =
            UnknownReason::ALL.iter().map(|r| r.tag()).collect();
        assert_eq!(tags.len(), UnknownReason::ALL.len(), "tags are distinct");
    }

    #[test]
    fn unknown_reasons_keep_their_wire_tags() {
        for (reason, tag) in [
            (UnknownReason::NoData, "no_data"),
            (UnknownReason::CollectorTimeout, "collector_timeout"),
            (UnknownReason::CollectorFailed, "collector_failed"),
            (UnknownReason::CollectorPanic, "collector_panic"),
            (UnknownReason::Stale, "stale"),
            (UnknownReason::NotANumber, "not_a_number"),
            (UnknownReason::InvalidValue, "invalid_value"),
            (UnknownReason::WorkflowNotFound, "workflow_not_found"),
            (UnknownReason::OutputTooLarge, "output_too_large"),
            (UnknownReason::FutureTimestamp, "future_timestamp"),
        ] {
            assert_eq!(reason.tag(), tag);
            // Stored results name it the same way.
            assert_eq!(
                serde_json::to_value(reason).ok(),
                Some(serde_json::Value::String(tag.into()))
            );
        }
    }
}
