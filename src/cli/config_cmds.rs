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
        "{}: ok ({}, {}; dashboard {:?} with {})",
        path.display(),
        super::output::count(plan.collectors.len(), "collector", "collectors"),
        super::output::count(plan.checks.len(), "row", "rows"),
        plan.dashboard.title,
        super::output::count(
            crate::dashboard::widget_count(&dashboard),
            "widget",
            "widgets"
        )
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

pub async fn checks(cli: &Cli, metrics: bool) -> anyhow::Result<u8> {
    if metrics {
        let plan = load_plan(cli)?;
        let catalog = crate::catalog::Catalog::of(&plan)?;
        // The bill first: what these series cost, percentiles included (docs/dashboard.md).
        let mut text = format!(
            "{}{}\n",
            catalog.listing(),
            crate::datadog_side::metric_config::cost(&catalog)
        );
        text.push_str(&per_repository_cost(&plan, &catalog).await);
        super::output::stdout(&text)?;
        return Ok(exit::OK);
    }
    let plan = load_plan(cli)?;
    let mut text = String::new();
    for def in &plan.checks {
        let name = plan
            .schema
            .metric_name(&def.row.pipeline(), &def.metric)
            .context("metric name")?;
        text.push_str(&format!(
            "{:<45} {:<14} {:<12} {:<22} {}\n",
            def.row.to_string(),
            def.condition.human(),
            format!("{:?}", def.encoding).to_lowercase(),
            def.collector,
            name
        ));
    }
    super::output::stdout(&text)?;
    Ok(exit::OK)
}

/// The bill of rows made per repository, for the repositories the last runs covered (the row
/// memory of the configured state store; nothing is asked of GitHub).
async fn per_repository_cost(plan: &config::Plan, catalog: &crate::catalog::Catalog) -> String {
    let url = crate::state::url_for(None, plan.state_url.as_deref());
    let memory = match crate::state::StateStore::open(&url) {
        Ok(store) => crate::state::rows::load(&store).await.ok(),
        Err(_) => None,
    };
    let Some(memory) = memory else {
        return format!(
            "(rows made per repository: no row memory readable at {url}; run once to count the repositories covered)\n"
        );
    };
    let repos_of = |i: usize| -> usize {
        plan.checks.get(i).map_or(1, |def| {
            memory
                .rows
                .iter()
                .filter(|r| r.row.repo.is_some() && r.row.template() == def.row)
                .count()
                .max(1)
        })
    };
    let per_repo_rows = (0..plan.checks.len()).filter(|i| repos_of(*i) > 1).count();
    if per_repo_rows == 0 {
        return String::new();
    }
    let repos: std::collections::BTreeSet<&str> = memory
        .rows
        .iter()
        .filter_map(|r| r.row.repo.as_deref())
        .collect();
    let cost = crate::datadog_side::metric_config::cost_with(catalog, |s| match s.origin {
        crate::catalog::Origin::Row(i) => repos_of(i),
        _ => 1,
    });
    format!(
        "for the {} repositories the last runs covered ({per_repo_rows} of the config's rows made \
         once per repository, from the row memory at {url}): {cost}\n",
        repos.len()
    )
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
