//! The Datadog side as code: the dashboard, the monitors and the metric tag configurations a
//! config implies, planned against the account and applied idempotently
//! (`infra-health datadog plan|apply|terraform`).
//!
//! A health matrix is only useful in a real account when its percentile widgets answer (a
//! distribution answers `p90:` only with percentile aggregations enabled, [`metric_config`]),
//! when someone is told a row turned red ([`monitors`]), and when a stopped pipeline shows
//! (the job monitors, and the matrix's bounded time frame in [`crate::dashboard::build`]). All
//! three are generated from the same rows as the dashboard; [`plan`] compares them with the
//! account and applies the difference, touching only what carries infra-health's mark
//! (`managed-by:infra-health`, or the state store's record of the tag configurations it made);
//! [`terraform`] writes the same objects as Terraform resources. The API calls are in [`api`],
//! through the one Datadog client.

pub mod api;
pub mod metric_config;
pub mod monitors;
pub mod plan;
pub mod terraform;

use crate::catalog::Catalog;
use crate::config::Plan;
use crate::dashboard::DashboardError;

/// Everything the config implies, without asking Datadog: what `datadog terraform` writes and
/// what the Python model check in the tests reads. `link` goes into the monitors' messages.
pub struct Desired {
    pub dashboard: serde_json::Value,
    pub monitors: Vec<monitors::MonitorSpec>,
    pub tag_configs: Vec<metric_config::TagConfig>,
}

pub fn desired(plan: &Plan, link: &str) -> Result<Desired, DashboardError> {
    let catalog = Catalog::of(plan)?;
    Ok(Desired {
        dashboard: crate::dashboard::render(plan)?,
        monitors: monitors::monitors(plan, &catalog, link),
        tag_configs: metric_config::tag_configs(&catalog),
    })
}
