//! The layout: from a plan and its [`Catalog`] to the dashboard's widgets.
//!
//! One group per category (ci, code, training, evaluation first, then any other in config
//! order), each holding
//! - the health matrix: a `query_table` per source with one line per
//!   `workflow_name`/`task`/`check` and three columns — the last status gauge (green pass,
//!   yellow warn, red fail), the carry-forward gauge (light green: inferred) and the unknown
//!   gauge (grey: no data);
//! - one timeseries per metric of the category: p50/p90 for distributions, for counts the level
//!   over the window (a gauge, read last) and the new events (the COUNT, `sum` `.as_count()`),
//!   the value for gauges, with the row's threshold as a marker;
//!
//! and a last group for infra-health itself: collector run time and success, GitHub's rate
//! limit and API cost, stable-suite imports, points dropped by the Datadog sink.
//!
//! Every query is built from the catalog's series, so it names a metric and tags the config
//! emits; [`super::validate`] checks that on the JSON this writes.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::query::{Function, MAX_FILL_SECONDS, MetricQuery};
use crate::catalog::{Catalog, Origin, Presence, Series, SeriesKind};
use crate::checks::condition::Operand;
use crate::checks::{CheckDef, Encoding};
use crate::config::Plan;
use crate::observation::SelfMetricChart;

/// Categories shown first, in this order; the plan's other categories follow.
const CATEGORY_ORDER: &[(&str, &str)] = &[
    ("ci", "CI"),
    ("code", "Code"),
    ("delivery", "Delivery"),
    ("training", "Training"),
    ("evaluation", "Evaluation"),
];

/// The identifying tags of a row, in the order they are written.
const ROW_KEYS: &[&str] = &[
    "source",
    "workflow_category",
    "workflow_name",
    "task",
    "check",
];

/// Datadog's fixed live spans, with their seconds, shortest first.
const LIVE_SPANS: &[(&str, u64)] = &[
    ("5m", 300),
    ("10m", 600),
    ("15m", 900),
    ("30m", 1800),
    ("1h", 3600),
    ("4h", 14_400),
    ("1d", 86_400),
    ("2d", 172_800),
    ("1w", 604_800),
];

/// The matrix widgets' own time frame (see [`matrix`]): long enough to hold the last run's
/// points whatever the run's duration (more than `period`, at most twice it), short enough
/// that a row no run refreshed drops out of the matrix within its `carry_forward` plus one
/// period of the last delivered run. 15m for the default 10-minute cron job.
pub fn matrix_live_span(period: Duration, shortest_carry_forward: Duration) -> &'static str {
    let p = period.as_secs().max(1);
    let bound = (2 * p).min(shortest_carry_forward.as_secs() + p);
    LIVE_SPANS
        .iter()
        .rev()
        .find(|(_, secs)| *secs <= bound && *secs > p)
        .or_else(|| LIVE_SPANS.iter().find(|(_, secs)| *secs >= p))
        .map(|(span, _)| *span)
        .unwrap_or("1w")
}

/// The heartbeat tile's own time frame: a day of runs per job.
pub const HEARTBEAT_LIVE_SPAN: &str = "1d";

/// Template variables: `env` always, `repo` on queries whose series all carry a repo.
pub const VARIABLES: &[&str] = &["env", "repo"];

/// Conditional formats of the matrix's status column (1 pass, 0.5 warn, 0 fail).
fn status_formats() -> Value {
    // Exclusive rules, so the colour does not depend on which matching rule Datadog picks.
    json!([
        {"comparator": ">=", "value": 1, "palette": "white_on_green"},
        {"comparator": "=", "value": 0.5, "palette": "white_on_yellow"},
        {"comparator": "<=", "value": 0, "palette": "white_on_red"}
    ])
}

/// The whole dashboard document (what `POST /api/v1/dashboard` takes).
pub fn dashboard(plan: &Plan, catalog: &Catalog) -> Value {
    let mut widgets = vec![legend(plan)];
    for (category, title) in categories(plan) {
        let inner = category_widgets(plan, catalog, &category);
        if !inner.is_empty() {
            widgets.push(group(&title, inner));
        }
    }
    if let Some(beat) = heartbeat(plan, catalog) {
        widgets.push(beat);
    }
    let own = self_widgets(catalog);
    if !own.is_empty() {
        widgets.push(group("infra-health itself", own));
    }
    json!({
        "title": plan.dashboard.title,
        "description": plan.dashboard.description,
        "layout_type": "ordered",
        "reflow_type": "auto",
        "template_variables": [
            {"name": "env", "prefix": "env", "defaults": [plan.schema.env()]},
            {"name": "repo", "prefix": "repo", "defaults": ["*"]}
        ],
        "widgets": widgets,
    })
}

fn categories(plan: &Plan) -> Vec<(String, String)> {
    let present: Vec<&str> = plan
        .checks
        .iter()
        .map(|c| c.row.workflow_category.as_str())
        .collect();
    let mut out: Vec<(String, String)> = CATEGORY_ORDER
        .iter()
        .filter(|(c, _)| present.contains(c))
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .collect();
    for c in present {
        if !out.iter().any(|(o, _)| o == c) {
            out.push((c.to_string(), c.to_string()));
        }
    }
    out
}

fn legend(plan: &Plan) -> Value {
    let text = format!(
        "**{title}** — generated by `infra-health dashboard` from `{file}`; edit the config, \
         not this dashboard.\n\n\
         Health matrix: **status** green = pass, yellow = warn, red = fail; \
         **inferred** light green = carried forward from an earlier run; \
         **unknown** grey = no data (collector failed, stale or missing). \
         A row that no run refreshed leaves the matrix (no data) once its frame has passed: \
         the pipeline stopped; \"Is the pipeline delivering?\" says since when.",
        title = plan.dashboard.title,
        file = plan
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    json!({"definition": {
        "type": "note",
        "content": text,
        "background_color": "white",
        "font_size": "14",
        "text_align": "left",
        "show_tick": false,
        "has_padding": true
    }})
}

/// "Is the pipeline delivering?": runs per job over the last day (where a job's bars stop, it
/// stopped; the gap to now is how long ago it last delivered), and the job monitors' states
/// (`datadog apply` creates them; "No Data" with its duration when a job stopped).
fn heartbeat(plan: &Plan, catalog: &Catalog) -> Option<Value> {
    let metric = plan.schema.self_metric_name("collector.success").ok()?;
    if !catalog.series.iter().any(|s| s.metric == metric) {
        return None;
    }
    let q = MetricQuery::new("sum", &metric)
        .filter("workflow_category", "self")
        .variable("env")
        .by(&["collector".to_string()])
        .function(Function::Rollup {
            method: "count".into(),
            seconds: Some(plan.datadog.period.as_secs().max(60)),
        });
    let runs = json!({"definition": {
        "type": "timeseries",
        "title": "Last delivery: runs per job (bars stop where a job stopped)",
        "time": {"live_span": HEARTBEAT_LIVE_SPAN},
        "show_legend": true,
        "legend_layout": "auto",
        "legend_columns": ["value", "sum"],
        "requests": [ts_request(&[("runs".into(), "runs".into(), q)], "bars", false)],
        "markers": []
    }});
    let monitors = json!({"definition": {
        "type": "manage_status",
        "title": "Last delivery: job monitors (No Data = stopped, since when)",
        "query": format!(
            "tag:\"{}\" tag:\"infra-health:job\" tag:\"env:{}\"",
            crate::schema::MANAGED_BY_TAG,
            plan.schema.env()
        ),
        "summary_type": "monitors",
        "display_format": "countsAndList",
        "color_preference": "background",
        "hide_zero_counts": true,
        "show_last_triggered": true,
        "show_priority": false,
        "sort": "triggered,desc"
    }});
    Some(group("Is the pipeline delivering?", vec![runs, monitors]))
}

fn group(title: &str, widgets: Vec<Value>) -> Value {
    json!({"definition": {
        "type": "group",
        "title": title,
        "layout_type": "ordered",
        "widgets": widgets
    }})
}

/// The row series of one category, by the row index they belong to.
fn rows_in<'a>(plan: &'a Plan, category: &str) -> Vec<(usize, &'a CheckDef)> {
    plan.checks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.row.workflow_category == category)
        .collect()
}

fn category_widgets(plan: &Plan, catalog: &Catalog, category: &str) -> Vec<Value> {
    let rows = rows_in(plan, category);
    let mut widgets = Vec::new();
    let sources: Vec<&str> = unique(rows.iter().map(|(_, d)| d.row.source.as_str()));
    for source in &sources {
        let indices: Vec<usize> = rows
            .iter()
            .filter(|(_, d)| d.row.source == *source)
            .map(|(i, _)| *i)
            .collect();
        let title = match (sources.len(), category_title(category)) {
            (1, t) => format!("{t} health"),
            (_, t) => format!("{t} health ({source})"),
        };
        let shortest = indices
            .iter()
            .map(|i| plan.checks[*i].carry_forward)
            .min()
            .unwrap_or(plan.defaults.carry_forward);
        let span = matrix_live_span(plan.datadog.period, shortest);
        widgets.push(matrix(catalog, &indices, category, source, &title, span));
    }
    // One chart per metric name of the category (rows sharing a metric share a chart).
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, def) in &rows {
        let key = format!("{}.{}", def.row.pipeline(), def.metric);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(*i),
            None => groups.push((key, vec![*i])),
        }
    }
    for (_, indices) in groups {
        widgets.push(metric_chart(plan, catalog, &indices));
    }
    widgets
}

fn category_title(category: &str) -> String {
    CATEGORY_ORDER
        .iter()
        .find(|(c, _)| *c == category)
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| category.to_string())
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

/// The catalog's series of these rows whose metric name satisfies `pick`.
fn series_of<'a>(
    catalog: &'a Catalog,
    rows: &[usize],
    pick: impl Fn(&Series) -> bool,
) -> Vec<&'a Series> {
    catalog
        .series
        .iter()
        .filter(|s| matches!(s.origin, Origin::Row(i) if rows.contains(&i)) && pick(s))
        .collect()
}

/// A query over `series` (all of one metric): filters on the tags they all share with the same
/// value, groups by the identifying tags that tell them apart (plus their own extra tags, so
/// a bug count shows its `label`), and takes `$repo` only when every series carries a repo.
fn query_over(aggregator: &str, series: &[&Series], group_by: Option<&[&str]>) -> MetricQuery {
    let metric = series.first().map(|s| s.metric.as_str()).unwrap_or("");
    let mut q = MetricQuery::new(aggregator, metric);
    let mut split = Vec::new();
    for key in ROW_KEYS {
        let values = unique(series.iter().filter_map(|s| s.tag(key)));
        match values.as_slice() {
            [one] if series.iter().all(|s| s.tag(key).is_some()) => q = q.filter(key, one),
            _ => split.push(key.to_string()),
        }
    }
    q = q.variable("env");
    if !series.is_empty() && series.iter().all(|s| s.has_key("repo")) {
        q = q.variable("repo");
    }
    match group_by {
        Some(keys) => q.by(&keys.iter().map(|k| k.to_string()).collect::<Vec<_>>()),
        None => {
            // Grouping by a tag drops the series without it, so only a tag every one carries.
            for key in ["label", "runner", "region", "zone"] {
                if series.iter().all(|s| s.fixed.contains_key(key)) {
                    split.push(key.to_string());
                }
            }
            // One line per repository when a collector watches several.
            if q.variables.iter().any(|v| v == "repo") {
                split.push("repo".into());
            }
            q.by(&split)
        }
    }
}

fn metric_query(name: &str, q: &MetricQuery, aggregator: Option<&str>) -> Value {
    let mut v = json!({"data_source": "metrics", "name": name, "query": q.to_string()});
    if let Some(a) = aggregator {
        v["aggregator"] = json!(a);
    }
    v
}

/// The health matrix of one category and source.
fn matrix(
    catalog: &Catalog,
    rows: &[usize],
    category: &str,
    source: &str,
    title: &str,
    span: &str,
) -> Value {
    let keys = ["workflow_name", "task", "check"];
    // `min` for the status: a row split over several series (two repos) shows its worst.
    let column = |aggregator: &str, suffix: &str| {
        let series = series_of(catalog, rows, |s| s.metric.ends_with(suffix));
        let mut q = query_over(aggregator, &series, Some(&keys));
        // Rows of one category and source: filter on exactly that, whatever the rows share.
        q.filters = vec![
            ("source".into(), source.to_string()),
            ("workflow_category".into(), category.to_string()),
        ];
        q
    };
    let status = column("min", ".check.status");
    let mut inferred = column("max", ".state.carry_forward");
    let mut unknown = column("max", ".check.unknown");
    // A row is usually unknown because its collector failed, and then its flags carry no `repo`
    // tag: filtering them by repo would hide exactly the rows that need attention (and keep a
    // stale "inferred" showing after the row turned unknown).
    for flag in [&mut inferred, &mut unknown] {
        flag.variables.retain(|v| v != "repo");
    }
    json!({"definition": {
        "type": "query_table",
        "title": title,
        // The matrix shows the current status whatever the dashboard's time frame: at a week a
        // rollup bucket spans an hour and `last` would read the worst (or an average) of every
        // status that hour. Each job re-sends every row every run, so a frame a little longer
        // than the period holds each row's latest point; and when the pipeline stops, its rows
        // leave the matrix (no data) within the frame instead of showing the last pass for
        // an hour ([`matrix_live_span`]).
        "time": {"live_span": span},
        "has_search_bar": "auto",
        "requests": [{
            "response_format": "scalar",
            "queries": [
                metric_query("status", &status, Some("last")),
                metric_query("inferred", &inferred, Some("last")),
                metric_query("unknown", &unknown, Some("last")),
            ],
            "formulas": [
                {"formula": "status", "alias": "status", "conditional_formats": status_formats()},
                {"formula": "inferred", "alias": "inferred", "conditional_formats": [
                    {"comparator": ">=", "value": 1, "palette": "black_on_light_green"}
                ]},
                {"formula": "unknown", "alias": "unknown", "conditional_formats": [
                    {"comparator": ">=", "value": 1, "palette": "white_on_gray"}
                ]}
            ],
            "sort": {"count": 500, "order_by": [{"type": "group", "name": "workflow_name", "order": "asc"}]}
        }]
    }})
}

/// A timeseries request: each `(name, alias, query)` becomes one line (or bar) series.
fn ts_request(lines: &[(String, String, MetricQuery)], display: &str, dashed: bool) -> Value {
    json!({
        "response_format": "timeseries",
        "queries": lines.iter().map(|(n, _, q)| metric_query(n, q, None)).collect::<Vec<_>>(),
        "formulas": lines.iter().map(|(n, a, _)| json!({"formula": n, "alias": a})).collect::<Vec<_>>(),
        "display_type": display,
        "style": {
            "palette": "dog_classic",
            "line_type": if dashed { "dashed" } else { "solid" },
            "line_width": "normal"
        }
    })
}

fn timeseries(title: &str, requests: Vec<Value>, markers: Vec<Value>) -> Value {
    json!({"definition": {
        "type": "timeseries",
        "title": title,
        "show_legend": true,
        "legend_layout": "auto",
        "legend_columns": ["avg", "min", "max", "value"],
        "requests": requests,
        "markers": markers
    }})
}

/// Threshold lines for a row's condition (none for `==success`).
fn markers(def: &CheckDef) -> Vec<Value> {
    let label = def.condition.human();
    let line = |v: f64| json!({"value": format!("y = {v}"), "display_type": "error dashed", "label": label});
    match def.condition.operand() {
        Operand::Number { value, .. } => vec![line(*value)],
        Operand::Range { low, high, .. } => vec![line(*low), line(*high)],
        Operand::Text(_) => Vec::new(),
    }
}

/// The chart of one metric, for the rows (of one category) that send it.
fn metric_chart(plan: &Plan, catalog: &Catalog, rows: &[usize]) -> Value {
    let defs: Vec<&CheckDef> = rows.iter().map(|i| &plan.checks[*i]).collect();
    let Some(first) = defs.first() else {
        return Value::Null;
    };
    let name = plan
        .schema
        .metric_name(&first.row.pipeline(), &first.metric)
        .unwrap_or_default();
    let title = unique(defs.iter().map(|d| d.title.as_str())).join(" · ");
    let exact = |metric: &str| series_of(catalog, rows, |s| s.metric == metric);
    let fill = Function::FillLast(MAX_FILL_SECONDS);
    let marks = if defs.len() == 1 {
        markers(first)
    } else {
        Vec::new()
    };
    let value = exact(&name);
    let kind = value.first().map(|s| s.kind).unwrap_or(SeriesKind::Gauge);
    match kind {
        SeriesKind::Distribution => {
            let line = |agg: &str| {
                (
                    agg.to_string(),
                    agg.to_string(),
                    query_over(agg, &value, None),
                )
            };
            let mut requests = vec![ts_request(&[line("p50"), line("p90")], "line", false)];
            if defs.iter().any(|d| d.percentiles) {
                let evaluated: Vec<_> = ["p50", "p90"]
                    .iter()
                    .map(|p| {
                        let s = exact(&format!("{name}.{p}"));
                        (
                            format!("row_{p}"),
                            format!("{p} as evaluated"),
                            query_over("max", &s, None).function(fill.clone()),
                        )
                    })
                    .collect();
                requests.push(ts_request(&evaluated, "line", true));
            }
            timeseries(&format!("{title} — p50 / p90"), requests, marks)
        }
        SeriesKind::Count => {
            // Two readings of one count row: the level over its window (the GAUGE
            // `<metric>.window`, what the condition compares) as a line, and the events first
            // seen in each bucket (the COUNT, summed as counts) as bars.
            let level_name = plan
                .schema
                .metric_name(
                    &first.row.pipeline(),
                    &crate::schema::encode::window_metric(&first.metric),
                )
                .unwrap_or_default();
            let level = query_over("max", &exact(&level_name), None).function(fill);
            let events = query_over("sum", &value, None).function(Function::AsCount);
            let requests = vec![
                ts_request(
                    &[("events".into(), "new events".into(), events)],
                    "bars",
                    false,
                ),
                ts_request(
                    &[("level".into(), "in window".into(), level)],
                    "line",
                    false,
                ),
            ];
            timeseries(&title, requests, marks)
        }
        SeriesKind::Gauge => {
            // A health check (1 pass, 0 fail) shows its worst series; a value its highest.
            let aggregator = if first.encoding == Encoding::Status {
                "min"
            } else {
                "max"
            };
            let q = query_over(aggregator, &value, None).function(fill);
            let request = ts_request(&[("value".into(), "value".into(), q)], "line", false);
            timeseries(&title, vec![request], marks)
        }
    }
}

/// The tool's own health, from the catalog's collector and delivery series.
fn self_widgets(catalog: &Catalog) -> Vec<Value> {
    let own: Vec<&Series> = catalog
        .series
        .iter()
        .filter(|s| !matches!(s.origin, Origin::Row(_)))
        .collect();
    let names = unique(own.iter().map(|s| s.metric.as_str()));
    let of = |metric: &str| -> Vec<&Series> {
        own.iter().copied().filter(|s| s.metric == metric).collect()
    };
    let by_collector = |agg: &str, metric: &str| {
        let series = of(metric);
        let mut q = query_over(agg, &series, Some(&["collector"]));
        q.filters.retain(|(k, _)| k == "workflow_category");
        q
    };
    let mut widgets = Vec::new();
    let mut shown: BTreeSet<&str> = BTreeSet::new();
    let ends = |suffix: &str| names.iter().copied().find(|n| n.ends_with(suffix));

    if let (Some(success), Some(series)) = (ends(".collector.success"), ends(".collector.series")) {
        shown.extend([success, series]);
        widgets.push(json!({"definition": {
            "type": "query_table",
            "title": "Collectors: last run",
            "requests": [{
                "response_format": "scalar",
                "queries": [
                    metric_query("success", &by_collector("min", success), Some("last")),
                    metric_query("series", &by_collector("max", series), Some("last")),
                ],
                "formulas": [
                    {"formula": "success", "alias": "succeeded", "conditional_formats": [
                        {"comparator": ">=", "value": 1, "palette": "white_on_green"},
                        {"comparator": "<", "value": 1, "palette": "white_on_red"}
                    ]},
                    {"formula": "series", "alias": "observations"}
                ]
            }]
        }}));
    }
    // `agg` combines the collectors' series: `sum` for costs, `max` for levels.
    let chart = |title: &str, metrics: &[&str], agg: &str, by: &[&str], fill: bool| {
        let lines: Vec<(String, String, MetricQuery)> = metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut q = query_over(agg, &of(m), Some(by));
                q.filters.retain(|(k, _)| k == "workflow_category");
                if fill {
                    q = q.function(Function::FillLast(MAX_FILL_SECONDS));
                }
                let alias = m.rsplit('.').next().unwrap_or(m).to_string();
                (format!("q{i}"), alias, q)
            })
            .collect();
        timeseries(title, vec![ts_request(&lines, "line", false)], Vec::new())
    };
    if let Some(d) = ends(".collector.duration") {
        shown.insert(d);
        widgets.push(chart(
            "Collector run time (s)",
            &[d],
            "max",
            &["collector"],
            false,
        ));
    }
    if let Some(d) = ends(".delivery.dropped_points") {
        shown.insert(d);
        widgets.push(chart(
            "Points dropped by the Datadog sink (expired spool, rejected)",
            &[d],
            "sum",
            &["reason"],
            false,
        ));
    }
    let ledger: Vec<&str> = [".delivery.restamped_points", ".delivery.baselined"]
        .iter()
        .filter_map(|suffix| ends(suffix))
        .collect();
    if !ledger.is_empty() {
        shown.extend(ledger.iter().copied());
        widgets.push(chart(
            "Delivery ledger: re-stamped after waiting past an hour, baselined (not counted)",
            &ledger,
            "sum",
            &[],
            false,
        ));
    }
    let verified: Vec<&str> = own
        .iter()
        .filter(|s| matches!(s.origin, Origin::Verify))
        .map(|s| s.metric.as_str())
        .filter(|m| shown.insert(*m))
        .collect();
    if !verified.is_empty() {
        widgets.push(chart(
            "Verify: delivered rows not visible in Datadog as sent",
            &verified,
            "max",
            &[],
            true,
        ));
    }
    // What collector kinds declare, one chart per declared title, in declaration order.
    let mut charts: Vec<(SelfMetricChart, Vec<&str>)> = Vec::new();
    for series in &own {
        let Some(declared) = series.chart else {
            continue;
        };
        if !shown.insert(series.metric.as_str()) {
            continue;
        }
        match charts.iter_mut().find(|(c, _)| c.title == declared.title) {
            Some((_, metrics)) => metrics.push(series.metric.as_str()),
            None => charts.push((declared, vec![series.metric.as_str()])),
        }
    }
    for (declared, metrics) in charts {
        let sometimes = metrics
            .iter()
            .any(|m| of(m).iter().any(|s| s.presence == Presence::Sometimes));
        let by: &[&str] = if declared.per_collector {
            &["collector"]
        } else {
            &[]
        };
        widgets.push(chart(
            declared.title,
            &metrics,
            declared.aggregation,
            by,
            sometimes,
        ));
    }
    // Anything else (figures declared without a chart): one chart per family.
    let mut families: Vec<(String, Vec<&str>)> = Vec::new();
    for n in names.iter().copied().filter(|n| !shown.contains(n)) {
        let family = n.rsplit_once('.').map(|(f, _)| f).unwrap_or(n).to_string();
        match families.iter_mut().find(|(f, _)| *f == family) {
            Some((_, v)) => v.push(n),
            None => families.push((family, vec![n])),
        }
    }
    for (family, metrics) in families {
        let title = family
            .rsplit('.')
            .next()
            .unwrap_or(&family)
            .replace('_', " ");
        widgets.push(chart(&title, &metrics, "sum", &["collector"], false));
    }
    widgets
}
