//! `infra-health dashboard render|diff|push|terraform`: what each prints.

use std::path::Path;

use anyhow::Context;

use super::DashboardCommand;
use crate::config::Plan;
use crate::dashboard::api::DashboardApi;
use crate::exit;
use crate::state::StateStore;

/// Write `text` to `out`, or to stdout.
fn emit(text: &str, out: Option<&Path>, what: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write the {what} to {}", path.display()))?;
            eprintln!("{what} written to {}", path.display());
        }
        None => super::output::stdout(text)?,
    }
    Ok(())
}

fn open(plan: &Plan, state: Option<&str>) -> anyhow::Result<(DashboardApi, StateStore)> {
    let api = DashboardApi::from_env(plan, crate::net::http_client()?)?;
    let state = StateStore::open(&crate::state::url_for(state, plan.state_url.as_deref()))?;
    Ok((api, state))
}

pub async fn execute(plan: &Plan, cmd: &DashboardCommand) -> anyhow::Result<u8> {
    let dashboard = crate::dashboard::render(plan)?;
    let title = &plan.dashboard.title;
    match cmd {
        DashboardCommand::Render { out } => {
            emit(
                &crate::dashboard::to_json(&dashboard),
                out.as_deref(),
                "dashboard",
            )?;
        }
        DashboardCommand::Terraform { out, resource } => {
            let file = plan.file.display().to_string();
            let tf = crate::dashboard::terraform::resource(resource, &dashboard, &file)
                .map_err(anyhow::Error::msg)?;
            emit(&tf, out.as_deref(), "Terraform resource")?;
        }
        DashboardCommand::Diff { state } => {
            let (api, state) = open(plan, state.as_deref())?;
            match api.diff(&state, &dashboard).await? {
                None => println!(
                    "no dashboard titled {title:?} on {}: push would create it ({} widgets)",
                    api.site(),
                    crate::dashboard::widget_count(&dashboard)
                ),
                Some((id, changes)) if changes.is_empty() => {
                    println!("dashboard {id} ({title:?}) on {}: no changes", api.site())
                }
                Some((id, changes)) => {
                    println!(
                        "dashboard {id} ({title:?}) on {}: {} change{}",
                        api.site(),
                        changes.len(),
                        if changes.len() == 1 { "" } else { "s" }
                    );
                    for c in &changes {
                        println!("  {c}");
                    }
                }
            }
        }
        DashboardCommand::Push { state } => {
            let (api, state) = open(plan, state.as_deref())?;
            let outcome = api.push(&state, &dashboard).await?;
            let verb = if outcome.created {
                "created".to_string()
            } else if outcome.changes.is_empty() {
                "updated (no changes)".to_string()
            } else {
                format!("updated ({} changes)", outcome.changes.len())
            };
            println!(
                "dashboard {} {verb}: {title:?} on {}{}",
                outcome.id,
                api.site(),
                outcome
                    .url
                    .as_deref()
                    .map(|u| format!(" — {u}"))
                    .unwrap_or_default()
            );
            for c in &outcome.changes {
                println!("  {c}");
            }
        }
    }
    Ok(exit::OK)
}
