//! The `exec` collector against real processes: a hung command and its children are killed at
//! the timeout (its own, or the run's), its rows are `unknown`, and the other collectors' rows
//! are still delivered.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::bin;

/// Whether `pid` is still a live process (a zombie counts as gone: it has exited).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn config(dir: &Path, timeouts: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("obs.json"),
        r#"[{"signal":"queue.result","value":"success"}]"#,
    )
    .unwrap();
    let text = format!(
        r#"
[[collector]]
name = "hung"
type = "exec"
command = "sleep 300 & echo $! > pids; echo $$ >> pids; sleep 300"
signal_prefix = "remote_eval"
{timeouts}

[[collector]]
name = "other"
type = "file"
path = "obs.json"

[[check]]
workflow_category = "evaluation"
workflow_name = "remote_eval"
task = "request_eval"
check = "success"
collector = "hung"
signal = "remote_eval.result"
condition = "==success"
metric = "eval.remote.success"

[[check]]
workflow_category = "evaluation"
workflow_name = "eval_queue"
task = "queue"
check = "healthy"
collector = "other"
signal = "queue.result"
condition = "==success"
metric = "eval.queue.healthy"
"#
    );
    let path = dir.join("infra-health.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn hung_command_is_killed_with_its_children(timeouts: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), timeouts);
    let started = Instant::now();
    let out = bin()
        .current_dir(tmp.path())
        .args(["run", "--dry-run", "--state", "state", "--config"])
        .arg(&cfg)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a failed collector gives exit 3:\n{stderr}"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "the run waited {elapsed:?}"
    );
    assert!(stderr.contains("timed out"), "{stderr}");

    let pids: Vec<u32> = std::fs::read_to_string(tmp.path().join("pids"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "background child and shell");
    for pid in pids {
        assert!(wait_gone(pid), "process {pid} outlived the probe");
    }

    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let series = doc["requests"][0]["body"]["series"].as_array().unwrap();
    let tags_of = |metric: &str| -> Vec<String> {
        series
            .iter()
            .find(|s| s["metric"] == metric)
            .unwrap_or_else(|| panic!("no {metric} in {series:?}"))["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    let unknown = tags_of("metta.infra.cron.check.unknown");
    assert!(unknown.contains(&"workflow_name:remote_eval".to_string()));
    assert!(
        unknown.contains(&"reason:collector_timeout".to_string())
            || unknown.contains(&"reason:collector_failed".to_string()),
        "{unknown:?}"
    );
    let healthy = tags_of("metta.infra.cron.eval.queue.healthy");
    assert!(
        healthy.contains(&"status:pass".to_string()),
        "the other collector still delivered"
    );
}

#[test]
fn exec_command_timeout_kills_the_process_group() {
    hung_command_is_killed_with_its_children("command_timeout = \"1s\"\ntimeout = \"20s\"");
}

#[test]
fn the_runs_collector_timeout_also_kills_the_process_group() {
    hung_command_is_killed_with_its_children("command_timeout = \"10m\"\ntimeout = \"1s\"");
}
