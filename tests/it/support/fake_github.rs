//! A fake GitHub REST API on 127.0.0.1 serving a generated [`History`].
//!
//! Real HTTP (axum): the endpoints the collectors use, with GitHub's behaviours that matter to
//! them: `per_page`/`page` pagination with absolute `Link` headers, the 1,000-result cap of
//! filtered run listings, strong ETags and 304s that do not spend rate limit, `x-ratelimit-*`
//! headers, and injectable faults (secondary-limit 403s with and without `retry-after`, 5xx,
//! repositories that always fail). Every request is logged for the tests to read. The server
//! task ends with the test's runtime.

#![allow(dead_code)]

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::github_history::{History, RunData};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub status: u16,
    pub conditional: bool,
    pub authorization: Option<String>,
}

/// Faults to inject, consumed as requests arrive.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// The next N requests get 403 "secondary rate limit" with `retry-after: 1`.
    pub secondary_with_retry_after: u32,
    /// The next N requests get 403 "secondary rate limit" without `retry-after`.
    pub secondary_without_retry_after: u32,
    /// The next N requests get 502.
    pub server_errors: u32,
    /// Repositories (owner/name) that always answer 503.
    pub broken_repos: Vec<String>,
    /// Every request gets 403 "API rate limit exceeded" with `x-ratelimit-remaining: 0`.
    pub primary_exhausted: bool,
    /// Requests whose path contains one of these always answer 500.
    pub broken_paths: Vec<String>,
}

pub struct FakeState {
    pub histories: RwLock<HashMap<String, History>>,
    pub log: Mutex<Vec<Logged>>,
    pub faults: Mutex<Faults>,
    pub remaining: AtomicI64,
    pub base: String,
    /// Time spent building responses (the benchmark subtracts it from process CPU time).
    pub busy_nanos: AtomicU64,
    /// Fields of a repository's listing entry (`archived`, `fork`, `size`, `topics`, …) that
    /// differ from an active, non-empty, unforked repository's.
    pub repo_meta: RwLock<HashMap<String, Value>>,
    /// Requests in flight now, and the most at once.
    pub in_flight: AtomicI64,
    pub peak_in_flight: AtomicI64,
}

pub struct FakeGithub {
    pub url: String,
    pub state: Arc<FakeState>,
}

impl FakeGithub {
    /// Serve `histories` (each under its own `repo`) on a fresh port of 127.0.0.1.
    pub async fn start(histories: Vec<History>) -> FakeGithub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(FakeState {
            histories: RwLock::new(histories.into_iter().map(|h| (h.repo.clone(), h)).collect()),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            remaining: AtomicI64::new(5000),
            base: url.clone(),
            busy_nanos: AtomicU64::new(0),
            repo_meta: RwLock::new(HashMap::new()),
            in_flight: AtomicI64::new(0),
            peak_in_flight: AtomicI64::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        FakeGithub { url, state }
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    pub fn set_faults(&self, f: Faults) {
        *self.state.faults.lock().unwrap() = f;
    }

    pub fn with_history<R>(&self, repo: &str, f: impl FnOnce(&mut History) -> R) -> R {
        f(self.state.histories.write().unwrap().get_mut(repo).unwrap())
    }

    /// Add a repository (it appears in its organisation's listing).
    pub fn add_history(&self, h: History) {
        self.state
            .histories
            .write()
            .unwrap()
            .insert(h.repo.clone(), h);
    }

    /// Delete a repository.
    pub fn remove_repo(&self, repo: &str) {
        self.state.histories.write().unwrap().remove(repo);
    }

    /// Set listing fields of a repository (`{"archived": true}`, `{"topics": ["ml"]}`).
    pub fn set_repo_meta(&self, repo: &str, meta: Value) {
        self.state
            .repo_meta
            .write()
            .unwrap()
            .insert(repo.to_string(), meta);
    }

    /// The primary rate limit the fake reports as left.
    pub fn set_remaining(&self, n: i64) {
        self.state.remaining.store(n, Ordering::Relaxed);
    }
}

/// A repository as the organisation listing shows it.
fn listed_repo(st: &FakeState, full: &str) -> Value {
    let (owner, name) = full.split_once('/').unwrap_or(("", full));
    let mut v = json!({
        "full_name": full,
        "name": name,
        "owner": {"login": owner},
        "private": false,
        "archived": false,
        "disabled": false,
        "fork": false,
        "size": 1024,
        "topics": [],
        "default_branch": "main",
        "visibility": "public",
    });
    if let Some(Value::Object(meta)) = st.repo_meta.read().unwrap().get(full) {
        for (k, x) in meta {
            v[k] = x.clone();
        }
    }
    v
}

/// Run every collector of `plan` once, as `infra-health run` does, against `state` at `now`.
pub async fn collect_once(
    plan: &infra_health::config::Plan,
    state: &Arc<infra_health::state::StateStore>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<infra_health::run::CollectorOutcome> {
    let ctx = Arc::new(infra_health::collectors::CollectContext::new(
        now,
        infra_health::net::http_client().unwrap(),
        state.clone(),
        false,
    ));
    let selected: Vec<_> = plan.collectors.iter().collect();
    infra_health::run::collect(&selected, ctx).await
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn run_json(h: &History, r: &RunData, attempt: Option<u32>) -> Value {
    let w = &h.workflows[r.workflow];
    let (attempt_no, conclusion, started) = match attempt {
        Some(n) if n < r.run_attempt => (n, r.first_attempt_conclusion.clone(), r.created_at),
        _ => (r.run_attempt, r.conclusion.clone(), r.run_started_at),
    };
    json!({
        "id": r.id,
        "name": w.name,
        "path": w.path,
        "workflow_id": w.id,
        "head_branch": r.branch,
        "event": r.event,
        "head_repository": { "full_name": r.head_repo },
        "status": if attempt_no < r.run_attempt { "completed" } else { r.status.as_str() },
        "conclusion": conclusion,
        "run_attempt": attempt_no,
        "created_at": ts(r.created_at),
        "updated_at": ts(r.updated_at),
        "run_started_at": ts(started),
        "html_url": format!("https://github.com/{}/actions/runs/{}", h.repo, r.id),
    })
}

/// GitHub's `created=` qualifier as the fake understands it: `FROM..TO` (RFC 3339, inclusive).
fn created_range(c: &str) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap_or_else(|e| panic!("fake GitHub: bad created= bound {t:?}: {e}"))
            .with_timezone(&chrono::Utc)
    };
    let (from, to) = c
        .split_once("..")
        .unwrap_or_else(|| panic!("fake GitHub: created= must be FROM..TO, got {c:?}"));
    (parse(from), parse(to))
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn etag_of(body: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

/// One page of `items` with GitHub's `Link` header.
fn paginate(
    base: &str,
    path: &str,
    q: &HashMap<String, String>,
    items: Vec<Value>,
) -> (Value, Option<String>) {
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link_for = |p: usize| {
        let mut qq: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        qq.sort();
        qq.push(("page".into(), p.to_string()));
        let enc: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(qq)
            .finish();
        format!("{base}{path}?{enc}")
    };
    let link = (page < last).then(|| {
        format!(
            "<{}>; rel=\"next\", <{}>; rel=\"last\"",
            link_for(page + 1),
            link_for(last)
        )
    });
    (Value::Array(slice), link)
}

async fn handle(State(st): State<Arc<FakeState>>, req: Request) -> Response {
    let method = req.method().to_string();
    let uri = req.uri().clone();
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let if_none_match = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let busy = std::time::Instant::now();
    let now_in_flight = st.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    st.peak_in_flight
        .fetch_max(now_in_flight, Ordering::Relaxed);
    let (status, body, link, extra) = route(&st, &method, uri.path(), uri.query(), &headers);
    st.in_flight.fetch_sub(1, Ordering::Relaxed);
    let mut resp_status = status;
    let mut resp_body = body;
    let mut etag = None;
    if status == 200 {
        let tag = etag_of(&resp_body);
        if if_none_match.as_deref() == Some(tag.as_str()) {
            resp_status = 304;
            resp_body = Vec::new();
        }
        etag = Some(tag);
    }
    if resp_status == 200 {
        st.remaining.fetch_sub(1, Ordering::Relaxed);
    }
    st.log.lock().unwrap().push(Logged {
        method,
        target,
        status: resp_status,
        conditional: if_none_match.is_some(),
        authorization,
    });
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(resp_status).unwrap())
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ratelimit-limit", "5000")
        .header(
            "x-ratelimit-remaining",
            if extra.iter().any(|(k, _)| *k == "x-ratelimit-remaining") {
                "0".to_string()
            } else {
                st.remaining.load(Ordering::Relaxed).max(0).to_string()
            },
        )
        .header(
            "x-ratelimit-reset",
            (chrono::Utc::now().timestamp() + 3600).to_string(),
        );
    if let Some(e) = etag {
        builder = builder.header("etag", e);
    }
    if let Some(l) = link {
        builder = builder.header("link", HeaderValue::from_str(&l).unwrap());
    }
    for (k, v) in extra {
        if k != "x-ratelimit-remaining" {
            builder = builder.header(k, v);
        }
    }
    let resp = builder.body(Body::from(resp_body)).unwrap();
    st.busy_nanos
        .fetch_add(busy.elapsed().as_nanos() as u64, Ordering::Relaxed);
    resp
}

type Routed = (u16, Vec<u8>, Option<String>, Vec<(&'static str, String)>);

fn error(status: u16, message: &str) -> Routed {
    (
        status,
        serde_json::to_vec(&json!({ "message": message })).unwrap(),
        None,
        Vec::new(),
    )
}

fn route(
    st: &FakeState,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Routed {
    {
        let mut f = st.faults.lock().unwrap();
        if f.secondary_with_retry_after > 0 {
            f.secondary_with_retry_after -= 1;
            let (s, b, l, _) = error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            return (s, b, l, vec![("retry-after", "1".to_string())]);
        }
        if f.secondary_without_retry_after > 0 {
            f.secondary_without_retry_after -= 1;
            return error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
        }
        if f.primary_exhausted {
            let (s, b, l, _) = error(403, "API rate limit exceeded for installation ID 1.");
            return (s, b, l, vec![("x-ratelimit-remaining", "0".to_string())]);
        }
        if f.server_errors > 0 {
            f.server_errors -= 1;
            return error(502, "Server Error");
        }
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if method == "POST" {
        if let ["app", "installations", _id, "access_tokens"] = parts.as_slice() {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let jwt = auth.strip_prefix("Bearer ").unwrap_or("");
            if jwt.split('.').count() != 3 {
                return error(401, "A JSON web token could not be decoded");
            }
            let expires = chrono::Utc::now() + chrono::TimeDelta::hours(1);
            let body =
                json!({ "token": "ghs_installation_token_for_tests", "expires_at": ts(expires) });
            return (201, serde_json::to_vec(&body).unwrap(), None, Vec::new());
        }
        return error(404, "Not Found");
    }
    let q = query_map(query);
    let listing = |owner: Option<&str>| -> Vec<Value> {
        let histories = st.histories.read().unwrap();
        let mut names: Vec<&String> = histories
            .keys()
            .filter(|k| owner.is_none_or(|o| k.split('/').next() == Some(o)))
            .collect();
        names.sort();
        names.into_iter().map(|n| listed_repo(st, n)).collect()
    };
    match parts.as_slice() {
        ["orgs", org, "repos"] if !org.starts_with("user-") => {
            let (body, link) = paginate(&st.base, path, &q, listing(Some(org)));
            return (200, serde_json::to_vec(&body).unwrap(), link, Vec::new());
        }
        ["orgs", _, "repos"] => return error(404, "Not Found"),
        ["users", user, "repos"] => {
            let (body, link) = paginate(&st.base, path, &q, listing(Some(user)));
            return (200, serde_json::to_vec(&body).unwrap(), link, Vec::new());
        }
        ["installation", "repositories"] => {
            let all = listing(None);
            let total = all.len();
            let (page, link) = paginate(&st.base, path, &q, all);
            let body = json!({"total_count": total, "repositories": page});
            return (200, serde_json::to_vec(&body).unwrap(), link, Vec::new());
        }
        _ => {}
    }
    if parts.len() < 3 || parts[0] != "repos" {
        return error(404, "Not Found");
    }
    let repo = format!("{}/{}", parts[1], parts[2]);
    {
        let f = st.faults.lock().unwrap();
        if f.broken_repos.contains(&repo) {
            return error(503, "Service Unavailable");
        }
        if f.broken_paths.iter().any(|p| path.contains(p.as_str())) {
            return error(500, "Server Error");
        }
    }
    let histories = st.histories.read().unwrap();
    let Some(h) = histories.get(&repo) else {
        return error(404, "Not Found");
    };
    let rest = &parts[3..];
    let list = |items: Vec<Value>| -> Routed {
        let (body, link) = paginate(&st.base, path, &q, items);
        (200, serde_json::to_vec(&body).unwrap(), link, Vec::new())
    };
    let object = |v: Value| -> Routed { (200, serde_json::to_vec(&v).unwrap(), None, Vec::new()) };
    match rest {
        ["actions", "runs"] => {
            let filtered = [
                "actor",
                "branch",
                "check_suite_id",
                "created",
                "event",
                "head_sha",
                "status",
            ]
            .iter()
            .any(|k| q.contains_key(*k));
            let created = q.get("created").map(|c| created_range(c));
            let mut runs: Vec<&RunData> = h
                .runs
                .iter()
                .filter(|r| q.get("branch").is_none_or(|b| &r.branch == b))
                .filter(|r| {
                    created
                        .as_ref()
                        .is_none_or(|(from, to)| r.created_at >= *from && r.created_at <= *to)
                })
                .collect();
            if filtered {
                runs.truncate(1000); // GitHub's cap on filtered listings
            }
            let total = runs.len();
            let items: Vec<Value> = runs.iter().map(|r| run_json(h, r, None)).collect();
            let (page, link) = paginate(&st.base, path, &q, items);
            let body = json!({ "total_count": total, "workflow_runs": page });
            (200, serde_json::to_vec(&body).unwrap(), link, Vec::new())
        }
        ["actions", "workflows"] => {
            let items: Vec<Value> = h
                .workflows
                .iter()
                .map(|w| json!({ "id": w.id, "name": w.name, "path": w.path, "state": "active" }))
                .collect();
            let total = items.len();
            let (page, link) = paginate(&st.base, path, &q, items);
            let body = json!({ "total_count": total, "workflows": page });
            (200, serde_json::to_vec(&body).unwrap(), link, Vec::new())
        }
        ["actions", "runs", id] => match h.runs.iter().find(|r| r.id.to_string() == *id) {
            Some(r) => object(run_json(h, r, None)),
            None => error(404, "Not Found"),
        },
        ["actions", "runs", id, "attempts", n] => {
            let n: u32 = n.parse().unwrap_or(0);
            match h.runs.iter().find(|r| r.id.to_string() == *id) {
                Some(r) if n >= 1 && n <= r.run_attempt => object(run_json(h, r, Some(n))),
                _ => error(404, "Not Found"),
            }
        }
        ["actions", "runs", id, "jobs"] => {
            let Some(r) = h.runs.iter().find(|r| r.id.to_string() == *id) else {
                return error(404, "Not Found");
            };
            let all = q.get("filter").map(String::as_str) == Some("all");
            let jobs: Vec<Value> = h.jobs[&r.id]
                .iter()
                .filter(|j| all || j.run_attempt == r.run_attempt)
                .map(|j| {
                    json!({
                        "id": j.id, "run_id": r.id, "run_attempt": j.run_attempt,
                        "status": if j.conclusion.is_some() { "completed" } else if j.started_at.is_some() { "in_progress" } else { "queued" },
                        "conclusion": j.conclusion,
                        "created_at": ts(j.created_at),
                        "started_at": j.started_at.map(ts),
                        "completed_at": j.completed_at.map(ts),
                        "labels": j.labels,
                        "name": format!("job-{}", j.id),
                    })
                })
                .collect();
            let total = jobs.len();
            let (page, link) = paginate(&st.base, path, &q, jobs);
            let body = json!({ "total_count": total, "jobs": page });
            (200, serde_json::to_vec(&body).unwrap(), link, Vec::new())
        }
        ["check-runs", id, "annotations"] => {
            let id: u64 = id.parse().unwrap_or(0);
            let notes: Vec<Value> = h
                .annotations
                .get(&id)
                .map(|v| {
                    v.iter()
                        .map(|m| json!({ "path": ".github", "annotation_level": "failure", "message": m }))
                        .collect()
                })
                .unwrap_or_default();
            list(notes)
        }
        ["commits"] => {
            let since = q
                .get("since")
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            let until = q
                .get("until")
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            if q.get("sha").is_some_and(|s| s != "main") {
                return list(Vec::new());
            }
            let items = h
                .commits
                .iter()
                .filter(|c| since.is_none_or(|s| c.date >= s) && until.is_none_or(|u| c.date <= u))
                .map(|c| {
                    json!({
                        "sha": c.sha,
                        "commit": {
                            "message": c.message,
                            "author": { "name": "dev", "date": ts(c.date) },
                            "committer": { "name": "GitHub", "date": ts(c.date) },
                        },
                        "parents": c.parents.iter().map(|p| json!({ "sha": p })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            list(items)
        }
        ["pulls"] => {
            let state = q.get("state").map(String::as_str).unwrap_or("open");
            let mut pulls: Vec<_> = h
                .pulls
                .iter()
                .filter(|p| state == "all" || p.state == state)
                .collect();
            match q.get("sort").map(String::as_str) {
                Some("updated") => pulls.sort_by_key(|p| (p.updated_at, p.number)),
                _ => pulls.sort_by_key(|p| (p.created_at, p.number)),
            }
            if q.get("direction").map(String::as_str) != Some("asc") {
                pulls.reverse();
            }
            let items = pulls
                .iter()
                .map(|p| {
                    json!({
                        "number": p.number, "state": p.state, "title": p.title,
                        "created_at": ts(p.created_at), "updated_at": ts(p.updated_at),
                        "merged_at": p.merged_at.map(ts),
                        "closed_at": p.merged_at.map(ts),
                        "merge_commit_sha": p.merge_commit_sha,
                        "labels": p.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
                        "head": { "ref": p.head, "sha": p.head_sha }, "base": { "ref": p.base },
                        "body": "x".repeat(200),
                    })
                })
                .collect();
            list(items)
        }
        ["pulls", n, "commits"] => match h.pulls.iter().find(|p| p.number.to_string() == *n) {
            Some(p) => list(
                p.commits
                    .iter()
                    .map(|c| {
                        let message = h
                            .commits
                            .iter()
                            .find(|x| &x.sha == c)
                            .map(|x| x.message.clone())
                            .unwrap_or_default();
                        json!({ "sha": c, "commit": { "message": message } })
                    })
                    .collect(),
            ),
            None => error(404, "Not Found"),
        },
        ["pulls", n, "reviews"] => match h.pulls.iter().find(|p| p.number.to_string() == *n) {
            Some(p) => {
                let merged = p.merged_at.unwrap_or(h.now);
                let mut reviews = vec![json!({
                    "id": 1, "state": "COMMENTED",
                    "submitted_at": ts(p.created_at + chrono::TimeDelta::seconds(30)),
                })];
                if p.approved {
                    reviews.push(json!({
                        "id": 2, "state": "APPROVED",
                        "submitted_at": ts(merged - chrono::TimeDelta::seconds(60)),
                    }));
                } else if p.late_approval {
                    reviews.push(json!({
                        "id": 3, "state": "APPROVED",
                        "submitted_at": ts(merged + chrono::TimeDelta::seconds(60)),
                    }));
                }
                list(reviews)
            }
            None => error(404, "Not Found"),
        },
        ["commits", sha, "check-runs"] => {
            let Some(p) = h.pulls.iter().find(|p| p.head_sha == *sha) else {
                return error(422, "No commit found for SHA");
            };
            let runs: Vec<Value> = ["Tests", "lint", "docs"]
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let failed = *name == "Tests" && p.checks_failed;
                    json!({
                        "id": 70_000 + p.number * 10 + i as u64, "name": name, "status": "completed",
                        "conclusion": if failed { "failure" } else { "success" },
                    })
                })
                .collect();
            let total = runs.len();
            let (page, link) = paginate(&st.base, path, &q, runs);
            let body = json!({ "total_count": total, "check_runs": page });
            (200, serde_json::to_vec(&body).unwrap(), link, Vec::new())
        }
        ["branches", b] => object(json!({
            "name": b,
            "protected": true,
            "protection": {
                "enabled": true,
                "required_status_checks": {
                    "enforcement_level": "everyone",
                    "contexts": h.required_checks,
                },
            },
        })),
        ["activity"] => {
            let wanted_ref = q.get("ref").map(String::as_str).unwrap_or("");
            let kind = q.get("activity_type").map(String::as_str).unwrap_or("");
            let mut pushes: Vec<_> = h
                .force_pushes
                .iter()
                .filter(|_| {
                    (wanted_ref == "refs/heads/main" || wanted_ref == "main")
                        && kind == "force_push"
                })
                .collect();
            pushes.sort_by_key(|f| std::cmp::Reverse(f.timestamp));
            list(
                pushes
                    .iter()
                    .map(|f| {
                        json!({
                            "id": f.id, "before": "0".repeat(40), "after": f.after,
                            "ref": "refs/heads/main", "timestamp": ts(f.timestamp),
                            "activity_type": "force_push",
                        })
                    })
                    .collect(),
            )
        }
        ["issues"] => {
            let state = q.get("state").map(String::as_str).unwrap_or("open");
            let since = q
                .get("since")
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            let wanted: Vec<&str> = q
                .get("labels")
                .map(|l| l.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            let items = h
                .issues
                .iter()
                .filter(|i| state == "all" || i.state == state)
                .filter(|i| wanted.iter().all(|w| i.labels.iter().any(|l| l == w)))
                .filter(|i| since.is_none_or(|s| i.closed_at.unwrap_or(i.created_at) >= s))
                .map(|i| {
                    let mut v = json!({
                        "number": i.number, "state": i.state,
                        "created_at": ts(i.created_at),
                        "updated_at": ts(i.closed_at.unwrap_or(i.created_at)),
                        "closed_at": i.closed_at.map(ts),
                        "labels": i.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
                    });
                    if i.is_pull {
                        v["pull_request"] = json!({ "url": "x" });
                    }
                    v
                })
                .collect();
            list(items)
        }
        ["deployments"] => {
            let env = q.get("environment");
            let mut deps: Vec<_> = h
                .deployments
                .iter()
                .filter(|d| env.is_none_or(|e| &d.environment == e))
                .collect();
            deps.sort_by_key(|d| std::cmp::Reverse((d.created_at, d.id)));
            list(
                deps.iter()
                    .map(|d| {
                        json!({
                            "id": d.id, "sha": d.sha, "ref": "main", "task": "deploy",
                            "environment": d.environment, "created_at": ts(d.created_at),
                            "updated_at": ts(d.statuses.last().map_or(d.created_at, |s| s.1)),
                            "payload": {}, "description": "x".repeat(100),
                        })
                    })
                    .collect(),
            )
        }
        ["deployments", id, "statuses"] => {
            match h.deployments.iter().find(|d| d.id.to_string() == *id) {
                Some(d) => list(
                    d.statuses
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, (state, at))| {
                            json!({
                                "id": d.id * 100 + i as u64, "state": state,
                                "environment": d.environment, "created_at": ts(*at),
                            })
                        })
                        .collect(),
                ),
                None => error(404, "Not Found"),
            }
        }
        ["compare", range] => {
            let Some((base, head)) = range.split_once("...") else {
                return error(404, "Not Found");
            };
            let by_sha: HashMap<&str, &super::github_history::CommitData> =
                h.commits.iter().map(|c| (c.sha.as_str(), c)).collect();
            if !by_sha.contains_key(base) || !by_sha.contains_key(head) {
                return error(404, "No common ancestor between base and head");
            }
            let ancestors = |from: &str| {
                let mut seen = std::collections::HashSet::new();
                let mut stack = vec![from.to_string()];
                while let Some(s) = stack.pop() {
                    if let Some(c) = by_sha.get(s.as_str())
                        && seen.insert(s.clone())
                    {
                        stack.extend(c.parents.iter().cloned());
                    }
                }
                seen
            };
            let of_base = ancestors(base);
            let of_head = ancestors(head);
            let status = if base == head {
                "identical"
            } else if of_head.contains(base) {
                "ahead"
            } else if of_base.contains(head) {
                "behind"
            } else {
                "diverged"
            };
            // Oldest first, as GitHub lists a comparison's commits.
            let mut commits: Vec<_> = h
                .commits
                .iter()
                .filter(|c| of_head.contains(&c.sha) && !of_base.contains(&c.sha))
                .collect();
            commits.sort_by_key(|c| c.date);
            let items: Vec<Value> = commits
                .iter()
                .map(|c| {
                    json!({
                        "sha": c.sha,
                        "commit": {
                            "message": c.message,
                            "author": { "name": "dev", "date": ts(c.date) },
                            "committer": { "name": "GitHub", "date": ts(c.date) },
                        },
                        "parents": c.parents.iter().map(|p| json!({ "sha": p })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let ahead_by = items.len();
            let (page, link) = paginate(&st.base, path, &q, items);
            let body = json!({
                "status": status, "ahead_by": ahead_by, "total_commits": ahead_by,
                "behind_by": of_base.iter().filter(|s| !of_head.contains(*s)).count(),
                "commits": page, "files": [],
            });
            (200, serde_json::to_vec(&body).unwrap(), link, Vec::new())
        }
        ["actions", "workflows", "deploy.yml", "runs"] => {
            let mut runs: Vec<_> = h
                .deploy_runs
                .iter()
                .filter(|r| q.get("branch").is_none_or(|b| &r.branch == b))
                .collect();
            runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
            let total = runs.len();
            let items: Vec<Value> = runs
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "name": "deploy", "path": ".github/workflows/deploy.yml",
                        "head_branch": r.branch, "head_sha": r.sha, "event": "push",
                        "status": "completed", "conclusion": "success", "run_attempt": 1,
                        "created_at": ts(r.created_at), "updated_at": ts(r.updated_at),
                        "run_started_at": ts(r.created_at),
                    })
                })
                .collect();
            let (page, link) = paginate(&st.base, path, &q, items);
            let body = json!({ "total_count": total, "workflow_runs": page });
            (200, serde_json::to_vec(&body).unwrap(), link, Vec::new())
        }
        _ => error(404, "Not Found"),
    }
}
