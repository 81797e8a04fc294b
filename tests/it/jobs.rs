//! Separate jobs on one state store, as the chart runs them: every command that evaluates rows
//! goes through the same pipeline, so a row refreshed by one job is carried forward by the
//! others, and `import-stable` judges staleness exactly as `run` does.

use chrono::{DateTime, TimeDelta, Utc};
use infra_health::checks::Status;
use infra_health::run::import::{ImportStableOptions, import_stable};
use infra_health::run::{RunOptions, run};

const CONFIG: &str = r#"
[defaults]
env = "dev"

[sink]
type = "local"

[[collector]]
name = "main"
type = "file"
path = "main.json"

[[collector]]
name = "suite"
type = "stable_suite"
url = "runs/"

[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "tests"
check = "workflow_success"
title = "Tests passing"
collector = "main"
signal = "tests"
condition = "==success"
metric = "ci.workflow.success"

[[check]]
source = "stable_suite"
workflow_category = "training"
workflow_name = "arena"
task = "hearts"
check = "sps"
title = "Arena steps per second"
collector = "suite"
signal = "sps"
match = { job = "arena" }
condition = ">40000"
carry_forward = "26h"
metric = "training.sps"
"#;

fn artifact(run_id: &str, finished: DateTime<Utc>, sps: f64) -> String {
    let started = finished - TimeDelta::hours(1);
    serde_json::json!({
        "schema_version": 1,
        "suite": "stable",
        "job": "arena",
        "run_id": run_id,
        "started_at": started.to_rfc3339(),
        "finished_at": finished.to_rfc3339(),
        "exit_status": "success",
        "metrics": [{"name": "sps", "value": sps, "unit": "steps_per_sec"}],
        "acceptance": []
    })
    .to_string()
}

#[tokio::test]
async fn an_hourly_import_and_a_ten_minute_run_share_row_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("infra-health.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() - 3 * 3600, 0).unwrap();
    std::fs::write(
        dir.path().join("main.json"),
        format!(
            r#"[{{"signal": "tests", "value": "success", "timestamp": "{}"}}]"#,
            t0.to_rfc3339()
        ),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(
        runs.join("arena-1.json"),
        artifact("arena-1", t0 - TimeDelta::hours(2), 43_000.0),
    )
    .unwrap();
    let plan = infra_health::config::load(&cfg).unwrap();
    let state = dir.path().join("state").display().to_string();
    let import = |minutes: i64| ImportStableOptions {
        from: runs.display().to_string(),
        state: Some(state.clone()),
        now: Some(t0 + TimeDelta::minutes(minutes)),
        ..Default::default()
    };
    let cron = |minutes: i64| RunOptions {
        only: vec!["main".into()],
        state: Some(state.clone()),
        now: Some(t0 + TimeDelta::minutes(minutes)),
        ..Default::default()
    };

    // The hourly import refreshes the training row.
    let first = import_stable(&plan, import(0)).await.unwrap();
    let (def, sps) = &first.rows[0];
    assert_eq!(def.title, "Arena steps per second");
    assert_eq!((sps.status, sps.inferred), (Status::Pass, false), "{sps:?}");

    // Right after it, the 10-minute job (which does not run the stable-suite collector) carries
    // the training row forward instead of turning it unknown.
    for minutes in [10, 20, 50] {
        let summary = run(&plan, cron(minutes)).await.unwrap();
        let sps = summary
            .results
            .iter()
            .find(|(i, _)| summary.rows[*i].title == "Arena steps per second")
            .map(|(_, r)| r)
            .unwrap();
        assert_eq!(
            (sps.status, sps.inferred),
            (Status::Pass, true),
            "run at +{minutes}m: {sps:?}"
        );
        assert_eq!(sps.compared, Some(43_000.0));
    }

    // The next hourly import finds nothing new: its rows are carried forward too, and its table
    // is the matrix of its rows, not an empty header.
    let second = import_stable(&plan, import(60)).await.unwrap();
    assert_eq!(second.rows.len(), 1);
    let (_, sps) = &second.rows[0];
    assert_eq!((sps.status, sps.inferred), (Status::Pass, true), "{sps:?}");
    let text = infra_health::cli::import::render_summary(&second, false);
    assert!(text.contains("Arena steps per second"), "{text}");

    // The board, written by both jobs, shows both rows.
    let board = std::fs::read_to_string(dir.path().join("state/board.html")).unwrap();
    assert!(board.contains("Tests passing") && board.contains("Arena steps per second"));
}

#[tokio::test]
async fn import_stable_judges_an_old_artifact_stale_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("infra-health.toml");
    std::fs::write(
        &cfg,
        CONFIG.replace("path = \"main.json\"", "path = \"none.json\""),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let old = DateTime::from_timestamp(86_400, 0).unwrap();
    std::fs::write(runs.join("old.json"), artifact("old", old, 45_000.0)).unwrap();
    let plan = infra_health::config::load(&cfg).unwrap();
    let summary = import_stable(
        &plan,
        ImportStableOptions {
            from: runs.display().to_string(),
            state: Some(dir.path().join("state").display().to_string()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (_, sps) = &summary.rows[0];
    assert_eq!(sps.status, Status::Unknown, "{sps:?}");
    assert!(
        sps.reason.as_deref().unwrap_or("").starts_with("stale"),
        "{sps:?}"
    );
}

/// A state store that cannot be written does not pass for a healthy run: the rows are
/// delivered, and the exit code (6) and the log say carry-forward is off.
#[test]
fn an_unwritable_state_store_has_its_own_exit_code_and_says_what_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("infra-health.toml");
    std::fs::write(&cfg, CONFIG.replace("url = \"runs/\"", "url = \"none/\"")).unwrap();
    std::fs::write(
        dir.path().join("main.json"),
        r#"[{"signal": "tests", "value": "success"}]"#,
    )
    .unwrap();
    // The store's directory exists, but nothing can be written under `locks/`, where every
    // update takes its lease (as with a read-only volume; root ignores file modes).
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("locks"), b"not a directory").unwrap();
    let out = crate::support::bin()
        .args(["run", "--only", "main", "--config"])
        .arg(&cfg)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("row memory not saved") && stderr.contains("carried forward"),
        "{stderr}"
    );
    // The rows were still delivered (the local sink wrote the request bodies).
    assert!(state.join("payloads").is_dir());
    // Not a terminal: log lines only, no progress spinners in the output.
    assert!(
        !stderr.contains("collecting") && !stderr.contains('\u{2801}'),
        "{stderr}"
    );
}
