//! Sinks: where a run's metrics go.
//!
//! - `datadog`: the intake API (batching, compression, retries and the spool live there);
//! - `dry-run`: the exact request bodies, printed (or written to `--output`), nothing sent;
//! - `local`: the same bodies written under the state store's `payloads/`, for a laptop or a
//!   machine with no Datadog key.
//!
//! `auto` picks Datadog when `DD_API_KEY` is set and local otherwise, saying so; a config that
//! names `datadog` and has no key is an error, so a CronJob with a missing secret fails loudly.

pub mod datadog;
pub mod dry_run;
pub mod local;

use std::path::PathBuf;
use std::sync::Arc;

use crate::schema::Metric;
use crate::secret::Secret;

/// Which sink delivers the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkKind {
    /// Datadog when `DD_API_KEY` is set, otherwise the local sink with a notice.
    Auto,
    /// Datadog; a missing key is an error, never a silent fallback.
    Datadog,
    /// Files under the state directory plus the terminal matrix.
    Local,
    /// Print the request bodies.
    DryRun,
}

/// The `[sink]` table as config resolved it: the kind, and the rest of the table for the sink
/// to read. Owned here, not by `config`, so sinks never import the config layer above them.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub kind: SinkKind,
    /// Send a Datadog event when a row changes status.
    pub events: bool,
    /// Options for the Datadog sink (`site`, `endpoint`, `compression`, timeouts, …).
    pub datadog: toml::Table,
}
use crate::state::StateStore;

/// What happened to a run's metrics.
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    /// Where they went, for the summary line (`Datadog (datadoghq.com)`, a directory, stdout).
    pub destination: String,
    pub delivered_series: usize,
    /// Series written to the spool for the next run.
    pub spooled_series: usize,
    /// Points that could not be delivered and were too old to keep.
    pub dropped_points: usize,
    /// Increments and samples that waited past Datadog's hour and were re-stamped to this run.
    pub restamped_points: usize,
    /// Identities recorded as a baseline by a row memory that did not cover them (not sent).
    pub baselined: usize,
    /// False when something could not be delivered now (it may be spooled).
    pub ok: bool,
    pub problems: Vec<String>,
    /// Points the intake refused as invalid (HTTP 400) or that fit in no request (too large):
    /// dropped, never spooled, since sending them again would be refused again.
    pub rejected_points: usize,
    /// Some requests could not be sent now: spooled for the next run (or lost, when the spool
    /// could not be written).
    pub send_failed: bool,
}

impl DeliveryReport {
    /// Delivery failed in a way the next run may fix: something was spooled or could not be
    /// sent (exit 4). A run whose only loss is points the intake refused is not this.
    pub fn failed(&self) -> bool {
        !self.ok && (self.send_failed || self.rejected_points == 0)
    }
}

pub enum Sink {
    Datadog(datadog::DatadogSink),
    DryRun(dry_run::DryRunSink),
    Local(local::LocalSink),
}

impl Sink {
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Datadog(_) => "datadog",
            Sink::DryRun(_) => "dry-run",
            Sink::Local(_) => "local",
        }
    }

    /// Which sink this is (never [`SinkKind::Auto`]: that is resolved by [`select`]).
    pub fn kind(&self) -> SinkKind {
        match self {
            Sink::Datadog(_) => SinkKind::Datadog,
            Sink::DryRun(_) => SinkKind::DryRun,
            Sink::Local(_) => SinkKind::Local,
        }
    }

    /// A dry run: nothing leaves the process, so nothing is remembered as delivered.
    pub fn is_dry_run(&self) -> bool {
        self.kind() == SinkKind::DryRun
    }

    pub async fn deliver(&self, metrics: &[Metric]) -> DeliveryReport {
        self.deliver_at(metrics, chrono::Utc::now().timestamp())
            .await
    }

    /// Deliver a run taken at `now` (Unix seconds): the Datadog window is relative to it.
    pub async fn deliver_at(&self, metrics: &[Metric], now: i64) -> DeliveryReport {
        match self {
            Sink::Datadog(s) => s.deliver_at(metrics.iter(), now).await,
            Sink::DryRun(s) => s.deliver_at(metrics, now).await,
            Sink::Local(s) => s.deliver(metrics).await,
        }
    }

    /// Status-change events (Datadog only; other sinks have nowhere to put them).
    pub async fn send_events(
        &self,
        changes: &[crate::checks::StatusChange],
    ) -> Result<usize, String> {
        match self {
            Sink::Datadog(s) => s.send_events(changes).await,
            Sink::DryRun(_) | Sink::Local(_) => Ok(0),
        }
    }
}

/// What the command line (or an embedding program) says about the sink, beside the config.
#[derive(Debug, Clone, Default)]
pub struct SinkRequest {
    /// `--dry-run`: wins over config.
    pub dry_run: bool,
    /// Where a dry run writes the request bodies (stdout otherwise).
    pub output: Option<PathBuf>,
    /// The Datadog API key when the caller holds it; else `DD_API_KEY` / `DD_API_KEY_FILE`.
    pub key: Option<Secret>,
}

/// Pick the sink for this run.
pub fn select(
    settings: &SinkSettings,
    request: SinkRequest,
    state: Arc<StateStore>,
    http: reqwest::Client,
    schema: &crate::schema::Schema,
    source: &str,
) -> anyhow::Result<Sink> {
    let SinkRequest {
        dry_run,
        output,
        key,
    } = request;
    if dry_run || settings.kind == SinkKind::DryRun {
        return Ok(Sink::DryRun(dry_run::DryRunSink::new(output)));
    }
    let key = match key {
        Some(k) => Some(k),
        None => Secret::from_env(&["DD_API_KEY"]).map_err(anyhow::Error::msg)?,
    };
    match (settings.kind, key) {
        (SinkKind::Local, _) => Ok(Sink::Local(local::LocalSink::new(state))),
        (SinkKind::Auto, None) => {
            tracing::info!(
                "DD_API_KEY is not set: delivering to the local sink under {} instead of Datadog",
                state.location()
            );
            Ok(Sink::Local(local::LocalSink::new(state)))
        }
        (SinkKind::Datadog, None) => anyhow::bail!(
            "the sink is set to \"datadog\" but DD_API_KEY (or DD_API_KEY_FILE) is not set; set the key, or use type = \"auto\" to fall back to the local sink"
        ),
        (SinkKind::Datadog | SinkKind::Auto, Some(key)) => {
            let config = datadog::DatadogConfig::resolve(&settings.datadog)?;
            let client = datadog::Client::new(http, config, key);
            Ok(Sink::Datadog(
                datadog::DatadogSink::new(client, state).with_self_metrics(schema.clone(), source),
            ))
        }
        (SinkKind::DryRun, _) => Ok(Sink::DryRun(dry_run::DryRunSink::new(output))),
    }
}
