//! Serde models for the few GitHub REST responses the collectors read.
//!
//! Our own models rather than octocrab's: its workflow-run model lacks `run_attempt` and
//! `run_started_at`, which flaky-run detection and durations need. Every field GitHub may omit or
//! null is an `Option`, and unknown fields are ignored, so a GitHub Enterprise Server a few
//! versions behind still parses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `GET /repos/{o}/{r}/actions/runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunsPage {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub workflow_runs: Vec<Run>,
}

/// One workflow run (also `GET /actions/runs/{id}` and `/runs/{id}/attempts/{n}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    /// `.github/workflows/tests.yml` (with `@ref` on some servers).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub workflow_id: u64,
    #[serde(default)]
    pub head_branch: Option<String>,
    /// `push`, `pull_request`, `schedule`, …
    #[serde(default)]
    pub event: Option<String>,
    /// The repository the run's code came from: a fork for fork pull requests.
    #[serde(default)]
    pub head_repository: Option<RepoRef>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub run_attempt: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub run_started_at: Option<DateTime<Utc>>,
    /// The commit the run ran on.
    #[serde(default)]
    pub head_sha: Option<String>,
}

/// `{"full_name": "owner/name"}` as runs carry it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoRef {
    #[serde(default)]
    pub full_name: Option<String>,
}

/// `GET /repos/{o}/{r}/actions/workflows`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowsPage {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub workflows: Vec<WorkflowDef>,
}

/// One workflow of a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowDef {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    /// `.github/workflows/tests.yml`.
    #[serde(default)]
    pub path: String,
}

/// `GET /repos/{o}/{r}/actions/runs/{id}/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobsPage {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Also the id of the job's check run (for annotations).
    pub id: u64,
    #[serde(default)]
    pub run_attempt: Option<u32>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// `GET /repos/{o}/{r}/check-runs/{id}/annotations` (a list of these).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Annotation {
    #[serde(default)]
    pub message: Option<String>,
}

/// `GET /repos/{o}/{r}/commits` (a list of these).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Commit {
    pub sha: String,
    pub commit: CommitDetail,
    /// First parent first: a merge commit has two or more.
    #[serde(default)]
    pub parents: Vec<ShaRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShaRef {
    pub sha: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitDetail {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub committer: Option<GitActor>,
    #[serde(default)]
    pub author: Option<GitActor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitActor {
    #[serde(default)]
    pub date: Option<DateTime<Utc>>,
}

/// `GET /repos/{o}/{r}/pulls` (a list of these).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pull {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub merged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub head: Option<GitRef>,
    #[serde(default)]
    pub base: Option<GitRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Label {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitRef {
    #[serde(rename = "ref")]
    pub name: String,
    #[serde(default)]
    pub sha: Option<String>,
}

/// `GET /repos/{o}/{r}/issues` (a list of these; pull requests carry `pull_request`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issue {
    pub number: u64,
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
}

/// `GET /repos/{o}/{r}/pulls/{n}/reviews` (a list of these).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Review {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub submitted_at: Option<DateTime<Utc>>,
}

/// `GET /repos/{o}/{r}/commits/{sha}/check-runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRunsPage {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub check_runs: Vec<CheckRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRun {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
}

/// `GET /repos/{o}/{r}/activity` (a list of these).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activity {
    pub id: u64,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub activity_type: Option<String>,
    pub timestamp: DateTime<Utc>,
}

/// `GET /repos/{o}/{r}/branches/{branch}`: only what says which checks are required.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Branch {
    #[serde(default)]
    pub protection: Option<BranchProtection>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchProtection {
    #[serde(default)]
    pub required_status_checks: Option<RequiredChecks>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequiredChecks {
    #[serde(default)]
    pub contexts: Vec<String>,
}

/// `POST /app/installations/{id}/access_tokens`.
#[derive(Debug, Clone, Deserialize)]
pub struct InstallationToken {
    pub token: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `GET /repos/{o}/{r}/deployments` (a list of these).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    pub id: u64,
    pub sha: String,
    #[serde(default)]
    pub environment: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `GET /repos/{o}/{r}/deployments/{id}/statuses` (a list of these, newest first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// `success`, `failure`, `error`, `inactive`, `in_progress`, `queued`, `pending`.
    pub state: String,
    pub created_at: DateTime<Utc>,
}

/// `GET /repos/{o}/{r}/compare/{base}...{head}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// `ahead`, `behind`, `identical` or `diverged`.
    pub status: String,
    #[serde(default)]
    pub commits: Vec<Commit>,
}

/// What the collectors keep of a pull request (GitHub's full object is ~20 KB).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullItem {
    pub number: u64,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub merged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub head: String,
    #[serde(default)]
    pub base: String,
    /// The head commit when merged (its checks are the PR's checks).
    #[serde(default)]
    pub head_sha: Option<String>,
}

impl From<Pull> for PullItem {
    fn from(p: Pull) -> PullItem {
        PullItem {
            number: p.number,
            title: p.title,
            created_at: p.created_at,
            updated_at: p.updated_at,
            merged_at: p.merged_at,
            merge_commit_sha: p.merge_commit_sha,
            labels: p.labels.into_iter().map(|l| l.name).collect(),
            head_sha: p.head.as_ref().and_then(|r| r.sha.clone()),
            head: p.head.map(|r| r.name).unwrap_or_default(),
            base: p.base.map(|r| r.name).unwrap_or_default(),
        }
    }
}

/// Decode a page of pull requests into what is kept.
pub fn pull_items(key: &str, body: &[u8]) -> Result<Vec<PullItem>, super::error::GithubError> {
    let pulls: Vec<Pull> = super::client::decode(key, body)?;
    Ok(pulls.into_iter().map(PullItem::from).collect())
}

/// The listing of closed pull requests most recently updated first: merged ones are found by
/// walking it until `updated_at` falls before the window (pulls have no `since` parameter).
pub fn closed_pulls_key(repo: &str) -> String {
    format!("/repos/{repo}/pulls?state=closed&sort=updated&direction=desc&per_page=100")
}

/// A repository as an organisation or installation listing shows it (`GET /orgs/{org}/repos`,
/// `/users/{user}/repos`, `/installation/repositories`), only the fields discovery reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedRepo {
    pub full_name: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub fork: bool,
    /// Kilobytes; 0 for a repository with no commits.
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// A page of `GET /installation/repositories`.
#[derive(Debug, Clone, Deserialize)]
pub struct InstallationReposPage {
    #[serde(default)]
    pub repositories: Vec<ListedRepo>,
}
