//! Datadog delivery against the fake intake: limits, retries, the spool, events, credentials,
//! and the API key never showing up anywhere.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use infra_health::schema::{Metric, MetricValue, Schema};
use infra_health::secret::Secret;
use infra_health::sinks::datadog::{Client, DatadogConfig, DatadogSink};
use infra_health::state::StateStore;

use crate::support::fake_datadog::{
    FakeDatadog, Fault, MAX_COMPRESSED, MAX_POINTS, MAX_UNCOMPRESSED, Recorded,
};
use crate::support::{bin, repo_root};

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Sink options for the fake: short backoffs so tests are quick; `extra` overrides.
fn options(endpoint: &str, extra: &str) -> toml::Table {
    let mut t: toml::Table = toml::from_str(&format!(
        "endpoint = \"{endpoint}\"\nbackoff = \"5ms\"\nmax_backoff = \"20ms\"\ntimeout = \"10s\""
    ))
    .expect("options");
    t.extend(toml::from_str::<toml::Table>(extra).expect("extra options"));
    t
}

fn schema() -> Schema {
    Schema::new(
        "metta.infra",
        "test",
        "infra-health-dashboard",
        &BTreeMap::new(),
    )
    .expect("schema")
}

fn sink(state: &Path, opts: &toml::Table, key: &str) -> DatadogSink {
    let store = Arc::new(StateStore::open(state.to_str().expect("utf-8 path")).expect("state"));
    let config = DatadogConfig::resolve(opts).expect("sink options");
    DatadogSink::new(
        Client::new(reqwest::Client::new(), config, Secret::new(key)),
        store,
    )
    .with_self_metrics(schema(), "cron")
}

/// `n` metrics of run `run` at `ts`, with nine tags each; every `dist_every`-th a distribution.
fn metrics(run: usize, n: usize, ts: i64, dist_every: usize) -> Vec<Metric> {
    (0..n)
        .map(|i| {
            let value = if dist_every > 0 && i.is_multiple_of(dist_every) {
                MetricValue::Distribution(vec![i as f64, 1.5, 2.5])
            } else if i.is_multiple_of(3) {
                MetricValue::Count {
                    value: i as f64,
                    interval: 600,
                }
            } else {
                MetricValue::Gauge(i as f64)
            };
            Metric {
                name: format!("metta.infra.cron.test.signal{}", i % 13),
                value,
                timestamp: ts,
                tags: vec![
                    "source:cron".into(),
                    "workflow_category:ci".into(),
                    format!("workflow_name:workflow_{}", i % 17),
                    format!("task:task_{i}"),
                    format!("check:run_{run}"),
                    "condition:lt_5m".into(),
                    "status:pass".into(),
                    "env:test".into(),
                    "service:infra-health-dashboard".into(),
                ],
                unit: None,
            }
        })
        .collect()
}

fn points(m: &Metric) -> usize {
    m.value.point_count()
}

fn key_of(m: &Metric) -> (String, Vec<String>, i64) {
    (m.name.clone(), m.tags.clone(), m.timestamp)
}

fn assert_within_limits(fake: &FakeDatadog) {
    for s in fake.seen().iter().filter(|s| s.status == 202) {
        assert!(s.compressed <= MAX_COMPRESSED, "{s:?}");
        assert!(s.uncompressed <= MAX_UNCOMPRESSED, "{s:?}");
        assert!(s.points <= MAX_POINTS, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_series_with_nine_tags_arrive_once_in_requests_within_the_limits() {
    let fake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let input = metrics(0, 100_000, now, 0);
    // A generous timeout: the fake parses bodies slowly in a debug build, and a request the
    // client gives up on after the intake accepted it would be sent twice.
    let report = sink(dir.path(), &options(&fake.url, "timeout = \"60s\""), KEY)
        .deliver_at(input.iter(), now)
        .await;
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.delivered_series, 100_000);
    let recorded = fake.recorded();
    assert_eq!(recorded.len(), 100_000);
    let mut seen: HashMap<_, usize> = HashMap::new();
    for r in &recorded {
        *seen.entry(r.key()).or_default() += 1;
    }
    assert!(input.iter().all(|m| seen.get(&key_of(m)) == Some(&1)));
    let accepted: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.status == 202)
        .collect();
    assert!(
        accepted.len() >= 10,
        "10,000 points per request at most: {}",
        accepted.len()
    );
    assert_within_limits(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_200_runs_with_30_percent_faults_deliver_every_point_exactly_once_or_count_it() {
    let fake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let opts = options(
        &fake.url,
        "timeout = \"500ms\"\nmax_retries = 2\ndeadline = \"5s\"\nconcurrency = 2",
    );
    // Without self-metrics so every dropped point counted is one of ours.
    let store = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let config = DatadogConfig::resolve(&opts).unwrap();
    let sink = DatadogSink::new(
        Client::new(reqwest::Client::new(), config, Secret::new(KEY)),
        store,
    );
    let mix = vec![
        Fault::Status {
            status: 429,
            retry_after: Some(0),
        },
        Fault::status(500),
        Fault::status(503),
        Fault::status(413),
        Fault::status(408),
        Fault::Drop,
        Fault::Slow(Duration::from_millis(700)),
    ];
    let base = 1_790_000_000;
    let outage = 80..96; // 16 runs, 5 minutes apart: 80 minutes without an intake
    let mut generated: HashMap<(String, Vec<String>, i64), (usize, usize)> = HashMap::new();
    let mut dropped_total = 0;
    let started = Instant::now();
    for run in 0..200 {
        let now = base + run as i64 * 300;
        fake.set_now(now);
        if outage.contains(&run) {
            fake.fault_rate(1.0, run as u64, vec![Fault::status(503)]);
        } else if run == 199 {
            fake.fault_rate(0.0, 0, mix.clone()); // a clean last run drains the spool
        } else {
            fake.fault_rate(0.3, 1000 + run as u64, mix.clone());
        }
        let n = 20 + (run * 37) % 300;
        let batch = metrics(run, n, now, 10);
        for m in &batch {
            assert!(generated.insert(key_of(m), (run, points(m))).is_none());
        }
        let report = sink.deliver_at(batch.iter(), now).await;
        dropped_total += report.dropped_points;
        if outage.contains(&run) {
            assert!(!report.ok, "run {run} had no intake");
            assert!(report.spooled_series > 0);
        }
    }
    let elapsed = started.elapsed();
    let mut counts: HashMap<(String, Vec<String>, i64), usize> = HashMap::new();
    for r in fake.recorded() {
        *counts.entry(r.key()).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "{} duplicated points, e.g. {:?}",
        duplicates.len(),
        duplicates.first()
    );
    assert!(
        counts.keys().all(|k| generated.contains_key(k)),
        "the intake got points nobody sent"
    );
    let lost: Vec<_> = generated
        .iter()
        .filter(|(k, _)| !counts.contains_key(*k))
        .collect();
    let lost_points: usize = lost.iter().map(|(_, (_, p))| p).sum();
    assert_eq!(
        lost_points, dropped_total,
        "every point not delivered is counted as dropped"
    );
    // Only data that waited in the spool for over an hour may be missing.
    assert!(
        lost.iter().all(|(_, (run, _))| (80..84).contains(run)),
        "lost from other runs"
    );
    assert!(
        dropped_total > 0,
        "the outage was long enough to expire some points"
    );
    let faulted = fake.seen().iter().filter(|s| s.fault.is_some()).count();
    let total = fake.seen().len();
    assert!(
        faulted * 100 / total >= 25,
        "{faulted} of {total} requests faulted"
    );
    assert_within_limits(&fake);
    let spool = std::fs::read_dir(dir.path().join("spool"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(spool, 0, "the spool is drained after a clean run");
    assert!(elapsed < Duration::from_secs(60), "soak took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_a_413_is_split() {
    let fake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    fake.push_faults([
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
        Fault::status(413),
    ]);
    let input = metrics(1, 500, now, 0);
    let started = Instant::now();
    let report = sink(dir.path(), &options(&fake.url, "concurrency = 1"), KEY)
        .deliver_at(input.iter(), now)
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(fake.recorded().len(), 500);
    let accepted = fake.seen().iter().filter(|s| s.status == 202).count();
    assert_eq!(accepted, 2, "the 413'd batch went as two halves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_and_slow_responses_are_retried() {
    let fake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    fake.push_faults([
        Fault::Drop,
        Fault::Slow(Duration::from_secs(2)),
        Fault::status(500),
    ]);
    let input = metrics(2, 50, now, 5);
    let report = sink(
        dir.path(),
        &options(&fake.url, "timeout = \"300ms\"\nconcurrency = 1"),
        KEY,
    )
    .deliver_at(input.iter(), now)
    .await;
    assert!(report.ok, "{:?}", report.problems);
    let recorded = fake.recorded();
    assert_eq!(recorded.len(), 50);
    assert_eq!(
        recorded
            .iter()
            .filter(|r| r.path == "/api/v1/distribution_points")
            .count(),
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_not_retried_and_a_403_names_the_site() {
    let fake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    fake.push_faults([Fault::status(400)]);
    let input = metrics(3, 10, now, 0);
    let report = sink(dir.path(), &options(&fake.url, ""), KEY)
        .deliver_at(input.iter(), now)
        .await;
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("HTTP 400") && p.contains("injected fault")),
        "{:?}",
        report.problems
    );
    assert_eq!(report.dropped_points, 10);
    // README: a 400 is not spooled (sending it again would fail the same way).
    assert_eq!(report.spooled_series, 0, "a 400 is dropped, not spooled");
    // The 400, then the dropped-points self-metric; never the same batch twice.
    let posts: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/api/v2/series")
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    let own = fake.recorded();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].metric, "metta.infra.delivery.dropped_points");
    assert!(
        own[0].tags.contains(&"reason:rejected".to_string()),
        "{:?}",
        own[0].tags
    );
    assert_eq!(own[0].values, vec![10.0]);

    fake.clear();
    let dir = tempfile::tempdir().unwrap();
    let report = sink(dir.path(), &options(&fake.url, ""), "wrong-key")
        .deliver_at(input.iter(), now)
        .await;
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("API key rejected by datadoghq.com")),
        "{:?}",
        report.problems
    );
    assert_eq!(report.spooled_series, 10, "kept for when the key is fixed");
    assert_eq!(fake.seen().len(), 1, "a rejected key is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_compression_is_accepted() {
    for compression in ["zstd1", "gzip", "deflate"] {
        let fake = FakeDatadog::start(KEY);
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().timestamp();
        let input = metrics(4, 30, now, 3);
        let opts = options(&fake.url, &format!("compression = \"{compression}\""));
        let report = sink(dir.path(), &opts, KEY)
            .deliver_at(input.iter(), now)
            .await;
        assert!(report.ok, "{compression}: {:?}", report.problems);
        let seen = fake.seen();
        let series = seen.iter().find(|s| s.path == "/api/v2/series").unwrap();
        let dists = seen
            .iter()
            .find(|s| s.path == "/api/v1/distribution_points")
            .unwrap();
        assert_eq!(series.status, 202);
        assert_eq!(dists.status, 202);
        assert_eq!(fake.recorded().len(), 30);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_spools_the_next_run_sends_the_spool_first_and_expired_points_are_counted() {
    let fake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let t0 = chrono::Utc::now().timestamp() - 3 * 3600;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let down = options(&closed, "max_retries = 1");
    // Two runs while the intake is unreachable.
    for (i, t) in [t0, t0 + 1800].into_iter().enumerate() {
        let input = metrics(10 + i, 20, t, 0);
        let r = sink(dir.path(), &down, KEY)
            .deliver_at(input.iter(), t)
            .await;
        assert!(!r.ok);
        assert_eq!(r.spooled_series, 20);
        assert!(
            r.problems.iter().any(|p| p.contains("spooled")),
            "{:?}",
            r.problems
        );
    }
    let spool_dir = dir.path().join("spool");
    for f in std::fs::read_dir(&spool_dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(!text.contains(KEY));
        assert!(text.contains("\"timestamp\""));
    }
    // 70 minutes after the first run: its points have expired, the second run's have not.
    let t2 = t0 + 4200;
    fake.set_now(t2);
    let input = metrics(12, 20, t2, 0);
    let r = sink(dir.path(), &options(&fake.url, ""), KEY)
        .deliver_at(input.iter(), t2)
        .await;
    assert!(r.ok, "{:?}", r.problems);
    assert_eq!(r.dropped_points, 20);
    assert_eq!(
        r.delivered_series,
        20 + 20 + 1,
        "spooled, this run's, and the self-metric"
    );
    let recorded = fake.recorded();
    assert!(
        recorded[..20].iter().all(|p| p.timestamp == t0 + 1800),
        "spool first"
    );
    assert!(recorded[20..40].iter().all(|p| p.timestamp == t2));
    let own = &recorded[40];
    assert_eq!(own.metric, "metta.infra.delivery.dropped_points");
    assert!(own.tags.contains(&"reason:expired".to_string()));
    assert!(own.tags.contains(&"workflow_category:self".to_string()));
    assert_eq!(own.values, vec![20.0]);
    assert_eq!(std::fs::read_dir(&spool_dir).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_become_events() {
    use infra_health::checks::StatusChange;
    use infra_health::checks::{RowId, Status};
    let fake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let row = |check: &str| RowId {
        source: "cron".into(),
        workflow_category: "ci".into(),
        workflow_name: "ci_smoothness".into(),
        task: "duration".into(),
        check: check.into(),
        repo: None,
    };
    let changes = vec![
        StatusChange {
            row: row("p90"),
            title: "p90 workflow duration".into(),
            from: Status::Pass,
            to: Status::Fail,
            value: Some("6m".into()),
            condition: "<5m".into(),
        },
        StatusChange {
            row: row("queue"),
            title: "queue time".into(),
            from: Status::Fail,
            to: Status::Pass,
            value: None,
            condition: "<2m".into(),
        },
    ];
    fake.push_faults([Fault::status(503)]);
    let sent = sink(dir.path(), &options(&fake.url, ""), KEY)
        .send_events(&changes)
        .await
        .unwrap();
    assert_eq!(sent, 2);
    let events = fake.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["alert_type"], "error");
    assert_eq!(events[1]["alert_type"], "success");
    assert_ne!(events[0]["aggregation_key"], events[1]["aggregation_key"]);
    let tags: Vec<&str> = events[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tags.contains(&"condition:lt_5m") && tags.contains(&"status:fail"),
        "{tags:?}"
    );
}

// ---- the binary, every mode, and the key ---------------------------------------------------

/// The bundled config with absolute example paths and `sink` replaced.
fn config_file(dir: &Path, sink: &str) -> std::path::PathBuf {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("config/infra-health.toml")).unwrap();
    let examples = root.join("examples");
    let text = text
        .replace("\"../examples/", &format!("\"{}/", examples.display()))
        .replace(
            "\"file://../examples/",
            &format!("\"file://{}/", examples.display()),
        )
        .replace("type = \"auto\"", sink);
    let path = dir.join("infra-health.toml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Mode {
    name: &'static str,
    out: std::process::Output,
}

fn run_bin(name: &'static str, args: &[&str], env: &[(&str, &str)]) -> Mode {
    let mut cmd = bin();
    cmd.args(args).env("RUST_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Mode {
        name,
        out: cmd.output().unwrap(),
    }
}

/// Run a mode, check its exit code and that its output says `says`.
fn expect(name: &'static str, args: &[&str], env: &[(&str, &str)], code: i32, says: &str) -> Mode {
    let m = run_bin(name, args, env);
    let t = text(&m);
    assert_eq!(m.out.status.code(), Some(code), "mode {name}: {t}");
    assert!(t.contains(says), "mode {name} should say {says:?}: {t}");
    m
}

fn text(m: &Mode) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&m.out.stdout),
        String::from_utf8_lossy(&m.out.stderr)
    )
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

#[test]
fn the_binary_delivers_spools_and_never_shows_the_key_in_any_mode() {
    let fake = FakeDatadog::start(KEY);
    fake.set_app_key("app-key-for-tests-0000");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let retry = "max_retries = 1\nbackoff = \"10ms\"\ntimeout = \"1s\"";
    let dd_cfg = config_file(
        dir.path(),
        &format!("type = \"datadog\"\nendpoint = \"{}\"\n{retry}", fake.url),
    );
    let down_dir = dir.path().join("down");
    std::fs::create_dir_all(&down_dir).unwrap();
    let down_cfg = config_file(
        &down_dir,
        &format!("type = \"datadog\"\nendpoint = \"{closed}\"\n{retry}"),
    );
    let local_dir = dir.path().join("local");
    std::fs::create_dir_all(&local_dir).unwrap();
    let local_cfg = config_file(&local_dir, "type = \"local\"");
    let key_file = dir.path().join("dd-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let c = |p: &Path| p.to_str().unwrap().to_string();
    let (dd, down, local) = (c(&dd_cfg), c(&down_cfg), c(&local_cfg));
    let key = [("DD_API_KEY", KEY)];

    let run_dd = ["run", "--config", &dd, "--state", state_s];
    let run_down = ["run", "--config", &down, "--state", state_s];
    let run_local = ["run", "--config", &local, "--state", state_s];
    let go = expect;
    let bad_key = "ffffffffffffffffffffffffffffffff";
    let url = fake.url.clone();
    let mut modes = Vec::new();

    // Intake down: spooled, exit 4.
    modes.push(go("down", &run_down, &key, 4, "spooled"));
    assert!(std::fs::read_dir(state.join("spool")).unwrap().count() >= 1);
    // Back up: the spooled run and this one are both delivered; exit 0.
    modes.push(go(
        "datadog",
        &run_dd,
        &key,
        0,
        // The summary names where the metrics went: the endpoint overrides the site's API.
        &format!("metrics to Datadog (datadoghq.com via {}/)", fake.url),
    ));
    assert_eq!(std::fs::read_dir(state.join("spool")).unwrap().count(), 0);
    let series = |r: &[Recorded]| r.iter().filter(|p| p.kind.is_some()).count();
    let samples = |r: &[Recorded]| -> usize {
        r.iter()
            .filter(|p| p.kind.is_none())
            .map(|p| p.values.len())
            .sum()
    };
    let with_spool = fake.recorded();
    assert!(
        fake.seen()
            .iter()
            .any(|s| s.path == "/api/v1/distribution_points" && s.status == 202)
    );
    // The key from a file; nothing spooled this time, so half as many points.
    fake.clear();
    let key_file_env = [("DD_API_KEY_FILE", key_file.to_str().unwrap())];
    modes.push(go("datadog-key-file", &run_dd, &key_file_env, 0, "Datadog"));
    let alone = fake.recorded();
    assert_eq!(
        series(&with_spool),
        2 * series(&alone),
        "the spooled run was delivered too"
    );
    // Distribution samples are sent once: the first (spooled) run recorded the GitHub history as
    // its baseline and sent none of it; each run sends only samples new to it (the eval's new
    // requests), so the run that delivered the spool sent no more than one alone.
    assert!(
        samples(&alone) > 0 && samples(&with_spool) == samples(&alone),
        "{} samples with the spool, {} alone",
        samples(&with_spool),
        samples(&alone)
    );
    // Wrong key: 403 named, spooled, exit 4.
    modes.push(go(
        "datadog-403",
        &run_dd,
        &[("DD_API_KEY", bad_key)],
        4,
        "API key rejected by datadoghq.com",
    ));
    // Dry run: the same batches, uncompressed, on stdout.
    let dry = ["run", "--dry-run", "--config", &dd, "--state", state_s];
    let m = go("dry-run", &dry, &key, 0, "\"requests\"");
    let doc: serde_json::Value = serde_json::from_slice(&m.out.stdout).unwrap();
    let paths: Vec<&str> = doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/api/v2/series") && paths.contains(&"/api/v1/distribution_points"),
        "{paths:?}"
    );
    modes.push(m);
    // Local sink with a key in the environment.
    modes.push(go("local", &run_local, &key, 0, "payloads"));
    // Credentials: valid (with the app key), wrong key, intake down.
    let check = |cfg| ["credentials", "check", "--config", cfg];
    let app = ("DD_APP_KEY", "app-key-for-tests-0000");
    modes.push(go(
        "credentials-ok",
        &check(&dd),
        &[key[0], app, ("DD_URL", &url)],
        0,
        "valid for datadoghq.com",
    ));
    modes.push(go(
        "credentials-bad",
        &check(&dd),
        &[("DD_API_KEY", bad_key), ("DD_URL", &url)],
        1,
        "API key rejected by datadoghq.com",
    ));
    modes.push(go(
        "credentials-down",
        &check(&down),
        &key,
        1,
        "could not check",
    ));
    // A bad site, and plain http to a remote address, are clear errors before anything is sent.
    modes.push(go(
        "bad-site",
        &run_dd,
        &[key[0], ("DD_SITE", "datadoghq.con")],
        1,
        "unknown Datadog site \"datadoghq.con\"",
    ));
    modes.push(go(
        "http-remote",
        &run_dd,
        &[key[0], ("DD_URL", "http://192.0.2.1:8080")],
        1,
        "only loopback",
    ));

    for m in &modes {
        assert!(
            !text(m).contains(KEY),
            "mode {}: key in output:\n{}",
            m.name,
            text(m)
        );
        assert!(
            !text(m).contains("app-key-for-tests-0000"),
            "mode {}",
            m.name
        );
    }
    let mut files = Vec::new();
    files_under(&state, &mut files);
    assert!(files.len() > 2);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "key in state file {}",
            f.display()
        );
    }
}
