//! `infra-health verify`: read back from Datadog what the last deliveries sent, and print the
//! report (text or JSON). The read-back itself lives in [`crate::verify`].

use anyhow::Context;

use super::{Cli, VerifyArgs, load_plan};

pub async fn execute(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<u8> {
    let plan = load_plan(cli)?;
    let opts = crate::verify::command::VerifyOptions {
        state: args.state.clone(),
        since: args.since,
        wait: args.wait.unwrap_or_default(),
        dashboard: args.dashboard,
    };
    let report = crate::verify::command::verify(&plan, &opts).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot write the report")?
        );
    } else {
        print!("{}", crate::verify::command::render(&report));
    }
    Ok(report.exit_code())
}
