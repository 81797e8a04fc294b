//! `infra-health import-stable` and `infra-health emit-stable`: flags, printing, exit codes.
//!
//! `import-stable --from URL` is the same pipeline as `run` ([`crate::run::import`]): one
//! `stable_suite` collector reading URL, the config's `source = "stable_suite"` rows that read a
//! `stable_suite` collector, plus one row per acceptance criterion an artifact declares for
//! itself where no config row covers that job and signal. `emit-stable` is the producer side: a
//! suite runner calls it to write a valid artifact (JSON or Parquet, to a file, `s3://` or
//! stdout; [`crate::stable_suite::write`]), so both sides share one schema.

use std::io::IsTerminal;

use chrono::{DateTime, Utc};

use super::{Cli, EmitStableArgs, ImportStableArgs, check_dry_run_output, load_plan};
use crate::checks::{CheckDef, CheckResult};
use crate::config;
use crate::exit;
use crate::run::import::{ImportStableOptions, ImportSummary, import_stable};
use crate::stable_suite::write::{read_artifact_file, write_artifact};
use crate::stable_suite::{Artifact, ArtifactError, Criterion, ExitStatus, RunMetric};

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

/// The terminal report of an import: the matrix of imported rows, the counts, and every
/// malformed artifact with its file and field.
pub fn render_summary(s: &ImportSummary, color: bool) -> String {
    let rows: Vec<(&CheckDef, &CheckResult)> = s.rows.iter().map(|(d, r)| (d, r)).collect();
    let mut text = crate::matrix::render(&rows, color);
    let i = &s.import;
    text.push_str(&format!(
        "\n{} listed: {} already imported, {} new, {} malformed, {} unreadable. {} to {}{}.\n",
        super::output::count(i.listed, "artifact", "artifacts"),
        i.already_imported,
        i.imported.len(),
        i.bad.len(),
        i.unread.len(),
        super::output::count(s.metrics, "metric", "metrics"),
        s.delivery.destination,
        if s.delivery.ok {
            ""
        } else {
            " (NOT delivered; the checkpoint was not advanced)"
        },
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
    let text = crate::secret::redact(&text);
    if to_stdout {
        // Delivered already: a closed stdout must not turn the exit code into a panic.
        if let Err(e) = super::output::stdout(&text) {
            tracing::warn!("{e:#}");
        }
    } else {
        eprint!("{text}");
    }
    Ok(exit_code(&summary))
}

/// The documented exit code of an import: 3 when the import failed, an artifact was malformed
/// or a location could not be listed.
pub fn exit_code(summary: &ImportSummary) -> u8 {
    let partial = summary.collector.result.is_err()
        || !summary.import.bad.is_empty()
        || !summary.import.unlisted.is_empty();
    super::pipeline_exit_code(&summary.delivery, &summary.state_problems, partial)
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
