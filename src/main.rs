use std::process::ExitCode;

use clap::Parser;
use infra_health::cli::{self, Cli};

fn main() -> ExitCode {
    // Before anything can print: the tool's own keys are redacted wherever they show up.
    infra_health::secret::register_well_known();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(|| infra_health::progress::LogWriter)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(infra_health::exit::FATAL);
        }
    };
    let result = runtime.block_on(async {
        infra_health::shutdown::install();
        cli::execute(cli).await
    });
    // Dropping the runtime would wait for every blocking thread, and one stuck in the kernel
    // (a read a collector's timeout gave up on) would keep the process alive after delivery.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let message = error_chain(&err);
            eprintln!("error: {}", infra_health::secret::redact(&message));
            ExitCode::from(cli::exit_code_for(&err))
        }
    }
}

/// The error and its causes on one line, lower-case as tools print them.
fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(text.trim())) {
            parts.push(text.trim().to_string());
        }
    }
    parts.join(": ")
}
