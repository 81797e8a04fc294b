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
use crate::observation::Observation;
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
    let store = crate::state::StateStore::open(&crate::state::url_for(
        opts.state.as_deref(),
        base.state_url.as_deref(),
    ))?;
    let now = opts.now.unwrap_or_else(Utc::now);
    let seeds = load_seeds(&store, now).await;
    let remembered = seeds.clone();
    let job = super::Job {
        plan: base,
        rows,
        collectors: vec![&instance],
        source: SOURCE.into(),
        // The artifacts imported before keep their rows: an import that finds nothing new
        // still evaluates them, so they are carried forward (26 h) instead of vanishing.
        derive_rows: Box::new(move |rows, outcomes| {
            let mut obs = seeds.clone();
            if let Some(Ok(new)) = outcomes.first().map(|o| &o.result) {
                obs.extend(new.iter().cloned());
            }
            acceptance_rows(rows, &obs, IMPORT_COLLECTOR)
        }),
    };
    let run_opts = super::RunOptions {
        only: Vec::new(),
        dry_run: opts.dry_run,
        output: opts.output.clone(),
        state: opts.state.clone(),
        now: opts.now,
        datadog_key: None,
        shard: None,
    };
    let mut summary = super::execute(job, run_opts).await?;
    if !opts.dry_run
        && let Some(Ok(new)) = summary.collectors.first().map(|o| &o.result)
        && let Err(e) = save_seeds(&store, remembered, new, now).await
    {
        tracing::error!("{e}");
        summary.state_problems.push(e);
    }
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

/// Where the acceptance criteria of imported artifacts are kept: one observation per (job,
/// signal), the newest, so the rows derived from them outlive the import that found them.
pub const ACCEPTANCE_KEY: &str = "stable_suite/acceptance.json";

/// How long a remembered criterion keeps its row: past the rows' 26 h carry-forward the row shows
/// as unknown (`stale`) for the rest of a week, then the criterion is forgotten.
const FORGET_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// The remembered acceptance criteria; nothing (with a warning) when they cannot be read.
async fn load_seeds(store: &crate::state::StateStore, now: DateTime<Utc>) -> Vec<Observation> {
    match store.get_json::<Vec<Observation>>(ACCEPTANCE_KEY).await {
        Ok(seeds) => seeds
            .unwrap_or_default()
            .into_iter()
            .filter(|o| now - o.timestamp <= FORGET_AFTER)
            .collect(),
        Err(e) => {
            tracing::warn!(
                "acceptance criteria of earlier imports not read ({e}): their rows show only when an artifact declares them again"
            );
            Vec::new()
        }
    }
}

/// Remember the newest acceptance observation per (job, signal) of `old` and `new`.
async fn save_seeds(
    store: &crate::state::StateStore,
    old: Vec<Observation>,
    new: &[Observation],
    now: DateTime<Utc>,
) -> Result<(), String> {
    let mut newest: std::collections::BTreeMap<(String, String), Observation> =
        std::collections::BTreeMap::new();
    for o in old.into_iter().chain(new.iter().cloned()) {
        if !o.tags.contains_key(crate::stable_suite::TAG_ACCEPTANCE)
            || now - o.timestamp > FORGET_AFTER
        {
            continue;
        }
        let Some(job) = o.tags.get("job").cloned() else {
            continue;
        };
        let key = (job, o.signal.clone());
        if newest.get(&key).is_none_or(|k| k.timestamp <= o.timestamp) {
            newest.insert(key, o);
        }
    }
    let seeds: Vec<Observation> = newest.into_values().collect();
    store
        .put_json(ACCEPTANCE_KEY, &seeds)
        .await
        .map_err(|e| format!("acceptance criteria not remembered: {e}"))
}
