//! One run: collect, evaluate, deliver.
//!
//! Collectors run concurrently, each under its own timeout and in its own task, so one that
//! errors, hangs or panics turns only its own rows `unknown` and never stops the others
//! (Telegraf's "record the error and continue"). Then every row is evaluated, the schema turns
//! results into metrics, and the sink delivers them once.

pub mod import;
pub mod ledger;
pub mod per_repo;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::checks::{CheckDef, CheckResult};
use crate::collectors::{CollectContext, CollectorInstance};
use crate::config::Plan;
use crate::observation::{Observation, UnknownReason};
use crate::schema::Metric;
use crate::sinks::{self, DeliveryReport};
use crate::state::{self, StateStore};

/// Options of `infra-health run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run only these collectors (by instance name or by type).
    pub only: Vec<String>,
    pub dry_run: bool,
    /// Where `--dry-run` writes the request bodies (stdout otherwise).
    pub output: Option<PathBuf>,
    /// State store URL from `--state` (wins over `INFRA_HEALTH_STATE` and config).
    pub state: Option<String>,
    /// The moment the run is taken at (tests pin it).
    pub now: Option<DateTime<Utc>>,
    /// The Datadog API key when the caller already holds it (a program embedding the pipeline,
    /// or a test); the CLI leaves it `None` and the key comes from `DD_API_KEY`.
    pub datadog_key: Option<crate::secret::Secret>,
    /// `--shard K/N`: collect this job's share of the organisations (docs/organisation.md).
    pub shard: Option<crate::collectors::Shard>,
}

/// How one collector did.
#[derive(Debug, Clone)]
pub struct CollectorOutcome {
    pub name: String,
    pub kind: &'static str,
    pub duration_secs: f64,
    /// The observations, or why there are none (in words).
    pub result: Result<Vec<Observation>, String>,
    pub error_type: Option<&'static str>,
    /// Why there are none, as the collector's rows report it (`None` when it succeeded).
    pub unknown_reason: Option<UnknownReason>,
    /// Its own figures ([`crate::collectors::Collector::self_metrics`]), read once after it ran.
    pub self_metrics: Vec<crate::observation::SelfMetric>,
    /// The repositories it covered, when its rows are made per repository.
    pub coverage: Option<crate::collectors::Coverage>,
}

/// Everything a run did, for the CLI to print and turn into an exit code.
#[derive(Debug)]
pub struct RunSummary {
    /// The rows this job evaluated: the plan's rows (`run`), or its stable-suite rows and the
    /// rows artifacts declare (`import-stable`).
    pub rows: Vec<CheckDef>,
    /// Every row of `rows` (by index) with its result: fresh, carried forward (`inferred`) or
    /// `unknown`.
    pub results: Vec<(usize, CheckResult)>,
    /// Rows whose status differs from what the previous run emitted.
    pub status_changes: Vec<crate::checks::StatusChange>,
    /// What could not be written to the state store (row memory, checkpoints, board): the
    /// run delivered, but carry-forward or incremental collection is off until it is fixed.
    pub state_problems: Vec<String>,
    pub collectors: Vec<CollectorOutcome>,
    pub metrics: usize,
    pub delivery: DeliveryReport,
    /// Where the metrics went.
    pub sink: crate::sinks::SinkKind,
}

impl RunSummary {
    pub fn failed_collectors(&self) -> impl Iterator<Item = &CollectorOutcome> {
        self.collectors.iter().filter(|c| c.result.is_err())
    }
}

/// `--only` named no collector of the config: a usage error (exit 2), raised before any work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UnknownOnly(pub String);

/// Select collectors for `--only` (instance names or types). Unknown names are an
/// [`UnknownOnly`] error.
pub fn select_collectors<'a>(
    plan: &'a Plan,
    only: &[String],
) -> Result<Vec<&'a CollectorInstance>, UnknownOnly> {
    if only.is_empty() {
        return Ok(plan.collectors.iter().collect());
    }
    for name in only {
        if !plan
            .collectors
            .iter()
            .any(|c| &c.name == name || c.kind == name)
        {
            let names: Vec<&str> = plan.collectors.iter().map(|c| c.name.as_str()).collect();
            return Err(UnknownOnly(format!(
                "--only {name:?}: no collector with that name or type in {} (defined: {})",
                plan.file.display(),
                names.join(", ")
            )));
        }
    }
    Ok(plan
        .collectors
        .iter()
        .filter(|c| only.iter().any(|o| o == &c.name || o == c.kind))
        .collect())
}

/// Run every selected collector concurrently, each under its own timeout.
pub async fn collect(
    collectors: &[&CollectorInstance],
    ctx: Arc<CollectContext>,
) -> Vec<CollectorOutcome> {
    let progress = crate::progress::Progress::for_stderr();
    let mut tasks = Vec::new();
    for instance in collectors {
        let task_instance = (*instance).clone();
        let ctx = ctx.clone();
        let line = progress.line(&instance.name);
        let handle = tokio::spawn(async move {
            let instance = task_instance;
            let started = Instant::now();
            let work = tokio::time::timeout(instance.timeout, instance.collector.collect(&ctx));
            tokio::pin!(work);
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            let outcome = loop {
                tokio::select! {
                    o = &mut work => break Some(o),
                    // SIGTERM: stop collecting; dropping the future kills an exec probe's group.
                    _ = crate::shutdown::requested_wait() => break None,
                    _ = tick.tick(), if line.is_drawn() => {
                        line.message(progress_text(&instance.collector.self_metrics()));
                    }
                }
            };
            (started.elapsed().as_secs_f64(), outcome, line)
        });
        tasks.push(((*instance).clone(), handle));
    }
    let mut out = Vec::new();
    for (instance, handle) in tasks {
        let (handle, line) = match handle.await {
            Ok((d, o, line)) => (Ok((d, o)), Some(line)),
            Err(e) => (Err(e), None),
        };
        let (duration_secs, result, error_type, unknown_reason) = match handle {
            Ok((d, None)) => (
                d,
                Err("interrupted: the process was asked to stop (SIGTERM/SIGINT)".to_string()),
                Some("interrupted"),
                Some(UnknownReason::CollectorFailed),
            ),
            Ok((d, Some(Ok(Ok(obs))))) => (d, Ok(obs), None, None),
            Ok((d, Some(Ok(Err(e))))) => (
                d,
                Err(e.to_string()),
                Some(e.error_type()),
                Some(e.unknown_reason()),
            ),
            Ok((d, Some(Err(_)))) => (
                d,
                Err(format!(
                    "timed out after {}",
                    crate::duration::format_duration(instance.timeout)
                )),
                Some("timeout"),
                Some(UnknownReason::CollectorTimeout),
            ),
            Err(join) => {
                let panicked = join.is_panic();
                let msg = if panicked {
                    let payload = join.into_panic();
                    let text = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    format!("panicked: {text}")
                } else {
                    "was cancelled".to_string()
                };
                let why = if panicked {
                    UnknownReason::CollectorPanic
                } else {
                    UnknownReason::CollectorFailed
                };
                (
                    instance.timeout.as_secs_f64(),
                    Err(msg),
                    Some("panic"),
                    Some(why),
                )
            }
        };
        if let Some(line) = line {
            line.finish(match &result {
                Ok(obs) => format!("{} observations", obs.len()),
                Err(_) => "failed".to_string(),
            });
        }
        match &result {
            Ok(obs) => tracing::info!(
                collector = %instance.name,
                observations = obs.len(),
                "collected in {duration_secs:.2}s"
            ),
            Err(e) => tracing::error!(collector = %instance.name, "collector failed: {e}"),
        }
        out.push(CollectorOutcome {
            name: instance.name.clone(),
            kind: instance.kind,
            duration_secs,
            result,
            error_type,
            unknown_reason,
            self_metrics: instance.collector.self_metrics(),
            coverage: instance.collector.coverage(),
        });
    }
    out
}

/// A collector's own figures so far, for its progress line (`1,204 github.requests`).
fn progress_text(figures: &[crate::observation::SelfMetric]) -> String {
    if figures.is_empty() {
        return "collecting".into();
    }
    figures
        .iter()
        .filter(|m| m.value > 0.0)
        .map(|m| format!("{} {}", m.value, m.path))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Evaluate the rows fed by the collectors that ran.
pub fn evaluate(rows: &[CheckDef], outcomes: &[CollectorOutcome]) -> Vec<(usize, CheckResult)> {
    let by_name: HashMap<&str, &CollectorOutcome> =
        outcomes.iter().map(|o| (o.name.as_str(), o)).collect();
    rows.iter()
        .enumerate()
        .filter_map(|(i, def)| {
            let outcome = by_name.get(def.collector.as_str())?;
            let input = match &outcome.result {
                Ok(obs) => Ok(obs.as_slice()),
                Err(e) => Err((
                    outcome
                        .unknown_reason
                        .unwrap_or(UnknownReason::CollectorFailed),
                    e.as_str(),
                )),
            };
            Some((i, def.evaluate(input)))
        })
        .collect()
}

/// Turn results and collector outcomes into metrics. A metric the schema refuses is a bug in
/// config validation; it is logged and left out rather than sent half-labelled.
pub fn metrics(
    plan: &Plan,
    rows: &[CheckDef],
    results: &[(usize, CheckResult)],
    outcomes: &[CollectorOutcome],
    now: i64,
) -> Vec<Metric> {
    let mut out = Vec::new();
    for (i, result) in results {
        let def = &rows[*i];
        match plan.schema.row_metrics(def, result, now) {
            Ok(m) => out.extend(m),
            Err(e) => tracing::error!("row {}: metric refused: {e}", def.row),
        }
    }
    for o in outcomes {
        let count = o.result.as_ref().map(|v| v.len()).unwrap_or(0);
        let stats = crate::schema::encode::CollectorStats {
            collector: &o.name,
            duration_secs: o.duration_secs,
            ok: o.result.is_ok(),
            observations: count,
            error_type: o.error_type,
        };
        match plan
            .schema
            .collector_metrics(&plan.defaults.source, &stats, now)
        {
            Ok(m) => out.extend(m),
            Err(e) => tracing::error!("collector {}: self-metric refused: {e}", o.name),
        }
        match plan.schema.collector_extra_metrics(
            &plan.defaults.source,
            &o.name,
            &o.self_metrics,
            now,
        ) {
            Ok(m) => out.extend(m),
            Err(e) => tracing::error!("collector {}: self-metric refused: {e}", o.name),
        }
    }
    out
}

/// After a delivery that reached its sink (never in a dry run), let the collectors that
/// succeeded advance their checkpoints; a failure is logged and the data is collected again
/// next run.
pub async fn commit(
    collectors: &[&CollectorInstance],
    outcomes: &[CollectorOutcome],
    ctx: &CollectContext,
) -> Vec<String> {
    let mut problems = Vec::new();
    for instance in collectors {
        let ok = outcomes
            .iter()
            .any(|o| o.name == instance.name && o.result.is_ok());
        if ok && let Err(e) = instance.collector.commit(ctx).await {
            tracing::error!(collector = %instance.name, "cannot save checkpoint: {e}");
            problems.push(format!(
                "collector {}: checkpoint not saved: {e}",
                instance.name
            ));
        }
    }
    problems
}

/// What one job evaluates: the part of the pipeline that differs between `run` and
/// `import-stable`. Everything else — row memory and carry-forward, metrics, delivery and
/// spool, checkpoints, the board, events, the exit code — is [`execute`], the same for both.
pub struct Job<'a> {
    /// The whole config: its schema, sink and state settings; the board shows all its rows.
    pub plan: &'a Plan,
    /// The rows this job evaluates and sends.
    pub rows: Vec<CheckDef>,
    /// The collectors this job runs.
    pub collectors: Vec<&'a CollectorInstance>,
    /// The `source` tag of the job's own metrics (and the sink's).
    pub source: String,
    /// Rows added from what was collected (`import-stable`: the acceptance criteria artifacts
    /// declare for themselves).
    pub derive_rows: DeriveRows<'a>,
}

/// How a job adds rows from what it collected (given its rows and the collectors' outcomes).
pub type DeriveRows<'a> =
    Box<dyn Fn(&[CheckDef], &[CollectorOutcome]) -> Vec<CheckDef> + Send + Sync + 'a>;

fn no_derived_rows(_: &[CheckDef], _: &[CollectorOutcome]) -> Vec<CheckDef> {
    Vec::new()
}

/// The whole of `infra-health run`: every row of the plan, the selected collectors.
pub async fn run(plan: &Plan, opts: RunOptions) -> anyhow::Result<RunSummary> {
    let mut collectors = select_collectors(plan, &opts.only)?;
    let mut rows = plan.checks.clone();
    // N shards run the same config: the GitHub collectors split the repositories between them,
    // everything else runs once, in shard 1. A shard sends only the rows it collected, so
    // no shard re-sends (as carried forward) what another measured.
    if let Some(shard) = opts.shard.filter(|s| !s.is_all()) {
        if shard.index > 1 {
            let skipped: Vec<&str> = collectors
                .iter()
                .filter(|c| !c.kind.starts_with("github_"))
                .map(|c| c.name.as_str())
                .collect();
            if !skipped.is_empty() {
                tracing::info!(
                    "shard {shard}: {} run in shard 1 only (they are not split by repository)",
                    skipped.join(", ")
                );
            }
            collectors.retain(|c| c.kind.starts_with("github_"));
        }
        rows.retain(|r| collectors.iter().any(|c| c.name == r.collector));
    }
    let job = Job {
        plan,
        rows,
        collectors,
        source: plan.defaults.source.clone(),
        derive_rows: Box::new(no_derived_rows),
    };
    execute(job, opts).await
}

/// One pass of the pipeline: collect, evaluate, reconcile with the row memory (carry-forward,
/// what is new since the last delivery), build metrics, deliver or spool, advance checkpoints,
/// write the board, send status-change events.
///
/// A row whose collector is not in this job is carried forward from the last run of any job
/// that shares the state store, within its `carry_forward`. Metrics are stamped when they are
/// built, after collection, so a slow collector cannot push the run's points out of Datadog's
/// one-hour window.
pub async fn execute(job: Job<'_>, opts: RunOptions) -> anyhow::Result<RunSummary> {
    let plan = job.plan;
    let started = Instant::now();
    let now = opts.now.unwrap_or_else(Utc::now);
    // Leases and claims are judged by the run's clock (a pinned run sees those of the runs
    // before it expire as they would have in real time).
    let state = Arc::new(
        StateStore::open(&state::url_for(
            opts.state.as_deref(),
            plan.state_url.as_deref(),
        ))?
        .with_clock(now),
    );
    // Without its state a run would send every sample and event again and could neither carry
    // rows forward nor spool: a store that cannot be reached is fatal (exit 1) before any work.
    state.reachable().await.map_err(|e| {
        anyhow::anyhow!(
            "the state store cannot be reached, nothing was collected or sent: {e} (check the \
             URL, the credentials or IAM role, and the endpoint)"
        )
    })?;
    let http = crate::net::http_client()?;
    let sink = sinks::select(
        &plan.sink,
        sinks::SinkRequest {
            dry_run: opts.dry_run,
            output: opts.output.clone(),
            key: opts.datadog_key.clone(),
        },
        state.clone(),
        http.clone(),
        &plan.schema,
        &job.source,
    )?;
    let ctx = Arc::new(CollectContext {
        shard: opts.shard.unwrap_or(crate::collectors::Shard::ALL),
        ..CollectContext::new(now, http, state.clone(), opts.dry_run)
    });
    let outcomes = collect(&job.collectors, ctx.clone()).await;
    let retirement = per_repo::Retirement::new(&job.rows, &outcomes);
    let retired = |row: &crate::checks::RowId| retirement.retires(row);
    let mut rows = per_repo::expand(job.rows, &outcomes);
    let derived = (job.derive_rows)(&rows, &outcomes);
    rows.extend(derived);
    let fresh = evaluate(&rows, &outcomes);
    let built_at = now + chrono::TimeDelta::from_std(started.elapsed()).unwrap_or_default();
    for o in &outcomes {
        if o.duration_secs > crate::sinks::datadog::normalize::MAX_AGE_SECS as f64 {
            tracing::warn!(
                collector = %o.name,
                "collector took {:.0}s, longer than Datadog keeps a point (1 hour): run it in a job of its own",
                o.duration_secs
            );
        }
    }
    // The job's own metrics carry its source (`stable_suite` for an import).
    let metrics_plan = if job.source == plan.defaults.source {
        std::borrow::Cow::Borrowed(plan)
    } else {
        let mut p = plan.clone();
        p.defaults.source = job.source.clone();
        std::borrow::Cow::Owned(p)
    };
    let stamp = built_at.timestamp();
    let build =
        |results: &[(usize, CheckResult)]| metrics(&metrics_plan, &rows, results, &outcomes, stamp);
    let sink_ctx = CollectContext {
        shard: ctx.shard,
        github: ctx.github.clone(),
        ..CollectContext::new(built_at, ctx.http.clone(), state.clone(), opts.dry_run)
    };
    let mut state_problems = Vec::new();
    let (memory, metrics, delivery, durable) = match &sink {
        sinks::Sink::Datadog(dd) if !opts.dry_run => {
            let own = |restamped: usize, baselined: usize| {
                metrics_plan
                    .schema
                    .ledger_metrics(&job.source, "datadog", restamped, baselined, stamp)
                    .unwrap_or_else(|e| {
                        tracing::error!("delivery self-metric refused: {e}");
                        Vec::new()
                    })
            };
            let ttl = crate::sinks::datadog::spool::claim_ttl(dd.config().deadline);
            let input = ledger::RunInput {
                rows: &rows,
                fresh: &fresh,
                now,
                stamp,
                claim_ttl: ttl,
                build: &build,
                own_metrics: &own,
                retired: &retired,
            };
            match ledger::prepare(&state, &input).await {
                Ok(p) => {
                    let baselined = p.reconciled.baselined;
                    let mut delivery = dd
                        .deliver_ledger(
                            &p.batch.key,
                            p.batch.batch,
                            p.batch.claim,
                            stamp,
                            p.dropped,
                        )
                        .await;
                    delivery.restamped_points = p.restamped;
                    delivery.baselined = baselined;
                    (p.reconciled, p.metrics, delivery, true)
                }
                Err(e) => {
                    tracing::error!(
                        "delivery ledger not written ({e}): sending this run's levels without it; its new events and samples wait for a run that can write the state store at {}",
                        state.location()
                    );
                    state_problems.push(format!("delivery ledger not written: {e}"));
                    let (mut memory, _) =
                        crate::state::rows::remember(&state, &rows, &fresh, now, false, &retired)
                            .await;
                    for (_, r) in &mut memory.results {
                        r.new_in_run = None;
                    }
                    let metrics = build(&memory.results);
                    let delivery = sink.deliver_at(&metrics, stamp).await;
                    (memory, metrics, delivery, false)
                }
            }
        }
        _ => {
            // Carry-forward and "new since the last delivery" under the state lease (a dry run
            // reads the memory but never writes it).
            let (memory, state_error) =
                crate::state::rows::remember(&state, &rows, &fresh, now, !opts.dry_run, &retired)
                    .await;
            if let Some(e) = state_error {
                tracing::error!(
                    "row memory not saved ({e}): no row is carried forward until the state store at {} is writable",
                    state.location()
                );
                state_problems.push(format!("row memory not saved: {e}"));
            }
            let metrics = build(&memory.results);
            let delivery = sink.deliver_at(&metrics, stamp).await;
            (memory, metrics, delivery, false)
        }
    };
    for p in &delivery.problems {
        tracing::error!("delivery: {p}");
    }
    // Checkpoints advance once what the run collected cannot be lost: delivered, or durable in
    // the ledger (never on a dry run).
    if (durable || delivery.ok) && !opts.dry_run && !sink.is_dry_run() {
        state_problems.extend(commit(&job.collectors, &outcomes, &sink_ctx).await);
    }
    let results = memory.results.clone();
    // What reached Datadog, row by row, for `infra-health verify`.
    state_problems.extend(
        crate::verify::record(
            &state,
            &metrics_plan.schema,
            &rows,
            &results,
            &metrics,
            sink.name(),
            &delivery,
        )
        .await,
    );
    if !opts.dry_run {
        let board_rows = per_repo::board_rows(&plan.checks, &rows, &memory.memory);
        match crate::board::publish(&state, &board_rows, &memory.memory, now).await {
            Ok(at) => tracing::info!("health board written to {at}"),
            Err(e) => {
                tracing::error!("could not write the health board: {e}");
                state_problems.push(format!("health board not written: {e}"));
            }
        }
    }
    // Status-change events annotate the dashboard; they are optional and never fail the run.
    if plan.sink.events && !memory.changes.is_empty() && !opts.dry_run {
        match sink.send_events(&memory.changes).await {
            Ok(n) => tracing::info!("{n} status-change events sent"),
            Err(e) => tracing::warn!("status-change events not sent: {e}"),
        }
    }
    Ok(RunSummary {
        rows,
        results,
        status_changes: memory.changes,
        state_problems,
        collectors: outcomes,
        metrics: metrics.len(),
        delivery,
        sink: sink.kind(),
    })
}
