//! `infra-health run`: one pass of the pipeline ([`crate::run`]), then the matrix and summary
//! printed for a person, and `--verify` after delivery.

use std::io::IsTerminal;

use super::{Cli, RunArgs, UsageError, check_dry_run_output, load_plan};
use crate::exit;
use crate::run::{self, RunOptions};
use crate::sinks::SinkKind;

pub async fn execute(cli: &Cli, args: &RunArgs) -> anyhow::Result<u8> {
    check_dry_run_output("run", args.dry_run, args.output.as_deref())?;
    if args.verify.is_some() && args.dry_run {
        return Err(UsageError(
            "`run --verify --dry-run` has nothing to verify: a dry run sends nothing; drop one of them".into(),
        )
        .into());
    }
    let plan = load_plan(cli)?;
    if args.verify.is_some() {
        // Before any work: a run that cannot be verified says so up front.
        super::verify::check_run_verify_keys()?;
    }
    let opts = RunOptions {
        only: args.only.clone(),
        dry_run: args.dry_run,
        output: args.output.clone(),
        state: args.state.clone(),
        shard: args.shard,
        ..Default::default()
    };
    let summary = run::run(&plan, opts).await?;
    print_run(&summary, args.dry_run);
    let code = exit_code(&summary);
    match args.verify {
        Some(wait) if summary.sink == SinkKind::Datadog && summary.delivery.ok => {
            let verified = super::verify::after_run(&plan, args.state.as_deref(), wait).await;
            Ok(if code == exit::OK { verified } else { code })
        }
        Some(_) => {
            eprintln!(
                "verify: skipped, nothing was delivered to Datadog in this run ({})",
                summary.delivery.destination
            );
            Ok(if code == exit::OK {
                exit::VERIFY_FAILED
            } else {
                code
            })
        }
        None => Ok(code),
    }
}

/// The documented exit code of a run: 3 when a collector failed (its rows are unknown).
pub fn exit_code(summary: &run::RunSummary) -> u8 {
    super::pipeline_exit_code(
        &summary.delivery,
        &summary.state_problems,
        summary.failed_collectors().next().is_some(),
    )
}

/// The matrix and the one-line summary; to stderr when stdout carries a dry run's JSON.
fn print_run(summary: &run::RunSummary, dry_run: bool) {
    let rows: Vec<_> = summary
        .results
        .iter()
        .map(|(i, r)| (&summary.rows[*i], r))
        .collect();
    // A dry run's stdout is the JSON document; the matrix goes to stderr with the logs.
    let to_stdout = !dry_run || summary.delivery.destination != "stdout (dry run)";
    let color = if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let mut text = crate::matrix::render(&rows, color);
    let count = |s| rows.iter().filter(|(_, r)| r.status == s).count();
    let inferred = rows.iter().filter(|(_, r)| r.inferred).count();
    use crate::checks::Status;
    text.push_str(&format!(
        "\n{}: {} pass, {} warn, {} fail, {} unknown; {} inferred (carried forward). {} to {}{}.\n",
        super::output::count(rows.len(), "row", "rows"),
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Unknown),
        inferred,
        super::output::count(summary.metrics, "metric", "metrics"),
        summary.delivery.destination,
        if summary.delivery.ok {
            String::new()
        } else if summary.delivery.failed() {
            " (NOT delivered)".to_string()
        } else {
            format!(
                " ({} points refused by the intake and dropped, not spooled)",
                summary.delivery.rejected_points
            )
        },
    ));
    for c in summary.failed_collectors() {
        if let Err(e) = &c.result {
            text.push_str(&format!("collector {} failed: {e}\n", c.name));
        }
    }
    // The last edge before the terminal: no secret's value leaves in a row's reason.
    let text = crate::secret::redact(&text);
    if to_stdout {
        // Delivered already: a closed stdout must not turn the exit code into a panic.
        if let Err(e) = super::output::stdout(&text) {
            tracing::warn!("{e:#}");
        }
    } else {
        eprint!("{text}");
    }
}
