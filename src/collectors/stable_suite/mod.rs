//! `stable_suite`: observations from stable-suite run artifacts (schema v1, JSON or Parquet)
//! read from S3, a directory or one file. The format is in `docs/stable-suite-artifact.md`.
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `url` | `s3://bucket/prefix/`, `file:///dir/`, a directory or a file (relative to the config file) | required |
//! | `incremental` | import only artifacts not imported before (checkpoint in the state store) | `true` |
//! | `rebase_timestamps` | shift times so the newest artifact finished now (example data) | `false` |
//! | `concurrency` | objects fetched at once | `32` |
//!
//! Signals, each tagged `suite`, `job`, `runner` (and `acceptance` when the artifact declares a
//! condition for it), stamped at the run's `finished_at`:
//!
//! | signal | value | unit |
//! | --- | --- | --- |
//! | `run.success` | 1 when `exit_status` is `success`, else 0 | |
//! | `run.duration` | `finished_at - started_at` | `second` |
//! | `<metric name>` (`reward`, `sps`, …) | the metric's value | the metric's unit |
//! | `import.artifacts` | valid new artifacts imported this run | |
//! | `import.bad_artifacts` | malformed artifacts refused this run | |
//!
//! The import's own counts also become the self-metrics `<prefix>.stablesuite.artifacts_imported`
//! and `<prefix>.stablesuite.bad_artifacts`, tagged `source:stable_suite`, `task:import` and
//! `status:fail` when an artifact was malformed ([`SELF_IMPORTED`], [`SELF_BAD`]). With `incremental`, the
//! checkpoint advances only in [`Collector::commit`], after delivery; a dry run never advances
//! it. Rows read these signals with `match = { job = "…" }`, and a row's `carry_forward` keeps a
//! nightly value on the board between imports.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind};
use crate::observation::{Observation, Value};
use crate::observation::{SelfMetric, SelfMetricDecl};
use crate::stable_suite::source::ArtifactSource;
use import::{ImportBatch, ImportOptions, Seen};

pub mod import;
pub mod rows;

/// The name of the collector instance `import-stable` runs (it appears in self-metric tags, so
/// the job monitor of `infra-health datadog` watches it under this name).
pub const IMPORT_COLLECTOR: &str = "import-stable";

pub const KIND: CollectorKind = CollectorKind {
    name: "stable_suite",
    description: "stable-suite run artifacts (JSON/Parquet, schema v1) from s3://, file:// or a path",
    signals: &[
        "run.success",
        "run.duration",
        "<metric name from the artifact>",
        SIGNAL_IMPORTED,
        SIGNAL_BAD,
    ],
    tags: &["runner"],
    self_metrics: &[SELF_IMPORTED, SELF_BAD],
    build,
};

/// Valid new artifacts the last import read: `<prefix>.stablesuite.artifacts_imported`.
pub const SELF_IMPORTED: SelfMetricDecl = SelfMetricDecl::new("stablesuite.artifacts_imported")
    .source("stable_suite")
    .task("import")
    .chart_per_collector(IMPORT_CHART);
/// Malformed artifacts the last import refused: `<prefix>.stablesuite.bad_artifacts`.
pub const SELF_BAD: SelfMetricDecl = SelfMetricDecl::new("stablesuite.bad_artifacts")
    .source("stable_suite")
    .task("import")
    .chart_per_collector(IMPORT_CHART);

const IMPORT_CHART: &str = "Stable-suite artifacts: imported and malformed";

pub const SIGNAL_IMPORTED: &str = "import.artifacts";
pub const SIGNAL_BAD: &str = "import.bad_artifacts";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StableSuiteConfig {
    url: String,
    #[serde(default = "yes")]
    incremental: bool,
    #[serde(default)]
    rebase_timestamps: bool,
    #[serde(default)]
    concurrency: Option<usize>,
}

fn yes() -> bool {
    true
}

/// What the last `collect` found, kept for `commit` and for the caller's report.
#[derive(Debug, Default)]
pub struct LastImport {
    pub listed: usize,
    pub already_imported: usize,
    pub imported: Vec<String>,
    pub bad: Vec<crate::stable_suite::ArtifactError>,
    pub unread: Vec<String>,
    /// Paths under the source that could not be listed (a symlink loop), naming each.
    pub unlisted: Vec<String>,
    /// Checkpoint entries to save after delivery (empty when not incremental or in a dry run).
    pending: std::collections::BTreeMap<String, Seen>,
}

pub struct StableSuiteCollector {
    url: String,
    incremental: bool,
    options: ImportOptions,
    last: Mutex<Option<LastImport>>,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let cfg: StableSuiteConfig = ctx.options()?;
    let url = if cfg.url.contains("://") {
        cfg.url
    } else {
        ctx.resolve_path(&cfg.url).display().to_string()
    };
    if let Some(0) = cfg.concurrency {
        return Err(BuildError::at("concurrency", "must be at least 1"));
    }
    if !url.starts_with("s3://") && url.contains("://") && !url.starts_with("file://") {
        return Err(BuildError::at(
            "url",
            format!("{url:?} is not s3://bucket/prefix, file:///dir or a path"),
        ));
    }
    Ok(Arc::new(StableSuiteCollector::new(
        url,
        cfg.incremental,
        ImportOptions {
            rebase_timestamps: cfg.rebase_timestamps,
            concurrency: cfg.concurrency.unwrap_or(import::DEFAULT_CONCURRENCY),
        },
    )))
}

impl StableSuiteCollector {
    pub fn new(url: String, incremental: bool, options: ImportOptions) -> StableSuiteCollector {
        StableSuiteCollector {
            url,
            incremental,
            options,
            last: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the last collect found (for `import-stable`'s report).
    pub fn take_last(&self) -> Option<LastImport> {
        self.last.lock().ok().and_then(|mut l| l.take())
    }

    fn remember(&self, batch: &ImportBatch, keep_checkpoint: bool) {
        let last = LastImport {
            listed: batch.listed,
            already_imported: batch.already_imported,
            imported: batch.artifacts.iter().map(|(n, _)| n.clone()).collect(),
            bad: batch.bad.clone(),
            unread: batch.unread.clone(),
            unlisted: batch.unlisted.clone(),
            pending: if keep_checkpoint {
                batch.checkpoint.clone()
            } else {
                Default::default()
            },
        };
        if let Ok(mut slot) = self.last.lock() {
            *slot = Some(last);
        }
    }
}

impl Collector for StableSuiteCollector {
    fn collect<'a>(
        &'a self,
        ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>> {
        Box::pin(async move {
            // A failed collect reports no import counts (and leaves no checkpoint to commit).
            if let Ok(mut slot) = self.last.lock() {
                *slot = None;
            }
            let source =
                ArtifactSource::open(&self.url).map_err(|e| CollectError::Source(e.to_string()))?;
            let checkpoint = if self.incremental {
                Some(
                    import::load_checkpoint(&ctx.state, &self.url)
                        .await
                        .map_err(|e| CollectError::Other(e.into()))?,
                )
            } else {
                None
            };
            let batch = import::import(&source, checkpoint.as_ref(), &self.options, ctx.now)
                .await
                .map_err(|e| CollectError::Source(e.to_string()))?;
            for bad in &batch.bad {
                tracing::warn!("skipping malformed stable-suite artifact: {bad}");
            }
            for path in &batch.unlisted {
                tracing::warn!("stable-suite artifacts: cannot list {path}");
            }
            tracing::info!(
                url = %self.url,
                "stable-suite artifacts: {} listed, {} already imported, {} new, {} malformed, {} unreadable",
                batch.listed,
                batch.already_imported,
                batch.artifacts.len(),
                batch.bad.len(),
                batch.unread.len()
            );
            let mut obs = batch.observations(&self.options, ctx.now);
            obs.push(Observation::new(
                SIGNAL_IMPORTED,
                Value::Number(batch.artifacts.len() as f64),
                ctx.now,
            ));
            obs.push(Observation::new(
                SIGNAL_BAD,
                Value::Number(batch.bad.len() as f64),
                ctx.now,
            ));
            self.remember(&batch, self.incremental && !ctx.dry_run);
            Ok(obs)
        })
    }

    fn commit<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<(), CollectError>> {
        Box::pin(async move {
            if ctx.dry_run || !self.incremental {
                return Ok(());
            }
            let pending = match self.last.lock() {
                Ok(mut l) => l.as_mut().map(|l| std::mem::take(&mut l.pending)),
                Err(_) => None,
            };
            let Some(pending) = pending else {
                return Ok(());
            };
            import::commit_checkpoint(&ctx.state, &self.url, &pending)
                .await
                .map_err(|e| CollectError::Other(e.into()))
        })
    }

    /// The last import's counts; both `fail` when any artifact was malformed.
    fn self_metrics(&self) -> Vec<SelfMetric> {
        let counts = self.last.lock().ok().and_then(|l| {
            l.as_ref()
                .map(|l| (l.imported.len() as f64, l.bad.len() as f64))
        });
        let Some((imported, bad)) = counts else {
            return Vec::new();
        };
        vec![
            SELF_IMPORTED.value(imported).failing(bad > 0.0),
            SELF_BAD.value(bad).failing(bad > 0.0),
        ]
    }
}
