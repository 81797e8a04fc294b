//! Parquet as the Python ecosystem writes it (pyarrow with every codec, Polars), and the
//! decompression bomb of issue 21 refused by name before it is decoded, also under a 4 GB
//! address-space limit. The files are written by `tests/data/write_parquet.py` (pyarrow and
//! Polars are installed by `scripts/test`).

use std::path::Path;
use std::process::Command;

use infra_health::stable_suite;
use serde_json::Value;

use crate::stable_suite::artifact;
use crate::support::{bin, repo_root};

/// Run the writer script; a missing pyarrow is a failure that says how to install it.
fn python_writes(mode: &str, dir: &Path) {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/data/write_parquet.py"))
        .arg(mode)
        .arg(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "tests/data/write_parquet.py {mode} failed (scripts/test installs pyarrow and polars: \
         python3 -m pip install pyarrow polars):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn import_dry_run(runs: &Path, state: &Path) -> (i32, String, String) {
    let out = bin()
        .args(["import-stable", "--dry-run", "--from"])
        .arg(runs)
        .arg("--state")
        .arg(state)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The `workflow_name` tags of the `sps` metrics in a dry-run document.
fn sps_jobs(stdout: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(stdout).expect("dry-run stdout is JSON");
    let mut jobs = Vec::new();
    for req in doc["requests"].as_array().unwrap() {
        for s in req["body"]["series"].as_array().into_iter().flatten() {
            if s["metric"] != "metta.infra.stablesuite.training.sps" {
                continue;
            }
            for t in s["tags"].as_array().unwrap() {
                if let Some(job) = t.as_str().and_then(|t| t.strip_prefix("workflow_name:")) {
                    jobs.push(job.to_string());
                }
            }
        }
    }
    jobs.sort();
    jobs
}

#[test]
fn every_codec_pyarrow_and_polars_write_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    python_writes("codecs", &runs);
    assert!(
        runs.join("polars_zstd.parquet").exists(),
        "Polars is installed by scripts/test; its artifact is part of this test"
    );
    let (code, stdout, stderr) = import_dry_run(&runs, &tmp.path().join("state"));
    assert_eq!(code, 0, "every file reads:\n{stderr}");
    let want: Vec<String> = ["brotli", "gzip", "lz4", "none", "snappy", "zstd"]
        .iter()
        .map(|c| format!("pyarrow_{c}"))
        .chain(["polars_zstd".to_string()])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(sps_jobs(&stdout), want, "{stderr}");
}

/// The issue's reproducer (and a subtler one, whose dictionary page is within its limit but not
/// 2,000 copies of it) beside a good artifact: both are refused by name, the good one imports,
/// the run exits 3.
fn bomb_beside_a_good_artifact(dir: &Path) -> std::path::PathBuf {
    let runs = dir.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    python_writes("bomb", &runs);
    let size = std::fs::metadata(runs.join("bomb.parquet")).unwrap().len();
    assert!(size < 400_000, "the bomb is a small file: {size} bytes");
    std::fs::write(
        runs.join("good.json"),
        stable_suite::write_json(&artifact("good", 21, 45000.0)).unwrap(),
    )
    .unwrap();
    runs
}

fn assert_bomb_refused_and_good_imported(code: i32, stdout: &str, stderr: &str) {
    assert_eq!(
        code, 3,
        "a refused artifact is a partial failure:\n{stderr}"
    );
    let refusal = stderr
        .lines()
        .find(|l| l.contains("bomb.parquet"))
        .unwrap_or_else(|| panic!("no line names bomb.parquet:\n{stderr}"));
    assert!(
        refusal.contains("field `recipe`")
            && refusal.contains("a dictionary page decompresses to")
            && refusal.contains("refused before decoding"),
        "{refusal}"
    );
    let wide = stderr
        .lines()
        .find(|l| l.contains("wide.parquet"))
        .unwrap_or_else(|| panic!("no line names wide.parquet:\n{stderr}"));
    assert!(
        wide.contains("field `recipe`")
            && wide.contains("may decode to")
            && wide.contains("used by 2000 rows"),
        "{wide}"
    );
    assert_eq!(sps_jobs(stdout), vec!["good".to_string()], "{stderr}");
}

#[test]
fn a_parquet_bomb_is_refused_by_name_and_the_good_artifact_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = bomb_beside_a_good_artifact(tmp.path());
    let (code, stdout, stderr) = import_dry_run(&runs, &tmp.path().join("state"));
    assert_bomb_refused_and_good_imported(code, &stdout, &stderr);
}

#[test]
fn a_parquet_bomb_is_refused_under_a_4_gb_address_space_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = bomb_beside_a_good_artifact(tmp.path());
    let binary = assert_cmd::cargo::cargo_bin("infra-health");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -v 4000000 && exec "$0" import-stable --dry-run --from "$1" --state "$2""#)
        .arg(&binary)
        .arg(&runs)
        .arg(tmp.path().join("state"))
        .env_remove("DD_API_KEY")
        .env_remove("DD_APP_KEY")
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("memory allocation"),
        "the process ran out of memory:\n{stderr}"
    );
    assert_bomb_refused_and_good_imported(
        out.status.code().unwrap_or(-1),
        &String::from_utf8_lossy(&out.stdout),
        &stderr,
    );
}
