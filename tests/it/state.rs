//! The state store and row memory against real backends: a directory and a real S3 API
//! (moto), with real concurrency (several `infra-health run` processes at once, several store
//! instances in one process), and the operator commands `state show` / `state reset`.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use bytes::Bytes;
use infra_health::state::StateStore;
use serde_json::Value;

use crate::support::{self, s3};

fn config() -> String {
    support::repo_root()
        .join("config/infra-health.toml")
        .display()
        .to_string()
}

/// A fresh bucket on the test S3 server, with the environment pointing at it.
fn s3_state(name: &str) -> (String, Vec<(&'static str, String)>) {
    let endpoint = s3::endpoint();
    let bucket = format!("ih-{name}-{}", std::process::id());
    s3::create_bucket(&endpoint, &bucket);
    (format!("s3://{bucket}/state"), s3::env(&endpoint))
}

fn owned(env: &[(&'static str, String)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Run the binary and require exit code 0, showing its stderr otherwise.
pub fn succeed(cmd: &mut assert_cmd::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Replace `key` from another store instance on its own thread and runtime, ignoring the lease
/// (called from inside an `update_json` closure, which cannot await).
fn rogue_put(state: String, env: Vec<(String, String)>, key: &'static str, value: Vec<u32>) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let other = StateStore::open_with(&state, env).unwrap();
        rt.block_on(other.put_json(key, &value)).unwrap();
    })
    .join()
    .unwrap();
}

/// `state show --json` through the binary: the stored row memory.
fn rows(state: &str, env: &[(&'static str, String)]) -> Vec<Value> {
    let out = succeed(
        support::bin()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args([
                "state",
                "show",
                "--json",
                "--config",
                &config(),
                "--state",
                state,
            ]),
    );
    let memory: Value = serde_json::from_slice(&out.stdout).unwrap();
    memory["rows"].as_array().unwrap().clone()
}

fn row_key(row: &Value) -> String {
    let r = &row["row"];
    format!(
        "{}/{}/{}/{}",
        r["workflow_category"].as_str().unwrap(),
        r["workflow_name"].as_str().unwrap(),
        r["task"].as_str().unwrap(),
        r["check"].as_str().unwrap()
    )
}

/// Four `infra-health run` processes released at the same moment against one state, each
/// running a different set of collectors: every row must end up with four history entries
/// (one per run: none lost) and with the fresh observation of the run that collected it.
fn overlapping_runs(state: &str, env: &[(&'static str, String)]) {
    let onlys = [
        "github_actions,github_commits,github_pulls,github_issues,github_deployments",
        "stable_suite",
        "eval,remote_eval",
        "github_actions,github_commits,github_pulls,github_issues,github_deployments,eval,remote_eval,stable_suite",
    ];
    let barrier = Arc::new(Barrier::new(onlys.len()));
    let handles: Vec<_> = onlys
        .iter()
        .map(|only| {
            let barrier = barrier.clone();
            let mut cmd = support::bin();
            cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str()))).args([
                "run",
                "--config",
                &config(),
                "--state",
                state,
                "--only",
                only,
            ]);
            std::thread::spawn(move || {
                barrier.wait();
                cmd.output().unwrap()
            })
        })
        .collect();
    for (h, only) in handles.into_iter().zip(onlys) {
        let out = h.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "run --only {only}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows = rows(state, env);
    assert_eq!(rows.len(), 26, "every configured row is remembered");
    for row in &rows {
        let key = row_key(row);
        let history = row["history"].as_array().unwrap();
        assert_eq!(
            history.len(),
            4,
            "{key}: one history entry per run: {history:?}"
        );
        let known = &row["last_known"];
        assert!(known.is_object(), "{key}: has a fresh result");
        assert_eq!(known["inferred"], Value::Bool(false), "{key}");
    }
    let collectors: BTreeMap<String, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["last_known"]["collector"].as_str().unwrap().to_string())
            .or_default() += 1;
        m
    });
    assert_eq!(collectors.len(), 8, "{collectors:?}");
}

#[test]
fn overlapping_runs_on_a_directory_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    overlapping_runs(&state, &[]);
    assert!(dir.path().join("state/board.html").exists());
    let locks: Vec<_> = std::fs::read_dir(dir.path().join("state/locks"))
        .unwrap()
        .collect();
    assert!(locks.is_empty(), "every lease released: {locks:?}");
}

#[test]
fn overlapping_runs_on_s3_lose_nothing() {
    let (state, env) = s3_state("runs");
    overlapping_runs(&state, &env);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = StateStore::open_with(&state, owned(&env)).unwrap();
    let keys = rt.block_on(store.list("")).unwrap();
    assert!(keys.contains(&"board.html".to_string()), "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with(".lease")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_updates_from_separate_stores_are_all_kept_even_after_a_crashed_lease() {
    let (state, env) = s3_state("updates");
    let env = owned(&env);
    let store = StateStore::open_with(&state, env.clone()).unwrap();
    // A run that crashed while holding the lease left it behind, expired.
    let crashed = serde_json::json!({"owner": "crashed", "expires_at": "2020-01-01T00:00:00Z"});
    store
        .put(
            "locks/counter.json.lease",
            Bytes::from(serde_json::to_vec(&crashed).unwrap()),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..6u32 {
        let state = state.clone();
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let store = StateStore::open_with(&state, env).unwrap();
            for j in 0..4u32 {
                store
                    .update_json("counter.json", |v: &mut Vec<u32>| v.push(i * 100 + j))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v: Vec<u32> = store.get_json("counter.json").await.unwrap().unwrap();
    assert_eq!(v.len(), 24, "{v:?}");
    let keys = store.list("locks").await.unwrap();
    assert_eq!(keys.len(), 1, "only the takeover marker is left: {keys:?}");
}

/// The write is conditional on S3: if the object changes under a writer (here: another writer
/// that ignores the lease), the write is refused instead of overwriting it, and the update starts
/// over on the new version; a writer that keeps losing gives up with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_write_is_refused_when_the_object_changed_underneath() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let (state, env) = s3_state("conflict");
    let env = owned(&env);
    let store = StateStore::open_with(&state, env.clone()).unwrap();
    store.put_json("doc.json", &vec![1u32]).await.unwrap();

    // A rogue writer replaces the object once, while we hold the lease: our first write is
    // refused, the second attempt applies our change on top of theirs.
    let attempts = AtomicU32::new(0);
    let (other_state, other_env) = (state.clone(), env.clone());
    store
        .update_json("doc.json", |v: &mut Vec<u32>| {
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                rogue_put(
                    other_state.clone(),
                    other_env.clone(),
                    "doc.json",
                    vec![1, 99],
                );
            }
            v.push(2);
        })
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let v: Vec<u32> = store.get_json("doc.json").await.unwrap().unwrap();
    assert_eq!(v, vec![1, 99, 2], "both updates are kept");

    // A rogue that writes something new before every one of our writes wins: we give up.
    let attempts = AtomicU32::new(0);
    let err = store
        .update_json("doc.json", |v: &mut Vec<u32>| {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            rogue_put(
                other_state.clone(),
                other_env.clone(),
                "doc.json",
                vec![1000 + n],
            );
            v.push(3);
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, infra_health::state::StateError::Conflict { .. }),
        "{err}"
    );
    let tries = infra_health::state::CONFLICT_RETRIES + 1;
    assert_eq!(attempts.load(Ordering::SeqCst), tries);
    let v: Vec<u32> = store.get_json("doc.json").await.unwrap().unwrap();
    assert_eq!(
        v,
        vec![1000 + tries - 1],
        "the other writer's update survives"
    );

    // A fresh object is created with If-None-Match: a rogue create in between is not clobbered.
    let attempts = AtomicU32::new(0);
    store
        .update_json("new.json", |v: &mut Vec<u32>| {
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                rogue_put(other_state.clone(), other_env.clone(), "new.json", vec![5]);
            }
            v.push(6);
        })
        .await
        .unwrap();
    let v: Vec<u32> = store.get_json("new.json").await.unwrap().unwrap();
    assert_eq!(v, vec![5, 6]);
}

#[tokio::test]
async fn s3_corrupt_state_is_moved_aside_and_the_run_goes_on() {
    let (state, env) = s3_state("corrupt");
    let store = StateStore::open_with(&state, owned(&env)).unwrap();
    store
        .put(
            "rows.json",
            Bytes::from_static(b"{\"format\": 1, \"data\": [tor"),
        )
        .await
        .unwrap();
    let out = succeed(
        support::bin()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["run", "--config", &config(), "--state", &state]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rows.json") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
    let keys = store.list("").await.unwrap();
    let aside: Vec<_> = keys
        .iter()
        .filter(|k| k.starts_with("rows.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{keys:?}");
    assert_eq!(
        store.get(aside[0]).await.unwrap().unwrap().as_ref(),
        b"{\"format\": 1, \"data\": [tor"
    );
    let rows: Value =
        serde_json::from_slice(&store.get("rows.json").await.unwrap().unwrap()).unwrap();
    assert_eq!(rows["format"], 1);
    assert_eq!(rows["data"]["rows"].as_array().unwrap().len(), 26);
}

#[test]
fn unknown_state_version_is_reported_and_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let newer = r#"{"format": 7, "written_at": "2031-01-01T00:00:00Z", "data": {"rows": []}}"#;
    std::fs::write(dir.path().join("rows.json"), newer).unwrap();
    let out = succeed(support::bin().args(["run", "--config", &config(), "--state", &state]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("written in state format 7"), "{stderr}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("rows.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(&aside[0])).unwrap(),
        newer
    );
}

#[test]
fn dry_run_does_not_write_the_row_memory_or_board() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s").display().to_string();
    succeed(support::bin().args(["run", "--dry-run", "--config", &config(), "--state", &state]));
    assert!(!dir.path().join("s/rows.json").exists());
    assert!(!dir.path().join("s/board.html").exists());
}

#[test]
fn state_show_and_reset_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let run = |only: &str| {
        let out = succeed(support::bin().args([
            "run",
            "--config",
            &config(),
            "--state",
            &state,
            "--only",
            only,
        ]));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run(
        "github_actions,github_commits,github_pulls,github_issues,github_deployments,eval,remote_eval,stable_suite",
    );
    let second = run("github_actions,github_commits,github_pulls,github_issues,github_deployments");
    // The stable-suite rows were not collected: carried forward, and said so.
    let hearts = second.lines().find(|l| l.contains("Arena reward")).unwrap();
    assert!(hearts.contains("pass (inferred)"), "{hearts}");

    let show = support::bin()
        .args(["state", "show", "--config", &config(), "--state", &state])
        .output()
        .unwrap();
    assert!(show.status.success());
    let text = String::from_utf8_lossy(&show.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("training/multigpu_arena/hearts/reward_threshold"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("inferred") && line.contains("0.63"), "{line}");
    // The history strip, then why the row is inferred.
    let strip = line
        .find("  ✓~ ")
        .unwrap_or_else(|| panic!("history strip: {line}"));
    assert!(
        line[strip + "  ✓~ ".len()..]
            .trim_start()
            .starts_with("carried forward: "),
        "history strip, then why: {line}"
    );
    let row = line.split_whitespace().next().unwrap().to_string();

    let reset = |row: &str| {
        support::bin()
            .args([
                "state",
                "reset",
                row,
                "--config",
                &config(),
                "--state",
                &state,
            ])
            .output()
            .unwrap()
    };
    let done = reset(&row);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let after = rows(&state, &[]);
    assert_eq!(after.len(), 25);
    assert!(!after.iter().any(|r| row_key(r) == row));

    let missing = reset("no/such/row/here");
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("no row \"no/such/row/here\"") && err.contains("ci/"),
        "{err}"
    );
}

/// The whole pipeline with the clock pinned: a daily row observed at t0 is emitted as inferred
/// (with the carry-forward gauge) by a run 20 h later that does not collect it, and as unknown
/// 30 h later.
#[tokio::test]
async fn run_carries_a_daily_row_20h_but_not_30h() {
    use chrono::{TimeDelta, Utc};
    use infra_health::checks::Status;
    use infra_health::run::{RunOptions, run};

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("infra-health.toml");
    std::fs::write(&cfg, crate::board::CONFIG).unwrap();
    let t0 = Utc::now() - TimeDelta::hours(30);
    let at = t0.to_rfc3339();
    std::fs::write(
        dir.path().join("main.json"),
        format!(r#"[{{"signal": "tests", "value": "success", "timestamp": "{at}"}}]"#),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("nightly.json"),
        format!(r#"[{{"signal": "reward", "value": 0.63, "timestamp": "{at}"}}]"#),
    )
    .unwrap();
    let plan = infra_health::config::load(&cfg).unwrap();
    let state = dir.path().join("state").display().to_string();
    let opts = |hours: i64, only: &[&str]| RunOptions {
        only: only.iter().map(|s| s.to_string()).collect(),
        state: Some(state.clone()),
        now: Some(t0 + TimeDelta::hours(hours)),
        ..Default::default()
    };
    let hearts = |summary: &infra_health::run::RunSummary| {
        summary
            .results
            .iter()
            .map(|(i, r)| (&plan.checks[*i], r))
            .find(|(d, _)| d.title == "Arena reward")
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    let first = run(&plan, opts(0, &["main", "nightly"])).await.unwrap();
    assert_eq!(hearts(&first).status, Status::Pass);
    assert!(!hearts(&first).inferred);

    let later = run(&plan, opts(20, &["main"])).await.unwrap();
    let r = hearts(&later);
    assert_eq!((r.status, r.inferred), (Status::Pass, true), "{r:?}");
    assert_eq!(r.compared, Some(0.63));
    assert_eq!(
        later.results.len(),
        plan.checks.len(),
        "every row is emitted"
    );
    // The local sink wrote what Datadog would get: the carry-forward gauge for this row.
    let payloads = dir.path().join("state/payloads");
    let mut runs: Vec<_> = std::fs::read_dir(&payloads)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    let series = std::fs::read_to_string(runs.last().unwrap().join("series.json")).unwrap();
    let doc: Value = serde_json::from_str(&series).unwrap();
    let carried: Vec<&Value> = doc["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["metric"] == "metta.infra.state.carry_forward" && s["points"][0]["value"] == 1.0
        })
        .collect();
    assert_eq!(carried.len(), 1, "{carried:?}");
    let tags: Vec<&str> = carried[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"inferred:true"), "{tags:?}");
    assert!(tags.contains(&"check:reward_threshold"), "{tags:?}");
    // The 1h-limit row from `main` was observed 20h ago: stale, unknown.
    let tests_row = later
        .results
        .iter()
        .find(|(i, _)| plan.checks[*i].title == "Tests <passing>")
        .unwrap();
    assert_eq!(tests_row.1.status, Status::Unknown);

    let stale = run(&plan, opts(30, &["main"])).await.unwrap();
    let r = hearts(&stale);
    assert_eq!((r.status, r.inferred), (Status::Unknown, false), "{r:?}");
    assert!(
        r.reason
            .unwrap()
            .starts_with("stale: last observed 30h ago")
    );
    assert_eq!(
        stale
            .status_changes
            .iter()
            .map(|c| (c.from, c.to))
            .collect::<Vec<_>>(),
        vec![(Status::Pass, Status::Unknown)],
        "only the daily row changed status in this run"
    );
}
