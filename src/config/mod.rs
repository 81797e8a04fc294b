//! Configuration: raw TOML in, a validated [`Plan`] out.
//!
//! Two stages, as ripgrep and Telegraf do it: the file is read into loosely typed tables that
//! remember where they came from, then every part is validated and resolved once into a plan
//! (parsed conditions, built collectors, checked metric names). Nothing downstream re-parses
//! config, and every problem is collected rather than the first one only, each with file, line
//! and key, so `infra-health validate` can show a user all of them at once.
//!
//! The low level is in `raw` (the serde shapes, with spans) and `problems` (errors and the
//! collector that gives each one its file, line and key); the high level, each table resolved
//! into its part of the plan, in `resolve`. This module holds the [`Plan`] and the entry points.

pub mod locate;
mod problems;
mod raw;
mod resolve;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::checks::{CheckDef, RowId};
use crate::collectors::CollectorInstance;
use crate::schema::Schema;
use crate::sinks::SinkSettings;
use locate::{header_line, line_of};
pub use problems::{ConfigError, ConfigErrors, MAX_MESSAGE, MAX_QUOTED_VALUE, clip_message};
use problems::{Problems, unreadable_message};
use raw::{RawState, RawTop, TOP_KEYS};
use resolve::{
    RowAlertRaw, resolve_checks, resolve_collectors, resolve_dashboard, resolve_datadog,
    resolve_defaults, resolve_sink,
};

/// Where the config is looked for when `--config` and `INFRA_HEALTH_CONFIG` are not given.
pub const DEFAULT_CONFIG_FILE: &str = "infra-health.toml";
pub const DEFAULT_COLLECTOR_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_CARRY_FORWARD: Duration = Duration::from_secs(30 * 60);

/// The `[dashboard]` table.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// The dashboard's title; `dashboard push` finds an existing dashboard by it.
    pub title: String,
    pub description: String,
}

/// The `[datadog]` table, resolved with each row's and collector's own settings: what
/// `infra-health datadog plan|apply` builds the monitors from (docs/alerts.md).
#[derive(Debug, Clone)]
pub struct DatadogSettings {
    /// How often the pipeline delivers: the shortest CronJob schedule. The matrix widgets and
    /// the no-data monitors are sized from it.
    pub period: Duration,
    /// Who a failing row notifies (`@slack-…`, `@pagerduty-…`, `@team@example.com`).
    pub notify: Vec<String>,
    /// How long a row must be unknown before its (quieter) monitor fires.
    pub unknown_after: Duration,
    /// Who unknown rows notify (default: `notify`).
    pub unknown_notify: Vec<String>,
    /// How long Datadog waits before evaluating (points of a run arrive in a burst).
    pub evaluation_delay: Duration,
    /// The dashboard link in monitor messages; by default the live dashboard's URL.
    pub dashboard_url: Option<String>,
    /// Each row's alerting, by row.
    pub rows: Vec<(RowId, RowAlerting)>,
    /// Each collector's schedule and source link, in config order.
    pub collectors: Vec<CollectorSchedule>,
}

/// How one row alerts, after row → category → `[datadog]` precedence.
#[derive(Debug, Clone, PartialEq)]
pub struct RowAlerting {
    /// `None`: `alert = false`, no monitor.
    pub alert_after: Option<Duration>,
    pub notify: Vec<String>,
    /// Where to look when it fails (the workflow runs, the PR list, the artifacts).
    pub link: Option<String>,
}

/// When a collector runs and where its source is.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorSchedule {
    pub name: String,
    pub kind: &'static str,
    /// How often the CronJob running it is scheduled (`period` in its `[[collector]]`).
    pub period: Duration,
    pub link: Option<String>,
}

impl DatadogSettings {
    /// The alerting of a row (rows not in the config, e.g. derived ones, do not alert).
    pub fn row(&self, row: &RowId) -> Option<&RowAlerting> {
        self.rows.iter().find(|(r, _)| r == row).map(|(_, a)| a)
    }

    pub fn collector(&self, name: &str) -> Option<&CollectorSchedule> {
        self.collectors.iter().find(|c| c.name == name)
    }
}

/// Run-wide defaults from `[defaults]`.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub prefix: String,
    pub env: String,
    pub service: String,
    pub source: String,
    pub carry_forward: Duration,
    pub tags: BTreeMap<String, String>,
}

/// A validated configuration, ready to run.
#[derive(Clone)]
pub struct Plan {
    pub file: PathBuf,
    pub defaults: Defaults,
    pub schema: Schema,
    /// State store URL from config (`INFRA_HEALTH_STATE` and `--state` win over it).
    pub state_url: Option<String>,
    pub sink: SinkSettings,
    pub collectors: Vec<CollectorInstance>,
    pub checks: Vec<CheckDef>,
    /// The `[dashboard]` table: how the generated Datadog dashboard is named.
    pub dashboard: DashboardSettings,
    /// The `[datadog]` table: monitors, their handles and the pipeline's period.
    pub datadog: DatadogSettings,
    /// Things that are allowed but worth saying (normalised names).
    pub warnings: Vec<String>,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("file", &self.file)
            .field("collectors", &self.collectors.len())
            .field("checks", &self.checks.len())
            .finish()
    }
}

/// Which config file to use: the flag, then `INFRA_HEALTH_CONFIG`, then `./infra-health.toml`.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("INFRA_HEALTH_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_FILE),
    }
}

/// Where the bundled config lives in the repository, for messages.
pub const BUNDLED_CONFIG: &str = "config/infra-health.toml";

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: None,
            message: unreadable_message(path, &e),
        }])
    })?;
    // A byte-order mark (an editor on Windows) is not part of the TOML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    parse_with(path, text, true)
}

/// Validate config text. `path` is used for messages and to resolve relative paths. Rows may
/// be absent here (a library caller may only want the collectors); [`load`], which every
/// command uses, refuses a config file without any `[[check]]` row ("no rows").
pub fn parse(path: &Path, text: &str) -> Result<Plan, ConfigErrors> {
    parse_with(path, text, false)
}

/// The plan of an empty config (default schema, sink and state; no collectors, no rows), for
/// commands that work without a config file (`import-stable` derives its rows).
pub fn defaults_plan() -> Result<Plan, ConfigErrors> {
    parse_with(Path::new("<defaults>"), "", false)
}

fn parse_with(path: &Path, text: &str, require_rows: bool) -> Result<Plan, ConfigErrors> {
    let mut p = Problems {
        file: path,
        text,
        list: Vec::new(),
    };

    // Syntax and top-level keys first: without them nothing else can be located.
    let top_keys: BTreeMap<String, Spanned<toml::Value>> = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            p.at(line, None, format!("invalid TOML: {}", e.message().trim()));
            return Err(ConfigErrors(p.list));
        }
    };
    for (key, value) in &top_keys {
        if !TOP_KEYS.contains(&key.as_str()) {
            p.at(
                header_line(text, &value.span()),
                Some(key.clone()),
                format!("unknown section; expected one of: {}", TOP_KEYS.join(", ")),
            );
        }
    }
    let raw: RawTop = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            p.at(line, None, e.message().trim().to_string());
            return Err(ConfigErrors(p.list));
        }
    };

    if require_rows && raw.check.is_empty() {
        p.at(
            1,
            Some("check".into()),
            format!(
                "no rows: the config has no [[check]] table, so there is nothing to evaluate. \
                 Add a [[check]] (see \"Configuration\" in the README), or start from the \
                 bundled config, {BUNDLED_CONFIG} in the repository"
            ),
        );
    }
    let defaults = resolve_defaults(&mut p, raw.defaults.as_ref());
    let state_url = raw.state.as_ref().and_then(|s| {
        p.lenient::<RawState>(&s.span(), "state", s.get_ref())
            .and_then(|r| r.url)
    });
    let sink = resolve_sink(&mut p, raw.sink.as_ref());
    let dashboard = resolve_dashboard(&mut p, raw.dashboard.as_ref(), &defaults);
    let schema = match Schema::new(
        &defaults.prefix,
        &defaults.env,
        &defaults.service,
        &defaults.tags,
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            let span = raw.defaults.as_ref().map(|d| d.span()).unwrap_or(0..0);
            p.key(&span, "defaults", "prefix", e.to_string());
            None
        }
    };
    // A bad prefix must not hide the rows' own problems: check them against the default schema
    // (the plan is refused anyway, since a problem was recorded).
    let fallback_schema = match &schema {
        Some(_) => None,
        None => Schema::new(
            crate::schema::DEFAULT_PREFIX,
            &defaults.env,
            &defaults.service,
            &defaults.tags,
        )
        .ok(),
    };

    let config_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    // Absolute, so a path resolved against it means the same thing from any working directory
    // (an `exec` command runs with the config's directory as its cwd).
    let config_dir = std::path::absolute(&config_dir).unwrap_or(config_dir);
    let mut schedules = Vec::new();
    let collectors = resolve_collectors(&mut p, &raw.collector, &config_dir, &mut schedules);
    let mut warnings = Vec::new();
    let mut row_alerts: Vec<RowAlertRaw> = Vec::new();
    let checks = match schema.as_ref().or(fallback_schema.as_ref()) {
        Some(schema) => resolve_checks(
            &mut p,
            &raw.check,
            &defaults,
            schema,
            &collectors,
            &mut warnings,
            &mut row_alerts,
        ),
        None => Vec::new(),
    };
    let datadog = resolve_datadog(&mut p, raw.datadog.as_ref(), schedules, row_alerts);

    match schema {
        Some(schema) if p.list.is_empty() => Ok(Plan {
            file: path.to_path_buf(),
            defaults,
            schema,
            state_url,
            sink,
            collectors,
            checks,
            dashboard,
            datadog,
            warnings,
        }),
        _ => {
            p.list.sort_by_key(|e| e.line);
            Err(ConfigErrors(p.list))
        }
    }
}

#[cfg(test)]
mod tests;
