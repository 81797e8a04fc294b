//! Workflow-name resolution against the repository's workflows (`actions/workflows`).

use std::collections::BTreeSet;

use super::ActionsCollector;
use super::records::ActionsState;
use crate::collectors::github::Repo;
use crate::github::cache::PageCache;
use crate::github::client::{GithubClient, decode};
use crate::github::models::{WorkflowDef, WorkflowsPage};

/// The file stem of a workflow path (`tests` for `.github/workflows/tests.yml@refs/heads/main`).
pub(super) fn file_stem(path: &str) -> &str {
    let file = path.split('@').next().unwrap_or(path);
    let base = file.rsplit('/').next().unwrap_or(file);
    base.strip_suffix(".yml")
        .or_else(|| base.strip_suffix(".yaml"))
        .unwrap_or(base)
}

/// The repository's workflows whose name or file stem is `listed`: exact matches if any, else
/// case-insensitive ones.
pub(super) fn resolve_workflow<'a>(
    listed: &str,
    workflows: &'a [WorkflowDef],
) -> Vec<&'a WorkflowDef> {
    let exact: Vec<&WorkflowDef> = workflows
        .iter()
        .filter(|w| w.name == listed || file_stem(&w.path) == listed)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    workflows
        .iter()
        .filter(|w| {
            w.name.eq_ignore_ascii_case(listed) || file_stem(&w.path).eq_ignore_ascii_case(listed)
        })
        .collect()
}

/// "Tests (tests.yml), Benchmarks (bench.yml)" for log lines and reasons.
pub(super) fn describe_workflows(workflows: &[WorkflowDef]) -> String {
    if workflows.is_empty() {
        return "none".into();
    }
    workflows
        .iter()
        .map(|w| {
            let file = w.path.rsplit('/').next().unwrap_or(&w.path);
            format!("{} ({file})", w.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The repository's workflows (`GET /actions/workflows`, every page, conditional on `cache`).
async fn list_workflows(
    client: &GithubClient,
    repo: &Repo,
    cache: &mut PageCache,
) -> Result<Vec<WorkflowDef>, crate::github::error::GithubError> {
    let first = format!("/repos/{}/actions/workflows?per_page=100", repo.full);
    client
        .list(
            cache,
            first,
            |k, body| {
                let page: WorkflowsPage = decode(k, body)?;
                Ok(page.workflows)
            },
            |_| false,
        )
        .await
}

/// Where a listed workflow resolved to.
pub(super) enum Resolved {
    Found(BTreeSet<u64>),
    NotFound,
}

impl ActionsCollector {
    /// The repository's workflows (one conditional listing).
    pub(super) async fn repo_workflows(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
    ) -> anyhow::Result<Vec<WorkflowDef>> {
        let workflows = list_workflows(client, repo, &mut state.workflows).await?;
        state.workflows.retain_touched();
        Ok(workflows)
    }

    /// For `validate --online`: every listed workflow exists in every repository.
    pub(super) async fn check_workflows(&self, http: &reqwest::Client) -> Vec<String> {
        let client = GithubClient::new(http.clone(), self.source.settings.clone());
        let mut problems = Vec::new();
        for repo in &self.source.repos.named() {
            let mut cache = PageCache::default();
            match list_workflows(&client, repo, &mut cache).await {
                Err(e) => problems.push(format!(
                    "collector {}: {}: cannot list the repository's workflows: {e}",
                    self.source.instance, repo.full
                )),
                Ok(workflows) => {
                    for w in &self.workflows {
                        if resolve_workflow(w, &workflows).is_empty() {
                            problems.push(format!(
                                "collector {}: {}: workflow {w:?} matches no workflow name or file (case-insensitively); its workflows are: {}",
                                self.source.instance,
                                repo.full,
                                describe_workflows(&workflows)
                            ));
                        }
                    }
                }
            }
        }
        problems
    }

    /// Resolve the listed workflows; logs the repository's workflows for one that matches none.
    pub(super) fn resolve(
        &self,
        repo: &Repo,
        workflows: &[WorkflowDef],
    ) -> Vec<(String, Resolved)> {
        self.workflows
            .iter()
            .map(|w| {
                let found = resolve_workflow(w, workflows);
                if found.is_empty() {
                    tracing::warn!(
                        "collector {}: {}: workflow {w:?} matches no workflow name or file of the repository; its workflows are: {}",
                        self.source.instance,
                        repo.full,
                        describe_workflows(workflows)
                    );
                    (w.clone(), Resolved::NotFound)
                } else {
                    (
                        w.clone(),
                        Resolved::Found(found.iter().map(|f| f.id).collect()),
                    )
                }
            })
            .collect()
    }
}
