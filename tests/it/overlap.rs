//! Jobs that overlap on one state store, as the chart's CronJobs do every hour: after an outage
//! each spooled batch is delivered by exactly one process, on a local directory and on S3.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::fake_datadog::{FakeDatadog, Fault};
use crate::support::{repo_root, s3};

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// The bundled config against the fake intake, with absolute example paths.
fn config(dir: &Path, intake: &str) -> std::path::PathBuf {
    let root = repo_root();
    let examples = root.join("examples");
    let text = std::fs::read_to_string(root.join("config/infra-health.toml"))
        .unwrap()
        .replace("\"../examples/", &format!("\"{}/", examples.display()))
        .replace(
            "\"file://../examples/",
            &format!("\"file://{}/", examples.display()),
        )
        .replace(
            "type = \"auto\"",
            &format!(
                "type = \"datadog\"\nendpoint = \"{intake}\"\nmax_retries = 0\nbackoff = \"5ms\"\ntimeout = \"2s\"\ndeadline = \"20s\""
            ),
        );
    let path = dir.join("infra-health.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The two jobs of the chart: the ten-minute run and the hourly import.
fn job(which: usize, cfg: &Path, state: &str, env: &[(&'static str, String)]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("infra-health"));
    let examples = repo_root().join("examples/stable-suite");
    if which.is_multiple_of(2) {
        cmd.args(["run", "--only", "github_actions,github_commits,eval"]);
    } else {
        cmd.args(["import-stable", "--rebase-timestamps", "--from"])
            .arg(&examples);
    }
    cmd.arg("--config")
        .arg(cfg)
        .args(["--state", state])
        .env("DD_API_KEY", KEY)
        .env_remove("DD_URL")
        .env_remove("DD_SITE")
        .env_remove("INFRA_HEALTH_STATE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Points (entries) in the spool, read from the state store's files or objects.
fn spooled(state_dir: Option<&Path>, list: &dyn Fn() -> Vec<Vec<u8>>) -> usize {
    let bodies: Vec<Vec<u8>> = match state_dir {
        Some(dir) => std::fs::read_dir(dir.join("spool"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .map(|e| std::fs::read(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default(),
        None => list(),
    };
    bodies
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_slice(b).unwrap();
            let data = &v["data"];
            data["series"].as_array().map_or(0, Vec::len)
                + data["distribution_points"].as_array().map_or(0, Vec::len)
        })
        .sum()
}

fn overlapping_rounds(state: &str, state_dir: Option<&Path>, env: &[(&'static str, String)]) {
    let intake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &intake.url);
    let list_s3 = || -> Vec<Vec<u8>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let vars = env.iter().map(|(k, v)| (k.to_string(), v.clone()));
            let store = infra_health::state::StateStore::open_with(state, vars).unwrap();
            let mut out = Vec::new();
            for k in store.list("spool").await.unwrap() {
                if k.ends_with(".json")
                    && let Some(b) = store.get(&k).await.unwrap()
                {
                    out.push(b.to_vec());
                }
            }
            out
        })
    };
    for round in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let outage_start = chrono::Utc::now().timestamp();
        // An outage: both jobs spool everything, one after the other (distinct timestamps).
        intake.fault_rate(1.0, round, vec![Fault::status(503)]);
        for which in 0..2 {
            let out = job(which, &cfg, state, env).output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(4),
                "round {round}, job {which} during the outage: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let expected = spooled(state_dir, &list_s3);
        assert!(expected > 0, "round {round}: the outage spooled something");
        let outage_end = chrono::Utc::now().timestamp();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        // Back up but slow, so the processes' deliveries overlap: five processes of both jobs
        // at once, all reading the same spool.
        intake.fault_rate(0.0, round, Vec::new());
        intake.set_latency(std::time::Duration::from_millis(150));
        let children: Vec<_> = (0..5)
            .map(|i| job(i, &cfg, state, env).spawn().unwrap())
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.code() == Some(0) || out.status.code() == Some(3),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        intake.set_latency(std::time::Duration::ZERO);
        assert_eq!(
            spooled(state_dir, &list_s3),
            0,
            "round {round}: the spool is empty"
        );
        // Every point stamped during an outage came from the spool: each arrived once.
        let mut seen: HashMap<(String, Vec<String>, i64), usize> = HashMap::new();
        for r in intake.recorded() {
            if (outage_start..=outage_end).contains(&r.timestamp) {
                *seen.entry(r.key()).or_default() += 1;
            }
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "round {round}: {} spooled points arrived more than once, e.g. {:?}",
            twice.len(),
            twice.first()
        );
        let arrived: usize = seen.values().sum();
        assert_eq!(
            arrived, expected,
            "round {round}: every spooled point arrived"
        );
    }
}

#[test]
fn overlapping_jobs_deliver_each_spooled_batch_once_on_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    overlapping_rounds(state.to_str().unwrap(), Some(&state), &[]);
}

#[test]
fn overlapping_jobs_deliver_each_spooled_batch_once_on_s3() {
    let endpoint = s3::endpoint();
    s3::create_bucket(&endpoint, "overlap-it");
    let env = s3::env(&endpoint);
    overlapping_rounds("s3://overlap-it/state", None, &env);
}
