//! The generated dashboard against what the bundled config really sends, and `dashboard
//! render|terraform` end to end.

use std::collections::BTreeMap;
use std::path::Path;

use infra_health::catalog::{Catalog, Presence};
use infra_health::dashboard::{self, query::MetricQuery};
use serde_json::Value as Json;

use crate::support::{bin, forget_identities, repo_root};

type Emitted = (String, BTreeMap<String, String>);

fn bundled_config() -> std::path::PathBuf {
    repo_root().join("config/infra-health.toml")
}

/// The bundled config with its example paths made absolute, so a copy works from anywhere.
fn config_copy(dir: &Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let text = std::fs::read_to_string(bundled_config()).unwrap();
    let examples = repo_root().join("examples");
    let text = text.replace("../examples", examples.to_str().unwrap());
    let path = dir.join("infra-health.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// Run the binary with `args`; it must succeed. Its stdout.
fn succeed<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Vec<u8> {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every series a dry run of `config` sends (metric name and tags).
fn dry_run(config: &Path, state: &Path, extra: &[&str]) -> Vec<Emitted> {
    let out = bin()
        .args(["run", "--dry-run", "--config"])
        .arg(config)
        .arg("--state")
        .arg(state)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Json = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let mut emitted = Vec::new();
    for request in doc["requests"].as_array().unwrap() {
        for s in request["body"]["series"].as_array().unwrap() {
            let tags = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let (k, v) = t.as_str().unwrap().split_once(':').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            emitted.push((s["metric"].as_str().unwrap().to_string(), tags));
        }
    }
    emitted
}

fn plan_rows() -> usize {
    infra_health::config::load(&bundled_config())
        .unwrap()
        .checks
        .len()
}

/// Every metric query string in a dashboard, with the title of its widget.
fn queries(dashboard: &Json) -> Vec<(String, MetricQuery)> {
    fn walk(v: &Json, title: &str, out: &mut Vec<(String, MetricQuery)>) {
        match v {
            // A monitor summary's query searches monitors, not metrics.
            Json::Object(map) if map.get("type") == Some(&Json::from("manage_status")) => {}
            Json::Object(map) => {
                let title = map
                    .get("title")
                    .and_then(Json::as_str)
                    .unwrap_or(title)
                    .to_string();
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("query", Json::String(q)) => out.push((
                            title.clone(),
                            MetricQuery::parse(q).unwrap_or_else(|e| panic!("{q}: {e}")),
                        )),
                        _ => walk(v, &title, out),
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|i| walk(i, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["widgets"], "", &mut out);
    out
}

/// Would Datadog return this series for this query? Filters must be among its tags; a template
/// variable and a grouping need the tag to be there.
fn shows(q: &MetricQuery, (metric, tags): &Emitted) -> bool {
    q.metric == *metric
        && q.filters.iter().all(|(k, v)| tags.get(k) == Some(v))
        && q.variables.iter().all(|v| tags.contains_key(v))
        && q.group_by.iter().all(|k| tags.contains_key(k))
}

#[test]
fn every_emitted_series_is_charted_and_every_query_matches_an_emitted_series() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Everything fresh and every sample and event new: a delivered run (local sink: no key)
    // starts the row memory with a baseline, which is then emptied of its identities as if it
    // had started before any of them (a first run would count nothing). Then only `eval` fresh
    // and every other row carried forward (inferred); then a config whose every source is
    // gone, so every row is unknown.
    let config = bundled_config();
    succeed([
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    forget_identities(&state);
    let mut emitted = dry_run(&bundled_config(), &state, &[]);
    let carried = dry_run(&bundled_config(), &state, &["--only", "eval"]);
    assert!(
        carried
            .iter()
            .any(|(m, _)| m == "metta.infra.state.carry_forward"),
        "the second scenario carries rows forward"
    );
    emitted.extend(carried);
    let broken_dir = tempfile::tempdir().unwrap();
    let broken = config_copy(broken_dir.path(), |t| {
        t.replace("observations/eval.json", "observations/missing.json")
            .replace("examples/github\"", "examples/missing-github\"")
            .replace("examples/stable-suite/", "examples/missing-stable-suite/")
            .replace("tools/request_eval", "tools/missing_request_eval")
    });
    let unknown = dry_run(&broken, &broken_dir.path().join("state"), &[]);
    assert!(
        unknown
            .iter()
            .filter(|(m, _)| m.ends_with(".check.unknown"))
            .count()
            == plan_rows(),
        "in the third scenario every row is unknown"
    );
    emitted.extend(unknown);

    let plan = infra_health::config::load(&bundled_config()).unwrap();
    let catalog = Catalog::of(&plan).unwrap();
    let rendered = dashboard::render(&plan).expect("the bundled dashboard validates");
    let queries = queries(&rendered);
    assert!(queries.len() > 40, "{} queries", queries.len());

    // Side 1: what the runs sent is listed by the catalog and shown by some widget.
    for e in &emitted {
        let (metric, tags) = e;
        let listed = catalog.of_metric(metric).any(|s| {
            s.fixed.iter().all(|(k, v)| tags.get(k) == Some(v))
                && tags.iter().all(|(k, v)| s.may_match(k, v))
        });
        assert!(listed, "{metric} {tags:?} is sent but not in the catalog");
        assert!(
            queries.iter().any(|(_, q)| shows(q, e)),
            "{metric} {tags:?} is sent but no widget shows it"
        );
    }

    // Side 2: every query shows something the runs sent, except the figures that only exist
    // against live services (GitHub's rate-limit headers, points the Datadog sink dropped, the
    // delivery ledger's figures, what a verification read back); the catalog knows those are
    // only sometimes sent.
    let sometimes = [
        "metta.infra.github.rate_limit.remaining",
        "metta.infra.delivery.dropped_points",
        "metta.infra.delivery.restamped_points",
        "metta.infra.delivery.baselined",
        "metta.infra.verify.rows_missing",
        "metta.infra.verify.rows_different",
    ];
    for (title, q) in &queries {
        if sometimes.contains(&q.metric.as_str()) {
            assert!(
                catalog
                    .of_metric(&q.metric)
                    .all(|s| s.presence == Presence::Sometimes),
                "{}",
                q.metric
            );
            continue;
        }
        assert!(
            emitted.iter().any(|e| shows(q, e)),
            "widget {title:?}: query `{q}` matches nothing the bundled config sent"
        );
    }

    // And each of the config's metric names is sent in some scenario or is a `sometimes` one.
    for name in catalog.metric_names() {
        assert!(
            sometimes.contains(&name) || emitted.iter().any(|(m, _)| m == name),
            "{name} is in the catalog but no scenario sent it"
        );
    }
}

#[test]
fn checks_metrics_lists_the_catalog() {
    let config = bundled_config();
    let out = succeed([
        "checks".as_ref(),
        "--metrics".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let text = String::from_utf8(out).unwrap();
    let catalog = Catalog::of(&infra_health::config::load(&config).unwrap()).unwrap();
    assert_eq!(text.lines().count(), catalog.series.len() + 2, "{text}");
    assert!(text.contains(&format!(
        "\n{} series of {} metrics\n",
        catalog.series.len(),
        catalog.metric_names().len()
    )));
    // The bill: one custom metric per gauge or count series, 5 per distribution series and 5
    // more for its percentiles.
    let distributions = catalog
        .series
        .iter()
        .filter(|s| s.kind == infra_health::catalog::SeriesKind::Distribution)
        .count();
    assert_eq!(distributions, 6);
    let cost = catalog.series.len() - distributions + 10 * distributions;
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("custom metrics: about {cost} in a steady hour"))
            && last.contains("percentiles × 5 = 30"),
        "{last}"
    );
    let line = |metric: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{metric} ")))
            .unwrap_or_else(|| panic!("no {metric} in {text}"))
            .to_string()
    };
    let duration = line("metta.infra.cron.ci.workflow.duration");
    assert!(duration.contains(" distribution ") && duration.contains("task:workflow_duration"));
    assert!(line("metta.infra.github.rate_limit.remaining").ends_with("(sometimes)"));
    assert!(
        !text.contains("env:prod"),
        "env and service are left out: {text}"
    );
}

#[test]
fn render_and_terraform_print_the_same_validated_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("dashboard.json");
    let config = bundled_config();
    succeed([
        "dashboard".as_ref(),
        "render".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        json_path.as_os_str(),
    ]);
    let rendered: Json = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(rendered["title"], "Infra health (prod)");
    assert_eq!(rendered["layout_type"], "ordered");

    let tf = succeed([
        "dashboard".as_ref(),
        "terraform".as_ref(),
        "--resource".as_ref(),
        "health".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let tf = String::from_utf8(tf).unwrap();
    assert!(
        tf.contains("resource \"datadog_dashboard_json\" \"health\" {"),
        "{tf}"
    );
    let start = tf.find("<<-EOT\n").unwrap() + "<<-EOT\n".len();
    let end = tf.rfind("EOT\n}").unwrap();
    let embedded: Json = serde_json::from_str(&tf[start..end].replace("$${", "${")).unwrap();
    assert_eq!(
        embedded, rendered,
        "terraform embeds exactly the rendered JSON"
    );
}

#[test]
fn a_new_category_gets_its_own_group_and_a_chart_by_label() {
    // Rows are free to be anything; the generator must keep up. A row in a new category with a
    // label tag gets its own group and a chart grouped by label.
    let dir = tempfile::tempdir().unwrap();
    let config = config_copy(dir.path(), |t| {
        t + r#"
[[check]]
workflow_category = "ops"
workflow_name = "pager"
task = "pages"
check = "weekly_count"
title = "Pages"
collector = "eval"
signal = "eval_queue.probe"
condition = "==success"
tags = { label = "oncall" }
metric = "ops.pages"
"#
    });
    let out = succeed([
        "dashboard".as_ref(),
        "render".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let d: Json = serde_json::from_slice(&out).unwrap();
    let groups: Vec<&str> = d["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["definition"]["title"].as_str())
        .collect();
    assert!(groups.contains(&"ops"), "{groups:?}");
    let qs = queries(&d);
    assert!(
        qs.iter().any(|(t, q)| t == "Pages"
            && q.metric == "metta.infra.cron.ops.pages"
            && q.group_by == ["label"]),
        "{:?}",
        qs.iter()
            .map(|(t, q)| format!("{t}: {q}"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn every_declared_self_metric_is_drawn_on_the_chart_its_collector_declares() {
    // The dashboard names no collector: what it draws of a collector's own figures comes from
    // the declarations in the registry. Read them here, and find each on the chart it names.
    let plan = infra_health::config::load(&bundled_config()).unwrap();
    let rendered = dashboard::render(&plan).expect("render");
    let drawn = queries(&rendered);
    let prefix = plan.schema.prefix().to_string();
    let configured: Vec<&str> = plan.collectors.iter().map(|c| c.kind).collect();
    let mut checked = 0;
    for kind in infra_health::collectors::REGISTRY {
        if !configured.contains(&kind.name) {
            continue;
        }
        for decl in kind.self_metrics {
            let metric = format!("{prefix}.{}", decl.path);
            let on: Vec<&(String, MetricQuery)> =
                drawn.iter().filter(|(_, q)| q.metric == metric).collect();
            assert!(!on.is_empty(), "{metric} ({}) is not charted", kind.name);
            if let Some(chart) = decl.chart {
                for (title, q) in &on {
                    assert_eq!(title, chart.title, "{metric}");
                    assert_eq!(q.aggregator, chart.aggregation, "{metric}");
                    assert_eq!(
                        q.group_by.contains(&"collector".to_string()),
                        chart.per_collector,
                        "{metric}: {q:?}"
                    );
                }
                checked += 1;
            }
        }
    }
    // The bundled config has GitHub collectors (six figures) and a stable-suite import (two).
    assert!(checked >= 8, "{checked} declared charts checked");
}
