//! SIGTERM as Kubernetes sends it: at the Job's deadline, mid-run, with an intake that hangs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_datadog::FakeDatadog;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Send SIGTERM to `child`, wait for it to exit (killing it and failing past `limit`), and return
/// its exit status, how long it took after the signal, and its output.
fn sigterm_and_wait(
    mut child: std::process::Child,
    limit: Duration,
) -> (std::process::ExitStatus, Duration, std::process::Output) {
    let signalled = Instant::now();
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if signalled.elapsed() > limit {
            let _ = child.kill();
            panic!("still running {limit:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let waited = signalled.elapsed();
    (status, waited, child.wait_with_output().unwrap())
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
    let child = Command::new(assert_cmd::cargo::cargo_bin("infra-health"))
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
    let (status, waited, out) = sigterm_and_wait(child, Duration::from_secs(40));
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

/// A config with a file collector and a short exec probe, delivering to `endpoint`.
fn quick_config(dir: &std::path::Path, endpoint: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("main.json"),
        r#"[{"signal": "tests", "value": "success"}]"#,
    )
    .unwrap();
    let config = dir.join("infra-health.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sink]
type = "datadog"
endpoint = "{endpoint}"
timeout = "5s"
deadline = "30s"

[[collector]]
name = "main"
type = "file"
path = "main.json"

[[collector]]
name = "eval"
type = "exec"
command = ["sh", "-c", "sleep 0.8; echo '{{\"signal\":\"lat\",\"value\":[1,2],\"ids\":[\"a\",\"b\"]}}'"]

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
collector = "eval"
signal = "exec.result"
condition = "==success"
metric = "eval.remote.success"
"#
        ),
    )
    .unwrap();
    config
}

/// What `timeout` does (and `tini -g`, and some `docker stop` set-ups): SIGTERM to the command
/// and to its whole process group, so one stop arrives twice. At 20 random instants of a run the
/// run ends with 5 (stopped) or 0 (it had finished), and what it collected was delivered or
/// spooled every time, within the grace period; the row memory, when written, is valid JSON.
#[test]
fn sigterm_through_timeout_at_random_instants_always_delivers_or_spools() {
    use rand::Rng;
    let intake = FakeDatadog::start(KEY);
    // About 1.3 s a run: the probe takes 0.8 s, the intake answers in 0.4 s.
    intake.set_latency(Duration::from_millis(400));
    let dir = tempfile::tempdir().unwrap();
    let config = quick_config(dir.path(), &intake.url);
    let mut rng = rand::rng();
    let mut stopped = 0;
    // Runs in which the second copy of the signal arrived apart from the first.
    let mut twice = 0;
    for i in 0..20 {
        let state = dir.path().join(format!("state-{i}"));
        let before = intake.recorded().len();
        let after_ms: u64 = rng.random_range(100..1500);
        let started = Instant::now();
        let out = Command::new("timeout")
            .arg("--preserve-status")
            .arg("-s")
            .arg("TERM")
            .arg(format!("{:.3}", after_ms as f64 / 1000.0))
            .arg(assert_cmd::cargo::cargo_bin("infra-health"))
            .args(["run", "--config"])
            .arg(&config)
            .arg("--state")
            .arg(&state)
            .env("DD_API_KEY", KEY)
            .env_remove("DD_URL")
            .env_remove("DD_SITE")
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            code == Some(5) || code == Some(0),
            "run {i}, SIGTERM at {after_ms} ms: exit {code:?}\n{stderr}"
        );
        if code == Some(5) {
            stopped += 1;
        }
        if stderr.contains("the same stop request") {
            twice += 1;
        }
        assert!(
            took < Duration::from_millis(after_ms) + Duration::from_secs(20),
            "run {i}: ended {took:?} after it started, past the grace: {stderr}"
        );
        let delivered = intake.recorded().len() > before;
        let spooled = std::fs::read_dir(state.join("spool"))
            .map(|d| d.count())
            .unwrap_or(0)
            > 0;
        assert!(
            delivered || spooled,
            "run {i}, SIGTERM at {after_ms} ms (exit {code:?}): nothing delivered or spooled\n{stderr}"
        );
        assert!(
            !stderr.contains("exiting now"),
            "run {i}: one stop delivered twice cut the run short\n{stderr}"
        );
        if let Ok(rows) = std::fs::read_to_string(state.join("rows.json")) {
            serde_json::from_str::<serde_json::Value>(&rows)
                .unwrap_or_else(|e| panic!("run {i}: rows.json is not valid JSON: {e}"));
        }
    }
    eprintln!("{stopped} of 20 runs stopped mid-run; {twice} saw the signal twice");
    // The instants fall inside the run often enough for the test to mean something.
    assert!(
        stopped >= 8,
        "only {stopped} of 20 runs were stopped mid-run"
    );
}

/// A lease left by a crashed run holds for a minute; a SIGTERM while the run waits for it ends
/// the wait at once: the run delivers what it collected and exits 5 within a few seconds.
#[test]
fn sigterm_interrupts_the_wait_for_a_stale_lease() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("locks")).unwrap();
    let expires = chrono::Utc::now() + chrono::TimeDelta::seconds(60);
    std::fs::write(
        state.join("locks/rows.json.lease"),
        format!(
            r#"{{"owner":"crashed-run-1","expires_at":"{}"}}"#,
            expires.to_rfc3339()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("main.json"),
        r#"[{"signal": "tests", "value": "success"}]"#,
    )
    .unwrap();
    let config = dir.path().join("infra-health.toml");
    std::fs::write(
        &config,
        r#"
[sink]
type = "local"

[[collector]]
name = "main"
type = "file"
path = "main.json"

[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "tests"
check = "workflow_success"
collector = "main"
signal = "tests"
condition = "==success"
metric = "ci.workflow.success"
"#,
    )
    .unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("infra-health"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .env_remove("DD_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Collection of one small file is instant: by now the run waits for the lease.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the run did not wait");
    let (status, waited, out) = sigterm_and_wait(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(
        waited < Duration::from_secs(3),
        "exited {waited:?} after SIGTERM while waiting for a stale lease: {stderr}"
    );
    assert!(stderr.contains("asked to stop"), "{stderr}");
    // What was collected was delivered (the local sink's payloads).
    let payloads = std::fs::read_dir(state.join("payloads"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(payloads >= 1, "nothing delivered: {stderr}");
    // The crashed run's lease is untouched: it is not ours.
    assert!(state.join("locks/rows.json.lease").exists());
}

/// A second SIGTERM well after the first cuts the grace short, but not the spooling: the run
/// stops waiting for a hung intake at once, spools what it collected, and exits 5.
#[test]
fn a_later_second_sigterm_cuts_the_grace_short_and_still_spools() {
    let intake = FakeDatadog::start(KEY);
    intake.set_latency(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let config = quick_config(dir.path(), &intake.url);
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
    // The probe takes 0.8 s; then the run waits on the intake, which never answers in time.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal alone ended the run before its grace"
    );
    let (status, waited, out) = sigterm_and_wait(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(
        waited < Duration::from_secs(5),
        "exited {waited:?} after the second SIGTERM: {stderr}"
    );
    assert!(
        stderr.contains("cutting the grace period short"),
        "{stderr}"
    );
    let spooled = std::fs::read_dir(state.join("spool"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(spooled >= 1, "nothing spooled: {stderr}");
}
