//! The fake Datadog's Dashboards API v1, driven over HTTP: keys, the create → get → list (paged)
//! → replace → delete round trip, and the schema checks that refuse a bad widget by its path.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::support::fake_datadog::{FakeDatadog, Fault};

const API_KEY: &str = "0123456789abcdef0123456789abcdef";
const APP_KEY: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// A fake with the application key set.
fn fake() -> FakeDatadog {
    let dd = FakeDatadog::start(API_KEY);
    dd.set_app_key(APP_KEY);
    dd
}

/// Send `body` (if any) with both keys; the status and the JSON answer.
async fn call(dd: &FakeDatadog, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    call_as(dd, method, path, body, Some(APP_KEY), &[]).await
}

async fn call_as(
    dd: &FakeDatadog,
    method: Method,
    path: &str,
    body: Option<&Value>,
    app_key: Option<&str>,
    query: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = Client::new()
        .request(method, format!("{}{path}", dd.url))
        .header("DD-API-KEY", API_KEY)
        .query(query);
    if let Some(key) = app_key {
        req = req.header("DD-APPLICATION-KEY", key);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("request to the fake");
    let status = resp.status().as_u16();
    let json = resp.json::<Value>().await.expect("JSON answer");
    (status, json)
}

/// A small dashboard in Datadog's shape: a note and a group holding a query table.
fn board(title: &str) -> Value {
    json!({
        "title": title,
        "description": "health matrix",
        "layout_type": "ordered",
        "template_variables": [{ "name": "env", "prefix": "env", "default": "prod" }],
        "widgets": [
            { "definition": { "type": "note", "content": "hello" } },
            { "definition": {
                "type": "group",
                "layout_type": "ordered",
                "title": "Signals",
                "widgets": [
                    { "definition": {
                        "type": "query_table",
                        "requests": [{
                            "q": "max:metta.infra.status{$env} by {signal}.fill(last, 600)",
                            "aggregator": "last",
                            "conditional_formats": [
                                { "comparator": ">=", "value": 2, "palette": "white_on_red" },
                                { "comparator": "<", "value": 1, "palette": "white_on_green" }
                            ]
                        }]
                    } }
                ]
            } }
        ]
    })
}

/// The dashboard's ids in the order the paged list gives them.
async fn list_all_paged(dd: &FakeDatadog, page: usize) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let start = ids.len().to_string();
        let count = page.to_string();
        let (status, body) = call_as(
            dd,
            Method::GET,
            "/api/v1/dashboard",
            None,
            Some(APP_KEY),
            &[("start", &start), ("count", &count)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let got = body["dashboards"].as_array().expect("dashboards array");
        assert!(got.len() <= page, "page larger than {page}: {body}");
        ids.extend(
            got.iter()
                .map(|d| d["id"].as_str().expect("id").to_string()),
        );
        if got.len() < page {
            return ids;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_need_both_keys() {
    let dd = FakeDatadog::start(API_KEY);
    // No application key configured yet: even a matching header is refused.
    let (status, body) = call(&dd, Method::GET, "/api/v1/dashboard", None).await;
    assert_eq!(status, 403);
    assert_eq!(body, json!({ "errors": ["Forbidden"] }));

    dd.set_app_key(APP_KEY);
    for app_key in [None, Some("wrong")] {
        for (method, path) in [
            (Method::GET, "/api/v1/dashboard"),
            (Method::POST, "/api/v1/dashboard"),
            (Method::GET, "/api/v1/dashboard/abc-def-ghi"),
            (Method::DELETE, "/api/v1/dashboard/abc-def-ghi"),
        ] {
            let body = (method == Method::POST).then(|| board("x"));
            let (status, answer) = call_as(&dd, method, path, body.as_ref(), app_key, &[]).await;
            assert_eq!(status, 403, "{path} with app key {app_key:?}");
            assert_eq!(answer, json!({ "errors": ["Forbidden"] }));
        }
    }
    assert!(dd.dashboards().is_empty());
    assert_eq!(dd.dashboard_creates(), 0);

    let (status, body) = call(&dd, Method::GET, "/api/v1/dashboard", None).await;
    assert_eq!((status, body), (200, json!({ "dashboards": [] })));

    // Dashboard requests go through the fault plan like the intake's.
    dd.push_faults([Fault::status(503)]);
    let (status, _) = call(&dd, Method::GET, "/api/v1/dashboard", None).await;
    assert_eq!(status, 503);
    let (status, _) = call(&dd, Method::GET, "/api/v1/dashboard", None).await;
    assert_eq!(status, 200);
    let seen: Vec<(String, u16)> = dd
        .seen()
        .iter()
        .map(|s| (s.method.clone(), s.status))
        .collect();
    assert_eq!(seen.last(), Some(&("GET".to_string(), 200)));
    assert!(seen.contains(&("GET".to_string(), 503)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_round_trip_with_paging() {
    let dd = fake();
    dd.set_dashboard_page_size(2);
    let by_hand = dd.insert_dashboard(json!({
        "title": "Made in the UI",
        "layout_type": "free",
        "widgets": []
    }));

    // Create: the stored dashboard comes back with the server's fields.
    let (status, created) = call(
        &dd,
        Method::POST,
        "/api/v1/dashboard",
        Some(&board("Infra Health: CI & PRs")),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let shape = regex::Regex::new("^[a-z0-9]{3}-[a-z0-9]{3}-[a-z0-9]{3}$").expect("regex");
    assert!(shape.is_match(&id), "{id}");
    assert_ne!(id, by_hand);
    assert_eq!(
        created["url"],
        json!(format!("/dashboard/{id}/infra-health-ci-prs"))
    );
    assert_eq!(created["title"], "Infra Health: CI & PRs");
    assert_eq!(created["description"], "health matrix");
    for key in ["created_at", "modified_at", "author_handle"] {
        assert!(created[key].is_string(), "{key}: {created}");
    }
    // Every widget got an integer id, group members too, all different.
    let note_id = created["widgets"][0]["id"].as_i64().expect("note id");
    let group_id = created["widgets"][1]["id"].as_i64().expect("group id");
    let table_id = created["widgets"][1]["definition"]["widgets"][0]["id"]
        .as_i64()
        .expect("nested id");
    assert!(note_id != group_id && group_id != table_id && note_id != table_id);

    // Get: the same dashboard.
    let (status, got) = call(&dd, Method::GET, &format!("/api/v1/dashboard/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(got, created);
    assert_eq!(dd.dashboard(&id), Some(created.clone()));

    // A third dashboard, then the list in pages of two, in creation order.
    let (status, third) = call(
        &dd,
        Method::POST,
        "/api/v1/dashboard",
        Some(&board("Third")),
    )
    .await;
    assert_eq!(status, 200, "{third}");
    let third_id = third["id"].as_str().expect("id").to_string();
    assert_eq!(
        list_all_paged(&dd, 2).await,
        vec![by_hand.clone(), id.clone(), third_id.clone()]
    );
    // Without `count`, and with a `count` above the page size, a page is still two long.
    for query in [&[][..], &[("count", "100")][..]] {
        let (status, page) = call_as(
            &dd,
            Method::GET,
            "/api/v1/dashboard",
            None,
            Some(APP_KEY),
            query,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(page["dashboards"].as_array().map(Vec::len), Some(2));
    }
    let (_, page) = call_as(
        &dd,
        Method::GET,
        "/api/v1/dashboard",
        None,
        Some(APP_KEY),
        &[("start", "1"), ("count", "1")],
    )
    .await;
    let summary = &page["dashboards"][0];
    let mut keys: Vec<&str> = summary
        .as_object()
        .expect("summary")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "author_handle",
            "created_at",
            "description",
            "id",
            "is_read_only",
            "layout_type",
            "modified_at",
            "title",
            "url"
        ]
    );
    assert_eq!(summary["id"], json!(id));
    assert_eq!(summary["is_read_only"], json!(false));

    // Put: replaced in place, same id and created_at.
    let mut changed = board("Infra Health v2");
    changed["widgets"][0]["definition"]["content"] = json!("changed");
    let (status, put) = call(
        &dd,
        Method::PUT,
        &format!("/api/v1/dashboard/{id}"),
        Some(&changed),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["id"], json!(id));
    assert_eq!(put["created_at"], created["created_at"]);
    assert_eq!(
        put["url"],
        json!(format!("/dashboard/{id}/infra-health-v2"))
    );
    assert_eq!(put["widgets"][0]["definition"]["content"], "changed");
    assert_eq!(dd.dashboard(&id), Some(put));
    let (status, _) = call(
        &dd,
        Method::PUT,
        "/api/v1/dashboard/zzz-zzz-zzz",
        Some(&changed),
    )
    .await;
    assert_eq!(status, 404);

    // Delete, then it is gone.
    let path = format!("/api/v1/dashboard/{id}");
    let (status, deleted) = call(&dd, Method::DELETE, &path, None).await;
    assert_eq!(
        (status, deleted),
        (200, json!({ "deleted_dashboard_id": id }))
    );
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = call(&dd, method, &path, None).await;
        assert_eq!(
            (status, body),
            (404, json!({ "errors": ["Dashboard not found"] }))
        );
    }
    assert_eq!(list_all_paged(&dd, 2).await, vec![by_hand, third_id]);
    assert_eq!(
        (
            dd.dashboard_creates(),
            dd.dashboard_updates(),
            dd.dashboard_deletes()
        ),
        (2, 1, 1)
    );
}

/// POST `body`; the 400 message.
async fn refused(dd: &FakeDatadog, body: &Value) -> String {
    let (status, answer) = call(dd, Method::POST, "/api/v1/dashboard", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST.as_u16(), "{answer}");
    answer["errors"][0]
        .as_str()
        .expect("an error message")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_widgets_are_refused_by_path() {
    let dd = fake();
    let nested = "widgets[1].definition.widgets[0].definition.requests[0]";

    let mut bad_palette = board("Bad palette");
    bad_palette["widgets"][1]["definition"]["widgets"][0]["definition"]["requests"][0]["conditional_formats"]
        [1]["palette"] = json!("purple");
    let msg = refused(&dd, &bad_palette).await;
    assert!(
        msg.starts_with(&format!(
            "{nested}.conditional_formats[1]: palette 'purple'"
        )),
        "{msg}"
    );

    let mut long_fill = board("Long fill");
    long_fill["widgets"][1]["definition"]["widgets"][0]["definition"]["requests"][0]["q"] =
        json!("max:metta.infra.status{*} by {signal}.fill(last,900)");
    let msg = refused(&dd, &long_fill).await;
    assert!(msg.starts_with(&format!("{nested}.q: ")), "{msg}");
    assert!(
        msg.contains("fill(last, N) accepts at most 600 seconds"),
        "{msg}"
    );

    let mut unknown_type = board("Unknown type");
    unknown_type["widgets"][1]["definition"]["widgets"][0]["definition"]["type"] = json!("sparkle");
    let msg = refused(&dd, &unknown_type).await;
    assert!(
        msg.starts_with("widgets[1].definition.widgets[0]: unknown widget type"),
        "{msg}"
    );

    let mut unknown_key = board("Unknown key");
    unknown_key["graphs"] = json!([]);
    assert!(refused(&dd, &unknown_key).await.contains("'graphs'"));

    let mut bad_vars = board("Bad variables");
    bad_vars["template_variables"] = json!([{ "prefix": "env" }]);
    assert!(
        refused(&dd, &bad_vars)
            .await
            .starts_with("template_variables[0]")
    );

    for (key, value) in [("title", json!("")), ("layout_type", json!("grid"))] {
        let mut bad = board("Bad top level");
        bad[key] = value;
        assert!(refused(&dd, &bad).await.starts_with(key));
    }

    // Nothing was stored; a replace is checked the same way.
    assert!(dd.dashboards().is_empty());
    let id = dd.insert_dashboard(board("Seeded"));
    let (status, _) = call(
        &dd,
        Method::PUT,
        &format!("/api/v1/dashboard/{id}"),
        Some(&long_fill),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(dd.dashboard_updates(), 0);
    assert_eq!(dd.dashboard(&id).expect("seeded")["title"], json!("Seeded"));
}
