//! The observations built from the stored runs.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::records::{ActionsState, JobsSummary, QueueSample, RunRecord};
use super::workflows::{Resolved, describe_workflows};
use super::{ActionsCollector, FAILED};
use crate::collectors::github::{Repo, counted_observation, samples_observation};
use crate::github::models::WorkflowDef;
use crate::observation::{Observation, UnknownReason, Value};

impl ActionsCollector {
    pub(super) fn observations(
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
