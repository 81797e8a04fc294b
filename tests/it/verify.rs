//! `infra-health verify` and `run --verify` against the fake Datadog, which answers the query
//! API from what its intake accepted (through the query evaluator).

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use crate::support::fake_datadog::{FakeDatadog, Fault};
use crate::support::{bin, repo_root};

const API_KEY: &str = "api-key-for-verify-tests-000000";
const APP_KEY: &str = "app-key-for-verify-tests-111111";

/// Rows of the bundled matrix.
const ROWS: usize = 26;

struct Setup {
    fake: FakeDatadog,
    dir: tempfile::TempDir,
    config: PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn setup() -> Setup {
    let fake = FakeDatadog::start(API_KEY);
    fake.set_app_key(APP_KEY);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("config/infra-health.toml")).unwrap();
    let text = text.replace(
        "../examples",
        repo_root().join("examples").to_str().unwrap(),
    );
    let config = dir.path().join("infra-health.toml");
    std::fs::write(&config, text).unwrap();
    Setup { fake, dir, config }
}

impl Setup {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The binary with the config, state, keys (`api`, and `app` when given) and the fake.
    fn cmd(&self, args: &[&str], api: &str, app: Option<&str>) -> Out {
        let mut c = bin();
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--state")
            .arg(self.state())
            .env("DD_API_KEY", api)
            .env("DD_URL", &self.fake.url);
        if let Some(app) = app {
            c.env("DD_APP_KEY", app);
        }
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        for key in [API_KEY, APP_KEY] {
            assert!(
                !stdout.contains(key) && !stderr.contains(key),
                "a key leaked:\n{stdout}\n{stderr}"
            );
        }
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }

    fn run(&self) {
        let out = self.cmd(&["run"], API_KEY, None);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    }

    fn verify(&self, extra: &[&str]) -> Out {
        let mut args = vec!["verify"];
        args.extend_from_slice(extra);
        self.cmd(&args, API_KEY, Some(APP_KEY))
    }

    /// The line of `row` in a verify report.
    fn line<'a>(out: &'a Out, row: &str) -> &'a str {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == row))
            .unwrap_or_else(|| panic!("no line for {row}:\n{}", out.stdout))
    }
}

#[test]
fn verify_finds_every_row_landed_in_a_few_requests() {
    let s = setup();
    s.run();
    // The run recorded what it delivered, with no key in it.
    let record = std::fs::read_to_string(s.state().join("verify/last_delivered.json")).unwrap();
    assert!(!record.contains(API_KEY));
    let v: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(v["data"]["rows"].as_object().unwrap().len(), ROWS, "{v:#}");

    let out = s.verify(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("{ROWS} rows: {ROWS} landed, 0 missing")),
        "{}",
        out.stdout
    );
    assert!(
        Setup::line(&out, "evaluation/eval_queue/queue/queue_healthy").starts_with("landed"),
        "{}",
        out.stdout
    );
    let requests = s.fake.query_requests();
    assert!(
        (1..=4).contains(&requests),
        "the bundled config takes a handful of query requests, not {requests}"
    );
    eprintln!("bundled config: {requests} query requests");

    let out = s.verify(&["--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["summary"]["landed"], ROWS);
    assert_eq!(report["requests"], requests);
    assert_eq!(report["rows"].as_array().unwrap().len(), ROWS);
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "landed")
    );
}

#[test]
fn a_metric_dropped_after_the_202_is_reported_missing() {
    let s = setup();
    // Accepted with a 202, never stored: a Metrics-without-Limits configuration.
    s.fake.drop_metric("metta.infra.cron.eval.queue.healthy");
    s.run();
    let out = s.verify(&[]);
    assert_eq!(out.code, 7, "{}\n{}", out.stdout, out.stderr);
    let line = Setup::line(&out, "evaluation/eval_queue/queue/queue_healthy");
    assert!(line.starts_with("missing"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("metta.infra.cron.eval.queue.healthy: no series with this row's tags"),
        "{}",
        out.stdout
    );
    // Only that row.
    assert!(
        out.stdout
            .contains(&format!("{ROWS} rows: {} landed, 1 missing", ROWS - 1)),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("NOT everything delivered is visible"));
}

#[test]
fn a_tag_rewritten_by_datadog_is_reported() {
    let s = setup();
    // Datadog turns characters it does not accept into `_`: had `condition:<5m` been sent,
    // it would be stored as `condition:_5m`.
    s.fake.rewrite_tags("lt_", "_");
    s.run();
    let out = s.verify(&["--json"]);
    assert_eq!(out.code, 7, "{}\n{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["row"] == name)
            .unwrap_or_else(|| panic!("{name}: {report:#}"))
    };
    // `<10` is sent as `condition:lt_10`.
    let timed_out = row("ci/ci_smoothness/jobs_timed_out/weekly_count");
    assert_eq!(timed_out["outcome"], "different_tags", "{timed_out:#}");
    assert!(
        timed_out["details"][0]
            .as_str()
            .unwrap()
            .contains("sent condition:lt_10, Datadog holds condition:_10"),
        "{timed_out:#}"
    );
    // `==success` is not touched.
    assert_eq!(
        row("evaluation/eval_queue/queue/queue_healthy")["outcome"],
        "landed"
    );
    assert!(report["summary"]["rows_different"].as_u64().unwrap() > 0);
    assert_eq!(report["ok"], false);
}

#[test]
fn keys_of_another_site_are_a_clear_error() {
    let s = setup();
    s.run();
    // An API key valid on another site: the fake (this "site") refuses it with 403.
    let out = s.cmd(
        &["verify"],
        "api-key-of-another-site-22222222",
        Some(APP_KEY),
    );
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("refused the keys (HTTP 403)")
            && out.stderr.contains("DD_APP_KEY")
            && out.stderr.contains("DD_SITE"),
        "{}",
        out.stderr
    );
    // 403 is never retried.
    assert_eq!(s.fake.query_requests(), 1);
}

#[test]
fn without_the_application_key_verify_says_how_to_get_one() {
    let s = setup();
    s.run();
    let out = s.cmd(&["verify"], API_KEY, None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("set DD_APP_KEY") && out.stderr.contains("Application Keys"),
        "{}",
        out.stderr
    );
    assert_eq!(s.fake.query_requests(), 0);
    // `run --verify` refuses before doing any work.
    let before = s.fake.recorded().len();
    let out = s.cmd(&["run", "--verify"], API_KEY, None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("DD_APP_KEY"), "{}", out.stderr);
    assert_eq!(s.fake.recorded().len(), before, "nothing was delivered");
}

#[test]
fn verify_before_any_delivery_or_after_none_in_the_window_says_so() {
    let s = setup();
    let out = s.verify(&[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing to verify") && out.stderr.contains("infra-health run"),
        "{}",
        out.stderr
    );
    // Deliveries older than the window are not read back; with nothing newer, the job has
    // stopped delivering, which is not "all landed".
    s.run();
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let out = s.verify(&["--since", "1s"]);
    assert_eq!(out.code, 7, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("{ROWS} not checked"))
            && out.stdout.contains("NOTHING was delivered in the window"),
        "{}",
        out.stdout
    );
    assert!(
        Setup::line(&out, "evaluation/eval_queue/queue/queue_healthy").starts_with("not checked"),
        "{}",
        out.stdout
    );
    let out = s.verify(&["--since", "soon"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn rate_limited_queries_wait_for_the_reset_then_succeed() {
    let s = setup();
    s.run();
    s.fake.push_faults([Fault::RateLimited { reset: 1 }]);
    let started = Instant::now();
    let out = s.verify(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        started.elapsed().as_secs_f64() >= 1.0,
        "X-RateLimit-Reset was not honoured"
    );
    let seen = s.fake.seen();
    let queries: Vec<_> = seen.iter().filter(|r| r.path == "/api/v1/query").collect();
    assert_eq!(queries[0].status, 429);
    assert!(queries[1..].iter().all(|r| r.status == 200));
    assert!(
        out.stderr.contains("429"),
        "the retry is logged: {}",
        out.stderr
    );
}

/// The bundled config's distributions, with percentiles on in the fake (as `datadog apply`
/// leaves them) except `off`.
fn percentiles_on(fake: &FakeDatadog, off: Option<&str>) {
    for metric in [
        "metta.infra.cron.ci.workflow.duration",
        "metta.infra.cron.ci.jobs.queue_time",
        "metta.infra.cron.github.pulls.time_to_merge",
        "metta.infra.cron.delivery.lead_time",
        "metta.infra.cron.delivery.recovery_time",
        "metta.infra.cron.eval.remote.latency",
    ] {
        fake.set_tag_config(
            metric,
            serde_json::json!({"metric_type": "distribution", "tags": [],
                "include_percentiles": Some(metric) != off, "exclude_tags_mode": true}),
        );
    }
}

#[test]
fn verify_dashboard_names_a_distribution_whose_percentiles_are_off() {
    let s = setup();
    percentiles_on(&s.fake, Some("metta.infra.cron.ci.jobs.queue_time"));
    s.run();
    let out = s.verify(&["--dashboard"]);
    assert_eq!(out.code, 7, "{}\n{}", out.stdout, out.stderr);
    let fails: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL widget"))
        .collect();
    assert_eq!(fails.len(), 1, "{}", out.stdout);
    assert!(
        fails[0].starts_with("FAIL widget \"percentiles of metta.infra.cron.ci.jobs.queue_time\"")
            && fails[0].contains("percentiles are off"),
        "{}",
        out.stdout
    );
}

#[test]
fn dashboard_widgets_querying_a_metric_that_never_lands_are_named() {
    let s = setup();
    percentiles_on(&s.fake, None);
    s.fake.drop_metric("metta.infra.cron.eval.remote.duration");
    s.run();
    let out = s.verify(&["--dashboard"]);
    assert_eq!(out.code, 7, "{}\n{}", out.stdout, out.stderr);
    let fails: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL widget"))
        .collect();
    assert_eq!(fails.len(), 1, "{}", out.stdout);
    assert!(
        fails[0].starts_with("FAIL widget \"Remote eval duration (value)\"")
            && fails[0].contains("although metta.infra.cron.eval.remote.duration was delivered"),
        "{}",
        out.stdout
    );
    // A widget of a metric sent only on events (dropped points) is a note, not a failure.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("note widget \"Points dropped")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("1 dashboard widget problems"),
        "{}",
        out.stdout
    );

    // With every metric landing, the matrix cells agree with the rows' statuses.
    let s = setup();
    percentiles_on(&s.fake, None);
    s.run();
    let out = s.verify(&["--dashboard", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let widgets = report["widgets"].as_array().unwrap();
    assert!(widgets.iter().all(|w| w["fails"] == false), "{widgets:#?}");
    eprintln!(
        "bundled config with --dashboard: {} query requests",
        report["requests"]
    );
}

#[test]
fn run_verify_polls_then_sends_the_result_as_self_metrics() {
    let s = setup();
    let out = s.cmd(&["run", "--verify=5s"], API_KEY, Some(APP_KEY));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("\nverify:\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{ROWS} rows: {ROWS} landed")),
        "{}",
        out.stdout
    );
    let value = |metric: &str| {
        let points: Vec<_> = s
            .fake
            .recorded()
            .into_iter()
            .filter(|p| p.metric == metric)
            .collect();
        assert_eq!(points.len(), 1, "{metric}: {points:?}");
        assert!(
            points[0]
                .tags
                .contains(&"workflow_category:self".to_string())
        );
        assert!(points[0].tags.contains(&"workflow_name:verify".to_string()));
        points[0].values[0]
    };
    assert_eq!(value("metta.infra.verify.rows_missing"), 0.0);
    assert_eq!(value("metta.infra.verify.rows_different"), 0.0);
    // The catalog lists them with the tags they were sent with, and a dashboard widget shows
    // them: what `checks metrics` and the dashboard promise is what verify sends.
    let plan = infra_health::config::load(&s.config).unwrap();
    let catalog = infra_health::catalog::Catalog::of(&plan).unwrap();
    let rendered = infra_health::dashboard::render(&plan).unwrap().to_string();
    for point in s
        .fake
        .recorded()
        .into_iter()
        .filter(|p| p.metric.starts_with("metta.infra.verify."))
    {
        let listed = catalog.of_metric(&point.metric).any(|series| {
            point.tags.iter().all(|t| {
                let (k, v) = t.split_once(':').unwrap_or((t, ""));
                series.may_match(k, v)
            }) && series
                .fixed
                .iter()
                .all(|(k, v)| point.tags.contains(&format!("{k}:{v}")))
        });
        assert!(
            listed,
            "{} {:?} is not in the catalog",
            point.metric, point.tags
        );
        assert!(
            rendered.contains(&format!("max:{}{{", point.metric)),
            "{} is on no widget",
            point.metric
        );
    }

    // A row that never lands: polled until the wait ends, then reported and exit 7.
    let s = setup();
    s.fake.drop_metric("metta.infra.stablesuite.training.sps");
    let started = Instant::now();
    let out = s.cmd(&["run", "--verify=1s"], API_KEY, Some(APP_KEY));
    assert_eq!(out.code, 7, "{}\n{}", out.stdout, out.stderr);
    assert!(started.elapsed().as_secs_f64() >= 1.0);
    // Polled twice; the second check asked only for the row still missing (one request).
    assert!(out.stdout.contains("(2 checks)"), "{}", out.stdout);
    assert_eq!(s.fake.query_requests(), 3 + 1, "{}", out.stdout);
    assert!(
        Setup::line(&out, "training/multigpu_arena/hearts/sps").starts_with("missing"),
        "{}",
        out.stdout
    );
    let missing: Vec<_> = s
        .fake
        .recorded()
        .into_iter()
        .filter(|p| p.metric == "metta.infra.verify.rows_missing")
        .collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].values[0], 1.0);
    assert!(missing[0].tags.contains(&"status:fail".to_string()));
}
