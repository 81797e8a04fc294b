//! `github_commits`: commit hygiene of one branch — reverts, hotfixes, force merges, commit count.
//!
//! Commits come from `GET /repos/{o}/{r}/commits?sha=BRANCH&since=…`, with `since` rounded down
//! to the day so the URL stays the same all day and repeated runs are answered 304 (the exact
//! window is applied locally). A commit is classified by its message (regex patterns) and, when
//! label or branch-prefix rules are configured, by the pull request that produced it (matched on
//! `merge_commit_sha` from the closed-pulls listing, walked newest-updated first to the window).
//!
//! | signal | value (over `window`, tags `repo`, `branch`) |
//! | --- | --- |
//! | `commits.count` | commits on the branch |
//! | `commits.reverts` | commits matching `revert_patterns`, or from a PR with a `revert_labels` label or a `revert_branch_prefixes` head branch |
//! | `commits.hotfixes` | the same with the `hotfix_*` rules (patterns also match the PR title) |
//! | `commits.force_merges` | the same with the `force_merge_*` rules |

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{BuildContext, CollectContext, CollectError, Collector, CollectorKind, SelfMetric};
use crate::github::client::{GithubClient, PageCache, decode};
use crate::github::models::{Commit, PullItem, closed_pulls_key, pull_items};
use crate::github::{GithubSource, Repo, day_floor, save_state, window};
use crate::observation::{Observation, Value};

pub const KIND: CollectorKind = CollectorKind {
    name: "github_commits",
    description: "commit hygiene of a branch: reverts, hotfixes, force merges, commit count",
    signals: &[
        "commits.count",
        "commits.reverts",
        "commits.hotfixes",
        "commits.force_merges",
    ],
    tags: &["repo", "branch"],
    self_metrics: crate::github::SELF_METRICS,
    build,
};

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
    ) -> Result<Rule, String> {
        let patterns = patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| format!("{key}: invalid pattern {p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            patterns,
            labels: labels.into_iter().map(|l| l.to_lowercase()).collect(),
            prefixes,
        })
    }

    fn needs_pulls(&self) -> bool {
        !self.labels.is_empty() || !self.prefixes.is_empty()
    }

    fn matches(&self, message: &str, pull: Option<&PullItem>) -> bool {
        if self.patterns.iter().any(|p| p.is_match(message)) {
            return true;
        }
        let Some(pr) = pull else { return false };
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
}

pub struct CommitsCollector {
    source: GithubSource,
    window: TimeDelta,
    reverts: Rule,
    hotfixes: Rule,
    force_merges: Rule,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, String> {
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
    }))
}

/// What is kept of a commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CommitItem {
    sha: String,
    message: String,
    date: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CommitsState {
    #[serde(default)]
    commits: PageCache,
    #[serde(default)]
    pulls: PageCache,
}

impl CommitsCollector {
    async fn collect_repo(
        &self,
        ctx: &CollectContext,
        client: Arc<GithubClient>,
        repo: &Repo,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let key = self.source.state_key(repo, "commits");
        let mut state: CommitsState = ctx.state.get_json(&key).await?.unwrap_or_default();
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
                        })
                        .collect())
                },
                |_| false,
            )
            .await?;
        let needs_pulls = self.reverts.needs_pulls()
            || self.hotfixes.needs_pulls()
            || self.force_merges.needs_pulls();
        let mut by_sha: HashMap<String, PullItem> = HashMap::new();
        if needs_pulls {
            let pulls = client
                .list(
                    &mut state.pulls,
                    closed_pulls_key(&repo.full),
                    pull_items,
                    |page: &[PullItem]| page.iter().any(|p| p.updated_at < window_start),
                )
                .await?;
            for p in pulls {
                if let Some(sha) = p.merge_commit_sha.clone() {
                    by_sha.insert(sha, p);
                }
            }
        }
        state.commits.retain_touched();
        state.pulls.retain_touched();
        save_state(ctx, &key, &state).await?;

        let in_window: Vec<&CommitItem> = commits
            .iter()
            .filter(|c| c.date.is_some_and(|d| d >= window_start && d <= now))
            .collect();
        let count = |rule: &Rule| {
            in_window
                .iter()
                .filter(|c| rule.matches(&c.message, by_sha.get(&c.sha)))
                .count() as f64
        };
        let obs = |signal: &str, v: f64| {
            Observation::new(signal, Value::Number(v), ctx.now)
                .with_tag("repo", &repo.full)
                .with_tag("branch", &self.source.branch)
        };
        Ok(vec![
            obs("commits.count", in_window.len() as f64),
            obs("commits.reverts", count(&self.reverts)),
            obs("commits.hotfixes", count(&self.hotfixes)),
            obs("commits.force_merges", count(&self.force_merges)),
        ])
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
        };
        assert!(hotfix.matches("plain", Some(&pr)));
        assert!(
            Rule::new("x", &["(".into()], vec![], vec![])
                .unwrap_err()
                .contains("x")
        );
    }
}
