//! The fetchers beyond the commit and pull listings: a pull request's commits, its reviews, its
//! head commit's check runs, the branch's required checks, and force pushes (activity API).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{CommitsCollector, CommitsState};
use crate::collectors::github::Repo;
use crate::github::client::{GithubClient, decode};
use crate::github::models::{Activity, Branch, CheckRunsPage, Commit, PullItem, Review};

impl CommitsCollector {
    /// Run `fetch` for every pull request in `items`, at most the client policy's concurrency
    /// at a time, and hand each answer to `keep` as it arrives. The first error stops it; what
    /// was kept stays kept.
    async fn each_pr<I, T, Fut>(
        &self,
        items: Vec<I>,
        fetch: impl Fn(I) -> Fut,
        mut keep: impl FnMut(u64, T),
    ) -> anyhow::Result<()>
    where
        Fut: std::future::Future<Output = anyhow::Result<(u64, T)>>,
    {
        let mut answers = futures::stream::iter(items.into_iter().map(fetch))
            .buffer_unordered(self.source.settings.policy.max_concurrency);
        while let Some(answer) = answers.next().await {
            let (number, value) = answer?;
            keep(number, value);
        }
        Ok(())
    }

    pub(super) async fn fetch_pr_commits(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut CommitsState,
        wanted: Vec<u64>,
    ) -> anyhow::Result<()> {
        self.each_pr(
            wanted,
            |n| async move {
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
            },
            |n, shas| {
                state.pr_commits.insert(n, shas);
            },
        )
        .await
    }

    /// Whether each merged PR had an approving review before it was merged (once per PR: a
    /// review submitted later cannot change that).
    pub(super) async fn fetch_reviews(
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
        self.each_pr(
            wanted,
            |(n, merged)| async move {
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
            },
            |n, approved| {
                state.approved.insert(n, approved);
            },
        )
        .await
    }

    /// The required checks: configured, or read from the branch's protection. Unreadable
    /// protection is logged and leaves the rule out (never a guess).
    pub(super) async fn required_checks(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut CommitsState,
    ) -> Vec<String> {
        if let Some(r) = &self.required_checks {
            return r.clone();
        }
        let branch = self.source.branch_param();
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

    pub(super) async fn fetch_checks(
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
        self.each_pr(
            wanted,
            |(n, sha)| async move {
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
            },
            |n, runs| {
                state.checks.insert(n, runs);
            },
        )
        .await
    }

    /// Force pushes to the branch in the window, as ids (the sha pushed); `None` when the
    /// activity API cannot be read (logged).
    pub(super) async fn force_pushes(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut CommitsState,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Vec<String>> {
        let branch =
            crate::collectors::github::query_param(&format!("refs/heads/{}", self.source.branch));
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
