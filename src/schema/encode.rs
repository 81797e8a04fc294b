//! From a row's result to the metrics that carry it (the seed's encoding rules).
//!
//! Per row, every run:
//! - the value metric `<prefix>.<pipeline>.<metric>`: GAUGE 1/0 for a health check, GAUGE of the
//!   number (with `unit`), or DISTRIBUTION of the samples no earlier run delivered plus optional
//!   rolling `.p50` / `.p90` GAUGEs over all of them; a count row sends its level over the window
//!   as the GAUGE `<metric>.window` and, as the COUNT `<metric>`, only the events first seen in
//!   this run (see [`crate::state::rows::Delivered`]), so Datadog's `sum` reads true over any
//!   time frame;
//! - the health gauge `<prefix>.<pipeline>.check.status` (1 pass, 0.5 warn, 0 fail), which the
//!   dashboard's matrix reads whatever the row's encoding;
//! - for an `unknown` row, instead of both, `<prefix>.<pipeline>.check.unknown` = 1 with a
//!   `reason` tag: missing data is never sent as a placeholder zero.
//! - for a carried-forward row, the gauges only (status, value level, percentiles, flags) tagged
//!   `inferred:true`, plus `<prefix>.state.carry_forward` = 1: no sample and no increment is
//!   sent twice.
//! - and the two flags' zeros: `check.unknown` = 0 for a row with a status, and
//!   `state.carry_forward` = 0 for a row not carried forward. These are facts about the row, not
//!   placeholders for its value: the dashboard's matrix reads the *last* point of each flag, and
//!   without the zero a row that recovered would stay grey (or light green) until the old 1 left
//!   the dashboard's time window.

use std::collections::BTreeMap;

use super::{Metric, MetricValue, RowId, Schema, SchemaError, Status};
use crate::checks::{CheckDef, CheckResult, Encoding, Summary};
use crate::observation::{UnknownReason, Value};

impl Schema {
    /// Every metric for one evaluated row, stamped at `now` (Unix seconds).
    ///
    /// Metrics are stamped with the run's time, not the observation's: Datadog drops points
    /// older than an hour, and the dashboard colours rows by what this run concluded.
    pub fn row_metrics(
        &self,
        def: &CheckDef,
        result: &CheckResult,
        now: i64,
    ) -> Result<Vec<Metric>, SchemaError> {
        let pipeline = def.row.pipeline();
        let condition = def.condition.tag_value();
        let mut optional: BTreeMap<String, String> = result.tags.clone();
        optional.extend(def.tags.clone());
        if let Some(unit) = result.unit.as_ref().or(def.unit.as_ref()) {
            optional.insert("unit".into(), unit.clone());
        }
        if result.inferred {
            optional.insert("inferred".into(), "true".into());
        }
        let mut out = Vec::new();
        let unit = optional.get("unit").cloned();
        let metric = |name: String, value: MetricValue, tags: &Vec<String>| Metric {
            name,
            value,
            timestamp: now,
            tags: tags.clone(),
            unit: unit.clone(),
        };

        let Some(status_value) = result.status.gauge_value() else {
            let name = self.unknown_metric(&pipeline)?;
            let mut reason_tags = optional.clone();
            // A short, bounded tag (free text would be a new custom metric per message). A
            // result without a typed reason (written by an older version) gets the catch-all.
            let why = result.unknown_reason.unwrap_or(UnknownReason::InvalidValue);
            reason_tags.insert("reason".into(), why.tag().to_string());
            let tags = self.tags(&name, &def.row, &condition, Status::Unknown, &reason_tags)?;
            out.push(metric(name, MetricValue::Gauge(1.0), &tags));
            let name = self.carry_forward_metric()?;
            let tags = self.tags(&name, &def.row, &condition, Status::Unknown, &optional)?;
            out.push(metric(name, MetricValue::Gauge(0.0), &tags));
            return Ok(out);
        };

        let value_name = self.metric_name(&pipeline, &def.metric)?;
        let tags = self.tags(&value_name, &def.row, &condition, result.status, &optional)?;
        match def.encoding {
            Encoding::Status => {
                let v = if result.status == Status::Fail {
                    0.0
                } else {
                    1.0
                };
                out.push(metric(value_name.clone(), MetricValue::Gauge(v), &tags));
            }
            Encoding::Gauge => {
                if let Some(v) = result.compared {
                    out.push(metric(value_name.clone(), MetricValue::Gauge(v), &tags));
                }
            }
            Encoding::Count => {
                // The level over the row's window is what the row's value means (a GAUGE, read
                // with `last`); the COUNT carries only the events first seen in this run, so
                // Datadog's `sum` over any time frame is the number of events in it.
                if let Some(v) = result.compared {
                    let name = self.metric_name(&pipeline, &window_metric(&def.metric))?;
                    out.push(metric(name, MetricValue::Gauge(v), &tags));
                }
                if let Some((value, interval)) =
                    result.new_in_run.as_ref().and_then(|n| n.increment)
                {
                    out.push(metric(
                        value_name.clone(),
                        MetricValue::Count { value, interval },
                        &tags,
                    ));
                }
            }
            Encoding::Distribution => {
                // The rolling percentiles are levels (what the row compares); the distribution
                // gets each sample once, over the life of the state store.
                if def.percentiles {
                    let all: Vec<f64> = match &result.value {
                        Some(Value::Samples(s)) => s.clone(),
                        Some(v) => v.as_number().into_iter().collect(),
                        None => Vec::new(),
                    };
                    for (suffix, summary) in [("p50", Summary::P50), ("p90", Summary::P90)] {
                        if let Some(v) = summary.of(&all) {
                            let name =
                                self.metric_name(&pipeline, &format!("{}.{suffix}", def.metric))?;
                            out.push(metric(name, MetricValue::Gauge(v), &tags));
                        }
                    }
                }
                let new = result
                    .new_in_run
                    .as_ref()
                    .map(|n| n.samples.clone())
                    .unwrap_or_default();
                if !new.is_empty() {
                    out.push(metric(
                        value_name.clone(),
                        MetricValue::Distribution(new),
                        &tags,
                    ));
                }
            }
        }
        let status_name = self.status_metric(&pipeline)?;
        let status_tags =
            self.tags(&status_name, &def.row, &condition, result.status, &optional)?;
        out.push(metric(
            status_name,
            MetricValue::Gauge(status_value),
            &status_tags,
        ));
        let name = self.carry_forward_metric()?;
        let cf_tags = self.tags(&name, &def.row, &condition, result.status, &optional)?;
        let carried = if result.inferred { 1.0 } else { 0.0 };
        out.push(metric(name, MetricValue::Gauge(carried), &cf_tags));
        let name = self.unknown_metric(&pipeline)?;
        let unknown_tags = self.tags(&name, &def.row, &condition, result.status, &optional)?;
        out.push(metric(name, MetricValue::Gauge(0.0), &unknown_tags));
        Ok(out)
    }

    /// The tool's own metrics for one collector: `<prefix>.collector.duration` (seconds),
    /// `.success` (1/0) and `.series` (observations returned), tagged `collector:NAME`.
    #[allow(clippy::too_many_arguments)]
    pub fn collector_metrics(
        &self,
        source: &str,
        stats: &CollectorStats<'_>,
        now: i64,
    ) -> Result<Vec<Metric>, SchemaError> {
        let status = if stats.ok { Status::Pass } else { Status::Fail };
        let mut optional = BTreeMap::new();
        optional.insert("collector".to_string(), stats.collector.to_string());
        if let Some(e) = stats.error_type {
            optional.insert("error_type".to_string(), e.to_string());
        }
        let mut out = Vec::new();
        for (check, value, unit) in [
            ("duration", stats.duration_secs, Some("second")),
            ("success", if stats.ok { 1.0 } else { 0.0 }, None),
            ("series", stats.observations as f64, None),
        ] {
            let row = RowId::self_row(source, stats.collector, "collector", check);
            let name = self.self_metric_name(&format!("collector.{check}"))?;
            let mut tags = optional.clone();
            if let Some(u) = unit {
                tags.insert("unit".into(), u.into());
            }
            out.push(self.self_metric(&row, name, value, status, &tags, now)?);
        }
        Ok(out)
    }

    /// A collector's own figures (`github.requests`, …) as `<prefix>.<path>` gauges tagged
    /// `collector:NAME`; `check` is the path after its first segment, `task` that segment and
    /// `source` the run's, unless the metric says otherwise (a stable-suite import's
    /// `source:stable_suite`, `task:import`); `status` is `pass` unless the metric is failing.
    pub fn collector_extra_metrics(
        &self,
        source: &str,
        collector: &str,
        extra: &[crate::observation::SelfMetric],
        now: i64,
    ) -> Result<Vec<Metric>, SchemaError> {
        let mut optional = BTreeMap::new();
        optional.insert("collector".to_string(), collector.to_string());
        extra
            .iter()
            .map(|m| {
                let name = self.self_metric_name(&m.path)?;
                let (first, check) = m.path.split_once('.').unwrap_or(("collector", &m.path));
                let task = m.task.as_deref().unwrap_or(first);
                let source = m.source.as_deref().unwrap_or(source);
                let row = RowId::self_row(source, collector, task, check);
                let status = if m.failing {
                    Status::Fail
                } else {
                    Status::Pass
                };
                self.self_metric(&row, name, m.value, status, &optional, now)
            })
            .collect()
    }

    /// One self-metric gauge with the full required tag set; `row` comes from
    /// [`RowId::self_row`] (`workflow_category:self`, `condition:none`). A `unit` among the
    /// optional tags is also the metric's unit.
    pub fn self_metric(
        &self,
        row: &RowId,
        name: String,
        value: f64,
        status: Status,
        optional: &BTreeMap<String, String>,
        now: i64,
    ) -> Result<Metric, SchemaError> {
        let tags = self.tags(&name, row, "none", status, optional)?;
        Ok(Metric {
            name,
            value: MetricValue::Gauge(value),
            timestamp: now,
            tags,
            unit: optional.get("unit").cloned(),
        })
    }
}

/// How one collector did, for its self-metrics.
#[derive(Debug, Clone, Copy)]
pub struct CollectorStats<'a> {
    pub collector: &'a str,
    pub duration_secs: f64,
    pub ok: bool,
    pub observations: usize,
    pub error_type: Option<&'a str>,
}

impl Schema {
    /// `<prefix>.delivery.dropped_points`: points a sink could not deliver and gave up on, with
    /// a `reason` tag (`expired`, `in_future`, `not_finite`, `rejected`, `spool_failed`).
    pub fn dropped_points_metric(
        &self,
        source: &str,
        sink: &str,
        reason: &str,
        points: usize,
        now: i64,
    ) -> Result<Metric, SchemaError> {
        let status = if points == 0 {
            Status::Pass
        } else {
            Status::Fail
        };
        self.delivery_metric(
            source,
            sink,
            DROPPED_POINTS,
            Some(reason),
            points,
            status,
            now,
        )
    }

    /// The delivery ledger's figures for one run: `<prefix>.delivery.restamped_points`
    /// (increments and samples that waited past Datadog's hour and were re-stamped to the run
    /// that delivered them) and `<prefix>.delivery.baselined` (identities recorded as a baseline
    /// by a row memory that did not cover them, and not sent). Neither is a failure; a baseline
    /// every run means the state store does not last (an `emptyDir`).
    pub fn ledger_metrics(
        &self,
        source: &str,
        sink: &str,
        restamped: usize,
        baselined: usize,
        now: i64,
    ) -> Result<Vec<Metric>, SchemaError> {
        [(RESTAMPED_POINTS, restamped), (BASELINED, baselined)]
            .into_iter()
            .map(|(path, n)| self.delivery_metric(source, sink, path, None, n, Status::Pass, now))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn delivery_metric(
        &self,
        source: &str,
        sink: &str,
        path: &str,
        reason: Option<&str>,
        value: usize,
        status: Status,
        now: i64,
    ) -> Result<Metric, SchemaError> {
        let name = self.self_metric_name(path)?;
        let mut optional = BTreeMap::new();
        if let Some(r) = reason {
            optional.insert("reason".to_string(), r.to_string());
        }
        let check = path.rsplit('.').next().unwrap_or(path);
        let row = RowId::self_row(source, sink, "delivery", check);
        self.self_metric(&row, name, value as f64, status, &optional, now)
    }

    /// `<prefix>.verify.rows_missing` and `<prefix>.verify.rows_different`: what one
    /// verification found (delivered rows not visible in Datadog, or visible but not as sent),
    /// `status:fail` when not zero, tagged `workflow_category:self`, `workflow_name:verify`.
    pub fn verify_metrics(
        &self,
        source: &str,
        rows_missing: usize,
        rows_different: usize,
        now: i64,
    ) -> Result<Vec<Metric>, SchemaError> {
        [
            (VERIFY_ROWS_MISSING, rows_missing),
            (VERIFY_ROWS_DIFFERENT, rows_different),
        ]
        .into_iter()
        .map(|(path, rows)| {
            let check = path.rsplit('.').next().unwrap_or(path);
            let row = RowId::self_row(source, "verify", "verify", check);
            let status = if rows == 0 {
                Status::Pass
            } else {
                Status::Fail
            };
            let name = self.self_metric_name(path)?;
            self.self_metric(&row, name, rows as f64, status, &BTreeMap::new(), now)
        })
        .collect()
    }

    /// Tags for a status-change event of `row` (the row's required tags with its new status).
    pub fn event_tags(
        &self,
        row: &RowId,
        condition_tag: &str,
        status: Status,
    ) -> Result<Vec<String>, SchemaError> {
        self.tags("event", row, condition_tag, status, &BTreeMap::new())
    }
}

/// The metric part of a count row's level gauge: `<metric>.window` (e.g.
/// `github.reverts.count.window`, the reverts in the last 7 days).
pub fn window_metric(metric: &str) -> String {
    format!("{metric}.{WINDOW_SUFFIX}")
}

/// Suffix of a count row's level gauge.
pub const WINDOW_SUFFIX: &str = "window";

/// Paths of the verification's self-metrics ([`Schema::verify_metrics`]).
pub const VERIFY_ROWS_MISSING: &str = "verify.rows_missing";
pub const VERIFY_ROWS_DIFFERENT: &str = "verify.rows_different";

/// Paths of the delivery self-metrics ([`Schema::dropped_points_metric`],
/// [`Schema::ledger_metrics`]).
pub const DROPPED_POINTS: &str = "delivery.dropped_points";
pub const RESTAMPED_POINTS: &str = "delivery.restamped_points";
pub const BASELINED: &str = "delivery.baselined";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{DEFAULT_SERVICE, Schema};
    use crate::observation::SelfMetricDecl;

    // Declared as a stable-suite import declares its counts: another source, another task.
    const SELF_IMPORTED: SelfMetricDecl = SelfMetricDecl::new("stablesuite.artifacts_imported")
        .source("stable_suite")
        .task("import");
    const SELF_BAD: SelfMetricDecl = SelfMetricDecl::new("stablesuite.bad_artifacts")
        .source("stable_suite")
        .task("import");

    #[test]
    fn a_declared_self_metric_keeps_its_source_task_and_status() {
        let schema =
            Schema::new("metta.infra", "prod", DEFAULT_SERVICE, &BTreeMap::new()).expect("schema");
        let extra = [
            SELF_IMPORTED.value(2.0).failing(true),
            SELF_BAD.value(1.0).failing(true),
        ];
        let m = schema
            .collector_extra_metrics("cron", "nightly", &extra, 1_000)
            .expect("metrics");
        assert_eq!(m[1].name, "metta.infra.stablesuite.bad_artifacts");
        for tag in [
            "source:stable_suite",
            "task:import",
            "check:bad_artifacts",
            "status:fail",
            "collector:nightly",
        ] {
            assert!(
                m[1].tags.iter().any(|t| t == tag),
                "{tag} in {:?}",
                m[1].tags
            );
        }
        assert!(m[0].tags.iter().any(|t| t == "check:artifacts_imported"));
    }
}
