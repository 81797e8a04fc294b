//! `infra-health import-stable` and `infra-health emit-stable`.
//!
//! `import-stable --from URL` is the same pipeline as `run` (collect → evaluate → metrics →
//! sink → checkpoint), with one `stable_suite` collector reading URL. Its rows are the config's
//! `source = "stable_suite"` rows that read a `stable_suite` collector, plus one row per
//! acceptance criterion an artifact declares for itself where no config row covers that job and
//! signal. `emit-stable` is the producer side: a suite runner calls it to write a valid artifact
//! (JSON or Parquet, to a file, `s3://` or stdout), so both sides share one schema.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::io::IsTerminal;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{Cli, EmitStableArgs, ImportStableArgs, check_dry_run_output, load_plan};
use crate::checks::RowId;
use crate::checks::{Aggregate, CheckDef, CheckResult, Condition, Encoding, Summary};
use crate::collectors::CollectorInstance;
use crate::collectors::stable_suite::{LastImport, StableSuiteCollector};
use crate::config::{self, Plan};
use crate::exit;
use crate::observation::Observation;
use crate::run::{self, CollectorOutcome};
use crate::sinks::DeliveryReport;
use crate::stable_suite::import::ImportOptions;
use crate::stable_suite::{
    Artifact, ArtifactError, Criterion, ExitStatus, Format, RunMetric, TAG_ACCEPTANCE,
};

/// The name of the collector instance `import-stable` runs (it appears in self-metric tags).
pub const IMPORT_COLLECTOR: &str = "import-stable";
/// Source tag and pipeline of everything imported.
pub const SOURCE: &str = "stable_suite";
/// How long a row derived from an artifact's acceptance criteria is carried forward: a nightly
/// suite plus two hours of slack.
pub const DERIVED_CARRY_FORWARD: Duration = Duration::from_secs(26 * 3600);

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

impl ImportSummary {
    pub fn exit_code(&self) -> u8 {
        if crate::shutdown::requested() {
            crate::exit::INTERRUPTED
        } else if !self.delivery.ok {
            crate::exit::DELIVERY_FAILED
        } else if !self.state_problems.is_empty() {
            crate::exit::STATE_FAILED
        } else if self.collector.result.is_err()
            || !self.import.bad.is_empty()
            || !self.import.unlisted.is_empty()
        {
            crate::exit::PARTIAL
        } else {
            crate::exit::OK
        }
    }
}

/// Rows for acceptance criteria the artifacts declare and no config row covers: one per
/// (job, signal), from the newest artifact declaring it. Row: `training / <job> / <suite> /
/// <signal>`, metric `training.<signal>`.
pub fn acceptance_rows(
    config_rows: &[CheckDef],
    observations: &[Observation],
    collector: &str,
) -> Vec<CheckDef> {
    let covered: BTreeSet<(String, String)> = config_rows
        .iter()
        .filter_map(|d| Some((d.matches.get("job")?.clone(), d.signal.clone())))
        .collect();
    let mut newest: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.tags.contains_key(TAG_ACCEPTANCE) && o.tags.contains_key("job"))
        .collect();
    newest.sort_by_key(|o| std::cmp::Reverse(o.timestamp));
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for o in newest {
        let job = &o.tags["job"];
        let key = (job.clone(), o.signal.clone());
        if covered.contains(&key) || !seen.insert(key) {
            continue;
        }
        let Ok(condition) = Condition::parse(&o.tags[TAG_ACCEPTANCE]) else {
            continue;
        };
        let suite = o
            .tags
            .get("suite")
            .cloned()
            .unwrap_or_else(|| "stable".into());
        let encoding = match condition.operand() {
            crate::checks::condition::Operand::Text(_) => Encoding::Status,
            _ => Encoding::Gauge,
        };
        let mut matches = std::collections::BTreeMap::new();
        matches.insert("job".to_string(), job.clone());
        out.push(CheckDef {
            row: RowId {
                source: SOURCE.into(),
                workflow_category: "training".into(),
                workflow_name: job.clone(),
                task: suite,
                check: o.signal.replace('.', "_"),
            },
            collector: collector.to_string(),
            signal: o.signal.clone(),
            matches,
            aggregate: Aggregate::Latest,
            condition,
            warn: None,
            encoding,
            metric: format!("training.{}", o.signal),
            summary: Summary::P90,
            percentiles: false,
            interval: 600,
            unit: o.unit.clone(),
            carry_forward: DERIVED_CARRY_FORWARD,
            tags: Default::default(),
            title: format!("{job}: {} (artifact acceptance)", o.signal),
        });
    }
    out
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
    let job = run::Job {
        plan: base,
        rows,
        collectors: vec![&instance],
        source: SOURCE.into(),
        derive_rows: |rows, outcomes| match outcomes.first().map(|o| &o.result) {
            Some(Ok(obs)) => acceptance_rows(rows, obs, IMPORT_COLLECTOR),
            _ => Vec::new(),
        },
    };
    let run_opts = run::RunOptions {
        only: Vec::new(),
        dry_run: opts.dry_run,
        output: opts.output.clone(),
        state: opts.state.clone(),
        now: opts.now,
        datadog_key: None,
    };
    let summary = run::execute(job, run_opts).await?;
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

/// The fields of an artifact from `emit-stable`'s flags.
#[derive(Debug, Clone, Default)]
pub struct EmitFields {
    pub suite: String,
    pub job: String,
    pub recipe: Option<String>,
    pub run_id: String,
    pub runner: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub exit_status: String,
    pub exit_code: Option<i64>,
    /// `name=value:unit`
    pub metrics: Vec<String>,
    /// `metric<condition>`, e.g. `sps>40000`, `run.success>=1`
    pub accept: Vec<String>,
}

fn flag_err(flag: &str, msg: impl Into<String>) -> ArtifactError {
    ArtifactError::new("<command line>", Some(flag), msg)
}

fn parse_time(flag: &str, s: &str) -> Result<DateTime<Utc>, ArtifactError> {
    if s == "now" {
        return Ok(Utc::now());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            flag_err(
                flag,
                format!("{s:?} is not an RFC 3339 time or `now` ({e})"),
            )
        })
}

impl EmitFields {
    /// Build and validate the artifact.
    pub fn artifact(&self) -> Result<Artifact, ArtifactError> {
        let exit_status = ExitStatus::parse_explained(&self.exit_status)
            .map_err(|m| flag_err("--exit-status", m))?;
        let metrics = self
            .metrics
            .iter()
            .map(|m| {
                let bad = || {
                    flag_err(
                        "--metric",
                        format!("{m:?} is not NAME=VALUE:UNIT, e.g. sps=43120:steps_per_sec"),
                    )
                };
                let (name, rest) = m.split_once('=').ok_or_else(bad)?;
                let (value, unit) = rest.rsplit_once(':').ok_or_else(bad)?;
                Ok(RunMetric {
                    name: name.trim().to_string(),
                    value: value.trim().parse().map_err(|_| bad())?,
                    unit: unit.trim().to_string(),
                })
            })
            .collect::<Result<Vec<_>, ArtifactError>>()?;
        let acceptance = self
            .accept
            .iter()
            .map(|a| {
                let at = a.find(['<', '>', '=', '!', ' ']).ok_or_else(|| {
                    flag_err(
                        "--accept",
                        format!("{a:?} is not METRIC CONDITION, e.g. sps>40000"),
                    )
                })?;
                Ok(Criterion {
                    metric: a[..at].trim().to_string(),
                    condition: a[at..].trim().to_string(),
                })
            })
            .collect::<Result<Vec<_>, ArtifactError>>()?;
        let artifact = Artifact {
            schema_version: crate::stable_suite::SCHEMA_VERSION,
            suite: self.suite.clone(),
            job: self.job.clone(),
            recipe: self.recipe.clone(),
            run_id: self.run_id.clone(),
            runner: self.runner.clone(),
            started_at: parse_time("--started-at", &self.started_at)?,
            finished_at: parse_time("--finished-at", &self.finished_at)?,
            exit_status,
            exit_code: self.exit_code,
            metrics,
            acceptance,
        };
        artifact.validate("<command line>")?;
        Ok(artifact)
    }
}

/// Encode `artifact` for `destination` (by its extension; JSON when there is none).
pub fn encode_for(
    artifact: &Artifact,
    destination: Option<&str>,
) -> Result<Vec<u8>, ArtifactError> {
    match destination.and_then(Format::of) {
        Some(Format::Parquet) => crate::stable_suite::parquet::write(artifact),
        _ => crate::stable_suite::write_json(artifact),
    }
}

/// Write an artifact to a file (atomically: temp file then rename), to `s3://bucket/key`, or to
/// stdout when `destination` is `None` or `-`.
pub async fn write_artifact(
    artifact: &Artifact,
    destination: Option<&str>,
) -> anyhow::Result<String> {
    let dest = destination.filter(|d| *d != "-");
    let bytes = encode_for(artifact, dest)?;
    match dest {
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes).context("cannot write to stdout")?;
            out.flush().context("cannot write to stdout")?;
            Ok("stdout".into())
        }
        Some(url) if url.starts_with("s3://") => {
            use object_store::ObjectStoreExt;
            let (bucket, key) = crate::store_url::split_s3_url(url)
                .filter(|(_, k)| Format::of(k).is_some())
                .with_context(|| format!("{url:?}: expected s3://bucket/key.json or .parquet"))?;
            let store = crate::store_url::s3(bucket)?;
            store
                .put(
                    &object_store::path::Path::from(key),
                    Bytes::from(bytes).into(),
                )
                .await
                .with_context(|| format!("cannot upload {url}"))?;
            Ok(url.to_string())
        }
        Some(path) => {
            let path = PathBuf::from(path.strip_prefix("file://").unwrap_or(path));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            std::fs::write(&tmp, &bytes)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path.display().to_string())
        }
    }
}

/// Read a JSON artifact from a file, for `emit-stable --input` (validate or convert).
pub fn read_artifact_file(path: &std::path::Path) -> anyhow::Result<Artifact> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    let format = Format::of(&name).unwrap_or(Format::Json);
    Ok(crate::stable_suite::parse(&bytes, format, &name)?)
}

/// The terminal report of an import: the matrix of imported rows, the counts, and every
/// malformed artifact with its file and field.
pub fn render_summary(s: &ImportSummary, color: bool) -> String {
    let rows: Vec<(&CheckDef, &CheckResult)> = s.rows.iter().map(|(d, r)| (d, r)).collect();
    let mut text = crate::matrix::render(&rows, color);
    let i = &s.import;
    text.push_str(&format!(
        "\n{} artifacts listed: {} already imported, {} new, {} malformed, {} unreadable. {} metrics to {}{}.\n",
        i.listed,
        i.already_imported,
        i.imported.len(),
        i.bad.len(),
        i.unread.len(),
        s.metrics,
        s.delivery.destination,
        if s.delivery.ok { "" } else { " (NOT delivered; the checkpoint was not advanced)" },
    ));
    for bad in &i.bad {
        text.push_str(&format!("malformed artifact skipped: {bad}\n"));
    }
    for u in &i.unread {
        text.push_str(&format!("could not read {u}; it will be retried\n"));
    }
    for u in &i.unlisted {
        text.push_str(&format!("could not list {u}\n"));
    }
    if let Err(e) = &s.collector.result {
        text.push_str(&format!("import failed: {e}\n"));
    }
    text
}

/// `import-stable`: import once and print the summary (to stderr when stdout carries the dry run).
pub async fn execute_import(cli: &Cli, args: &ImportStableArgs) -> anyhow::Result<u8> {
    check_dry_run_output("import-stable", args.dry_run, args.output.as_deref())?;
    // Without a config file the import still works: default schema, derived rows only.
    let path = config::resolve_path(cli.config.as_deref());
    let plan = if cli.config.is_none() && !path.exists() {
        config::defaults_plan()?
    } else {
        load_plan(cli)?
    };
    let opts = ImportStableOptions {
        from: args.from.clone(),
        dry_run: args.dry_run,
        output: args.output.clone(),
        state: args.state.clone(),
        rebase_timestamps: args.rebase_timestamps,
        now: None,
    };
    let summary = import_stable(&plan, opts).await?;
    let to_stdout = !args.dry_run || args.output.is_some();
    let text = render_summary(&summary, to_stdout && std::io::stdout().is_terminal());
    if to_stdout {
        print!("{text}");
    } else {
        eprint!("{text}");
    }
    Ok(summary.exit_code())
}

/// `emit-stable`: build or re-read an artifact and write it.
pub async fn execute_emit(args: &EmitStableArgs) -> anyhow::Result<u8> {
    let artifact = match &args.input {
        Some(input) => read_artifact_file(input)?,
        None => EmitFields {
            suite: args.suite.clone().unwrap_or_default(),
            job: args.job.clone().unwrap_or_default(),
            recipe: args.recipe.clone(),
            run_id: args.run_id.clone().unwrap_or_default(),
            runner: args.runner.clone(),
            started_at: args.started_at.clone(),
            finished_at: args.finished_at.clone(),
            exit_status: args.exit_status.clone(),
            exit_code: args.exit_code,
            metrics: args.metrics.clone(),
            accept: args.accept.clone(),
        }
        .artifact()?,
    };
    let written = write_artifact(&artifact, args.output.as_deref()).await?;
    if written != "stdout" {
        eprintln!(
            "wrote stable-suite artifact {} to {written}",
            artifact.run_id
        );
    }
    Ok(exit::OK)
}
