//! `github_deployments`: delivery performance — the four DORA keys from GitHub deployments.
//!
//! **Deployments.** `GET /repos/{o}/{r}/deployments?environment=ENV&per_page=100` (newest first,
//! every page conditional), walked until a page reaches before the window. A deployment counts
//! when its latest status other than `inactive` (`GET /deployments/{id}/statuses`, newest first)
//! is `success`, at that status's time; one that ends `failure` or `error` did not deploy and is
//! left out; one still `queued`/`pending`/`in_progress` is asked again (conditionally) next run.
//! Final outcomes are kept, so a deployment's statuses are read once. With `workflow` set, the
//! named workflow's successful runs on the branch stand in (the weaker source: a run that
//! succeeded is not proof that anything was deployed).
//!
//! **Lead time.** For each deployment in the window after the first in reach, the commits of
//! `GET /compare/{previous sha}...{sha}` (kept: a comparison of two shas never changes) when the
//! sha is `ahead` of (or `diverged` from) the previous deployment's; none when it is `behind` (a
//! rollback) or the same sha. One sample per commit: finished − committed, id `DEPLOYMENT:SHA`.
//!
//! **Change failure.** A deployment fails when (a) a later rollback (a deployment `behind` its
//! previous one) redeploys a sha deployed before it, (b) a commit landed on the branch reverts
//! (`This reverts commit X`, matching the revert rules of `github_commits`) a commit it shipped,
//! or a hotfix change (the hotfix rules of `github_commits`) lands after it and before the next
//! deployment, or (c) an issue labelled as an incident is opened within `incident_window` after
//! it while it is the latest deployment. Recovery: from a failed deployment to the next one that
//! did not fail. The definitions, computed without I/O, are in [`keys`].
//!
//! Signals are listed in docs/collectors.md (kept in step by a test).

mod keys;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::commits::rules::Rule;
use super::commits::{
    REVERT_REF, default_hotfix_labels, default_hotfix_patterns, default_hotfix_prefixes,
    default_revert_labels, default_revert_patterns, default_revert_prefixes,
};
use super::{
    GithubSource, Repo, counted_observation, day_floor, query_param, samples_observation,
    save_state, window_opt,
};
use crate::collectors::{
    BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind,
};
use crate::github::cache::PageCache;
use crate::github::client::{GithubClient, decode};
use crate::github::error::GithubError;
use crate::github::models::{
    Commit, Comparison, Deployment, DeploymentStatus, Issue, PullItem, Run, closed_pulls_key,
    pull_items,
};
use crate::observation::{Observation, SelfMetric, Value};
use keys::{Compared, Deployed, Inputs, Landed};

pub const KIND: CollectorKind = CollectorKind {
    name: "github_deployments",
    description: "delivery performance (DORA): deployments, lead time, change failure rate, recovery time",
    signals: &[
        "deployments",
        "deployments.lead_time",
        "deployments.recovery_time",
        "deployments.failed",
        "deployments.change_failure_rate",
    ],
    tags: &["repo", "environment"],
    self_metrics: super::SELF_METRICS,
    build,
};

/// Bumped when what is stored changes meaning: older state is dropped and rebuilt.
const STATE_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentsOptions {
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    environments: Option<Vec<String>>,
    /// A workflow (file name such as `deploy.yml`, or id) whose successful runs on the branch
    /// stand in for deployments.
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default = "default_incident_labels")]
    incident_labels: Vec<String>,
    #[serde(default)]
    incident_window: Option<String>,
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
}

fn default_incident_labels() -> Vec<String> {
    vec!["incident".to_string()]
}

pub struct DeploymentsCollector {
    source: GithubSource,
    window: TimeDelta,
    environments: Vec<String>,
    workflow: Option<String>,
    incident_labels: Vec<String>,
    incident_window: TimeDelta,
    reverts: Rule,
    hotfixes: Rule,
    revert_ref: Regex,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let (source, o): (_, DeploymentsOptions) = GithubSource::build_with(ctx)?;
    let environments = o
        .environments
        .unwrap_or_else(|| vec!["production".to_string()]);
    if environments.is_empty() || environments.iter().any(|e| e.trim().is_empty()) {
        return Err(BuildError::at(
            "environments",
            "list at least one non-empty environment (e.g. \"production\")",
        ));
    }
    let unique: BTreeSet<&String> = environments.iter().collect();
    if unique.len() != environments.len() {
        return Err(BuildError::at(
            "environments",
            "an environment is listed twice",
        ));
    }
    if let Some(w) = &o.workflow {
        if w.trim().is_empty() {
            return Err(BuildError::at("workflow", "the workflow name is empty"));
        }
        if environments.len() != 1 {
            return Err(BuildError::at(
                "environments",
                "with `workflow`, name the one environment its runs deploy to",
            ));
        }
    }
    if o.incident_labels.iter().any(|l| l.trim().is_empty()) {
        return Err(BuildError::at("incident_labels", "a label is empty"));
    }
    Ok(Arc::new(DeploymentsCollector {
        source,
        window: window_opt(
            &o.window,
            "window",
            std::time::Duration::from_secs(30 * 86_400),
        )?,
        environments,
        workflow: o.workflow,
        incident_labels: o.incident_labels,
        incident_window: window_opt(
            &o.incident_window,
            "incident_window",
            std::time::Duration::from_secs(86_400),
        )?,
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
        revert_ref: Regex::new(REVERT_REF)
            .map_err(|e| BuildError::new(format!("internal revert pattern: {e}")))?,
    }))
}

/// A deployment's final outcome, kept so its statuses are read once.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Outcome {
    /// `success`, `failure` or `error`.
    state: String,
    at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct DeploymentsState {
    #[serde(default)]
    version: u32,
    /// Conditional pages: deployment listings, statuses of unfinished deployments, branch
    /// commits, closed pull requests, incident issues, workflow runs.
    #[serde(default)]
    pages: PageCache,
    /// Final outcomes by deployment id.
    #[serde(default)]
    outcomes: BTreeMap<u64, Outcome>,
    /// Comparisons by `BASE...HEAD` (never change).
    #[serde(default)]
    compared: BTreeMap<String, Compared>,
}

impl crate::collectors::github::RepoState for DeploymentsState {
    const VERSION: u32 = STATE_VERSION;

    fn version(&self) -> u32 {
        self.version
    }

    fn fresh() -> Self {
        DeploymentsState {
            version: STATE_VERSION,
            ..DeploymentsState::default()
        }
    }
}

/// What is kept of a listed deployment (or of a run standing in for one).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Listed {
    id: u64,
    sha: String,
    created_at: DateTime<Utc>,
    /// Runs only: when the run finished (a successful run is a deployment).
    #[serde(default)]
    finished: Option<DateTime<Utc>>,
}

/// What is kept of a branch commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BranchCommit {
    sha: String,
    message: String,
    date: Option<DateTime<Utc>>,
}

/// What is kept of an incident issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IncidentItem {
    number: u64,
    created_at: Option<DateTime<Utc>>,
}

fn commit_date(c: &Commit) -> Option<DateTime<Utc>> {
    c.commit.committer.as_ref().and_then(|a| a.date).or(c
        .commit
        .author
        .as_ref()
        .and_then(|a| a.date))
}

/// The outcome the newest statuses say: the first one that is not `inactive` (GitHub adds
/// `inactive` to a successful deployment once a newer one succeeds).
fn latest_outcome(statuses: &[DeploymentStatus]) -> Option<&DeploymentStatus> {
    statuses.iter().find(|s| s.state != "inactive")
}

fn is_final(state: &str) -> bool {
    matches!(state, "success" | "failure" | "error")
}

impl DeploymentsCollector {
    async fn collect_repo(
        &self,
        ctx: &CollectContext,
        client: Arc<GithubClient>,
        repo: &Repo,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Observation>> {
        let (key, mut state): (String, DeploymentsState) =
            self.source.load_state(ctx, repo, "deployments").await?;
        let client = &*client;
        let window_start = now - self.window;
        let landed = self
            .landed(client, repo, &mut state.pages, window_start)
            .await?;
        let incidents = self
            .incidents(client, repo, &mut state.pages, window_start)
            .await?;
        let mut used_outcomes = BTreeSet::new();
        let mut used_compares = BTreeSet::new();
        let mut out = Vec::new();
        for env in &self.environments {
            let deployed = match &self.workflow {
                Some(w) => self.runs(client, repo, w, &mut state, window_start).await?,
                None => {
                    self.deployments(
                        client,
                        repo,
                        env,
                        &mut state,
                        window_start,
                        &mut used_outcomes,
                    )
                    .await?
                }
            };
            let compared = self
                .compare(
                    client,
                    repo,
                    &deployed,
                    &mut state,
                    window_start,
                    &mut used_compares,
                )
                .await?;
            let keys = Inputs {
                deployed: &deployed,
                compared: &compared,
                landed: &landed,
                incidents: &incidents,
                incident_window: self.incident_window,
                window_start,
                now,
            }
            .keys();
            let tag = |o: Observation| o.with_tag("repo", &repo.full).with_tag("environment", env);
            let count = keys.deployments.len();
            let failed = keys.failed.len();
            let at = ctx.now;
            out.push(tag(counted_observation(
                "deployments",
                keys.deployments,
                at,
            )));
            out.push(tag(samples_observation(
                "deployments.lead_time",
                keys.lead_time,
                at,
            )
            .with_unit("second")));
            out.push(tag(samples_observation(
                "deployments.recovery_time",
                keys.recovery_time,
                at,
            )
            .with_unit("second")));
            out.push(tag(counted_observation(
                "deployments.failed",
                keys.failed,
                at,
            )));
            // No deployment in the window: no rate (unknown, never a made-up 0).
            if count > 0 {
                out.push(tag(Observation::new(
                    "deployments.change_failure_rate",
                    Value::Number(failed as f64 / count as f64),
                    at,
                )));
            }
        }
        state.outcomes.retain(|id, _| used_outcomes.contains(id));
        state.compared.retain(|k, _| used_compares.contains(k));
        state.pages.retain_touched();
        save_state(ctx, &key, &state).await?;
        Ok(out)
    }

    /// Commits that landed on the branch since the window's first day, with the revert and
    /// hotfix rules applied (pull requests matched by `merge_commit_sha`).
    async fn landed(
        &self,
        client: &GithubClient,
        repo: &Repo,
        pages: &mut PageCache,
        window_start: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Landed>> {
        let since = day_floor(window_start)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let first = format!(
            "/repos/{}/commits?sha={}&since={since}&per_page=100",
            repo.full,
            self.source.branch_param()
        );
        let commits = client
            .list(
                pages,
                first,
                |k, body| {
                    let commits: Vec<Commit> = decode(k, body)?;
                    Ok(commits
                        .into_iter()
                        .map(|c| BranchCommit {
                            date: commit_date(&c),
                            sha: c.sha,
                            message: c.commit.message,
                        })
                        .collect())
                },
                |_| false,
            )
            .await?;
        let pulls = client
            .list(
                pages,
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
        Ok(commits
            .iter()
            .map(|c| {
                let pr = by_merge_sha.get(c.sha.as_str()).copied();
                let revert = self.reverts.matches_message(&c.message)
                    || pr.is_some_and(|p| self.reverts.matches_pull(p));
                Landed {
                    sha: c.sha.clone(),
                    date: c.date,
                    hotfix: self.hotfixes.matches_message(&c.message)
                        || pr.is_some_and(|p| self.hotfixes.matches_pull(p)),
                    reverts: if revert {
                        self.revert_ref
                            .captures_iter(&c.message)
                            .filter_map(|m| m.get(1).map(|s| s.as_str().to_string()))
                            .collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect())
    }

    /// Creation times of issues carrying an incident label (one listing per label, each issue
    /// once), updated since the window's first day.
    async fn incidents(
        &self,
        client: &GithubClient,
        repo: &Repo,
        pages: &mut PageCache,
        window_start: DateTime<Utc>,
    ) -> anyhow::Result<Vec<DateTime<Utc>>> {
        let since = day_floor(window_start)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut seen: BTreeMap<u64, DateTime<Utc>> = BTreeMap::new();
        for label in &self.incident_labels {
            let first = format!(
                "/repos/{}/issues?state=all&labels={}&since={since}&per_page=100",
                repo.full,
                query_param(label)
            );
            let items = client
                .list(
                    pages,
                    first,
                    |k, body| {
                        let issues: Vec<Issue> = decode(k, body)?;
                        Ok(issues
                            .into_iter()
                            .filter(|i| i.pull_request.is_none())
                            .map(|i| IncidentItem {
                                number: i.number,
                                created_at: i.created_at,
                            })
                            .collect())
                    },
                    |_| false,
                )
                .await?;
            for i in items {
                if let Some(t) = i.created_at {
                    seen.insert(i.number, t);
                }
            }
        }
        Ok(seen.into_values().collect())
    }

    /// Successful deployments to `env` in reach, oldest first.
    async fn deployments(
        &self,
        client: &GithubClient,
        repo: &Repo,
        env: &str,
        state: &mut DeploymentsState,
        window_start: DateTime<Utc>,
        used: &mut BTreeSet<u64>,
    ) -> anyhow::Result<Vec<Deployed>> {
        let first = format!(
            "/repos/{}/deployments?environment={}&per_page=100",
            repo.full,
            query_param(env)
        );
        let mut listed = client
            .list(
                &mut state.pages,
                first,
                |k, body| {
                    let items: Vec<Deployment> = decode(k, body)?;
                    Ok(items
                        .into_iter()
                        // GitHub filters by environment; a server that does not is not trusted.
                        .filter(|d| d.environment.as_deref().is_none_or(|e| e == env))
                        .map(|d| Listed {
                            id: d.id,
                            sha: d.sha,
                            created_at: d.created_at,
                            finished: None,
                        })
                        .collect())
                },
                |page: &[Listed]| page.iter().any(|d| d.created_at < window_start),
            )
            .await?;
        // Newest first: every one in the window, then older ones until one that deployed (the
        // predecessor of the window's first).
        listed.sort_by_key(|d| std::cmp::Reverse((d.created_at, d.id)));
        let (recent, older): (Vec<&Listed>, Vec<&Listed>) =
            listed.iter().partition(|d| d.created_at >= window_start);
        let ids: Vec<u64> = recent.iter().map(|d| d.id).collect();
        self.read_outcomes(client, repo, state, &ids).await?;
        for d in older {
            self.read_outcomes(client, repo, state, &[d.id]).await?;
            if state
                .outcomes
                .get(&d.id)
                .is_some_and(|o| o.state == "success")
            {
                break;
            }
        }
        let mut deployed: Vec<Deployed> = Vec::new();
        for d in &listed {
            used.insert(d.id);
            let Some(o) = state.outcomes.get(&d.id) else {
                continue;
            };
            if o.state == "success" {
                deployed.push(Deployed {
                    id: d.id,
                    sha: d.sha.clone(),
                    created: d.created_at,
                    finished: o.at,
                });
            }
        }
        deployed.sort_by_key(|d| (d.created, d.id));
        Ok(deployed)
    }

    /// Read the outcome of each deployment in `ids` that has none yet, concurrently (the client
    /// limits how many are in flight), each conditional on its page from an earlier run: a
    /// deployment stuck in `pending` costs nothing while unchanged.
    async fn read_outcomes(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut DeploymentsState,
        ids: &[u64],
    ) -> anyhow::Result<()> {
        let key = |id: u64| {
            format!(
                "/repos/{}/deployments/{id}/statuses?per_page=100",
                repo.full
            )
        };
        // Each read with a page cache of its own (holding its earlier page, if any), so they
        // run concurrently; the pages of unfinished ones go back, with their ETag.
        let reads: Vec<(u64, String, PageCache)> = ids
            .iter()
            .filter(|id| !state.outcomes.contains_key(id))
            .map(|id| {
                let k = key(*id);
                let own = state.pages.split_off(&k);
                (*id, k, own)
            })
            .collect();
        let read =
            futures::future::join_all(reads.into_iter().map(|(id, k, mut own)| async move {
                let r = client
                    .list(&mut own, k, decode::<Vec<DeploymentStatus>>, |_| true)
                    .await;
                (id, own, r)
            }))
            .await;
        for (id, own, r) in read {
            match latest_outcome(&r?).cloned() {
                Some(s) if is_final(&s.state) => {
                    state.outcomes.insert(
                        id,
                        Outcome {
                            state: s.state,
                            at: s.created_at,
                        },
                    );
                }
                // Unfinished: asked again next run, conditionally.
                _ => state.pages.absorb(own),
            }
        }
        Ok(())
    }

    /// Successful runs of `workflow` on the branch in reach, oldest first (the weaker source).
    async fn runs(
        &self,
        client: &GithubClient,
        repo: &Repo,
        workflow: &str,
        state: &mut DeploymentsState,
        window_start: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Deployed>> {
        let first = format!(
            "/repos/{}/actions/workflows/{}/runs?branch={}&status=success&per_page=100",
            repo.full,
            query_param(workflow),
            self.source.branch_param()
        );
        let branch = self.source.branch.clone();
        let listed = client
            .list(
                &mut state.pages,
                first,
                |k, body| {
                    let page: crate::github::models::RunsPage = decode(k, body)?;
                    Ok(page
                        .workflow_runs
                        .into_iter()
                        .filter(|r: &Run| {
                            r.conclusion.as_deref() == Some("success")
                                && r.head_branch.as_deref() == Some(branch.as_str())
                        })
                        .filter_map(|r| {
                            Some(Listed {
                                id: r.id,
                                sha: r.head_sha?,
                                created_at: r.created_at,
                                finished: Some(r.updated_at),
                            })
                        })
                        .collect())
                },
                |page: &[Listed]| page.iter().any(|d| d.created_at < window_start),
            )
            .await?;
        let mut deployed: Vec<Deployed> = listed
            .into_iter()
            .map(|d| Deployed {
                id: d.id,
                finished: d.finished.unwrap_or(d.created_at),
                sha: d.sha,
                created: d.created_at,
            })
            .collect();
        deployed.sort_by_key(|d| (d.created, d.id));
        Ok(deployed)
    }

    /// The comparison of each deployment finished in the window with the one before it (read
    /// once, concurrently, and kept).
    async fn compare(
        &self,
        client: &GithubClient,
        repo: &Repo,
        deployed: &[Deployed],
        state: &mut DeploymentsState,
        window_start: DateTime<Utc>,
        used: &mut BTreeSet<String>,
    ) -> anyhow::Result<BTreeMap<u64, Compared>> {
        let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
        for (i, d) in deployed.iter().enumerate().skip(1) {
            if d.finished < window_start {
                continue;
            }
            let prev = &deployed[i - 1];
            let k = format!("{}...{}", prev.sha, d.sha);
            used.insert(k.clone());
            by_id.insert(d.id, k);
        }
        let missing: BTreeSet<&String> = by_id
            .values()
            .filter(|k| !state.compared.contains_key(*k))
            .collect();
        let fetched = futures::future::join_all(missing.into_iter().map(|k| async move {
            let (base, head) = k.split_once("...").unwrap_or((k.as_str(), k.as_str()));
            if base == head {
                return Ok((k.clone(), Compared::default_identical()));
            }
            let first = format!("/repos/{}/compare/{k}?per_page=100", repo.full);
            let pages: Vec<Comparison> = match client.get_all_pages(first).await {
                Ok(p) => p,
                // A sha GitHub no longer has (a force-pushed branch) or no common history: no
                // commits to attribute, kept so it is not asked again; the others still count.
                Err(GithubError::Status {
                    status: 404 | 422,
                    message,
                    ..
                }) => {
                    tracing::warn!(
                        "collector {}: {}: cannot compare {k} ({message}): no lead time samples for that deployment",
                        self.source.instance,
                        repo.full
                    );
                    return Ok((
                        k.clone(),
                        Compared {
                            status: "unavailable".into(),
                            commits: Vec::new(),
                        },
                    ));
                }
                Err(e) => return Err(e),
            };
            let status = pages.first().map(|p| p.status.clone()).unwrap_or_default();
            let commits = pages
                .iter()
                .flat_map(|p| p.commits.iter())
                .map(|c| (c.sha.clone(), commit_date(c)))
                .collect();
            Ok::<_, GithubError>((k.clone(), Compared { status, commits }))
        }))
        .await;
        for r in fetched {
            let (k, c) = r?;
            state.compared.insert(k, c);
        }
        Ok(by_id
            .into_iter()
            .filter_map(|(id, k)| state.compared.get(&k).map(|c| (id, c.clone())))
            .collect())
    }
}

impl Compared {
    fn default_identical() -> Compared {
        Compared {
            status: "identical".into(),
            commits: Vec::new(),
        }
    }
}

impl Collector for DeploymentsCollector {
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
