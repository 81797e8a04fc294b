//! How patient the client is: retry and rate-limit policy, defaults following GitHub's
//! documented rules (a secondary limit without `retry-after` waits at least a minute; a wait
//! longer than `max_rate_limit_wait` is reported instead of taken). The client applies it.

use std::time::Duration;

/// Retry and rate-limit policy; defaults follow GitHub's documented rules.
#[derive(Debug, Clone)]
pub struct Policy {
    pub max_concurrency: usize,
    /// Least wait after a secondary-limit response without `retry-after` (GitHub: ≥ 1 minute).
    pub min_secondary_wait: Duration,
    /// First backoff for 5xx and transport errors (doubled per retry, capped at 60 s).
    pub retry_base: Duration,
    pub max_retries: u32,
    /// Longest single wait the client accepts before giving up and reporting.
    pub max_rate_limit_wait: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_concurrency: 8,
            min_secondary_wait: Duration::from_secs(60),
            retry_base: Duration::from_secs(1),
            max_retries: 5,
            max_rate_limit_wait: Duration::from_secs(15 * 60),
        }
    }
}
