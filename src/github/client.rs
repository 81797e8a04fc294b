//! The GitHub REST client: auth, base URL, `Link` pagination, bounded concurrency, GitHub's
//! rate-limit rules, conditional requests, and replay/record of responses.
//!
//! A thin layer over the run's one `reqwest::Client`. What it owns and why:
//! - **Auth**: a token (`GITHUB_TOKEN` / `GH_TOKEN` / `*_FILE`) or a GitHub App installation
//!   token minted on first use; the value lives in a [`Secret`] and only ever reaches a header.
//! - **Rate limits**, as GitHub documents them: when `x-ratelimit-remaining` hits 0, later
//!   requests wait for `x-ratelimit-reset`; a 403/429 with `retry-after` waits that long; a
//!   secondary-limit 403/429 without it waits at least `min_secondary_wait` (60 s by default),
//!   doubling on each repeat. A wait longer than `max_rate_limit_wait` is not taken: the request
//!   fails with [`GithubError::RateLimited`] so the run reports it instead of hammering a limited
//!   token into a ban. 5xx and transport errors retry with capped exponential backoff. Pauses,
//!   the in-flight and per-minute limits and the run's primary allowance are kept in a
//!   [`Budget`] every client of the run on the same API and credential shares.
//! - **Conditional requests**: callers pass the `ETag` / `Last-Modified` they stored; a 304 costs
//!   no primary rate limit and comes back as [`Fetched::NotModified`]. [`GithubClient::list`]
//!   does this per page with a [`PageCache`] the collectors keep in the state store.
//! - **Replay and record**: a `file://DIR` base answers from responses recorded in `DIR/*.json`
//!   (the bundled offline example), and `record_to` writes every response this client got, so an
//!   example can be regenerated from the test fake.
//! - **Cost accounting**: requests, 304s, primary-limit cost and the last `remaining`, for the
//!   `<prefix>.github.*` self-metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};

use super::app_auth::AppKey;
use super::budget::{Budget, BudgetSettings};
use super::cache::{CachedPage, Fetched, PageCache, Validators};
use super::error::GithubError;
use super::models::InstallationToken;
use super::rate_limit::Policy;
use super::replay::{Recorded, Replay, ReplayFile};
use crate::secret::Secret;

/// How the client proves who it is.
#[derive(Debug)]
pub enum Auth {
    /// Unauthenticated: 60 requests an hour. Only sensible for replay and tests.
    None,
    Token(Secret),
    App {
        key: AppKey,
        installation_id: u64,
    },
}

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Base {
    /// `https://api.github.com`, a GHES `https://host/api/v3`, or a loopback test server.
    Http(url::Url),
    /// Answer from recorded responses (`api_url = "file://DIR"`).
    Replay(Arc<Replay>),
    /// The recordings could not be loaded (a missing directory is a broken source, like an
    /// unreachable API, not a config error): every request fails with this reason.
    ReplayUnavailable(String),
}

/// Everything a client needs, resolved from config once at build time.
#[derive(Debug)]
pub struct Settings {
    pub base: Base,
    pub auth: Auth,
    pub policy: Policy,
    /// Write every response to `<dir>/<name>.json` for replay.
    pub record_to: Option<(PathBuf, String)>,
    /// The limits of the run's shared request budget (the first client of a budget sets them).
    pub budget: BudgetSettings,
}

impl Settings {
    /// Which budget a client of these settings spends from: one per API and credential. The
    /// key holds no secret (a token is reduced to a 64-bit fingerprint) and never leaves the
    /// process.
    pub fn budget_key(&self) -> String {
        let base = match &self.base {
            Base::Http(u) => u.as_str().to_string(),
            Base::Replay(r) => format!("replay:{}", r.dir.display()),
            Base::ReplayUnavailable(_) => "replay-unavailable".into(),
        };
        let who = match &self.auth {
            Auth::None => "anonymous".to_string(),
            Auth::Token(t) => format!("token:{:016x}", super::shard::fnv1a(t.expose().as_bytes())),
            Auth::App {
                installation_id, ..
            } => format!("installation:{installation_id}"),
        };
        format!("{base} {who}")
    }
}

/// What a run cost, for self-metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent (or answered from a replay), retries included.
    pub requests: u64,
    /// Of those, answered 304 Not Modified.
    pub not_modified: u64,
    /// Requests that counted against the primary rate limit (non-304 answers).
    pub primary_cost: u64,
    /// Retries after 5xx, transport errors or rate limits.
    pub retries: u64,
    /// The last `x-ratelimit-remaining` seen, if any.
    pub rate_limit_remaining: Option<i64>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    not_modified: AtomicU64,
    primary_cost: AtomicU64,
    retries: AtomicU64,
    remaining: AtomicI64,
}

/// A client for one collection (counters start at zero).
pub struct GithubClient {
    http: reqwest::Client,
    settings: Arc<Settings>,
    permits: Semaphore,
    counters: Counters,
    /// Shared with every client of the run on the same API and credential: in-flight and
    /// per-minute limits, the primary allowance, and pauses for rate limits.
    budget: Arc<Budget>,
    app_token: Mutex<Option<(Secret, DateTime<Utc>)>>,
    recorded: std::sync::Mutex<BTreeMap<String, Recorded>>,
}

const ACCEPT: &str = "application/vnd.github+json";
const API_VERSION: &str = "2022-11-28";
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The most of one GitHub answer (a page of at most 100 items) that is read; a longer one is an
/// error naming the path, not retried (README, Limits).
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

impl GithubClient {
    /// A client with a budget of its own (a client alone in its run).
    pub fn new(http: reqwest::Client, settings: Arc<Settings>) -> GithubClient {
        let budget = Arc::new(Budget::new(settings.budget));
        GithubClient::with_budget(http, settings, budget)
    }

    /// A client spending from `budget`, shared with the run's other clients of the same API
    /// and credential.
    pub fn with_budget(
        http: reqwest::Client,
        settings: Arc<Settings>,
        budget: Arc<Budget>,
    ) -> GithubClient {
        let permits = Semaphore::new(settings.policy.max_concurrency.max(1));
        let counters = Counters::default();
        counters.remaining.store(i64::MIN, Ordering::Relaxed);
        GithubClient {
            http,
            settings,
            permits,
            counters,
            budget,
            app_token: Mutex::new(None),
            recorded: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    pub fn stats(&self) -> Stats {
        let remaining = self.counters.remaining.load(Ordering::Relaxed);
        Stats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            not_modified: self.counters.not_modified.load(Ordering::Relaxed),
            primary_cost: self.counters.primary_cost.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            rate_limit_remaining: (remaining != i64::MIN).then_some(remaining),
        }
    }

    /// GET `key` (a path with query, relative to the API base), conditionally when
    /// `validators` are given.
    pub async fn get(
        &self,
        key: &str,
        validators: Option<&Validators>,
    ) -> Result<Fetched, GithubError> {
        if let Some(limit) = past_stop_at() {
            return Err(GithubError::OutOfTime {
                key: key.into(),
                limit,
            });
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| GithubError::closed(key))?;
        let fetched = match &self.settings.base {
            Base::Replay(replay) => self.replay(replay, key, validators),
            Base::ReplayUnavailable(why) => Err(GithubError::ReplayUnavailable(why.clone())),
            Base::Http(base) => self.get_http(base, key, validators).await,
        }?;
        if let (
            Some(_),
            Fetched::Fresh {
                body,
                validators,
                next,
            },
        ) = (&self.settings.record_to, &fetched)
        {
            let body = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
            if let Ok(mut rec) = self.recorded.lock() {
                rec.insert(
                    key.to_string(),
                    Recorded {
                        etag: validators.etag.clone(),
                        next: next.clone(),
                        body,
                    },
                );
            }
        }
        Ok(fetched)
    }

    /// GET and decode, unconditionally.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<(T, Option<String>), GithubError> {
        match self.get(key, None).await? {
            Fetched::Fresh { body, next, .. } => Ok((decode(key, &body)?, next)),
            Fetched::NotModified => Err(GithubError::Status {
                key: key.into(),
                status: 304,
                message: "Not Modified without a conditional request".into(),
            }),
        }
    }

    /// Every page of a listing from `first`, along `Link: rel="next"`, unconditionally (details
    /// fetched once and kept: a run's jobs, a pull request's reviews). Each page is decoded as
    /// `P`: the item list itself, or the object that wraps it.
    pub async fn get_all_pages<P: DeserializeOwned>(
        &self,
        first: String,
    ) -> Result<Vec<P>, GithubError> {
        let mut pages = Vec::new();
        let mut key = Some(first);
        let mut seen = BTreeSet::new();
        while let Some(k) = key.take() {
            if !seen.insert(k.clone()) {
                break; // a Link loop would otherwise never end
            }
            let (page, next) = self.get_json(&k).await?;
            pages.push(page);
            key = next;
        }
        Ok(pages)
    }

    /// Walk a listing from `first` along `Link: rel="next"`, each page conditional on what
    /// `cache` holds for it. `derive` turns a fresh page body into the items kept; `stop` looks at
    /// one page's items and says whether later pages are needed. Returns every item read.
    pub async fn list<D, F, S>(
        &self,
        cache: &mut PageCache,
        first: String,
        derive: F,
        mut stop: S,
    ) -> Result<Vec<D>, GithubError>
    where
        D: Serialize + DeserializeOwned,
        F: Fn(&str, &[u8]) -> Result<Vec<D>, GithubError>,
        S: FnMut(&[D]) -> bool,
    {
        let mut out = Vec::new();
        let mut key = Some(first);
        let mut seen = BTreeSet::new();
        while let Some(k) = key.take() {
            if !seen.insert(k.clone()) {
                break; // a Link loop would otherwise never end
            }
            let cached = cache.pages.get(&k);
            let validators = cached.map(|c| &c.validators).filter(|v| !v.is_empty());
            let (items, next) = match self.get(&k, validators).await? {
                Fetched::NotModified => match cached {
                    Some(c) => (
                        serde_json::from_value::<Vec<D>>(c.items.clone()).map_err(|e| {
                            GithubError::Decode {
                                key: k.clone(),
                                message: format!("cached page: {e}"),
                            }
                        })?,
                        c.next.clone(),
                    ),
                    None => {
                        return Err(GithubError::Status {
                            key: k,
                            status: 304,
                            message: "Not Modified for a page that is not cached".into(),
                        });
                    }
                },
                Fetched::Fresh {
                    body,
                    validators,
                    next,
                } => {
                    let items = derive(&k, &body[..])?;
                    let stored = serde_json::to_value(&items).map_err(|e| GithubError::Decode {
                        key: k.clone(),
                        message: e.to_string(),
                    })?;
                    cache.pages.insert(
                        k.clone(),
                        CachedPage {
                            validators,
                            next: next.clone(),
                            items: stored,
                        },
                    );
                    (items, next)
                }
            };
            cache.touched.insert(k);
            let done = stop(&items);
            out.extend(items);
            if !done {
                key = next;
            }
        }
        Ok(out)
    }

    /// Write what this client recorded to `<dir>/<name>.json`.
    pub fn save_recording(&self, recorded_at: DateTime<Utc>) -> Result<(), String> {
        let Some((dir, name)) = &self.settings.record_to else {
            return Ok(());
        };
        let responses = self
            .recorded
            .lock()
            .map_err(|_| "recording lock poisoned".to_string())?
            .clone();
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string(&ReplayFile {
            recorded_at,
            responses,
        })
        .map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn replay(
        &self,
        replay: &Replay,
        key: &str,
        validators: Option<&Validators>,
    ) -> Result<Fetched, GithubError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let rec = replay
            .responses
            .get(key)
            .ok_or_else(|| GithubError::ReplayMiss {
                key: key.into(),
                dir: replay.dir.display().to_string(),
            })?;
        if rec.etag.is_some() && validators.and_then(|v| v.etag.as_ref()) == rec.etag.as_ref() {
            self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
            return Ok(Fetched::NotModified);
        }
        let body = serde_json::to_vec(&rec.body).map_err(|e| GithubError::Decode {
            key: key.into(),
            message: e.to_string(),
        })?;
        Ok(Fetched::Fresh {
            body: Bytes::from(body),
            validators: Validators {
                etag: rec.etag.clone(),
                last_modified: None,
            },
            next: rec.next.clone(),
        })
    }

    async fn pause(&self, key: &str, wait: Duration) -> Result<(), GithubError> {
        self.budget
            .pause(key, wait, self.settings.policy.max_rate_limit_wait)
            .await
    }

    async fn auth_header(&self, base: &url::Url) -> Result<Option<String>, GithubError> {
        match &self.settings.auth {
            Auth::None => Ok(None),
            Auth::Token(t) => Ok(Some(format!("Bearer {}", t.expose()))),
            Auth::App {
                key,
                installation_id,
            } => {
                let mut slot = self.app_token.lock().await;
                if let Some((token, expires)) = slot.as_ref()
                    && *expires > Utc::now() + chrono::TimeDelta::minutes(5)
                {
                    return Ok(Some(format!("Bearer {}", token.expose())));
                }
                let jwt = key.jwt(Utc::now()).map_err(GithubError::Auth)?;
                let url = join(
                    base,
                    &format!("/app/installations/{installation_id}/access_tokens"),
                )
                .map_err(GithubError::Auth)?;
                let resp = self
                    .http
                    .post(url)
                    .header("accept", ACCEPT)
                    .header("x-github-api-version", API_VERSION)
                    .header("authorization", format!("Bearer {jwt}"))
                    .send()
                    .await
                    .map_err(|e| GithubError::Auth(format!("token request: {e}")))?;
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                let status = resp.status();
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| GithubError::Auth(format!("token response: {e}")))?;
                if !status.is_success() {
                    return Err(GithubError::Auth(format!(
                        "installation {installation_id}: HTTP {}: {}",
                        status.as_u16(),
                        short_message(&body)
                    )));
                }
                let token: InstallationToken = serde_json::from_slice(&body)
                    .map_err(|e| GithubError::Auth(format!("token response: {e}")))?;
                let expires = token
                    .expires_at
                    .unwrap_or_else(|| Utc::now() + chrono::TimeDelta::minutes(50));
                let secret = Secret::new(token.token);
                let header = format!("Bearer {}", secret.expose());
                *slot = Some((secret, expires));
                Ok(Some(header))
            }
        }
    }

    async fn get_http(
        &self,
        base: &url::Url,
        key: &str,
        validators: Option<&Validators>,
    ) -> Result<Fetched, GithubError> {
        let url = join(base, key).map_err(|message| GithubError::Status {
            key: key.into(),
            status: 0,
            message,
        })?;
        let policy = &self.settings.policy;
        let mut secondary_hits = 0u32;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.budget
                .wait_for_pause(key, policy.max_rate_limit_wait)
                .await?;
            let _in_flight = self.budget.acquire(key).await?;
            let mut req = self
                .http
                .get(url.clone())
                .header("accept", ACCEPT)
                .header("x-github-api-version", API_VERSION);
            if let Some(h) = self.auth_header(base).await? {
                req = req.header("authorization", h);
            }
            if let Some(v) = validators {
                if let Some(e) = &v.etag {
                    req = req.header("if-none-match", e);
                }
                if let Some(m) = &v.last_modified {
                    req = req.header("if-modified-since", m);
                }
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let retry_reason = match req.send().await {
                Err(e) => format!("transport error: {}", without_url(&e)),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let remaining = header_i64(&headers, "x-ratelimit-remaining");
                    let reset = header_i64(&headers, "x-ratelimit-reset");
                    if let Some(r) = remaining {
                        self.counters.remaining.store(r, Ordering::Relaxed);
                        self.budget.saw_remaining(r);
                    }
                    if status == 304 {
                        self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
                        return Ok(Fetched::NotModified);
                    }
                    self.counters.primary_cost.fetch_add(1, Ordering::Relaxed);
                    self.budget.charge();
                    let body = match crate::net::read_capped(resp, MAX_PAGE_BYTES).await {
                        Ok(b) => b,
                        Err(e @ crate::net::BodyError::TooLarge { .. }) => {
                            return Err(GithubError::Decode {
                                key: key.into(),
                                message: e.to_string(),
                            });
                        }
                        Err(e) => {
                            let reason = e.to_string();
                            self.backoff(key, attempt, &reason).await?;
                            continue;
                        }
                    };
                    if (200..300).contains(&status) {
                        if remaining == Some(0)
                            && let Some(wait) = reset.map(until_reset)
                        {
                            // The budget is spent: later requests wait for the reset (or stop).
                            let _ = self.pause(key, wait).await;
                        }
                        let next = next_link(&headers)
                            .map(|n| relative_key(base, &n))
                            .transpose()
                            .map_err(|message| GithubError::Decode {
                                key: key.into(),
                                message,
                            })?;
                        return Ok(Fetched::Fresh {
                            body,
                            validators: Validators {
                                etag: header_str(&headers, "etag"),
                                last_modified: header_str(&headers, "last-modified"),
                            },
                            next,
                        });
                    }
                    let message = short_message(&body);
                    if status == 403 || status == 429 {
                        let retry_after = header_i64(&headers, "retry-after");
                        let wait = if let Some(s) = retry_after {
                            Some(Duration::from_secs(s.max(0) as u64))
                        } else if remaining == Some(0) {
                            Some(reset.map(until_reset).unwrap_or(policy.min_secondary_wait))
                        } else if status == 429
                            || message.to_ascii_lowercase().contains("rate limit")
                        {
                            let factor = 2u32.saturating_pow(secondary_hits.min(16));
                            Some(policy.min_secondary_wait.saturating_mul(factor))
                        } else {
                            None
                        };
                        if let Some(wait) = wait {
                            secondary_hits += 1;
                            if attempt > policy.max_retries {
                                return Err(GithubError::Exhausted {
                                    key: key.into(),
                                    attempts: attempt,
                                    last: format!("HTTP {status}: {message}"),
                                });
                            }
                            tracing::warn!(
                                "GitHub rate limit on GET {key} (HTTP {status}); waiting {wait:?}"
                            );
                            self.pause(key, wait).await?;
                            self.counters.retries.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    if status >= 500 || status == 408 {
                        format!("HTTP {status}: {message}")
                    } else {
                        return Err(GithubError::Status {
                            key: key.into(),
                            status,
                            message,
                        });
                    }
                }
            };
            self.backoff(key, attempt, &retry_reason).await?;
        }
    }

    async fn backoff(&self, key: &str, attempt: u32, reason: &str) -> Result<(), GithubError> {
        let policy = &self.settings.policy;
        if attempt > policy.max_retries {
            return Err(GithubError::Exhausted {
                key: key.into(),
                attempts: attempt,
                last: reason.to_string(),
            });
        }
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        let wait = policy.retry_base.saturating_mul(factor).min(MAX_BACKOFF);
        // Jitter spreads retries of concurrent requests apart.
        let jitter = wait.mul_f64(rand::random::<f64>() * 0.25);
        tracing::debug!("GET {key}: {reason}; retrying in {:?}", wait + jitter);
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(wait + jitter).await;
        Ok(())
    }
}

tokio::task_local! {
    /// When the work of this task (one repository) stops sending requests, and the time limit
    /// that set it, for the message.
    static STOP_AT: (tokio::time::Instant, Duration);
}

/// Run `work` so that its requests are refused with [`GithubError::OutOfTime`] from `at` on:
/// a collector stops cleanly, keeps what it fetched and goes on next run, where a hard timeout
/// would throw its progress away. `limit` names the time limit in the message.
pub async fn stop_requests_at<F: std::future::Future>(
    at: tokio::time::Instant,
    limit: Duration,
    work: F,
) -> F::Output {
    STOP_AT.scope((at, limit), work).await
}

fn past_stop_at() -> Option<Duration> {
    stop_at().and_then(|(at, limit)| (tokio::time::Instant::now() >= at).then_some(limit))
}

/// The stop of the current task's requests, if it has one ([`stop_requests_at`]).
pub(super) fn stop_at() -> Option<(tokio::time::Instant, Duration)> {
    STOP_AT.try_with(|s| *s).ok()
}

/// Decode a JSON body, naming the request on failure.
pub fn decode<T: DeserializeOwned>(key: &str, body: &[u8]) -> Result<T, GithubError> {
    serde_json::from_slice(body).map_err(|e| GithubError::Decode {
        key: key.into(),
        message: e.to_string(),
    })
}

fn join(base: &url::Url, key: &str) -> Result<url::Url, String> {
    let text = format!("{}{}", base.as_str().trim_end_matches('/'), key);
    url::Url::parse(&text).map_err(|e| format!("invalid request URL {text:?}: {e}"))
}

/// A `Link` URL as a key relative to the base (path below the base path, plus query).
fn relative_key(base: &url::Url, link: &str) -> Result<String, String> {
    let url = url::Url::parse(link).map_err(|e| format!("invalid Link URL {link:?}: {e}"))?;
    if url.origin() != base.origin() {
        return Err(format!("Link URL {link:?} leaves the API base {base}"));
    }
    let base_path = base.path().trim_end_matches('/');
    let path = url.path().strip_prefix(base_path).unwrap_or(url.path());
    Ok(match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    })
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

fn header_str(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get(name)?.to_str().ok().map(str::to_string)
}

fn header_i64(h: &reqwest::header::HeaderMap, name: &str) -> Option<i64> {
    header_str(h, name)?.trim().parse().ok()
}

/// Time until a `x-ratelimit-reset` epoch second (plus a second for clock skew).
fn until_reset(reset: i64) -> Duration {
    let secs = reset - Utc::now().timestamp() + 1;
    Duration::from_secs(secs.max(0) as u64)
}

/// GitHub's `{"message": ...}`, or the start of the body.
fn short_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Msg {
        message: String,
    }
    match serde_json::from_slice::<Msg>(body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// A reqwest error's text without its URL (keys already name the request).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(u) = e.url() {
        text = text.replace(&format!(" for url ({u})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_next_links_and_keys() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "link",
            r#"<https://ghe.example/api/v3/repos/o/r/issues?page=2&per_page=100>; rel="next", <https://ghe.example/api/v3/repos/o/r/issues?page=9>; rel="last""#
                .parse()
                .unwrap(),
        );
        let next = next_link(&h).unwrap();
        let base = url::Url::parse("https://ghe.example/api/v3").unwrap();
        assert_eq!(
            relative_key(&base, &next).unwrap(),
            "/repos/o/r/issues?page=2&per_page=100"
        );
        assert!(relative_key(&base, "https://evil.example/x").is_err());
        assert_eq!(
            join(&base, "/repos/o/r").unwrap().as_str(),
            "https://ghe.example/api/v3/repos/o/r"
        );
    }
}
