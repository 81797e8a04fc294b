//! `github_actions`: CI health of one branch from GitHub Actions workflow runs.
//!
//! **Listing.** Runs are listed one UTC day at a time
//! (`actions/runs?branch=B&created=DAY..DAY&per_page=100`), every page conditional on its stored
//! `ETag`. A filtered listing stops at 1,000 results, so a day that reaches it is listed again
//! hour by hour (remembered in the state). Day slices are used, rather than one unfiltered scan
//! down to a checkpoint, because a re-run keeps its id and `created_at` and never moves to the top
//! of the listing: with slices, the page holding a re-run (or a run that completed) changes and is
//! fetched again, however old the run is within the window, while unchanged pages answer 304 at no
//! primary rate-limit cost. Once a run is complete its jobs (and, for a successful re-run, its
//! first attempt) are fetched once and summarised, and again only when a new attempt appears.
//!
//! **Runs on the branch** are the repository's own runs (`head_repository.full_name` is the
//! repository) on the branch, for the events in `events` (default `push`, `schedule`,
//! `workflow_dispatch`, `merge_group`). Pull-request runs, from forks or not, are out of every row.
//!
//! **Latest state** of a workflow is its newest completed run (by creation) whose conclusion is a
//! verdict (`success`, `failure`, `timed_out`, `startup_failure`, `action_required`); cancelled,
//! skipped and neutral runs do not replace it. When a newer run is still queued or in progress
//! the observation carries the tag `newer_run = in_progress`, and `workflow.verdict_age` says how
//! old the verdict is.
//!
//! **Workflows** listed in `workflows` are resolved against the repository's workflows
//! (`actions/workflows`): exact name or file stem first, then the same case-insensitively. A name
//! that matches nothing makes its rows `unknown` with a "workflow not found" reason (tag
//! `reason:workflow_not_found`), and the log names the repository's workflows.
//!
//! Signals are listed in docs/collectors.md (kept in step by a test).

mod jobs;
mod listing;
mod observations;
mod records;
#[cfg(test)]
mod tests;
mod workflows;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use super::{GithubSource, Repo, save_state, window};
use crate::collectors::{
    BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind,
};
use crate::github::client::GithubClient;
use crate::observation::Observation;
use crate::observation::SelfMetric;
use records::ActionsState;

pub const KIND: CollectorKind = CollectorKind {
    name: "github_actions",
    description: "GitHub Actions runs of a branch: latest conclusions, failures, flaky re-runs, durations, queue times, timeouts",
    signals: &[
        "workflow.conclusion",
        "workflow.verdict_age",
        "workflows.failing_other",
        "workflow.success_ratio",
        "runs.completed",
        "runs.flaky",
        "workflow.duration",
        "jobs.queue_time",
        "jobs.queue_time_by_runner",
        "jobs.timed_out",
        "jobs.cancelled",
    ],
    tags: &["repo", "branch", "runner"],
    self_metrics: super::SELF_METRICS,
    build,
};

/// What GitHub writes on a job cancelled at its `timeout-minutes`.
const DEFAULT_TIMEOUT_ANNOTATION: &str = "exceeded the maximum execution time";
const FAILED: &[&str] = &["failure", "timed_out", "startup_failure"];
const DEFAULT_EVENTS: &[&str] = &["push", "schedule", "workflow_dispatch", "merge_group"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionsOptions {
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    workflows: Vec<String>,
    /// Events whose runs count as runs on the branch.
    #[serde(default)]
    events: Option<Vec<String>>,
    /// Fetch jobs of completed runs (queue time, timeouts). Costs one request per run, once.
    #[serde(default = "yes")]
    jobs: bool,
    #[serde(default)]
    timeout_annotation: Option<String>,
}

fn yes() -> bool {
    true
}

pub struct ActionsCollector {
    source: GithubSource,
    window: TimeDelta,
    workflows: Vec<String>,
    events: Vec<String>,
    jobs: bool,
    timeout_annotation: String,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let (source, opts): (_, ActionsOptions) = GithubSource::build_with(ctx)?;
    let events = opts
        .events
        .unwrap_or_else(|| DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect());
    if events.is_empty() || events.iter().any(|e| e.trim().is_empty()) {
        return Err(BuildError::at(
            "events",
            "list at least one event (e.g. \"push\")",
        ));
    }
    if opts.workflows.iter().any(|w| w.trim().is_empty()) {
        return Err(BuildError::at("workflows", "a workflow name is empty"));
    }
    Ok(Arc::new(ActionsCollector {
        source,
        window: window(&opts.window)?,
        workflows: opts.workflows,
        events,
        jobs: opts.jobs,
        timeout_annotation: opts
            .timeout_annotation
            .unwrap_or_else(|| DEFAULT_TIMEOUT_ANNOTATION.to_string()),
    }))
}

impl ActionsCollector {
    async fn collect_repo(
        &self,
        ctx: &CollectContext,
        client: Arc<GithubClient>,
        repo: &Repo,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let (key, mut state): (String, ActionsState) =
            self.source.load_state(ctx, repo, "actions").await?;
        let window_start = now - self.window;
        let client = &*client;
        let workflows = self.repo_workflows(client, repo, &mut state).await?;
        let listed = self
            .list_runs(client, repo, &mut state, window_start, now)
            .await?;
        self.merge_runs(repo, &mut state, &listed, window_start);
        // A first run's job details are most of its cost: when the run's request budget runs
        // out part way, what was fetched is kept and the next run goes on from there.
        let details = self.fetch_details(client, repo, &mut state).await;
        save_state(ctx, &key, &state).await?;
        details?;
        Ok(self.observations(repo, &state, &workflows, now, ctx.now))
    }
}

impl Collector for ActionsCollector {
    fn collect<'a>(
        &'a self,
        ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>> {
        Box::pin(self.source.collect_each(ctx, move |client, repo, now| {
            Box::pin(async move { self.collect_repo(ctx, client, &repo, now).await })
        }))
    }

    fn check_online<'a>(&'a self, http: &'a reqwest::Client) -> BoxFuture<'a, Vec<String>> {
        Box::pin(self.check_workflows(http))
    }

    fn self_metrics(&self) -> Vec<SelfMetric> {
        self.source.self_metrics()
    }

    fn coverage(&self) -> Option<crate::collectors::Coverage> {
        self.source.coverage()
    }
}
