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

/// A config with one exec collector running `command` and one row on its result.
fn exec_config(dir: &Path, command: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[[collector]]
name = "probe"
type = "exec"
command = '{command}'
signal_prefix = "remote_eval"
command_timeout = "20s"
timeout = "30s"

[[check]]
workflow_category = "evaluation"
workflow_name = "remote_eval"
task = "request_eval"
check = "success"
collector = "probe"
signal = "remote_eval.result"
condition = "==success"
metric = "eval.remote.success"
"#
    );
    let path = dir.join("infra-health.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn dry_run(dir: &Path, cfg: &Path) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = bin()
        .current_dir(dir)
        .args(["run", "--dry-run", "--state", "state", "--config"])
        .arg(cfg)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    (out, started.elapsed())
}

fn series_tags(out: &std::process::Output, metric: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let series = doc["requests"][0]["body"]["series"].as_array().unwrap();
    series
        .iter()
        .find(|s| s["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} in {series:?}"))["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn exec_setsid_daemons_and_stdout_holders_do_not_outlive_a_successful_probe() {
    let tmp = tempfile::tempdir().unwrap();
    // A daemon in its own session (out of the probe's process group) and a background child
    // that keeps stdout open for 30 s; the command itself succeeds at once.
    let cfg = exec_config(
        tmp.path(),
        r#"setsid sh -c "echo \$\$ > daemon.pid; exec sleep 300" </dev/null >/dev/null 2>&1 & sleep 30 & echo $! > holder.pid; while [ ! -s daemon.pid ]; do sleep 0.05; done; echo "{\"signal\":\"remote_eval.latency\",\"value\":2}""#,
    );
    let (out, elapsed) = dry_run(tmp.path(), &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        elapsed < Duration::from_secs(15),
        "a child holding stdout made the probe wait {elapsed:?}"
    );
    let tags = series_tags(&out, "metta.infra.cron.eval.remote.success");
    assert!(tags.contains(&"status:pass".to_string()), "{tags:?}");
    for file in ["daemon.pid", "holder.pid"] {
        let pid: u32 = std::fs::read_to_string(tmp.path().join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(wait_gone(pid), "{file}: process {pid} outlived the probe");
        // kill -0: not even a zombie is left (the daemon was reaped, or init reaped it).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && std::process::Command::new("kill")
                .args(["-0", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let still = std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!still, "{file}: kill -0 {pid} still succeeds");
    }
}

#[test]
fn exec_stdout_past_the_cap_makes_the_row_unknown_output_too_large() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = exec_config(
        tmp.path(),
        r#"head -c 5000000 /dev/zero | tr "\000" a; echo; echo "{\"signal\":\"remote_eval.latency\",\"value\":2}""#,
    );
    let (out, elapsed) = dry_run(tmp.path(), &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert!(stderr.contains("output too large"), "{stderr}");
    let unknown = series_tags(&out, "metta.infra.cron.check.unknown");
    assert!(
        unknown.contains(&"reason:output_too_large".to_string()),
        "{unknown:?}"
    );
    let collector = series_tags(&out, "metta.infra.collector.success");
    assert!(
        collector.iter().any(|t| t == "error_type:output_too_large"),
        "{collector:?}"
    );
}
