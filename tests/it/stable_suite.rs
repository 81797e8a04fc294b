//! `import-stable` end to end: local directories and a real S3 API (moto) on 127.0.0.1,
//! checkpoints, malformed artifacts, dry runs, and `emit-stable` writing what the importer reads.

use std::path::Path;

use infra_health::stable_suite::{self, Artifact, Criterion, ExitStatus, RunMetric};
use serde_json::Value;

use crate::support::{bin, s3};

/// An artifact of the night of `day` (20 or 21): finished `30 − day` hours before the test
/// runs, so the import's carry-forward limit (26 h) still holds it, as it would a real nightly
/// run imported the next morning. Older would be `stale`, exactly as `run` judges it.
pub fn artifact(job: &str, day: u32, sps: f64) -> Artifact {
    let finished = chrono::Utc::now() - chrono::TimeDelta::hours(30 - i64::from(day));
    let finished = chrono::DateTime::from_timestamp(finished.timestamp(), 0).unwrap();
    Artifact {
        schema_version: 1,
        suite: "stable".into(),
        job: job.into(),
        recipe: Some(format!("{job}.recipe")),
        run_id: format!("stable.{day}.{job}"),
        runner: Some("skypilot".into()),
        started_at: finished - chrono::TimeDelta::hours(1),
        finished_at: finished,
        exit_status: ExitStatus::Success,
        exit_code: Some(0),
        metrics: vec![
            RunMetric {
                name: "reward".into(),
                value: 0.7,
                unit: "hearts".into(),
            },
            RunMetric {
                name: "sps".into(),
                value: sps,
                unit: "steps_per_sec".into(),
            },
        ],
        acceptance: vec![Criterion {
            metric: "sps".into(),
            condition: ">40000".into(),
        }],
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Every metric of a dry-run document, as (name, value, tags).
fn dry_run_metrics(doc: &Value) -> Vec<(String, f64, Vec<String>)> {
    let mut out = Vec::new();
    for req in doc["requests"].as_array().unwrap() {
        if req["path"] != "/api/v2/series" {
            continue;
        }
        for s in req["body"]["series"].as_array().unwrap() {
            out.push((
                s["metric"].as_str().unwrap().to_string(),
                s["points"][0]["value"].as_f64().unwrap(),
                s["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
            ));
        }
    }
    out
}

fn import(
    from: &str,
    state: &Path,
    dry_run: bool,
    envs: &[(&str, String)],
) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.current_dir(state)
        .args(["import-stable", "--from", from, "--state"])
        .arg(state.join("state"));
    if dry_run {
        cmd.arg("--dry-run");
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn local_import_skips_malformed_artifacts_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    write(
        &runs,
        "a/arena.json",
        &stable_suite::write_json(&artifact("arena", 20, 45000.0)).unwrap(),
    );
    let parquet = stable_suite::parquet::write(&artifact("multinode", 20, 30000.0)).unwrap();
    write(&runs, "a/multinode.parquet", &parquet);
    write(&runs, "b/truncated.parquet", &parquet[..parquet.len() - 40]);
    write(&runs, "b/bad.json", b"{\"schema_version\": 1, \"suite\": ");
    let mut wrong = serde_json::to_value(artifact("x", 20, 1.0)).unwrap();
    wrong["metrics"][0]["value"] = Value::String("high".into());
    write(&runs, "b/wrong_type.json", wrong.to_string().as_bytes());
    let mut missing = serde_json::to_value(artifact("y", 20, 1.0)).unwrap();
    missing.as_object_mut().unwrap().remove("finished_at");
    write(&runs, "b/missing.json", missing.to_string().as_bytes());
    write(&runs, "b/_SUCCESS", b"");

    let (code, stdout, stderr) = import(runs.to_str().unwrap(), tmp.path(), true, &[]);
    assert_eq!(
        code, 3,
        "malformed artifacts make the exit code 3\n{stderr}"
    );
    let doc: Value = serde_json::from_str(&stdout).expect("dry-run stdout is JSON");
    for (file, field) in [
        ("b/wrong_type.json", "field `metrics[0].value`"),
        ("b/missing.json", "field `finished_at`"),
        ("b/bad.json", "not valid JSON"),
        ("b/truncated.parquet", "Parquet"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(file) && l.contains(field)),
            "no report naming {file} and {field} in:\n{stderr}"
        );
    }
    let metrics = dry_run_metrics(&doc);
    let bad = metrics
        .iter()
        .find(|(n, _, _)| n == "metta.infra.stablesuite.bad_artifacts")
        .expect("bad_artifacts self-metric");
    assert_eq!(bad.1, 4.0);
    assert!(bad.2.contains(&"source:stable_suite".to_string()));
    let sps: Vec<_> = metrics
        .iter()
        .filter(|(n, _, _)| n == "metta.infra.stablesuite.training.sps")
        .collect();
    assert_eq!(
        sps.len(),
        2,
        "both valid artifacts are imported: {metrics:?}"
    );
    let arena = sps
        .iter()
        .find(|m| m.2.contains(&"workflow_name:arena".to_string()))
        .unwrap();
    assert_eq!(arena.1, 45000.0);
    assert!(arena.2.contains(&"unit:steps_per_sec".to_string()));
    assert!(arena.2.contains(&"status:pass".to_string()));
    assert!(arena.2.contains(&"condition:gt_40000".to_string()));
    let multinode = sps
        .iter()
        .find(|m| m.2.contains(&"workflow_name:multinode".to_string()))
        .unwrap();
    assert!(multinode.2.contains(&"status:fail".to_string()));

    // The dry run did not advance the checkpoint: a real import sees everything as new.
    let (code, stdout, _) = import(runs.to_str().unwrap(), tmp.path(), false, &[]);
    assert_eq!(code, 3);
    assert!(
        stdout.contains("6 artifacts listed: 0 already imported, 2 new, 4 malformed"),
        "{stdout}"
    );

    // Re-importing sends nothing new and does not re-report the malformed ones.
    let (code, stdout, _) = import(runs.to_str().unwrap(), tmp.path(), false, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("6 artifacts listed: 6 already imported, 0 new, 0 malformed"),
        "{stdout}"
    );

    // A new artifact is picked up on the next run, alone.
    write(
        &runs,
        "c/arena.json",
        &stable_suite::write_json(&artifact("arena", 21, 39000.0)).unwrap(),
    );
    let (code, stdout, _) = import(runs.to_str().unwrap(), tmp.path(), true, &[]);
    assert_eq!(code, 0);
    let metrics = dry_run_metrics(&serde_json::from_str(&stdout).unwrap());
    // Fresh: only the new artifact's value. (The other job's row, derived from an earlier
    // artifact's acceptance criterion, is carried forward: re-sent as `inferred:true`.)
    let sps: Vec<_> = metrics
        .iter()
        .filter(|(n, _, _)| n == "metta.infra.stablesuite.training.sps")
        .filter(|(_, _, tags)| !tags.contains(&"inferred:true".to_string()))
        .collect();
    assert_eq!(sps.len(), 1, "{metrics:?}");
    assert_eq!(sps[0].1, 39000.0);
    assert!(sps[0].2.contains(&"status:fail".to_string()));
}

#[test]
fn emit_stable_writes_what_import_reads_and_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    for ext in ["json", "parquet"] {
        let out = tmp.path().join(format!("runs/run.{ext}"));
        bin()
            .args([
                "emit-stable",
                "--suite",
                "stable",
                "--job",
                "arena",
                "--run-id",
                "r1",
                "--started-at",
                "2026-11-20T03:00:00Z",
                "--finished-at",
                "2026-11-20T04:00:00Z",
                "--metric",
                "sps=41000:steps_per_sec",
                "--accept",
                "sps>40000",
                "-o",
            ])
            .arg(&out)
            .assert()
            .success();
        let bytes = std::fs::read(&out).unwrap();
        let format = stable_suite::Format::of(out.to_str().unwrap()).unwrap();
        let a = stable_suite::parse(&bytes, format, "x").unwrap();
        assert_eq!(a.metrics[0].value, 41000.0);
        assert_eq!(a.acceptance[0].condition, ">40000");
    }
    let out = bin()
        .args([
            "emit-stable",
            "--suite",
            "stable",
            "--job",
            "arena",
            "--run-id",
            "r1",
            "--metric",
            "sps=fast:steps_per_sec",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metric"));
}

#[test]
fn s3_import_reads_a_prefix_once_and_picks_up_new_artifacts() {
    use object_store::ObjectStoreExt;
    let endpoint = s3::endpoint();
    s3::create_bucket(&endpoint, "stable-it");
    let envs = s3::env(&endpoint);
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("stable-it")
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let put = |key: &str, bytes: Vec<u8>| {
        rt.block_on(store.put(&object_store::path::Path::from(key), bytes.into()))
            .unwrap();
    };
    put(
        "nightly/2026-11-20/arena.json",
        stable_suite::write_json(&artifact("arena", 20, 45000.0)).unwrap(),
    );
    put(
        "nightly/2026-11-20/multinode.parquet",
        stable_suite::parquet::write(&artifact("multinode", 20, 42000.0)).unwrap(),
    );
    put("nightly/2026-11-20/broken.json", b"{".to_vec());
    put(
        "other/ignored.json",
        stable_suite::write_json(&artifact("other", 20, 1.0)).unwrap(),
    );

    let tmp = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = envs.iter().map(|(k, v)| (*k, v.clone())).collect();
    let (code, stdout, stderr) = import("s3://stable-it/nightly/", tmp.path(), false, &env);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("3 artifacts listed: 0 already imported, 2 new, 1 malformed"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("s3://stable-it/nightly/2026-11-20/broken.json"),
        "{stdout}"
    );

    let (code, stdout, _) = import("s3://stable-it/nightly/", tmp.path(), false, &env);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("3 artifacts listed: 3 already imported, 0 new"),
        "{stdout}"
    );

    put(
        "nightly/2026-11-21/arena.json",
        stable_suite::write_json(&artifact("arena", 21, 46000.0)).unwrap(),
    );
    let (code, stdout, _) = import("s3://stable-it/nightly/", tmp.path(), true, &env);
    assert_eq!(code, 0);
    let metrics = dry_run_metrics(&serde_json::from_str(&stdout).unwrap());
    // Fresh: only the new artifact's value; rows derived from earlier artifacts are carried
    // forward (`inferred:true`).
    let sps: Vec<_> = metrics
        .iter()
        .filter(|(n, _, _)| n == "metta.infra.stablesuite.training.sps")
        .filter(|(_, _, tags)| !tags.contains(&"inferred:true".to_string()))
        .map(|m| m.1)
        .collect();
    assert_eq!(sps, vec![46000.0]);

    // emit-stable uploads to S3 as well.
    bin()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args([
            "emit-stable",
            "--suite",
            "stable",
            "--job",
            "arena",
            "--run-id",
            "r9",
            "--metric",
            "sps=1:steps_per_sec",
            "-o",
            "s3://stable-it/nightly/2026-11-22/arena.parquet",
        ])
        .assert()
        .success();
    let (_, stdout, _) = import("s3://stable-it/nightly/", tmp.path(), false, &env);
    // The 2026-11-21 artifact was only seen by a dry run, so it is still new, with the upload.
    assert!(
        stdout.contains("5 artifacts listed: 3 already imported, 2 new"),
        "{stdout}"
    );
}

#[test]
fn run_with_the_stable_suite_collector_advances_its_checkpoint_only_after_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    write(
        &runs,
        "arena.json",
        &stable_suite::write_json(&artifact("arena", 20, 45000.0)).unwrap(),
    );
    let config = tmp.path().join("infra-health.toml");
    std::fs::write(
        &config,
        r#"
[[collector]]
name = "suite"
type = "stable_suite"
url = "runs/"
rebase_timestamps = true  # the artifacts are days old; this test is about the checkpoint

[[check]]
source = "stable_suite"
workflow_category = "training"
workflow_name = "arena"
task = "hearts"
check = "sps"
collector = "suite"
signal = "sps"
match = { job = "arena" }
condition = ">40000"
metric = "training.sps"
"#,
    )
    .unwrap();
    let run = |dry: bool| {
        let mut cmd = bin();
        cmd.current_dir(tmp.path()).args([
            "run",
            "--config",
            "infra-health.toml",
            "--state",
            "state",
        ]);
        if dry {
            cmd.arg("--dry-run");
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for _ in 0..2 {
        let (code, stdout, stderr) = run(true);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains("metta.infra.stablesuite.training.sps"),
            "a dry run does not advance the checkpoint"
        );
    }
    let (code, stdout, stderr) = run(false);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("45000"), "{stdout}");
    // Nothing new to import: the row is only carried forward from the state store.
    let (_, stdout, _) = run(false);
    assert!(
        stdout.contains("pass (inferred)"),
        "already imported: {stdout}"
    );
}

#[test]
fn local_import_reports_a_symlink_loop_and_duplicate_keys_and_imports_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    write(
        &runs,
        "a/arena.json",
        &stable_suite::write_json(&artifact("arena", 20, 45000.0)).unwrap(),
    );
    // A directory link back to the top, and a link to itself.
    std::os::unix::fs::symlink(&runs, runs.join("a/loop")).unwrap();
    std::os::unix::fs::symlink("self.json", runs.join("self.json")).unwrap();
    // `job` twice: the last one would silently win.
    let text =
        String::from_utf8(stable_suite::write_json(&artifact("multinode", 20, 30000.0)).unwrap())
            .unwrap();
    write(
        &runs,
        "b/dup.json",
        text.replacen('{', "{\"job\": \"arena\",", 1).as_bytes(),
    );

    let (code, stdout, stderr) = import(runs.to_str().unwrap(), tmp.path(), true, &[]);
    assert_eq!(
        code, 3,
        "a loop and a bad artifact make the exit code 3\n{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("a/loop") && l.contains("symlink loop")),
        "no report naming a/loop in:\n{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("self.json") && l.contains("symlink loop")),
        "no report naming self.json in:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("b/dup.json")
            && l.contains("field `job`")
            && l.contains("more than once")),
        "no report naming b/dup.json and the key in:\n{stderr}"
    );
    let metrics = dry_run_metrics(&serde_json::from_str(&stdout).unwrap());
    let sps: Vec<_> = metrics
        .iter()
        .filter(|(n, _, _)| n == "metta.infra.stablesuite.training.sps")
        .collect();
    assert_eq!(sps.len(), 1, "the valid artifact is imported: {metrics:?}");
    assert!(sps[0].2.contains(&"workflow_name:arena".to_string()));

    let (code, stdout, _) = import(runs.to_str().unwrap(), tmp.path(), false, &[]);
    assert_eq!(code, 3);
    assert!(
        stdout.contains("2 artifacts listed: 0 already imported, 1 new, 1 malformed"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("could not list") && l.contains("a/loop")),
        "{stdout}"
    );
}
