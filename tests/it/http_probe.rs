//! The `http_probe` collector against a real HTTP server on 127.0.0.1: outcomes, latency
//! samples, status codes and JSON-pointer values.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use infra_health::collectors::CollectContext;
use infra_health::observation::{Observation, Value};

async fn server() -> String {
    let app = Router::new()
        .route(
            "/queue",
            get(|| async {
                axum::Json(serde_json::json!({"queue": {"depth": 3, "oldest_age_seconds": 120.5, "state": "ok"}}))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/broken", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
        .route("/text", get(|| async { "all systems degraded" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("127.0.0.1:{}", addr.port())
}

async fn probe(options: &str) -> Vec<Observation> {
    let text =
        format!("[[collector]]\nname = \"p\"\ntype = \"http_probe\"\npause = \"0s\"\n{options}\n");
    let plan = infra_health::config::parse(Path::new("probe.toml"), &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ctx = CollectContext::new(
        chrono::Utc::now(),
        infra_health::net::http_client().unwrap(),
        Arc::new(infra_health::state::StateStore::open(dir.path().to_str().unwrap()).unwrap()),
        true,
    );
    plan.collectors[0].collector.collect(&ctx).await.unwrap()
}

fn get_value<'a>(obs: &'a [Observation], signal: &str) -> &'a Value {
    &obs.iter()
        .find(|o| o.signal == signal)
        .unwrap_or_else(|| panic!("no {signal} in {obs:?}"))
        .value
}

#[tokio::test]
async fn success_with_latency_samples_and_json_pointer_values() {
    let addr = server().await;
    let obs = probe(&format!(
        "url = \"http://{addr}/queue\"\nsamples = 4\nsignal_prefix = \"eval_queue\"\njson = {{ depth = \"/queue/depth\", oldest_job_age = \"/queue/oldest_age_seconds\", state = \"/queue/state\", gone = \"/nope\" }}"
    ))
    .await;
    assert_eq!(
        get_value(&obs, "eval_queue.result"),
        &Value::Text("success".into())
    );
    assert_eq!(
        get_value(&obs, "eval_queue.success_ratio"),
        &Value::Number(1.0)
    );
    assert_eq!(
        get_value(&obs, "eval_queue.status_code"),
        &Value::Number(200.0)
    );
    match get_value(&obs, "eval_queue.latency") {
        Value::Samples(s) => {
            assert_eq!(s.len(), 4);
            assert!(s.iter().all(|x| *x > 0.0 && *x < 5.0), "{s:?}");
        }
        other => panic!("latency is {other:?}"),
    }
    assert_eq!(
        get_value(&obs, "eval_queue.json.depth"),
        &Value::Number(3.0)
    );
    assert_eq!(
        get_value(&obs, "eval_queue.json.oldest_job_age"),
        &Value::Number(120.5)
    );
    assert_eq!(
        get_value(&obs, "eval_queue.json.state"),
        &Value::Text("ok".into())
    );
    assert!(!obs.iter().any(|o| o.signal == "eval_queue.json.gone"));
}

#[tokio::test]
async fn failures_map_to_the_closed_set_of_outcomes() {
    let addr = server().await;
    let result = |obs: Vec<Observation>| get_value(&obs, "probe.result").clone();
    assert_eq!(
        result(probe(&format!("url = \"http://{addr}/broken\"\nsamples = 1")).await),
        Value::Text("http_error".into())
    );
    let obs = probe(&format!("url = \"http://{addr}/broken\"\nsamples = 1")).await;
    assert_eq!(get_value(&obs, "probe.status_code"), &Value::Number(500.0));
    assert_eq!(
        result(
            probe(&format!(
                "url = \"http://{addr}/broken\"\nsamples = 1\nexpect_status = [500]"
            ))
            .await
        ),
        Value::Text("success".into())
    );
    assert_eq!(
        result(
            probe(&format!(
                "url = \"http://{addr}/text\"\nsamples = 1\nbody_contains = \"operational\""
            ))
            .await
        ),
        Value::Text("body_mismatch".into())
    );
    assert_eq!(
        result(probe(&format!("url = \"http://{addr}/text\"\nsamples = 1\nbody_regex = \"^all systems (ok|degraded)$\"")).await),
        Value::Text("success".into())
    );
    assert_eq!(
        result(
            probe(&format!(
                "url = \"http://{addr}/text\"\nsamples = 1\njson = {{ d = \"/depth\" }}"
            ))
            .await
        ),
        Value::Text("invalid_json".into())
    );
    let obs = probe(&format!(
        "url = \"http://{addr}/slow\"\nsamples = 2\nrequest_timeout = \"300ms\""
    ))
    .await;
    assert_eq!(
        get_value(&obs, "probe.result"),
        &Value::Text("timeout".into())
    );
    assert_eq!(get_value(&obs, "probe.success_ratio"), &Value::Number(0.0));
    assert!(
        !obs.iter().any(|o| o.signal == "probe.latency"),
        "no latency without an answer"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    assert_eq!(
        result(probe(&format!("url = \"http://127.0.0.1:{port}/\"\nsamples = 1")).await),
        Value::Text("connection_failed".into())
    );
    // TLS to a plain-HTTP server: the handshake fails.
    assert_eq!(
        result(probe(&format!("url = \"https://{addr}/queue\"\nsamples = 1")).await),
        Value::Text("tls_error".into())
    );
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_at_validation() {
    let text =
        "[[collector]]\nname = \"p\"\ntype = \"http_probe\"\nurl = \"http://10.1.2.3/queue\"\n";
    let err = infra_health::config::parse(Path::new("probe.toml"), text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("probe.toml:") && err.contains("loopback"),
        "{err}"
    );
}

/// An answer past the 4 MiB cap (announced, or chunked without a length) is `body_too_large`,
/// and the probe still reports its other signals.
#[tokio::test]
async fn an_oversized_answer_is_body_too_large() {
    for chunked in [false, true] {
        let server = crate::support::oversized::Oversized::start(5 * 1024 * 1024, chunked);
        let obs = probe(&format!("url = \"{}/big\"\nsamples = 1", server.url)).await;
        assert_eq!(
            get_value(&obs, "probe.result"),
            &Value::Text("body_too_large".into()),
            "chunked={chunked}"
        );
        assert_eq!(get_value(&obs, "probe.status_code"), &Value::Number(200.0));
    }
}
