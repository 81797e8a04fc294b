//! Benchmark: importing 10,000 small stable-suite artifacts from a local directory and from a
//! real S3 API (moto on 127.0.0.1), as `import-stable` does (list, read, parse, validate,
//! translate to observations). Prints the median artifacts/second over several passes, the time
//! of an incremental pass where everything is already in the checkpoint, and peak RSS (VmHWM).
//!
//! `cargo bench --bench stable_import` (S3: uses `INFRA_HEALTH_TEST_S3_ENDPOINT` when set, as
//! `scripts/test` exports it, else starts `moto_server` under `timeout`). `STABLE_BENCH_N`
//! changes the artifact count.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use infra_health::collectors::stable_suite::import::{self, Checkpoint, ImportOptions, Seen};
use infra_health::stable_suite::source::ArtifactSource;
use infra_health::stable_suite::{self, Artifact, Criterion, ExitStatus, RunMetric};
use object_store::ObjectStoreExt;

fn artifact(i: usize) -> Artifact {
    Artifact {
        schema_version: 1,
        suite: "stable".into(),
        job: format!("job_{}", i % 50),
        recipe: Some("arena.multigpu".into()),
        run_id: format!("stable.{i}"),
        runner: Some("skypilot".into()),
        started_at: "2026-11-20T03:00:00Z".parse().unwrap(),
        finished_at: "2026-11-20T04:00:00Z".parse().unwrap(),
        exit_status: ExitStatus::Success,
        exit_code: Some(0),
        metrics: vec![
            RunMetric {
                name: "reward".into(),
                value: 0.5 + (i % 10) as f64 / 100.0,
                unit: "hearts".into(),
            },
            RunMetric {
                name: "sps".into(),
                value: 40000.0 + i as f64,
                unit: "steps_per_sec".into(),
            },
        ],
        acceptance: vec![Criterion {
            metric: "sps".into(),
            condition: ">40000".into(),
        }],
    }
}

/// Every tenth artifact is Parquet, the rest JSON.
fn encoded(i: usize) -> (String, Vec<u8>) {
    let a = artifact(i);
    if i.is_multiple_of(10) {
        (
            format!("runs/{:03}/{i}.parquet", i % 100),
            stable_suite::parquet::write(&a).unwrap(),
        )
    } else {
        (
            format!("runs/{:03}/{i}.json", i % 100),
            stable_suite::write_json(&a).unwrap(),
        )
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure(label: &str, url: &str, n: usize, passes: usize) {
    let source = ArtifactSource::open(url).unwrap();
    let opts = ImportOptions::default();
    let mut rates = Vec::new();
    let mut last = None;
    for _ in 0..passes {
        let started = Instant::now();
        let batch = import::import(&source, None, &opts, chrono::Utc::now())
            .await
            .unwrap();
        let obs = batch.observations(&opts, Utc::now());
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(batch.artifacts.len(), n, "{:?}", batch.bad.first());
        assert_eq!(obs.len(), n * 4);
        rates.push(n as f64 / secs);
        last = Some(batch);
    }
    let batch = last.unwrap();
    let checkpoint = Checkpoint {
        url: url.into(),
        artifacts: batch
            .checkpoint
            .iter()
            .map(|(k, v): (&String, &Seen)| (k.clone(), v.clone()))
            .collect(),
    };
    let mut incremental = Vec::new();
    for _ in 0..passes {
        let started = Instant::now();
        let again = import::import(&source, Some(&checkpoint), &opts, chrono::Utc::now())
            .await
            .unwrap();
        incremental.push(started.elapsed().as_secs_f64());
        assert_eq!(again.artifacts.len(), 0);
    }
    println!(
        "{label:<6} {n} artifacts: median {:>8.0} artifacts/s (min {:.0}, max {:.0}, {passes} passes); \
         incremental pass (all in checkpoint) median {:.3}s; peak RSS so far {:.1} MiB",
        median(rates.clone()),
        rates.iter().cloned().fold(f64::INFINITY, f64::min),
        rates.iter().cloned().fold(0.0, f64::max),
        median(incremental),
        peak_rss_mib()
    );
}

/// The S3 test endpoint, and the moto_server this bench started (stopped at the end).
fn s3_endpoint() -> (String, Option<std::process::Child>) {
    if let Ok(e) = std::env::var("INFRA_HEALTH_TEST_S3_ENDPOINT")
        && !e.is_empty()
    {
        return (e, None);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("timeout")
        .args([
            "900",
            "moto_server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server (pip install 'moto[server]')");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (format!("http://127.0.0.1:{port}"), Some(child))
}

fn main() {
    let n: usize = std::env::var("STABLE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let (endpoint, mut moto) = s3_endpoint();
    // SAFETY: set before the runtime or any other thread exists.
    unsafe {
        for (k, v) in [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ] {
            std::env::set_var(k, v);
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..n).map(encoded).collect();
    let bytes: usize = files.iter().map(|f| f.1.len()).sum();
    println!(
        "stable_import: {n} artifacts, {:.1} KiB on average",
        bytes as f64 / n as f64 / 1024.0
    );

    let dir = tempfile::tempdir().unwrap();
    for (key, b) in &files {
        let p = dir.path().join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
    rt.block_on(measure("local", dir.path().to_str().unwrap(), n, 5));

    let bucket = format!("stable-bench-{}", std::process::id());
    let created = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-X", "PUT"])
        .arg(format!("{endpoint}/{bucket}"))
        .status()
        .unwrap();
    assert!(created.success());
    let store = infra_health::store_url::s3(&bucket).unwrap();
    let started = Instant::now();
    rt.block_on(
        futures::stream::iter(files)
            .map(|(key, b)| {
                let store = &store;
                async move {
                    store
                        .put(&object_store::path::Path::from(key.as_str()), b.into())
                        .await
                        .unwrap()
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>(),
    );
    println!(
        "s3     uploaded {n} artifacts in {:.1}s (setup, not measured)",
        started.elapsed().as_secs_f64()
    );
    rt.block_on(measure("s3", &format!("s3://{bucket}/runs/"), n, 3));
    if let Some(child) = moto.as_mut() {
        // SIGTERM, not SIGKILL: `timeout` forwards TERM to moto_server, a KILL would orphan it.
        // SAFETY: kill(2) with our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let _ = child.wait();
    }
}
