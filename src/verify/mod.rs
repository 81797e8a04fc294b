//! `infra-health verify`: read back from Datadog what delivery sent, row by row.
//!
//! A 202 from the intake means "accepted for processing", not "visible": a wrong site, a tag
//! Datadog rewrites, a metric dropped by a Metrics-without-Limits configuration or a dashboard
//! query that does not match the series all pass delivery silently. This module owns the one
//! step of the job that reads its own data back:
//!
//! - [`record`]: after a delivery that reached Datadog, the gauges the health matrix reads
//!   (each row's `check.status`, its value gauge, `check.unknown`) are written to the state
//!   store as [`LAST_DELIVERED`], with the exact metric, tags, value and timestamp sent, plus
//!   the names of every metric delivered. Only a delivery with nothing spooled or refused is
//!   recorded, so the record never names a point that is still waiting in the spool.
//! - [`query`]: the metrics query API (`GET /api/v1/query`, API + application key) with
//!   grouped queries — one per metric name and source, several per request — through the
//!   delivery's retry machinery (429 and `X-RateLimit-Reset` honoured).
//! - [`check`]: each row's sent series against what Datadog answers: landed, missing,
//!   different value, different status, different tags, late.
//! - [`dashboard`]: `--dashboard` runs every widget query of the rendered dashboard over the
//!   same window and names widgets with no series or matrix cells that disagree.
//! - [`report`]: one verification, polling while rows are on their way; the report, its text
//!   and the `<prefix>.verify.rows_missing` / `.rows_different` self-metrics. The commands
//!   (`verify`, `run --verify`: printing, exit code, sending the self-metrics) are in
//!   `cli::verify`.

pub mod check;
pub mod dashboard;
pub mod query;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::checks::{CheckDef, CheckResult};
use crate::checks::{RowId, Status};
use crate::schema::{Metric, MetricValue, Schema};
use crate::sinks::DeliveryReport;
use crate::state::StateStore;

/// The state object holding what the last deliveries sent, per row.
pub const LAST_DELIVERED: &str = "verify/last_delivered.json";

/// Rows (and metric names) not delivered for this long are forgotten: a row removed from the
/// config must not stay in the record for ever.
pub const FORGET_AFTER_SECS: i64 = 7 * 86_400;

/// One gauge point as it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentSeries {
    pub metric: String,
    pub tags: Vec<String>,
    pub value: f64,
    /// Unix seconds.
    pub timestamp: i64,
}

impl SentSeries {
    /// The value of tag `key` as sent.
    pub fn tag(&self, key: &str) -> Option<&str> {
        tag_value(&self.tags, key)
    }
}

/// The value of `key` in a `key:value` tag list.
pub fn tag_value<'t>(tags: &'t [String], key: &str) -> Option<&'t str> {
    tags.iter()
        .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
}

/// What the last delivery of one row sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveredRow {
    pub row: RowId,
    pub status: Status,
    /// Unix seconds of the delivery.
    pub delivered_at: i64,
    pub series: Vec<SentSeries>,
}

impl DeliveredRow {
    /// `category/workflow/task/check`, as the matrix and `state show` print a row.
    pub fn name(&self) -> String {
        self.row.to_string()
    }
}

/// The contents of [`LAST_DELIVERED`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LastDelivered {
    /// Keyed by `source:category/workflow/task/check`; a job replaces only its own rows.
    pub rows: BTreeMap<String, DeliveredRow>,
    /// Every metric name delivered with its last delivery time (Unix seconds), gauges or
    /// not: `verify --dashboard` only expects series of metrics that were sent.
    #[serde(default)]
    pub metrics: BTreeMap<String, i64>,
}

impl LastDelivered {
    /// The newest delivery time of any row.
    pub fn newest(&self) -> Option<i64> {
        self.rows.values().map(|r| r.delivered_at).max()
    }
}

fn row_key(row: &RowId) -> String {
    format!("{}:{row}", row.source)
}

/// The matrix gauges of one row among a run's metrics: the row's `check.status`,
/// `check.unknown` and value gauges (the value metric and its `.window`/`.p50`/`.p90` forms),
/// picked by name and the row's identifying tags.
fn row_series(schema: &Schema, def: &CheckDef, metrics: &[Metric]) -> Vec<SentSeries> {
    let pipeline = def.row.pipeline();
    let mut names: Vec<String> = Vec::new();
    for name in [
        schema.status_metric(&pipeline),
        schema.unknown_metric(&pipeline),
    ]
    .into_iter()
    .flatten()
    {
        names.push(name);
    }
    let value = schema.metric_name(&pipeline, &def.metric).ok();
    let identity: Vec<String> = [
        ("source", &def.row.source),
        ("workflow_category", &def.row.workflow_category),
        ("workflow_name", &def.row.workflow_name),
        ("task", &def.row.task),
        ("check", &def.row.check),
    ]
    .iter()
    .filter_map(|(k, v)| crate::schema::tag(k, v).ok())
    .collect();
    metrics
        .iter()
        .filter(|m| {
            names.contains(&m.name)
                || value.as_ref().is_some_and(|v| {
                    m.name == *v
                        || m.name
                            .strip_prefix(v.as_str())
                            .is_some_and(|rest| [".window", ".p50", ".p90"].contains(&rest))
                })
        })
        .filter(|m| identity.iter().all(|t| m.tags.contains(t)))
        .filter_map(|m| match m.value {
            MetricValue::Gauge(v) if v.is_finite() => Some(SentSeries {
                metric: m.name.clone(),
                tags: m.tags.clone(),
                value: v,
                timestamp: m.timestamp,
            }),
            _ => None,
        })
        .collect()
}

/// Remember what a delivery sent, for `verify` (see the module docs). Does nothing unless
/// the sink is Datadog and everything was delivered; returns the problem when the state store
/// cannot be written.
pub async fn record(
    state: &StateStore,
    schema: &Schema,
    rows: &[CheckDef],
    results: &[(usize, CheckResult)],
    metrics: &[Metric],
    sink: &str,
    delivery: &DeliveryReport,
) -> Option<String> {
    if sink != "datadog" || !delivery.ok || delivery.spooled_series > 0 {
        return None;
    }
    let mut delivered = Vec::new();
    for (i, result) in results {
        let Some(def) = rows.get(*i) else { continue };
        let series = row_series(schema, def, metrics);
        if series.is_empty() {
            continue;
        }
        let delivered_at = series.iter().map(|s| s.timestamp).max().unwrap_or_default();
        delivered.push(DeliveredRow {
            row: def.row.clone(),
            status: result.status,
            delivered_at,
            series,
        });
    }
    let names: BTreeSet<(&str, i64)> = metrics
        .iter()
        .map(|m| (m.name.as_str(), m.timestamp))
        .collect();
    let result = state
        .update_json::<LastDelivered, _, _>(LAST_DELIVERED, |last| {
            for row in &delivered {
                // A long job (the remote eval) may finish after a later run of another job
                // re-sent the same row: keep the newest delivery.
                let key = row_key(&row.row);
                if last
                    .rows
                    .get(&key)
                    .is_none_or(|old| old.delivered_at <= row.delivered_at)
                {
                    last.rows.insert(key, row.clone());
                }
            }
            for (name, at) in &names {
                let entry = last.metrics.entry(name.to_string()).or_insert(*at);
                *entry = (*entry).max(*at);
            }
            let newest = last.newest().unwrap_or_default();
            last.rows
                .retain(|_, r| newest - r.delivered_at <= FORGET_AFTER_SECS);
            last.metrics
                .retain(|_, at| newest - *at <= FORGET_AFTER_SECS);
        })
        .await;
    match result {
        Ok(()) => None,
        Err(e) => {
            tracing::error!("what was delivered is not recorded for `verify`: {e}");
            Some(format!("delivery record for `verify` not saved: {e}"))
        }
    }
}

/// Read [`LAST_DELIVERED`]; `None` when nothing was ever recorded.
pub async fn load(state: &StateStore) -> anyhow::Result<Option<LastDelivered>> {
    state
        .get_json::<LastDelivered>(LAST_DELIVERED)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {LAST_DELIVERED}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_of(def: &CheckDef, status: Status, value: f64) -> CheckResult {
        let mut r = def.unknown_result(crate::observation::UnknownReason::InvalidValue, "test");
        r.status = status;
        r.compared = Some(value);
        r.reason = None;
        r.unknown_reason = None;
        r
    }

    fn bundled() -> crate::config::Plan {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/infra-health.toml");
        crate::config::load(&path).expect("the bundled config is valid")
    }

    #[tokio::test]
    async fn only_full_datadog_deliveries_are_recorded_newest_first() {
        let plan = bundled();
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(dir.path().to_str().unwrap()).unwrap();
        let def = &plan.checks[0];
        let results = vec![(0, result_of(def, Status::Pass, 1.0))];
        let at = |now: i64| plan.schema.row_metrics(def, &results[0].1, now).unwrap();
        let ok = DeliveryReport {
            ok: true,
            ..Default::default()
        };
        let failed = DeliveryReport {
            ok: false,
            spooled_series: 3,
            ..Default::default()
        };
        let rows = std::slice::from_ref(def);
        let read = || async { load(&state).await.unwrap() };
        assert!(
            record(
                &state,
                &plan.schema,
                rows,
                &results,
                &at(1_000),
                "local",
                &ok
            )
            .await
            .is_none()
        );
        assert!(
            record(
                &state,
                &plan.schema,
                rows,
                &results,
                &at(1_000),
                "datadog",
                &failed
            )
            .await
            .is_none()
        );
        assert_eq!(
            read().await,
            None,
            "nothing recorded for local or spooled deliveries"
        );

        record(
            &state,
            &plan.schema,
            rows,
            &results,
            &at(2_000),
            "datadog",
            &ok,
        )
        .await;
        // A long job finishing late with an older delivery does not replace the newer one.
        record(
            &state,
            &plan.schema,
            rows,
            &results,
            &at(1_500),
            "datadog",
            &ok,
        )
        .await;
        let last = read().await.unwrap();
        assert_eq!(last.rows.len(), 1);
        let row = last.rows.values().next().unwrap();
        assert_eq!(row.delivered_at, 2_000);
        assert_eq!(row.status, Status::Pass);
        assert!(last.metrics.contains_key("metta.infra.state.carry_forward"));

        // A row not delivered for more than a week is forgotten.
        let other = &plan.checks[1];
        let other_results = vec![(0, result_of(other, Status::Fail, 0.0))];
        let later = plan
            .schema
            .row_metrics(other, &other_results[0].1, 2_000 + FORGET_AFTER_SECS + 1)
            .unwrap();
        record(
            &state,
            &plan.schema,
            std::slice::from_ref(other),
            &other_results,
            &later,
            "datadog",
            &ok,
        )
        .await;
        let last = read().await.unwrap();
        assert_eq!(last.rows.len(), 1);
        assert_eq!(last.rows.values().next().unwrap().row, other.row);
    }

    #[test]
    fn row_series_picks_the_matrix_gauges_of_the_row_only() {
        let plan = bundled();
        let def = &plan.checks[0];
        let result = result_of(def, Status::Pass, 1.0);
        let mut metrics = plan
            .schema
            .row_metrics(def, &result, 1_000)
            .expect("metrics");
        // Another row's status gauge must not be taken for this one.
        let other = &plan.checks[1];
        let other_result = result_of(other, Status::Fail, 0.0);
        metrics.extend(
            plan.schema
                .row_metrics(other, &other_result, 1_000)
                .unwrap(),
        );
        let series = row_series(&plan.schema, def, &metrics);
        let names: Vec<&str> = series.iter().map(|s| s.metric.as_str()).collect();
        assert!(
            names.contains(&"metta.infra.cron.check.status"),
            "{names:?}"
        );
        assert!(
            names.contains(&"metta.infra.cron.check.unknown"),
            "{names:?}"
        );
        assert!(
            !names.contains(&"metta.infra.state.carry_forward"),
            "{names:?}"
        );
        for s in &series {
            assert_eq!(s.tag("workflow_name"), Some(def.row.workflow_name.as_str()));
            assert_eq!(s.tag("check"), Some(def.row.check.as_str()));
            assert_eq!(s.timestamp, 1_000);
        }
    }
}
