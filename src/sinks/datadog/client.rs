//! The one Datadog API client: typed errors, keys in headers, and the retry policy.
//!
//! Every HTTP outcome becomes an [`ApiError`] that knows whether it is worth retrying (400 and
//! 403 never are; 408, 429, 5xx, timeouts and transport errors are) and carries a short stable
//! `error_type`. Retries back off exponentially with jitter, capped, and honour `Retry-After` /
//! `X-RateLimit-Reset`; every wait stays inside the run's deadline (and the shutdown grace
//! period). The keys go into headers and nowhere else; server and transport error text is
//! scrubbed of them.
//!
//! Everything that talks to Datadog builds its [`Client`] here, from one resolved
//! [`DatadogConfig`]: the metrics sink (with the 413 split and spool in [`super::service`]),
//! `dashboard push`/`diff`, `verify`'s query API and `credentials check`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use serde::Deserialize;
use thiserror::Error;

use super::config::{Compression, DatadogConfig};
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
    #[error(
        "{path}: the answer is larger than {cap} bytes, the cap on a Datadog API answer; it was not read (narrow the query or the window)"
    )]
    AnswerTooLarge { path: String, cap: usize },
}

/// The most of a Datadog API answer (`verify`'s queries, the dashboard API, key checks) that is
/// read; a longer one is [`ApiError::AnswerTooLarge`] (README, Limits).
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// The most of an intake reply (`{"errors":[]}`) that is read; past it the reply of an accepted
/// request is ignored, and an error reply is classified by its status alone.
pub const MAX_INTAKE_REPLY_BYTES: usize = 1024 * 1024;

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
            ApiError::AnswerTooLarge { .. } => "answer_too_large",
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

/// The answer of `GET /api/v1/validate` (or `/api/v2/validate_keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    Valid,
    Rejected,
}

/// Which Datadog API a client is built for. It decides which keys are required, and what the
/// message for a missing one tells the user to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The metrics and events intake: the API key.
    Intake,
    /// `dashboard push` and `dashboard diff`: the API key and an application key.
    Dashboards,
    /// `verify`, through the metrics query API: the API key and an application key.
    Query,
    /// `datadog plan|apply`: dashboards, monitors and metric tag configurations.
    DatadogSide,
}

impl Purpose {
    fn who(self) -> &'static str {
        match self {
            Purpose::Intake => "delivering to Datadog",
            Purpose::Dashboards => "the Dashboards API",
            Purpose::Query => "verify (reading the metrics back from Datadog)",
            Purpose::DatadogSide => {
                "`infra-health datadog` (dashboard, monitors, metric configurations)"
            }
        }
    }

    fn needs_app_key(self) -> bool {
        !matches!(self, Purpose::Intake)
    }

    /// The scope a scoped application key needs, for the message.
    fn scope(self) -> &'static str {
        match self {
            Purpose::Intake => "",
            Purpose::Dashboards => {
                " (with the dashboards_read and dashboards_write scopes if it is scoped; \
                 `dashboard render` and `dashboard terraform` need no key)"
            }
            Purpose::Query => " (with the timeseries_query scope if it is scoped)",
            Purpose::DatadogSide => {
                " (with the dashboards_read, dashboards_write, monitors_read, monitors_write, \
                 metrics_read and metric_tags_write scopes if it is scoped; `datadog terraform` \
                 needs no key)"
            }
        }
    }
}

/// The one Datadog API client: the resolved site settings ([`DatadogConfig`]), the keys, and
/// one attempt per [`Client::call`] or [`Client::post`]; [`Client::call_with_retries`] adds
/// the retry policy the config sets. The metrics sink, the dashboard commands, `verify` and
/// `credentials check` all build theirs with [`Client::from_env`] or [`Client::new`], so a
/// site, a `DD_URL` override or a retry setting means the same thing to each of them.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<DatadogConfig>,
    key: Secret,
    /// Sent as `DD-APPLICATION-KEY` when set (the dashboard and query APIs need it).
    app_key: Option<Secret>,
    /// HTTP requests sent by this client and its clones, retries included.
    requests: Arc<AtomicUsize>,
}

impl Client {
    pub fn new(http: reqwest::Client, config: DatadogConfig, key: Secret) -> Client {
        Client {
            http,
            config: Arc::new(config),
            key,
            app_key: None,
            requests: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A client for `purpose`: the `[sink]` options and `DD_SITE`/`DD_URL` resolved once into
    /// a [`DatadogConfig`], the keys read by [`keys`].
    pub fn from_env(
        options: &toml::Table,
        http: reqwest::Client,
        purpose: Purpose,
    ) -> anyhow::Result<Client> {
        let (key, app) = keys(purpose)?;
        let client = Client::new(http, DatadogConfig::resolve(options)?, key);
        Ok(match app {
            Some(app) => client.with_app_key(app),
            None => client,
        })
    }

    /// The same client, also sending an application key on every call.
    pub fn with_app_key(mut self, app_key: Secret) -> Client {
        self.app_key = Some(app_key);
        self
    }

    /// The same client without the application key: the intake does not need it, so it is
    /// not sent there.
    pub fn intake_only(&self) -> Client {
        Client {
            app_key: None,
            ..self.clone()
        }
    }

    pub fn has_app_key(&self) -> bool {
        self.app_key.is_some()
    }

    pub fn site(&self) -> &str {
        &self.config.site
    }

    pub fn config(&self) -> &DatadogConfig {
        &self.config
    }

    /// HTTP requests sent so far by this client and its clones (retries included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
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
        self.send(path, request, timeout, MAX_ANSWER_BYTES).await
    }

    /// [`Client::call`] under the config's retry policy: 429, 5xx and transport errors are
    /// retried with backoff (or as long as the server asks) within the config's deadline.
    pub async fn call_with_retries(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Bytes>,
    ) -> Result<Bytes, ApiError> {
        let policy = RetryPolicy::from_config(&self.config, Instant::now());
        with_retries(
            &policy,
            || false,
            |timeout: Duration| self.call(method.clone(), path, query, body.clone(), timeout),
        )
        .await
        .map_err(|f| f.error)
    }

    /// [`Client::call_with_retries`] with a JSON body and a JSON answer (`Null` for an empty
    /// one): the management APIs (dashboards, monitors, metric tag configurations).
    pub async fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ApiError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let bytes = self.call_with_retries(method, path, query, body).await?;
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest {
            path: path.to_string(),
            status: 200,
            message: format!("the answer is not the JSON expected: {e}"),
        })
    }

    /// POST a (possibly compressed) JSON body once, with the API key only.
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
        self.send(path, request.body(body), timeout, MAX_INTAKE_REPLY_BYTES)
            .await
    }

    /// `GET /api/v1/validate`: is the API key valid for this site?
    pub async fn validate(&self) -> Result<KeyCheck, ApiError> {
        self.get_check("/api/v1/validate", false).await
    }

    /// `GET /api/v2/validate_keys`: are the API key and the application key valid together?
    /// Without an application key this checks the API key alone.
    pub async fn validate_app_key(&self) -> Result<KeyCheck, ApiError> {
        self.get_check("/api/v2/validate_keys", true).await
    }

    async fn get_check(&self, path: &str, with_app_key: bool) -> Result<KeyCheck, ApiError> {
        let timeout = self.config.timeout;
        let mut request = self
            .http
            .get(self.url(path)?)
            .timeout(timeout)
            .header("DD-API-KEY", self.key.expose());
        if let Some(k) = self.app_key.as_ref().filter(|_| with_app_key) {
            request = request.header("DD-APPLICATION-KEY", k.expose());
        }
        match self
            .send(path, request, timeout, MAX_INTAKE_REPLY_BYTES)
            .await
        {
            Ok(_) => Ok(KeyCheck::Valid),
            Err(ApiError::Forbidden { .. }) => Ok(KeyCheck::Rejected),
            Err(e) => Err(e),
        }
    }

    async fn send(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
        cap: usize,
    ) -> Result<Bytes, ApiError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request
            .send()
            .await
            .map_err(|e| self.transport(path, e, timeout))?;
        self.classify(path, response, cap).await
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
        self.config
            .base
            .join(path)
            .map_err(|e| ApiError::Transport {
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

    /// The answer's body (at most `cap` bytes) on success, else a typed error. An answer the
    /// caller reads (`cap` is [`MAX_ANSWER_BYTES`]) over the cap is an error; an intake reply
    /// over its cap is not needed, so an accepted request stays accepted.
    async fn classify(
        &self,
        path: &str,
        response: reqwest::Response,
        cap: usize,
    ) -> Result<Bytes, ApiError> {
        let status = response.status();
        let wait = retry_after(response.headers());
        let (body, too_large) = match crate::net::read_capped(response, cap).await {
            Ok(b) => (b, false),
            Err(e) => (Bytes::new(), e.is_too_large()),
        };
        if status.is_success() {
            if too_large && cap >= MAX_ANSWER_BYTES {
                return Err(ApiError::AnswerTooLarge {
                    path: path.to_string(),
                    cap,
                });
            }
            if too_large {
                tracing::warn!("{path}: the reply is larger than {cap} bytes; not read");
            }
            return Ok(body);
        }
        let message = if too_large {
            format!("(the reply is larger than {cap} bytes; not read)")
        } else {
            self.scrub(error_text(&String::from_utf8_lossy(&body), &self.key))
        };
        let path = path.to_string();
        Err(match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => ApiError::Forbidden {
                path,
                site: self.config.site.clone(),
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
}

/// The keys `purpose` needs, from `DD_API_KEY` and `DD_APP_KEY` (or their `_FILE` forms): the
/// API key, and the application key when `purpose` needs one. A missing key is an error that
/// says how to provide it; a key's value never appears in it.
pub fn keys(purpose: Purpose) -> anyhow::Result<(Secret, Option<Secret>)> {
    let key = Secret::from_env(&["DD_API_KEY"])
        .map_err(anyhow::Error::msg)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} needs DD_API_KEY (or DD_API_KEY_FILE) to be set",
                purpose.who()
            )
        })?;
    if !purpose.needs_app_key() {
        return Ok((key, None));
    }
    let app = Secret::from_env(&["DD_APP_KEY"])
        .map_err(anyhow::Error::msg)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} needs an application key: set DD_APP_KEY (or DD_APP_KEY_FILE) to a key \
                 from Organization Settings → Application Keys{}",
                purpose.who(),
                purpose.scope()
            )
        })?;
    Ok((key, Some(app)))
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
        // A stop request moves the deadline (and a second signal to now): the wait ends there,
        // and the next attempt gives up at once.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = crate::shutdown::grace_over() => {}
        }
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
