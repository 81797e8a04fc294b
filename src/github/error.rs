//! Why a GitHub request failed, as a closed set with short stable tags for self-metrics.

use std::time::Duration;

use thiserror::Error;

/// Why a request failed. `error_type` gives a short stable tag for self-metrics.
#[derive(Debug, Error)]
pub enum GithubError {
    #[error("GET {key}: HTTP {status}: {message}")]
    Status {
        key: String,
        status: u16,
        message: String,
    },
    #[error(
        "GET {key}: GitHub rate limit requires waiting {wait:?} (more than max_rate_limit_wait); stopping rather than risk the token"
    )]
    RateLimited { key: String, wait: Duration },
    #[error("GET {key}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        key: String,
        attempts: u32,
        last: String,
    },
    #[error("GET {key}: cannot parse the response: {message}")]
    Decode { key: String, message: String },
    #[error("replay: no recorded response for GET {key} in {dir}")]
    ReplayMiss { key: String, dir: String },
    #[error("{0}")]
    ReplayUnavailable(String),
    #[error("GitHub App authentication failed: {0}")]
    Auth(String),
    #[error(
        "GET {key}: not sent: this run's GitHub request budget is spent ({spent} requests; \
         {reserve_percent} % of the rate limit left is kept in reserve); collection goes on next run"
    )]
    BudgetSpent {
        key: String,
        spent: u64,
        reserve_percent: u32,
    },
    #[error(
        "GET {key}: not sent: the repository's time in this run is up (most of repo_timeout, {limit:?}); what was fetched is kept and collection goes on next run"
    )]
    OutOfTime { key: String, limit: Duration },
}

impl GithubError {
    /// A request that could not wait for its turn: the client is being dropped.
    pub fn closed(key: &str) -> GithubError {
        GithubError::Exhausted {
            key: key.into(),
            attempts: 0,
            last: "client closed".into(),
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            GithubError::Status { .. } => "http_status",
            GithubError::RateLimited { .. } => "rate_limited",
            GithubError::Exhausted { .. } => "unreachable",
            GithubError::Decode { .. } => "decode",
            GithubError::ReplayMiss { .. } | GithubError::ReplayUnavailable(_) => "replay_miss",
            GithubError::Auth(_) => "auth",
            GithubError::BudgetSpent { .. } => "budget_spent",
            GithubError::OutOfTime { .. } => "out_of_time",
        }
    }
}
