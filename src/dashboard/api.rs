//! `dashboard push` and `dashboard diff`: the Dashboards API (`/api/v1/dashboard`).
//!
//! A push is an idempotent upsert, so running it from every deploy (or a CronJob) keeps one
//! dashboard, not one per run:
//! 1. the id stored in the state store by the last push → `PUT` it (if Datadog still has it);
//! 2. else a dashboard with exactly this title, found by paging through `GET /api/v1/dashboard`
//!    (the API has no title filter) → `PUT` it;
//! 3. else `POST` a new one.
//!
//! The id is stored after every push. Two dashboards with the same title is an error naming
//! both ids: guessing which one to overwrite could destroy somebody's work.
//!
//! The API needs an application key as well as the API key (`DD_APP_KEY`, or `DD_APP_KEY_FILE`)
//! and is reached at the same site and `DD_URL` override as the metrics sink. Calls retry on
//! 429, 5xx and transport errors like metric delivery does; keys never appear in messages.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diff::{self, Change};
use crate::config::Plan;
use crate::sinks::datadog::{ApiError, Client, Purpose};
use crate::state::StateStore;

/// A failed Dashboards API call. A 403 here is about the application key (or its scopes) as
/// much as the API key, so it says so instead of the metrics sink's "API key rejected".
#[derive(Debug, thiserror::Error)]
pub enum DashboardApiError {
    #[error(
        "{path}: Datadog ({site}) refused the keys (HTTP {status}); check DD_API_KEY, DD_APP_KEY \
         (with the dashboards_read and dashboards_write scopes if it is scoped) and DD_SITE"
    )]
    Forbidden {
        path: String,
        site: String,
        status: u16,
    },
    #[error(transparent)]
    Api(ApiError),
}

impl From<ApiError> for DashboardApiError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Forbidden { path, site, status } => {
                DashboardApiError::Forbidden { path, site, status }
            }
            other => DashboardApiError::Api(other),
        }
    }
}

/// How many dashboards one list page asks for.
pub const PAGE_SIZE: usize = 100;

/// Give up on listing after this many pages (100,000 dashboards): a server that keeps
/// answering full pages is broken.
const MAX_PAGES: usize = 1000;

/// The Dashboards API of one site, with both keys.
pub struct DashboardApi {
    client: Client,
}

/// What the state store remembers about a pushed dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredDashboard {
    pub id: String,
    pub title: String,
    pub site: String,
    pub pushed_at: DateTime<Utc>,
}

/// Where the live dashboard was found.
#[derive(Debug, Clone, PartialEq)]
pub enum Located {
    /// By the id a previous push stored.
    Stored { id: String, live: Value },
    /// By its title.
    ByTitle { id: String, live: Value },
    /// Nowhere: a push creates it.
    Missing,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    pub id: String,
    pub created: bool,
    /// What the update changed (empty for a new dashboard, or an update with no change).
    pub changes: Vec<Change>,
    /// Where to open it, when Datadog said.
    pub url: Option<String>,
}

impl DashboardApi {
    /// The API for the plan's `[sink]` settings and the environment's keys. Both keys are
    /// required; the error says which is missing and how to provide it.
    pub fn from_env(plan: &Plan, http: reqwest::Client) -> anyhow::Result<DashboardApi> {
        Ok(DashboardApi::new(Client::from_env(
            &plan.sink.datadog,
            http,
            Purpose::Dashboards,
        )?))
    }

    /// The API through `client`, which must carry an application key.
    pub fn new(client: Client) -> DashboardApi {
        DashboardApi { client }
    }

    pub fn site(&self) -> &str {
        self.client.site()
    }

    /// Where a dashboard opens in the browser, from the `url` path Datadog returns.
    pub fn browser_url(&self, path: &str) -> String {
        let site = self.client.site();
        let host = if ["datadoghq.com", "datadoghq.eu", "ddog-gov.com"].contains(&site) {
            format!("app.{site}")
        } else {
            site.to_string()
        };
        format!("https://{host}{path}")
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, DashboardApiError> {
        Ok(self.client.call_json(method, path, query, body).await?)
    }

    /// `GET /api/v1/dashboard/{id}`; `None` when it does not exist (any more).
    pub async fn get(&self, id: &str) -> Result<Option<Value>, DashboardApiError> {
        match self
            .call(Method::GET, &format!("/api/v1/dashboard/{id}"), &[], None)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(DashboardApiError::Api(ApiError::BadRequest { status: 404, .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ids of every dashboard titled exactly `title`, paging through the list.
    pub async fn find_by_title(&self, title: &str) -> Result<Vec<String>, DashboardApiError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            dashboards: Vec<Summary>,
        }
        #[derive(Deserialize)]
        struct Summary {
            id: String,
            #[serde(default)]
            title: String,
        }
        let mut found = Vec::new();
        let mut start = 0;
        for _ in 0..MAX_PAGES {
            let query = [
                ("count", PAGE_SIZE.to_string()),
                ("start", start.to_string()),
            ];
            let page = self
                .call(Method::GET, "/api/v1/dashboard", &query, None)
                .await?;
            let page: Page = serde_json::from_value(page).map_err(|e| ApiError::BadRequest {
                path: "/api/v1/dashboard".into(),
                status: 200,
                message: format!("unexpected list answer: {e}"),
            })?;
            let n = page.dashboards.len();
            found.extend(
                page.dashboards
                    .into_iter()
                    .filter(|d| d.title == title)
                    .map(|d| d.id),
            );
            // Only an empty page ends the list: a server may answer fewer than asked per page.
            if n == 0 {
                return Ok(found);
            }
            start += n;
        }
        Ok(found)
    }

    fn state_key(&self, title: &str) -> String {
        let slug: String = title
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        format!(
            "dashboards/{}/{}.json",
            self.client.site(),
            slug.trim_matches('-')
        )
    }

    /// Find the live dashboard for `title`: the stored id first, then the title.
    pub async fn locate(&self, state: &StateStore, title: &str) -> anyhow::Result<Located> {
        let key = self.state_key(title);
        let stored: Option<StoredDashboard> = state.get_json(&key).await?;
        if let Some(s) = stored {
            match self.get(&s.id).await? {
                Some(live) => return Ok(Located::Stored { id: s.id, live }),
                None => tracing::warn!(
                    "the dashboard {} stored by the last push no longer exists on {}; looking for {title:?} by title",
                    s.id,
                    self.client.site()
                ),
            }
        }
        let ids = self.find_by_title(title).await?;
        match ids.as_slice() {
            [] => Ok(Located::Missing),
            [id] => match self.get(id).await? {
                Some(live) => Ok(Located::ByTitle {
                    id: id.clone(),
                    live,
                }),
                None => Ok(Located::Missing),
            },
            many => anyhow::bail!(
                "{} dashboards on {} are titled {title:?} (ids {}); delete the extra ones or give \
                 this config's dashboard another title in [dashboard] title",
                many.len(),
                self.client.site(),
                many.join(", ")
            ),
        }
    }

    /// What a push of `dashboard` would change: `None` when it would create it.
    pub async fn diff(
        &self,
        state: &StateStore,
        dashboard: &Value,
    ) -> anyhow::Result<Option<(String, Vec<Change>)>> {
        let title = title_of(dashboard)?;
        Ok(match self.locate(state, &title).await? {
            Located::Stored { id, live } | Located::ByTitle { id, live } => {
                Some((id, diff::changes(dashboard, &live)))
            }
            Located::Missing => None,
        })
    }

    /// Create or update the dashboard, and remember its id.
    pub async fn push(&self, state: &StateStore, dashboard: &Value) -> anyhow::Result<PushOutcome> {
        let title = title_of(dashboard)?;
        let (answer, id, created, changes) = match self.locate(state, &title).await? {
            Located::Stored { id, live } | Located::ByTitle { id, live } => {
                let changes = diff::changes(dashboard, &live);
                let answer = self
                    .call(
                        Method::PUT,
                        &format!("/api/v1/dashboard/{id}"),
                        &[],
                        Some(dashboard),
                    )
                    .await?;
                (answer, id, false, changes)
            }
            Located::Missing => {
                let answer = self
                    .call(Method::POST, "/api/v1/dashboard", &[], Some(dashboard))
                    .await?;
                let id = answer
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        anyhow::anyhow!("Datadog created the dashboard but returned no id")
                    })?
                    .to_string();
                (answer, id, true, Vec::new())
            }
        };
        let record = StoredDashboard {
            id: id.clone(),
            title: title.clone(),
            site: self.client.site().to_string(),
            pushed_at: Utc::now(),
        };
        if let Err(e) = state.put_json(&self.state_key(&title), &record).await {
            // The dashboard is pushed; the next push finds it by title instead.
            tracing::warn!("dashboard {id} pushed, but its id could not be stored: {e}");
        }
        let url = answer
            .get("url")
            .and_then(Value::as_str)
            .map(|p| self.browser_url(p));
        Ok(PushOutcome {
            id,
            created,
            changes,
            url,
        })
    }
}

fn title_of(dashboard: &Value) -> anyhow::Result<String> {
    dashboard
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("the dashboard has no title"))
}
