//! The foundation end to end: the binary on the bundled config and example data, config errors,
//! and collectors that hang or panic.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use infra_health::checks::Status;
use infra_health::collectors::{CollectContext, CollectError, Collector};
use infra_health::observation::{Observation, UnknownReason};
use infra_health::run::{self, RunOptions};
use infra_health::schema::REQUIRED_TAGS;
use serde_json::Value as Json;

use crate::support::{bin, repo_root, start_memory_before_the_data};

fn bundled_config() -> std::path::PathBuf {
    repo_root().join("config/infra-health.toml")
}

#[test]
fn dry_run_on_the_bundled_config_prints_valid_request_bodies() {
    let state = tempfile::tempdir().unwrap();
    // A first run records a baseline and sends no sample: start the memory before the data.
    start_memory_before_the_data(&bundled_config(), state.path());
    let out = bin()
        .args(["run", "--dry-run", "--config"])
        .arg(bundled_config())
        .arg("--state")
        .arg(state.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Json = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    let requests = doc["requests"].as_array().unwrap();
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/api/v2/series"), "{paths:?}");
    assert!(paths.contains(&"/api/v1/distribution_points"), "{paths:?}");

    let now = Utc::now().timestamp();
    let name_re = regex::Regex::new(
        r"^metta\.infra\.((cron|stablesuite)\.[a-z_]+\.[a-z_.0-9]+|(collector|state|delivery|github|stablesuite)\.[a-z_.]+)$",
    )
    .unwrap();
    let mut series_seen = 0;
    for request in requests {
        for s in request["body"]["series"].as_array().unwrap() {
            series_seen += 1;
            let name = s["metric"].as_str().unwrap();
            assert!(
                name_re.is_match(name),
                "metric name {name:?} breaks the convention"
            );
            let tags: Vec<&str> = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            for required in REQUIRED_TAGS {
                assert!(
                    tags.iter()
                        .any(|t| t.starts_with(&format!("{required}:"))
                            && t.len() > required.len() + 1),
                    "{name} lacks required tag {required}: {tags:?}"
                );
            }
            for t in &tags {
                assert!(
                    !t.contains('<') && !t.contains('>') && !t.contains('='),
                    "tag {t:?} would be rewritten by Datadog"
                );
            }
            // v2 series carry {timestamp, value} points; distributions [ts, [values]].
            let ts = match s["points"][0].get("timestamp") {
                Some(t) => t.as_i64().unwrap(),
                None => s["points"][0][0].as_i64().unwrap(),
            };
            assert!(
                ts >= now - 3600 && ts <= now + 600,
                "timestamp {ts} of {name} is outside Datadog's window around {now}"
            );
        }
    }
    assert!(series_seen > 40, "only {series_seen} series");
    // The seed's examples, in tag-safe form.
    let text = String::from_utf8_lossy(&out.stdout);
    for condition in [
        "condition:eq_success",
        "condition:lte_1",
        "condition:gt_0.5",
        "condition:lt_5m",
    ] {
        assert!(text.contains(condition), "no {condition} in the dry run");
    }
    // The matrix goes to stderr in a dry run, so stdout stays machine-readable.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Tests blocking merge passing"), "{stderr}");
}

#[test]
fn local_run_without_a_key_writes_payloads_and_prints_the_matrix() {
    let state = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["run", "--config"])
        .arg(bundled_config())
        .env("INFRA_HEALTH_STATE", state.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("STATUS"), "{stdout}");
    assert!(stdout.contains("Reverts, 7 days"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DD_API_KEY is not set"), "{stderr}");
    let payloads: Vec<_> = std::fs::read_dir(state.path().join("payloads"))
        .unwrap()
        .collect();
    assert_eq!(payloads.len(), 1);
    let dir = payloads[0].as_ref().unwrap().path();
    let series: Json =
        serde_json::from_slice(&std::fs::read(dir.join("series.json")).unwrap()).unwrap();
    assert!(series["series"].as_array().unwrap().len() > 30);
}

#[test]
fn explicit_datadog_sink_without_a_key_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[sink]\ntype = \"datadog\"\n[[collector]]\nname = \"f\"\ntype = \"file\"\npath = \"x.json\"\n\
         [[check]]\nworkflow_category = \"ci\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"c\"\n\
         collector = \"f\"\nsignal = \"s\"\ncondition = \"<5\"\nmetric = \"ci.x\"\n",
    )
    .unwrap();
    let out = bin()
        .args(["run", "--config"])
        .arg(&config)
        .env("INFRA_HEALTH_STATE", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DD_API_KEY"), "{stderr}");
}

#[test]
fn three_mistakes_give_three_errors_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(bundled_config()).unwrap();
    let bad = good
        .replacen("carry_forward = \"30m\"", "carry_forward = \"30x\"", 1)
        .replacen(
            "metric = \"ci.workflow.success\"",
            "metrc = \"ci.workflow.success\"",
            1,
        )
        .replacen("condition = \"<2\"", "condition = \"<<2\"", 1);
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, &bad).unwrap();
    let out = bin()
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 problems"), "{stderr}");
    for (needle, key) in [
        ("\"30x\"", "defaults.carry_forward"),
        ("metrc =", "check.metrc"),
        ("\"<<2\"", "check.condition"),
    ] {
        let expected = format!("bad.toml:{}: `{key}`", line_of(needle));
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn validate_checks_and_collectors_on_the_bundled_config() {
    let out = bin()
        .args(["validate", "--config"])
        .arg(bundled_config())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok ("));
    let out = bin()
        .args(["checks", "--config"])
        .arg(bundled_config())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("metta.infra.stablesuite.training.sps"),
        "{stdout}"
    );
    assert!(
        stdout.contains("metta.infra.cron.ci.workflow.success"),
        "{stdout}"
    );
    let out = bin()
        .args(["collectors", "--config"])
        .arg(bundled_config())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("file"));
}

#[test]
fn unknown_only_name_is_a_usage_error_not_a_silent_no_op() {
    let state = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["run", "--only", "nope", "--config"])
        .arg(bundled_config())
        .arg("--state")
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// Sleeps far past any timeout.
struct Sleeper;
impl Collector for Sleeper {
    fn collect<'a>(
        &'a self,
        _ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Vec::new())
        })
    }
}

/// Panics while collecting (a bug in a collector must not take the run down).
struct Panicker;
impl Collector for Panicker {
    fn collect<'a>(
        &'a self,
        _ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>> {
        Box::pin(async { panic!("collector bug") })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_and_panicking_collectors_leave_their_rows_unknown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("obs.json"),
        r#"[{"signal":"ok.value","value":1}]"#,
    )
    .unwrap();
    let row = |name: &str, collector: &str| {
        format!(
            "[[check]]\nworkflow_category = \"ci\"\nworkflow_name = \"w\"\ntask = \"{name}\"\ncheck = \"c\"\ncollector = \"{collector}\"\nsignal = \"ok.value\"\ncondition = \">=1\"\nmetric = \"ci.{name}\"\n"
        )
    };
    let collector = |name: &str| {
        format!(
            "[[collector]]\nname = \"{name}\"\ntype = \"file\"\npath = \"obs.json\"\ntimeout = \"300ms\"\n"
        )
    };
    let text = format!(
        "{}{}{}{}{}{}",
        collector("good"),
        collector("slow"),
        collector("buggy"),
        row("good", "good"),
        row("slow", "slow"),
        row("buggy", "buggy")
    );
    let mut plan =
        infra_health::config::parse(&dir.path().join("c.toml"), &text).expect("valid config");
    for c in &mut plan.collectors {
        match c.name.as_str() {
            "slow" => c.collector = Arc::new(Sleeper),
            "buggy" => c.collector = Arc::new(Panicker),
            _ => {}
        }
    }
    let started = std::time::Instant::now();
    let summary = run::run(
        &plan,
        RunOptions {
            state: Some(dir.path().join("state").display().to_string()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the sleeper held the run"
    );
    let status = |task: &str| {
        summary
            .results
            .iter()
            .find(|(i, _)| plan.checks[*i].row.task == task)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    assert_eq!(status("good").status, Status::Pass);
    let slow = status("slow");
    assert_eq!(slow.status, Status::Unknown);
    assert_eq!(slow.unknown_reason, Some(UnknownReason::CollectorTimeout));
    assert!(slow.reason.unwrap().contains("timed out"));
    let buggy = status("buggy");
    assert_eq!(buggy.status, Status::Unknown);
    assert_eq!(buggy.unknown_reason, Some(UnknownReason::CollectorPanic));
    assert!(buggy.reason.unwrap().contains("panicked: collector bug"));
    assert!(summary.delivery.ok, "{:?}", summary.delivery.problems);
    assert_eq!(
        infra_health::cli::run::exit_code(&summary),
        infra_health::exit::PARTIAL
    );
    // The good row and the unknown markers were delivered (to the local sink here).
    let payload_dir = std::fs::read_dir(dir.path().join("state/payloads"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let series = std::fs::read_to_string(payload_dir.join("series.json")).unwrap();
    assert!(series.contains("metta.infra.cron.ci.good"));
    assert!(series.contains("metta.infra.cron.check.unknown"));
    assert!(series.contains("reason:collector_timeout"));
    assert!(series.contains("reason:collector_panic"));
    assert!(!series.contains("metta.infra.cron.ci.slow\""));
}

/// The README's main command, exactly: from the repository root with a relative config path.
/// Every row must be known: the bundled examples cover the whole matrix offline.
#[test]
fn the_readme_command_shows_a_complete_matrix_offline() {
    let state = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(repo_root())
        .args(["run", "--config", "config/infra-health.toml"])
        .env("INFRA_HEALTH_STATE", state.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("26 rows:"), "{stdout}");
    assert!(stdout.contains(" 0 unknown;"), "{stdout}");
    assert!(state.path().join("board.html").exists());
}
