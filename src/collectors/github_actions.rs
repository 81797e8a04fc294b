//! `github_actions`: CI health of one branch from GitHub Actions workflow runs.
//!
//! Runs are listed **unfiltered**, newest first, down to the last checkpoint (the highest run id
//! already seen) or the window start: GitHub caps any filtered listing (`branch=`, `status=`,
//! `created=`…) at 1,000 results, which the Python prototype hit. The first page is requested
//! with `If-None-Match`, so when nothing new was created it is answered 304 and the scan stops
//! there. Runs of the configured branch are kept in the state store; runs still in progress are
//! re-fetched by id (conditionally) until they complete. Once a run is complete its jobs (and,
//! for re-runs, its first attempt) are fetched once and summarised, never again.
//!
//! Signals (tags `repo`, `branch`; `workflow` on `workflow.conclusion`), over `window`:
//!
//! | signal | value |
//! | --- | --- |
//! | `workflow.conclusion` | conclusion of the latest completed run of each listed workflow (`success`, `failure`, …), tag `workflow` = the name as listed in `workflows` |
//! | `workflows.failing_other` | workflows not listed whose latest completed run failed (`failure`, `timed_out`, `startup_failure`) |
//! | `workflow.success_ratio` | successful ÷ decided runs (cancelled, skipped and neutral runs left out) |
//! | `runs.completed` | completed runs |
//! | `runs.flaky` | runs whose first attempt failed and a later attempt succeeded |
//! | `workflow.duration` | samples of `updated_at − run_started_at`, seconds |
//! | `jobs.queue_time` | samples of job `started_at − created_at`, seconds |
//! | `jobs.timed_out` | jobs with conclusion `timed_out`, or `cancelled` with the "exceeded the maximum execution time" annotation |
//! | `jobs.cancelled` | other cancelled jobs |
//!
//! A listed workflow matches a run when the run's `name` or its file's basename without
//! extension (`tests` for `.github/workflows/tests.yml`) equals the listed string.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{BuildContext, CollectContext, CollectError, Collector, CollectorKind, SelfMetric};
use crate::github::client::{Fetched, GithubClient, Validators, decode};
use crate::github::models::{Annotation, Job, JobsPage, Run, RunsPage};
use crate::github::{GithubSource, Repo, save_state, window};
use crate::observation::{Observation, Value};

pub const KIND: CollectorKind = CollectorKind {
    name: "github_actions",
    description: "GitHub Actions runs of a branch: latest conclusions, failures, flaky re-runs, durations, queue times, timeouts",
    signals: &[
        "workflow.conclusion",
        "workflows.failing_other",
        "workflow.success_ratio",
        "runs.completed",
        "runs.flaky",
        "workflow.duration",
        "jobs.queue_time",
        "jobs.timed_out",
        "jobs.cancelled",
    ],
    tags: &["repo", "branch"],
    self_metrics: crate::github::SELF_METRICS,
    build,
};

/// What GitHub writes on a job cancelled at its `timeout-minutes`.
const DEFAULT_TIMEOUT_ANNOTATION: &str = "exceeded the maximum execution time";
const FAILED: &[&str] = &["failure", "timed_out", "startup_failure"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionsOptions {
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    workflows: Vec<String>,
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
    jobs: bool,
    timeout_annotation: String,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, String> {
    let (source, opts): (_, ActionsOptions) = GithubSource::build_with(ctx)?;
    Ok(Arc::new(ActionsCollector {
        source,
        window: window(&opts.window)?,
        workflows: opts.workflows,
        jobs: opts.jobs,
        timeout_annotation: opts
            .timeout_annotation
            .unwrap_or_else(|| DEFAULT_TIMEOUT_ANNOTATION.to_string()),
    }))
}

/// What is kept per repository between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ActionsState {
    /// Highest run id seen: the scan stops there.
    #[serde(default)]
    checkpoint: u64,
    /// Validators of the first page of the listing.
    #[serde(default)]
    first_page: Validators,
    /// Runs of the branch inside the window, by id.
    #[serde(default)]
    runs: BTreeMap<u64, RunRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunRecord {
    workflow_id: u64,
    name: String,
    file_stem: String,
    status: String,
    conclusion: Option<String>,
    run_attempt: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    run_started_at: Option<DateTime<Utc>>,
    /// For re-fetching a run still in progress.
    #[serde(default)]
    validators: Validators,
    /// Summary of the jobs, once the run completed.
    #[serde(default)]
    jobs: Option<JobsSummary>,
    /// For a re-run that succeeded: whether its first attempt failed.
    #[serde(default)]
    first_attempt_failed: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct JobsSummary {
    queue_secs: Vec<f64>,
    timed_out: u32,
    cancelled: u32,
}

impl RunRecord {
    fn from_run(run: &Run) -> RunRecord {
        let path = run.path.as_deref().unwrap_or("");
        let file = path.split('@').next().unwrap_or(path);
        let base = file.rsplit('/').next().unwrap_or(file);
        let stem = base
            .strip_suffix(".yml")
            .or_else(|| base.strip_suffix(".yaml"))
            .unwrap_or(base);
        RunRecord {
            workflow_id: run.workflow_id,
            name: run.name.clone().unwrap_or_default(),
            file_stem: stem.to_string(),
            status: run.status.clone().unwrap_or_default(),
            conclusion: run.conclusion.clone(),
            run_attempt: run.run_attempt.unwrap_or(1),
            created_at: run.created_at,
            updated_at: run.updated_at,
            run_started_at: run.run_started_at,
            validators: Validators::default(),
            jobs: None,
            first_attempt_failed: None,
        }
    }

    fn completed(&self) -> bool {
        self.status == "completed"
    }

    /// Fold newer data about the same run in; a new attempt invalidates the derived details.
    fn update(&mut self, run: &Run) {
        let fresh = RunRecord::from_run(run);
        let changed = fresh.updated_at != self.updated_at || fresh.run_attempt != self.run_attempt;
        if changed {
            let validators = std::mem::take(&mut self.validators);
            *self = fresh;
            self.validators = validators;
        }
    }

    fn matches(&self, workflow: &str) -> bool {
        self.name == workflow || self.file_stem == workflow
    }
}

impl ActionsCollector {
    async fn collect_repo(
        &self,
        ctx: &CollectContext,
        client: Arc<GithubClient>,
        repo: &Repo,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let key = self.source.state_key(repo, "actions");
        let mut state: ActionsState = ctx.state.get_json(&key).await?.unwrap_or_default();
        let window_start = now - self.window;
        let client = &*client;
        self.scan(client, repo, &mut state, window_start).await?;
        state.runs.retain(|_, r| r.created_at >= window_start);
        self.refresh_incomplete(client, repo, &mut state).await?;
        self.fetch_details(client, repo, &mut state).await?;
        save_state(ctx, &key, &state).await?;
        Ok(self.observations(repo, &state, ctx.now))
    }

    /// Walk the listing newest first to the checkpoint or the window start.
    async fn scan(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
        window_start: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut key = Some(format!("/repos/{}/actions/runs?per_page=100", repo.full));
        let mut first = true;
        let mut highest = state.checkpoint;
        while let Some(k) = key.take() {
            let validators = (first && state.checkpoint > 0).then_some(&state.first_page);
            let (body, validators, next) = match client.get(&k, validators).await? {
                Fetched::NotModified => break,
                Fetched::Fresh {
                    body,
                    validators,
                    next,
                } => (body, validators, next),
            };
            if first {
                state.first_page = validators;
                first = false;
            }
            let page: RunsPage = decode(&k, &body)?;
            let mut reached_known = page.workflow_runs.is_empty();
            for run in &page.workflow_runs {
                highest = highest.max(run.id);
                if run.created_at < window_start
                    || (state.checkpoint > 0 && run.id <= state.checkpoint)
                {
                    reached_known = true;
                }
                if run.created_at < window_start
                    || run.head_branch.as_deref() != Some(self.source.branch.as_str())
                {
                    continue;
                }
                match state.runs.get_mut(&run.id) {
                    Some(r) => r.update(run),
                    None => {
                        state.runs.insert(run.id, RunRecord::from_run(run));
                    }
                }
            }
            if !reached_known {
                key = next;
            }
        }
        state.checkpoint = highest;
        Ok(())
    }

    /// Re-fetch runs still queued or in progress, conditionally, until they complete.
    async fn refresh_incomplete(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
    ) -> anyhow::Result<()> {
        let pending: Vec<(u64, Validators)> = state
            .runs
            .iter()
            .filter(|(_, r)| !r.completed())
            .map(|(id, r)| (*id, r.validators.clone()))
            .collect();
        let limit = self.source.settings.policy.max_concurrency;
        let mut results = futures::stream::iter(pending.into_iter().map(|(id, v)| async move {
            let key = format!("/repos/{}/actions/runs/{id}", repo.full);
            let stored = (v != Validators::default()).then_some(&v);
            let fetched = client.get(&key, stored).await;
            (id, key, fetched)
        }))
        .buffer_unordered(limit);
        while let Some((id, key, fetched)) = results.next().await {
            if let Fetched::Fresh {
                body, validators, ..
            } = fetched?
            {
                let run: Run = decode(&key, &body)?;
                if let Some(r) = state.runs.get_mut(&id) {
                    r.update(&run);
                    r.validators = validators;
                }
            }
        }
        Ok(())
    }

    /// Jobs and first attempts of completed runs, fetched once per run.
    async fn fetch_details(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
    ) -> anyhow::Result<()> {
        let wanted: Vec<(u64, bool, bool)> = state
            .runs
            .iter()
            .filter(|(_, r)| r.completed())
            .map(|(id, r)| {
                let need_jobs = self.jobs && r.jobs.is_none();
                let need_attempt = r.run_attempt > 1
                    && r.conclusion.as_deref() == Some("success")
                    && r.first_attempt_failed.is_none();
                (*id, need_jobs, need_attempt)
            })
            .filter(|(_, j, a)| *j || *a)
            .collect();
        let limit = self.source.settings.policy.max_concurrency;
        let mut results = futures::stream::iter(wanted.into_iter().map(
            |(id, need_jobs, need_attempt)| async move {
                let jobs = if need_jobs {
                    Some(self.jobs_summary(client, repo, id).await?)
                } else {
                    None
                };
                let first_failed = if need_attempt {
                    let key = format!("/repos/{}/actions/runs/{id}/attempts/1", repo.full);
                    let (first, _): (Run, _) = client.get_json(&key).await?;
                    Some(FAILED.contains(&first.conclusion.as_deref().unwrap_or("")))
                } else {
                    None
                };
                anyhow::Ok((id, jobs, first_failed))
            },
        ))
        .buffer_unordered(limit);
        while let Some(r) = results.next().await {
            let (id, jobs, first_failed) = r?;
            if let Some(rec) = state.runs.get_mut(&id) {
                if jobs.is_some() {
                    rec.jobs = jobs;
                }
                if first_failed.is_some() {
                    rec.first_attempt_failed = first_failed;
                }
            }
        }
        Ok(())
    }

    async fn jobs_summary(
        &self,
        client: &GithubClient,
        repo: &Repo,
        run_id: u64,
    ) -> anyhow::Result<JobsSummary> {
        let mut jobs: Vec<Job> = Vec::new();
        let mut key = Some(format!(
            "/repos/{}/actions/runs/{run_id}/jobs?filter=all&per_page=100",
            repo.full
        ));
        while let Some(k) = key.take() {
            let (page, next): (JobsPage, _) = client.get_json(&k).await?;
            jobs.extend(page.jobs);
            key = next;
        }
        let mut summary = JobsSummary::default();
        for job in &jobs {
            if let (Some(created), Some(started)) = (job.created_at, job.started_at)
                && started >= created
            {
                summary
                    .queue_secs
                    .push((started - created).num_milliseconds() as f64 / 1000.0);
            }
            match job.conclusion.as_deref() {
                Some("timed_out") => summary.timed_out += 1,
                Some("cancelled") => {
                    let key = format!("/repos/{}/check-runs/{}/annotations", repo.full, job.id);
                    let (notes, _): (Vec<Annotation>, _) = client.get_json(&key).await?;
                    let timed_out = notes.iter().any(|a| {
                        a.message
                            .as_deref()
                            .is_some_and(|m| m.contains(&self.timeout_annotation))
                    });
                    if timed_out {
                        summary.timed_out += 1;
                    } else {
                        summary.cancelled += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(summary)
    }

    fn observations(
        &self,
        repo: &Repo,
        state: &ActionsState,
        at: DateTime<Utc>,
    ) -> Vec<Observation> {
        let tag = |o: Observation| {
            o.with_tag("repo", &repo.full)
                .with_tag("branch", &self.source.branch)
        };
        let completed: Vec<&RunRecord> = state.runs.values().filter(|r| r.completed()).collect();
        let latest_of = |runs: &mut dyn Iterator<Item = &&RunRecord>| -> Option<String> {
            runs.max_by_key(|r| r.created_at)
                .map(|r| r.conclusion.clone().unwrap_or_else(|| "none".into()))
        };
        let mut out = Vec::new();
        for w in &self.workflows {
            if let Some(c) = latest_of(&mut completed.iter().filter(|r| r.matches(w))) {
                out.push(
                    tag(Observation::new("workflow.conclusion", Value::Text(c), at))
                        .with_tag("workflow", w),
                );
            }
        }
        let mut by_workflow: HashMap<u64, Vec<&RunRecord>> = HashMap::new();
        for r in completed
            .iter()
            .filter(|r| !self.workflows.iter().any(|w| r.matches(w)))
        {
            by_workflow.entry(r.workflow_id).or_default().push(r);
        }
        let failing_other = by_workflow
            .values()
            .filter(|runs| {
                latest_of(&mut runs.iter()).is_some_and(|c| FAILED.contains(&c.as_str()))
            })
            .count();
        out.push(tag(Observation::new(
            "workflows.failing_other",
            Value::Number(failing_other as f64),
            at,
        )));
        let decided: Vec<&&RunRecord> = completed
            .iter()
            .filter(|r| {
                !matches!(
                    r.conclusion.as_deref(),
                    Some("cancelled") | Some("skipped") | Some("neutral") | None
                )
            })
            .collect();
        if !decided.is_empty() {
            let ok = decided
                .iter()
                .filter(|r| r.conclusion.as_deref() == Some("success"))
                .count();
            out.push(tag(Observation::new(
                "workflow.success_ratio",
                Value::Number(ok as f64 / decided.len() as f64),
                at,
            )));
        }
        out.push(tag(Observation::new(
            "runs.completed",
            Value::Number(completed.len() as f64),
            at,
        )));
        let flaky = completed
            .iter()
            .filter(|r| r.first_attempt_failed == Some(true))
            .count();
        out.push(tag(Observation::new(
            "runs.flaky",
            Value::Number(flaky as f64),
            at,
        )));
        let durations: Vec<f64> = completed
            .iter()
            .map(|r| {
                let start = r.run_started_at.unwrap_or(r.created_at);
                (r.updated_at - start).num_milliseconds() as f64 / 1000.0
            })
            .filter(|d| *d >= 0.0)
            .collect();
        out.push(
            tag(Observation::new(
                "workflow.duration",
                Value::Samples(durations),
                at,
            ))
            .with_unit("second"),
        );
        if self.jobs {
            let mut queue = Vec::new();
            let (mut timed_out, mut cancelled) = (0u64, 0u64);
            for j in completed.iter().filter_map(|r| r.jobs.as_ref()) {
                queue.extend_from_slice(&j.queue_secs);
                timed_out += u64::from(j.timed_out);
                cancelled += u64::from(j.cancelled);
            }
            out.push(
                tag(Observation::new(
                    "jobs.queue_time",
                    Value::Samples(queue),
                    at,
                ))
                .with_unit("second"),
            );
            out.push(tag(Observation::new(
                "jobs.timed_out",
                Value::Number(timed_out as f64),
                at,
            )));
            out.push(tag(Observation::new(
                "jobs.cancelled",
                Value::Number(cancelled as f64),
                at,
            )));
        }
        out
    }
}

impl Collector for ActionsCollector {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_matching_uses_name_or_file_stem() {
        let run: Run = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "Unit Tests", "path": ".github/workflows/tests.yml@refs/heads/main",
            "workflow_id": 7, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:05:00Z"
        }))
        .unwrap();
        let r = RunRecord::from_run(&run);
        assert!(r.matches("tests"));
        assert!(r.matches("Unit Tests"));
        assert!(!r.matches("benchmarks"));
        assert_eq!(r.run_attempt, 1);
    }
}
