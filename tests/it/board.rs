//! The health board in a real browser: headless Chromium loads the board that `run` and
//! `board` wrote and reports each cell's status class and computed background colour, so a
//! stylesheet regression (a pass cell that is not green) fails here. The screenshot is kept at
//! `$CARGO_TARGET_DIR/test-artifacts/board.png`.
//!
//! Chromium is the Debian package `chromium` (`scripts/test` installs it when missing); this test
//! fails, saying so, when it is absent, rather than skipping. It runs with networking features
//! off and loads only a `file://` URL.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::state::succeed;
use crate::support;

pub const CONFIG: &str = r#"
[defaults]
env = "test"
carry_forward = "1h"

[sink]
type = "local"

[[collector]]
name = "main"
type = "file"
path = "main.json"

[[collector]]
name = "nightly"
type = "file"
path = "nightly.json"

[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "tests"
check = "workflow_success"
title = "Tests <passing>"
collector = "main"
signal = "tests"
condition = "==success"
metric = "ci.workflow.success"
encoding = "status"

[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "benchmarks"
check = "workflow_success"
title = "Benchmarks"
collector = "main"
signal = "benchmarks"
condition = "==success"
metric = "ci.workflow.success"
encoding = "status"

[[check]]
workflow_category = "ci"
workflow_name = "ci_smoothness"
task = "duration"
check = "p90"
title = "Duration p90"
collector = "main"
signal = "duration"
condition = "<5m"
warn = "<8m"
unit = "second"
metric = "ci.workflow.duration"

[[check]]
workflow_category = "ci"
workflow_name = "ci_smoothness"
task = "queue"
check = "p90"
title = "Queue time p90"
collector = "main"
signal = "queue_time"
condition = "<2m"
metric = "ci.queue.p90"

[[check]]
workflow_category = "training"
workflow_name = "multigpu_arena"
task = "hearts"
check = "reward_threshold"
title = "Arena reward"
collector = "nightly"
signal = "reward"
condition = ">0.5"
carry_forward = "26h"
metric = "training.reward"
"#;

/// Which status each row must show, by title, after the two runs below.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("Tests <passing>", "status-pass", "rgb(26, 127, 55)"),
    ("Arena reward", "status-inferred", "rgb(167, 227, 181)"),
    ("Benchmarks", "status-fail", "rgb(207, 34, 46)"),
    ("Queue time p90", "status-unknown", "rgb(208, 215, 222)"),
    ("Duration p90", "status-warn", "rgb(242, 204, 96)"),
];

/// Appended to a copy of the board: writes each cell's class and computed colour into the DOM,
/// which `--dump-dom` then prints. The board itself carries no script.
const PROBE: &str = r#"<script>
const out = [];
for (const tr of document.querySelectorAll('tr.row')) {
  const cell = tr.querySelector('td.cell');
  const title = tr.querySelector('th.rowname').firstChild.textContent;
  out.push([title, cell.className, getComputedStyle(cell).backgroundColor,
            cell.querySelector('.label').textContent, cell.getAttribute('title')]);
}
const pre = document.createElement('pre');
pre.id = 'probe';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"#;

fn chromium() -> PathBuf {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(candidate).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "headless Chromium is needed for the board test: apt-get install -y chromium (scripts/test does this)"
    );
}

fn chromium_cmd(profile: &Path) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("120").arg(chromium()).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo_root().join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn board_shows_pass_inferred_fail_unknown_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("infra-health.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    std::fs::write(
        dir.path().join("main.json"),
        r#"[{"signal": "tests", "value": "success"},
            {"signal": "benchmarks", "value": "failure"},
            {"signal": "duration", "value": 400, "unit": "second"}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("nightly.json"),
        r#"[{"signal": "reward", "value": 0.63}]"#,
    )
    .unwrap();
    let state = dir.path().join("state");
    let run = |only: &str| {
        succeed(
            support::bin()
                .args(["run", "--config"])
                .arg(&cfg)
                .arg("--state")
                .arg(&state)
                .args(["--only", only]),
        );
    };
    // Nightly reported once; the next run collects only `main`: its row is carried forward.
    run("main,nightly");
    run("main");
    let from_run = state.join("board.html");
    assert!(from_run.exists(), "run writes the board");

    let board = dir.path().join("board.html");
    succeed(
        support::bin()
            .args(["board", "--config"])
            .arg(&cfg)
            .arg("--state")
            .arg(&state)
            .arg("--out")
            .arg(&board),
    );
    let html = std::fs::read_to_string(&board).unwrap();
    assert!(!html.contains("<script"), "the board carries no script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "loads nothing remote"
    );

    let probed = dir.path().join("probed.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium_cmd(profile.path())
        .arg("--virtual-time-budget=3000")
        .arg("--dump-dom")
        .arg(format!("file://{}", probed.display()))
        .output()
        .unwrap();
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let start = dom_text.find("<pre id=\"probe\">").unwrap_or_else(|| {
        panic!(
            "chromium printed no probe output: {}",
            String::from_utf8_lossy(&dom.stderr)
        )
    }) + "<pre id=\"probe\">".len();
    let end = start + dom_text[start..].find("</pre>").unwrap();
    let json = dom_text[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let cells: Vec<Vec<String>> = serde_json::from_str(&json).unwrap();
    assert_eq!(cells.len(), EXPECTED.len(), "{cells:?}");
    for (title, class, colour) in EXPECTED {
        let cell = cells
            .iter()
            .find(|c| c[0] == *title)
            .unwrap_or_else(|| panic!("no row {title:?} in {cells:?}"));
        assert!(cell[1].split(' ').any(|c| c == *class), "{title}: {cell:?}");
        assert_eq!(cell[2], *colour, "{title}: computed background");
        let word = class.trim_start_matches("status-");
        assert_eq!(cell[3], word, "{title}: the status is also written as text");
        assert!(
            cell[4].contains("source: cron (collector "),
            "{title}: {cell:?}"
        );
    }
    let inferred = cells.iter().find(|c| c[0] == "Arena reward").unwrap();
    assert!(
        inferred[4].contains("observed 20"),
        "observation time: {inferred:?}"
    );
    assert!(inferred[4].contains("carried forward"), "{inferred:?}");

    let shot = artifacts_dir().join("board.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium_cmd(profile.path())
        .arg("--window-size=1400,1000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", board.display()))
        .output()
        .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}): {}",
            shot.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000, "a real picture, not a blank page");
}
