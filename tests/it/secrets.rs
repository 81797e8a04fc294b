//! Secrets stay in the process: probes that print their environment, and probes that are
//! handed the keys and echo them, leave no key in any output, state file, board or request.

use std::path::{Path, PathBuf};

use crate::support::bin;
use crate::support::fake_datadog::FakeDatadog;

const DD_KEY: &str = "0123456789abcdef0123456789abcdef";
const APP_KEY: &str = "appkey-5ecret-0f0f0f0f0f0f0f0f0f0f";
const GH_TOKEN: &str = "ghp_s3cretTokenValue1234567890ABCDEF";

fn config(dir: &Path, endpoint: &str) -> PathBuf {
    let leak = dir.join("leak.sh");
    std::fs::write(
        &leak,
        r#"#!/bin/sh
echo "{\"signal\":\"leak\",\"value\":\"dd=$DD_API_KEY app=$DD_APP_KEY gh=$GITHUB_TOKEN\",\"tags\":{\"runner\":\"$GITHUB_TOKEN\"},\"ids\":[\"$DD_APP_KEY\"]}"
echo "keys on stderr: $DD_API_KEY $DD_APP_KEY $GITHUB_TOKEN" >&2
printf 'line one\n2026-01-01T00:00:00Z  INFO forged log line %s\n' "$DD_API_KEY" >&2
exit 1
"#,
    )
    .unwrap();
    std::fs::set_permissions(&leak, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.join("infra-health.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sink]
type = "datadog"
endpoint = "{endpoint}"
events = true
timeout = "5s"
deadline = "20s"

# Handed the three keys explicitly, and echoes them everywhere it can.
[[collector]]
name = "leaky"
type = "exec"
command = ["./leak.sh"]
pass_env = ["DD_API_KEY", "DD_APP_KEY", "GITHUB_TOKEN"]

# Tries `env`: its environment is clean, so the keys are not there to print.
[[collector]]
name = "envdump"
type = "exec"
command = ["sh", "-c", "env; env >&2; sleep 5"]
command_timeout = "1s"

# Echoes a key on stderr, then times out: the key would be in the error message.
[[collector]]
name = "echo_then_hang"
type = "exec"
command = ["sh", "-c", "echo \"token $DD_API_KEY\" >&2; sleep 5"]
command_timeout = "1s"
pass_env = ["DD_API_KEY"]

[[check]]
workflow_category = "evaluation"
workflow_name = "leaky"
task = "leak"
check = "value"
collector = "leaky"
signal = "leak"
condition = "==success"
metric = "eval.leak.ok"

[[check]]
workflow_category = "evaluation"
workflow_name = "leaky"
task = "probe"
check = "success"
collector = "leaky"
signal = "exec.result"
condition = "==success"
metric = "eval.leaky.success"

[[check]]
workflow_category = "evaluation"
workflow_name = "envdump"
task = "probe"
check = "success"
collector = "envdump"
signal = "exec.result"
condition = "==success"
metric = "eval.envdump.success"

[[check]]
workflow_category = "evaluation"
workflow_name = "echo_then_hang"
task = "probe"
check = "success"
collector = "echo_then_hang"
signal = "exec.result"
condition = "==success"
metric = "eval.echo.success"
"#
        ),
    )
    .unwrap();
    config
}

fn with_keys(cmd: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    cmd.env("DD_API_KEY", DD_KEY)
        .env("DD_APP_KEY", APP_KEY)
        .env("GITHUB_TOKEN", GH_TOKEN)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_key_leaves_the_process_through_probes() {
    let fake = FakeDatadog::start(DD_KEY);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &fake.url);
    let state = dir.path().join("state");
    let board = dir.path().join("board-out.html");
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut run = |args: &[&str]| {
        let out = with_keys(&mut bin())
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let name = args.join(" ");
        outputs.push((
            format!("{name}: stdout"),
            String::from_utf8_lossy(&out.stdout).into(),
        ));
        outputs.push((
            format!("{name}: stderr"),
            String::from_utf8_lossy(&out.stderr).into(),
        ));
        out.status.code()
    };
    let state_arg = state.to_str().unwrap();
    // Twice, so the second run reads and rewrites what the first stored.
    assert_eq!(run(&["run", "--state", state_arg]), Some(3));
    assert_eq!(run(&["run", "--state", state_arg]), Some(3));
    run(&["run", "--dry-run", "--state", state_arg]);
    run(&["board", "--state", state_arg, "-o", board.to_str().unwrap()]);
    run(&["state", "show", "--state", state_arg]);
    run(&["state", "show", "--json", "--state", state_arg]);

    let mut files = Vec::new();
    files_under(&state, &mut files);
    files.push(board.clone());
    assert!(files.iter().any(|f| f.ends_with("rows.json")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with("board.html")), "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        outputs.push((
            f.display().to_string(),
            String::from_utf8_lossy(&bytes).into(),
        ));
    }
    for r in fake.recorded() {
        outputs.push((format!("intake: {}", r.metric), r.tags.join(",")));
    }
    for e in fake.events() {
        outputs.push(("intake: event".into(), e.to_string()));
    }

    for (name, text) in &outputs {
        for key in [DD_KEY, APP_KEY, GH_TOKEN] {
            assert!(!text.contains(key), "{name} holds a key:\n{text}");
        }
        // The probe that ran `env` had none of the tool's keys in its environment.
        for var in ["DD_API_KEY=", "DD_APP_KEY=", "GITHUB_TOKEN="] {
            assert!(!text.contains(var), "{name} shows {var}:\n{text}");
        }
        // Captured stderr is escaped: a child cannot start a log line of its own.
        assert!(
            !text.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
            "{name} has a forged log line:\n{text}"
        );
    }
    let all: String = outputs.iter().map(|(_, t)| t.as_str()).collect();
    // The keys did reach the probe that was given them, and came back redacted.
    assert!(
        all.contains("dd=[redacted] app=[redacted] gh=[redacted]"),
        "{all}"
    );
    assert!(all.contains("token [redacted]"), "{all}");
    // The env dump is there (in the timeout's message), so the absence above means something.
    assert!(all.contains("PATH="), "{all}");
    assert!(all.contains("forged log line"), "{all}");
}

#[test]
fn a_key_with_a_line_break_is_a_configuration_error_naming_the_variable() {
    let fake = FakeDatadog::start(DD_KEY);
    let dir = tempfile::tempdir().unwrap();
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

[[collector]]
name = "main"
type = "file"
path = "main.json"

[[check]]
workflow_category = "ci"
workflow_name = "main"
task = "tests"
check = "workflow_success"
collector = "main"
signal = "tests"
condition = "==success"
metric = "ci.workflow.success"
"#,
            fake.url
        ),
    )
    .unwrap();
    let bad = format!("{}\n{}", &DD_KEY[..16], &DD_KEY[16..]);
    let state = dir.path().join("state");
    let out = bin()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .env("DD_API_KEY", &bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("DD_API_KEY") && stderr.contains("line break"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&DD_KEY[..16]) && !stderr.contains(&DD_KEY[16..]),
        "{stderr}"
    );
    // Refused before delivery: nothing sent, nothing spooled.
    assert!(fake.seen().is_empty());
    assert!(!state.join("spool").exists());
}
