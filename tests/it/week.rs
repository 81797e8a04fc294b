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

use serde_json::Value;

use crate::support::fake_datadog::{FakeDatadog, Fault, Recorded};
use crate::support::fake_github::{FakeGithub, Faults};
use crate::support::github_history::{History, REPO, Sizes};
use crate::support::query_eval::{Intake, live_span_secs};
use crate::support::week_scenario::*;
use infra_health::run::{RunOptions, RunSummary};

/// One query of one widget of the rendered dashboard.
struct WidgetQuery {
    title: String,
    name: String,
    query: String,
    /// A query table's reducer over time.
    aggregator: Option<String>,
    /// The widget's own time frame, when it pins one.
    live_span: Option<String>,
}

fn queries(dashboard: &Value) -> Vec<WidgetQuery> {
    fn walk(v: &Value, out: &mut Vec<WidgetQuery>) {
        let Some(def) = v.get("definition") else {
            return;
        };
        let title = def["title"].as_str().unwrap_or("").to_string();
        let live_span = def["time"]["live_span"].as_str().map(str::to_string);
        for req in def["requests"].as_array().into_iter().flatten() {
            for q in req["queries"].as_array().into_iter().flatten() {
                out.push(WidgetQuery {
                    title: title.clone(),
                    name: q["name"].as_str().unwrap_or("").to_string(),
                    query: q["query"].as_str().unwrap_or("").to_string(),
                    aggregator: q["aggregator"].as_str().map(str::to_string),
                    live_span: live_span.clone(),
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

struct Reader<'a> {
    intake: Intake<'a>,
    queries: Vec<WidgetQuery>,
}

impl Reader<'_> {
    fn query(&self, title: &str, name: &str) -> &WidgetQuery {
        self.queries
            .iter()
            .find(|q| q.title == title && q.name == name)
            .unwrap_or_else(|| panic!("no query {name:?} in widget {title:?}"))
    }

    /// One number for the frame `[from, to]` (seconds since t0); the query has one group.
    fn scalar(&self, text: &str, from: i64, to: i64, reducer: &str) -> Option<f64> {
        let groups = self
            .intake
            .scalar(text, at(from).timestamp(), at(to).timestamp(), reducer)
            .unwrap();
        assert!(groups.len() <= 1, "{text}: {groups:?}");
        groups.into_values().next()
    }

    /// A matrix cell (`column`: status, inferred or unknown) of the row `task`, at `to`, over
    /// the widget's own time frame when it pins one (else `frame`, the dashboard's), unless
    /// `ignore_pin`.
    fn matrix(&self, category: &str, column: &str, task: &str, frame: i64, to: i64) -> Option<f64> {
        self.matrix_with(category, column, task, frame, to, false)
    }

    fn matrix_with(
        &self,
        category: &str,
        column: &str,
        task: &str,
        frame: i64,
        to: i64,
        ignore_pin: bool,
    ) -> Option<f64> {
        let q = self.query(&format!("{category} health"), column);
        let frame = match (&q.live_span, ignore_pin) {
            (Some(span), false) => live_span_secs(span).expect("a live span the evaluator knows"),
            _ => frame,
        };
        self.intake
            .scalar(
                &q.query,
                at(to - frame).timestamp(),
                at(to).timestamp(),
                q.aggregator.as_deref().unwrap_or("last"),
            )
            .unwrap()
            .into_iter()
            .find(|(g, _)| g.split(',').any(|kv| kv == format!("task:{task}")))
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

/// The time of the last run of the week, in seconds since t0.
const END: i64 = (STEPS - 1) * STEP;

/// One run at `t`, killed (its future dropped, as SIGKILL would end it) after `kill` if given.
async fn run_at(
    plan: &infra_health::config::Plan,
    opts: RunOptions,
    kill: Option<std::time::Duration>,
) -> Option<RunSummary> {
    let run = infra_health::run::run(plan, opts);
    match kill {
        Some(after) => tokio::time::timeout(after, run)
            .await
            .ok()
            .map(|r| r.unwrap()),
        None => Some(run.await.unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_cron_runs_reads_true_in_datadog_at_every_time_frame() {
    use rand::{Rng, SeedableRng};
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
    let state = dir.path().join("state");
    let opts = |t: i64| RunOptions {
        state: Some(state.display().to_string()),
        now: Some(at(t)),
        datadog_key: Some(infra_health::secret::Secret::new(KEY)),
        ..Default::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261203);
    // (time, status, inferred, reason) of the reverts row during the outage.
    let mut during_outage = Vec::new();
    let mut killed = Vec::new();
    let mut ledger = (0usize, 0usize);
    for t in steps() {
        github.with_history(REPO, |h| show(h, &s, t));
        github.set_faults(Faults {
            broken_repos: if collector_up(t) {
                Vec::new()
            } else {
                vec![REPO.into()]
            },
            ..Default::default()
        });
        std::fs::write(dir.path().join(EVAL_FILE), evals(t)).unwrap();
        intake.set_now(at(t).timestamp());
        if t == WIPE {
            std::fs::remove_dir_all(&state).unwrap();
        }
        let kill = KILLS.contains(&t).then(|| {
            // Datadog slow to answer, and the pod killed at a random instant of the run.
            std::time::Duration::from_millis(rng.random_range(0..400))
        });
        if kill.is_some() {
            intake.fault_rate(
                1.0,
                t as u64,
                vec![Fault::Slow(std::time::Duration::from_secs(3))],
            );
        } else if !datadog_up(t) {
            intake.fault_rate(1.0, t as u64, vec![Fault::status(503)]);
        } else {
            intake.fault_rate(0.0, 0, Vec::new());
        }
        let summary = if overlapping(t) {
            let (a, b) = tokio::join!(run_at(&plan, opts(t), None), run_at(&plan, opts(t), None));
            assert!(b.is_some_and(|b| b.delivery.ok));
            a
        } else {
            run_at(&plan, opts(t), kill).await
        };
        let Some(summary) = summary else {
            killed.push(t);
            continue;
        };
        ledger.0 += summary.delivery.restamped_points;
        ledger.1 += summary.delivery.baselined;
        assert_eq!(
            summary.delivery.ok,
            datadog_up(t),
            "run at {}: {:?}",
            at(t),
            summary.delivery.problems
        );
        if !collector_up(t) {
            let r = row(&summary, "reverts");
            during_outage.push((t, r.status, r.inferred));
        }
    }
    intake.fault_rate(0.0, 0, Vec::new());
    eprintln!(
        "runs killed at {killed:?}; re-stamped {} points; baselined {} identities",
        ledger.0, ledger.1
    );
    assert!(
        !killed.is_empty(),
        "no kill landed: the kill delays are too long"
    );
    assert!(ledger.0 > 0, "the Datadog outage re-stamped nothing");
    assert!(
        ledger.1 > 0,
        "nothing was baselined by the first run and the wipe"
    );
    // The spool is empty once Datadog answers again: every batch delivered or taken over.
    let spool = state.join("spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "spool not empty after the week: {left:?}");
    let rows_bytes = std::fs::metadata(state.join("rows.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!("rows.json after the week: {rows_bytes} bytes");

    // An unchanged steady-state run right after the last one: every GitHub request is
    // conditional and answered 304, which costs nothing on the primary rate limit.
    github.clear_log();
    intake.set_now(at(END + 60).timestamp());
    let unchanged = infra_health::run::run(&plan, opts(END + 60)).await.unwrap();
    assert!(unchanged.delivery.ok);
    let log = github.log();
    assert!(!log.is_empty());
    let charged: Vec<_> = log.iter().filter(|l| l.status != 304).collect();
    assert!(
        charged.is_empty(),
        "requests that cost rate limit: {charged:?}"
    );

    // What Datadog keeps: one value per series and second, last write wins.
    let raw = intake.recorded();
    let points = intake.stored();
    let counts: Vec<&Recorded> = raw.iter().filter(|p| p.kind == Some(1)).collect();
    assert!(!counts.is_empty());
    assert!(
        counts
            .iter()
            .all(|p| p.values == [p.values[0]] && p.values[0] > 0.0),
        "a COUNT point of 0: {:?}",
        counts.iter().find(|p| p.values[0] <= 0.0)
    );
    assert!(
        counts.iter().all(|p| p.interval == Some(600)),
        "COUNT interval is the job's period: {:?}",
        counts.iter().find(|p| p.interval != Some(600))
    );
    let mut seconds = std::collections::HashSet::new();
    for p in &counts {
        assert!(
            seconds.insert(p.key()),
            "two COUNT points of one series in one second (Datadog keeps the last): {p:?}"
        );
    }
    let dashboard = infra_health::dashboard::render(&plan).unwrap();
    let reader = Reader {
        intake: Intake {
            points: &points,
            variables: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        },
        queries: queries(&dashboard),
    };

    // 1. Each distribution sample arrived once over the week: as many samples as attempts and
    // jobs that ran, and no sample or increment from an inferred row.
    let samples = |metric: &str| -> usize {
        points
            .iter()
            .filter(|p| p.metric == metric && p.kind.is_none())
            .map(|p| p.values.len())
            .sum()
    };
    assert_eq!(
        samples("metta.infra.cron.ci.workflow.duration"),
        truth.durations.len(),
        "workflow duration samples over the week"
    );
    assert_eq!(
        samples("metta.infra.cron.ci.jobs.queue_time"),
        truth.queue.len(),
        "queue time samples over the week"
    );
    assert_eq!(
        samples("metta.infra.cron.delivery.lead_time"),
        truth.lead.len(),
        "lead time samples over the week"
    );
    // The catch-up's 30,000 samples arrived whole, split over requests within the limits.
    let eval_truth = eval_samples_truth();
    assert_eq!(
        samples("metta.infra.cron.eval.latency"),
        eval_truth.len(),
        "eval latency samples over the week"
    );
    let largest = raw
        .iter()
        .filter(|p| p.metric == "metta.infra.cron.eval.latency")
        .map(|p| p.values.len())
        .max()
        .unwrap_or(0);
    assert!(largest <= 5_000, "one entry of {largest} samples");
    let inferred_sent: Vec<&Recorded> = points
        .iter()
        .filter(|p| p.kind.is_none() || p.kind == Some(1))
        .filter(|p| p.tags.iter().any(|t| t == "inferred:true"))
        .collect();
    assert!(
        inferred_sent.is_empty(),
        "an inferred row sent samples or increments: {:?}",
        inferred_sent.first()
    );
    // 3. Inferred rows did re-send their gauges during the outage.
    assert!(points.iter().any(|p| {
        p.metric == "metta.infra.state.carry_forward"
            && p.values == [1.0]
            && p.tags.iter().any(|t| t == "task:reverts")
    }));

    // 2. and 5. Each row read through the dashboard's own queries, at three time frames.
    let end_levels = levels(&s, END);
    for frame in [3_600, 86_400, WINDOW] {
        let from = END - frame;
        let label = |what: &str| format!("{what}, {frame}s frame ending {}", at(END));
        for (title, events, level) in [
            ("Flaky reruns, 7 days", &truth.flaky, end_levels.flaky),
            ("Reverts, 7 days", &truth.reverts, end_levels.reverts),
            ("Hotfixes, 7 days", &truth.hotfixes, end_levels.hotfixes),
            (
                "Training bugs opened, 7 days",
                &truth.bugs_opened,
                end_levels.bugs_opened,
            ),
            (
                "Training bugs closed, 7 days",
                &truth.bugs_closed,
                end_levels.bugs_closed,
            ),
            ("Deployments, 7 days", &truth.deploys, end_levels.deploys),
            (
                "Failed deployments, 7 days",
                &truth.failed_deploys,
                end_levels.failed_deploys,
            ),
        ] {
            // The COUNT, summed as Datadog does by default: the events first seen in the frame.
            let q = &reader.query(title, "events").query;
            let sum = reader.scalar(q, from, END, "sum").unwrap_or(0.0);
            assert_eq!(
                sum,
                in_frame(events, from, END) as f64,
                "{}: {q}",
                label(title)
            );
            // The level over the window, read last: what the row compares.
            let q = &reader.query(title, "level").query;
            let last = reader.scalar(q, from, END, "last");
            assert_eq!(last, Some(level as f64), "{}: {q}", label(title));
        }
        let q = &reader.query("Open bugs: training", "value").query;
        assert_eq!(
            reader.scalar(q, from, END, "last"),
            Some(end_levels.open_bugs as f64),
            "{}",
            label("open training bugs")
        );
        for (title, samples) in [
            ("p90 workflow duration — p50 / p90", &truth.durations),
            ("Job queue time p90 — p50 / p90", &truth.queue),
            ("Lead time for changes p90 — p50 / p90", &truth.lead),
            ("Eval latency p50 — p50 / p90", &eval_truth),
        ] {
            let in_it: Vec<f64> = samples
                .iter()
                .filter(|(d, _)| *d >= from && *d <= END)
                .map(|(_, v)| *v)
                .collect();
            let q = &reader.query(title, "p90").query;
            assert_eq!(
                reader.scalar(q, from, END, "avg"),
                p90(in_it.clone()),
                "{}: {q}",
                label(title)
            );
            let count = q.replacen("p90:", "count:", 1);
            assert_eq!(
                reader.scalar(&count, from, END, "sum").unwrap_or(0.0),
                in_it.len() as f64,
                "{}: {count}",
                label(title)
            );
        }
        // The matrix shows the current status whatever the frame: the last Tests run passed
        // a quarter of an hour after one that failed.
        assert_eq!(latest_verdict(&s, END), Some("success"));
        assert_eq!(
            reader.matrix("CI", "status", "tests_blocking_merge", frame, END),
            Some(1.0),
            "{}",
            label("matrix status of Tests")
        );
        for (category, task) in [
            ("CI", "flaky_reruns"),
            ("CI", "workflow_duration"),
            ("Code", "reverts"),
            ("Code", "training_bugs"),
        ] {
            for column in ["unknown", "inferred"] {
                assert_eq!(
                    reader.matrix(category, column, task, frame, END),
                    Some(0.0),
                    "{}",
                    label(&format!("{column} flag of {task}"))
                );
            }
        }
    }
    // Without its pinned frame, the matrix at a week would read the hour's worst status: the
    // last hourly bucket holds both the failure and the recovery.
    assert_eq!(
        reader.matrix_with("CI", "status", "tests_blocking_merge", WINDOW, END, true),
        Some(0.0),
        "the evaluator no longer shows why the matrix pins its frame"
    );

    // The outage: inferred within the carry-forward limit (30m), then unknown; the revert made
    // during it is counted once, by the first run after it.
    use infra_health::checks::Status;
    assert!(
        during_outage
            .iter()
            .filter(|(t, ..)| *t < OUTAGE.0 + 1_800)
            .all(|(_, status, inferred)| *inferred && *status != Status::Unknown),
        "{during_outage:?}"
    );
    assert!(
        during_outage
            .iter()
            .filter(|(t, ..)| *t > OUTAGE.0 + 1_800)
            .all(|(_, status, inferred)| !*inferred && *status == Status::Unknown),
        "{during_outage:?}"
    );
    let cell = reader.matrix("Code", "unknown", "reverts", 3_600, OUTAGE.0 + 7_200);
    assert_eq!(
        cell,
        Some(1.0),
        "the matrix shows the row grey during the outage"
    );
    assert!(truth.reverts.contains(&OUTAGE.1), "{:?}", truth.reverts);
    // Both hotfixes fail the deployment before them; a deployment every eight hours.
    assert_eq!(truth.failed_deploys.len(), 2, "{:?}", truth.failed_deploys);
    assert!(truth.deploys.len() >= 20 && truth.lead.len() >= 80);
}
