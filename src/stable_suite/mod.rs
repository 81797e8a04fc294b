//! Stable-suite artifacts, schema v1: the model, its validation, and its translation into
//! observations.
//!
//! A stable-suite runner writes one artifact per suite run (JSON, or Parquet with the same
//! fields) to S3 or a directory; `infra-health import-stable` and the `stable_suite` collector
//! read them back. Producers (`infra-health emit-stable`, [`write_json`], [`parquet::write`]) and
//! the importer share this one model, so an artifact that one side writes the other can read.
//! The format is documented in `docs/stable-suite-artifact.md` with a JSON Schema next to it.
//!
//! Every parse error names the file and the field (`metrics[2].value`), so a producer can fix
//! its output; the importer counts and skips a bad artifact and keeps the rest.

#[cfg(test)]
mod fuzz;
pub mod json;
pub mod parquet;
pub mod parquet_limits;
pub mod source;
pub mod write;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::Condition;
use crate::observation::{Observation, Value};

/// The `schema_version` this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Signal of the derived "did the run succeed" observation: 1 when `exit_status` is `success`.
pub const SIGNAL_RUN_SUCCESS: &str = "run.success";
/// Signal of the derived wall time of the run, `finished_at - started_at`, in seconds.
pub const SIGNAL_RUN_DURATION: &str = "run.duration";
/// The scalar fields of a run, in schema order: the JSON form's top-level keys before `metrics`
/// and `acceptance`, and the columns every Parquet row repeats.
pub const RUN_FIELDS: &[&str] = &[
    "schema_version",
    "suite",
    "job",
    "recipe",
    "run_id",
    "runner",
    "started_at",
    "finished_at",
    "exit_status",
    "exit_code",
];
/// Observation tag carrying an artifact's own acceptance condition for that signal.
pub const TAG_ACCEPTANCE: &str = "acceptance";

/// How a suite run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    Success,
    Failure,
    Timeout,
    Cancelled,
}

impl ExitStatus {
    pub const ALL: [ExitStatus; 4] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Timeout,
        ExitStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "failure",
            ExitStatus::Timeout => "timeout",
            ExitStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ExitStatus> {
        ExitStatus::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// [`ExitStatus::parse`] with a message listing the valid values.
    pub fn parse_explained(s: &str) -> Result<ExitStatus, String> {
        ExitStatus::parse(s).ok_or_else(|| {
            format!(
                "{s:?} is not one of: {}",
                ExitStatus::ALL.map(ExitStatus::as_str).join(", ")
            )
        })
    }
}

/// One measured number of a run (reward, SPS, …), always with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetric {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

/// An acceptance criterion the run declares for itself: `metric` must satisfy `condition`
/// (the condition grammar of the config, e.g. `>40000`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub metric: String,
    pub condition: String,
}

/// One stable-suite run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub schema_version: u32,
    pub suite: String,
    pub job: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub exit_status: ExitStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub metrics: Vec<RunMetric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acceptance: Vec<Criterion>,
}

/// Why an artifact was refused: which file, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ArtifactError {
    pub file: String,
    /// The field at fault (`metrics[2].value`), when one is.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: field `{field}`: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl ArtifactError {
    pub fn new(file: &str, field: Option<&str>, message: impl Into<String>) -> ArtifactError {
        ArtifactError {
            file: file.to_string(),
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

/// Names (`suite`, `job`, metric names) become tags and metric name segments, so they are kept to
/// a set Datadog leaves unchanged: a letter or digit first, then letters, digits, `_ . -`.
fn is_identifier(s: &str, allow_dot: bool) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.len() <= 100
        && chars
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (allow_dot && c == '.'))
}

/// Metric names are lower-case dotted identifiers (`reward`, `eval.score`), because they become
/// signal names and the `<domain>.<signal>` part of metric names.
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && s.len() <= 100
        && !s.ends_with('.')
        && !s.contains("..")
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

impl Artifact {
    /// Check everything the types cannot: names, times, units, conditions.
    pub fn validate(&self, file: &str) -> Result<(), ArtifactError> {
        let bad = |field: &str, msg: String| Err(ArtifactError::new(file, Some(field), msg));
        if self.schema_version != SCHEMA_VERSION {
            return bad(
                "schema_version",
                format!(
                    "this build reads schema version {SCHEMA_VERSION}, the artifact says {}",
                    self.schema_version
                ),
            );
        }
        for (field, value) in [("suite", &self.suite), ("job", &self.job)] {
            if !is_identifier(value, true) {
                return bad(
                    field,
                    format!("{value:?} is not a name (letters, digits, `_ . -`, at most 100)"),
                );
            }
        }
        if self.run_id.trim().is_empty() || self.run_id.len() > 200 {
            return bad(
                "run_id",
                "must be a non-empty string of at most 200 characters".into(),
            );
        }
        if let Some(runner) = &self.runner
            && !is_identifier(runner, true)
        {
            return bad(
                "runner",
                format!("{runner:?} is not a name (letters, digits, `_ . -`)"),
            );
        }
        if let Some(recipe) = &self.recipe
            && (recipe.trim().is_empty() || recipe.len() > 200)
        {
            return bad(
                "recipe",
                "must be a non-empty string of at most 200 characters".into(),
            );
        }
        if self.finished_at < self.started_at {
            return bad(
                "finished_at",
                format!(
                    "{} is before started_at {}",
                    self.finished_at.to_rfc3339(),
                    self.started_at.to_rfc3339()
                ),
            );
        }
        let mut seen = BTreeMap::new();
        for (i, m) in self.metrics.iter().enumerate() {
            if !is_metric_name(&m.name) {
                return bad(
                    &format!("metrics[{i}].name"),
                    format!(
                        "{:?} is not a metric name (lower-case letters, digits, `_`, `.`)",
                        m.name
                    ),
                );
            }
            if m.name == SIGNAL_RUN_SUCCESS || m.name == SIGNAL_RUN_DURATION {
                return bad(
                    &format!("metrics[{i}].name"),
                    format!(
                        "{:?} is derived from the run's status and times; it cannot be a metric",
                        m.name
                    ),
                );
            }
            if seen.insert(m.name.as_str(), i).is_some() {
                return bad(
                    &format!("metrics[{i}].name"),
                    format!("metric {:?} is listed twice", m.name),
                );
            }
            if !m.value.is_finite() {
                return bad(
                    &format!("metrics[{i}].value"),
                    "must be a finite number".into(),
                );
            }
            if !is_identifier(&m.unit, false) {
                return bad(
                    &format!("metrics[{i}].unit"),
                    format!(
                        "{:?} is not a unit name (e.g. steps_per_sec, second, hearts)",
                        m.unit
                    ),
                );
            }
        }
        for (i, c) in self.acceptance.iter().enumerate() {
            let known = seen.contains_key(c.metric.as_str())
                || c.metric == SIGNAL_RUN_SUCCESS
                || c.metric == SIGNAL_RUN_DURATION;
            if !known {
                return bad(
                    &format!("acceptance[{i}].metric"),
                    format!(
                        "{:?} is not one of the artifact's metrics, run.success or run.duration",
                        c.metric
                    ),
                );
            }
            if let Err(e) = Condition::parse(&c.condition) {
                return bad(&format!("acceptance[{i}].condition"), e.to_string());
            }
        }
        Ok(())
    }

    /// The observations of this run: `run.success`, `run.duration` and one per metric, stamped
    /// at `finished_at + shift` and tagged `suite`, `job`, `runner`, and `acceptance` where the
    /// artifact declares a condition for that signal.
    pub fn observations(&self, shift: chrono::TimeDelta) -> Vec<Observation> {
        // Saturating: a rebase shift that leaves the calendar (artifacts dated years ±262,000)
        // stamps the edge of it, which the run then judges as a future or stale observation.
        let at = self.finished_at.checked_add_signed(shift).unwrap_or(
            if shift > chrono::TimeDelta::zero() {
                DateTime::<Utc>::MAX_UTC
            } else {
                DateTime::<Utc>::MIN_UTC
            },
        );
        let acceptance: BTreeMap<&str, &str> = self
            .acceptance
            .iter()
            .map(|c| (c.metric.as_str(), c.condition.as_str()))
            .collect();
        let tagged = |signal: &str, value: Value, unit: Option<&str>| {
            let mut o = Observation::new(signal, value, at)
                .with_tag("suite", &self.suite)
                .with_tag("job", &self.job);
            if let Some(r) = &self.runner {
                o = o.with_tag("runner", r);
            }
            if let Some(c) = acceptance.get(signal) {
                o = o.with_tag(TAG_ACCEPTANCE, *c);
            }
            if let Some(u) = unit {
                o = o.with_unit(u);
            }
            o
        };
        let duration = (self.finished_at - self.started_at).num_milliseconds() as f64 / 1000.0;
        let success = if self.exit_status == ExitStatus::Success {
            1.0
        } else {
            0.0
        };
        let mut out = vec![
            tagged(SIGNAL_RUN_SUCCESS, Value::Number(success), None),
            tagged(SIGNAL_RUN_DURATION, Value::Number(duration), Some("second")),
        ];
        for m in &self.metrics {
            out.push(tagged(&m.name, Value::Number(m.value), Some(&m.unit)));
        }
        out
    }
}

/// Which reader an object's name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Parquet,
}

impl Format {
    /// `.json` or `.parquet`; anything else is not an artifact (a listing may hold other files).
    pub fn of(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".json") {
            Some(Format::Json)
        } else if lower.ends_with(".parquet") {
            Some(Format::Parquet)
        } else {
            None
        }
    }
}

/// Parse and validate one artifact from its bytes.
pub fn parse(bytes: &[u8], format: Format, file: &str) -> Result<Artifact, ArtifactError> {
    let artifact = match format {
        Format::Json => json::parse(bytes, file)?,
        Format::Parquet => parquet::read(bytes, file)?,
    };
    artifact.validate(file)?;
    Ok(artifact)
}

/// The artifact as pretty JSON, after validating it (producers never write an invalid one).
pub fn write_json(artifact: &Artifact) -> Result<Vec<u8>, ArtifactError> {
    artifact.validate("<artifact being written>")?;
    let mut out = serde_json::to_vec_pretty(artifact)
        .map_err(|e| ArtifactError::new("<artifact being written>", None, e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Artifact {
        Artifact {
            schema_version: 1,
            suite: "stable".into(),
            job: "multigpu_arena".into(),
            recipe: Some("arena.multigpu".into()),
            run_id: "stable.20261120.multigpu_arena".into(),
            runner: Some("skypilot".into()),
            started_at: "2026-11-20T03:00:00Z".parse().unwrap(),
            finished_at: "2026-11-20T04:10:00Z".parse().unwrap(),
            exit_status: ExitStatus::Success,
            exit_code: Some(0),
            metrics: vec![
                RunMetric {
                    name: "reward".into(),
                    value: 0.63,
                    unit: "hearts".into(),
                },
                RunMetric {
                    name: "sps".into(),
                    value: 43120.0,
                    unit: "steps_per_sec".into(),
                },
            ],
            acceptance: vec![Criterion {
                metric: "sps".into(),
                condition: ">40000".into(),
            }],
        }
    }

    #[test]
    fn observations_carry_tags_units_and_acceptance() {
        let obs = sample().observations(chrono::TimeDelta::zero());
        let by: BTreeMap<&str, &Observation> = obs.iter().map(|o| (o.signal.as_str(), o)).collect();
        assert_eq!(by["run.success"].value, Value::Number(1.0));
        assert_eq!(by["run.duration"].value, Value::Number(4200.0));
        assert_eq!(by["sps"].unit.as_deref(), Some("steps_per_sec"));
        assert_eq!(by["sps"].tags["acceptance"], ">40000");
        assert_eq!(by["reward"].tags["job"], "multigpu_arena");
        assert_eq!(by["reward"].tags["runner"], "skypilot");
        assert!(!by["reward"].tags.contains_key("acceptance"));
    }

    #[test]
    fn a_rebase_shift_past_the_calendar_saturates() {
        let mut a = sample();
        a.started_at = DateTime::<Utc>::MIN_UTC;
        a.finished_at = DateTime::<Utc>::MIN_UTC;
        let shift = DateTime::<Utc>::MAX_UTC - DateTime::<Utc>::MIN_UTC;
        let obs = a.observations(shift + chrono::TimeDelta::seconds(1));
        assert!(obs.iter().all(|o| o.timestamp == DateTime::<Utc>::MAX_UTC));
    }

    #[test]
    fn validation_names_the_field() {
        let mut a = sample();
        a.metrics[1].unit = "".into();
        assert_eq!(
            a.validate("f.json").unwrap_err().field.as_deref(),
            Some("metrics[1].unit")
        );
        let mut a = sample();
        a.finished_at = a.started_at - chrono::TimeDelta::seconds(1);
        assert_eq!(
            a.validate("f").unwrap_err().field.as_deref(),
            Some("finished_at")
        );
        let mut a = sample();
        a.acceptance[0].metric = "nope".into();
        assert_eq!(
            a.validate("f").unwrap_err().field.as_deref(),
            Some("acceptance[0].metric")
        );
        let mut a = sample();
        a.acceptance[0].condition = "about 5".into();
        assert_eq!(
            a.validate("f").unwrap_err().field.as_deref(),
            Some("acceptance[0].condition")
        );
        let mut a = sample();
        a.job = "bad job".into();
        assert_eq!(a.validate("f").unwrap_err().field.as_deref(), Some("job"));
        assert!(sample().validate("f").is_ok());
    }
}
