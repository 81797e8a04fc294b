//! SIGTERM as Kubernetes sends it: at the Job's deadline, mid-run, with an intake that hangs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_datadog::FakeDatadog;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn sigterm_stops_collectors_spools_what_is_ready_and_exits_within_the_grace_period() {
    let intake = FakeDatadog::start(KEY);
    // The intake accepts connections and never answers in time.
    intake.set_latency(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("probe.pid");
    std::fs::write(
        dir.path().join("main.json"),
        r#"[{"signal": "tests", "value": "success"}]"#,
    )
    .unwrap();
    let config = dir.path().join("infra-health.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sink]
type = "datadog"
endpoint = "{}"
timeout = "60s"
deadline = "120s"

[[collector]]
name = "main"
type = "file"
path = "main.json"

[[collector]]
name = "slow_eval"
type = "exec"
command = ["sh", "-c", "echo $$ > {}; exec sleep 300"]
timeout = "10m"

[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "tests"
check = "workflow_success"
collector = "main"
signal = "tests"
condition = "==success"
metric = "ci.workflow.success"

[[check]]
workflow_category = "evaluation"
workflow_name = "remote_eval"
task = "request_eval"
check = "success"
collector = "slow_eval"
signal = "exec.result"
condition = "==success"
metric = "eval.remote.success"
"#,
            intake.url,
            pidfile.display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("infra-health"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .env("DD_API_KEY", KEY)
        .env_remove("DD_URL")
        .env_remove("DD_SITE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the probe runs, then do what the kubelet does.
    let started = Instant::now();
    let probe_pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the probe never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if signalled.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("still running 40 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let waited = signalled.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(
        waited < Duration::from_secs(28),
        "exited {waited:?} after SIGTERM, past Kubernetes' default grace of 30 s: {stderr}"
    );
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    // What was ready went to the spool, since the intake never answered.
    let spooled = std::fs::read_dir(state.join("spool"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(spooled >= 1, "nothing spooled: {stderr}");
    // The row memory was written: the next run carries the rows forward.
    let rows = std::fs::read_to_string(state.join("rows.json")).unwrap();
    assert!(rows.contains("latest_state_of_main"));
    // The probe's process is gone with the run.
    let gone = Instant::now();
    while alive(probe_pid) && gone.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(probe_pid),
        "the exec probe (pid {probe_pid}) survived SIGTERM"
    );
}
