//! Run records: what is kept per run between collections, and the state that holds them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::github::cache::PageCache;
use crate::github::models::Run;

/// Conclusions that say something about the code; `cancelled`, `skipped`, `neutral` do not.
const VERDICTS: &[&str] = &[
    "success",
    "failure",
    "timed_out",
    "startup_failure",
    "action_required",
];
/// Bumped when what is stored per run changes meaning: older state is dropped and rebuilt.
pub(super) const STATE_VERSION: u32 = 2;

/// What is kept per repository between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct ActionsState {
    #[serde(default)]
    pub(super) version: u32,
    /// Pages of each slice of the listing (`created=` range), by the slice's start.
    #[serde(default)]
    pub(super) slices: BTreeMap<String, PageCache>,
    /// Days (`YYYY-MM-DD`) that reached the 1,000-result cap: listed hour by hour.
    #[serde(default)]
    pub(super) split_days: BTreeSet<String>,
    /// The repository's workflows.
    #[serde(default)]
    pub(super) workflows: PageCache,
    /// Runs on the branch inside the window, by id.
    #[serde(default)]
    pub(super) runs: BTreeMap<u64, RunRecord>,
}

impl crate::collectors::github::RepoState for ActionsState {
    const VERSION: u32 = STATE_VERSION;

    fn version(&self) -> u32 {
        self.version
    }

    fn fresh() -> Self {
        ActionsState {
            version: STATE_VERSION,
            ..ActionsState::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RunRecord {
    pub(super) workflow_id: u64,
    pub(super) status: String,
    pub(super) conclusion: Option<String>,
    pub(super) run_attempt: u32,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) run_started_at: Option<DateTime<Utc>>,
    /// Summary of the jobs, once the run completed.
    #[serde(default)]
    pub(super) jobs: Option<JobsSummary>,
    /// For a re-run that succeeded: whether its first attempt failed.
    #[serde(default)]
    pub(super) first_attempt_failed: Option<bool>,
}

/// One queue-time sample: a job that started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct QueueSample {
    pub(super) job_id: u64,
    pub(super) secs: f64,
    pub(super) runner: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct JobsSummary {
    /// Jobs of every attempt that started (skipped and never-started jobs left out).
    pub(super) queue: Vec<QueueSample>,
    pub(super) timed_out: Vec<u64>,
    pub(super) cancelled: u32,
    /// Whether a job of the run's latest attempt started: a run that never started has no
    /// duration worth sampling.
    pub(super) started: bool,
}

impl RunRecord {
    pub(super) fn from_run(run: &Run) -> RunRecord {
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

    pub(super) fn completed(&self) -> bool {
        self.status == "completed"
    }

    pub(super) fn is_verdict(&self) -> bool {
        self.completed() && VERDICTS.contains(&self.conclusion.as_deref().unwrap_or(""))
    }

    /// Fold newer data about the same run in; a new attempt or any change drops the derived
    /// details so they are fetched again.
    pub(super) fn update(&mut self, run: &Run) {
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
    pub(super) fn ran(&self) -> bool {
        self.completed()
            && self.conclusion.as_deref() != Some("skipped")
            && match &self.jobs {
                Some(j) => j.started,
                None => self.run_started_at.is_some(),
            }
    }

    /// Sort key for "newest": creation time, then id.
    pub(super) fn newest_key(&self, id: u64) -> (DateTime<Utc>, u64) {
        (self.created_at, id)
    }
}
