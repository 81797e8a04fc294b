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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{
    GithubSource, Repo, counted_observation, day_floor, samples_observation, save_state, window,
};
use crate::collectors::{
    BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind, SelfMetric,
};
use crate::github::cache::PageCache;
use crate::github::client::{GithubClient, decode};
use crate::github::models::{Annotation, Job, JobsPage, Run, RunsPage, WorkflowDef, WorkflowsPage};
use crate::observation::{Observation, UnknownReason, Value};

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
/// Conclusions that say something about the code; `cancelled`, `skipped`, `neutral` do not.
const VERDICTS: &[&str] = &[
    "success",
    "failure",
    "timed_out",
    "startup_failure",
    "action_required",
];
const DEFAULT_EVENTS: &[&str] = &["push", "schedule", "workflow_dispatch", "merge_group"];
/// GitHub returns at most this many results for a filtered run listing.
const LISTING_CAP: usize = 1000;
/// Bumped when what is stored per run changes meaning: older state is dropped and rebuilt.
const STATE_VERSION: u32 = 2;

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

/// What is kept per repository between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ActionsState {
    #[serde(default)]
    version: u32,
    /// Pages of each slice of the listing (`created=` range), by the slice's start.
    #[serde(default)]
    slices: BTreeMap<String, PageCache>,
    /// Days (`YYYY-MM-DD`) that reached the 1,000-result cap: listed hour by hour.
    #[serde(default)]
    split_days: BTreeSet<String>,
    /// The repository's workflows.
    #[serde(default)]
    workflows: PageCache,
    /// Runs on the branch inside the window, by id.
    #[serde(default)]
    runs: BTreeMap<u64, RunRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunRecord {
    workflow_id: u64,
    status: String,
    conclusion: Option<String>,
    run_attempt: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    run_started_at: Option<DateTime<Utc>>,
    /// Summary of the jobs, once the run completed.
    #[serde(default)]
    jobs: Option<JobsSummary>,
    /// For a re-run that succeeded: whether its first attempt failed.
    #[serde(default)]
    first_attempt_failed: Option<bool>,
}

/// One queue-time sample: a job that started.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueueSample {
    job_id: u64,
    secs: f64,
    runner: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct JobsSummary {
    /// Jobs of every attempt that started (skipped and never-started jobs left out).
    queue: Vec<QueueSample>,
    timed_out: Vec<u64>,
    cancelled: u32,
    /// Whether a job of the run's latest attempt started: a run that never started has no
    /// duration worth sampling.
    started: bool,
}

impl RunRecord {
    fn from_run(run: &Run) -> RunRecord {
        RunRecord {
            workflow_id: run.workflow_id,
            status: run.status.clone().unwrap_or_default(),
            conclusion: run.conclusion.clone(),
            run_attempt: run.run_attempt.unwrap_or(1),
            created_at: run.created_at,
            updated_at: run.updated_at,
            run_started_at: run.run_started_at,
            jobs: None,
            first_attempt_failed: None,
        }
    }

    fn completed(&self) -> bool {
        self.status == "completed"
    }

    fn is_verdict(&self) -> bool {
        self.completed() && VERDICTS.contains(&self.conclusion.as_deref().unwrap_or(""))
    }

    /// Fold newer data about the same run in; a new attempt or any change drops the derived
    /// details so they are fetched again.
    fn update(&mut self, run: &Run) {
        let fresh = RunRecord::from_run(run);
        if fresh.updated_at != self.updated_at
            || fresh.run_attempt != self.run_attempt
            || fresh.status != self.status
        {
            *self = fresh;
        }
    }

    /// Whether this run is a sample of work that ran: not skipped, and (when its jobs are known)
    /// a job of its latest attempt started.
    fn ran(&self) -> bool {
        self.completed()
            && self.conclusion.as_deref() != Some("skipped")
            && match &self.jobs {
                Some(j) => j.started,
                None => self.run_started_at.is_some(),
            }
    }

    /// Sort key for "newest": creation time, then id.
    fn newest_key(&self, id: u64) -> (DateTime<Utc>, u64) {
        (self.created_at, id)
    }
}

/// The file stem of a workflow path (`tests` for `.github/workflows/tests.yml@refs/heads/main`).
fn file_stem(path: &str) -> &str {
    let file = path.split('@').next().unwrap_or(path);
    let base = file.rsplit('/').next().unwrap_or(file);
    base.strip_suffix(".yml")
        .or_else(|| base.strip_suffix(".yaml"))
        .unwrap_or(base)
}

/// The repository's workflows whose name or file stem is `listed`: exact matches if any, else
/// case-insensitive ones.
fn resolve_workflow<'a>(listed: &str, workflows: &'a [WorkflowDef]) -> Vec<&'a WorkflowDef> {
    let exact: Vec<&WorkflowDef> = workflows
        .iter()
        .filter(|w| w.name == listed || file_stem(&w.path) == listed)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    workflows
        .iter()
        .filter(|w| {
            w.name.eq_ignore_ascii_case(listed) || file_stem(&w.path).eq_ignore_ascii_case(listed)
        })
        .collect()
}

/// "Tests (tests.yml), Benchmarks (bench.yml)" for log lines and reasons.
fn describe_workflows(workflows: &[WorkflowDef]) -> String {
    if workflows.is_empty() {
        return "none".into();
    }
    workflows
        .iter()
        .map(|w| {
            let file = w.path.rsplit('/').next().unwrap_or(&w.path);
            format!("{} ({file})", w.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The runner label a job's queue time is tagged with: the last of its `runs-on` labels (the most
/// specific one by convention: `gpu` for `[self-hosted, linux, gpu]`), or `none`.
fn runner_label(job: &Job) -> String {
    job.labels
        .last()
        .filter(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "none".into())
}

fn fmt_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The repository's workflows (`GET /actions/workflows`, every page, conditional on `cache`).
async fn list_workflows(
    client: &GithubClient,
    repo: &Repo,
    cache: &mut PageCache,
) -> Result<Vec<WorkflowDef>, crate::github::error::GithubError> {
    let first = format!("/repos/{}/actions/workflows?per_page=100", repo.full);
    client
        .list(
            cache,
            first,
            |k, body| {
                let page: WorkflowsPage = decode(k, body)?;
                Ok(page.workflows)
            },
            |_| false,
        )
        .await
}

/// Where a listed workflow resolved to.
enum Resolved {
    Found(BTreeSet<u64>),
    NotFound,
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
        if state.version != STATE_VERSION {
            state = ActionsState {
                version: STATE_VERSION,
                ..ActionsState::default()
            };
        }
        let window_start = now - self.window;
        let client = &*client;
        let workflows = self.repo_workflows(client, repo, &mut state).await?;
        let listed = self
            .list_runs(client, repo, &mut state, window_start, now)
            .await?;
        self.merge_runs(repo, &mut state, &listed, window_start);
        self.fetch_details(client, repo, &mut state).await?;
        save_state(ctx, &key, &state).await?;
        Ok(self.observations(repo, &state, &workflows, now, ctx.now))
    }

    /// The repository's workflows (one conditional listing).
    async fn repo_workflows(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
    ) -> anyhow::Result<Vec<WorkflowDef>> {
        let workflows = list_workflows(client, repo, &mut state.workflows).await?;
        state.workflows.retain_touched();
        Ok(workflows)
    }

    /// For `validate --online`: every listed workflow exists in every repository.
    async fn check_workflows(&self, http: &reqwest::Client) -> Vec<String> {
        let client = GithubClient::new(http.clone(), self.source.settings.clone());
        let mut problems = Vec::new();
        for repo in &self.source.repos {
            let mut cache = PageCache::default();
            match list_workflows(&client, repo, &mut cache).await {
                Err(e) => problems.push(format!(
                    "collector {}: {}: cannot list the repository's workflows: {e}",
                    self.source.instance, repo.full
                )),
                Ok(workflows) => {
                    for w in &self.workflows {
                        if resolve_workflow(w, &workflows).is_empty() {
                            problems.push(format!(
                                "collector {}: {}: workflow {w:?} matches no workflow name or file (case-insensitively); its workflows are: {}",
                                self.source.instance,
                                repo.full,
                                describe_workflows(&workflows)
                            ));
                        }
                    }
                }
            }
        }
        problems
    }

    fn slice_key(&self, repo: &Repo, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        let branch: String =
            url::form_urlencoded::byte_serialize(self.source.branch.as_bytes()).collect();
        format!(
            "/repos/{}/actions/runs?branch={branch}&created={}..{}&per_page=100",
            repo.full,
            fmt_ts(from),
            fmt_ts(to)
        )
    }

    /// List slices `(from, to)` concurrently, each with its own page cache.
    async fn list_slices(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
        slices: Vec<(DateTime<Utc>, DateTime<Utc>)>,
        fresh: &mut BTreeMap<String, PageCache>,
    ) -> anyhow::Result<Vec<(DateTime<Utc>, Vec<Run>)>> {
        let limit = self.source.settings.policy.max_concurrency;
        let jobs = slices.into_iter().map(|(from, to)| {
            let name = fmt_ts(from);
            let mut cache = state.slices.remove(&name).unwrap_or_default();
            let key = self.slice_key(repo, from, to);
            async move {
                let runs = client
                    .list(
                        &mut cache,
                        key,
                        |k, body| {
                            let page: RunsPage = decode(k, body)?;
                            Ok(page.workflow_runs)
                        },
                        |_| false,
                    )
                    .await;
                cache.retain_touched();
                (from, name, cache, runs)
            }
        });
        let mut results = futures::stream::iter(jobs).buffer_unordered(limit);
        let mut out = Vec::new();
        let mut failure = None;
        while let Some((from, name, cache, runs)) = results.next().await {
            fresh.insert(name, cache);
            match runs {
                Ok(r) => out.push((from, r)),
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// Every run of the branch created in the window's days, day slice by day slice.
    async fn list_runs(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Run>> {
        let day = TimeDelta::days(1);
        let second = TimeDelta::seconds(1);
        let mut days = Vec::new();
        let mut d = day_floor(window_start);
        while d <= now {
            days.push(d);
            d += day;
        }
        let label = |d: DateTime<Utc>| d.format("%Y-%m-%d").to_string();
        let first_day = days.first().map(|d| label(*d)).unwrap_or_default();
        state.split_days.retain(|d| *d >= first_day);
        let mut fresh = BTreeMap::new();
        let whole: Vec<_> = days
            .iter()
            .filter(|d| !state.split_days.contains(&label(**d)))
            .map(|d| (*d, *d + day - second))
            .collect();
        let mut runs = Vec::new();
        let mut split: Vec<DateTime<Utc>> = days
            .iter()
            .filter(|d| state.split_days.contains(&label(**d)))
            .copied()
            .collect();
        for (from, listed) in self
            .list_slices(client, repo, state, whole, &mut fresh)
            .await?
        {
            if listed.len() >= LISTING_CAP {
                tracing::info!(
                    "collector {}: {}: {} has at least {LISTING_CAP} runs on {}; listing it hour by hour",
                    self.source.instance,
                    repo.full,
                    label(from),
                    self.source.branch
                );
                state.split_days.insert(label(from));
                fresh.remove(&fmt_ts(from));
                split.push(from);
            } else {
                runs.extend(listed);
            }
        }
        let hours: Vec<_> = split
            .iter()
            .flat_map(|d| {
                (0..24).map(move |h| {
                    let from = *d + TimeDelta::hours(h);
                    (from, from + TimeDelta::hours(1) - second)
                })
            })
            .collect();
        for (from, listed) in self
            .list_slices(client, repo, state, hours, &mut fresh)
            .await?
        {
            if listed.len() >= LISTING_CAP {
                tracing::warn!(
                    "collector {}: {}: the hour from {} has {LISTING_CAP} runs or more; GitHub lists no more, later ones are missed",
                    self.source.instance,
                    repo.full,
                    fmt_ts(from)
                );
            }
            runs.extend(listed);
        }
        // Slices not listed this run (out of the window) are dropped with their pages.
        state.slices = fresh;
        Ok(runs)
    }

    /// Whether a listed run is a run of the repository itself on the branch, for a counted event.
    fn on_branch(&self, run: &Run, repo: &Repo) -> bool {
        let own = run
            .head_repository
            .as_ref()
            .and_then(|r| r.full_name.as_deref())
            .is_none_or(|n| n.eq_ignore_ascii_case(&repo.full));
        let event = run
            .event
            .as_deref()
            .is_none_or(|e| self.events.iter().any(|x| x == e));
        own && event && run.head_branch.as_deref() == Some(self.source.branch.as_str())
    }

    /// Replace the stored runs with those listed, keeping what was derived for unchanged ones.
    fn merge_runs(
        &self,
        repo: &Repo,
        state: &mut ActionsState,
        listed: &[Run],
        window_start: DateTime<Utc>,
    ) {
        let mut seen = BTreeSet::new();
        for run in listed {
            if run.created_at < window_start || !self.on_branch(run, repo) {
                continue;
            }
            seen.insert(run.id);
            match state.runs.get_mut(&run.id) {
                Some(r) => r.update(run),
                None => {
                    state.runs.insert(run.id, RunRecord::from_run(run));
                }
            }
        }
        state.runs.retain(|id, _| seen.contains(id));
    }

    /// Jobs and first attempts of completed runs, fetched once per run (and attempt).
    async fn fetch_details(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
    ) -> anyhow::Result<()> {
        let wanted: Vec<(u64, u32, bool, bool)> = state
            .runs
            .iter()
            .filter(|(_, r)| r.completed())
            .map(|(id, r)| {
                let need_jobs = self.jobs && r.jobs.is_none();
                let need_attempt = r.run_attempt > 1
                    && r.conclusion.as_deref() == Some("success")
                    && r.first_attempt_failed.is_none();
                (*id, r.run_attempt, need_jobs, need_attempt)
            })
            .filter(|(_, _, j, a)| *j || *a)
            .collect();
        let limit = self.source.settings.policy.max_concurrency;
        let mut results = futures::stream::iter(wanted.into_iter().map(
            |(id, attempt, need_jobs, need_attempt)| async move {
                let jobs = if need_jobs {
                    Some(self.jobs_summary(client, repo, id, attempt).await?)
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
        run_attempt: u32,
    ) -> anyhow::Result<JobsSummary> {
        let pages: Vec<JobsPage> = client
            .get_all_pages(format!(
                "/repos/{}/actions/runs/{run_id}/jobs?filter=all&per_page=100",
                repo.full
            ))
            .await?;
        let jobs: Vec<Job> = pages.into_iter().flat_map(|p| p.jobs).collect();
        let mut summary = JobsSummary::default();
        for job in &jobs {
            let ran = job.conclusion.as_deref() != Some("skipped") && job.started_at.is_some();
            if ran && job.run_attempt.unwrap_or(run_attempt) == run_attempt {
                summary.started = true;
            }
            if ran
                && let (Some(created), Some(started)) = (job.created_at, job.started_at)
                && started >= created
            {
                summary.queue.push(QueueSample {
                    job_id: job.id,
                    secs: (started - created).num_milliseconds() as f64 / 1000.0,
                    runner: runner_label(job),
                });
            }
            match job.conclusion.as_deref() {
                Some("timed_out") => summary.timed_out.push(job.id),
                Some("cancelled") => {
                    match self.has_timeout_annotation(client, repo, job.id).await {
                        Ok(true) => summary.timed_out.push(job.id),
                        Ok(false) => summary.cancelled += 1,
                        Err(e) => {
                            // One unreadable job must not turn every CI row unknown.
                            tracing::warn!(
                                "collector {}: {}: cannot read the annotations of job {} ({e}); counting it as cancelled, not timed out",
                                self.source.instance,
                                repo.full,
                                job.id
                            );
                            summary.cancelled += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(summary)
    }

    /// Whether any page of a job's check-run annotations carries the timeout text.
    async fn has_timeout_annotation(
        &self,
        client: &GithubClient,
        repo: &Repo,
        job_id: u64,
    ) -> Result<bool, crate::github::error::GithubError> {
        let mut key = Some(format!(
            "/repos/{}/check-runs/{job_id}/annotations?per_page=100",
            repo.full
        ));
        while let Some(k) = key.take() {
            let (notes, next): (Vec<Annotation>, _) = client.get_json(&k).await?;
            let found = notes.iter().any(|a| {
                a.message
                    .as_deref()
                    .is_some_and(|m| m.contains(&self.timeout_annotation))
            });
            if found {
                return Ok(true);
            }
            key = next;
        }
        Ok(false)
    }

    /// Resolve the listed workflows; logs the repository's workflows for one that matches none.
    fn resolve(&self, repo: &Repo, workflows: &[WorkflowDef]) -> Vec<(String, Resolved)> {
        self.workflows
            .iter()
            .map(|w| {
                let found = resolve_workflow(w, workflows);
                if found.is_empty() {
                    tracing::warn!(
                        "collector {}: {}: workflow {w:?} matches no workflow name or file of the repository; its workflows are: {}",
                        self.source.instance,
                        repo.full,
                        describe_workflows(workflows)
                    );
                    (w.clone(), Resolved::NotFound)
                } else {
                    (
                        w.clone(),
                        Resolved::Found(found.iter().map(|f| f.id).collect()),
                    )
                }
            })
            .collect()
    }

    fn observations(
        &self,
        repo: &Repo,
        state: &ActionsState,
        workflows: &[WorkflowDef],
        now: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Vec<Observation> {
        let tag = |o: Observation| {
            o.with_tag("repo", &repo.full)
                .with_tag("branch", &self.source.branch)
        };
        let runs = &state.runs;
        // The newest verdict among `ids`' runs, and whether a newer run is still running.
        let latest_verdict = |ids: &dyn Fn(u64) -> bool| -> Option<(&RunRecord, bool)> {
            let (vid, verdict) = runs
                .iter()
                .filter(|(_, r)| ids(r.workflow_id) && r.is_verdict())
                .max_by_key(|(id, r)| r.newest_key(**id))?;
            let newer_running = runs.iter().any(|(id, r)| {
                ids(r.workflow_id) && !r.completed() && r.newest_key(*id) > verdict.newest_key(*vid)
            });
            Some((verdict, newer_running))
        };
        let mut out = Vec::new();
        let mut listed_ids = BTreeSet::new();
        for (w, resolved) in self.resolve(repo, workflows) {
            let ids = match resolved {
                Resolved::Found(ids) => ids,
                Resolved::NotFound => {
                    let why = format!(
                        "workflow not found: {w:?} matches no workflow of {} (its workflows: {})",
                        repo.full,
                        describe_workflows(workflows)
                    );
                    out.push(
                        tag(Observation::unavailable(
                            UnknownReason::WorkflowNotFound,
                            why,
                            at,
                        ))
                        .with_tag("workflow", &w),
                    );
                    continue;
                }
            };
            listed_ids.extend(ids.iter().copied());
            if let Some((verdict, newer_running)) = latest_verdict(&|id| ids.contains(&id)) {
                let conclusion = verdict.conclusion.clone().unwrap_or_default();
                let mut o = tag(Observation::new(
                    "workflow.conclusion",
                    Value::Text(conclusion),
                    at,
                ))
                .with_tag("workflow", &w);
                if newer_running {
                    o = o.with_tag("newer_run", "in_progress");
                }
                out.push(o);
                let age = (now - verdict.updated_at).num_seconds().max(0) as f64;
                out.push(
                    tag(Observation::new(
                        "workflow.verdict_age",
                        Value::Number(age),
                        at,
                    ))
                    .with_tag("workflow", &w)
                    .with_unit("second"),
                );
            }
        }
        let others: BTreeSet<u64> = runs
            .values()
            .map(|r| r.workflow_id)
            .filter(|id| !listed_ids.contains(id))
            .collect();
        let failing_other = others
            .iter()
            .filter(|wid| {
                latest_verdict(&|id| id == **wid)
                    .is_some_and(|(v, _)| FAILED.contains(&v.conclusion.as_deref().unwrap_or("")))
            })
            .count();
        out.push(tag(Observation::new(
            "workflows.failing_other",
            Value::Number(failing_other as f64),
            at,
        )));
        let completed: Vec<(&u64, &RunRecord)> =
            runs.iter().filter(|(_, r)| r.completed()).collect();
        let decided: Vec<&RunRecord> = completed
            .iter()
            .map(|(_, r)| *r)
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
            .filter(|(_, r)| r.first_attempt_failed == Some(true))
            .map(|(id, _)| id.to_string())
            .collect();
        out.push(tag(counted_observation("runs.flaky", flaky, at)));
        let durations = completed
            .iter()
            .filter(|(_, r)| r.ran())
            .map(|(id, r)| {
                let start = r.run_started_at.unwrap_or(r.created_at);
                let secs = (r.updated_at - start).num_milliseconds() as f64 / 1000.0;
                (secs, format!("{id}.{}", r.run_attempt))
            })
            .filter(|(d, _)| *d >= 0.0);
        out.push(tag(samples_observation("workflow.duration", durations, at)).with_unit("second"));
        if self.jobs {
            let summaries: Vec<&JobsSummary> = completed
                .iter()
                .filter_map(|(_, r)| r.jobs.as_ref())
                .collect();
            let queue: Vec<&QueueSample> = summaries.iter().flat_map(|j| &j.queue).collect();
            let pairs = |q: &[&QueueSample]| -> Vec<(f64, String)> {
                q.iter().map(|s| (s.secs, s.job_id.to_string())).collect()
            };
            out.push(
                tag(samples_observation("jobs.queue_time", pairs(&queue), at)).with_unit("second"),
            );
            let mut by_runner: BTreeMap<&str, Vec<&QueueSample>> = BTreeMap::new();
            for s in &queue {
                by_runner.entry(s.runner.as_str()).or_default().push(s);
            }
            for (runner, samples) in by_runner {
                out.push(
                    tag(samples_observation(
                        "jobs.queue_time_by_runner",
                        pairs(&samples),
                        at,
                    ))
                    .with_tag("runner", runner)
                    .with_unit("second"),
                );
            }
            let timed_out = summaries
                .iter()
                .flat_map(|j| j.timed_out.iter().map(|id| id.to_string()))
                .collect();
            out.push(tag(counted_observation("jobs.timed_out", timed_out, at)));
            let cancelled: u64 = summaries.iter().map(|j| u64::from(j.cancelled)).sum();
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

    fn check_online<'a>(&'a self, http: &'a reqwest::Client) -> BoxFuture<'a, Vec<String>> {
        Box::pin(self.check_workflows(http))
    }

    fn self_metrics(&self) -> Vec<SelfMetric> {
        self.source.self_metrics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(id: u64, name: &str, file: &str) -> WorkflowDef {
        WorkflowDef {
            id,
            name: name.into(),
            path: format!(".github/workflows/{file}"),
        }
    }

    #[test]
    fn workflows_resolve_exactly_then_case_insensitively() {
        let all = vec![
            wf(1, "Unit Tests", "tests.yml"),
            wf(2, "Benchmarks", "bench.yaml"),
        ];
        let ids =
            |w: &str| -> Vec<u64> { resolve_workflow(w, &all).iter().map(|w| w.id).collect() };
        assert_eq!(ids("tests"), vec![1]);
        assert_eq!(ids("Unit Tests"), vec![1]);
        assert_eq!(ids("benchmarks"), vec![2]);
        assert_eq!(ids("BENCH"), vec![2]);
        assert!(ids("lint").is_empty());
        assert_eq!(file_stem(".github/workflows/x.yml@refs/heads/main"), "x");
        assert!(describe_workflows(&all).contains("Benchmarks (bench.yaml)"));
    }

    fn record(created: i64, conclusion: Option<&str>, status: &str) -> RunRecord {
        let t = DateTime::from_timestamp(1_700_000_000 + created, 0).unwrap_or_default();
        RunRecord {
            workflow_id: 1,
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
            run_attempt: 1,
            created_at: t,
            updated_at: t + TimeDelta::seconds(60),
            run_started_at: Some(t),
            jobs: Some(JobsSummary {
                queue: vec![
                    QueueSample {
                        job_id: created as u64 * 10,
                        secs: 3.0,
                        runner: "ubuntu-latest".into(),
                    },
                    QueueSample {
                        job_id: created as u64 * 10 + 1,
                        secs: 5.0,
                        runner: "gpu".into(),
                    },
                ],
                timed_out: vec![created as u64 * 10],
                cancelled: 0,
                started: true,
            }),
            first_attempt_failed: Some(true),
        }
    }

    fn collector() -> ActionsCollector {
        let ctx = BuildContext {
            name: "actions",
            options: toml::from_str("repo = \"o/r\"\nworkflows = [\"tests\"]")
                .expect("test options parse"),
            config_dir: std::path::PathBuf::from("."),
        };
        let (source, _): (_, ActionsOptions) =
            GithubSource::build_with(&ctx).expect("test options are valid");
        ActionsCollector {
            source,
            window: TimeDelta::days(7),
            workflows: vec!["tests".into()],
            events: vec!["push".into()],
            jobs: true,
            timeout_annotation: DEFAULT_TIMEOUT_ANNOTATION.into(),
        }
    }

    #[test]
    fn ids_match_samples_and_counts_and_superseded_runs_keep_the_verdict() {
        let c = collector();
        let repo = Repo::parse("o/r").unwrap();
        let mut state = ActionsState::default();
        state
            .runs
            .insert(1, record(1, Some("failure"), "completed"));
        state
            .runs
            .insert(2, record(2, Some("success"), "completed"));
        state
            .runs
            .insert(3, record(3, Some("cancelled"), "completed"));
        state.runs.insert(4, record(4, None, "in_progress"));
        let workflows = vec![wf(1, "Tests", "tests.yml")];
        let now = DateTime::from_timestamp(1_700_000_600, 0).unwrap_or_default();
        let obs = c.observations(&repo, &state, &workflows, now, now);
        let get = |s: &str| obs.iter().find(|o| o.signal == s).expect(s);
        let conclusion = get("workflow.conclusion");
        assert_eq!(conclusion.value, Value::Text("success".into()));
        assert_eq!(conclusion.tags["newer_run"], "in_progress");
        assert_eq!(
            get("workflow.verdict_age").value,
            Value::Number((600 - 2 - 60) as f64)
        );
        for o in &obs {
            match &o.value {
                Value::Samples(s) => assert_eq!(s.len(), o.ids.len(), "{}", o.signal),
                Value::Number(n) if o.signal == "runs.flaky" || o.signal == "jobs.timed_out" => {
                    assert_eq!(*n as usize, o.ids.len(), "{}", o.signal)
                }
                _ => {}
            }
        }
        assert_eq!(get("workflow.duration").ids, vec!["1.1", "2.1", "3.1"]);
        assert_eq!(get("runs.flaky").ids.len(), 3);
        let gpu = obs
            .iter()
            .find(|o| {
                o.signal == "jobs.queue_time_by_runner"
                    && o.tags.get("runner").map(String::as_str) == Some("gpu")
            })
            .expect("gpu queue samples");
        assert_eq!(gpu.ids, vec!["11", "21", "31"]);
    }
}
