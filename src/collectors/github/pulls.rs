//! `github_pulls`: pull-request flow into one branch — merges, time to merge, stale PRs.
//!
//! Pull requests have no `since` parameter, so merged ones are found by walking
//! `state=closed&sort=updated&direction=desc` until `updated_at` falls before the window (a PR
//! merged inside the window was updated inside it), and stale ones by walking
//! `state=open&sort=updated&direction=asc` until `updated_at` is newer than `stale_after`. Every
//! page is requested conditionally, so an unchanged repository costs only 304s.
//!
//! | signal | value (tags `repo`, `branch` = the base branch) |
//! | --- | --- |
//! | `pulls.merged` | PRs merged into the branch within `window` |
//! | `pulls.time_to_merge` | samples of `merged_at − created_at` of those, seconds; ids = PR numbers |
//! | `pulls.stale_open` | open PRs into the branch not updated for `stale_after` |

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{GithubSource, Repo, samples_observation, save_state, window, window_opt};
use crate::collectors::{
    BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind,
};
use crate::github::cache::PageCache;
use crate::github::client::GithubClient;
use crate::github::models::{PullItem, closed_pulls_key, pull_items};
use crate::observation::SelfMetric;
use crate::observation::{Observation, Value};

pub const KIND: CollectorKind = CollectorKind {
    name: "github_pulls",
    description: "pull requests into a branch: merged per window, time to merge, stale open PRs",
    signals: &["pulls.merged", "pulls.time_to_merge", "pulls.stale_open"],
    tags: &["repo", "branch"],
    self_metrics: super::SELF_METRICS,
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullsOptions {
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    stale_after: Option<String>,
}

pub struct PullsCollector {
    source: GithubSource,
    window: TimeDelta,
    stale_after: TimeDelta,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let (source, o): (_, PullsOptions) = GithubSource::build_with(ctx)?;
    Ok(Arc::new(PullsCollector {
        source,
        window: window(&o.window)?,
        stale_after: window_opt(
            &o.stale_after,
            "stale_after",
            std::time::Duration::from_secs(14 * 86_400),
        )?,
    }))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PullsState {
    #[serde(default)]
    closed: PageCache,
    #[serde(default)]
    open: PageCache,
}

impl PullsCollector {
    async fn collect_repo(
        &self,
        ctx: &CollectContext,
        client: Arc<GithubClient>,
        repo: &Repo,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let key = self.source.state_key(repo, "pulls");
        let mut state: PullsState = ctx.state.get_json(&key).await?.unwrap_or_default();
        let window_start = now - self.window;
        let stale_before = now - self.stale_after;
        let closed = client
            .list(
                &mut state.closed,
                closed_pulls_key(&repo.full),
                pull_items,
                |page: &[PullItem]| page.iter().any(|p| p.updated_at < window_start),
            )
            .await?;
        let open_key = format!(
            "/repos/{}/pulls?state=open&sort=updated&direction=asc&per_page=100",
            repo.full
        );
        let open = client
            .list(
                &mut state.open,
                open_key,
                pull_items,
                |page: &[PullItem]| page.iter().any(|p| p.updated_at >= stale_before),
            )
            .await?;
        state.closed.retain_touched();
        state.open.retain_touched();
        save_state(ctx, &key, &state).await?;

        let branch = self.source.branch.as_str();
        // (time to merge, PR number): one id per sample.
        let merged: Vec<(f64, String)> = closed
            .iter()
            .filter(|p| p.base == branch)
            .filter_map(|p| p.merged_at.map(|m| (p, m)))
            .filter(|(_, m)| *m >= window_start && *m <= now)
            .map(|(p, m)| {
                (
                    (m - p.created_at).num_milliseconds() as f64 / 1000.0,
                    p.number.to_string(),
                )
            })
            .collect();
        let stale = open
            .iter()
            .filter(|p| p.base == branch && p.updated_at < stale_before)
            .count();
        let tag = |o: Observation| o.with_tag("repo", &repo.full).with_tag("branch", branch);
        Ok(vec![
            tag(Observation::new(
                "pulls.merged",
                Value::Number(merged.len() as f64),
                ctx.now,
            )),
            tag(samples_observation("pulls.time_to_merge", merged, ctx.now)).with_unit("second"),
            tag(Observation::new(
                "pulls.stale_open",
                Value::Number(stale as f64),
                ctx.now,
            )),
        ])
    }
}

impl Collector for PullsCollector {
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
