//! Details of completed runs: jobs (queue times, runners, timeouts read from annotations) and
//! the first attempt of a successful re-run.

use futures::StreamExt;

use super::records::{ActionsState, JobsSummary, QueueSample};
use super::{ActionsCollector, FAILED};
use crate::collectors::github::Repo;
use crate::github::client::GithubClient;
use crate::github::models::{Annotation, Job, JobsPage, Run};

/// The runner label a job's queue time is tagged with: the last of its `runs-on` labels (the most
/// specific one by convention: `gpu` for `[self-hosted, linux, gpu]`), or `none`.
fn runner_label(job: &Job) -> String {
    job.labels
        .last()
        .filter(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "none".into())
}

impl ActionsCollector {
    /// Jobs and first attempts of completed runs, fetched once per run (and attempt).
    pub(super) async fn fetch_details(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
    ) -> anyhow::Result<()> {
        // Newest runs first: a backfill cut short by the request budget has the recent days
        // whole and fetches older ones on the next runs.
        let wanted: Vec<(u64, u32, bool, bool)> = state
            .runs
            .iter()
            .rev()
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
}
