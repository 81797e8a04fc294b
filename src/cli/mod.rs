//! The command layer: clap definitions, [`execute`] dispatching to one file per command, and
//! the exit-code mapping.
//!
//! `main` only parses, calls [`execute`] and maps the result to an exit code. Each command file
//! loads what it needs, calls the library (the [`crate::run`] pipeline, the state store, the
//! dashboard builder, …) and prints for a person. Nothing below this layer imports it: commands
//! are the top of the data flow (see docs/architecture.md).

pub mod board;
pub mod config_cmds;
pub mod credentials;
pub mod dashboard;
pub mod datadog;
pub mod import;
pub mod output;
pub mod run;
pub mod state;
pub mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Plan};
use crate::exit;

#[derive(Debug, Parser)]
#[command(
    name = "infra-health",
    version,
    about = "Evaluate infrastructure health checks and ship the matrix to Datadog",
    long_about = None
)]
pub struct Cli {
    /// Config file (default: $INFRA_HEALTH_CONFIG, then ./infra-health.toml).
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collect, evaluate and deliver once (the CronJob entrypoint).
    Run(RunArgs),
    /// Check the config: unknown keys, bad conditions, schema violations, with file:line; and
    /// that the dashboard generated from it validates.
    Validate {
        /// Also ask the live sources what only they know (e.g. that listed GitHub workflows
        /// exist); uses the same credentials as `run`.
        #[arg(long)]
        online: bool,
    },
    /// List the rows of the health matrix.
    Checks {
        /// List every metric series the config emits instead (name, type, identifying tags,
        /// tags that come from the data): what the dashboard is built from.
        #[arg(long)]
        metrics: bool,
    },
    /// List the available collector types and the configured instances.
    Collectors,
    /// Write the local HTML health board from the state store.
    Board(BoardArgs),
    /// Look at or edit what the state store remembers about each row.
    #[command(subcommand)]
    State(StateCommand),
    /// Import stable-suite artifacts (s3://bucket/prefix/, file:///dir/ or a file) once.
    ImportStable(ImportStableArgs),
    /// Write a valid stable-suite artifact (JSON or Parquet) for a suite runner.
    EmitStable(Box<EmitStableArgs>),
    /// Check credentials against their services without printing them.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// The Datadog dashboard generated from this config: render, diff, push or terraform.
    #[command(subcommand)]
    Dashboard(DashboardCommand),
    /// The whole Datadog side: dashboard, monitors and metric tag configurations (percentiles):
    /// plan, apply or terraform.
    #[command(subcommand)]
    Datadog(DatadogCommand),
    /// Read back from Datadog that every row of the last delivery landed as sent (needs
    /// DD_API_KEY and DD_APP_KEY). Exit 0 when all did, 7 when not.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// State store URL, where `run` records what it delivered (as for `run`).
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// The window read back: deliveries in the last DURATION (e.g. 30m, 2h).
    #[arg(long, default_value = "30m", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub since: std::time::Duration,
    /// Poll until everything is visible or DURATION has passed (default: check once).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub wait: Option<std::time::Duration>,
    /// Also run every widget query of the generated dashboard and check its matrix cells.
    #[arg(long)]
    pub dashboard: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_duration(text)
        .map_err(|e| format!("{e} (write a duration such as 30s, 2m or 1h)"))
}

#[derive(Debug, Subcommand)]
pub enum DashboardCommand {
    /// Print the dashboard JSON (checked against the metrics the config emits).
    Render {
        /// Write it to FILE instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Show what `push` would change on the live dashboard (needs DD_API_KEY and DD_APP_KEY).
    Diff {
        /// State store URL, where `push` keeps the dashboard's id (as for `run`).
        #[arg(long, value_name = "URL")]
        state: Option<String>,
    },
    /// Create or update the dashboard (needs DD_API_KEY and DD_APP_KEY); idempotent.
    Push {
        /// State store URL, where the dashboard's id is kept (as for `run`).
        #[arg(long, value_name = "URL")]
        state: Option<String>,
    },
    /// Print a Terraform `datadog_dashboard_json` resource holding the dashboard.
    Terraform {
        /// Write it to FILE instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        /// The Terraform resource name.
        #[arg(long, default_value = "infra_health", value_name = "NAME")]
        resource: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatadogCommand {
    /// Show every change `apply` would make to the dashboard, the monitors and the metric tag
    /// configurations (needs DD_API_KEY and DD_APP_KEY); changes nothing.
    Plan {
        /// Also list the deletions of what infra-health created and the config no longer implies.
        #[arg(long)]
        prune: bool,
        /// State store URL (dashboard id, configured metrics), as for `run`.
        #[arg(long, value_name = "URL")]
        state: Option<String>,
    },
    /// Make every change: idempotent, a second apply changes nothing.
    Apply {
        /// Delete monitors and tag configurations infra-health created that the config no longer
        /// implies (monitors tagged managed-by:infra-health and this env only).
        #[arg(long)]
        prune: bool,
        /// State store URL, as for `run`.
        #[arg(long, value_name = "URL")]
        state: Option<String>,
    },
    /// Print the dashboard, monitors and metric tag configurations as Terraform resources.
    Terraform {
        /// Write it to FILE instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        /// The dashboard's Terraform resource name (the monitors link to it).
        #[arg(long, default_value = "infra_health", value_name = "NAME")]
        resource: String,
    },
}

#[derive(Debug, Args)]
pub struct BoardArgs {
    /// Write the board here (default: board.html in a local state directory, else ./board.html).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// State store URL (as for `run`).
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Show each row's remembered status, value, observation time and recent history.
    Show {
        /// Print the stored row memory as JSON.
        #[arg(long)]
        json: bool,
        /// State store URL (as for `run`).
        #[arg(long, value_name = "URL")]
        state: Option<String>,
    },
    /// Forget one row (`category/workflow/task/check`, as `state show` prints it).
    Reset {
        /// The row to forget: `category/workflow/task/check`, as `state show` prints it.
        #[arg(value_name = "ROW")]
        row: String,
        /// State store URL (as for `run`).
        #[arg(long, value_name = "URL")]
        state: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ImportStableArgs {
    /// Where the artifacts are: s3://bucket/prefix/, file:///dir/, a directory or one file.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Print the exact request bodies instead of sending them; the checkpoint is not advanced.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run, write the request bodies to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// State store URL (holds the import checkpoint); as for `run`.
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// Shift times so the newest artifact finished now (for the bundled example artifacts).
    #[arg(long)]
    pub rebase_timestamps: bool,
}

#[derive(Debug, Args)]
pub struct EmitStableArgs {
    /// Re-emit (validate, or convert between JSON and Parquet) this artifact instead of flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["suite", "job", "run_id"])]
    pub input: Option<PathBuf>,
    /// The suite the run belongs to (e.g. `stable`); tag `suite` on its observations.
    #[arg(long, required_unless_present = "input")]
    pub suite: Option<String>,
    /// The job within the suite (e.g. `multigpu_arena`); rows select on it with `match`.
    #[arg(long, required_unless_present = "input")]
    pub job: Option<String>,
    /// The recipe or entry point the job ran (optional, e.g. `arena.multigpu`).
    #[arg(long)]
    pub recipe: Option<String>,
    /// The run's unique id (at most 200 characters; never a tag).
    #[arg(long, required_unless_present = "input")]
    pub run_id: Option<String>,
    /// Where the run ran (optional, e.g. `skypilot`); the `runner` metric tag.
    #[arg(long)]
    pub runner: Option<String>,
    /// RFC 3339 time, or `now`.
    #[arg(long, default_value = "now")]
    pub started_at: String,
    /// RFC 3339 time, or `now`.
    #[arg(long, default_value = "now")]
    pub finished_at: String,
    /// success, failure, timeout or cancelled.
    #[arg(long, default_value = "success")]
    pub exit_status: String,
    /// The runner's exit code (optional).
    #[arg(long, allow_hyphen_values = true)]
    pub exit_code: Option<i64>,
    /// NAME=VALUE:UNIT, e.g. sps=43120:steps_per_sec (repeatable).
    #[arg(long = "metric", value_name = "NAME=VALUE:UNIT")]
    pub metrics: Vec<String>,
    /// METRIC CONDITION, e.g. 'sps>40000' or 'run.success>=1' (repeatable).
    #[arg(long = "accept", value_name = "CRITERION")]
    pub accept: Vec<String>,
    /// A .json or .parquet file, s3://bucket/key.json|.parquet, or - for stdout (JSON).
    #[arg(long, short = 'o', value_name = "DEST")]
    pub output: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Validate DD_API_KEY (and DD_APP_KEY if set) against the configured Datadog site.
    /// Exit 0 when every set key is valid, 1 otherwise.
    Check,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print the exact request bodies instead of sending them.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only these collectors (instance names or types; comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub only: Vec<String>,
    /// With --dry-run, write the request bodies to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// State store URL (file://…, s3://bucket/prefix or a directory); default
    /// $INFRA_HEALTH_STATE, then config, then ./.infra-health.
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// After delivery, verify in Datadog that every row landed, polling up to WAIT (default
    /// 2m); sends `<prefix>.verify.rows_missing` / `.rows_different`. Needs DD_APP_KEY.
    #[arg(
        long,
        value_name = "WAIT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "2m",
        value_parser = parse_duration_arg
    )]
    pub verify: Option<std::time::Duration>,
    /// Collect shard K of N of the organisations the GitHub collectors discover (1-based, e.g.
    /// 2/4): N jobs sharing one state store split them by a stable hash of the repository name
    /// (docs/organisation.md). Default $INFRA_HEALTH_SHARD, else the whole organisation.
    #[arg(long, value_name = "K/N", env = "INFRA_HEALTH_SHARD", value_parser = parse_shard_arg)]
    pub shard: Option<crate::collectors::Shard>,
}

fn parse_shard_arg(text: &str) -> Result<crate::collectors::Shard, String> {
    text.parse()
}

/// A flag combination that would do nothing, or an output path that cannot be written: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `-o FILE` only means something with `--dry-run`, and must be writable before any work.
pub(crate) fn check_dry_run_output(
    command: &str,
    dry_run: bool,
    output: Option<&std::path::Path>,
) -> Result<(), UsageError> {
    let Some(out) = output else { return Ok(()) };
    if !dry_run {
        return Err(UsageError(format!(
            "`{command} -o {}` without --dry-run does nothing: -o writes the request bodies of a \
             dry run; add --dry-run, or drop -o",
            out.display()
        )));
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(UsageError(format!(
            "cannot write -o {}: the directory {} does not exist; create it or choose another path",
            out.display(),
            parent.display()
        )));
    }
    if out.is_dir() {
        return Err(UsageError(format!(
            "cannot write -o {}: it is a directory; give a file path",
            out.display()
        )));
    }
    Ok(())
}

pub(crate) fn load_plan(cli: &Cli) -> anyhow::Result<Plan> {
    let path = config::resolve_path(cli.config.as_deref());
    let plan = config::load(&path)?;
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    Ok(plan)
}

/// Run the parsed command; the `u8` is the process exit code.
pub async fn execute(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Run(args) => run::execute(&cli, args).await,
        Command::ImportStable(args) => import::execute_import(&cli, args).await,
        Command::EmitStable(args) => import::execute_emit(args).await,
        Command::Verify(args) => verify::execute(&cli, args).await,
        Command::Validate { online } => config_cmds::validate(&cli, *online).await,
        Command::Checks { metrics } => config_cmds::checks(&cli, *metrics).await,
        Command::Collectors => config_cmds::collectors(&cli),
        Command::Board(args) => board::execute(&cli, args).await,
        Command::State(cmd) => state::execute(&cli, cmd).await,
        Command::Dashboard(cmd) => {
            let plan = load_plan(&cli)?;
            dashboard::execute(&plan, cmd).await
        }
        Command::Datadog(cmd) => {
            let plan = load_plan(&cli)?;
            datadog::execute(&plan, cmd).await
        }
        Command::Credentials(CredentialsCommand::Check) => credentials::execute(&cli).await,
    }
}

/// The documented exit code of one pass of the pipeline (`run`, `import-stable`; README "Exit
/// codes"): 5 when a signal stopped it, 4 when the delivery failed (what is left is spooled),
/// 8 when points the intake refused were dropped, 6 when the state store could not be written,
/// 3 when part of the input failed (`partial`), else 0.
pub fn pipeline_exit_code(
    delivery: &crate::sinks::DeliveryReport,
    state_problems: &[String],
    partial: bool,
) -> u8 {
    if crate::shutdown::requested() {
        exit::INTERRUPTED
    } else if delivery.failed() {
        exit::DELIVERY_FAILED
    } else if !delivery.ok {
        exit::DROPPED
    } else if !state_problems.is_empty() {
        exit::STATE_FAILED
    } else if partial {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

/// Map an error chain to the documented exit code.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<clap::Error>().is_some()
        || err.downcast_ref::<UsageError>().is_some()
        || err.downcast_ref::<crate::run::UnknownOnly>().is_some()
    {
        exit::USAGE
    } else {
        exit::FATAL
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help` explains every flag and argument of every command (an undocumented flag shows an
    /// empty line there).
    #[test]
    fn every_argument_of_every_command_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg
                    .get_help()
                    .is_none_or(|h| h.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub
                    .get_about()
                    .is_none_or(|h| h.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "infra-health", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
