//! The `file` collector against inputs that could hold the process: a FIFO with no writer,
//! `/dev/zero`, a file over `max_bytes`. Each is refused with an error naming the path, its row
//! is `unknown`, the other rows are delivered, and the binary exits by itself, quickly.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::bin;

fn check(name: &str) -> String {
    format!(
        r#"
[[check]]
workflow_category = "evaluation"
workflow_name = "{name}"
task = "t"
check = "ok"
collector = "{name}"
signal = "queue.result"
condition = "==success"
metric = "eval.{name}.ok"
"#
    )
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn file_collector_refuses_fifos_devices_and_oversized_files_and_the_run_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let good = r#"[{"signal":"queue.result","value":"success"}]"#;
    std::fs::write(tmp.path().join("good.json"), good).unwrap();
    std::fs::write(tmp.path().join("big.json"), good).unwrap();
    mkfifo(&tmp.path().join("pipe.json"));
    let mut text = String::new();
    for (name, path, extra) in [
        ("good", "good.json", ""),
        ("fifo", "pipe.json", ""),
        ("zero", "/dev/zero", ""),
        ("big", "big.json", "max_bytes = 10"),
    ] {
        text.push_str(&format!(
            "[[collector]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{path}\"\ntimeout = \"20s\"\n{extra}\n"
        ));
    }
    for name in ["good", "fifo", "zero", "big"] {
        text.push_str(&check(name));
    }
    let cfg = tmp.path().join("infra-health.toml");
    std::fs::write(&cfg, text).unwrap();

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
    // Exited by itself (a process killed at the timeout has no exit code), well before any
    // collector timeout.
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        elapsed < Duration::from_secs(15),
        "the run took {elapsed:?}"
    );
    assert!(
        stderr.contains("pipe.json") && stderr.contains("FIFO"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/dev/zero") && stderr.contains("character device"),
        "{stderr}"
    );
    assert!(
        stderr.contains("big.json") && stderr.contains("max_bytes"),
        "{stderr}"
    );

    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let series = doc["requests"][0]["body"]["series"].as_array().unwrap();
    let tags = |s: &serde_json::Value| -> Vec<String> {
        s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    for name in ["fifo", "zero", "big"] {
        let unknown = series
            .iter()
            .filter(|s| s["metric"] == "metta.infra.cron.check.unknown")
            .map(tags)
            .find(|t| t.contains(&format!("workflow_name:{name}")))
            .unwrap_or_else(|| panic!("row {name} is not unknown: {series:?}"));
        assert!(
            unknown.contains(&"reason:collector_failed".to_string()),
            "{unknown:?}"
        );
    }
    let good = series
        .iter()
        .find(|s| s["metric"] == "metta.infra.cron.eval.good.ok")
        .map(tags)
        .expect("the good row is delivered");
    assert!(good.contains(&"status:pass".to_string()), "{good:?}");
}
