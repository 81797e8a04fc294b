//! The Monitors API v1 and the metric tag configuration API v2 of the fake Datadog, served by
//! every [`FakeDatadog`] next to the dashboard routes (merged by
//! [`super::fake_dashboards::routes`]).
//!
//! Why fake them: `datadog apply` has to find its own monitors again (by tag, paged), leave
//! everything else alone, validate before it creates, and send bodies Datadog accepts. The
//! checks here are Datadog's documented rules, written from its API reference rather than from
//! infra-health's code:
//! - `POST /api/v1/monitor/validate` → 200 `{}`, or 400 `{"errors":[…]}` for a body Datadog
//!   refuses; `POST /api/v1/monitor` and `PUT /api/v1/monitor/{id}` refuse the same bodies.
//!   A metric monitor's query must read `time_aggr(last_N[mhdw]):space_aggr:metric{scope}
//!   [by {keys}] OP THRESHOLD`, `options.thresholds.critical` must equal THRESHOLD, a warning
//!   threshold must sit on the safe side of the critical one, and unknown top-level or option
//!   keys are refused.
//! - `GET /api/v1/monitor?monitor_tags=a,b&page=&page_size=` → the monitors carrying every
//!   listed tag, in creation order, one page.
//! - `GET|PUT|DELETE /api/v1/monitor/{id}`; 404 for an unknown id.
//! - A stored monitor is the body plus what Datadog adds: `id`, `created`, `modified`,
//!   `creator`, `overall_state`, `multi`, and option defaults (`silenced`, `new_host_delay`,
//!   `notify_audit`, `include_tags`, …), so a client that compares naively sees changes.
//! - `GET|POST|PATCH|DELETE /api/v2/metrics/{name}/tags`: the tag configuration of one metric
//!   (`{"data":{"type":"manage_tags","id":name,"attributes":{…}}}`); 404 when there is none,
//!   409 on a second POST; `include_percentiles` is refused on a non-distribution.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Response};
use axum::routing::{get, post};
use regex::Regex;
use serde_json::{Map, Value, json};

use super::fake_datadog::{FakeDatadog, Inner, Seen, Shared, errors, keys_ok, respond};

/// Monitors and tag configurations the fake holds (inside the dashboard store).
#[derive(Debug, Default)]
pub struct SideStore {
    pub monitors: BTreeMap<i64, Value>,
    pub tag_configs: BTreeMap<String, Value>,
    /// Metric types of metrics the fake knows (what the intake would have seen).
    pub metric_types: HashMap<String, String>,
    pub next_id: i64,
    pub monitor_creates: usize,
    pub monitor_updates: usize,
    pub monitor_deletes: usize,
    pub validations: usize,
    pub tag_writes: usize,
}

const MONITOR_KEYS: &[&str] = &[
    "name",
    "type",
    "query",
    "message",
    "tags",
    "options",
    "priority",
    "restricted_roles",
    "draft_status",
    // read-only, ignored when sent
    "id",
    "created",
    "modified",
    "creator",
    "overall_state",
    "multi",
    "deleted",
    "org_id",
    "state",
    "matching_downtimes",
    "classification",
];

const READ_ONLY: &[&str] = &[
    "id",
    "created",
    "modified",
    "creator",
    "overall_state",
    "multi",
    "deleted",
    "org_id",
    "state",
    "matching_downtimes",
    "classification",
];

const OPTION_KEYS: &[&str] = &[
    "thresholds",
    "require_full_window",
    "evaluation_delay",
    "notify_no_data",
    "no_data_timeframe",
    "include_tags",
    "notify_audit",
    "renotify_interval",
    "renotify_statuses",
    "renotify_occurrences",
    "escalation_message",
    "new_host_delay",
    "new_group_delay",
    "timeout_h",
    "silenced",
    "locked",
    "notification_preset_name",
    "on_missing_data",
    "group_retention_duration",
    "notify_by",
    "threshold_windows",
    "min_location_failed",
    "min_failure_duration",
    "aggregation",
    "enable_logs_sample",
    "groupby_simple_monitor",
    "variables",
    "scheduling_options",
];

const MONITOR_TYPES: &[&str] = &[
    "query alert",
    "metric alert",
    "service check",
    "event alert",
    "event-v2 alert",
    "log alert",
    "composite",
];

static METRIC_QUERY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(avg|min|max|sum|last|change|pct_change|percentile\(\d+\))\(last_(\d+)([mhdw])\):(avg|min|max|sum|p50|p75|p90|p95|p99|count):([A-Za-z][A-Za-z0-9_.]*)\{([^{}]*)\}( by \{[A-Za-z0-9_.,-]+\})?\s*(<=|>=|<|>|==|!=)\s*(-?[0-9]+(?:\.[0-9]+)?)$",
    )
    .expect("monitor query regex")
});

/// Why Datadog would refuse this monitor body, or `Ok` with it as an object.
pub fn check_monitor(raw: &[u8]) -> Result<Map<String, Value>, String> {
    let body: Value = serde_json::from_slice(raw).map_err(|e| format!("Invalid JSON: {e}"))?;
    let Value::Object(m) = body else {
        return Err("The monitor must be a JSON object".into());
    };
    for k in m.keys() {
        if !MONITOR_KEYS.contains(&k.as_str()) {
            return Err(format!("Invalid parameter: {k}"));
        }
    }
    let text = |k: &str| m.get(k).and_then(Value::as_str);
    let ty = text("type").ok_or("The parameter 'type' is required")?;
    if !MONITOR_TYPES.contains(&ty) {
        return Err(format!("Invalid monitor type: {ty}"));
    }
    let name = text("name").ok_or("The parameter 'name' is required")?;
    if name.trim().is_empty() {
        return Err("The parameter 'name' must not be empty".into());
    }
    let query = text("query").ok_or("The parameter 'query' is required")?;
    if let Some(tags) = m.get("tags") {
        let ok = tags.as_array().is_some_and(|t| {
            t.iter()
                .all(|v| v.as_str().is_some_and(|s| !s.ends_with(':')))
        });
        if !ok {
            return Err("Invalid tags: expected a list of key:value strings".into());
        }
    }
    if let Some(p) = m.get("priority")
        && !p.as_i64().is_some_and(|p| (1..=5).contains(&p))
    {
        return Err("Invalid priority: expected an integer from 1 to 5".into());
    }
    let options = m.get("options").cloned().unwrap_or(json!({}));
    let Value::Object(options) = options else {
        return Err("'options' must be an object".into());
    };
    for k in options.keys() {
        if !OPTION_KEYS.contains(&k.as_str()) {
            return Err(format!("Invalid option: {k}"));
        }
    }
    if matches!(ty, "query alert" | "metric alert") {
        let c = METRIC_QUERY.captures(query).ok_or_else(|| {
            format!("The value provided for parameter 'query' is invalid: {query}")
        })?;
        let op = &c[8];
        let threshold: f64 = c[9].parse().map_err(|_| "bad threshold".to_string())?;
        let thresholds = options
            .get("thresholds")
            .and_then(Value::as_object)
            .ok_or("Alert thresholds are required: options.thresholds.critical")?;
        let critical = thresholds
            .get("critical")
            .and_then(Value::as_f64)
            .ok_or("Alert thresholds are required: options.thresholds.critical")?;
        if critical != threshold {
            return Err(format!(
                "The value provided for parameter 'query' is invalid: alert threshold ({critical}) does not match that used in the query ({threshold})"
            ));
        }
        if let Some(w) = thresholds.get("warning").filter(|w| !w.is_null()) {
            let w = w.as_f64().ok_or("Invalid warning threshold")?;
            let ok = match op {
                "<" | "<=" => w > critical,
                ">" | ">=" => w < critical,
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "Warning threshold ({w}) must be less severe than the alert threshold ({critical}) for '{op}'"
                ));
            }
        }
        if let Some(nd) = options.get("no_data_timeframe").filter(|v| !v.is_null()) {
            let minutes = nd.as_i64().ok_or("Invalid no_data_timeframe")?;
            if minutes < 2 {
                return Err("no_data_timeframe must be at least 2 minutes".into());
            }
        }
    }
    Ok(m)
}

fn stamp(mut body: Map<String, Value>, id: i64, created: &str, modified: &str) -> Value {
    for k in READ_ONLY {
        body.remove(*k);
    }
    body.insert("id".into(), json!(id));
    body.insert("created".into(), json!(created));
    body.insert("modified".into(), json!(modified));
    body.insert(
        "creator".into(),
        json!({"email": super::fake_dashboards::AUTHOR_HANDLE, "handle": super::fake_dashboards::AUTHOR_HANDLE, "name": null}),
    );
    body.insert("overall_state".into(), json!("No Data"));
    body.insert(
        "multi".into(),
        json!(
            body.get("query")
                .and_then(Value::as_str)
                .is_some_and(|q| q.contains(" by {"))
        ),
    );
    body.entry("message").or_insert(json!(""));
    body.entry("tags").or_insert(json!([]));
    body.entry("priority").or_insert(Value::Null);
    let options = body.entry("options").or_insert(json!({}));
    if let Value::Object(o) = options {
        for (k, v) in [
            ("silenced", json!({})),
            ("new_host_delay", json!(300)),
            ("notify_audit", json!(false)),
            ("include_tags", json!(true)),
            ("notify_no_data", json!(false)),
            ("require_full_window", json!(true)),
            ("renotify_interval", json!(0)),
        ] {
            o.entry(k).or_insert(v);
        }
    }
    Value::Object(body)
}

fn now(inner: &Inner) -> String {
    let _ = inner;
    "2026-12-01T00:00:00.000000+00:00".to_string()
}

type Outcome = Result<(u16, Value), (u16, String)>;

fn handle(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body_len: usize,
    f: impl FnOnce(&mut Inner) -> Outcome,
) -> Response<Body> {
    let mut inner = shared.lock().expect("fake intake lock");
    let outcome = if keys_ok(&inner, headers) {
        f(&mut inner)
    } else {
        Err((403, "Forbidden".into()))
    };
    let status = outcome.as_ref().map_or_else(|(s, _)| *s, |(s, _)| *s);
    inner.seen.push(Seen {
        method: method.into(),
        path: path.into(),
        status,
        encoding: None,
        compressed: body_len,
        uncompressed: body_len,
        points: 0,
        fault: None,
    });
    match outcome {
        Ok((s, v)) => respond(s, v),
        Err((status, msg)) => errors(status, &msg),
    }
}

/// The monitor and tag-configuration routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/monitor", get(list).post(create))
        .route("/api/v1/monitor/validate", post(validate))
        .route(
            "/api/v1/monitor/{id}",
            get(get_one).put(replace).delete(delete),
        )
        .route(
            "/api/v2/metrics/{name}/tags",
            get(get_tags)
                .post(create_tags)
                .patch(update_tags)
                .delete(delete_tags),
        )
}

async fn list(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response<Body> {
    handle(&shared, "GET", "/api/v1/monitor", &headers, 0, |inner| {
        let wanted: Vec<&str> = params
            .get("monitor_tags")
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let page: usize = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let size: usize = params
            .get("page_size")
            .and_then(|p| p.parse().ok())
            .unwrap_or(100)
            .clamp(1, 1000);
        let all: Vec<Value> = inner
            .dashboards
            .side
            .monitors
            .values()
            .filter(|m| {
                let tags: Vec<&str> = m["tags"]
                    .as_array()
                    .map(|t| t.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                wanted.iter().all(|w| tags.contains(w))
            })
            .cloned()
            .collect();
        let page: Vec<Value> = all.into_iter().skip(page * size).take(size).collect();
        Ok((200, Value::Array(page)))
    })
}

async fn validate(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    handle(
        &shared,
        "POST",
        "/api/v1/monitor/validate",
        &headers,
        body.len(),
        |inner| {
            inner.dashboards.side.validations += 1;
            check_monitor(&body).map_err(|e| (400, e))?;
            Ok((200, json!({})))
        },
    )
}

async fn create(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    handle(
        &shared,
        "POST",
        "/api/v1/monitor",
        &headers,
        body.len(),
        |inner| {
            let m = check_monitor(&body).map_err(|e| (400, e))?;
            let at = now(inner);
            let side = &mut inner.dashboards.side;
            side.next_id += 1;
            let id = 100_000 + side.next_id;
            let stored = stamp(m, id, &at, &at);
            side.monitors.insert(id, stored.clone());
            side.monitor_creates += 1;
            Ok((200, stored))
        },
    )
}

fn monitor_id(id: &str) -> Result<i64, (u16, String)> {
    id.parse()
        .map_err(|_| (400, format!("Invalid monitor id: {id}")))
}

async fn get_one(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let path = format!("/api/v1/monitor/{id}");
    handle(&shared, "GET", &path, &headers, 0, |inner| {
        let id = monitor_id(&id)?;
        inner
            .dashboards
            .side
            .monitors
            .get(&id)
            .cloned()
            .map(|m| (200, m))
            .ok_or((404, "Monitor not found".into()))
    })
}

async fn replace(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = format!("/api/v1/monitor/{id}");
    handle(&shared, "PUT", &path, &headers, body.len(), |inner| {
        let id = monitor_id(&id)?;
        let m = check_monitor(&body).map_err(|e| (400, e))?;
        let at = now(inner);
        let side = &mut inner.dashboards.side;
        let created = side
            .monitors
            .get(&id)
            .ok_or((404, "Monitor not found".to_string()))?["created"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let stored = stamp(m, id, &created, &at);
        side.monitors.insert(id, stored.clone());
        side.monitor_updates += 1;
        Ok((200, stored))
    })
}

async fn delete(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let path = format!("/api/v1/monitor/{id}");
    handle(&shared, "DELETE", &path, &headers, 0, |inner| {
        let id = monitor_id(&id)?;
        let side = &mut inner.dashboards.side;
        side.monitors
            .remove(&id)
            .ok_or((404, "Monitor not found".to_string()))?;
        side.monitor_deletes += 1;
        Ok((200, json!({"deleted_monitor_id": id})))
    })
}

// ---- metric tag configurations ---------------------------------------------------------------

const TAG_ATTRIBUTES: &[&str] = &[
    "tags",
    "metric_type",
    "include_percentiles",
    "exclude_tags_mode",
    "aggregations",
];

/// The attributes of a tag configuration body, checked as Datadog does.
fn check_tags_body(raw: &[u8], name: &str, create: bool) -> Result<Map<String, Value>, String> {
    let body: Value = serde_json::from_slice(raw).map_err(|e| format!("Invalid JSON: {e}"))?;
    let data = body.get("data").ok_or("'data' is required")?;
    for k in data.as_object().ok_or("'data' must be an object")?.keys() {
        if !["type", "id", "attributes"].contains(&k.as_str()) {
            return Err(format!("Invalid parameter: data.{k}"));
        }
    }
    if data["type"] != "manage_tags" {
        return Err("data.type must be 'manage_tags'".into());
    }
    if data["id"] != name {
        return Err(format!("data.id must be the metric name {name}"));
    }
    let attrs = data["attributes"]
        .as_object()
        .ok_or("data.attributes is required")?
        .clone();
    for k in attrs.keys() {
        if !TAG_ATTRIBUTES.contains(&k.as_str()) || (!create && k == "metric_type") {
            return Err(format!("Invalid parameter: data.attributes.{k}"));
        }
    }
    if create {
        let ty = attrs
            .get("metric_type")
            .and_then(Value::as_str)
            .ok_or("data.attributes.metric_type is required")?;
        if !["gauge", "count", "rate", "distribution"].contains(&ty) {
            return Err(format!("Invalid metric_type: {ty}"));
        }
        if !attrs.get("tags").is_some_and(Value::is_array) {
            return Err("data.attributes.tags is required".into());
        }
    }
    if let Some(t) = attrs.get("tags")
        && !t.as_array().is_some_and(|t| t.iter().all(Value::is_string))
    {
        return Err("data.attributes.tags must be a list of tag keys".into());
    }
    Ok(attrs)
}

fn tags_answer(name: &str, attrs: &Map<String, Value>) -> Value {
    json!({"data": {"type": "manage_tags", "id": name, "attributes": attrs}})
}

async fn get_tags(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let path = format!("/api/v2/metrics/{name}/tags");
    handle(&shared, "GET", &path, &headers, 0, |inner| {
        inner
            .dashboards
            .side
            .tag_configs
            .get(&name)
            .map(|c| (200, c.clone()))
            .ok_or((404, "Not found".into()))
    })
}

async fn create_tags(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = format!("/api/v2/metrics/{name}/tags");
    handle(&shared, "POST", &path, &headers, body.len(), |inner| {
        let mut attrs = check_tags_body(&body, &name, true).map_err(|e| (400, e))?;
        let side = &mut inner.dashboards.side;
        if side.tag_configs.contains_key(&name) {
            return Err((
                409,
                format!("A tag configuration for {name} already exists"),
            ));
        }
        let ty = attrs["metric_type"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(known) = side.metric_types.get(&name)
            && *known != ty
        {
            return Err((400, format!("{name} is a {known}, not a {ty}")));
        }
        if attrs.get("include_percentiles") == Some(&json!(true)) && ty != "distribution" {
            return Err((400, "include_percentiles is only for distributions".into()));
        }
        attrs.entry("include_percentiles").or_insert(json!(false));
        attrs.entry("exclude_tags_mode").or_insert(json!(false));
        attrs.insert("created_at".into(), json!("2026-12-01T00:00:00+00:00"));
        attrs.insert("modified_at".into(), json!("2026-12-01T00:00:00+00:00"));
        let answer = tags_answer(&name, &attrs);
        side.tag_configs.insert(name.clone(), answer.clone());
        side.tag_writes += 1;
        Ok((201, answer))
    })
}

async fn update_tags(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = format!("/api/v2/metrics/{name}/tags");
    handle(&shared, "PATCH", &path, &headers, body.len(), |inner| {
        let attrs = check_tags_body(&body, &name, false).map_err(|e| (400, e))?;
        let side = &mut inner.dashboards.side;
        let stored = side
            .tag_configs
            .get_mut(&name)
            .ok_or((404, "Not found".to_string()))?;
        let live = stored["data"]["attributes"]
            .as_object_mut()
            .ok_or((500, "corrupt".to_string()))?;
        for (k, v) in attrs {
            live.insert(k, v);
        }
        let answer = stored.clone();
        side.tag_writes += 1;
        Ok((200, answer))
    })
}

async fn delete_tags(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let path = format!("/api/v2/metrics/{name}/tags");
    handle(&shared, "DELETE", &path, &headers, 0, |inner| {
        inner
            .dashboards
            .side
            .tag_configs
            .remove(&name)
            .ok_or((404, "Not found".to_string()))?;
        Ok((204, Value::Null))
    })
}

// ---- test-side accessors -------------------------------------------------------------------

impl FakeDatadog {
    /// Every stored monitor, by id order.
    pub fn monitors(&self) -> Vec<Value> {
        self.with(|i| i.dashboards.side.monitors.values().cloned().collect())
    }

    /// Store a monitor as if made by hand (no checks, not counted); its id.
    pub fn insert_monitor(&self, body: Value) -> i64 {
        let Value::Object(m) = body else {
            panic!("insert_monitor needs an object");
        };
        self.with(|i| {
            let side = &mut i.dashboards.side;
            side.next_id += 1;
            let id = 100_000 + side.next_id;
            let at = "2026-11-01T00:00:00.000000+00:00";
            side.monitors.insert(id, stamp(m, id, at, at));
            id
        })
    }

    /// (creates, updates, deletes, validations) of the monitor API.
    pub fn monitor_counts(&self) -> (usize, usize, usize, usize) {
        self.with(|i| {
            let s = &i.dashboards.side;
            (
                s.monitor_creates,
                s.monitor_updates,
                s.monitor_deletes,
                s.validations,
            )
        })
    }

    /// The stored tag configuration of a metric, as GET returns it.
    pub fn tag_config(&self, metric: &str) -> Option<Value> {
        self.with(|i| i.dashboards.side.tag_configs.get(metric).cloned())
    }

    /// Set a metric's tag configuration as if made in the UI.
    pub fn set_tag_config(&self, metric: &str, attributes: Value) {
        self.with(|i| {
            i.dashboards.side.tag_configs.insert(
                metric.to_string(),
                json!({"data": {"type": "manage_tags", "id": metric, "attributes": attributes}}),
            );
        })
    }

    /// POST/PATCH requests that wrote a tag configuration.
    pub fn tag_writes(&self) -> usize {
        self.with(|i| i.dashboards.side.tag_writes)
    }
}
