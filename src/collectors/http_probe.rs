//! `http_probe`: request a URL a few times and observe whether it answers as expected, how fast,
//! and values from its JSON body (e.g. an eval queue's depth and oldest job age).
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `url` | the URL; plain `http://` only to loopback | required |
//! | `method` | `GET`, `POST` or `HEAD` | `GET` |
//! | `body` | request body (POST) | none |
//! | `headers` | extra request headers (table) | none |
//! | `bearer_token_env` | environment variable (or `<NAME>_FILE`) holding a bearer token | none |
//! | `samples` | requests per run; latency is a distribution over them | `3` |
//! | `request_timeout` | timeout of one request, connect to last body byte | `10s` |
//! | `pause` | wait between samples | `200ms` |
//! | `expect_status` | status codes that count as success | any 2xx |
//! | `body_contains` / `body_regex` | the body must contain / match this | none |
//! | `json` | `{ name = "/json/pointer" }`: numbers, booleans or strings to observe | none |
//! | `signal_prefix` | prefix of the signals below | `probe` |
//!
//! Outcomes, a closed set (as Telegraf's `http_response` has `result`):
//!
//! | outcome | meaning |
//! | --- | --- |
//! | `success` | answered with an expected status, and the body matched (when asked) |
//! | `timeout` | no complete answer within `request_timeout` |
//! | `dns_error` | the host name did not resolve |
//! | `connection_failed` | could not connect (refused, reset, unreachable) or the exchange broke |
//! | `tls_error` | the TLS handshake or certificate check failed |
//! | `http_error` | answered with a status not in `expect_status` |
//! | `body_mismatch` | the body did not contain / match the expected text |
//! | `invalid_json` | `json` pointers are configured and the body is not JSON |
//! | `body_too_large` | the body is larger than 4 MiB ([`MAX_BODY_BYTES`]; it is not read past that) |
//!
//! | signal | value |
//! | --- | --- |
//! | `<prefix>.result` | `success` when every sample succeeded, else the first failing outcome |
//! | `<prefix>.success_ratio` | share of samples that succeeded (0..1) |
//! | `<prefix>.latency` | samples, seconds, of every request that got an answer (a DISTRIBUTION; rows take p50/p90) |
//! | `<prefix>.status_code` | status of the last answer |
//! | `<prefix>.json.<name>` | the value at each configured JSON pointer, from the last successful answer |

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use super::{BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind};
use crate::duration::parse_duration;
use crate::observation::{Observation, Value};
use crate::secret::Secret;

pub const KIND: CollectorKind = CollectorKind {
    name: "http_probe",
    description: "requests a URL several times: outcome, latency distribution, status, JSON-pointer values",
    signals: &[
        "<prefix>.result",
        "<prefix>.success_ratio",
        "<prefix>.latency",
        "<prefix>.status_code",
        "<prefix>.json.<name>",
    ],
    tags: &[],
    self_metrics: &[],
    build,
};

/// The closed set of probe outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Timeout,
    DnsError,
    ConnectionFailed,
    TlsError,
    HttpError,
    BodyMismatch,
    InvalidJson,
    BodyTooLarge,
}

/// The most of a probe's answer that is read ([`Outcome::BodyTooLarge`] past it; README, Limits).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Success,
        Outcome::Timeout,
        Outcome::DnsError,
        Outcome::ConnectionFailed,
        Outcome::TlsError,
        Outcome::HttpError,
        Outcome::BodyMismatch,
        Outcome::InvalidJson,
        Outcome::BodyTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Timeout => "timeout",
            Outcome::DnsError => "dns_error",
            Outcome::ConnectionFailed => "connection_failed",
            Outcome::TlsError => "tls_error",
            Outcome::HttpError => "http_error",
            Outcome::BodyMismatch => "body_mismatch",
            Outcome::InvalidJson => "invalid_json",
            Outcome::BodyTooLarge => "body_too_large",
        }
    }

    /// Classify a transport error. reqwest says "timeout" and "connect" itself; DNS and TLS
    /// failures are only visible in the error's source chain (hyper-util's "dns error", rustls).
    pub fn of_error(e: &reqwest::Error) -> Outcome {
        if e.is_timeout() {
            return Outcome::Timeout;
        }
        let mut chain = String::new();
        let mut cur: Option<&dyn std::error::Error> = e.source();
        while let Some(c) = cur {
            chain.push_str(&c.to_string().to_ascii_lowercase());
            chain.push('\n');
            if let Some(io) = c.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return Outcome::Timeout;
            }
            cur = c.source();
        }
        if chain.contains("dns error") || chain.contains("failed to lookup address") {
            Outcome::DnsError
        } else if chain.contains("certificate")
            || chain.contains("tls")
            || chain.contains("handshake")
            || chain.contains("received corrupt message")
            || chain.contains("invalidcontenttype")
        {
            Outcome::TlsError
        } else {
            Outcome::ConnectionFailed
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeConfig {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    bearer_token_env: Option<String>,
    #[serde(default)]
    samples: Option<u32>,
    #[serde(default)]
    request_timeout: Option<String>,
    #[serde(default)]
    pause: Option<String>,
    #[serde(default)]
    expect_status: Option<Vec<u16>>,
    #[serde(default)]
    body_contains: Option<String>,
    #[serde(default)]
    body_regex: Option<String>,
    #[serde(default)]
    json: BTreeMap<String, String>,
    #[serde(default)]
    signal_prefix: Option<String>,
}

pub struct HttpProbe {
    url: url::Url,
    method: reqwest::Method,
    body: Option<String>,
    headers: reqwest::header::HeaderMap,
    bearer_token_env: Option<String>,
    samples: u32,
    request_timeout: Duration,
    pause: Duration,
    expect_status: Option<Vec<u16>>,
    body_contains: Option<String>,
    body_regex: Option<regex::Regex>,
    json: BTreeMap<String, String>,
    prefix: String,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let cfg: ProbeConfig = ctx.options()?;
    let url = crate::net::check_base_url(&cfg.url).map_err(|e| BuildError::at("url", e))?;
    let method = match cfg
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase()
        .as_str()
    {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "HEAD" => reqwest::Method::HEAD,
        other => {
            return Err(BuildError::at(
                "method",
                format!("{other:?} is not GET, POST or HEAD"),
            ));
        }
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| BuildError::at("headers", format!("{k:?}: {e}")))?;
        let value = reqwest::header::HeaderValue::from_str(v)
            .map_err(|e| BuildError::at("headers", format!("{k:?}: {e}")))?;
        headers.insert(name, value);
    }
    let dur = |key: &str, v: &Option<String>, default: Duration| -> Result<Duration, BuildError> {
        match v.as_deref() {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|e| BuildError::at(key, e)),
        }
    };
    let request_timeout = dur(
        "request_timeout",
        &cfg.request_timeout,
        Duration::from_secs(10),
    )?;
    if request_timeout.is_zero() {
        return Err(BuildError::at("request_timeout", "must be more than 0s"));
    }
    let samples = cfg.samples.unwrap_or(3);
    if !(1..=100).contains(&samples) {
        return Err(BuildError::at("samples", "must be between 1 and 100"));
    }
    let body_regex = match cfg.body_regex.as_deref() {
        None => None,
        Some(r) => Some(regex::Regex::new(r).map_err(|e| BuildError::at("body_regex", e))?),
    };
    for (name, pointer) in &cfg.json {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(BuildError::at(
                "json",
                format!(
                    "{name} = {pointer:?} is not a JSON pointer (it starts with '/', e.g. \"/queue/depth\")"
                ),
            ));
        }
    }
    let prefix = cfg.signal_prefix.unwrap_or_else(|| "probe".into());
    if prefix.is_empty() || prefix.ends_with('.') {
        return Err(BuildError::at(
            "signal_prefix",
            "must be a non-empty name without a trailing dot",
        ));
    }
    Ok(Arc::new(HttpProbe {
        url,
        method,
        body: cfg.body,
        headers,
        bearer_token_env: cfg.bearer_token_env,
        samples,
        request_timeout,
        pause: dur("pause", &cfg.pause, Duration::from_millis(200))?,
        expect_status: cfg.expect_status,
        body_contains: cfg.body_contains,
        body_regex,
        json: cfg.json,
        prefix,
    }))
}

/// What one request gave.
struct Sample {
    outcome: Outcome,
    latency: Option<f64>,
    status: Option<u16>,
    body: Option<bytes::Bytes>,
}

impl HttpProbe {
    fn signal(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    async fn sample(&self, http: &reqwest::Client, token: Option<&Secret>) -> Sample {
        let mut req = http
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .timeout(self.request_timeout);
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(b) = &self.body {
            req = req.body(b.clone());
        }
        let started = Instant::now();
        let failed = |e: &reqwest::Error| Sample {
            outcome: Outcome::of_error(e),
            latency: None,
            status: None,
            body: None,
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return failed(&e),
        };
        let status = resp.status().as_u16();
        let body = match crate::net::read_capped(resp, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(crate::net::BodyError::Transport { source, .. }) => {
                let mut s = failed(&source);
                s.status = Some(status);
                return s;
            }
            Err(crate::net::BodyError::TooLarge { .. }) => {
                return Sample {
                    outcome: Outcome::BodyTooLarge,
                    latency: Some(started.elapsed().as_secs_f64()),
                    status: Some(status),
                    body: None,
                };
            }
        };
        let latency = started.elapsed().as_secs_f64();
        let status_ok = match &self.expect_status {
            Some(list) => list.contains(&status),
            None => (200..300).contains(&status),
        };
        let text = String::from_utf8_lossy(&body);
        let outcome = if !status_ok {
            Outcome::HttpError
        } else if self
            .body_contains
            .as_ref()
            .is_some_and(|s| !text.contains(s.as_str()))
            || self.body_regex.as_ref().is_some_and(|r| !r.is_match(&text))
        {
            Outcome::BodyMismatch
        } else if !self.json.is_empty()
            && serde_json::from_slice::<serde_json::Value>(&body).is_err()
        {
            Outcome::InvalidJson
        } else {
            Outcome::Success
        };
        Sample {
            outcome,
            latency: Some(latency),
            status: Some(status),
            body: Some(body),
        }
    }

    /// Observations from the samples of one run.
    fn observe(&self, samples: &[Sample], now: DateTime<Utc>) -> Vec<Observation> {
        let result = samples
            .iter()
            .map(|s| s.outcome)
            .find(|o| *o != Outcome::Success)
            .unwrap_or(Outcome::Success);
        let ok = samples
            .iter()
            .filter(|s| s.outcome == Outcome::Success)
            .count();
        let mut obs = vec![
            Observation::new(
                self.signal("result"),
                Value::Text(result.as_str().into()),
                now,
            ),
            Observation::new(
                self.signal("success_ratio"),
                Value::Number(ok as f64 / samples.len().max(1) as f64),
                now,
            ),
        ];
        let latencies: Vec<f64> = samples.iter().filter_map(|s| s.latency).collect();
        if !latencies.is_empty() {
            obs.push(
                Observation::new(self.signal("latency"), Value::Samples(latencies), now)
                    .with_unit("second"),
            );
        }
        if let Some(code) = samples.iter().rev().find_map(|s| s.status) {
            obs.push(Observation::new(
                self.signal("status_code"),
                Value::Number(f64::from(code)),
                now,
            ));
        }
        let last_good = samples
            .iter()
            .rev()
            .find(|s| s.outcome == Outcome::Success)
            .and_then(|s| s.body.as_ref())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
        if let Some(doc) = last_good {
            for (name, pointer) in &self.json {
                let value = match doc.pointer(pointer) {
                    Some(serde_json::Value::Number(n)) => n.as_f64().map(Value::Number),
                    Some(serde_json::Value::Bool(b)) => Some(Value::Bool(*b)),
                    Some(serde_json::Value::String(s)) => Some(Value::Text(s.clone())),
                    Some(other) => {
                        tracing::warn!(
                            "{}: JSON pointer {pointer} ({name}) is {other}, not a number, boolean or string",
                            self.url
                        );
                        None
                    }
                    None => {
                        tracing::warn!("{}: JSON pointer {pointer} ({name}) is absent", self.url);
                        None
                    }
                };
                if let Some(v) = value {
                    obs.push(Observation::new(
                        self.signal(&format!("json.{name}")),
                        v,
                        now,
                    ));
                }
            }
        }
        obs
    }
}

impl Collector for HttpProbe {
    fn collect<'a>(
        &'a self,
        ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>> {
        Box::pin(async move {
            let token = match &self.bearer_token_env {
                None => None,
                Some(var) => Some(
                    Secret::from_env(&[var.as_str()])
                        .map_err(CollectError::Source)?
                        .ok_or_else(|| {
                            CollectError::Source(format!(
                                "bearer_token_env: {var} (or {var}_FILE) is not set"
                            ))
                        })?,
                ),
            };
            let mut samples = Vec::with_capacity(self.samples as usize);
            for i in 0..self.samples {
                if i > 0 && !self.pause.is_zero() {
                    tokio::time::sleep(self.pause).await;
                }
                let s = self.sample(&ctx.http, token.as_ref()).await;
                if s.outcome != Outcome::Success {
                    tracing::warn!(
                        "probe {} sample {}: {}",
                        self.url,
                        i + 1,
                        s.outcome.as_str()
                    );
                }
                samples.push(s);
            }
            Ok(self.observe(&samples, ctx.now))
        })
    }
}
