//! A dead pipeline shows and pages: ten-minute runs on a pinned clock (the week scenario's
//! GitHub history and config, [`support::week_scenario`]) with the pipeline stopped for two
//! hours on the day (no run at all, as when the CronJob's image cannot be pulled). The
//! dashboard's own matrix queries, the heartbeat tile and the job monitors' queries are then
//! evaluated over what the fake intake accepted ([`support::query_eval`]), minute by minute
//! through the stop.
//!
//! What must hold: within each row's `carry_forward` plus one period of the last delivered
//! run, no matrix cell shows pass any more (with the old one-hour frame it still did); the
//! heartbeat tile says how long ago each job last delivered; each job monitor's query has no
//! data for its no-data timeframe, so it notifies; and after the restart the matrix answers
//! again.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::fake_datadog::FakeDatadog;
use crate::support::fake_github::FakeGithub;
use crate::support::github_history::{History, REPO, Sizes};
use crate::support::query_eval::{Intake, live_span_secs};
use crate::support::week_scenario::*;
use infra_health::run::RunOptions;

/// The stop: no run from 06:00 to 08:00 (the last run before it is at 05:50).
const STOP: (i64, i64) = (6 * 3_600, 8 * 3_600);
/// The runs: 00:00 to 11:50, every ten minutes, except during the stop.
const END: i64 = 12 * 3_600;
const LAST_BEFORE_STOP: i64 = STOP.0 - STEP;

struct Cell {
    title: String,
    name: String,
    query: String,
    span: Option<String>,
}

fn matrix_queries(dashboard: &Value) -> Vec<Cell> {
    fn walk(v: &Value, out: &mut Vec<Cell>) {
        let def = &v["definition"];
        if def["type"] == "query_table"
            && def["title"]
                .as_str()
                .is_some_and(|t| t.ends_with(" health"))
        {
            for q in def["requests"][0]["queries"]
                .as_array()
                .into_iter()
                .flatten()
            {
                out.push(Cell {
                    title: def["title"].as_str().unwrap_or("").into(),
                    name: q["name"].as_str().unwrap_or("").into(),
                    query: q["query"].as_str().unwrap_or("").into(),
                    span: def["time"]["live_span"].as_str().map(str::to_string),
                });
            }
        }
        for w in def["widgets"].as_array().into_iter().flatten() {
            walk(w, out);
        }
    }
    let mut out = Vec::new();
    for w in dashboard["widgets"].as_array().into_iter().flatten() {
        walk(w, &mut out);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_pipeline_turns_the_matrix_grey_and_every_job_monitor_has_no_data() {
    let s = scenario();
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
        &dir.path().join("dead.toml"),
        &config(&github.url, &intake.url),
    )
    .unwrap();
    assert_eq!(
        plan.datadog.period.as_secs(),
        STEP as u64,
        "the default period is the step"
    );
    let state = dir.path().join("state").display().to_string();
    let mut ran = Vec::new();
    for t in (0..END).step_by(STEP as usize) {
        if (STOP.0..STOP.1).contains(&t) {
            continue;
        }
        github.with_history(REPO, |h| show(h, &s, t));
        std::fs::write(dir.path().join(EVAL_FILE), evals(t)).unwrap();
        intake.set_now(at(t).timestamp());
        let opts = RunOptions {
            state: Some(state.clone()),
            now: Some(at(t)),
            datadog_key: Some(infra_health::secret::Secret::new(KEY)),
            ..Default::default()
        };
        let summary = infra_health::run::run(&plan, opts).await.unwrap();
        assert!(
            summary.delivery.ok,
            "run at {t}: {:?}",
            summary.delivery.problems
        );
        ran.push(t);
    }
    assert!(ran.contains(&LAST_BEFORE_STOP) && ran.contains(&STOP.1));

    let points = intake.recorded();
    let intake = Intake {
        points: &points,
        variables: BTreeMap::from([("env".to_string(), "prod".to_string())]),
    };
    let desired = infra_health::datadog_side::desired(&plan, "https://example.invalid/d").unwrap();
    let cells = matrix_queries(&desired.dashboard);
    let status: Vec<&Cell> = cells.iter().filter(|c| c.name == "status").collect();
    assert!(status.len() >= 2, "matrix widgets: {}", status.len());

    // Every row's status cell at `t` over the widget's own frame (or `frame`).
    let cells_at = |c: &Cell, t: i64, frame: Option<i64>| -> BTreeMap<String, f64> {
        let frame = frame.unwrap_or_else(|| {
            live_span_secs(c.span.as_deref().expect("the matrix pins its frame")).unwrap()
        });
        intake
            .scalar(
                &c.query,
                at(t - frame).timestamp(),
                at(t).timestamp(),
                "last",
            )
            .unwrap()
    };

    // Before the stop each matrix shows its rows, passing ones among them.
    let mut passing = 0;
    for c in &status {
        let before = cells_at(c, LAST_BEFORE_STOP, None);
        assert!(!before.is_empty(), "{}: empty before the stop", c.title);
        passing += before.values().filter(|v| **v == 1.0).count();
    }
    assert!(passing >= 3, "{passing} passing cells before the stop");

    // Through the stop, minute by minute: once carry_forward (30m) plus one period (10m) has
    // passed since the last delivered run, no cell shows pass (the row reads "no data", grey).
    let carry_forward = plan
        .checks
        .iter()
        .map(|d| d.carry_forward.as_secs() as i64)
        .min()
        .unwrap();
    let deadline = LAST_BEFORE_STOP + carry_forward + STEP;
    let mut first_grey: Option<i64> = None;
    for t in (LAST_BEFORE_STOP..STOP.1).step_by(60) {
        let showing_pass: Vec<String> = status
            .iter()
            .flat_map(|c| {
                cells_at(c, t, None)
                    .into_iter()
                    .filter(|(_, v)| *v == 1.0)
                    .map(|(g, _)| format!("{}: {g}", c.title))
                    .collect::<Vec<_>>()
            })
            .collect();
        if showing_pass.is_empty() && first_grey.is_none() {
            first_grey = Some(t);
        }
        if t >= deadline {
            assert!(
                showing_pass.is_empty(),
                "{}s after the last run these cells still show pass: {showing_pass:?}",
                t - LAST_BEFORE_STOP
            );
        }
    }
    let first_grey = first_grey.expect("the matrix never stopped showing pass");
    assert!(
        first_grey <= deadline,
        "grey after {}s",
        first_grey - LAST_BEFORE_STOP
    );
    // The old one-hour frame would still have shown the last pass at the deadline.
    let old: usize = status
        .iter()
        .map(|c| {
            cells_at(c, deadline, Some(3_600))
                .values()
                .filter(|v| **v == 1.0)
                .count()
        })
        .sum();
    assert!(
        old > 0,
        "a one-hour frame would have turned grey too; the test proves nothing"
    );

    // After the restart the matrix answers again.
    for c in &status {
        assert!(
            !cells_at(c, STOP.1, None).is_empty(),
            "{}: empty after the restart",
            c.title
        );
    }

    // The heartbeat tile: per job, how long ago it last delivered (the gap between the last
    // bucket with runs and now), read at the end of the stop.
    let tile = desired.dashboard["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["definition"]["title"] == "Is the pipeline delivering?")
        .expect("the heartbeat group");
    let runs = &tile["definition"]["widgets"][0]["definition"];
    let query = runs["requests"][0]["queries"][0]["query"].as_str().unwrap();
    let span = live_span_secs(runs["time"]["live_span"].as_str().unwrap()).unwrap();
    let now = STOP.1 - 60;
    let series = intake
        .timeseries(query, at(now - span).timestamp(), at(now).timestamp())
        .unwrap();
    let jobs: Vec<&str> = ["actions", "commits", "issues", "deploys", "evals"].to_vec();
    for job in &jobs {
        let buckets = series
            .iter()
            .find(|(g, _)| *g == &format!("collector:{job}"))
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("no heartbeat for {job}: {:?}", series.keys()));
        let last = buckets.iter().rev().find(|(_, v)| v.is_some()).unwrap();
        let ago = at(now).timestamp() - last.0;
        assert!(
            (STOP.1 - 60 - LAST_BEFORE_STOP - STEP..=STOP.1 - 60 - LAST_BEFORE_STOP).contains(&ago),
            "{job}: last delivery {ago}s ago"
        );
        assert_eq!(last.1, Some(1.0), "{job}: one run in its last bucket");
    }

    // Each job monitor: its metric query has data while the job runs, and none over its
    // no-data timeframe during the stop, so Datadog notifies.
    let job_monitors: Vec<&Value> = desired
        .monitors
        .iter()
        .map(|m| &m.body)
        .filter(|b| b["name"].as_str().unwrap().contains("] job "))
        .collect();
    assert_eq!(job_monitors.len(), jobs.len());
    for m in job_monitors {
        let q = m["query"].as_str().unwrap();
        let metric_part = q.split_once("):").unwrap().1.rsplit_once(" < ").unwrap().0;
        let no_data = m["options"]["no_data_timeframe"].as_i64().unwrap() * 60;
        assert!(no_data >= 2 * STEP, "{q}: no-data timeframe {no_data}s");
        let has_data = |t: i64| {
            !intake
                .timeseries(metric_part, at(t - no_data).timestamp(), at(t).timestamp())
                .unwrap()
                .values()
                .all(|b| b.iter().all(|(_, v)| v.is_none()))
        };
        assert!(has_data(LAST_BEFORE_STOP), "{q}: no data while running");
        assert!(
            !has_data(LAST_BEFORE_STOP + no_data + 60),
            "{q}: data during the stop"
        );
        assert!(
            LAST_BEFORE_STOP + no_data + 60 < STOP.1,
            "the stop outlasts the no-data timeframe"
        );
    }
}
