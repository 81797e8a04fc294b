//! Small edges of the product, each as a user meets it through the binary: an artifact from
//! the future, points the intake refuses, numbers too large to print digit by digit.

use std::path::{Path, PathBuf};

use crate::support::bin;
use crate::support::fake_datadog::{FakeDatadog, Fault};

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn file_config(dir: &Path, value: &str, sink: &str) -> PathBuf {
    std::fs::write(
        dir.join("obs.json"),
        format!(r#"[{{"signal": "big", "value": {value}}}]"#),
    )
    .unwrap();
    let config = dir.join("infra-health.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sink]
{sink}

[[collector]]
name = "main"
type = "file"
path = "obs.json"

[[check]]
workflow_category = "ci"
workflow_name = "main"
task = "numbers"
check = "big"
collector = "main"
signal = "big"
condition = ">0"
metric = "ci.numbers.big"
"#
        ),
    )
    .unwrap();
    config
}

#[test]
fn an_artifact_from_the_future_is_refused_by_name_and_hides_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let good = crate::stable_suite::artifact("arena", 20, 45000.0);
    let mut future = good.clone();
    future.run_id = "stable.2099.arena".into();
    future.started_at = "2099-01-01T00:00:00Z".parse().unwrap();
    future.finished_at = "2099-01-01T01:00:00Z".parse().unwrap();
    future.metrics[1].value = 1.0;
    std::fs::write(
        runs.join("good.json"),
        infra_health::stable_suite::write_json(&good).unwrap(),
    )
    .unwrap();
    std::fs::write(
        runs.join("from_2099.json"),
        infra_health::stable_suite::write_json(&future).unwrap(),
    )
    .unwrap();
    let import = || {
        let out = bin()
            .current_dir(tmp.path())
            .args(["import-stable", "--from"])
            .arg(&runs)
            .arg("--state")
            .arg(tmp.path().join("state"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = import();
    assert_eq!(
        code,
        Some(3),
        "a refused artifact is a partial import\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("from_2099.json")
            && l.contains("finished_at")
            && l.contains("in the future")),
        "{stdout}"
    );
    // The valid run is the row's value: not hidden behind an `unknown` from 2099.
    let sps = stdout
        .lines()
        .find(|l| l.contains("arena") && l.contains(">40000"))
        .unwrap_or_else(|| panic!("no arena sps row:\n{stdout}"));
    assert!(sps.contains("45000") && sps.contains("pass"), "{sps}");
    assert!(!stdout.contains("unknown"), "{stdout}");
    // Left out of the checkpoint: read again (and refused again) on the next import, while
    // the valid one is not imported twice.
    let (code, stdout, _) = import();
    assert_eq!(code, Some(3));
    assert!(
        stdout.contains("2 artifacts listed: 1 already imported, 0 new, 1 malformed"),
        "{stdout}"
    );
}

#[test]
fn points_the_intake_refuses_exit_8_and_are_not_spooled() {
    let fake = FakeDatadog::start(KEY);
    fake.push_faults([Fault::status(400)]);
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(
        dir.path(),
        "3",
        &format!("type = \"datadog\"\nendpoint = \"{}\"", fake.url),
    );
    let state = dir.path().join("state");
    let out = bin()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .env("DD_API_KEY", KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(infra_health::exit::DROPPED as i32),
        "{stdout}\n{stderr}"
    );
    assert_eq!(infra_health::exit::DROPPED, 8);
    assert!(
        stdout.contains("refused by the intake and dropped"),
        "{stdout}"
    );
    assert!(!stdout.contains("NOT delivered"), "{stdout}");
    let spooled = std::fs::read_dir(state.join("spool"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(spooled, 0, "refused points are not spooled");
    // The dropped-points self-metric reached the intake.
    assert!(
        fake.recorded()
            .iter()
            .any(|r| r.metric == "metta.infra.delivery.dropped_points"),
        "{:?}",
        fake.recorded()
    );
}

#[test]
fn huge_numbers_print_in_scientific_notation() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), "1e308", "type = \"local\"");
    let state = dir.path().join("state");
    let out = bin()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.contains("ci/main"))
        .unwrap_or_else(|| panic!("no row:\n{stdout}"));
    assert!(row.contains("1e308") && row.contains("pass"), "{row}");
    let board = std::fs::read_to_string(state.join("board.html")).unwrap();
    assert!(board.contains("1e308"), "the board shows 1e308");
    for text in [stdout.as_ref(), board.as_str()] {
        assert!(
            !text.contains("0000000000000000000000"),
            "309 digits:\n{text}"
        );
    }
}
