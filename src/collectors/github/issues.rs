//! `github_issues`: the bug queue — open issues per label, and the change since the last run.
//!
//! One listing per label (`labels=a,b` would mean "a AND b"), `state=open`, every page
//! conditional. The issues endpoint also returns pull requests; those (items with a
//! `pull_request` key) are dropped. The previous run's counts are kept in the state store for
//! `issues.open_change`; the first run has no previous count and so sends no change (missing is
//! unknown, never a placeholder 0), and a dry run does not overwrite them.
//!
//! Issues opened and closed within `window` come from the same open listing (creation time) plus
//! one more listing per label, `state=closed&since=DAY` (an issue closed in the window was
//! updated in it; `since` is rounded down to the day so the URL keeps answering 304).
//!
//! | signal | value (tags `repo`, `label`) |
//! | --- | --- |
//! | `issues.open` | open issues carrying the label (a level) |
//! | `issues.open_change` | `issues.open` minus its value at the previous run |
//! | `issues.opened` | issues with the label created within `window`; ids = issue numbers |
//! | `issues.closed` | issues with the label closed within `window`; ids = issue numbers |

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{GithubSource, Repo, counted_observation, day_floor, save_state, window};
use crate::collectors::{
    BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind,
};
use crate::github::cache::PageCache;
use crate::github::client::{GithubClient, decode};
use crate::github::models::Issue;
use crate::observation::SelfMetric;
use crate::observation::{Observation, Value};

pub const KIND: CollectorKind = CollectorKind {
    name: "github_issues",
    description: "open issues per label (pull requests excluded) and the change since the last run",
    signals: &[
        "issues.open",
        "issues.open_change",
        "issues.opened",
        "issues.closed",
    ],
    tags: &["repo", "label"],
    self_metrics: super::SELF_METRICS,
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuesOptions {
    labels: Vec<String>,
    #[serde(default)]
    window: Option<String>,
}

pub struct IssuesCollector {
    source: GithubSource,
    labels: Vec<String>,
    window: TimeDelta,
}

/// Bumped when what the page cache holds changes shape: older pages are dropped.
const STATE_VERSION: u32 = 2;

/// What is kept of an issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IssueItem {
    number: u64,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    closed_at: Option<DateTime<Utc>>,
}

/// Decode a page of the issues listing, dropping pull requests.
fn issue_items(
    key: &str,
    body: &[u8],
) -> Result<Vec<IssueItem>, crate::github::error::GithubError> {
    let items: Vec<Issue> = decode(key, body)?;
    Ok(items
        .into_iter()
        .filter(|i| i.pull_request.is_none())
        .map(|i| IssueItem {
            number: i.number,
            created_at: i.created_at,
            closed_at: i.closed_at,
        })
        .collect())
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let (source, o): (_, IssuesOptions) = GithubSource::build_with(ctx)?;
    if o.labels.is_empty() || o.labels.iter().any(|l| l.trim().is_empty()) {
        return Err(BuildError::at(
            "labels",
            "list at least one non-empty label",
        ));
    }
    Ok(Arc::new(IssuesCollector {
        source,
        labels: o.labels,
        window: window(&o.window)?,
    }))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IssuesState {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    pages: PageCache,
    /// Open count per label at the previous run.
    #[serde(default)]
    previous: BTreeMap<String, u64>,
}

impl IssuesCollector {
    async fn collect_repo(
        &self,
        ctx: &CollectContext,
        client: Arc<GithubClient>,
        repo: &Repo,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let key = self.source.state_key(repo, "issues");
        let mut state: IssuesState = ctx.state.get_json(&key).await?.unwrap_or_default();
        if state.version != STATE_VERSION {
            state.version = STATE_VERSION;
            state.pages = PageCache::default();
        }
        let window_start = now - self.window;
        let in_window = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t >= window_start && t <= now);
        let since = day_floor(window_start)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut out = Vec::new();
        let mut counts = BTreeMap::new();
        for label in &self.labels {
            let encoded = super::query_param(label);
            let first = format!(
                "/repos/{}/issues?state=open&labels={encoded}&per_page=100",
                repo.full
            );
            let open_items = client
                .list(&mut state.pages, first, issue_items, |_| false)
                .await?;
            let closed_first = format!(
                "/repos/{}/issues?state=closed&labels={encoded}&since={since}&per_page=100",
                repo.full
            );
            let closed_items = client
                .list(&mut state.pages, closed_first, issue_items, |_| false)
                .await?;
            let open = open_items.len() as u64;
            counts.insert(label.clone(), open);
            let tag = |o: Observation| o.with_tag("repo", &repo.full).with_tag("label", label);
            out.push(tag(Observation::new(
                "issues.open",
                Value::Number(open as f64),
                ctx.now,
            )));
            if let Some(prev) = state.previous.get(label) {
                out.push(tag(Observation::new(
                    "issues.open_change",
                    Value::Number(open as f64 - *prev as f64),
                    ctx.now,
                )));
            }
            let opened: BTreeSet<u64> = open_items
                .iter()
                .chain(&closed_items)
                .filter(|i| in_window(i.created_at))
                .map(|i| i.number)
                .collect();
            let closed: BTreeSet<u64> = closed_items
                .iter()
                .filter(|i| in_window(i.closed_at))
                .map(|i| i.number)
                .collect();
            let ids = |set: BTreeSet<u64>| set.into_iter().map(|n| n.to_string()).collect();
            out.push(tag(counted_observation(
                "issues.opened",
                ids(opened),
                ctx.now,
            )));
            out.push(tag(counted_observation(
                "issues.closed",
                ids(closed),
                ctx.now,
            )));
        }
        state.pages.retain_touched();
        state.previous = counts;
        save_state(ctx, &key, &state).await?;
        Ok(out)
    }
}

impl Collector for IssuesCollector {
    fn collect<'a>(
        &'a self,
        ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>> {
        Box::pin(self.source.collect_each(ctx, move |client, repo, now| {
            Box::pin(async move { self.collect_repo(ctx, client, &repo, now).await })
        }))
    }

    fn self_metrics(&self) -> Vec<SelfMetric> {
        self.source.self_metrics()
    }

    fn coverage(&self) -> Option<crate::collectors::Coverage> {
        self.source.coverage()
    }
}
