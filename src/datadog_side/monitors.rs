//! The monitors a config implies: one per row that alerts, one "unknown rows" monitor per
//! pipeline, one "job stopped delivering" monitor per collector.
//!
//! A dashboard nobody is paged from gets looked at after the incident. These monitors are
//! generated from the same rows and conditions as the dashboard, so a new row gets its monitor
//! and a removed row loses it (`datadog apply --prune`).
//!
//! What each reads, and why (docs/alerts.md has the table for users):
//! - **a row** reads its status gauge (`<prefix>.<pipeline>.check.status`: 1 pass, 0.5 warn,
//!   0 fail) with `max(last_<alert_after>)`: the monitor is critical when *every* point of the
//!   window failed (`< 0.5`), warning when every point was warn or worse (`< 1`). One failed
//!   run does not page; a row failing for `alert_after` does. Space aggregation `min`: a row
//!   split over several series (two repositories) alerts on its worst.
//! - **unknown rows** (one monitor per pipeline, multi-alert by row, priority 4, its own
//!   handles) read `<prefix>.<pipeline>.check.unknown` with `min(last_<unknown_after>)`: quieter
//!   than a failure, because unknown means "we cannot tell", usually a collector problem.
//! - **a job** (one monitor per collector) reads the collector's heartbeat,
//!   `<prefix>.collector.success` tagged with its name, sent by every run that ran it. It
//!   notifies on no data after twice the collector's `period` (the pipeline stopped: image pull
//!   error, rotated secret) and alerts when every run of the last period failed.
//!
//! Cron data is sparse, so every monitor sets `require_full_window: false` and an
//! `evaluation_delay`; `options.thresholds.critical` is the query's own threshold (Datadog
//! refuses a monitor where they differ). Row monitors do not notify on no data: when the
//! pipeline dies, the job monitor pages once instead of every row paging at the same time.

use std::time::Duration;

use serde_json::{Value, json};

use crate::catalog::{Catalog, Origin};
use crate::checks::CheckDef;
use crate::config::Plan;
use crate::dashboard::query::MetricQuery;

/// The tag every monitor infra-health creates carries; `--prune` deletes only monitors with it
/// (and the config's `env`).
pub const MANAGED_BY: &str = crate::schema::MANAGED_BY_TAG;

/// The identifying tags a row monitor filters on, in order.
const ROW_KEYS: &[&str] = &[
    "source",
    "workflow_category",
    "workflow_name",
    "task",
    "check",
];

/// One monitor, as `POST /api/v1/monitor` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSpec {
    /// What it is for, for people and for Terraform resource names (`row-ci-…`, `job-…`).
    pub key: String,
    pub body: Value,
}

impl MonitorSpec {
    pub fn name(&self) -> &str {
        self.body["name"].as_str().unwrap_or("")
    }
}

/// `last_30m`, `last_2h`, `last_1d`: Datadog's time window for `secs` (at least a minute).
pub fn window(d: Duration) -> String {
    let minutes = d.as_secs().div_ceil(60).max(1);
    if minutes.is_multiple_of(1440) {
        format!("last_{}d", minutes / 1440)
    } else if minutes.is_multiple_of(60) {
        format!("last_{}h", minutes / 60)
    } else {
        format!("last_{minutes}m")
    }
}

/// A duration for a person: `30m`, `2h`, `26h`, `90s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60).max(1)
}

/// The tags of every monitor: managed-by, the config's env and service, then `extra`.
fn tags(plan: &Plan, extra: &[(&str, &str)]) -> Vec<String> {
    let mut out = vec![
        MANAGED_BY.to_string(),
        format!("env:{}", plan.schema.env()),
        format!("service:{}", plan.defaults.service),
    ];
    out.extend(extra.iter().map(|(k, v)| format!("{k}:{v}")));
    out.sort();
    out.dedup();
    out
}

fn options(plan: &Plan, thresholds: Value, no_data: Option<Duration>) -> Value {
    let mut o = json!({
        "thresholds": thresholds,
        "require_full_window": false,
        "evaluation_delay": plan.datadog.evaluation_delay.as_secs(),
        "notify_no_data": no_data.is_some(),
        "include_tags": true,
        "notify_audit": false,
    });
    if let Some(d) = no_data {
        o["no_data_timeframe"] = json!(minutes(d));
    }
    o
}

fn handles(list: &[String]) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!("\n\nNotify: {}", list.join(" "))
    }
}

/// Every monitor the plan implies, rows first (config order), then unknown rows per pipeline,
/// then one per collector. `dashboard` is the link put in every message.
pub fn monitors(plan: &Plan, catalog: &Catalog, dashboard: &str) -> Vec<MonitorSpec> {
    let mut out = Vec::new();
    for (i, def) in plan.checks.iter().enumerate() {
        if let Some(m) = row_monitor(plan, catalog, i, def, dashboard) {
            out.push(m);
        }
    }
    let mut pipelines: Vec<String> = Vec::new();
    for def in &plan.checks {
        let p = def.row.pipeline();
        if !pipelines.contains(&p) {
            pipelines.push(p);
        }
    }
    for pipeline in &pipelines {
        if let Some(m) = unknown_monitor(plan, pipeline, dashboard) {
            out.push(m);
        }
    }
    let mut watched: Vec<&str> = Vec::new();
    for c in &plan.datadog.collectors {
        // Two stable-suite collectors share the `import-stable` heartbeat: one monitor.
        let heartbeat = heartbeat_collector(&c.name, c.kind);
        if watched.contains(&heartbeat) {
            continue;
        }
        watched.push(heartbeat);
        if let Some(m) = job_monitor(plan, &c.name, c.kind, c.period, dashboard) {
            out.push(m);
        }
    }
    out
}

fn row_monitor(
    plan: &Plan,
    catalog: &Catalog,
    index: usize,
    def: &CheckDef,
    dashboard: &str,
) -> Option<MonitorSpec> {
    let alerting = plan.datadog.row(&def.row)?;
    let after = alerting.alert_after?;
    let status = plan.schema.status_metric(&def.row.pipeline()).ok()?;
    let series = catalog
        .series
        .iter()
        .find(|s| s.metric == status && s.origin == Origin::Row(index))?;
    let mut q = MetricQuery::new("min", &status);
    for key in ROW_KEYS.iter().chain(["env"].iter()) {
        q = q.filter(key, series.tag(key)?);
    }
    let query = format!("max({}):{q} < 0.5", window(after));
    let mut thresholds = json!({"critical": 0.5});
    let warn = def.warn.as_ref().map(|w| w.human());
    if warn.is_some() {
        thresholds["warning"] = json!(1);
    }
    let row = &def.row;
    let what = format!(
        "{} / {} / {} / {}",
        row.workflow_category, row.workflow_name, row.task, row.check
    );
    let source = alerting
        .link
        .as_deref()
        .map(|l| format!("\nSource: {l}"))
        .unwrap_or_default();
    let warn_text = match &warn {
        Some(w) => format!(
            "{{{{#is_warning}}}}**{title}** has been no better than its warn condition `{w}` \
             for {after}.{{{{/is_warning}}}}\n",
            title = def.title,
            after = human(after),
        ),
        None => String::new(),
    };
    let message = format!(
        "{{{{#is_alert}}}}**{title}** has failed its condition `{cond}` for {after}.{{{{/is_alert}}}}\n\
         {warn_text}\
         {{{{#is_recovery}}}}**{title}** passes its condition `{cond}` again.{{{{/is_recovery}}}}\n\n\
         Row: {what} (source {source_tag})\n\
         Condition: `{cond}`{warn_line}\n\
         Status value: {{{{value}}}} (1 pass, 0.5 warn, 0 fail; the highest over the last {after})\n\
         Dashboard: {dashboard}{source}\n\
         Tune: `alert_after`, `alert = false` or `notify` on this row in {file} (docs/alerts.md).{notify}",
        title = def.title,
        cond = def.condition.human(),
        after = human(after),
        source_tag = row.source,
        warn_line = warn
            .as_deref()
            .map(|w| format!(", warn `{w}`"))
            .unwrap_or_default(),
        file = plan
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        notify = handles(&alerting.notify),
    );
    let body = json!({
        "name": format!(
            "[infra-health] {} ({} {}/{}/{}/{})",
            def.title, row.source, row.workflow_category, row.workflow_name, row.task, row.check
        ),
        "type": "query alert",
        "query": query,
        "message": message,
        "tags": tags(plan, &[
            ("infra-health", "row"),
            ("workflow_category", series.tag("workflow_category")?),
            ("workflow_name", series.tag("workflow_name")?),
        ]),
        "priority": 2,
        "options": options(plan, thresholds, None),
    });
    Some(MonitorSpec {
        key: format!(
            "row-{}-{}-{}-{}-{}",
            row.source, row.workflow_category, row.workflow_name, row.task, row.check
        ),
        body,
    })
}

fn unknown_monitor(plan: &Plan, pipeline: &str, dashboard: &str) -> Option<MonitorSpec> {
    let metric = plan.schema.unknown_metric(pipeline).ok()?;
    let after = plan.datadog.unknown_after;
    let q = MetricQuery::new("max", &metric)
        .filter("env", plan.schema.env())
        .by(&[
            "workflow_category".into(),
            "workflow_name".into(),
            "task".into(),
            "check".into(),
        ]);
    let query = format!("min({}):{q} >= 1", window(after));
    let message = format!(
        "{{{{#is_alert}}}}Row {{{{workflow_category.name}}}} / {{{{workflow_name.name}}}} / \
         {{{{task.name}}}} / {{{{check.name}}}} has been **unknown** for {after}: no run could \
         evaluate it (its collector failed, its data is older than its carry_forward, or it \
         has no observation).{{{{/is_alert}}}}\n\
         {{{{#is_recovery}}}}Row {{{{workflow_category.name}}}} / {{{{workflow_name.name}}}} / \
         {{{{task.name}}}} / {{{{check.name}}}} is evaluated again.{{{{/is_recovery}}}}\n\n\
         The reason is the `reason` tag of {metric}; the collector's own monitor says whether it \
         is failing.\n\
         Dashboard: {dashboard}\n\
         Tune: `unknown_after` and `unknown_notify` in [datadog] (docs/alerts.md).{notify}",
        after = human(after),
        notify = handles(&plan.datadog.unknown_notify),
    );
    Some(MonitorSpec {
        key: format!("unknown-{pipeline}"),
        body: json!({
            "name": format!("[infra-health] {pipeline}: row unknown"),
            "type": "query alert",
            "query": query,
            "message": message,
            "tags": tags(plan, &[("infra-health", "unknown")]),
            "priority": 4,
            "options": options(plan, json!({"critical": 1}), None),
        }),
    })
}

/// The collector name a job's heartbeat carries: `import-stable` sends a stable-suite
/// collector's figures under its own name.
pub fn heartbeat_collector<'a>(name: &'a str, kind: &str) -> &'a str {
    if kind == crate::collectors::stable_suite::KIND.name {
        crate::collectors::stable_suite::IMPORT_COLLECTOR
    } else {
        name
    }
}

fn job_monitor(
    plan: &Plan,
    name: &str,
    kind: &str,
    period: Duration,
    dashboard: &str,
) -> Option<MonitorSpec> {
    let metric = plan.schema.self_metric_name("collector.success").ok()?;
    let collector = heartbeat_collector(name, kind);
    let q = MetricQuery::new("max", &metric)
        .filter("collector", collector)
        .filter("env", plan.schema.env());
    let query = format!("max({}):{q} < 1", window(period));
    let no_data = period * 2;
    let message = format!(
        "{{{{#is_no_data}}}}The collector **{collector}** has delivered nothing for {nd}: the \
         job running it stopped (CronJob suspended, image pull error, rotated secret, deadline). \
         The health matrix turns grey for its rows.{{{{/is_no_data}}}}\n\
         {{{{#is_alert}}}}Every run of the collector **{collector}** in the last {p} failed; its \
         rows turn unknown once their carry_forward runs out.{{{{/is_alert}}}}\n\
         {{{{#is_recovery}}}}The collector **{collector}** delivers again.{{{{/is_recovery}}}}\n\n\
         Expected a run every {p} (`period` of the collector in {file}).\n\
         Check: `kubectl get cronjobs,jobs,pods -l app.kubernetes.io/name=infra-health` and the \
         last pod's log.\n\
         Dashboard: {dashboard}{notify}",
        nd = human(no_data),
        p = human(period),
        file = plan
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        notify = handles(&plan.datadog.notify),
    );
    Some(MonitorSpec {
        key: format!("job-{name}"),
        body: json!({
            "name": format!("[infra-health] job {collector}: stopped delivering or failing"),
            "type": "query alert",
            "query": query,
            "message": message,
            "tags": tags(plan, &[("infra-health", "job"), ("collector", collector)]),
            "priority": 2,
            "options": options(plan, json!({"critical": 1}), Some(no_data)),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_datadog_writes_them() {
        assert_eq!(window(Duration::from_secs(1800)), "last_30m");
        assert_eq!(window(Duration::from_secs(7200)), "last_2h");
        assert_eq!(window(Duration::from_secs(86_400)), "last_1d");
        assert_eq!(window(Duration::from_secs(90)), "last_2m");
        assert_eq!(window(Duration::from_secs(0)), "last_1m");
    }
}
