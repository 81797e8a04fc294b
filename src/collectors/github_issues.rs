//! `github_issues`: the bug queue — open issues per label, and the change since the last run.
//!
//! One listing per label (`labels=a,b` would mean "a AND b"), `state=open`, every page
//! conditional. The issues endpoint also returns pull requests; those (items with a
//! `pull_request` key) are dropped. The previous run's counts are kept in the state store for
//! `issues.open_change`; the first run has no previous count and so sends no change (missing is
//! unknown, never a placeholder 0), and a dry run does not overwrite them.
//!
//! | signal | value (tags `repo`, `label`) |
//! | --- | --- |
//! | `issues.open` | open issues carrying the label |
//! | `issues.open_change` | `issues.open` minus its value at the previous run |

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{BuildContext, CollectContext, CollectError, Collector, CollectorKind, SelfMetric};
use crate::github::client::{GithubClient, PageCache, decode};
use crate::github::models::Issue;
use crate::github::{GithubSource, Repo, save_state};
use crate::observation::{Observation, Value};

pub const KIND: CollectorKind = CollectorKind {
    name: "github_issues",
    description: "open issues per label (pull requests excluded) and the change since the last run",
    signals: &["issues.open", "issues.open_change"],
    tags: &["repo", "label"],
    self_metrics: crate::github::SELF_METRICS,
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuesOptions {
    labels: Vec<String>,
}

pub struct IssuesCollector {
    source: GithubSource,
    labels: Vec<String>,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, String> {
    let (source, o): (_, IssuesOptions) = GithubSource::build_with(ctx)?;
    if o.labels.is_empty() || o.labels.iter().any(|l| l.trim().is_empty()) {
        return Err("labels: list at least one non-empty label".into());
    }
    Ok(Arc::new(IssuesCollector {
        source,
        labels: o.labels,
    }))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IssuesState {
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
        _now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let key = self.source.state_key(repo, "issues");
        let mut state: IssuesState = ctx.state.get_json(&key).await?.unwrap_or_default();
        let mut out = Vec::new();
        let mut counts = BTreeMap::new();
        for label in &self.labels {
            let encoded: String = url::form_urlencoded::byte_serialize(label.as_bytes()).collect();
            let first = format!(
                "/repos/{}/issues?state=open&labels={encoded}&per_page=100",
                repo.full
            );
            // Keep only the issue numbers: the count is all this collector needs.
            let numbers: Vec<u64> = client
                .list(
                    &mut state.pages,
                    first,
                    |k, body| {
                        let items: Vec<Issue> = decode(k, body)?;
                        Ok(items
                            .into_iter()
                            .filter(|i| i.pull_request.is_none())
                            .map(|i| i.number)
                            .collect())
                    },
                    |_| false,
                )
                .await?;
            let open = numbers.len() as u64;
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
            Box::pin(self.collect_repo(ctx, client, repo, now))
        }))
    }

    fn self_metrics(&self) -> Vec<SelfMetric> {
        self.source.self_metrics()
    }
}
