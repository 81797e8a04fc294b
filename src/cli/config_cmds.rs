//! `infra-health validate`, `checks` and `collectors`: commands that read the config and print
//! what it declares, without collecting anything (`validate --online` asks the sources).

use anyhow::Context;

use super::{Cli, load_plan};
use crate::config;
use crate::exit;

pub async fn validate(cli: &Cli, online: bool) -> anyhow::Result<u8> {
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
    if online {
        let http = crate::net::http_client()?;
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

pub fn checks(cli: &Cli, metrics: bool) -> anyhow::Result<u8> {
    if metrics {
        let plan = load_plan(cli)?;
        let catalog = crate::catalog::Catalog::of(&plan)?;
        print!("{}", catalog.listing());
        // The bill first: what these series cost, percentiles included (docs/dashboard.md).
        println!("{}", crate::datadog_side::metric_config::cost(&catalog));
        return Ok(exit::OK);
    }
    let plan = load_plan(cli)?;
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

pub fn collectors(cli: &Cli) -> anyhow::Result<u8> {
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
