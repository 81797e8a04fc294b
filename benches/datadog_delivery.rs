//! Datadog delivery benchmark: encode + compress + deliver N series (nine tags each) to a local
//! intake that reads and discards bodies, through the real sink (batching, limits, HTTP).
//!
//! `cargo bench --bench datadog_delivery` runs 100,000 and 1,000,000 series, each in its own
//! process so the peak RSS (VmHWM) printed is that size's own. `-- 100000` runs one size here.
//! 100k series are built up front (the sink's `&[Metric]` path); 1M are generated lazily and
//! streamed through the sink, as a producer that never holds them all would.
//! Also timed: encode + compress alone (no HTTP), the floor the delivery can approach.

use std::sync::Arc;
use std::time::{Duration, Instant};

use infra_health::schema::{Metric, MetricValue};
use infra_health::secret::Secret;
use infra_health::sinks::datadog::normalize::Window;
use infra_health::sinks::datadog::request::RequestBuilder;
use infra_health::sinks::datadog::{Client, Compression, DatadogConfig, DatadogSink};
use infra_health::state::StateStore;

const ITERATIONS: usize = 7;

fn metric(i: usize, ts: i64) -> Metric {
    Metric {
        name: format!("metta.infra.cron.bench.signal{}", i % 50),
        value: MetricValue::Gauge(i as f64 * 0.5),
        timestamp: ts,
        tags: vec![
            "source:cron".into(),
            "workflow_category:ci".into(),
            format!("workflow_name:workflow_{}", i % 40),
            format!("task:task_{i}"),
            "check:bench".into(),
            "condition:lt_5m".into(),
            "status:pass".into(),
            "env:bench".into(),
            "service:infra-health-dashboard".into(),
        ],
        unit: None,
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn start_intake() -> String {
    use axum::routing::post;
    async fn discard(body: axum::body::Bytes) -> (axum::http::StatusCode, &'static str) {
        std::hint::black_box(body.len());
        (axum::http::StatusCode::ACCEPTED, "{\"errors\":[]}")
    }
    let app = axum::Router::new()
        .route("/api/v2/series", post(discard))
        .route("/api/v1/distribution_points", post(discard));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

async fn bench(n: usize) {
    let url = start_intake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = Arc::new(StateStore::open(dir.path().to_str().expect("path")).expect("state"));
    let options: toml::Table = toml::from_str(&format!("endpoint = \"{url}\"")).expect("toml");
    let config = DatadogConfig::resolve(&options).expect("sink options");
    let client = Client::new(reqwest::Client::new(), config, Secret::new("bench-key"));
    let sink = DatadogSink::new(client, state);
    let now = chrono::Utc::now().timestamp();
    let prebuilt = n <= 100_000;
    let metrics: Vec<Metric> = if prebuilt {
        (0..n).map(|i| metric(i, now)).collect()
    } else {
        Vec::new()
    };

    // Encode + compress only.
    let mut encode_times = Vec::new();
    let mut requests = 0;
    let mut bytes = 0;
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let (mut r, mut b) = (0, 0);
        let window = Window::new(now);
        if prebuilt {
            for req in RequestBuilder::new(metrics.iter(), window, Compression::Zstd1) {
                r += 1;
                b += req.body.len();
            }
        } else {
            for req in
                RequestBuilder::new((0..n).map(|i| metric(i, now)), window, Compression::Zstd1)
            {
                r += 1;
                b += req.body.len();
            }
        }
        encode_times.push(started.elapsed());
        (requests, bytes) = (r, b);
    }

    // End to end.
    let mut times = Vec::new();
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let report = if prebuilt {
            sink.deliver_at(metrics.iter(), now).await
        } else {
            sink.deliver_at((0..n).map(|i| metric(i, now)), now).await
        };
        times.push(started.elapsed());
        assert!(
            report.ok && report.delivered_series == n,
            "{:?}",
            report.problems
        );
    }
    let enc = median(encode_times);
    let e2e = median(times);
    println!(
        "{n:>9} series ({}): encode+compress median {:>8.1} ms | end to end median {:>8.1} ms = {:>10.0} series/s | {requests} requests, {:.1} MB compressed | peak RSS {:.1} MB",
        if prebuilt {
            "prebuilt slice"
        } else {
            "streamed, generated lazily"
        },
        enc.as_secs_f64() * 1e3,
        e2e.as_secs_f64() * 1e3,
        n as f64 / e2e.as_secs_f64(),
        bytes as f64 / 1e6,
        vm_hwm_kb() as f64 / 1024.0,
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    if sizes.len() == 1 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(bench(sizes[0]));
        return;
    }
    println!(
        "datadog_delivery: {ITERATIONS} iterations per size, medians; each size in its own process"
    );
    let exe = std::env::current_exe().expect("current exe");
    for n in [100_000usize, 1_000_000] {
        let status = std::process::Command::new(&exe)
            .arg(n.to_string())
            .status()
            .expect("run bench child");
        assert!(status.success(), "bench for {n} failed");
    }
}
