//! A fake Datadog intake: a real HTTP/1 server on 127.0.0.1 that behaves like the parts of the
//! API infra-health uses, and misbehaves on request.
//!
//! It checks the `DD-API-KEY` header (403 otherwise), decompresses `zstd1`/`gzip`/`deflate`
//! (distribution points: `deflate` only), enforces the size and point limits with 413,
//! validates body shapes and the timestamp window with 400, and records every accepted point so
//! tests can check exactly-once delivery. A fault plan (a queue, or a seeded probability over a
//! mix) makes requests fail with a status (429 + `Retry-After`, 500, 503, 413), respond too
//! slowly, or lose their connection with no response at all. A faulted request is never
//! recorded: the intake decides the fault before accepting anything.
//!
//! It also answers the metrics query API (`GET /api/v1/query`, API + application key) from
//! what it accepted, through the query evaluator ([`super::query_eval`]), in Datadog's v1
//! shape; several comma-separated queries in one request are answered with `query_index`. To
//! play Datadog's part after a 202, it can drop a metric it accepted (as a
//! Metrics-without-Limits configuration would: [`FakeDatadog::drop_metric`]) or rewrite a
//! piece of tag values ([`FakeDatadog::rewrite_tags`]).
//!
//! Every fake also serves the Dashboards API v1 (see [`super::fake_dashboards`]), which needs
//! the application key as well ([`FakeDatadog::set_app_key`]).
//!
//! Routes live in an axum [`Router`]; [`FakeDatadog::start_with`] takes extra routes. Each fake
//! runs on its own thread and runtime, so sync tests that drive the binary can use it too, and
//! stops when dropped.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, Response};
use axum::routing::{get, post};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::fake_dashboards::{self, DashboardStore};

pub const MAX_COMPRESSED: usize = 512_000;
pub const MAX_UNCOMPRESSED: usize = 5_242_880;
pub const MAX_POINTS: usize = 10_000;

/// Something the intake does instead of answering normally.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds when given).
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Wait this long, then answer 503 (the client has usually given up by then).
    Slow(Duration),
    /// Close the connection without any response.
    Drop,
    /// 429 with Datadog's rate-limit headers (`X-RateLimit-Limit`, `-Period`, `-Remaining: 0`,
    /// `-Reset`: seconds until the limit resets), and no `Retry-After`.
    RateLimited { reset: u64 },
}

impl Fault {
    pub fn status(status: u16) -> Fault {
        Fault::Status {
            status,
            retry_after: None,
        }
    }
}

/// One accepted point (a distribution point carries every sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub path: String,
    pub metric: String,
    pub tags: Vec<String>,
    pub timestamp: i64,
    pub values: Vec<f64>,
    pub kind: Option<u64>,
    /// A COUNT or RATE point's `interval` (seconds), as sent.
    pub interval: Option<u64>,
}

impl Recorded {
    /// The identity of a point for exactly-once checks.
    pub fn key(&self) -> (String, Vec<String>, i64) {
        (self.metric.clone(), self.tags.clone(), self.timestamp)
    }
}

/// One request the intake saw, whatever became of it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub encoding: Option<String>,
    pub compressed: usize,
    pub uncompressed: usize,
    pub points: usize,
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct FaultPlan {
    queue: VecDeque<Fault>,
    probability: f64,
    mix: Vec<Fault>,
    rng: Option<rand::rngs::StdRng>,
}

impl FaultPlan {
    fn next(&mut self) -> Option<Fault> {
        if let Some(f) = self.queue.pop_front() {
            return Some(f);
        }
        let rng = self.rng.as_mut()?;
        if self.mix.is_empty() || rng.random::<f64>() >= self.probability {
            return None;
        }
        let i = rng.random_range(0..self.mix.len());
        Some(self.mix[i].clone())
    }
}

#[derive(Default)]
pub struct Inner {
    pub api_key: String,
    pub app_key: Option<String>,
    /// The intake's idea of "now" (Unix seconds); `None` = the wall clock.
    pub now: Option<i64>,
    /// How long every request waits before it is handled (a slow but healthy intake).
    pub latency: Duration,
    pub recorded: Vec<Recorded>,
    pub events: Vec<Value>,
    pub seen: Vec<Seen>,
    /// The Dashboards API's state (see [`super::fake_dashboards`]).
    pub dashboards: DashboardStore,
    /// Metrics accepted (202) but never stored, so queries do not see them.
    pub dropped_metrics: Vec<String>,
    /// `(from, to)`: every accepted tag value has `from` replaced by `to`.
    pub tag_rewrites: Vec<(String, String)>,
    faults: FaultPlan,
}

pub type Shared = Arc<Mutex<Inner>>;

pub struct FakeDatadog {
    pub addr: SocketAddr,
    pub url: String,
    pub shared: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeDatadog {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) fn respond(status: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

pub(crate) fn errors(status: u16, msg: &str) -> Response<Body> {
    respond(status, json!({ "errors": [msg] }))
}

fn decompress(encoding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let limit = (MAX_UNCOMPRESSED + 1) as u64;
    let r = match encoding {
        None | Some("identity") => {
            out.extend_from_slice(body);
            Ok(0)
        }
        Some("zstd1") => zstd::stream::read::Decoder::new(body)
            .map_err(|e| e.to_string())?
            .take(limit)
            .read_to_end(&mut out),
        Some("gzip") => flate2::read::GzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        Some("deflate") => flate2::read::ZlibDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        Some(other) => return Err(format!("unsupported Content-Encoding {other}")),
    };
    r.map_err(|e| format!("cannot decompress: {e}"))?;
    Ok(out)
}

impl FakeDatadog {
    pub fn start(api_key: &str) -> FakeDatadog {
        Self::start_with(api_key, Router::new())
    }

    /// Start with extra routes merged in (they get the same fault plan and key check). The
    /// dashboard routes are always there; `extra` must not define them again (axum panics on
    /// overlapping routes).
    pub fn start_with(api_key: &str, extra: Router<Shared>) -> FakeDatadog {
        let shared: Shared = Arc::new(Mutex::new(Inner {
            api_key: api_key.to_string(),
            ..Default::default()
        }));
        let router = Router::new()
            .route("/api/v2/series", post(series))
            .route("/api/v1/distribution_points", post(distribution_points))
            .route("/api/v1/events", post(events))
            .route("/api/v1/validate", get(validate))
            .route("/api/v2/validate_keys", get(validate_keys))
            .route("/api/v1/query", get(query))
            .merge(fake_dashboards::routes())
            .merge(extra)
            .with_state(shared.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let server_shared = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fake intake runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                addr_tx
                    .send(listener.local_addr().expect("local addr"))
                    .expect("report address");
                loop {
                    let stream = tokio::select! {
                        _ = &mut shutdown_rx => break,
                        accepted = listener.accept() => match accepted {
                            Ok((s, _)) => s,
                            Err(_) => continue,
                        },
                    };
                    let router = router.clone();
                    let shared = server_shared.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                let router = router.clone();
                                let shared = shared.clone();
                                async move { serve(shared, router, req).await }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake intake started");
        FakeDatadog {
            addr,
            url: format!("http://{addr}"),
            shared,
            shutdown: Some(shutdown_tx),
        }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.shared.lock().expect("fake intake lock"))
    }

    /// Faults for the next requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.with(|i| i.faults.queue.extend(faults));
    }

    /// Fault each request with probability `p`, picking from `mix`, reproducibly.
    pub fn fault_rate(&self, p: f64, seed: u64, mix: Vec<Fault>) {
        self.with(|i| {
            i.faults.probability = p;
            i.faults.mix = mix;
            i.faults.rng = Some(rand::rngs::StdRng::seed_from_u64(seed));
        });
    }

    /// Make every request wait `d` before it is handled.
    pub fn set_latency(&self, d: Duration) {
        self.with(|i| i.latency = d);
    }

    pub fn set_now(&self, now: i64) {
        self.with(|i| i.now = Some(now));
    }

    pub fn set_app_key(&self, key: &str) {
        self.with(|i| i.app_key = Some(key.to_string()));
    }

    /// Accept `metric` with a 202 but never store it (queries will not find it).
    pub fn drop_metric(&self, metric: &str) {
        self.with(|i| i.dropped_metrics.push(metric.to_string()));
    }

    /// Store every accepted tag with `from` replaced by `to` in its value (Datadog turning
    /// `condition:<5m` into `condition:_5m`).
    pub fn rewrite_tags(&self, from: &str, to: &str) {
        self.with(|i| i.tag_rewrites.push((from.to_string(), to.to_string())));
    }

    /// Requests to the query API, faulted or not.
    pub fn query_requests(&self) -> usize {
        self.with(|i| i.seen.iter().filter(|s| s.path == "/api/v1/query").count())
    }

    /// What Datadog keeps of what it accepted: for GAUGE, COUNT and RATE points the last value
    /// written for a series (metric and tags) and second replaces the earlier ones; every
    /// distribution point is kept (each sample counts). In acceptance order otherwise.
    pub fn stored(&self) -> Vec<Recorded> {
        stored(&self.recorded())
    }

    /// Every accepted point, as written (a point written twice is here twice).
    pub fn recorded(&self) -> Vec<Recorded> {
        self.with(|i| i.recorded.clone())
    }

    pub fn events(&self) -> Vec<Value> {
        self.with(|i| i.events.clone())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.with(|i| i.seen.clone())
    }

    pub fn clear(&self) {
        self.with(|i| {
            i.recorded.clear();
            i.events.clear();
            i.seen.clear();
        });
    }
}

/// Datadog's one value per series and second, over `recorded` (see [`FakeDatadog::stored`]).
pub fn stored(recorded: &[Recorded]) -> Vec<Recorded> {
    let mut last: std::collections::HashMap<(String, Vec<String>, i64), usize> =
        std::collections::HashMap::new();
    for (i, p) in recorded.iter().enumerate() {
        if p.kind.is_some() {
            last.insert(p.key(), i);
        }
    }
    recorded
        .iter()
        .enumerate()
        .filter(|(i, p)| p.kind.is_none() || last.get(&p.key()) == Some(i))
        .map(|(_, p)| p.clone())
        .collect()
}

/// Apply the fault plan, then hand the request to the router.
async fn serve(
    shared: Shared,
    router: Router,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let encoding = req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (fault, latency) = {
        let mut inner = shared.lock().expect("lock");
        (inner.faults.next(), inner.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let log = |status: u16, fault: Option<Fault>| {
        shared.lock().expect("lock").seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            status,
            encoding: encoding.clone(),
            compressed: 0,
            uncompressed: 0,
            points: 0,
            fault,
        })
    };
    match fault {
        Some(Fault::Drop) => {
            log(0, Some(Fault::Drop));
            // An error from the service makes hyper close the connection without a response.
            return Err(std::io::Error::other("fault: dropped connection"));
        }
        Some(Fault::Slow(d)) => {
            log(503, Some(Fault::Slow(d)));
            tokio::time::sleep(d).await;
            return Ok(errors(503, "slow fault"));
        }
        Some(
            f @ Fault::Status {
                status,
                retry_after,
            },
        ) => {
            log(status, Some(f));
            let mut r = errors(status, "injected fault");
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().expect("header"));
            }
            return Ok(r);
        }
        Some(f @ Fault::RateLimited { reset }) => {
            log(429, Some(f));
            let mut r = errors(429, "Too many requests");
            for (name, value) in [
                ("x-ratelimit-limit", "100".to_string()),
                ("x-ratelimit-period", "60".to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-reset", reset.to_string()),
            ] {
                r.headers_mut().insert(name, value.parse().expect("header"));
            }
            return Ok(r);
        }
        None => {}
    }
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Body::new(body));
    let mut router = router;
    match tower_service::Service::call(&mut router, req).await {
        Ok(r) => Ok(r),
        Err(never) => match never {},
    }
}

fn key_ok(inner: &Inner, headers: &HeaderMap) -> bool {
    headers
        .get("dd-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| k == inner.api_key)
}

/// Both the API key and the application key (never valid before [`FakeDatadog::set_app_key`]).
pub(crate) fn keys_ok(inner: &Inner, headers: &HeaderMap) -> bool {
    let app_ok = headers
        .get("dd-application-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| inner.app_key.as_deref() == Some(k));
    key_ok(inner, headers) && app_ok
}

/// Check key, encoding and limits; the decompressed JSON or the error response.
fn intake(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    encodings: &[&str],
) -> Result<(Value, usize), Box<Response<Body>>> {
    let encoding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut seen = Seen {
        method: "POST".into(),
        path: path.into(),
        status: 0,
        encoding: encoding.clone(),
        compressed: body.len(),
        uncompressed: 0,
        points: 0,
        fault: None,
    };
    let result = (|| -> Result<(Value, usize), (u16, String)> {
        if !key_ok(&shared.lock().expect("lock"), headers) {
            return Err((403, "Forbidden".into()));
        }
        if let Some(e) = &encoding
            && !encodings.contains(&e.as_str())
        {
            return Err((400, format!("Content-Encoding {e} not accepted here")));
        }
        if body.len() > MAX_COMPRESSED {
            return Err((413, "Payload too large (compressed)".into()));
        }
        let raw = decompress(encoding.as_deref(), body).map_err(|e| (400, e))?;
        seen.uncompressed = raw.len();
        if raw.len() > MAX_UNCOMPRESSED {
            return Err((413, "Payload too large (uncompressed)".into()));
        }
        let v: Value =
            serde_json::from_slice(&raw).map_err(|e| (400, format!("invalid JSON: {e}")))?;
        Ok((v, raw.len()))
    })();
    result.map_err(|(status, msg)| {
        seen.status = status;
        shared.lock().expect("lock").seen.push(seen);
        Box::new(errors(status, &msg))
    })
}

fn accept(shared: &Shared, path: &str, body_len: usize, raw_len: usize, points: Vec<Recorded>) {
    let mut inner = shared.lock().expect("lock");
    inner.seen.push(Seen {
        method: "POST".into(),
        path: path.into(),
        status: 202,
        encoding: None,
        compressed: body_len,
        uncompressed: raw_len,
        points: points.iter().map(|p| p.values.len()).sum(),
        fault: None,
    });
    let dropped = inner.dropped_metrics.clone();
    let rewrites = inner.tag_rewrites.clone();
    inner.recorded.extend(
        points
            .into_iter()
            .filter(|p| !dropped.contains(&p.metric))
            .map(|mut p| {
                for tag in &mut p.tags {
                    if let Some((key, value)) = tag.split_once(':') {
                        let mut value = value.to_string();
                        for (from, to) in &rewrites {
                            value = value.replace(from.as_str(), to);
                        }
                        *tag = format!("{key}:{value}");
                    }
                }
                p
            }),
    );
}

fn reject(shared: &Shared, path: &str, status: u16, msg: &str) -> Response<Body> {
    shared.lock().expect("lock").seen.push(Seen {
        method: "POST".into(),
        path: path.into(),
        status,
        encoding: None,
        compressed: 0,
        uncompressed: 0,
        points: 0,
        fault: None,
    });
    errors(status, msg)
}

fn window_ok(shared: &Shared, ts: i64) -> bool {
    let now = shared
        .lock()
        .expect("lock")
        .now
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    ts >= now - 3600 && ts <= now + 600
}

fn tags_of(s: &Value) -> Result<Vec<String>, String> {
    match s.get("tags") {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or("tag is not a string".to_string())
            })
            .collect(),
        Some(_) => Err("tags is not an array".into()),
    }
}

/// One entry of `{"series":[…]}`: the entry, its metric name, tags and non-empty points.
type EntryParts<'a> = (&'a Value, String, Vec<String>, &'a Vec<Value>);

/// Each entry of `{"series":[…]}`, checked for a metric name, tags and points.
fn entries(v: &Value) -> Result<Vec<EntryParts<'_>>, String> {
    let list = v
        .get("series")
        .and_then(Value::as_array)
        .ok_or("missing series array")?;
    list.iter()
        .map(|s| {
            let metric = s
                .get("metric")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .ok_or("entry without metric")?;
            let points = s
                .get("points")
                .and_then(Value::as_array)
                .filter(|p| !p.is_empty())
                .ok_or(format!("{metric}: points missing"))?;
            Ok((s, metric.to_string(), tags_of(s)?, points))
        })
        .collect()
}

fn parse_series(shared: &Shared, v: &Value) -> Result<Vec<Recorded>, String> {
    let mut out = Vec::new();
    for (s, metric, tags, points) in entries(v)? {
        let kind = s.get("type").and_then(Value::as_u64);
        if kind.is_some_and(|k| k > 3) {
            return Err(format!("{metric}: type must be 0..3"));
        }
        for p in points {
            let ts = p
                .get("timestamp")
                .and_then(Value::as_i64)
                .ok_or(format!("{metric}: point without integer timestamp"))?;
            let value = p
                .get("value")
                .and_then(Value::as_f64)
                .ok_or(format!("{metric}: point without numeric value"))?;
            if !window_ok(shared, ts) {
                return Err(format!(
                    "{metric}: timestamp {ts} outside the accepted window"
                ));
            }
            out.push(Recorded {
                path: "/api/v2/series".into(),
                metric: metric.clone(),
                tags: tags.clone(),
                timestamp: ts,
                values: vec![value],
                kind,
                interval: s.get("interval").and_then(Value::as_u64),
            });
        }
    }
    Ok(out)
}

fn parse_distributions(shared: &Shared, v: &Value) -> Result<Vec<Recorded>, String> {
    let mut out = Vec::new();
    for (_, metric, tags, points) in entries(v)? {
        for p in points {
            let pair = p
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or("point is not [ts, [values]]")?;
            let ts = pair[0]
                .as_i64()
                .ok_or("distribution timestamp is not an integer")?;
            let values: Vec<f64> = pair[1]
                .as_array()
                .ok_or("distribution values are not an array")?
                .iter()
                .map(|x| x.as_f64().ok_or("distribution value is not a number"))
                .collect::<Result<_, _>>()?;
            if !window_ok(shared, ts) {
                return Err(format!(
                    "{metric}: timestamp {ts} outside the accepted window"
                ));
            }
            out.push(Recorded {
                path: "/api/v1/distribution_points".into(),
                metric: metric.clone(),
                tags: tags.clone(),
                timestamp: ts,
                values,
                kind: None,
                interval: None,
            });
        }
    }
    Ok(out)
}

async fn series(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let path = "/api/v2/series";
    let (v, raw_len) = match intake(
        &shared,
        path,
        &headers,
        &body,
        &["zstd1", "gzip", "deflate"],
    ) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match parse_series(&shared, &v) {
        Ok(points) if points.len() > MAX_POINTS => reject(&shared, path, 413, "too many points"),
        Ok(points) => {
            accept(&shared, path, body.len(), raw_len, points);
            respond(202, json!({ "errors": [] }))
        }
        Err(e) => reject(&shared, path, 400, &e),
    }
}

async fn distribution_points(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = "/api/v1/distribution_points";
    let (v, raw_len) = match intake(&shared, path, &headers, &body, &["deflate"]) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match parse_distributions(&shared, &v) {
        Ok(points) if points.iter().map(|p| p.values.len()).sum::<usize>() > MAX_POINTS => {
            reject(&shared, path, 413, "too many points")
        }
        Ok(points) => {
            accept(&shared, path, body.len(), raw_len, points);
            respond(202, json!({ "status": "ok" }))
        }
        Err(e) => reject(&shared, path, 400, &e),
    }
}

async fn events(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let path = "/api/v1/events";
    let (v, _) = match intake(&shared, path, &headers, &body, &[]) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let ok = v
        .get("title")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
        && v.get("text").and_then(Value::as_str).is_some()
        && v.get("alert_type")
            .and_then(Value::as_str)
            .is_some_and(|a| ["error", "warning", "info", "success"].contains(&a));
    if !ok {
        return reject(
            &shared,
            path,
            400,
            "event needs title, text and a valid alert_type",
        );
    }
    shared.lock().expect("lock").events.push(v.clone());
    respond(202, json!({ "status": "ok", "event": v }))
}

async fn validate(State(shared): State<Shared>, headers: HeaderMap) -> Response<Body> {
    if key_ok(&shared.lock().expect("lock"), &headers) {
        respond(200, json!({ "valid": true }))
    } else {
        errors(403, "Forbidden")
    }
}

async fn validate_keys(State(shared): State<Shared>, headers: HeaderMap) -> Response<Body> {
    if keys_ok(&shared.lock().expect("lock"), &headers) {
        respond(200, json!({ "status": "ok" }))
    } else {
        errors(403, "Forbidden")
    }
}

/// Split `a{x,y} by {z},b{*}` on the commas between queries (not those inside braces).
fn split_queries(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter()
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty())
        .collect()
}

/// `GET /api/v1/query?from&to&query`: the evaluator over what was accepted, in Datadog's v1
/// shape (`pointlist` in milliseconds, `tag_set` of the group, `query_index` per query).
async fn query(
    State(shared): State<Shared>,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response<Body> {
    let path = "/api/v1/query";
    let log = |status: u16| {
        shared.lock().expect("lock").seen.push(Seen {
            method: "GET".into(),
            path: path.into(),
            status,
            encoding: None,
            compressed: 0,
            uncompressed: 0,
            points: 0,
            fault: None,
        })
    };
    let (ok, points) = {
        let inner = shared.lock().expect("lock");
        (keys_ok(&inner, &headers), stored(&inner.recorded))
    };
    if !ok {
        log(403);
        return errors(403, "Forbidden");
    }
    let number = |k: &str| params.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to), Some(text)) = (number("from"), number("to"), params.get("query"))
    else {
        log(400);
        return errors(400, "from, to and query are required");
    };
    let intake = super::query_eval::Intake {
        points: &points,
        variables: Default::default(),
    };
    let mut series = Vec::new();
    for (index, q) in split_queries(text).iter().enumerate() {
        let parsed = match super::query_eval::parse(q) {
            Ok(p) => p,
            Err(e) => {
                log(400);
                return errors(400, &e);
            }
        };
        let interval = parsed
            .rollup
            .as_ref()
            .and_then(|(_, s)| *s)
            .unwrap_or_else(|| super::query_eval::default_interval(to - from));
        let groups = match intake.timeseries(q, from, to) {
            Ok(g) => g,
            Err(e) => {
                log(400);
                return errors(400, &e);
            }
        };
        for (group, buckets) in groups {
            let tag_set: Vec<String> = group
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            let pointlist: Vec<Value> = buckets
                .iter()
                .filter_map(|(at, v)| v.map(|v| json!([(*at * 1000) as f64, v])))
                .collect();
            let scope = if tag_set.is_empty() {
                "*".to_string()
            } else {
                tag_set.join(",")
            };
            series.push(json!({
                "metric": parsed.metric,
                "display_name": parsed.metric,
                "expression": q,
                "scope": scope,
                "tag_set": tag_set,
                "pointlist": pointlist,
                "interval": interval,
                "query_index": index,
                "aggr": parsed.aggregator,
            }));
        }
    }
    log(200);
    respond(
        200,
        json!({
            "status": "ok",
            "res_type": "time_series",
            "from_date": from * 1000,
            "to_date": to * 1000,
            "query": text,
            "series": series,
        }),
    )
}
