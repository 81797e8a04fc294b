//! A real S3 API on 127.0.0.1 for tests: `moto_server` (`pip install 'moto[server]'`).
//!
//! `scripts/test` starts one and exports `INFRA_HEALTH_TEST_S3_ENDPOINT`; when a test binary runs
//! without it (e.g. `cargo test` by hand), the first test that needs S3 starts its own
//! `python3 -m moto.server` under `timeout`, so it stops by itself. With neither, the test fails and says
//! how to install it: a silently skipped S3 test would hide a broken state store.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ENDPOINT: OnceLock<String> = OnceLock::new();

/// Environment for object_store / AWS clients pointing at the test server.
pub fn env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// The endpoint of a running S3 test server, starting one if needed.
pub fn endpoint() -> String {
    ENDPOINT
        .get_or_init(|| {
            if let Ok(e) = std::env::var("INFRA_HEALTH_TEST_S3_ENDPOINT")
                && !e.is_empty()
            {
                return e;
            }
            start_moto()
        })
        .clone()
}

fn start_moto() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1");
    let spawned = Command::new("timeout")
        .args([
            "600",
            "python3",
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        panic!(
            "cannot start moto_server ({e}); install it with: pip install 'moto[server]' (scripts/test does this)"
        );
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return endpoint;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "moto_server did not start on {endpoint} within 30s; is `pip install 'moto[server]'` done?"
    );
}

/// Create a bucket on the test server (idempotent).
pub fn create_bucket(endpoint: &str, bucket: &str) {
    // moto accepts unsigned requests: a plain PUT creates the bucket.
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .arg(format!("{endpoint}/{bucket}"))
        .output()
        .expect("curl runs");
    let code = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        code == "200" || code == "409",
        "creating bucket {bucket} on {endpoint} answered HTTP {code}"
    );
}
