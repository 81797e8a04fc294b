//! The raw stage: the TOML shapes serde reads a config file into, before anything is
//! validated. Tables are kept as `Spanned` so that every later error can name its line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::checks::{Aggregate, Encoding, Summary};

#[derive(Deserialize, Default)]
pub(super) struct RawTop {
    #[serde(default)]
    pub(super) defaults: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub(super) state: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub(super) sink: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub(super) collector: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub(super) check: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub(super) dashboard: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub(super) datadog: Option<Spanned<toml::Table>>,
}

pub(super) const TOP_KEYS: &[&str] = &[
    "defaults",
    "state",
    "sink",
    "collector",
    "check",
    "dashboard",
    "datadog",
];

/// The `[datadog]` table: monitors and metric configurations (`infra-health datadog`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatadog {
    pub(super) period: Option<String>,
    #[serde(default)]
    pub(super) notify: Vec<String>,
    pub(super) alert_after: Option<String>,
    pub(super) unknown_after: Option<String>,
    pub(super) unknown_notify: Option<Vec<String>>,
    pub(super) evaluation_delay: Option<String>,
    pub(super) dashboard_url: Option<String>,
    #[serde(default)]
    pub(super) category: BTreeMap<String, RawAlerting>,
}

/// Alerting settings of a category (`[datadog.category.ci]`).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerting {
    pub(super) alert: Option<bool>,
    pub(super) alert_after: Option<String>,
    pub(super) notify: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDashboard {
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) prefix: Option<String>,
    pub(super) env: Option<String>,
    pub(super) service: Option<String>,
    pub(super) source: Option<String>,
    pub(super) carry_forward: Option<String>,
    #[serde(default)]
    pub(super) tags: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) url: Option<String>,
}

/// Every key a `[[check]]` accepts (the fields of [`RawCheck`]; a test keeps them in step).
pub(super) const CHECK_KEYS: &[&str] = &[
    "workflow_category",
    "workflow_name",
    "task",
    "check",
    "title",
    "collector",
    "signal",
    "match",
    "aggregate",
    "condition",
    "warn",
    "encoding",
    "metric",
    "summary",
    "percentiles",
    "interval",
    "unit",
    "carry_forward",
    "source",
    "tags",
    "alert",
    "alert_after",
    "notify",
    "link",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub(super) workflow_category: String,
    pub(super) workflow_name: String,
    pub(super) task: String,
    pub(super) check: String,
    #[serde(default)]
    pub(super) title: Option<String>,
    pub(super) collector: String,
    pub(super) signal: String,
    #[serde(default, rename = "match")]
    pub(super) matches: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) aggregate: Aggregate,
    pub(super) condition: String,
    #[serde(default)]
    pub(super) warn: Option<String>,
    #[serde(default)]
    pub(super) encoding: Option<Encoding>,
    pub(super) metric: String,
    #[serde(default)]
    pub(super) summary: Option<Summary>,
    #[serde(default)]
    pub(super) percentiles: bool,
    #[serde(default)]
    pub(super) interval: Option<String>,
    #[serde(default)]
    pub(super) unit: Option<String>,
    #[serde(default)]
    pub(super) carry_forward: Option<String>,
    #[serde(default)]
    pub(super) source: Option<String>,
    #[serde(default)]
    pub(super) tags: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) alert: Option<bool>,
    #[serde(default)]
    pub(super) alert_after: Option<String>,
    #[serde(default)]
    pub(super) notify: Option<Vec<String>>,
    #[serde(default)]
    pub(super) link: Option<String>,
}
