//! Command-line interface: clap definitions and the code that runs each command.
//!
//! `main` only parses, calls [`execute`] and maps the result to an exit code; each command here
//! loads what it needs, calls the library and prints for a person.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Plan};
use crate::exit;
use crate::run::{self, RunOptions};

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
    #[arg(long, required_unless_present = "input")]
    pub suite: Option<String>,
    #[arg(long, required_unless_present = "input")]
    pub job: Option<String>,
    #[arg(long)]
    pub recipe: Option<String>,
    #[arg(long, required_unless_present = "input")]
    pub run_id: Option<String>,
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
}

/// A flag combination that would do nothing, or an output path that cannot be written: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `-o FILE` only means something with `--dry-run`, and must be writable before any work.
fn check_dry_run_output(
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

fn load_plan(cli: &Cli) -> anyhow::Result<Plan> {
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
        Command::ImportStable(args) => {
            use crate::stable_suite::command as stable;
            check_dry_run_output("import-stable", args.dry_run, args.output.as_deref())?;
            // Without a config file the import still works: default schema, derived rows only.
            let path = config::resolve_path(cli.config.as_deref());
            let plan = if cli.config.is_none() && !path.exists() {
                config::defaults_plan()?
            } else {
                load_plan(&cli)?
            };
            let opts = stable::ImportStableOptions {
                from: args.from.clone(),
                dry_run: args.dry_run,
                output: args.output.clone(),
                state: args.state.clone(),
                rebase_timestamps: args.rebase_timestamps,
                now: None,
            };
            let summary = stable::import_stable(&plan, opts).await?;
            let to_stdout = !args.dry_run || args.output.is_some();
            let text =
                stable::render_summary(&summary, to_stdout && std::io::stdout().is_terminal());
            if to_stdout {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
            Ok(summary.exit_code())
        }
        Command::EmitStable(args) => {
            use crate::stable_suite::command as stable;
            let artifact = match &args.input {
                Some(input) => stable::read_artifact_file(input)?,
                None => stable::EmitFields {
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
            let written = stable::write_artifact(&artifact, args.output.as_deref()).await?;
            if written != "stdout" {
                eprintln!(
                    "wrote stable-suite artifact {} to {written}",
                    artifact.run_id
                );
            }
            Ok(exit::OK)
        }
        Command::Run(args) => {
            check_dry_run_output("run", args.dry_run, args.output.as_deref())?;
            if args.verify.is_some() && args.dry_run {
                return Err(UsageError(
                    "`run --verify --dry-run` has nothing to verify: a dry run sends nothing; drop one of them".into(),
                )
                .into());
            }
            let plan = load_plan(&cli)?;
            if args.verify.is_some() {
                // Before any work: a run that cannot be verified says so up front.
                crate::verify::command::check_run_verify_keys()?;
            }
            let opts = RunOptions {
                only: args.only.clone(),
                dry_run: args.dry_run,
                output: args.output.clone(),
                state: args.state.clone(),
                ..Default::default()
            };
            let summary = run::run(&plan, opts).await?;
            print_run(&summary, args.dry_run);
            let code = summary.exit_code();
            match args.verify {
                Some(wait) if summary.sink == "datadog" && summary.delivery.ok => {
                    let verified =
                        crate::verify::command::after_run(&plan, args.state.as_deref(), wait).await;
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
        Command::Verify(args) => {
            let plan = load_plan(&cli)?;
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
        Command::Validate { online } => {
            let path = config::resolve_path(cli.config.as_deref());
            let plan = config::load(&path)?;
            for w in &plan.warnings {
                println!("warning: {w}");
            }
            // The dashboard is part of the config's contract: it must chart what the rows emit.
            let dashboard = crate::dashboard::render(&plan)?;
            println!(
                "{}: ok ({} collectors, {} rows; dashboard {:?} with {} widgets)",
                path.display(),
                plan.collectors.len(),
                plan.checks.len(),
                plan.dashboard.title,
                crate::dashboard::widget_count(&dashboard)
            );
            if *online {
                let http = run::http_client()?;
                let mut problems = Vec::new();
                for c in &plan.collectors {
                    problems.extend(c.collector.check_online(&http).await);
                }
                for p in &problems {
                    println!("error: {p}");
                }
                if !problems.is_empty() {
                    return Ok(exit::FATAL);
                }
                println!("online checks: ok");
            }
            Ok(exit::OK)
        }
        Command::Checks { metrics: true } => {
            let plan = load_plan(&cli)?;
            print!("{}", crate::catalog::Catalog::of(&plan)?.listing());
            Ok(exit::OK)
        }
        Command::Checks { metrics: false } => {
            let plan = load_plan(&cli)?;
            for def in &plan.checks {
                let name = plan
                    .schema
                    .metric_name(&def.row.pipeline(), &def.metric)
                    .context("metric name")?;
                println!(
                    "{:<45} {:<14} {:<12} {:<22} {}",
                    def.row.to_string(),
                    def.condition.human(),
                    format!("{:?}", def.encoding).to_lowercase(),
                    def.collector,
                    name
                );
            }
            Ok(exit::OK)
        }
        Command::Collectors => {
            println!("Available collector types:");
            for kind in crate::collectors::REGISTRY {
                println!("  {:<16} {}", kind.name, kind.description);
            }
            let path = config::resolve_path(cli.config.as_deref());
            if path.exists() {
                let plan = config::load(&path)?;
                println!("\nConfigured in {}:", path.display());
                for c in &plan.collectors {
                    println!(
                        "  {:<24} type {:<16} timeout {}",
                        c.name,
                        c.kind,
                        crate::duration::format_duration(c.timeout)
                    );
                }
            }
            Ok(exit::OK)
        }
        Command::Board(args) => {
            let plan = load_plan(&cli)?;
            let at = crate::state::inspect::write_board(
                &plan,
                args.state.as_deref(),
                args.out.as_deref(),
            )
            .await?;
            println!("health board written to {at}");
            Ok(exit::OK)
        }
        Command::State(StateCommand::Show { json, state }) => {
            let plan = load_plan(&cli)?;
            print!(
                "{}",
                crate::state::inspect::show(&plan, state.as_deref(), *json).await?
            );
            Ok(exit::OK)
        }
        Command::State(StateCommand::Reset { row, state }) => {
            let plan = load_plan(&cli)?;
            crate::state::inspect::reset(&plan, state.as_deref(), row).await?;
            println!("forgot row {row}");
            Ok(exit::OK)
        }
        Command::Dashboard(cmd) => {
            let plan = load_plan(&cli)?;
            crate::dashboard::command::execute(&plan, cmd).await
        }
        Command::Credentials(CredentialsCommand::Check) => {
            // The config is optional here: it only supplies `[sink]` site/endpoint.
            let path = config::resolve_path(cli.config.as_deref());
            let plan = if path.exists() {
                Some(config::load(&path)?)
            } else {
                None
            };
            let lines = crate::credentials::check_all(plan.as_ref(), run::http_client()?).await;
            for l in &lines {
                println!(
                    "{} {}: {}",
                    if l.ok { "ok  " } else { "FAIL" },
                    l.what,
                    l.detail
                );
            }
            Ok(if lines.iter().all(|l| l.ok) {
                exit::OK
            } else {
                exit::FATAL
            })
        }
    }
}

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
    use crate::schema::Status;
    text.push_str(&format!(
        "\n{} rows: {} pass, {} warn, {} fail, {} unknown; {} inferred (carried forward). {} metrics to {}{}.\n",
        rows.len(),
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Unknown),
        inferred,
        summary.metrics,
        summary.delivery.destination,
        if summary.delivery.ok {
            ""
        } else {
            " (NOT delivered)"
        },
    ));
    for c in summary.failed_collectors() {
        if let Err(e) = &c.result {
            text.push_str(&format!("collector {} failed: {e}\n", c.name));
        }
    }
    if to_stdout {
        print!("{text}");
    } else {
        eprint!("{text}");
    }
}

/// Map an error chain to the documented exit code.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<clap::Error>().is_some() || err.downcast_ref::<UsageError>().is_some() {
        exit::USAGE
    } else {
        exit::FATAL
    }
}
