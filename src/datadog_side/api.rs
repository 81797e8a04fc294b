//! The Monitors API (`/api/v1/monitor`) and the metric tag configuration API
//! (`/api/v2/metrics/{name}/tags`), through the one Datadog [`Client`].
//!
//! Every call retries like metric delivery does (429, 5xx, transport errors), carries both
//! keys in headers only, and turns a 404 into `None` where "not there" is an answer. A monitor
//! is validated (`POST /api/v1/monitor/validate`) before it is created or updated, so a query
//! Datadog would refuse is reported with Datadog's own words and nothing is half-applied.

use reqwest::Method;
use serde_json::Value;

use super::monitors::MANAGED_BY;
use crate::sinks::datadog::{ApiError, Client};

/// Monitors asked for per list page.
pub const MONITOR_PAGE_SIZE: usize = 100;

/// Give up listing after this many pages (100,000 monitors).
const MAX_PAGES: usize = 1000;

/// The Datadog side's APIs of one site, with both keys.
pub struct SideApi {
    client: Client,
}

fn is_404(e: &ApiError) -> bool {
    matches!(e, ApiError::BadRequest { status: 404, .. })
}

impl SideApi {
    pub fn new(client: Client) -> SideApi {
        SideApi { client }
    }

    pub fn site(&self) -> &str {
        self.client.site()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.client.call_json(method, path, query, body).await
    }

    /// Every monitor tagged `managed-by:infra-health` and `env:<env>`, paging through the list.
    pub async fn managed_monitors(&self, env: &str) -> Result<Vec<Value>, ApiError> {
        let path = "/api/v1/monitor";
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let query = [
                ("monitor_tags", format!("{MANAGED_BY},env:{env}")),
                ("page", page.to_string()),
                ("page_size", MONITOR_PAGE_SIZE.to_string()),
            ];
            let answer = self.call(Method::GET, path, &query, None).await?;
            let list = match answer {
                Value::Array(a) => a,
                other => {
                    return Err(ApiError::BadRequest {
                        path: path.into(),
                        status: 200,
                        message: format!(
                            "expected a list of monitors, got {}",
                            other.to_string().chars().take(80).collect::<String>()
                        ),
                    });
                }
            };
            if list.is_empty() {
                break;
            }
            // The filter is Datadog's; keep only what really carries both tags.
            out.extend(list.into_iter().filter(|m| {
                let tags: Vec<&str> = m["tags"]
                    .as_array()
                    .map(|t| t.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                tags.contains(&MANAGED_BY) && tags.contains(&format!("env:{env}").as_str())
            }));
        }
        Ok(out)
    }

    /// `POST /api/v1/monitor/validate`: `Err` with Datadog's reasons when it refuses it.
    pub async fn validate_monitor(&self, body: &Value) -> Result<Result<(), String>, ApiError> {
        match self
            .call(Method::POST, "/api/v1/monitor/validate", &[], Some(body))
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(ApiError::BadRequest {
                status: 400,
                message,
                ..
            }) => Ok(Err(message)),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v1/monitor`; the new monitor's id.
    pub async fn create_monitor(&self, body: &Value) -> Result<i64, ApiError> {
        let answer = self
            .call(Method::POST, "/api/v1/monitor", &[], Some(body))
            .await?;
        answer["id"].as_i64().ok_or_else(|| ApiError::BadRequest {
            path: "/api/v1/monitor".into(),
            status: 200,
            message: "Datadog created the monitor but returned no id".into(),
        })
    }

    /// `PUT /api/v1/monitor/{id}`.
    pub async fn update_monitor(&self, id: i64, body: &Value) -> Result<(), ApiError> {
        self.call(
            Method::PUT,
            &format!("/api/v1/monitor/{id}"),
            &[],
            Some(body),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /api/v1/monitor/{id}` (a monitor already gone is not an error).
    pub async fn delete_monitor(&self, id: i64) -> Result<(), ApiError> {
        match self
            .call(Method::DELETE, &format!("/api/v1/monitor/{id}"), &[], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_404(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn tags_path(metric: &str) -> String {
        format!("/api/v2/metrics/{metric}/tags")
    }

    /// `GET /api/v2/metrics/{name}/tags`; `None` when the metric has no tag configuration.
    pub async fn tag_config(&self, metric: &str) -> Result<Option<Value>, ApiError> {
        match self
            .call(Method::GET, &Self::tags_path(metric), &[], None)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_404(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST` (create) or `PATCH` (update) `/api/v2/metrics/{name}/tags`.
    pub async fn put_tag_config(
        &self,
        metric: &str,
        body: &Value,
        create: bool,
    ) -> Result<(), ApiError> {
        let method = if create { Method::POST } else { Method::PATCH };
        self.call(method, &Self::tags_path(metric), &[], Some(body))
            .await
            .map(|_| ())
    }

    /// `DELETE /api/v2/metrics/{name}/tags` (already gone is not an error).
    pub async fn delete_tag_config(&self, metric: &str) -> Result<(), ApiError> {
        match self
            .call(Method::DELETE, &Self::tags_path(metric), &[], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_404(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
