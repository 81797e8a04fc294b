//! `github_commits`: commit hygiene of one branch — reverts, hotfixes, force merges, commit count.
//!
//! Commits come from `GET /repos/{o}/{r}/commits?sha=BRANCH&since=…`, with `since` rounded down
//! to the day so the URL stays the same all day and repeated runs are answered 304 (the exact
//! window is applied locally).
//!
//! **Changes, not commits.** A merged pull request brings a merge commit *and* its branch's
//! commits into the history; counting both would count one revert twice. So commits are grouped
//! into changes: the first-parent chain from the branch head gives the commits that landed, and
//! every other listed commit belongs to the merge commit whose second parent reaches it. A change
//! is identified by its pull request (`pr#123`, matched on `merge_commit_sha` from the
//! closed-pulls listing) when it has one, else by the sha of the commit that landed it, and it
//! counts in the window when that commit is dated inside it. A change matches a rule when one of
//! its commits' messages, or its pull request (title, labels, head branch), does.
//!
//! **Reverts on the branch.** A commit whose every `This reverts commit X` names a commit of its
//! own change (a branch that reverted its own work-in-progress, quoted by a squash commit's body
//! or brought in by a merge) is not a revert on the branch. For a squash commit the PR's commits
//! are read once (`GET /pulls/{n}/commits`) and kept.
//!
//! **Force merges** are the union of: changes matching the `[force merge]` convention rules;
//! pull requests merged without an approving review submitted before the merge
//! (`GET /pulls/{n}/reviews`, once per merged PR); pull requests whose head commit had a failing
//! required check (`GET /commits/{sha}/check-runs`, once per merged PR; required checks from
//! `required_checks` or the branch's protection, `GET /branches/{branch}`, conditional); and force
//! pushes to the branch (`GET /activity?ref=…&activity_type=force_push`, conditional). Each part
//! also has its own signal.
//!
//! Signals are listed in docs/collectors.md (kept in step by a test).

mod changes;
mod fetch;
pub(super) mod rules;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{GithubSource, Repo, counted_observation, day_floor, save_state, window};
use crate::collectors::{
    BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind,
};
use crate::github::cache::PageCache;
use crate::github::client::{GithubClient, decode};
use crate::github::models::{Commit, PullItem, closed_pulls_key, pull_items};
use crate::observation::SelfMetric;
use crate::observation::{Observation, Value};
use changes::{Change, CommitItem, group_changes};
use rules::Rule;

pub const KIND: CollectorKind = CollectorKind {
    name: "github_commits",
    description: "commit hygiene of a branch: reverts, hotfixes, force merges, commit count",
    signals: &[
        "commits.count",
        "commits.reverts",
        "commits.hotfixes",
        "commits.force_merges",
        "commits.force_pushes",
        "commits.unapproved_merges",
        "commits.failing_check_merges",
    ],
    tags: &["repo", "branch"],
    self_metrics: super::SELF_METRICS,
    build,
};

/// The line a revert commit names what it reverts with (`git revert` writes it); group 1 is the
/// sha. Shared with `github_deployments`, which finds the deployment that shipped it.
pub(super) const REVERT_REF: &str = "(?m)^This reverts commit ([0-9a-fA-F]{7,40})";

/// Bumped when what is stored changes meaning: older state is dropped and rebuilt.
const STATE_VERSION: u32 = 2;
/// Conclusions of a required check that make a merge a force merge.
const FAILING_CHECK: &[&str] = &[
    "failure",
    "timed_out",
    "cancelled",
    "action_required",
    "startup_failure",
    "stale",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitsOptions {
    #[serde(default)]
    window: Option<String>,
    #[serde(default = "default_revert_patterns")]
    revert_patterns: Vec<String>,
    #[serde(default = "default_revert_labels")]
    revert_labels: Vec<String>,
    #[serde(default = "default_revert_prefixes")]
    revert_branch_prefixes: Vec<String>,
    #[serde(default = "default_hotfix_patterns")]
    hotfix_patterns: Vec<String>,
    #[serde(default = "default_hotfix_labels")]
    hotfix_labels: Vec<String>,
    #[serde(default = "default_hotfix_prefixes")]
    hotfix_branch_prefixes: Vec<String>,
    #[serde(default = "default_force_patterns")]
    force_merge_patterns: Vec<String>,
    #[serde(default = "default_force_labels")]
    force_merge_labels: Vec<String>,
    #[serde(default)]
    force_merge_branch_prefixes: Vec<String>,
    /// Count force pushes to the branch as force merges (repository activity API).
    #[serde(default = "yes")]
    count_force_pushes: bool,
    /// Count PRs merged without an approving review as force merges.
    #[serde(default = "yes")]
    count_unapproved_merges: bool,
    /// Count PRs merged with a failing required check as force merges.
    #[serde(default = "yes")]
    count_failing_check_merges: bool,
    /// Names of the required checks; default: the branch protection's required status checks.
    #[serde(default)]
    required_checks: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
pub(super) fn default_revert_patterns() -> Vec<String> {
    strings(&["^Revert \"", "(?m)^This reverts commit [0-9a-f]{7,40}"])
}
pub(super) fn default_revert_labels() -> Vec<String> {
    strings(&["revert"])
}
pub(super) fn default_revert_prefixes() -> Vec<String> {
    strings(&["revert-"])
}
pub(super) fn default_hotfix_patterns() -> Vec<String> {
    strings(&["(?i)^\\s*(\\[hotfix\\]|hotfix\\b)"])
}
pub(super) fn default_hotfix_labels() -> Vec<String> {
    strings(&["hotfix"])
}
pub(super) fn default_hotfix_prefixes() -> Vec<String> {
    strings(&["hotfix/", "hotfix-"])
}
fn default_force_patterns() -> Vec<String> {
    strings(&["(?i)\\[force[- ]merge\\]"])
}
fn default_force_labels() -> Vec<String> {
    strings(&["force-merge", "force merge"])
}

pub struct CommitsCollector {
    source: GithubSource,
    window: TimeDelta,
    reverts: Rule,
    hotfixes: Rule,
    force_merges: Rule,
    count_force_pushes: bool,
    count_unapproved: bool,
    count_failing_checks: bool,
    required_checks: Option<Vec<String>>,
    revert_ref: Regex,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let (source, o): (_, CommitsOptions) = GithubSource::build_with(ctx)?;
    Ok(Arc::new(CommitsCollector {
        source,
        window: window(&o.window)?,
        reverts: Rule::new(
            "revert_patterns",
            &o.revert_patterns,
            o.revert_labels,
            o.revert_branch_prefixes,
        )?,
        hotfixes: Rule::new(
            "hotfix_patterns",
            &o.hotfix_patterns,
            o.hotfix_labels,
            o.hotfix_branch_prefixes,
        )?,
        force_merges: Rule::new(
            "force_merge_patterns",
            &o.force_merge_patterns,
            o.force_merge_labels,
            o.force_merge_branch_prefixes,
        )?,
        count_force_pushes: o.count_force_pushes,
        count_unapproved: o.count_unapproved_merges,
        count_failing_checks: o.count_failing_check_merges,
        required_checks: o.required_checks,
        revert_ref: Regex::new(REVERT_REF)
            .map_err(|e| BuildError::new(format!("internal revert pattern: {e}")))?,
    }))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CommitsState {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    commits: PageCache,
    #[serde(default)]
    pulls: PageCache,
    #[serde(default)]
    activity: PageCache,
    #[serde(default)]
    branch: PageCache,
    /// Commits of merged PRs (immutable once merged), by PR number.
    #[serde(default)]
    pr_commits: BTreeMap<u64, Vec<String>>,
    /// Whether a merged PR had an approving review submitted before its merge.
    #[serde(default)]
    approved: BTreeMap<u64, bool>,
    /// Latest check-run conclusion per check name on a merged PR's head commit.
    #[serde(default)]
    checks: BTreeMap<u64, BTreeMap<String, String>>,
}

impl crate::collectors::github::RepoState for CommitsState {
    const VERSION: u32 = STATE_VERSION;

    fn version(&self) -> u32 {
        self.version
    }

    fn fresh() -> Self {
        CommitsState {
            version: STATE_VERSION,
            ..CommitsState::default()
        }
    }
}

impl CommitsCollector {
    async fn collect_repo(
        &self,
        ctx: &CollectContext,
        client: Arc<GithubClient>,
        repo: &Repo,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let (key, mut state): (String, CommitsState) =
            self.source.load_state(ctx, repo, "commits").await?;
        let client = &*client;
        let window_start = now - self.window;
        let since = day_floor(window_start)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let branch = self.source.branch_param();
        let first = format!(
            "/repos/{}/commits?sha={branch}&since={since}&per_page=100",
            repo.full
        );
        let commits = client
            .list(
                &mut state.commits,
                first,
                |k, body| {
                    let commits: Vec<Commit> = decode(k, body)?;
                    Ok(commits
                        .into_iter()
                        .map(|c| CommitItem {
                            sha: c.sha,
                            date: c
                                .commit
                                .committer
                                .and_then(|a| a.date)
                                .or(c.commit.author.and_then(|a| a.date)),
                            message: c.commit.message,
                            parents: c.parents.into_iter().map(|p| p.sha).collect(),
                        })
                        .collect())
                },
                |_| false,
            )
            .await?;
        let pulls = client
            .list(
                &mut state.pulls,
                closed_pulls_key(&repo.full),
                pull_items,
                |page: &[PullItem]| page.iter().any(|p| p.updated_at < window_start),
            )
            .await?;
        let by_merge_sha: HashMap<&str, &PullItem> = pulls
            .iter()
            .filter(|p| p.merged_at.is_some() && p.base == self.source.branch)
            .filter_map(|p| p.merge_commit_sha.as_deref().map(|s| (s, p)))
            .collect();
        let changes = group_changes(&commits, &by_merge_sha);
        let in_window: Vec<&Change> = changes
            .iter()
            .filter(|c| c.landed.date.is_some_and(|d| d >= window_start && d <= now))
            .collect();
        let prs: Vec<&PullItem> = in_window.iter().filter_map(|c| c.pr).collect();

        let wanted = self.prs_needing_commits(&in_window, &state);
        // What the details cost is most of a first run: when the run's request budget runs out
        // part way, what was fetched is kept, so the next run goes on from there.
        let details = async {
            self.fetch_pr_commits(client, repo, &mut state, wanted)
                .await?;
            if self.count_unapproved {
                self.fetch_reviews(client, repo, &mut state, &prs).await?;
            }
            let required = if self.count_failing_checks {
                self.required_checks(client, repo, &mut state).await
            } else {
                Vec::new()
            };
            if !required.is_empty() {
                self.fetch_checks(client, repo, &mut state, &prs).await?;
            }
            anyhow::Ok(required)
        }
        .await;
        let required = match details {
            Ok(r) => r,
            Err(e) => {
                save_state(ctx, &key, &state).await?;
                return Err(e);
            }
        };
        let force_pushes = if self.count_force_pushes {
            self.force_pushes(client, repo, &mut state, window_start, now)
                .await
        } else {
            None
        };
        let numbers: BTreeSet<u64> = prs.iter().map(|p| p.number).collect();
        state.pr_commits.retain(|n, _| numbers.contains(n));
        state.approved.retain(|n, _| numbers.contains(n));
        state.checks.retain(|n, _| numbers.contains(n));
        state.commits.retain_touched();
        state.pulls.retain_touched();
        state.activity.retain_touched();
        state.branch.retain_touched();
        save_state(ctx, &key, &state).await?;

        let keys = |rule: &Rule, reverts: bool| -> Vec<String> {
            in_window
                .iter()
                .filter(|ch| {
                    let own = ch
                        .pr
                        .and_then(|p| state.pr_commits.get(&p.number))
                        .map(Vec::as_slice)
                        .unwrap_or(&[]);
                    self.matches(rule, ch, own, reverts)
                })
                .map(|ch| ch.key.clone())
                .collect()
        };
        let unapproved: Vec<String> = in_window
            .iter()
            .filter(|ch| {
                self.count_unapproved
                    && ch
                        .pr
                        .is_some_and(|p| state.approved.get(&p.number) == Some(&false))
            })
            .map(|ch| ch.key.clone())
            .collect();
        let failing: Vec<String> = in_window
            .iter()
            .filter(|ch| {
                ch.pr.is_some_and(|p| {
                    state.checks.get(&p.number).is_some_and(|runs| {
                        required.iter().any(|name| {
                            runs.get(name)
                                .is_some_and(|c| FAILING_CHECK.contains(&c.as_str()))
                        })
                    })
                })
            })
            .map(|ch| ch.key.clone())
            .collect();
        let mut force: BTreeSet<String> = keys(&self.force_merges, false).into_iter().collect();
        force.extend(unapproved.iter().cloned());
        force.extend(failing.iter().cloned());
        force.extend(force_pushes.iter().flatten().cloned());

        let tag = |o: Observation| {
            o.with_tag("repo", &repo.full)
                .with_tag("branch", &self.source.branch)
        };
        let commit_count = commits
            .iter()
            .filter(|c| c.date.is_some_and(|d| d >= window_start && d <= now))
            .count();
        let at = ctx.now;
        let mut out = vec![
            tag(Observation::new(
                "commits.count",
                Value::Number(commit_count as f64),
                at,
            )),
            tag(counted_observation(
                "commits.reverts",
                keys(&self.reverts, true),
                at,
            )),
            tag(counted_observation(
                "commits.hotfixes",
                keys(&self.hotfixes, false),
                at,
            )),
            tag(counted_observation(
                "commits.force_merges",
                force.into_iter().collect(),
                at,
            )),
        ];
        if let Some(pushes) = force_pushes {
            out.push(tag(counted_observation("commits.force_pushes", pushes, at)));
        }
        if self.count_unapproved {
            out.push(tag(counted_observation(
                "commits.unapproved_merges",
                unapproved,
                at,
            )));
        }
        if !required.is_empty() {
            out.push(tag(counted_observation(
                "commits.failing_check_merges",
                failing,
                at,
            )));
        }
        Ok(out)
    }
}

impl Collector for CommitsCollector {
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
