//! The Dashboards API v1 of the fake Datadog: list, create, get, replace and delete dashboards,
//! served by every [`FakeDatadog`] next to the intake routes.
//!
//! Why fake it: code that pushes a dashboard has to find its own dashboard again (the list has
//! no title filter and is paged), replace it in place rather than create a duplicate, and send
//! a body Datadog accepts. The real API refuses a whole dashboard for one bad widget, so the
//! fake checks what has bitten us (unknown widget types, conditional-format palettes outside
//! Datadog's set, `fill(last, N)` beyond 600 seconds, misshapen template variables) and answers
//! 400 naming the widget path, e.g. `widgets[2].definition.widgets[0].definition...: ...`.
//!
//! Shapes follow Datadog's API reference (docs.datadoghq.com/api/latest/dashboards):
//! - `GET /api/v1/dashboard?count=&start=` → `{"dashboards":[summary…]}`, where a summary is
//!   `id, title, description, layout_type, url, created_at, modified_at, author_handle,
//!   is_read_only`, in creation order. `count` is clamped to the page size
//!   ([`FakeDatadog::set_dashboard_page_size`], default [`DEFAULT_PAGE_SIZE`]) so tests can
//!   force paging.
//! - `POST /api/v1/dashboard` → 200 and the stored dashboard.
//! - `GET /api/v1/dashboard/{id}` → 200 and the stored dashboard, or 404.
//! - `PUT /api/v1/dashboard/{id}` → 200 and the replaced dashboard (same `id` and
//!   `created_at`, new `modified_at`), or 404.
//! - `DELETE /api/v1/dashboard/{id}` → 200 `{"deleted_dashboard_id": id}`, or 404.
//!
//! A stored dashboard is the submitted body with the read-only fields set by the server: `id`
//! (`abc-def-ghi`), `url` (`/dashboard/<id>/<slug-of-title>`), `created_at`, `modified_at`,
//! `author_handle`, and an integer `id` on every widget that had none (group members too);
//! `description` defaults to `null` and `is_read_only` to `false`.
//!
//! Every route needs both `DD-API-KEY` and `DD-APPLICATION-KEY` (set with
//! [`FakeDatadog::set_app_key`]), else 403 `{"errors":["Forbidden"]}`; errors are
//! `{"errors":["…"]}`. Requests go through the fault plan like every other route, and each
//! answered request is logged in [`FakeDatadog::seen`].

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Response};
use axum::routing::get;
use rand::{Rng, SeedableRng};
use regex::Regex;
use serde_json::{Map, Value, json};

use super::fake_datadog::{FakeDatadog, Inner, Seen, Shared, errors, keys_ok, respond};

/// The list endpoint's page size unless a test sets another.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Who "created" every dashboard in the fake.
pub const AUTHOR_HANDLE: &str = "infra-health-fake@example.com";

/// The longest gap `fill(last, N)` may bridge, in seconds.
pub const MAX_FILL_LAST: u64 = 600;

/// Top-level keys Datadog knows; any other key is refused.
const KNOWN_KEYS: &[&str] = &[
    "title",
    "description",
    "layout_type",
    "widgets",
    "template_variables",
    "template_variable_presets",
    "notify_list",
    "reflow_type",
    "tags",
    "id",
    "url",
    "created_at",
    "modified_at",
    "author_handle",
    "is_read_only",
    "restricted_roles",
];

/// Keys the server sets; whatever a client sends for them is ignored.
const READ_ONLY_KEYS: &[&str] = &["id", "url", "created_at", "modified_at", "author_handle"];

const WIDGET_TYPES: &[&str] = &[
    "group",
    "query_table",
    "timeseries",
    "query_value",
    "note",
    "toplist",
    "distribution",
    "check_status",
    "free_text",
    "heatmap",
    "manage_status",
];

// Datadog's lists, copied here on purpose rather than imported from `infra_health::dashboard`:
// the fake stands for Datadog, and a mistake in the crate's lists must not pass both sides.
const COMPARATORS: &[&str] = &[">", ">=", "<", "<=", "="];

const PALETTES: &[&str] = &[
    "blue",
    "custom_bg",
    "custom_image",
    "custom_text",
    "gray_on_white",
    "grey",
    "green",
    "orange",
    "red",
    "red_on_white",
    "white_on_gray",
    "white_on_green",
    "green_on_white",
    "white_on_red",
    "white_on_yellow",
    "yellow_on_white",
    "black_on_light_yellow",
    "black_on_light_green",
    "black_on_light_red",
];

static FILL_LAST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"fill\(\s*last\s*,\s*(\d+)\s*\)").expect("fill regex"));

/// The dashboards a fake holds, in [`Inner`].
#[derive(Debug)]
pub struct DashboardStore {
    /// Stored dashboards by id.
    pub by_id: HashMap<String, Value>,
    /// Ids in creation order (the list endpoint's order).
    pub order: Vec<String>,
    /// The most summaries one list request returns.
    pub page_size: usize,
    /// Successful `POST`s (pre-seeded dashboards are not counted).
    pub creates: usize,
    /// Successful `PUT`s.
    pub updates: usize,
    /// Successful `DELETE`s.
    pub deletes: usize,
    id_seq: u64,
    widget_seq: i64,
    /// Monitors and metric tag configurations (see [`super::fake_monitors`]).
    pub side: super::fake_monitors::SideStore,
}

impl Default for DashboardStore {
    fn default() -> Self {
        DashboardStore {
            by_id: HashMap::new(),
            order: Vec::new(),
            page_size: DEFAULT_PAGE_SIZE,
            creates: 0,
            updates: 0,
            deletes: 0,
            id_seq: 0,
            widget_seq: 0,
            side: Default::default(),
        }
    }
}

impl DashboardStore {
    /// A fresh, unused `abc-def-ghi` id (reproducible from fake to fake).
    fn new_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let mut rng = rand::rngs::StdRng::seed_from_u64(self.id_seq);
            self.id_seq += 1;
            let mut id = String::with_capacity(11);
            for i in 0..9u32 {
                if i > 0 && i.is_multiple_of(3) {
                    id.push('-');
                }
                id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
            }
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    /// Give every widget without an integer `id` one, group members included.
    fn number_widgets(&mut self, dashboard: &mut Value) {
        let highest = max_widget_id(dashboard.get("widgets"));
        self.widget_seq = self.widget_seq.max(highest);
        if let Some(widgets) = dashboard.get_mut("widgets") {
            self.number_list(widgets);
        }
    }

    fn number_list(&mut self, widgets: &mut Value) {
        let Some(list) = widgets.as_array_mut() else {
            return;
        };
        for widget in list.iter_mut().filter_map(Value::as_object_mut) {
            if !widget.get("id").is_some_and(Value::is_i64) {
                self.widget_seq += 1;
                widget.insert("id".into(), json!(self.widget_seq));
            }
            if let Some(nested) = widget
                .get_mut("definition")
                .and_then(|d| d.get_mut("widgets"))
            {
                self.number_list(nested);
            }
        }
    }

    /// Store `body` as a new dashboard; its id.
    fn insert(&mut self, body: Map<String, Value>, now: &str) -> String {
        let id = self.new_id();
        let dashboard = self.stamp(body, &id, now, now);
        self.by_id.insert(id.clone(), dashboard);
        self.order.push(id.clone());
        id
    }

    /// `body` with the server's fields set: what GET returns.
    fn stamp(
        &mut self,
        mut body: Map<String, Value>,
        id: &str,
        created_at: &str,
        modified_at: &str,
    ) -> Value {
        for key in READ_ONLY_KEYS {
            body.remove(*key);
        }
        let title = body.get("title").and_then(Value::as_str).unwrap_or("");
        let url = format!("/dashboard/{id}/{}", slug(title));
        body.insert("id".into(), json!(id));
        body.insert("url".into(), json!(url));
        body.insert("created_at".into(), json!(created_at));
        body.insert("modified_at".into(), json!(modified_at));
        body.insert("author_handle".into(), json!(AUTHOR_HANDLE));
        body.entry("description").or_insert(Value::Null);
        body.entry("is_read_only").or_insert(json!(false));
        let mut dashboard = Value::Object(body);
        self.number_widgets(&mut dashboard);
        dashboard
    }
}

fn max_widget_id(widgets: Option<&Value>) -> i64 {
    widgets
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|w| {
            let own = w.get("id").and_then(Value::as_i64).unwrap_or(0);
            let nested = max_widget_id(w.get("definition").and_then(|d| d.get("widgets")));
            own.max(nested)
        })
        .max()
        .unwrap_or(0)
}

/// Datadog's URL slug of a title: lowercase alphanumerics joined by single dashes.
fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The fake's "now" in Datadog's timestamp format.
fn timestamp(inner: &Inner) -> String {
    let now = match inner.now {
        Some(secs) => chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default(),
        None => chrono::Utc::now(),
    };
    now.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The summary the list endpoint gives for a stored dashboard.
fn summary(d: &Value) -> Value {
    let field = |k: &str| d.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "id": field("id"),
        "title": field("title"),
        "description": field("description"),
        "layout_type": field("layout_type"),
        "url": field("url"),
        "created_at": field("created_at"),
        "modified_at": field("modified_at"),
        "author_handle": field("author_handle"),
        "is_read_only": d.get("is_read_only").cloned().unwrap_or(json!(false)),
    })
}

// ---- schema checks -------------------------------------------------------------------------

/// Parse and check a create/replace body; the object to store or the 400 message.
fn checked_body(raw: &[u8]) -> Result<Map<String, Value>, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(body) = v else {
        return Err("dashboard body must be a JSON object".into());
    };
    if let Some(unknown) = body.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "Additional properties are not allowed ('{unknown}' was unexpected)"
        ));
    }
    match body.get("title") {
        Some(Value::String(t)) if !t.is_empty() => {}
        Some(Value::String(_)) => return Err("title: must not be empty".into()),
        Some(_) => return Err("title: must be a string".into()),
        None => return Err("title: required".into()),
    }
    match body.get("layout_type").and_then(Value::as_str) {
        Some("ordered" | "free") => {}
        Some(other) => {
            return Err(format!(
                "layout_type: '{other}' is not one of 'ordered', 'free'"
            ));
        }
        None => return Err("layout_type: required, 'ordered' or 'free'".into()),
    }
    let widgets = body.get("widgets").ok_or("widgets: required")?;
    check_widgets(widgets, "widgets")?;
    check_tree(widgets, "widgets")?;
    if let Some(vars) = body.get("template_variables") {
        check_template_variables(vars)?;
    }
    Ok(body)
}

/// Each widget is an object with a `definition` of a known `type`; groups recurse.
fn check_widgets(widgets: &Value, path: &str) -> Result<(), String> {
    let list = widgets
        .as_array()
        .ok_or(format!("{path}: must be an array"))?;
    for (i, widget) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let definition = widget
            .as_object()
            .ok_or(format!("{at}: widget must be an object"))?
            .get("definition")
            .and_then(Value::as_object)
            .ok_or(format!("{at}: widget needs a definition object"))?;
        let kind = definition
            .get("type")
            .and_then(Value::as_str)
            .ok_or(format!("{at}: definition needs a string type"))?;
        if !WIDGET_TYPES.contains(&kind) {
            return Err(format!("{at}: unknown widget type '{kind}'"));
        }
        if kind == "group" {
            let nested = definition
                .get("widgets")
                .ok_or(format!("{at}: group definition needs a widgets array"))?;
            check_widgets(nested, &format!("{at}.definition.widgets"))?;
        }
    }
    Ok(())
}

/// Conditional formats and metric queries, anywhere in the widget tree.
fn check_tree(v: &Value, path: &str) -> Result<(), String> {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                let at = format!("{path}.{key}");
                if key == "conditional_formats" {
                    check_conditional_formats(child, &at)?;
                }
                if (key == "q" || key == "query")
                    && let Some(query) = child.as_str()
                {
                    check_query(query, &at)?;
                }
                check_tree(child, &at)?;
            }
        }
        Value::Array(list) => {
            for (i, child) in list.iter().enumerate() {
                check_tree(child, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_conditional_formats(formats: &Value, path: &str) -> Result<(), String> {
    let list = formats
        .as_array()
        .ok_or(format!("{path}: must be an array"))?;
    for (i, format) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let format = format
            .as_object()
            .ok_or(format!("{at}: must be an object"))?;
        match format.get("comparator").and_then(Value::as_str) {
            Some(c) if COMPARATORS.contains(&c) => {}
            Some(c) => {
                return Err(format!(
                    "{at}: comparator '{c}' is not one of {}",
                    COMPARATORS.join(", ")
                ));
            }
            None => return Err(format!("{at}: comparator required")),
        }
        if !format.get("value").is_some_and(Value::is_number) {
            return Err(format!("{at}: value must be a number"));
        }
        match format.get("palette").and_then(Value::as_str) {
            Some(p) if PALETTES.contains(&p) => {}
            Some(p) => {
                return Err(format!(
                    "{at}: palette '{p}' is not one of {}",
                    PALETTES.join(", ")
                ));
            }
            None => return Err(format!("{at}: palette required")),
        }
    }
    Ok(())
}

fn check_query(query: &str, path: &str) -> Result<(), String> {
    for caps in FILL_LAST.captures_iter(query) {
        let seconds = caps[1].parse::<u64>().unwrap_or(u64::MAX);
        if seconds > MAX_FILL_LAST {
            return Err(format!(
                "{path}: fill(last, N) accepts at most {MAX_FILL_LAST} seconds, got {}",
                &caps[1]
            ));
        }
    }
    Ok(())
}

fn check_template_variables(vars: &Value) -> Result<(), String> {
    let list = vars
        .as_array()
        .ok_or("template_variables: must be an array")?;
    for (i, var) in list.iter().enumerate() {
        if !var.get("name").is_some_and(Value::is_string) {
            return Err(format!(
                "template_variables[{i}]: must be an object with a string name"
            ));
        }
    }
    Ok(())
}

// ---- routes --------------------------------------------------------------------------------

/// The dashboard routes, merged into every fake's router.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/dashboard", get(list).post(create))
        .route(
            "/api/v1/dashboard/{id}",
            get(get_one).put(replace).delete(delete),
        )
        .merge(super::fake_monitors::routes())
}

type Outcome = Result<Value, (u16, String)>;

fn not_found() -> (u16, String) {
    (404, "Dashboard not found".into())
}

/// Check both keys, run `f` on the state, log the request and answer (200 on success).
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
    let status = outcome.as_ref().map_or_else(|(s, _)| *s, |_| 200);
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
        Ok(v) => respond(200, v),
        Err((status, msg)) => errors(status, &msg),
    }
}

fn number_param(params: &HashMap<String, String>, name: &str) -> Result<Option<usize>, String> {
    params
        .get(name)
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| format!("{name}: '{v}' is not a non-negative integer"))
        })
        .transpose()
}

async fn list(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response<Body> {
    handle(&shared, "GET", "/api/v1/dashboard", &headers, 0, |inner| {
        let store = &inner.dashboards;
        let count = number_param(&params, "count").map_err(|e| (400, e))?;
        let start = number_param(&params, "start").map_err(|e| (400, e))?;
        let count = count.unwrap_or(store.page_size).min(store.page_size);
        let page: Vec<Value> = store
            .order
            .iter()
            .skip(start.unwrap_or(0))
            .take(count)
            .filter_map(|id| store.by_id.get(id))
            .map(summary)
            .collect();
        Ok(json!({ "dashboards": page }))
    })
}

async fn create(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    handle(
        &shared,
        "POST",
        "/api/v1/dashboard",
        &headers,
        body.len(),
        |inner| {
            let dashboard = checked_body(&body).map_err(|e| (400, e))?;
            let now = timestamp(inner);
            let id = inner.dashboards.insert(dashboard, &now);
            inner.dashboards.creates += 1;
            Ok(inner.dashboards.by_id[&id].clone())
        },
    )
}

async fn get_one(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let path = format!("/api/v1/dashboard/{id}");
    handle(&shared, "GET", &path, &headers, 0, |inner| {
        inner
            .dashboards
            .by_id
            .get(&id)
            .cloned()
            .ok_or_else(not_found)
    })
}

async fn replace(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = format!("/api/v1/dashboard/{id}");
    handle(&shared, "PUT", &path, &headers, body.len(), |inner| {
        let created_at = inner
            .dashboards
            .by_id
            .get(&id)
            .ok_or_else(not_found)?
            .get("created_at")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let dashboard = checked_body(&body).map_err(|e| (400, e))?;
        let now = timestamp(inner);
        let store = &mut inner.dashboards;
        let stored = store.stamp(dashboard, &id, &created_at, &now);
        store.by_id.insert(id.clone(), stored.clone());
        store.updates += 1;
        Ok(stored)
    })
}

async fn delete(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    let path = format!("/api/v1/dashboard/{id}");
    handle(&shared, "DELETE", &path, &headers, 0, |inner| {
        let store = &mut inner.dashboards;
        store.by_id.remove(&id).ok_or_else(not_found)?;
        store.order.retain(|x| x != &id);
        store.deletes += 1;
        Ok(json!({ "deleted_dashboard_id": id }))
    })
}

// ---- test-side accessors -------------------------------------------------------------------

impl FakeDatadog {
    /// Every stored dashboard (full, as GET returns it), in creation order.
    pub fn dashboards(&self) -> Vec<Value> {
        self.with(|i| {
            let store = &i.dashboards;
            store
                .order
                .iter()
                .filter_map(|id| store.by_id.get(id).cloned())
                .collect()
        })
    }

    /// One stored dashboard, as GET returns it.
    pub fn dashboard(&self, id: &str) -> Option<Value> {
        self.with(|i| i.dashboards.by_id.get(id).cloned())
    }

    /// The most summaries one list request returns (default [`DEFAULT_PAGE_SIZE`]); `count`
    /// is clamped to it.
    pub fn set_dashboard_page_size(&self, n: usize) {
        self.with(|i| i.dashboards.page_size = n);
    }

    /// Pre-seed a dashboard as if made by hand in the UI: stored without schema checks and
    /// without counting as a create; its new id.
    pub fn insert_dashboard(&self, dashboard: Value) -> String {
        let Value::Object(body) = dashboard else {
            panic!("insert_dashboard needs a JSON object");
        };
        self.with(|i| {
            let now = timestamp(i);
            i.dashboards.insert(body, &now)
        })
    }

    /// How many dashboards `POST /api/v1/dashboard` created.
    pub fn dashboard_creates(&self) -> usize {
        self.with(|i| i.dashboards.creates)
    }

    /// How many dashboards `PUT /api/v1/dashboard/{id}` replaced.
    pub fn dashboard_updates(&self) -> usize {
        self.with(|i| i.dashboards.updates)
    }

    /// How many dashboards `DELETE /api/v1/dashboard/{id}` removed.
    pub fn dashboard_deletes(&self) -> usize {
        self.with(|i| i.dashboards.deletes)
    }
}
