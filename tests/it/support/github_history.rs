//! A generated GitHub repository history for the fake GitHub (deterministic for a seed).
//!
//! Thousands of workflow runs over many workflows and branches (re-runs whose first attempt
//! failed, jobs that timed out either as `timed_out` or as `cancelled` with GitHub's "exceeded the
//! maximum execution time" annotation, runs still in progress), commits on `main` (plain,
//! `Revert "…"`, `hotfix:`, `[force merge]`, and merges of labelled pull requests), pull requests
//! (merged, closed, open and stale) and labelled issues mixed with pull requests, as the issues
//! endpoint returns them. Tests compute their expectations from this data, not from the
//! collectors.

#![allow(dead_code)]

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const REPO: &str = "acme/widgets";
pub const FORK: &str = "forker/widgets";
/// Events whose runs count as runs on the branch by default.
pub const BRANCH_EVENTS: &[&str] = &["push", "schedule", "workflow_dispatch", "merge_group"];
pub const TIMEOUT_ANNOTATION: &str = "The job running on runner GitHub Actions 12 has exceeded the maximum execution time of 30 minutes.";
pub const LABELS: &[&str] = &["training", "infra", "bug", "eval", "docs"];

#[derive(Debug, Clone)]
pub struct Workflow {
    pub id: u64,
    pub name: String,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct RunData {
    pub id: u64,
    pub workflow: usize,
    pub branch: String,
    /// `push`, `pull_request`, `schedule`, `workflow_dispatch`.
    pub event: String,
    /// `head_repository.full_name`: a fork for fork pull requests.
    pub head_repo: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub run_attempt: u32,
    pub created_at: DateTime<Utc>,
    pub run_started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Conclusion of attempt 1 when the run was re-run.
    pub first_attempt_conclusion: Option<String>,
}

#[derive(Debug, Clone)]
pub struct JobData {
    pub id: u64,
    pub run_attempt: u32,
    pub conclusion: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CommitData {
    pub sha: String,
    pub message: String,
    pub date: DateTime<Utc>,
    /// First parent first.
    pub parents: Vec<String>,
    /// The change this commit belongs to: `pr#N`, or its own sha for a direct commit.
    pub change: String,
    /// Whether it is on the first-parent chain (the commit that landed the change).
    pub mainline: bool,
}

#[derive(Debug, Clone)]
pub struct ForcePush {
    pub id: u64,
    pub after: String,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct PullData {
    pub number: u64,
    pub title: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub merged_at: Option<DateTime<Utc>>,
    pub merge_commit_sha: Option<String>,
    pub labels: Vec<String>,
    pub head: String,
    pub base: String,
    /// The PR's own commits (`pulls/{n}/commits`).
    pub commits: Vec<String>,
    pub head_sha: String,
    /// An approving review was submitted before the merge.
    pub approved: bool,
    /// Not approved before the merge, but approved after it (must not count as approved).
    pub late_approval: bool,
    /// The required check `Tests` failed on the head commit.
    pub checks_failed: bool,
}

#[derive(Debug, Clone)]
pub struct IssueData {
    pub number: u64,
    pub state: String,
    pub labels: Vec<String>,
    pub is_pull: bool,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// A GitHub deployment and its statuses (oldest first: `(state, at)`).
#[derive(Debug, Clone)]
pub struct DeploymentData {
    pub id: u64,
    pub sha: String,
    pub environment: String,
    pub created_at: DateTime<Utc>,
    pub statuses: Vec<(String, DateTime<Utc>)>,
}

/// A successful run of the deploy workflow (`actions/workflows/deploy.yml/runs`).
#[derive(Debug, Clone)]
pub struct DeployRun {
    pub id: u64,
    pub sha: String,
    pub branch: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Sizes of a generated history.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub runs: usize,
    pub pulls: usize,
    pub issues: usize,
}

#[derive(Debug, Clone)]
pub struct History {
    pub repo: String,
    pub now: DateTime<Utc>,
    pub workflows: Vec<Workflow>,
    /// Newest first (highest id first), as GitHub lists them.
    pub runs: Vec<RunData>,
    pub jobs: HashMap<u64, Vec<JobData>>,
    pub annotations: HashMap<u64, Vec<String>>,
    /// Newest first.
    pub commits: Vec<CommitData>,
    pub pulls: Vec<PullData>,
    /// Force pushes to `main`.
    pub force_pushes: Vec<ForcePush>,
    /// Check names branch protection requires on `main`.
    pub required_checks: Vec<String>,
    /// Highest number first.
    pub issues: Vec<IssueData>,
    /// Deployments, in any order (the fake lists them newest first).
    pub deployments: Vec<DeploymentData>,
    /// Successful runs of the `deploy.yml` workflow, in any order.
    pub deploy_runs: Vec<DeployRun>,
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn sha(rng: &mut StdRng) -> String {
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect()
}

impl History {
    /// Generate a history ending at `now` (whole seconds). Runs span 8 days (7-day window plus
    /// older ones the scan must stop at); pulls 30 days.
    pub fn generate(seed: u64, sizes: Sizes, now: DateTime<Utc>) -> History {
        let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let workflows: Vec<Workflow> = [
            ("Tests", "tests.yml"),
            // Listed as "benchmarks" in the tests' config: found only case-insensitively.
            ("Benchmarks", "bench.yml"),
            ("lint", "lint.yml"),
            ("docs", "docs.yml"),
            ("build", "build.yml"),
            ("e2e", "e2e.yml"),
            ("nightly", "nightly.yml"),
            ("deploy", "deploy.yml"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (name, file))| Workflow {
            id: 1000 + i as u64,
            name: name.to_string(),
            path: format!(".github/workflows/{file}"),
        })
        .collect();

        // Runs: creation times spread over 8 days, ids increasing with time.
        let span = 8 * 86_400i64;
        let mut created: Vec<i64> = (0..sizes.runs)
            .map(|_| rng.random_range(60..span))
            .collect();
        created.sort_unstable_by(|a, b| b.cmp(a)); // seconds ago, oldest first
        let mut runs = Vec::with_capacity(sizes.runs);
        let mut jobs = HashMap::new();
        let mut annotations = HashMap::new();
        let mut next_job = 5_000_000u64;
        for (i, ago) in created.iter().enumerate() {
            let id = 100_000 + i as u64 * 3;
            let workflow = rng.random_range(0..workflows.len());
            let branch = if rng.random_bool(0.55) {
                "main".to_string()
            } else {
                format!("feature-{}", rng.random_range(0..40))
            };
            let (event, head_repo) = if branch == "main" {
                match rng.random_range(0..100) {
                    0..=79 => ("push", REPO),
                    80..=84 => ("schedule", REPO),
                    85..=87 => ("workflow_dispatch", REPO),
                    // A fork's pull request from its own branch called `main`.
                    _ => ("pull_request", FORK),
                }
            } else if rng.random_bool(0.5) {
                ("push", REPO)
            } else {
                ("pull_request", REPO)
            };
            let created_at = now - secs(*ago);
            let never_started = rng.random_bool(0.5);
            let lint_notes = rng.random_bool(0.5);
            let duration = 60 + (rng.random::<f64>().powi(3) * 1200.0) as i64;
            let in_progress = *ago < 1800 && rng.random_bool(0.5);
            let attempts = if in_progress {
                1
            } else {
                match rng.random_range(0..100) {
                    0..=89 => 1,
                    90..=97 => 2,
                    _ => 3,
                }
            };
            let conclusion = if in_progress {
                None
            } else {
                Some(
                    match rng.random_range(0..100) {
                        0..=77 => "success",
                        78..=89 => "failure",
                        90..=93 => "cancelled",
                        94..=96 => "timed_out",
                        _ => "skipped",
                    }
                    .to_string(),
                )
            };
            let first_attempt_conclusion = (attempts > 1).then(|| {
                if rng.random_bool(0.7) {
                    "failure"
                } else {
                    "cancelled"
                }
                .to_string()
            });
            let rerun_delay = if attempts > 1 {
                rng.random_range(600..7200)
            } else {
                rng.random_range(0..20)
            };
            let run_started_at = (created_at + secs(rerun_delay)).min(now - secs(1));
            let updated_at = if in_progress {
                (run_started_at + secs(30)).min(now)
            } else {
                run_started_at + secs(duration)
            };
            // Jobs of every attempt; the last attempt's jobs carry the run's outcome.
            let mut run_jobs = Vec::new();
            for attempt in 1..=attempts {
                let attempt_conclusion = if attempt == attempts {
                    conclusion.clone()
                } else {
                    first_attempt_conclusion.clone()
                };
                let n = rng.random_range(1..=4);
                for j in 0..n {
                    let job_id = next_job;
                    next_job += 1;
                    let job_created = if attempt == attempts {
                        run_started_at + secs(rng.random_range(0..5))
                    } else {
                        created_at + secs(rng.random_range(0..5))
                    };
                    let queue = (rng.random::<f64>().powi(2) * 240.0) as i64;
                    let labels = if rng.random_bool(0.8) {
                        vec!["ubuntu-latest".to_string()]
                    } else {
                        vec!["self-hosted".to_string(), "gpu".to_string()]
                    };
                    let (job_conclusion, started) = match attempt_conclusion.as_deref() {
                        None => (None, (j == 0).then_some(job_created + secs(queue))),
                        Some("timed_out") if j == 0 => {
                            if rng.random_bool(0.5) {
                                (
                                    Some("timed_out".to_string()),
                                    Some(job_created + secs(queue)),
                                )
                            } else {
                                // Behind a long list of lint annotations half the time: the
                                // timeout is on a later page.
                                let mut notes: Vec<String> = if lint_notes {
                                    (0..130).map(|n| format!("lint warning {n}")).collect()
                                } else {
                                    Vec::new()
                                };
                                notes.push(TIMEOUT_ANNOTATION.to_string());
                                annotations.insert(job_id, notes);
                                (
                                    Some("cancelled".to_string()),
                                    Some(job_created + secs(queue)),
                                )
                            }
                        }
                        Some("cancelled") => {
                            annotations
                                .insert(job_id, vec!["The operation was canceled.".to_string()]);
                            // Half the cancelled runs were cancelled while queued: no job ran.
                            let started = (!never_started || attempt < attempts)
                                .then_some(job_created + secs(queue));
                            (Some("cancelled".to_string()), started)
                        }
                        Some("failure") if j == 0 => {
                            (Some("failure".to_string()), Some(job_created + secs(queue)))
                        }
                        // GitHub stamps skipped jobs as started: only the conclusion says so.
                        Some("skipped") => (Some("skipped".to_string()), Some(job_created)),
                        Some(_) => (Some("success".to_string()), Some(job_created + secs(queue))),
                    };
                    let completed_at = job_conclusion
                        .as_ref()
                        .and(started)
                        .map(|s| s + secs(rng.random_range(10..600)));
                    run_jobs.push(JobData {
                        id: job_id,
                        run_attempt: attempt,
                        conclusion: job_conclusion,
                        created_at: job_created,
                        started_at: started,
                        completed_at,
                        labels,
                    });
                }
            }
            jobs.insert(id, run_jobs);
            runs.push(RunData {
                id,
                workflow,
                branch,
                event: event.to_string(),
                head_repo: head_repo.to_string(),
                status: if in_progress {
                    "in_progress"
                } else {
                    "completed"
                }
                .to_string(),
                conclusion,
                run_attempt: attempts,
                created_at,
                run_started_at,
                updated_at,
                first_attempt_conclusion,
            });
        }
        runs.reverse();
        let mut h_runs = HistoryRuns {
            runs,
            jobs,
            annotations,
            next_job,
        };
        h_runs.superseded_latest(now);
        let HistoryRuns {
            runs,
            jobs,
            annotations,
            ..
        } = h_runs;

        // Pull requests over 30 days; merged ones into main become commits on main: a squash
        // commit, or a merge commit plus the PR's own commits (one change either way).
        let mut pulls = Vec::with_capacity(sizes.pulls);
        let mut mainline: Vec<CommitData> = Vec::new();
        let mut inner: Vec<(u64, Vec<CommitData>)> = Vec::new();
        for i in 0..sizes.pulls {
            let number = 1 + i as u64;
            let created_at = now - secs(rng.random_range(3600..30 * 86_400));
            let kind = rng.random_range(0..100);
            let (labels, head): (Vec<String>, String) = match kind {
                0..=5 => (vec!["hotfix".into()], format!("fix-{number}")),
                6..=9 => (vec![], format!("hotfix/{number}")),
                10..=14 => (vec!["force-merge".into()], format!("feature/{number}")),
                15..=17 => (vec!["revert".into()], format!("undo-{number}")),
                18..=19 => (vec![], format!("revert-{number}-thing")),
                _ => (vec!["enhancement".into()], format!("feature/{number}")),
            };
            let is_revert = (15..=19).contains(&kind);
            let is_hotfix = kind <= 9;
            let base = if rng.random_bool(0.9) {
                "main"
            } else {
                "release"
            }
            .to_string();
            let state_roll = rng.random_range(0..100);
            let (state, merged_at) = if state_roll < 70 {
                let ttm = (rng.random::<f64>().powi(2) * 96.0 * 3600.0) as i64 + 300;
                let merged = created_at + secs(ttm);
                if merged < now {
                    ("closed", Some(merged))
                } else {
                    ("open", None)
                }
            } else if state_roll < 80 {
                ("closed", None)
            } else {
                ("open", None)
            };
            let updated_at = match merged_at {
                Some(m) => (m + secs(rng.random_range(0..600))).min(now),
                None => (created_at + secs(rng.random_range(0..20 * 86_400))).min(now),
            };
            let title = if is_revert {
                format!("Revert \"Change number {}\"", number / 2)
            } else {
                format!("Change number {number}")
            };
            // The PR's own commits, oldest first.
            let last = merged_at.unwrap_or(now);
            let span = (last - created_at).num_seconds().max(3);
            let mut own: Vec<CommitData> = Vec::new();
            let commit = |rng: &mut StdRng, message: String, k: i64| CommitData {
                sha: sha(rng),
                message,
                date: created_at + secs(span * k / 4),
                parents: Vec::new(),
                change: format!("pr#{number}"),
                mainline: false,
            };
            if is_revert {
                let target = sha(&mut rng);
                own.push(commit(
                    &mut rng,
                    format!("{title}\n\nThis reverts commit {target}."),
                    1,
                ));
            } else if is_hotfix {
                own.push(commit(&mut rng, format!("hotfix: {title} part 1"), 1));
                own.push(commit(&mut rng, format!("hotfix: {title} part 2"), 2));
            } else if rng.random_bool(0.15) {
                // A branch that reverted one of its own commits before merging.
                let wip = commit(&mut rng, "wip".to_string(), 1);
                let undo = format!("Revert \"wip\"\n\nThis reverts commit {}.", wip.sha);
                own.push(wip);
                own.push(commit(&mut rng, undo, 2));
                own.push(commit(&mut rng, "final".to_string(), 3));
            } else {
                own.push(commit(&mut rng, format!("{title}: work"), 1));
            }
            let squash = rng.random_bool(0.6);
            let merge_commit_sha = merged_at.map(|_| sha(&mut rng));
            if let (Some(m), Some(s), "main") = (merged_at, &merge_commit_sha, base.as_str()) {
                let message = if squash {
                    let body: Vec<String> =
                        own.iter().map(|c| format!("* {}", c.message)).collect();
                    format!("{title} (#{number})\n\n{}", body.join("\n\n"))
                } else {
                    format!("Merge pull request #{number} from acme/{head}\n\n{title}")
                };
                mainline.push(CommitData {
                    sha: s.clone(),
                    message,
                    date: m,
                    parents: Vec::new(),
                    change: format!("pr#{number}"),
                    mainline: true,
                });
                if !squash {
                    inner.push((number, own.clone()));
                }
            }
            let approved = rng.random_bool(0.85);
            let late_approval = !approved && rng.random_bool(0.3);
            let checks_failed = rng.random_bool(0.1);
            pulls.push(PullData {
                number,
                title,
                state: state.to_string(),
                created_at,
                updated_at,
                merged_at,
                merge_commit_sha,
                labels,
                head,
                base,
                commits: own.iter().map(|c| c.sha.clone()).collect(),
                head_sha: sha(&mut rng),
                approved,
                late_approval,
                checks_failed,
            });
        }
        // Direct commits recognised by their message.
        for i in 0..(sizes.pulls / 20).max(8) {
            let date = now - secs(rng.random_range(60..9 * 86_400));
            let message = match i % 4 {
                0 => format!(
                    "Revert \"Change number {i}\"\n\nThis reverts commit {}.",
                    sha(&mut rng)
                ),
                1 => format!("hotfix: unbreak the build {i}"),
                2 => format!("[force merge] emergency config {i}"),
                _ => format!("chore: bump deps {i}"),
            };
            let sha = sha(&mut rng);
            mainline.push(CommitData {
                change: sha.clone(),
                sha,
                message,
                date,
                parents: Vec::new(),
                mainline: true,
            });
        }
        // The first-parent chain, oldest first; a merge commit's second parent is its PR's last
        // commit, whose own chain starts at the mainline commit before the merge.
        mainline.sort_by_key(|c| c.date);
        let inner: HashMap<u64, Vec<CommitData>> = inner.into_iter().collect();
        let mut commits = Vec::new();
        let mut previous = sha(&mut rng); // older than anything listed
        for mut c in mainline {
            c.parents.push(previous.clone());
            let pr: Option<u64> = c
                .message
                .strip_prefix("Merge pull request #")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok());
            if let Some(own) = pr.and_then(|n| inner.get(&n)) {
                let mut parent = previous.clone();
                for o in own {
                    let mut o = o.clone();
                    o.parents = vec![parent.clone()];
                    parent = o.sha.clone();
                    commits.push(o);
                }
                c.parents.push(parent);
            }
            previous = c.sha.clone();
            commits.push(c);
        }
        commits.sort_by_key(|c| std::cmp::Reverse(c.date));
        let commits_for_deployments = commits.clone();
        // Force pushes to main over ten days.
        let force_pushes = (0..6)
            .map(|i| ForcePush {
                id: 900 + i,
                after: sha(&mut rng),
                timestamp: now - secs(rng.random_range(60..10 * 86_400)),
            })
            .collect();

        let mut issues = Vec::with_capacity(sizes.issues);
        for i in 0..sizes.issues {
            let n = rng.random_range(1..=2);
            let mut labels: Vec<String> = (0..n)
                .map(|_| LABELS[rng.random_range(0..LABELS.len())].to_string())
                .collect();
            labels.dedup();
            let open = rng.random_bool(0.6);
            let created_at = now - secs(rng.random_range(600..30 * 86_400));
            let closed_at = (!open)
                .then(|| created_at + secs(rng.random_range(60..20 * 86_400)))
                .map(|c| c.min(now));
            issues.push(IssueData {
                number: 10_000 + i as u64,
                state: if open { "open" } else { "closed" }.to_string(),
                labels,
                is_pull: rng.random_bool(0.2),
                created_at,
                closed_at,
            });
        }
        issues.reverse();

        History {
            repo: REPO.to_string(),
            now,
            workflows,
            runs,
            jobs,
            annotations,
            commits,
            pulls,
            force_pushes,
            required_checks: vec!["Tests".to_string()],
            deployments: generate_deployments(seed, &commits_for_deployments, now),
            issues,
            deploy_runs: Vec::new(),
        }
    }

    /// A repository with nothing in it yet, at `now` (scenarios add what they need).
    pub fn empty(repo: &str, now: DateTime<Utc>) -> History {
        History {
            repo: repo.to_string(),
            now,
            workflows: Vec::new(),
            runs: Vec::new(),
            jobs: HashMap::new(),
            annotations: HashMap::new(),
            commits: Vec::new(),
            pulls: Vec::new(),
            force_pushes: Vec::new(),
            required_checks: Vec::new(),
            issues: Vec::new(),
            deployments: Vec::new(),
            deploy_runs: Vec::new(),
        }
    }
}

/// Deployments of the first-parent chain, with their own random stream (so adding them left
/// every other part of a seed's history as it was): to `production` every third commit on
/// `main` (20 minutes after it; about one in eight ends `failure` or `error`, and one is a
/// rollback to the sha deployed two before it), to `staging` every commit.
fn generate_deployments(
    seed: u64,
    commits: &[CommitData],
    now: DateTime<Utc>,
) -> Vec<DeploymentData> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00de_9107);
    let mut mainline: Vec<&CommitData> = commits.iter().filter(|c| c.mainline).collect();
    mainline.sort_by_key(|c| c.date);
    let mut out = Vec::new();
    let mut id = 7_000_000_u64;
    let mut production: Vec<String> = Vec::new();
    let push = |out: &mut Vec<DeploymentData>,
                id: &mut u64,
                sha: &str,
                env: &str,
                at: DateTime<Utc>,
                state: &str,
                took: i64| {
        *id += 1;
        out.push(DeploymentData {
            id: *id,
            sha: sha.to_string(),
            environment: env.to_string(),
            created_at: at,
            statuses: vec![
                ("in_progress".into(), at + secs(30)),
                (state.to_string(), at + secs(took)),
            ],
        });
    };
    for (i, c) in mainline.iter().enumerate() {
        let at = c.date + secs(1200);
        if at + secs(3600) > now {
            continue;
        }
        let took = rng.random_range(120..900);
        push(&mut out, &mut id, &c.sha, "staging", at, "success", took);
        if i % 3 != 0 {
            continue;
        }
        let state = match rng.random_range(0..16) {
            0 => "failure",
            1 => "error",
            _ => "success",
        };
        push(
            &mut out,
            &mut id,
            &c.sha,
            "production",
            at + secs(600),
            state,
            took,
        );
        if state == "success" {
            production.push(c.sha.clone());
        }
        if production.len() == 12 {
            // A rollback to the sha deployed two before.
            let back = production[9].clone();
            push(
                &mut out,
                &mut id,
                &back,
                "production",
                at + secs(2400),
                "success",
                200,
            );
            production.push(back);
        }
    }
    out
}

/// The runs part of a history while it is being shaped.
struct HistoryRuns {
    runs: Vec<RunData>,
    jobs: HashMap<u64, Vec<JobData>>,
    annotations: HashMap<u64, Vec<String>>,
    next_job: u64,
}

impl HistoryRuns {
    /// Shape the newest runs of workflow 0 ("Tests") on `main` as a busy repository has them:
    /// the newest is in progress, the one before was cancelled (superseded, no verdict), a
    /// fork's pull-request run on its `main` failed in between, and the newest verdict is a
    /// success.
    fn superseded_latest(&mut self, now: DateTime<Utc>) {
        let own: Vec<usize> = self
            .runs
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.workflow == 0 && r.branch == "main" && r.event == "push" && r.head_repo == REPO
            })
            .map(|(i, _)| i)
            .take(3)
            .collect();
        let [newest, cancelled, verdict] = own[..] else {
            return;
        };
        self.set_outcome(newest, None);
        self.set_outcome(cancelled, Some("cancelled"));
        self.set_outcome(verdict, Some("success"));
        // The fork run: created just after the cancelled one, listed before it.
        let base = self.runs[cancelled].clone();
        let id = base.id + 1;
        let job = JobData {
            id: self.next_job,
            run_attempt: 1,
            conclusion: Some("failure".into()),
            created_at: base.created_at + secs(2),
            started_at: Some(base.created_at + secs(5)),
            completed_at: Some(base.created_at + secs(65)),
            labels: vec!["ubuntu-latest".into()],
        };
        self.next_job += 1;
        self.jobs.insert(id, vec![job]);
        let fork = RunData {
            id,
            event: "pull_request".into(),
            head_repo: FORK.into(),
            status: "completed".into(),
            conclusion: Some("failure".into()),
            run_attempt: 1,
            created_at: base.created_at + secs(1),
            run_started_at: base.created_at + secs(1),
            updated_at: (base.created_at + secs(70)).min(now),
            first_attempt_conclusion: None,
            ..base
        };
        self.runs.insert(cancelled, fork);
    }

    /// Make run `i` a single-attempt run with `conclusion` (`None`: still in progress), its jobs
    /// consistent with it.
    fn set_outcome(&mut self, i: usize, conclusion: Option<&str>) {
        let r = &mut self.runs[i];
        r.conclusion = conclusion.map(str::to_string);
        r.status = if conclusion.is_some() {
            "completed"
        } else {
            "in_progress"
        }
        .into();
        r.run_attempt = 1;
        r.first_attempt_conclusion = None;
        r.run_started_at = r.created_at + secs(3);
        r.updated_at = r.run_started_at + secs(300);
        let (created, started) = (r.created_at, r.run_started_at);
        let jobs = self.jobs.entry(r.id).or_default();
        jobs.retain(|j| j.run_attempt == 1);
        for j in jobs.iter_mut() {
            self.annotations.remove(&j.id);
            j.created_at = created + secs(1);
            j.started_at = Some(started + secs(2));
            j.conclusion = conclusion.map(str::to_string);
            j.completed_at = conclusion.map(|_| started + secs(200));
        }
    }
}
