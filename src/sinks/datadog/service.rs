//! The service: a small typed Datadog client and the retry policy around it.
//!
//! Every HTTP outcome becomes an [`ApiError`] that knows whether it is worth retrying (400 and
//! 403 never are; 408, 429, 5xx, timeouts and transport errors are) and carries a short stable
//! `error_type`. Retries back off exponentially with jitter, capped, and honour `Retry-After` /
//! `X-RateLimit-Reset`; every wait stays inside the run's deadline. A 413 is answered by reading
//! the body back into entries and sending each half, recursively, until the intake accepts.
//! The API key goes into a header and nowhere else; intake error text is scrubbed of it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use serde::Deserialize;
use thiserror::Error;

use super::config::{Compression, DatadogConfig};
use super::encode::{EncodedRequest, LIMITS, encode_entries};
use crate::secret::Secret;

/// What an intake call can come back with.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ApiError {
    #[error("{path}: the intake refused the request (HTTP {status}): {message}")]
    BadRequest {
        path: String,
        status: u16,
        message: String,
    },
    #[error("{path}: API key rejected by {site} (HTTP {status}); check DD_API_KEY and DD_SITE")]
    Forbidden {
        path: String,
        site: String,
        status: u16,
    },
    #[error("{path}: request too large for the intake (HTTP 413)")]
    TooLarge { path: String },
    #[error("{path}: throttled by the intake (HTTP {status})")]
    Throttled {
        path: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{path}: intake error (HTTP {status}): {message}")]
    Server {
        path: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{path}: no response within {secs:.1}s")]
    Timeout { path: String, secs: f64 },
    #[error("{path}: {message}")]
    Transport { path: String, message: String },
}

impl ApiError {
    /// Whether sending the same request again may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            ApiError::Throttled { .. }
                | ApiError::Server { .. }
                | ApiError::Timeout { .. }
                | ApiError::Transport { .. }
        )
    }

    /// A short stable tag (`error_type:<tag>`).
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Throttled { .. } => "throttled",
            ApiError::Server { .. } => "server_error",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Transport { .. } => "transport",
        }
    }

    /// How long the intake asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Throttled { retry_after, .. } | ApiError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// `Retry-After` (seconds or an HTTP date) or Datadog's `X-RateLimit-Reset` (seconds).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<f64>()
            && secs.is_finite()
            && secs >= 0.0
        {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
        if let Ok(date) = chrono::DateTime::parse_from_rfc2822(v) {
            let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
            return Some(wait.to_std().unwrap_or(Duration::ZERO));
        }
    }
    text("x-ratelimit-reset")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(86_400)))
}

/// The intake's error text (`{"errors":[…]}` or plain), short and without the key.
fn error_text(body: &str, key: &Secret) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<serde_json::Value>,
    }
    let text = match serde_json::from_str::<Errors>(body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body.trim().to_string(),
    };
    let mut text: String = text.chars().take(500).collect();
    if !key.expose().is_empty() {
        text = text.replace(key.expose(), "[redacted]");
    }
    if text.is_empty() {
        "(no error text)".into()
    } else {
        text
    }
}

/// The typed client: one attempt per call.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    site: String,
    key: Secret,
    /// Sent as `DD-APPLICATION-KEY` when set (the dashboard API needs it).
    app_key: Option<Secret>,
}

/// The answer of `GET /api/v1/validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    Valid,
    Rejected,
}

impl Client {
    pub fn new(http: reqwest::Client, base: url::Url, site: &str, key: Secret) -> Client {
        Client {
            http,
            base,
            site: site.to_string(),
            key,
            app_key: None,
        }
    }

    /// The same client, also sending an application key on every call.
    pub fn with_app_key(mut self, app_key: Secret) -> Client {
        self.app_key = Some(app_key);
        self
    }

    /// One JSON API call (`GET`, `POST`, `PUT`, `DELETE`) with the keys in headers. The
    /// body is sent as `application/json`; the answer's body is returned as it came.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, ApiError> {
        let mut request = self
            .http
            .request(method, self.url(path)?)
            .timeout(timeout)
            .query(query)
            .header("DD-API-KEY", self.key.expose());
        if let Some(app) = &self.app_key {
            request = request.header("DD-APPLICATION-KEY", app.expose());
        }
        if let Some(b) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport(path, e, timeout))?;
        self.classify(path, response).await
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    /// Text from a server or a transport error, with both keys taken out.
    fn scrub(&self, mut text: String) -> String {
        for key in std::iter::once(&self.key).chain(self.app_key.as_ref()) {
            if !key.expose().is_empty() {
                text = text.replace(key.expose(), "[redacted]");
            }
        }
        text
    }

    fn url(&self, path: &str) -> Result<url::Url, ApiError> {
        self.base.join(path).map_err(|e| ApiError::Transport {
            path: path.to_string(),
            message: format!("cannot build the URL: {e}"),
        })
    }

    fn transport(&self, path: &str, e: reqwest::Error, timeout: Duration) -> ApiError {
        if e.is_timeout() {
            return ApiError::Timeout {
                path: path.to_string(),
                secs: timeout.as_secs_f64(),
            };
        }
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let t = s.to_string();
            if !message.contains(&t) {
                message = format!("{message}: {t}");
            }
            source = s.source();
        }
        ApiError::Transport {
            path: path.to_string(),
            message: self.scrub(message),
        }
    }

    async fn classify(&self, path: &str, response: reqwest::Response) -> Result<Bytes, ApiError> {
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            return Ok(body);
        }
        let message = self.scrub(error_text(&String::from_utf8_lossy(&body), &self.key));
        let path = path.to_string();
        Err(match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => ApiError::Forbidden {
                path,
                site: self.site.clone(),
                status: status.as_u16(),
            },
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge { path },
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => ApiError::Throttled {
                path,
                status: status.as_u16(),
                retry_after: wait,
            },
            s if s.is_server_error() => ApiError::Server {
                path,
                status: s.as_u16(),
                message,
                retry_after: wait,
            },
            s => ApiError::BadRequest {
                path,
                status: s.as_u16(),
                message,
            },
        })
    }

    /// POST a (possibly compressed) JSON body once.
    pub async fn post(
        &self,
        path: &str,
        encoding: Option<Compression>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, ApiError> {
        let mut request = self
            .http
            .post(self.url(path)?)
            .timeout(timeout)
            .header("DD-API-KEY", self.key.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(c) = encoding {
            request = request.header(reqwest::header::CONTENT_ENCODING, c.content_encoding());
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(path, e, timeout))?;
        self.classify(path, response).await
    }

    /// `GET /api/v1/validate`: is the API key valid for this site?
    pub async fn validate(&self, timeout: Duration) -> Result<KeyCheck, ApiError> {
        self.get_check("/api/v1/validate", None, timeout).await
    }

    /// `GET /api/v2/validate_keys`: are the API key and this application key valid together?
    pub async fn validate_app_key(
        &self,
        app_key: &Secret,
        timeout: Duration,
    ) -> Result<KeyCheck, ApiError> {
        self.get_check("/api/v2/validate_keys", Some(app_key), timeout)
            .await
    }

    async fn get_check(
        &self,
        path: &str,
        app_key: Option<&Secret>,
        timeout: Duration,
    ) -> Result<KeyCheck, ApiError> {
        let mut request = self
            .http
            .get(self.url(path)?)
            .timeout(timeout)
            .header("DD-API-KEY", self.key.expose());
        if let Some(k) = app_key {
            request = request.header("DD-APPLICATION-KEY", k.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport(path, e, timeout))?;
        match self.classify(path, response).await {
            Ok(_) => Ok(KeyCheck::Valid),
            Err(ApiError::Forbidden { .. }) => Ok(KeyCheck::Rejected),
            Err(e) => Err(e),
        }
    }
}

/// Why [`with_retries`] gave up.
#[derive(Debug)]
pub struct Failed {
    /// The last attempt's error.
    pub error: ApiError,
    /// The error was retriable but every retry the policy allows was used.
    pub retries_exhausted: bool,
}

/// Call `attempt` (given the timeout for that attempt) until it succeeds, fails with an error
/// not worth retrying, uses up the policy's retries or deadline, or `stop` says to. Waits back
/// off exponentially with jitter, or as long as the server's `Retry-After` asks.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    stop: impl Fn() -> bool,
    mut attempt: F,
) -> Result<T, Failed>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut tries = 0u32;
    loop {
        let remaining = policy.deadline().saturating_duration_since(Instant::now());
        let timeout = policy.timeout.min(remaining.max(Duration::from_millis(1)));
        let attempted = tokio::select! {
            r = attempt(timeout) => r,
            // SIGTERM and the grace period is over: give up this request (it gets spooled).
            _ = crate::shutdown::grace_over() => Err(ApiError::Timeout {
                path: "(shutting down)".into(),
                secs: crate::shutdown::GRACE.as_secs_f64(),
            }),
        };
        let error = match attempted {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !error.is_retriable() || tries >= policy.max_retries {
            let retries_exhausted = error.is_retriable();
            return Err(Failed {
                error,
                retries_exhausted,
            });
        }
        let wait = error.retry_after().unwrap_or_else(|| policy.backoff(tries));
        let remaining = policy.deadline().saturating_duration_since(Instant::now());
        if wait >= remaining || stop() {
            return Err(Failed {
                error,
                retries_exhausted: false,
            });
        }
        tries += 1;
        tracing::warn!(
            "{error}; retry {tries}/{} in {:.2}s",
            policy.max_retries,
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
    }
}

/// Retry settings and the run's deadline.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
    pub deadline: Instant,
}

impl RetryPolicy {
    pub fn from_config(cfg: &DatadogConfig, started: Instant) -> RetryPolicy {
        RetryPolicy {
            max_retries: cfg.max_retries,
            backoff: cfg.backoff,
            max_backoff: cfg.max_backoff,
            timeout: cfg.timeout,
            deadline: started + cfg.deadline,
        }
    }

    /// The deadline in force: the run's, or the end of the shutdown grace period if sooner.
    pub fn deadline(&self) -> Instant {
        match crate::shutdown::deadline() {
            Some(d) => d.min(self.deadline),
            None => self.deadline,
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .backoff
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_backoff);
        let half = base / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// What happened to the requests given to [`Service::deliver`].
#[derive(Debug, Default)]
pub struct Outcome {
    pub delivered_series: usize,
    pub delivered_points: usize,
    /// Not delivered but worth trying again next run.
    pub retry_later: Vec<EncodedRequest>,
    /// Points the intake refused for good (400, or one entry still too large).
    pub rejected_points: usize,
    pub problems: Vec<String>,
}

impl Outcome {
    pub fn merge(&mut self, other: Outcome) {
        self.delivered_series += other.delivered_series;
        self.delivered_points += other.delivered_points;
        self.retry_later.extend(other.retry_later);
        self.rejected_points += other.rejected_points;
        self.problems.extend(other.problems);
    }
}

/// Sends requests with retries, splitting on 413, and stops early when the intake is clearly
/// unavailable or the key is rejected (the rest goes to the spool without being tried).
pub struct Service {
    pub client: Client,
    pub policy: RetryPolicy,
    compression: Compression,
    /// Set on a 403: every later request would fail the same way.
    key_rejected: AtomicBool,
    /// Requests that used up their retries; past two, the intake is treated as down.
    exhausted: AtomicUsize,
}

impl Service {
    pub fn new(client: Client, policy: RetryPolicy, compression: Compression) -> Service {
        Service {
            client,
            policy,
            compression,
            key_rejected: AtomicBool::new(false),
            exhausted: AtomicUsize::new(0),
        }
    }

    /// Why nothing more should be sent this run, if so.
    pub fn stop_reason(&self) -> Option<&'static str> {
        if self.key_rejected.load(Ordering::Relaxed) {
            Some("the API key was rejected")
        } else if self.exhausted.load(Ordering::Relaxed) >= 2 {
            Some("the intake is not answering")
        } else if Instant::now() >= self.policy.deadline {
            Some("the delivery deadline passed")
        } else if crate::shutdown::deadline().is_some_and(|d| Instant::now() >= d) {
            Some("the process was asked to stop and its grace period ran out")
        } else {
            None
        }
    }

    /// POST with retries. `Err` is the last error once retrying is pointless or out of budget.
    pub async fn post_with_retries(
        &self,
        path: &str,
        encoding: Option<Compression>,
        body: Bytes,
    ) -> Result<Bytes, ApiError> {
        let result = with_retries(
            &self.policy,
            || self.key_rejected.load(Ordering::Relaxed),
            |timeout| {
                let body = body.clone();
                async move {
                    let r = self.client.post(path, encoding, body, timeout).await;
                    if let Err(ApiError::Forbidden { .. }) = r {
                        self.key_rejected.store(true, Ordering::Relaxed);
                    }
                    r
                }
            },
        )
        .await;
        result.map_err(|failed| {
            if failed.retries_exhausted {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
            }
            failed.error
        })
    }

    /// Deliver one request (and its halves, after a 413).
    pub async fn deliver(&self, request: EncodedRequest) -> Outcome {
        let mut out = Outcome::default();
        let mut stack = vec![request];
        while let Some(req) = stack.pop() {
            if let Some(why) = self.stop_reason() {
                out.problems.push(format!(
                    "{}: {} series not sent because {why}",
                    req.endpoint.path(),
                    req.series
                ));
                out.retry_later.push(req);
                continue;
            }
            let path = req.endpoint.path();
            match self
                .post_with_retries(path, Some(req.compression), req.body.clone())
                .await
            {
                Ok(_) => {
                    out.delivered_series += req.series;
                    out.delivered_points += req.points;
                }
                Err(ApiError::TooLarge { .. }) if req.series > 1 => {
                    match split(&req, self.compression) {
                        Ok(halves) => {
                            tracing::warn!(
                                "{path}: HTTP 413 for {} series ({} bytes); sending them in {} smaller requests",
                                req.series,
                                req.body.len(),
                                halves.len()
                            );
                            stack.extend(halves.into_iter().rev());
                        }
                        Err(e) => {
                            out.problems
                                .push(format!("{path}: cannot split after 413: {e}"));
                            out.retry_later.push(req);
                        }
                    }
                }
                Err(e @ (ApiError::BadRequest { .. } | ApiError::TooLarge { .. })) => {
                    tracing::error!("{e}; {} points dropped", req.points);
                    out.rejected_points += req.points;
                    out.problems.push(e.to_string());
                }
                Err(e) => {
                    out.problems.push(e.to_string());
                    out.retry_later.push(req);
                }
            }
        }
        out
    }
}

/// Two (or more) requests holding the entries of `req` in halves.
fn split(req: &EncodedRequest, compression: Compression) -> Result<Vec<EncodedRequest>, String> {
    let entries = req.entries().map_err(|e| e.to_string())?;
    let mid = entries.len() / 2;
    let mut out = Vec::new();
    for half in [&entries[..mid], &entries[mid..]] {
        let (reqs, unfit) = encode_entries(half, compression, LIMITS).map_err(|e| e.to_string())?;
        if unfit > 0 {
            return Err(format!("{unfit} points fit in no request"));
        }
        out.extend(reqs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn retriable_statuses_follow_datadog() {
        let p = String::new;
        assert!(
            !ApiError::BadRequest {
                path: p(),
                status: 400,
                message: p()
            }
            .is_retriable()
        );
        assert!(
            !ApiError::Forbidden {
                path: p(),
                site: p(),
                status: 403
            }
            .is_retriable()
        );
        assert!(!ApiError::TooLarge { path: p() }.is_retriable());
        assert!(
            ApiError::Throttled {
                path: p(),
                status: 429,
                retry_after: None
            }
            .is_retriable()
        );
        assert!(
            ApiError::Timeout {
                path: p(),
                secs: 1.0
            }
            .is_retriable()
        );
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn intake_error_text_is_short_and_scrubbed() {
        let key = Secret::new("abcdef0123456789");
        let t = error_text(r#"{"errors":["Bad key abcdef0123456789","x"]}"#, &key);
        assert_eq!(t, "Bad key [redacted]; x");
        assert_eq!(error_text("", &key), "(no error text)");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            timeout: Duration::from_secs(1),
            deadline: Instant::now(),
        };
        for attempt in 0..10 {
            let d = p.backoff(attempt);
            let cap = Duration::from_millis((100u64 << attempt.min(20)).min(400));
            assert!(d >= cap / 2 && d <= cap, "{attempt}: {d:?}");
        }
    }
}
