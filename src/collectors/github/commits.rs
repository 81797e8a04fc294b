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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{GithubSource, Repo, counted_observation, day_floor, save_state, window};
use crate::collectors::{
    BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind, SelfMetric,
};
use crate::github::cache::PageCache;
use crate::github::client::{GithubClient, decode};
use crate::github::models::{
    Activity, Branch, CheckRunsPage, Commit, PullItem, Review, closed_pulls_key, pull_items,
};
use crate::observation::{Observation, Value};

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
fn default_revert_patterns() -> Vec<String> {
    strings(&["^Revert \"", "(?m)^This reverts commit [0-9a-f]{7,40}"])
}
fn default_revert_labels() -> Vec<String> {
    strings(&["revert"])
}
fn default_revert_prefixes() -> Vec<String> {
    strings(&["revert-"])
}
fn default_hotfix_patterns() -> Vec<String> {
    strings(&["(?i)^\\s*(\\[hotfix\\]|hotfix\\b)"])
}
fn default_hotfix_labels() -> Vec<String> {
    strings(&["hotfix"])
}
fn default_hotfix_prefixes() -> Vec<String> {
    strings(&["hotfix/", "hotfix-"])
}
fn default_force_patterns() -> Vec<String> {
    strings(&["(?i)\\[force[- ]merge\\]"])
}
fn default_force_labels() -> Vec<String> {
    strings(&["force-merge", "force merge"])
}

/// One kind of commit to count, and how to recognise it.
#[derive(Debug)]
struct Rule {
    patterns: Vec<Regex>,
    labels: Vec<String>,
    prefixes: Vec<String>,
}

impl Rule {
    fn new(
        key: &str,
        patterns: &[String],
        labels: Vec<String>,
        prefixes: Vec<String>,
    ) -> Result<Rule, BuildError> {
        let patterns = patterns
            .iter()
            .map(|p| {
                Regex::new(p)
                    .map_err(|e| BuildError::at(key, format!("invalid pattern {p:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            patterns,
            labels: labels.into_iter().map(|l| l.to_lowercase()).collect(),
            prefixes,
        })
    }

    fn matches_message(&self, message: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(message))
    }

    fn matches_pull(&self, pr: &PullItem) -> bool {
        self.patterns.iter().any(|p| p.is_match(&pr.title))
            || pr
                .labels
                .iter()
                .any(|l| self.labels.contains(&l.to_lowercase()))
            || self
                .prefixes
                .iter()
                .any(|p| pr.head.starts_with(p.as_str()))
    }

    #[cfg(test)]
    fn matches(&self, message: &str, pull: Option<&PullItem>) -> bool {
        self.matches_message(message) || pull.is_some_and(|p| self.matches_pull(p))
    }
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
        revert_ref: Regex::new("(?m)^This reverts commit ([0-9a-fA-F]{7,40})")
            .map_err(|e| BuildError::new(format!("internal revert pattern: {e}")))?,
    }))
}

/// What is kept of a commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CommitItem {
    sha: String,
    message: String,
    date: Option<DateTime<Utc>>,
    #[serde(default)]
    parents: Vec<String>,
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

/// One change: the commit that landed it on the branch and the commits it brought in.
#[derive(Debug)]
struct Change<'a> {
    key: String,
    landed: &'a CommitItem,
    commits: Vec<&'a CommitItem>,
    pr: Option<&'a PullItem>,
}

/// Group commits (newest first, as listed) into changes; see the module docs.
fn group_changes<'a>(
    commits: &'a [CommitItem],
    by_merge_sha: &HashMap<&str, &'a PullItem>,
) -> Vec<Change<'a>> {
    let by_sha: HashMap<&str, &CommitItem> = commits.iter().map(|c| (c.sha.as_str(), c)).collect();
    let mut mainline: Vec<&CommitItem> = Vec::new();
    let mut on_mainline: HashSet<&str> = HashSet::new();
    let mut cur = commits.first();
    while let Some(c) = cur {
        if !on_mainline.insert(c.sha.as_str()) {
            break;
        }
        mainline.push(c);
        cur = c
            .parents
            .first()
            .and_then(|p| by_sha.get(p.as_str()).copied());
    }
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, m) in mainline.iter().enumerate() {
        let mut stack: Vec<&str> = m.parents.iter().skip(1).map(String::as_str).collect();
        while let Some(sha) = stack.pop() {
            if on_mainline.contains(sha) || owner.contains_key(sha) {
                continue;
            }
            let Some(c) = by_sha.get(sha) else { continue };
            owner.insert(c.sha.as_str(), i);
            stack.extend(c.parents.iter().map(String::as_str));
        }
    }
    let mut groups: Vec<(&CommitItem, Vec<&CommitItem>)> =
        mainline.iter().map(|m| (*m, vec![*m])).collect();
    for c in commits {
        match owner.get(c.sha.as_str()) {
            Some(i) => groups[*i].1.push(c),
            // Not reachable through parents (e.g. a listing without parents): its own change.
            None if !on_mainline.contains(c.sha.as_str()) => groups.push((c, vec![c])),
            None => {}
        }
    }
    let mut changes: BTreeMap<String, Change<'a>> = BTreeMap::new();
    for (landed, members) in groups {
        let pr = by_merge_sha.get(landed.sha.as_str()).copied();
        let key = match pr {
            Some(p) => format!("pr#{}", p.number),
            None => landed.sha.clone(),
        };
        match changes.get_mut(&key) {
            Some(ch) => ch.commits.extend(members),
            None => {
                changes.insert(
                    key.clone(),
                    Change {
                        key,
                        landed,
                        commits: members,
                        pr,
                    },
                );
            }
        }
    }
    changes.into_values().collect()
}

impl CommitsCollector {
    /// The shas a commit message says it reverts.
    fn reverted<'m>(&self, message: &'m str) -> Vec<&'m str> {
        self.revert_ref
            .captures_iter(message)
            .filter_map(|c| c.get(1).map(|m| m.as_str()))
            .collect()
    }

    /// Whether every commit `message` reverts belongs to the same change (or its PR).
    fn reverts_only_its_own(&self, message: &str, change: &Change, pr_commits: &[String]) -> bool {
        let refs = self.reverted(message);
        !refs.is_empty()
            && refs.iter().all(|r| {
                let r = r.to_ascii_lowercase();
                change.commits.iter().any(|c| c.sha.starts_with(&r))
                    || pr_commits.iter().any(|c| c.starts_with(&r))
            })
    }

    fn matches(&self, rule: &Rule, change: &Change, pr_commits: &[String], reverts: bool) -> bool {
        change.commits.iter().any(|c| {
            rule.matches_message(&c.message)
                && !(reverts && self.reverts_only_its_own(&c.message, change, pr_commits))
        }) || change.pr.is_some_and(|p| rule.matches_pull(p))
    }

    /// PRs whose commits are needed to tell a self-revert from a revert on the branch.
    fn prs_needing_commits(&self, changes: &[&Change], state: &CommitsState) -> Vec<u64> {
        changes
            .iter()
            .filter_map(|ch| {
                let pr = ch.pr?;
                if state.pr_commits.contains_key(&pr.number) {
                    return None;
                }
                let unresolved = ch.commits.iter().any(|c| {
                    self.reverted(&c.message).iter().any(|r| {
                        let r = r.to_ascii_lowercase();
                        !ch.commits.iter().any(|x| x.sha.starts_with(&r))
                    })
                });
                unresolved.then_some(pr.number)
            })
            .collect()
    }

    async fn collect_repo(
        &self,
        ctx: &CollectContext,
        client: Arc<GithubClient>,
        repo: &Repo,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let key = self.source.state_key(repo, "commits");
        let mut state: CommitsState = ctx.state.get_json(&key).await?.unwrap_or_default();
        if state.version != STATE_VERSION {
            state = CommitsState {
                version: STATE_VERSION,
                ..CommitsState::default()
            };
        }
        let client = &*client;
        let window_start = now - self.window;
        let since = day_floor(window_start)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let branch: String =
            url::form_urlencoded::byte_serialize(self.source.branch.as_bytes()).collect();
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

    async fn fetch_pr_commits(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut CommitsState,
        wanted: Vec<u64>,
    ) -> anyhow::Result<()> {
        let limit = self.source.settings.policy.max_concurrency;
        let mut results = futures::stream::iter(wanted.into_iter().map(|n| async move {
            let mut shas = Vec::new();
            let pages: Vec<Vec<Commit>> = client
                .get_all_pages(format!(
                    "/repos/{}/pulls/{n}/commits?per_page=100",
                    repo.full
                ))
                .await?;
            shas.extend(
                pages
                    .into_iter()
                    .flatten()
                    .map(|c| c.sha.to_ascii_lowercase()),
            );
            anyhow::Ok((n, shas))
        }))
        .buffer_unordered(limit);
        while let Some(r) = results.next().await {
            let (n, shas) = r?;
            state.pr_commits.insert(n, shas);
        }
        Ok(())
    }

    /// Whether each merged PR had an approving review before it was merged (once per PR: a
    /// review submitted later cannot change that).
    async fn fetch_reviews(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut CommitsState,
        prs: &[&PullItem],
    ) -> anyhow::Result<()> {
        let wanted: Vec<(u64, DateTime<Utc>)> = prs
            .iter()
            .filter(|p| !state.approved.contains_key(&p.number))
            .filter_map(|p| p.merged_at.map(|m| (p.number, m)))
            .collect();
        let limit = self.source.settings.policy.max_concurrency;
        let mut results = futures::stream::iter(wanted.into_iter().map(|(n, merged)| async move {
            let pages: Vec<Vec<Review>> = client
                .get_all_pages(format!(
                    "/repos/{}/pulls/{n}/reviews?per_page=100",
                    repo.full
                ))
                .await?;
            let approved = pages.iter().flatten().any(|r| {
                r.state.eq_ignore_ascii_case("approved")
                    && r.submitted_at.is_some_and(|t| t <= merged)
            });
            anyhow::Ok((n, approved))
        }))
        .buffer_unordered(limit);
        while let Some(r) = results.next().await {
            let (n, approved) = r?;
            state.approved.insert(n, approved);
        }
        Ok(())
    }

    /// The required checks: configured, or read from the branch's protection. Unreadable
    /// protection is logged and leaves the rule out (never a guess).
    async fn required_checks(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut CommitsState,
    ) -> Vec<String> {
        if let Some(r) = &self.required_checks {
            return r.clone();
        }
        let branch: String =
            url::form_urlencoded::byte_serialize(self.source.branch.as_bytes()).collect();
        let key = format!("/repos/{}/branches/{branch}", repo.full);
        let listed = client
            .list(
                &mut state.branch,
                key,
                |k, body| {
                    let b: Branch = decode(k, body)?;
                    Ok(vec![
                        b.protection
                            .and_then(|p| p.required_status_checks)
                            .map(|r| r.contexts)
                            .unwrap_or_default(),
                    ])
                },
                |_| true,
            )
            .await;
        match listed {
            Ok(v) => v.into_iter().flatten().collect(),
            Err(e) => {
                tracing::warn!(
                    "collector {}: {}: cannot read the protection of branch {} ({e}); merges with failing required checks are not counted (set `required_checks` to name them)",
                    self.source.instance,
                    repo.full,
                    self.source.branch
                );
                Vec::new()
            }
        }
    }

    async fn fetch_checks(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut CommitsState,
        prs: &[&PullItem],
    ) -> anyhow::Result<()> {
        let wanted: Vec<(u64, String)> = prs
            .iter()
            .filter(|p| !state.checks.contains_key(&p.number))
            .filter_map(|p| p.head_sha.clone().map(|s| (p.number, s)))
            .collect();
        let limit = self.source.settings.policy.max_concurrency;
        let mut results = futures::stream::iter(wanted.into_iter().map(|(n, sha)| async move {
            let mut latest: BTreeMap<String, (u64, String)> = BTreeMap::new();
            let pages: Vec<CheckRunsPage> = client
                .get_all_pages(format!(
                    "/repos/{}/commits/{sha}/check-runs?per_page=100",
                    repo.full
                ))
                .await?;
            for page in pages {
                for run in page.check_runs {
                    let conclusion = run
                        .conclusion
                        .clone()
                        .unwrap_or_else(|| run.status.clone().unwrap_or_default());
                    // A check re-run keeps its name: the newest run (highest id) decides.
                    if latest.get(&run.name).is_none_or(|(id, _)| run.id > *id) {
                        latest.insert(run.name.clone(), (run.id, conclusion));
                    }
                }
            }
            anyhow::Ok((n, latest.into_iter().map(|(k, (_, c))| (k, c)).collect()))
        }))
        .buffer_unordered(limit);
        while let Some(r) = results.next().await {
            let (n, runs) = r?;
            state.checks.insert(n, runs);
        }
        Ok(())
    }

    /// Force pushes to the branch in the window, as ids (the sha pushed); `None` when the
    /// activity API cannot be read (logged).
    async fn force_pushes(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut CommitsState,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Vec<String>> {
        let branch: String = url::form_urlencoded::byte_serialize(
            format!("refs/heads/{}", self.source.branch).as_bytes(),
        )
        .collect();
        let key = format!(
            "/repos/{}/activity?ref={branch}&activity_type=force_push&per_page=100",
            repo.full
        );
        let listed = client
            .list(
                &mut state.activity,
                key,
                decode::<Vec<Activity>>,
                |page: &[Activity]| page.iter().any(|a| a.timestamp < window_start),
            )
            .await;
        match listed {
            Ok(items) => Some(
                items
                    .into_iter()
                    .filter(|a| a.timestamp >= window_start && a.timestamp <= now)
                    .map(|a| a.after.unwrap_or_else(|| format!("activity:{}", a.id)))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(
                    "collector {}: {}: cannot read force pushes from the activity API ({e}); `commits.force_pushes` is left out and `commits.force_merges` counts the other kinds only",
                    self.source.instance,
                    repo.full
                );
                None
            }
        }
    }
}

impl Collector for CommitsCollector {
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
    fn default_rules_recognise_the_usual_spellings() {
        let revert = Rule::new(
            "r",
            &default_revert_patterns(),
            default_revert_labels(),
            default_revert_prefixes(),
        )
        .unwrap();
        assert!(revert.matches("Revert \"Add x\"\n\nThis reverts commit abcdef1.", None));
        assert!(!revert.matches("Reverting nothing", None));
        let hotfix = Rule::new(
            "h",
            &default_hotfix_patterns(),
            default_hotfix_labels(),
            default_hotfix_prefixes(),
        )
        .unwrap();
        assert!(hotfix.matches("hotfix: fix the build", None));
        assert!(hotfix.matches("[HOTFIX] fix", None));
        assert!(!hotfix.matches("add hotfixes docs", None));
        let pr = PullItem {
            number: 1,
            title: "x".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            merged_at: None,
            merge_commit_sha: None,
            labels: vec!["HotFix".into()],
            head: "feature".into(),
            base: "main".into(),
            head_sha: None,
        };
        assert!(hotfix.matches("plain", Some(&pr)));
        let err = Rule::new("x", &["(".into()], vec![], vec![]).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("x"));
        assert!(err.message.contains("x"));
    }

    fn commit(sha: &str, message: &str, parents: &[&str]) -> CommitItem {
        CommitItem {
            sha: sha.into(),
            message: message.into(),
            date: Some(Utc::now()),
            parents: parents.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn collector() -> CommitsCollector {
        let ctx = BuildContext {
            name: "commits",
            options: toml::from_str("repo = \"o/r\"").expect("test options parse"),
            config_dir: std::path::PathBuf::from("."),
        };
        let (source, o): (_, CommitsOptions) =
            GithubSource::build_with(&ctx).expect("default options are valid");
        CommitsCollector {
            source,
            window: TimeDelta::days(7),
            reverts: Rule::new(
                "r",
                &o.revert_patterns,
                o.revert_labels,
                o.revert_branch_prefixes,
            )
            .expect("defaults"),
            hotfixes: Rule::new(
                "h",
                &o.hotfix_patterns,
                o.hotfix_labels,
                o.hotfix_branch_prefixes,
            )
            .expect("defaults"),
            force_merges: Rule::new(
                "f",
                &o.force_merge_patterns,
                o.force_merge_labels,
                o.force_merge_branch_prefixes,
            )
            .expect("defaults"),
            count_force_pushes: true,
            count_unapproved: true,
            count_failing_checks: true,
            required_checks: None,
            revert_ref: Regex::new("(?m)^This reverts commit ([0-9a-fA-F]{7,40})").expect("valid"),
        }
    }

    #[test]
    fn a_merged_revert_is_one_change_and_a_self_revert_is_none() {
        let c = collector();
        // main: m3 (merge of PR 7: r1 reverting a main commit) <- s2 (squash of PR 8 quoting a
        // revert of its own wip commit) <- d1 (direct).
        let commits = vec![
            commit(
                "m3",
                "Merge pull request #7 from o/undo\n\nRevert \"x\"",
                &["s2", "r1"],
            ),
            commit(
                "r1",
                "Revert \"x\"\n\nThis reverts commit d1d1d1d1.",
                &["s2"],
            ),
            commit(
                "s2",
                "Feature (#8)\n\n* wip\n\n* Revert \"wip\"\n\nThis reverts commit abcdef12.",
                &["d1d1d1d1"],
            ),
            commit("d1d1d1d1", "hotfix: direct", &["old"]),
        ];
        let pr = |n: u64, sha: &str, labels: &[&str]| PullItem {
            number: n,
            title: "t".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            merged_at: Some(Utc::now()),
            merge_commit_sha: Some(sha.into()),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            head: "x".into(),
            base: "main".into(),
            head_sha: None,
        };
        let p7 = pr(7, "m3", &["revert"]);
        let p8 = pr(8, "s2", &[]);
        let by_sha: HashMap<&str, &PullItem> = [("m3", &p7), ("s2", &p8)].into_iter().collect();
        let changes = group_changes(&commits, &by_sha);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, vec!["d1d1d1d1", "pr#7", "pr#8"]);
        let pr7 = &changes[1];
        assert_eq!(
            pr7.commits.len(),
            2,
            "the merge commit and the commit it brought in"
        );
        let own8 = vec!["abcdef1234567890".to_string()];
        let reverts: Vec<&str> = changes
            .iter()
            .filter(|ch| {
                let own: &[String] = if ch.key == "pr#8" { &own8 } else { &[] };
                c.matches(&c.reverts, ch, own, true)
            })
            .map(|ch| ch.key.as_str())
            .collect();
        assert_eq!(reverts, vec!["pr#7"]);
        // Without knowing PR 8's commits its quoted revert is unresolved: they are fetched.
        let refs: Vec<&Change> = changes.iter().collect();
        let state = CommitsState::default();
        assert_eq!(c.prs_needing_commits(&refs, &state), vec![7, 8]);
        let hotfixes = changes
            .iter()
            .filter(|ch| c.matches(&c.hotfixes, ch, &[], false))
            .count();
        assert_eq!(hotfixes, 1);
    }

    #[test]
    fn commits_without_parents_are_each_their_own_change() {
        let commits = vec![commit("a", "x", &[]), commit("b", "y", &[])];
        let changes = group_changes(&commits, &HashMap::new());
        assert_eq!(changes.len(), 2);
        let ids: Vec<String> = changes.iter().map(|c| c.key.clone()).collect();
        let o = counted_observation("commits.reverts", ids, Utc::now());
        assert_eq!(o.value, Value::Number(o.ids.len() as f64));
    }
}
