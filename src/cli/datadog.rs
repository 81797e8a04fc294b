//! `infra-health datadog plan|apply|terraform`: what each prints.

use anyhow::Context;

use super::DatadogCommand;
use crate::config::Plan;
use crate::dashboard::api::DashboardApi;
use crate::datadog_side::api::SideApi;
use crate::datadog_side::plan::{self, Action, Item};
use crate::datadog_side::{self, terraform};
use crate::exit;
use crate::sinks::datadog::{Client, Purpose};
use crate::state::StateStore;

fn open(plan: &Plan, state: Option<&str>) -> anyhow::Result<(SideApi, DashboardApi, StateStore)> {
    let client = Client::from_env(
        &plan.sink.datadog,
        crate::net::http_client()?,
        Purpose::DatadogSide,
    )?;
    let state = StateStore::open(&crate::state::url_for(state, plan.state_url.as_deref()))?;
    Ok((
        SideApi::new(client.clone()),
        DashboardApi::new(client),
        state,
    ))
}

fn summary(items: &[Item]) -> String {
    let n = |pick: fn(&Action) -> bool| items.iter().filter(|i| pick(&i.action)).count();
    format!(
        "{} to create, {} to update, {} to delete, {} unchanged, {} left alone (not in the config; --prune deletes them)",
        n(|a| matches!(a, Action::Create)),
        n(|a| matches!(a, Action::Update(_))),
        n(|a| matches!(a, Action::Delete)),
        n(|a| matches!(a, Action::Keep)),
        n(|a| matches!(a, Action::Orphan)),
    )
}

pub async fn execute(plan: &Plan, cmd: &DatadogCommand) -> anyhow::Result<u8> {
    match cmd {
        DatadogCommand::Terraform { out, resource } => {
            let link = plan
                .datadog
                .dashboard_url
                .clone()
                .unwrap_or_else(|| terraform::LINK_MARKER.to_string());
            let desired = datadog_side::desired(plan, &link)?;
            let file = plan.file.display().to_string();
            let dashboard =
                crate::dashboard::terraform::resource(resource, &desired.dashboard, &file)
                    .map_err(anyhow::Error::msg)?
                    .replace(
                        "`infra-health dashboard terraform`",
                        "`infra-health datadog terraform`",
                    );
            let text = terraform::file(
                &dashboard,
                &desired.tag_configs,
                &desired.monitors,
                resource,
            );
            match out {
                Some(path) => {
                    std::fs::write(path, &text).with_context(|| {
                        format!("cannot write the Terraform file to {}", path.display())
                    })?;
                    eprintln!(
                        "Terraform resources written to {} (1 dashboard, {} monitors, {} metric tag configurations)",
                        path.display(),
                        desired.monitors.len(),
                        desired.tag_configs.len()
                    );
                }
                None => print!("{text}"),
            }
        }
        DatadogCommand::Plan { prune, state } => {
            let (api, dashboards, state) = open(plan, state.as_deref())?;
            let side = plan::plan(plan, &api, &dashboards, &state, *prune).await?;
            println!("Datadog side of {} on {}:", plan.file.display(), api.site());
            for item in &side.items {
                println!("  {item}");
            }
            println!("plan: {}", summary(&side.items));
        }
        DatadogCommand::Apply { prune, state } => {
            let (api, dashboards, state) = open(plan, state.as_deref())?;
            let side = plan::plan(plan, &api, &dashboards, &state, *prune).await?;
            let applied = plan::apply(plan, side, &api, &dashboards, &state).await?;
            println!("Datadog side of {} on {}:", plan.file.display(), api.site());
            for item in &applied.items {
                println!("  {item}");
            }
            println!(
                "applied: {}",
                summary(&applied.items)
                    .replace("to create", "created")
                    .replace("to update", "updated")
                    .replace("to delete", "deleted")
            );
            if let Some(url) = &applied.dashboard_url {
                println!("dashboard: {url}");
            }
        }
    }
    Ok(exit::OK)
}
