//! `infra-health verify` and `run --verify`: read back from Datadog what the last deliveries
//! sent, print the report (text or JSON), send its self-metrics, and map it to the exit code.
//! The read-back itself lives in [`crate::verify`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;

use super::{Cli, VerifyArgs, load_plan};
use crate::config::Plan;
use crate::exit;
use crate::schema::Metric;
use crate::sinks::datadog::Purpose;
use crate::sinks::{self, SinkRequest};
use crate::state::StateStore;
use crate::verify::report::{self, Report, VerifyOptions};

pub async fn execute(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<u8> {
    let plan = load_plan(cli)?;
    let opts = VerifyOptions {
        state: args.state.clone(),
        since: args.since,
        wait: args.wait.unwrap_or_default(),
        dashboard: args.dashboard,
    };
    let report = report::verify(&plan, &opts).await?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&report).context("cannot write the report")?;
        text.push('\n');
        super::output::stdout(&text)?;
    } else {
        super::output::stdout(&report::render(&report))?;
    }
    Ok(exit_code(&report))
}

/// The documented exit code: 0 everything visible as sent, 7 otherwise.
fn exit_code(report: &Report) -> u8 {
    if report.ok {
        exit::OK
    } else {
        exit::VERIFY_FAILED
    }
}

/// Before `run --verify` does any work: the keys verification will need.
pub fn check_run_verify_keys() -> anyhow::Result<()> {
    crate::sinks::datadog::keys(Purpose::Query).map(|_| ())
}

/// `run --verify[=WAIT]`, after the run delivered: verify, polling up to `wait`, print the
/// result, and send it as self-metrics. Returns the verification's exit code (0 or 7).
pub async fn after_run(plan: &Plan, state: Option<&str>, wait: Duration) -> u8 {
    let opts = VerifyOptions {
        state: state.map(str::to_string),
        wait,
        ..Default::default()
    };
    let report = match report::verify(plan, &opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("verify: {e:#}");
            return exit::VERIFY_FAILED;
        }
    };
    print!("\nverify:\n{}", report::render(&report));
    let metrics = report::self_metrics(plan, &report, Utc::now().timestamp());
    if let Err(e) = send(plan, state, &metrics).await {
        tracing::warn!("verify self-metrics not sent: {e:#}");
    }
    exit_code(&report)
}

/// Deliver the verify self-metrics through the sink the config selects (`run --verify` runs only
/// after a delivery to Datadog, so that is the Datadog sink, with its spool and retries).
async fn send(plan: &Plan, state: Option<&str>, metrics: &[Metric]) -> anyhow::Result<()> {
    let state = Arc::new(StateStore::open(&crate::state::url_for(
        state,
        plan.state_url.as_deref(),
    ))?);
    let sink = sinks::select(
        &plan.sink,
        SinkRequest::default(),
        state,
        crate::net::http_client()?,
        &plan.schema,
        &plan.defaults.source,
    )?;
    let report = sink.deliver(metrics).await;
    if report.ok {
        Ok(())
    } else {
        anyhow::bail!("{}", report.problems.join("; "))
    }
}
