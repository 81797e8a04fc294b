//! `verify --dashboard`: the rendered dashboard's own queries, run over the verify window.
//!
//! Template variables are replaced by their defaults (`$env` → `env:prod`; a `*` default
//! filters nothing), as the dashboard opens. A query with no series is named with its widget;
//! it fails verification when its metric was delivered in the window (the widget should show
//! it), and is only noted otherwise (a metric sent on events, such as dropped points). In the
//! matrix widgets (query tables over `check.status` and `check.unknown`), every cell is
//! compared with the row's last delivered status.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::LastDelivered;
use super::query::Series;
use crate::checks::Status;
use crate::dashboard::query::MetricQuery;

/// One query of one widget, ready to send.
#[derive(Debug, Clone)]
pub struct WidgetQuery {
    pub widget: String,
    pub path: String,
    pub widget_type: String,
    pub name: String,
    /// The query with template variables replaced.
    pub query: String,
    pub parsed: MetricQuery,
}

/// Something wrong (or worth noting) about one widget.
#[derive(Debug, Clone, Serialize)]
pub struct WidgetProblem {
    pub widget: String,
    pub path: String,
    pub query: String,
    /// `no_series`, `cell_disagrees`, `percentiles_off`, or `no_data_sent` (a note, not a
    /// failure).
    pub kind: &'static str,
    pub detail: String,
    pub fails: bool,
}

/// Every distribution the config sends whose percentile aggregations are off in Datadog (`GET
/// /api/v2/metrics/{name}/tags`): its `p50:`/`p90:` widgets answer nothing until
/// `infra-health datadog apply` (or Metrics Summary) turns them on.
pub async fn percentile_problems(
    plan: &crate::config::Plan,
    client: &crate::sinks::datadog::Client,
) -> anyhow::Result<Vec<WidgetProblem>> {
    use crate::datadog_side::api::SideApi;
    use crate::datadog_side::metric_config::tag_configs;
    let catalog = crate::catalog::Catalog::of(plan)?;
    let api = SideApi::new(client.clone());
    let mut out = Vec::new();
    for c in tag_configs(&catalog) {
        let problems = match api.tag_config(&c.metric).await? {
            None => vec!["percentiles are off (the metric has no tag configuration)".to_string()],
            Some(live) => c.problems(&live),
        };
        if problems.is_empty() {
            continue;
        }
        out.push(WidgetProblem {
            widget: format!("percentiles of {}", c.metric),
            path: format!("/api/v2/metrics/{}/tags", c.metric),
            query: format!("p90:{}{{*}}", c.metric),
            kind: "percentiles_off",
            detail: format!(
                "{}: its p50/p90 widgets answer nothing; run `infra-health datadog apply`",
                problems.join("; ")
            ),
            fails: true,
        });
    }
    Ok(out)
}

/// Every query of the dashboard, with template variables replaced by their defaults.
pub fn widget_queries(dashboard: &Value) -> Vec<WidgetQuery> {
    let mut variables: BTreeMap<String, Option<String>> = BTreeMap::new();
    for tv in dashboard["template_variables"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = tv["name"].as_str() else {
            continue;
        };
        let prefix = tv["prefix"].as_str().unwrap_or(name);
        let default = tv["defaults"][0]
            .as_str()
            .or_else(|| tv["default"].as_str())
            .filter(|d| *d != "*")
            .map(|d| format!("{prefix}:{d}"));
        variables.insert(name.to_string(), default);
    }
    fn walk(
        w: &Value,
        path: &str,
        variables: &BTreeMap<String, Option<String>>,
        out: &mut Vec<WidgetQuery>,
    ) {
        let def = &w["definition"];
        let title = def["title"].as_str().unwrap_or("(untitled)").to_string();
        let widget_type = def["type"].as_str().unwrap_or("").to_string();
        for req in def["requests"].as_array().into_iter().flatten() {
            for q in req["queries"].as_array().into_iter().flatten() {
                let Some(text) = q["query"].as_str() else {
                    continue;
                };
                let Ok(mut parsed) = MetricQuery::parse(text) else {
                    continue;
                };
                for var in std::mem::take(&mut parsed.variables) {
                    if let Some(Some(filter)) = variables.get(&var)
                        && let Some((k, v)) = filter.split_once(':')
                    {
                        parsed.filters.push((k.to_string(), v.to_string()));
                    }
                }
                out.push(WidgetQuery {
                    widget: title.clone(),
                    path: format!("{path}.definition"),
                    widget_type: widget_type.clone(),
                    name: q["name"].as_str().unwrap_or("").to_string(),
                    query: parsed.to_string(),
                    parsed,
                });
            }
        }
        for (i, inner) in def["widgets"].as_array().into_iter().flatten().enumerate() {
            walk(
                inner,
                &format!("{path}.definition.widgets[{i}]"),
                variables,
                out,
            );
        }
    }
    let mut out = Vec::new();
    for (i, w) in dashboard["widgets"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        walk(w, &format!("widgets[{i}]"), &variables, &mut out);
    }
    out
}

/// What the matrix cell of a delivered row should read for a query over `metric`, if the
/// query is one of the matrix's (`check.status`: the status gauge; `check.unknown`: 1/0).
fn expected_cell(metric: &str, status: Status) -> Option<Option<f64>> {
    if metric.ends_with(".check.status") {
        Some(status.gauge_value())
    } else if metric.ends_with(".check.unknown") {
        Some(Some(if status == Status::Unknown { 1.0 } else { 0.0 }))
    } else {
        None
    }
}

/// The problems of every widget query, given each query's answer (parallel to `queries`).
pub fn problems(
    queries: &[WidgetQuery],
    answers: &[Vec<Series>],
    last: &LastDelivered,
    from: i64,
) -> Vec<WidgetProblem> {
    let mut out = Vec::new();
    for (q, answer) in queries.iter().zip(answers) {
        let label = if q.name.is_empty() {
            q.widget.clone()
        } else {
            format!("{} ({})", q.widget, q.name)
        };
        let problem = |kind, detail: String, fails| WidgetProblem {
            widget: label.clone(),
            path: q.path.clone(),
            query: q.query.clone(),
            kind,
            detail,
            fails,
        };
        if answer.iter().all(|s| s.points.is_empty()) {
            let sent = last
                .metrics
                .get(&q.parsed.metric)
                .is_some_and(|at| *at >= from);
            out.push(if sent {
                problem(
                    "no_series",
                    format!(
                        "returns no series although {} was delivered in the window",
                        q.parsed.metric
                    ),
                    true,
                )
            } else {
                problem(
                    "no_data_sent",
                    format!(
                        "returns no series; nothing was delivered for {} in the window",
                        q.parsed.metric
                    ),
                    false,
                )
            });
            continue;
        }
        if q.widget_type != "query_table" {
            continue;
        }
        // A matrix cell per delivered row whose tags the query's filters hold.
        for r in last.rows.values() {
            if r.delivered_at < from {
                continue;
            }
            let Some(expected) = expected_cell(&q.parsed.metric, r.status) else {
                continue;
            };
            let Some(first) = r.series.first() else {
                continue;
            };
            let in_widget = q
                .parsed
                .filters
                .iter()
                .all(|(k, v)| first.tag(k).is_none_or(|sent| sent == v));
            if !in_widget || first.tag("source").is_none() {
                continue;
            }
            let cell = answer.iter().find(|s| {
                q.parsed
                    .group_by
                    .iter()
                    .all(|k| s.tag(k).is_some() && s.tag(k) == first.tag(k))
            });
            let got = cell.and_then(Series::last).map(|(_, v)| v);
            match (expected, got) {
                (None, _) => {}
                (Some(want), Some(got)) if (want - got).abs() < 1e-9 => {}
                (Some(want), got) => out.push(problem(
                    "cell_disagrees",
                    format!(
                        "row {} was delivered {} ({want}); the cell shows {}",
                        r.name(),
                        r.status,
                        got.map(|g| g.to_string())
                            .unwrap_or_else(|| "nothing".into())
                    ),
                    true,
                )),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_variables_take_their_defaults() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/infra-health.toml");
        let plan = crate::config::load(&path).expect("bundled config");
        let d = crate::dashboard::render(&plan).expect("dashboard");
        let qs = widget_queries(&d);
        assert!(qs.len() > 20, "{}", qs.len());
        let ci = qs
            .iter()
            .find(|q| q.widget == "CI health" && q.name == "status")
            .expect("the CI matrix");
        assert_eq!(
            ci.query,
            "min:metta.infra.cron.check.status{source:cron,workflow_category:ci,env:prod} by {workflow_name,task,check}"
        );
        assert!(ci.path.starts_with("widgets["), "{}", ci.path);
        assert!(qs.iter().all(|q| !q.query.contains('$')));
    }

    #[test]
    fn empty_queries_and_matrix_cells_are_judged_against_what_was_delivered() {
        use super::super::{DeliveredRow, SentSeries};
        let text = "min:p.cron.check.status{source:cron,workflow_category:ci,env:prod} by {workflow_name,task,check}";
        let q = WidgetQuery {
            widget: "CI health".into(),
            path: "widgets[1].definition".into(),
            widget_type: "query_table".into(),
            name: "status".into(),
            query: text.into(),
            parsed: MetricQuery::parse(text).unwrap(),
        };
        let tags: Vec<String> = [
            "source:cron",
            "workflow_category:ci",
            "workflow_name:w",
            "task:t",
            "check:c",
            "status:pass",
            "env:prod",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        let mut last = LastDelivered::default();
        last.rows.insert(
            "cron:ci/w/t/c".into(),
            DeliveredRow {
                row: crate::checks::RowId {
                    source: "cron".into(),
                    workflow_category: "ci".into(),
                    workflow_name: "w".into(),
                    task: "t".into(),
                    check: "c".into(),
                    repo: None,
                },
                status: Status::Pass,
                delivered_at: 1_000,
                series: vec![SentSeries {
                    metric: "p.cron.check.status".into(),
                    tags,
                    value: 1.0,
                    timestamp: 1_000,
                }],
            },
        );
        let cell = |v: f64| Series {
            metric: "p.cron.check.status".into(),
            tags: vec!["workflow_name:w".into(), "task:t".into(), "check:c".into()],
            points: vec![(1_000, v)],
            interval: Some(20),
        };
        let qs = std::slice::from_ref(&q);
        assert!(problems(qs, &[vec![cell(1.0)]], &last, 500).is_empty());
        let p = problems(qs, &[vec![cell(0.0)]], &last, 500);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].fails && p[0].kind == "cell_disagrees", "{p:?}");
        assert!(
            p[0].detail.contains("delivered pass (1); the cell shows 0"),
            "{p:?}"
        );
        // No series: a failure only when the metric was delivered in the window.
        let p = problems(qs, &[vec![]], &last, 500);
        assert_eq!(p[0].kind, "no_data_sent");
        assert!(!p[0].fails);
        last.metrics.insert("p.cron.check.status".into(), 1_000);
        let p = problems(qs, &[vec![]], &last, 500);
        assert!(p[0].fails && p[0].kind == "no_series", "{p:?}");
        assert_eq!(p[0].widget, "CI health (status)");
    }
}
