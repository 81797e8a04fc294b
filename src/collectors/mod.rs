//! Collectors: one per kind of source, each returning [`Observation`]s.
//!
//! A collector knows one source (a JSON file, GitHub Actions, an HTTP endpoint, a command) and
//! nothing else: it never decides pass/fail and never builds a Datadog payload. Collectors are
//! built once from config (`build` is the init step that validates everything it can without
//! touching the network) and then only collect.
//!
//! Adding a collector is one file in this folder plus one line in [`REGISTRY`]: the file holds its
//! config struct (`#[serde(deny_unknown_fields)]`), its `build` function and its `Collector` impl,
//! and documents the signals it produces in its module docs and in `docs/collectors.md`. A source
//! with several collectors gets a folder, Telegraf-style: [`github`] holds one file per GitHub
//! collector and, in its `mod.rs`, what they share.

pub mod exec;
pub mod file;
pub mod github;
pub mod http_probe;
pub mod stable_suite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use thiserror::Error;

pub use crate::github::shard::Shard;
use crate::observation::{Observation, UnknownReason};
pub use crate::observation::{SelfMetric, SelfMetricDecl};
use crate::state::StateStore;

/// Everything a collector may use while collecting. Built once per run and shared.
pub struct CollectContext {
    /// The moment this run is taken at; collectors compute windows ("last 7 days") from it so a
    /// run is consistent with itself.
    pub now: DateTime<Utc>,
    /// One HTTP client for the whole run, with a real User-Agent and timeouts.
    pub http: reqwest::Client,
    /// Where collectors keep caches and checkpoints between runs.
    pub state: Arc<StateStore>,
    /// Set by `--dry-run`: collectors must not advance checkpoints.
    pub dry_run: bool,
    /// This job's share of an organisation (`--shard K/N`); [`Shard::ALL`] by default.
    pub shard: Shard,
    /// The run's GitHub request budgets, one per API and credential, shared by its `github_*`
    /// collectors.
    pub github: Arc<crate::github::budget::Budgets>,
}

impl CollectContext {
    /// A context for one run at `now`, the whole organisation, fresh budgets.
    pub fn new(
        now: DateTime<Utc>,
        http: reqwest::Client,
        state: Arc<StateStore>,
        dry_run: bool,
    ) -> CollectContext {
        CollectContext {
            now,
            http,
            state,
            dry_run,
            shard: Shard::ALL,
            github: Arc::default(),
        }
    }
}

/// What a collector that works per repository (or per other unit) covered in its last
/// collection: checks of such a collector make one row per unit, and a unit no longer covered
/// has its rows retired.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// The units (`owner/name`) covered this run, this shard's only.
    pub units: Vec<String>,
    /// Rows are made per unit (an organisation or several repositories); false for one
    /// repository, whose rows stay as they were.
    pub per_unit: bool,
    /// The unit list is the source's own answer this run: a unit missing from it is gone. False
    /// when a cached listing stood in, and then no row is retired.
    pub settled: bool,
    /// The shard the run covered: only units of it can be retired by it.
    pub shard: Shard,
}

/// Why a collector produced nothing. Its rows become `unknown` with this as the reason.
#[derive(Debug, Error)]
pub enum CollectError {
    #[error("{0}")]
    Source(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(#[from] anyhow::Error),
    /// The source produced more than the collector accepts (exec stdout past its cap): nothing
    /// it produced is trusted.
    #[error("{0}")]
    OutputTooLarge(String),
    /// The collector's own time limit passed (an exec probe's `timeout`); the run's timeout
    /// around every collector is reported by the run itself.
    #[error("{0}")]
    Timeout(String),
}

impl CollectError {
    /// A short stable tag for the `error_type` tag of self-metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            CollectError::Source(_) => "source",
            CollectError::Io { .. } => "io",
            CollectError::Other(_) => "other",
            CollectError::OutputTooLarge(_) => "output_too_large",
            // Tagged `source` since before this variant existed; the tag stays stable.
            CollectError::Timeout(_) => "source",
        }
    }

    /// Why the collector's rows are `unknown`.
    pub fn unknown_reason(&self) -> UnknownReason {
        match self {
            CollectError::OutputTooLarge(_) => UnknownReason::OutputTooLarge,
            CollectError::Timeout(_) => UnknownReason::CollectorTimeout,
            CollectError::Source(_) | CollectError::Io { .. } | CollectError::Other(_) => {
                UnknownReason::CollectorFailed
            }
        }
    }
}

/// A source of observations.
pub trait Collector: Send + Sync {
    /// Collect once. Called at most once per run; may be cancelled at its timeout.
    fn collect<'a>(
        &'a self,
        ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>>;

    /// Called once after the run's metrics were delivered (never in a dry run): a collector
    /// that keeps a checkpoint advances it here, so an undelivered run is collected again.
    fn commit<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<(), CollectError>> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// Checks only the live source can answer, for `infra-health validate --online` (e.g. that
    /// the GitHub workflows a collector lists exist). One message per problem; none by default.
    fn check_online<'a>(&'a self, http: &'a reqwest::Client) -> BoxFuture<'a, Vec<String>> {
        let _ = http;
        Box::pin(async { Vec::new() })
    }

    /// The collector's own figures from its last `collect` (GitHub requests and 304s, a
    /// stable-suite import's counts), sent as `<prefix>.<path>` self-metrics tagged with the
    /// collector's name. Each is one its [`CollectorKind::self_metrics`] declares (built with
    /// [`SelfMetricDecl::value`]), so the catalog and the dashboard know it before any run.
    /// The run reads them once, right after `collect`; empty when that collect failed or has
    /// nothing to say.
    fn self_metrics(&self) -> Vec<SelfMetric> {
        Vec::new()
    }

    /// What the last `collect` covered, for a collector whose checks make a row per
    /// repository ([`Coverage`]); `None` for the others.
    fn coverage(&self) -> Option<Coverage> {
        None
    }
}

/// Why `build` refused a collector's options, and which option is at fault when one is: config
/// reports it as `file:line: collector.<key>` at that key's line (the table's otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct BuildError {
    /// The option at fault (`concurrency`, `max_age`), when the error is about one.
    pub key: Option<String>,
    /// The whole message, naming the key first when there is one (`concurrency: must be at
    /// least 1`).
    pub message: String,
}

impl BuildError {
    /// An error about the option `key`: the message reads `<key>: <detail>`.
    pub fn at(key: impl Into<String>, detail: impl std::fmt::Display) -> BuildError {
        let key = key.into();
        BuildError {
            message: format!("{key}: {detail}"),
            key: Some(key),
        }
    }

    /// An error about no single option (a missing repository, an unreadable token file).
    pub fn new(message: impl Into<String>) -> BuildError {
        BuildError {
            key: None,
            message: message.into(),
        }
    }

    /// The collector's options did not deserialize: the message is serde's, the key the field
    /// it names (`unknown field `tresh``), if any.
    pub fn options(err: &toml::de::Error) -> BuildError {
        let message = err.message().to_string();
        BuildError {
            key: serde_message_key(&message),
            message,
        }
    }
}

/// The key named in a serde error message (`unknown field `tresh``, `missing field `x``,
/// `duplicate field `y``), so the error can point at its line.
pub fn serde_message_key(message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

/// What `build` gets: the instance's own options (everything in its `[[collector]]` table but
/// the common keys) and where relative paths are resolved from.
pub struct BuildContext<'a> {
    pub name: &'a str,
    pub options: toml::Table,
    /// Directory of the config file: relative paths in options are relative to it.
    pub config_dir: PathBuf,
}

impl BuildContext<'_> {
    /// Deserialize the options into the collector's config struct; the error names the field.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T, BuildError> {
        toml::Value::Table(self.options.clone())
            .try_into()
            .map_err(|e: toml::de::Error| BuildError::options(&e))
    }

    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = PathBuf::from(path);
        if p.is_absolute() {
            p
        } else {
            self.config_dir.join(p)
        }
    }
}

/// A built collector with its instance settings.
#[derive(Clone)]
pub struct CollectorInstance {
    pub name: String,
    pub kind: &'static str,
    pub timeout: Duration,
    pub collector: Arc<dyn Collector>,
}

/// One kind of collector, as listed by `infra-health collectors`.
pub struct CollectorKind {
    pub name: &'static str,
    pub description: &'static str,
    /// The signals it produces, for `infra-health collectors` and the docs.
    pub signals: &'static [&'static str],
    /// Which of the optional metric tags (`repo`, `branch`, `label`, `runner`, …) its
    /// observations carry. The dashboard reads this to know which rows a `$repo` filter or a
    /// `by {label}` grouping can apply to; tags that come from user data (`file`, `exec`) are
    /// not known in advance and not listed.
    pub tags: &'static [&'static str],
    /// The self-metrics its [`Collector::self_metrics`] may report (`github.requests`), so the
    /// catalog knows them and the dashboard can chart them before the first run.
    pub self_metrics: &'static [SelfMetricDecl],
    pub build: fn(&BuildContext) -> Result<Arc<dyn Collector>, BuildError>,
}

/// Every collector kind. Add a line here when you add a collector file.
pub const REGISTRY: &[CollectorKind] = &[
    file::KIND,
    http_probe::KIND,
    exec::KIND,
    stable_suite::KIND,
    github::actions::KIND,
    github::commits::KIND,
    github::pulls::KIND,
    github::issues::KIND,
    github::deployments::KIND,
];

pub fn find_kind(name: &str) -> Option<&'static CollectorKind> {
    REGISTRY.iter().find(|k| k.name == name)
}

pub fn kind_names() -> String {
    REGISTRY
        .iter()
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_errors_carry_their_key() {
        let e = BuildError::at("concurrency", "must be at least 1");
        assert_eq!(e.key.as_deref(), Some("concurrency"));
        assert_eq!(e.to_string(), "concurrency: must be at least 1");
        assert_eq!(BuildError::new("no repository").key, None);
        let ctx = BuildContext {
            name: "x",
            options: toml::toml! { tresh = 1 },
            config_dir: PathBuf::from("."),
        };
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Opts {
            thresh: Option<u32>,
        }
        let e = ctx.options::<Opts>().unwrap_err();
        assert_eq!(e.key.as_deref(), Some("tresh"));
        assert!(e.message.contains("unknown field `tresh`"), "{e}");
    }
}
