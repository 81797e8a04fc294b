//! `import-stable` as a job of the pipeline: one `stable_suite` collector reading the given
//! URL, the config's stable-suite rows, and rows derived from the artifacts' acceptance
//! criteria ([`crate::collectors::stable_suite::rows`]), through the same
//! [`super::execute`] as `run` (row memory, carry-forward, delivery and spool, checkpoints,
//! board). The command that prints it is `cli::import`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::CollectorOutcome;
use crate::checks::{CheckDef, CheckResult};
use crate::collectors::CollectorInstance;
use crate::collectors::stable_suite::import::ImportOptions;
use crate::collectors::stable_suite::rows::{SOURCE, acceptance_rows};
use crate::collectors::stable_suite::{LastImport, StableSuiteCollector};
use crate::config::Plan;
use crate::sinks::DeliveryReport;

pub use crate::collectors::stable_suite::IMPORT_COLLECTOR;
#[derive(Debug, Clone, Default)]
pub struct ImportStableOptions {
    pub from: String,
    pub dry_run: bool,
    pub output: Option<PathBuf>,
    pub state: Option<String>,
    pub rebase_timestamps: bool,
    pub now: Option<DateTime<Utc>>,
}

/// What `import-stable` did.
#[derive(Debug)]
pub struct ImportSummary {
    /// The rows evaluated (config rows, then derived ones) with their results.
    pub rows: Vec<(CheckDef, CheckResult)>,
    pub collector: CollectorOutcome,
    pub import: LastImport,
    pub metrics: usize,
    pub delivery: DeliveryReport,
    /// What could not be written to the state store (see [`crate::run::RunSummary`]).
    pub state_problems: Vec<String>,
}

/// The whole of `infra-health import-stable`.
pub async fn import_stable(
    base: &Plan,
    opts: ImportStableOptions,
) -> anyhow::Result<ImportSummary> {
    let collector = Arc::new(StableSuiteCollector::new(
        opts.from.clone(),
        true,
        ImportOptions {
            rebase_timestamps: opts.rebase_timestamps,
            ..Default::default()
        },
    ));
    let instance = CollectorInstance {
        name: IMPORT_COLLECTOR.into(),
        kind: crate::collectors::stable_suite::KIND.name,
        timeout: Duration::from_secs(30 * 60),
        collector: collector.clone(),
    };
    let rows = base
        .checks
        .iter()
        .filter(|d| {
            d.row.source == SOURCE
                && base
                    .collectors
                    .iter()
                    .any(|c| c.name == d.collector && c.kind == instance.kind)
        })
        .cloned()
        .map(|mut d| {
            d.collector = IMPORT_COLLECTOR.into();
            d
        })
        .collect();
    let job = super::Job {
        plan: base,
        rows,
        collectors: vec![&instance],
        source: SOURCE.into(),
        derive_rows: |rows, outcomes| match outcomes.first().map(|o| &o.result) {
            Some(Ok(obs)) => acceptance_rows(rows, obs, IMPORT_COLLECTOR),
            _ => Vec::new(),
        },
    };
    let run_opts = super::RunOptions {
        only: Vec::new(),
        dry_run: opts.dry_run,
        output: opts.output.clone(),
        state: opts.state.clone(),
        now: opts.now,
        datadog_key: None,
    };
    let summary = super::execute(job, run_opts).await?;
    let collector_outcome = summary
        .collectors
        .into_iter()
        .next()
        .context("the import collector did not run")?;
    let rows = summary
        .results
        .into_iter()
        .map(|(i, r)| (summary.rows[i].clone(), r))
        .collect();
    Ok(ImportSummary {
        rows,
        collector: collector_outcome,
        import: collector.take_last().unwrap_or_default(),
        metrics: summary.metrics,
        delivery: summary.delivery,
        state_problems: summary.state_problems,
    })
}
