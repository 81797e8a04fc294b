//! The week scenario: a GitHub repository whose history evolves with a pinned clock, the ground
//! truth of what happened in it, and the config that watches it. Shared by the week
//! simulation test (`tests/it/week.rs`) and its benchmark (`benches/week.rs`).
//!
//! Over one week of ten-minute runs: a `Tests` run on `main` every half hour (some fail, some
//! are re-run twenty minutes later, one two-day-old run is re-run late), a commit every two
//! hours with three reverts and two hotfixes among them (one revert during the outage), a
//! training bug opened and closed, and a three-hour GitHub outage. The truth is computed from
//! these facts alone: when each event became visible, when the first healthy run could see it,
//! and what was in the window then.

#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, Utc};

use super::github_history::{
    CommitData, DeploymentData, History, IssueData, JobData, REPO, RunData,
};

pub const KEY: &str = "week-simulation-key";
pub const STEP: i64 = 600;
pub const STEPS: i64 = 7 * 144;
pub const WINDOW: i64 = 7 * 86_400;

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-16T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

/// Seconds since t0.
pub fn rel(t: DateTime<Utc>) -> i64 {
    (t - t0()).num_seconds()
}

pub const OUTAGE: (i64, i64) = (5 * 86_400 + 10 * 3_600, 5 * 86_400 + 13 * 3_600);

pub fn collector_up(t: i64) -> bool {
    !(OUTAGE.0..OUTAGE.1).contains(&t)
}

/// Datadog answers nothing but 503 for three hours on day 2: every run spools, the first run
/// after it delivers everything, increments and samples re-stamped once past the hour.
pub const DATADOG_OUTAGE: (i64, i64) = (2 * 86_400 + 14 * 3_600, 2 * 86_400 + 17 * 3_600);

pub fn datadog_up(t: i64) -> bool {
    !(DATADOG_OUTAGE.0..DATADOG_OUTAGE.1).contains(&t)
}

/// The state store is wiped (a lost PVC, `state reset`) just before this run on day 4: it
/// records what it sees as a baseline and counts none of it.
pub const WIPE: i64 = 4 * 86_400 + 6 * 3_600;

/// Runs killed (SIGKILL: the future dropped) at a random instant, while Datadog is slow to
/// answer, on three days.
pub const KILLS: [i64; 3] = [
    86_400 + 9 * 3_600 + 1_200,
    3 * 86_400 + 15 * 3_600 + 600,
    5 * 86_400 + 20 * 3_600,
];

/// Two jobs run at once at each tick of day 3, 00:00 to 06:00.
pub fn overlapping(t: i64) -> bool {
    (3 * 86_400..3 * 86_400 + 6 * 3_600).contains(&t)
}

/// A 30,000-sample catch-up: an eval job's results file gains them all at once on day 3.
pub const CATCH_UP: i64 = 3 * 86_400 + 10 * 3_600;
pub const CATCH_UP_SAMPLES: usize = 30_000;

/// The eval results file, next to the config.
pub const EVAL_FILE: &str = "eval.json";

/// The eval results file's content at `t`: one eval every hour from t0 (latency 30–90 s), and
/// the catch-up's 30,000 at once from [`CATCH_UP`]; the last day's, as a file job keeps.
pub fn evals(t: i64) -> String {
    let mut ids = Vec::new();
    let mut values = Vec::new();
    for h in 0..=(t / 3_600) {
        if h * 3_600 >= t - 86_400 {
            ids.push(format!("eval-{h}"));
            values.push(30.0 + (h * 37 % 60) as f64);
        }
    }
    if (CATCH_UP..CATCH_UP + 86_400).contains(&t) {
        for k in 0..CATCH_UP_SAMPLES {
            ids.push(format!("catch-up-{k}"));
            values.push(1.0 + (k % 200) as f64);
        }
    }
    serde_json::json!([{
        "signal": "eval.latency",
        "value": values,
        "ids": ids,
        "timestamp": at(t).to_rfc3339(),
    }])
    .to_string()
}

/// Eval samples sent over the week (identities first seen by a run that is not a baseline).
pub fn eval_samples_truth() -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for h in 0..(STEPS * STEP / 3_600) {
        let visible = h * 3_600;
        if let Some(d) = detected(visible, |now| visible >= now - 86_400) {
            out.push((d, 30.0 + (h * 37 % 60) as f64));
        }
    }
    if let Some(d) = detected(CATCH_UP, |now| now < CATCH_UP + 86_400) {
        for k in 0..CATCH_UP_SAMPLES {
            out.push((d, 1.0 + (k % 200) as f64));
        }
    }
    out
}

/// Runs that record a baseline: the first one and the one after the wipe. What they first see
/// is not counted (it is history, not news).
pub fn baseline_run(t: i64) -> bool {
    t == 0 || t == WIPE
}

/// One attempt of a run of the `Tests` workflow on `main`.
#[derive(Debug, Clone)]
pub struct Attempt {
    started: i64,
    completed: i64,
    conclusion: &'static str,
    job_id: u64,
    job_created: i64,
    job_started: i64,
}

#[derive(Debug, Clone)]
pub struct ScenarioRun {
    id: u64,
    created: i64,
    attempts: Vec<Attempt>,
}

/// Everything that happens, in seconds since t0 (negative: before the first run).
pub struct Scenario {
    pub runs: Vec<ScenarioRun>,
    /// (time, message)
    pub commits: Vec<(i64, String)>,
    /// (number, opened, closed)
    bugs: Vec<(u64, i64, Option<i64>)>,
    /// Deployments to production: creation times (each deploys the newest commit then and
    /// succeeds `DEPLOY_TAKES` later).
    pub deploys: Vec<i64>,
}

/// How long a deployment takes: `in_progress` 30 s after its creation, `success` after this.
pub const DEPLOY_TAKES: i64 = 600;

/// The Tests run created at index `i` (every 30 minutes from 8 days before t0).
pub fn scenario() -> Scenario {
    let mut runs = Vec::new();
    let first = -8 * 86_400;
    let last = STEPS * STEP;
    let mut i = 0u64;
    loop {
        let created = first + i as i64 * 1_800;
        if created > last {
            break;
        }
        let duration = 120 + (i as i64 * 53) % 280;
        let queue = 10 + (i as i64 * 17) % 100;
        let attempt = |n: u64, started: i64, conclusion: &'static str| Attempt {
            started,
            completed: started + duration + n as i64 * 7,
            conclusion,
            job_id: 5_000_000 + i * 10 + n,
            job_created: started - 5,
            job_started: started - 5 + queue,
        };
        let mut attempts = Vec::new();
        let late_rerun = created == 2 * 86_400 + 9 * 3_600;
        if i % 41 == 3 || late_rerun {
            let a1 = attempt(1, created + 20, "failure");
            // A quick re-run twenty minutes after the failure; the late one two days later,
            // in progress for 25 minutes (across two ticks, its first attempt's jobs out of
            // the listing meanwhile).
            let delay = if late_rerun { 2 * 86_400 } else { 1_200 };
            let mut a2 = attempt(2, a1.completed + delay, "success");
            if late_rerun {
                a2.completed = a2.started + 1_500;
            }
            attempts.push(a1);
            attempts.push(a2);
        } else {
            let conclusion = if i % 23 == 7 { "failure" } else { "success" };
            attempts.push(attempt(1, created + 20, conclusion));
        }
        runs.push(ScenarioRun {
            id: 1_000_000 + i * 10,
            created,
            attempts,
        });
        i += 1;
    }
    // The last run before the end fails, the very last passes: the row recovered minutes ago.
    let n = runs.len();
    let end = STEPS * STEP - STEP;
    for r in runs.iter_mut() {
        if r.created > end - 3_600 && r.created <= end - 1_800 && r.attempts.len() == 1 {
            r.attempts[0].conclusion = "failure";
        }
    }
    assert!(n > 400);

    let mut commits = Vec::new();
    for h in (-8 * 24..7 * 24).step_by(2) {
        commits.push((h * 3_600 + 300, format!("feat: change {h}")));
    }
    commits.push((-3 * 86_400, "Revert \"feat: change -70\"\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.".into()));
    commits.push((3 * 86_400 + 10 * 3_600, "Revert \"feat: change 70\"\n\nThis reverts commit 89abcdef0123456789abcdef0123456789abcdef.".into()));
    // During the outage: seen only when GitHub answers again.
    commits.push((OUTAGE.0 + 3_600, "Revert \"feat: change 130\"\n\nThis reverts commit fedcba9876543210fedcba9876543210fedcba98.".into()));
    commits.push((86_400 + 7_200, "hotfix: unbreak the build".into()));
    commits.push((6 * 86_400 + 7_200, "hotfix: unbreak the release".into()));
    let bugs = vec![
        (1, -10 * 86_400, None),
        (2, 2 * 86_400 + 3_600, Some(5 * 86_400 + 16 * 3_600)),
    ];
    // A deployment every eight hours, twenty minutes past the hour, from eight days back.
    let deploys = (-24..=(STEPS * STEP) / 28_800)
        .map(|k| k * 28_800 + 1_200)
        .filter(|c| *c <= STEPS * STEP)
        .collect();
    Scenario {
        runs,
        commits,
        bugs,
        deploys,
    }
}

impl Scenario {
    /// The commit a deployment created at `created` deploys: the newest one then.
    pub fn deployed_commit(&self, created: i64) -> (usize, i64) {
        self.commits
            .iter()
            .enumerate()
            .filter(|(_, (when, _))| *when <= created)
            .max_by_key(|(_, (when, _))| *when)
            .map(|(n, (when, _))| (n, *when))
            .expect("a commit before every deployment")
    }
}

impl ScenarioRun {
    /// The attempt GitHub shows at `t` (the newest one started), if the run exists yet.
    fn current(&self, t: i64) -> Option<&Attempt> {
        if self.created > t {
            return None;
        }
        self.attempts
            .iter()
            .rev()
            .find(|a| a.started <= t)
            .or(self.attempts.first())
    }

    fn completed_at(&self, t: i64) -> bool {
        self.current(t).is_some_and(|a| a.completed <= t)
    }
}

fn sha_of(n: usize) -> String {
    format!("{n:040x}")
}

/// What GitHub shows at `t`.
pub fn show(h: &mut History, s: &Scenario, t: i64) {
    h.now = at(t);
    let mut runs = Vec::new();
    let mut jobs = std::collections::HashMap::new();
    for r in s.runs.iter().filter(|r| r.created <= t) {
        let Some(cur) = r.current(t) else { continue };
        let n = r
            .attempts
            .iter()
            .position(|a| std::ptr::eq(a, cur))
            .unwrap_or(0);
        let done = cur.completed <= t;
        runs.push(RunData {
            id: r.id,
            workflow: 0,
            branch: "main".into(),
            event: "push".into(),
            head_repo: REPO.into(),
            status: if done { "completed" } else { "in_progress" }.into(),
            conclusion: done.then(|| cur.conclusion.to_string()),
            run_attempt: n as u32 + 1,
            created_at: at(r.created),
            run_started_at: at(cur.started),
            updated_at: at(if done { cur.completed } else { cur.started }),
            first_attempt_conclusion: (n > 0).then(|| r.attempts[0].conclusion.to_string()),
        });
        let shown: Vec<JobData> = r.attempts[..=n]
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let finished = a.completed <= t;
                JobData {
                    id: a.job_id,
                    run_attempt: k as u32 + 1,
                    conclusion: finished.then(|| a.conclusion.to_string()),
                    created_at: at(a.job_created),
                    started_at: Some(at(a.job_started)),
                    completed_at: finished.then(|| at(a.completed)),
                    labels: vec!["ubuntu-latest".into()],
                }
            })
            .collect();
        jobs.insert(r.id, shown);
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.id));
    h.runs = runs;
    h.jobs = jobs;
    h.annotations.clear();
    let mut commits: Vec<CommitData> = s
        .commits
        .iter()
        .enumerate()
        .filter(|(_, (when, _))| *when <= t)
        .map(|(n, (when, message))| CommitData {
            sha: sha_of(n + 1),
            message: message.clone(),
            date: at(*when),
            parents: Vec::new(),
            change: sha_of(n + 1),
            mainline: true,
        })
        .collect();
    commits.sort_by_key(|c| std::cmp::Reverse(c.date));
    // A straight first-parent history: each commit's parent is the one before it.
    for i in 0..commits.len().saturating_sub(1) {
        commits[i].parents = vec![commits[i + 1].sha.clone()];
    }
    h.commits = commits;
    h.deployments = s
        .deploys
        .iter()
        .enumerate()
        .filter(|(_, created)| **created <= t)
        .map(|(k, created)| DeploymentData {
            id: 8_000_000 + k as u64,
            sha: sha_of(s.deployed_commit(*created).0 + 1),
            environment: "production".into(),
            created_at: at(*created),
            statuses: [("in_progress", 30), ("success", DEPLOY_TAKES)]
                .iter()
                .filter(|(_, after)| created + after <= t)
                .map(|(state, after)| (state.to_string(), at(created + after)))
                .collect(),
        })
        .collect();
    h.pulls.clear();
    h.issues = s
        .bugs
        .iter()
        .filter(|(_, opened, _)| *opened <= t)
        .map(|(n, opened, closed)| {
            let closed = closed.filter(|c| *c <= t);
            IssueData {
                number: *n,
                state: if closed.is_some() { "closed" } else { "open" }.into(),
                labels: vec!["training".into()],
                is_pull: false,
                created_at: at(*opened),
                closed_at: closed.map(at),
            }
        })
        .rev()
        .collect();
}

// ---- ground truth, from the scenario alone --------------------------------------------------

/// The times of the runs of the week.
pub fn steps() -> impl Iterator<Item = i64> {
    (0..STEPS).map(|k| k * STEP)
}

/// The first run at or after `visible` whose collectors reach GitHub, and for which `still`
/// holds (the event is still in its window, the attempt still shown).
pub fn detected(visible: i64, still: impl Fn(i64) -> bool) -> Option<i64> {
    seen_first(visible, still).filter(|t| !baseline_run(*t))
}

/// The first run that sees it, baseline or not.
pub fn seen_first(visible: i64, still: impl Fn(i64) -> bool) -> Option<i64> {
    steps().find(|t| *t >= visible && collector_up(*t) && still(*t))
}

pub struct Truth {
    /// Flaky runs: detection times.
    pub flaky: Vec<i64>,
    pub reverts: Vec<i64>,
    pub hotfixes: Vec<i64>,
    /// Duration samples: (detection time, seconds).
    pub durations: Vec<(i64, f64)>,
    pub queue: Vec<(i64, f64)>,
    /// Training bugs opened / closed: detection times.
    pub bugs_opened: Vec<i64>,
    pub bugs_closed: Vec<i64>,
    /// Deployments and failed deployments: detection times.
    pub deploys: Vec<i64>,
    pub failed_deploys: Vec<i64>,
    /// Lead time samples: (detection time, seconds).
    pub lead: Vec<(i64, f64)>,
}

pub fn truth(s: &Scenario) -> Truth {
    let mut t = Truth {
        flaky: Vec::new(),
        reverts: Vec::new(),
        hotfixes: Vec::new(),
        durations: Vec::new(),
        queue: Vec::new(),
        bugs_opened: Vec::new(),
        bugs_closed: Vec::new(),
        deploys: Vec::new(),
        failed_deploys: Vec::new(),
        lead: Vec::new(),
    };
    for (_, opened, closed) in &s.bugs {
        if let Some(d) = detected(*opened, |now| *opened >= now - WINDOW) {
            t.bugs_opened.push(d);
        }
        if let Some(c) = closed
            && let Some(d) = detected(*c, |now| *c >= now - WINDOW)
        {
            t.bugs_closed.push(d);
        }
    }
    let in_window = |created: i64| move |now: i64| created >= now - WINDOW;
    for r in &s.runs {
        if r.attempts.len() > 1
            && r.attempts[1].conclusion == "success"
            && let Some(d) = detected(r.attempts[1].completed, |now| {
                in_window(r.created)(now) && r.completed_at(now)
            })
        {
            t.flaky.push(d);
        }
        for (k, a) in r.attempts.iter().enumerate() {
            // A duration sample is the attempt GitHub shows, once completed.
            let shown = |now: i64| {
                in_window(r.created)(now)
                    && r.completed_at(now)
                    && r.current(now).is_some_and(|c| std::ptr::eq(c, a))
            };
            if let Some(d) = detected(a.completed, shown) {
                t.durations.push((d, (a.completed - a.started) as f64));
            }
            // Jobs of every attempt are listed once the run is completed again.
            let listed = |now: i64| {
                in_window(r.created)(now)
                    && r.completed_at(now)
                    && r.attempts[..]
                        .iter()
                        .position(|x| std::ptr::eq(x, r.current(now).unwrap()))
                        .unwrap_or(0)
                        >= k
            };
            if let Some(d) = detected(a.completed, listed) {
                t.queue.push((d, (a.job_started - a.job_created) as f64));
            }
        }
    }
    for (when, message) in &s.commits {
        let list = if message.starts_with("Revert") {
            &mut t.reverts
        } else if message.starts_with("hotfix") {
            &mut t.hotfixes
        } else {
            continue;
        };
        if let Some(d) = detected(*when, |now| *when >= now - WINDOW) {
            list.push(d);
        }
    }
    // Deployments: seen once finished, while finished within the window. Lead time: each
    // commit after the one the previous deployment deployed, up to its own, finished −
    // committed. Failed: a hotfix lands after a deployment finished and before the next one
    // was created (no incident, rollback or revert of a deployed commit in this week).
    for (k, created) in s.deploys.iter().enumerate() {
        let finished = created + DEPLOY_TAKES;
        let still = |now: i64| finished >= now - WINDOW;
        let Some(d) = detected(finished, still) else {
            continue;
        };
        t.deploys.push(d);
        if k > 0 {
            let from = s.deployed_commit(s.deploys[k - 1]).1;
            let to = s.deployed_commit(*created).1;
            for (when, _) in s.commits.iter().filter(|(w, _)| *w > from && *w <= to) {
                t.lead.push((d, (finished - when) as f64));
            }
        }
        let next = s.deploys.get(k + 1).copied().unwrap_or(i64::MAX);
        for (when, message) in &s.commits {
            if message.starts_with("hotfix")
                && *when >= finished
                && *when < next
                && let Some(d) = detected(*when, still)
            {
                t.failed_deploys.push(d);
            }
        }
    }
    t
}

/// The levels over the window that a healthy run at `t` sees: flaky runs, reverts, hotfixes
/// (events whose window key is within 7 days), and open training bugs.
pub struct Levels {
    pub bugs_opened: usize,
    pub bugs_closed: usize,
    pub flaky: usize,
    pub reverts: usize,
    pub hotfixes: usize,
    pub open_bugs: usize,
    pub deploys: usize,
    pub failed_deploys: usize,
}

pub fn levels(s: &Scenario, t: i64) -> Levels {
    let flaky = s
        .runs
        .iter()
        .filter(|r| {
            r.created >= t - WINDOW
                && r.attempts.len() > 1
                && r.attempts[1].conclusion == "success"
                && r.completed_at(t)
                && r.current(t)
                    .is_some_and(|a| std::ptr::eq(a, &r.attempts[1]))
        })
        .count();
    let commits = |prefix: &str| {
        s.commits
            .iter()
            .filter(|(when, m)| m.starts_with(prefix) && *when <= t && *when >= t - WINDOW)
            .count()
    };
    let open_bugs = s
        .bugs
        .iter()
        .filter(|(_, opened, closed)| *opened <= t && closed.is_none_or(|c| c > t))
        .count();
    let in_window = |x: i64| x <= t && x >= t - WINDOW;
    Levels {
        bugs_opened: s.bugs.iter().filter(|(_, o, _)| in_window(*o)).count(),
        bugs_closed: s
            .bugs
            .iter()
            .filter(|(_, _, c)| c.is_some_and(in_window))
            .count(),
        flaky,
        reverts: commits("Revert"),
        hotfixes: commits("hotfix"),
        open_bugs,
        deploys: s
            .deploys
            .iter()
            .filter(|c| in_window(*c + DEPLOY_TAKES))
            .count(),
        failed_deploys: s
            .deploys
            .iter()
            .enumerate()
            .filter(|(k, c)| {
                let finished = *c + DEPLOY_TAKES;
                let next = s.deploys.get(k + 1).copied().unwrap_or(i64::MAX);
                in_window(finished)
                    && s.commits.iter().any(|(when, m)| {
                        m.starts_with("hotfix") && *when >= finished && *when < next && *when <= t
                    })
            })
            .count(),
    }
}

/// The conclusion of the newest completed `Tests` run at `t`.
pub fn latest_verdict(s: &Scenario, t: i64) -> Option<&'static str> {
    s.runs
        .iter()
        .filter(|r| r.completed_at(t))
        .max_by_key(|r| r.created)
        .and_then(|r| r.current(t))
        .map(|a| a.conclusion)
}

pub fn in_frame<'a>(times: impl IntoIterator<Item = &'a i64>, from: i64, to: i64) -> usize {
    times
        .into_iter()
        .filter(|d| **d >= from && **d <= to)
        .count()
}

pub fn p90(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (0.9 * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

// ---- the configuration and the dashboard's queries ------------------------------------------

pub fn config(github: &str, intake: &str) -> String {
    let common = format!(
        "repo = \"{REPO}\"\napi_url = \"{github}\"\nmin_secondary_wait = \"10ms\"\nretry_base = \"5ms\"\nmax_retries = 1\ntimeout = \"30s\"\n"
    );
    format!(
        r#"
[defaults]
env = "prod"

[sink]
type = "datadog"
endpoint = "{intake}"
max_retries = 1
backoff = "5ms"

[[collector]]
name = "actions"
type = "github_actions"
branch = "main"
workflows = ["tests"]
window = "7d"
{common}
[[collector]]
name = "commits"
type = "github_commits"
branch = "main"
window = "7d"
{common}
[[collector]]
name = "issues"
type = "github_issues"
labels = ["training"]
{common}
[[collector]]
name = "deploys"
type = "github_deployments"
window = "7d"
{common}
# An eval job's results: one sample per eval request, identified by its request id.
[[collector]]
name = "evals"
type = "file"
path = "{EVAL_FILE}"

[[check]]
workflow_category = "evaluation"
workflow_name = "remote_eval"
task = "eval_latency"
check = "latency_p50"
title = "Eval latency p50"
collector = "evals"
signal = "eval.latency"
condition = "<120s"
encoding = "distribution"
summary = "p50"
unit = "second"
carry_forward = "1h"
metric = "eval.latency"

[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "tests_blocking_merge"
check = "workflow_success"
title = "Tests blocking merge passing"
collector = "actions"
signal = "workflow.conclusion"
match = {{ workflow = "tests" }}
condition = "==success"
metric = "ci.workflow.success"

[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "flaky_reruns"
check = "weekly_count"
title = "Flaky reruns, 7 days"
collector = "actions"
signal = "runs.flaky"
condition = "<10"
encoding = "count"
metric = "ci.runs.flaky"

[[check]]
workflow_category = "ci"
workflow_name = "ci_smoothness"
task = "workflow_duration"
check = "duration_p90"
title = "p90 workflow duration"
collector = "actions"
signal = "workflow.duration"
condition = "<5m"
encoding = "distribution"
summary = "p90"
percentiles = true
unit = "second"
metric = "ci.workflow.duration"

[[check]]
workflow_category = "ci"
workflow_name = "ci_smoothness"
task = "queue_time"
check = "queue_time_p90"
title = "Job queue time p90"
collector = "actions"
signal = "jobs.queue_time"
condition = "<2m"
encoding = "distribution"
summary = "p90"
percentiles = true
unit = "second"
metric = "ci.jobs.queue_time"

[[check]]
workflow_category = "code"
workflow_name = "commit_history"
task = "reverts"
check = "weekly_count"
title = "Reverts, 7 days"
collector = "commits"
signal = "commits.reverts"
condition = "<=1"
encoding = "count"
metric = "github.reverts.count"

[[check]]
workflow_category = "code"
workflow_name = "commit_history"
task = "hotfixes"
check = "weekly_count"
title = "Hotfixes, 7 days"
collector = "commits"
signal = "commits.hotfixes"
condition = "<5"
encoding = "count"
metric = "github.hotfixes.count"

[[check]]
workflow_category = "delivery"
workflow_name = "dora"
task = "deployments"
check = "weekly_count"
title = "Deployments, 7 days"
collector = "deploys"
signal = "deployments"
condition = ">=1"
encoding = "count"
metric = "delivery.deployments"

[[check]]
workflow_category = "delivery"
workflow_name = "dora"
task = "failed_deployments"
check = "weekly_count"
title = "Failed deployments, 7 days"
collector = "deploys"
signal = "deployments.failed"
condition = "<=2"
encoding = "count"
metric = "delivery.deployments.failed"

[[check]]
workflow_category = "delivery"
workflow_name = "dora"
task = "lead_time"
check = "lead_time_p90"
title = "Lead time for changes p90"
collector = "deploys"
signal = "deployments.lead_time"
condition = "<7d"
encoding = "distribution"
summary = "p90"
percentiles = true
unit = "second"
metric = "delivery.lead_time"

[[check]]
workflow_category = "code"
workflow_name = "bug_queue"
task = "training_bugs"
check = "open_count"
title = "Open bugs: training"
collector = "issues"
signal = "issues.open"
match = {{ label = "training" }}
condition = "<1"
tags = {{ label = "training" }}
metric = "github.bugs.count"

[[check]]
workflow_category = "code"
workflow_name = "bug_queue"
task = "training_bugs_opened"
check = "weekly_count"
title = "Training bugs opened, 7 days"
collector = "issues"
signal = "issues.opened"
match = {{ label = "training" }}
condition = "<5"
encoding = "count"
tags = {{ label = "training" }}
metric = "github.bugs.opened"

[[check]]
workflow_category = "code"
workflow_name = "bug_queue"
task = "training_bugs_closed"
check = "weekly_count"
title = "Training bugs closed, 7 days"
collector = "issues"
signal = "issues.closed"
match = {{ label = "training" }}
condition = ">=0"
encoding = "count"
tags = {{ label = "training" }}
metric = "github.bugs.closed"
"#
    )
}
