//! Operator commands on the state store: `state show` and `state reset ROW`.
//!
//! They read and edit the row memory ([`crate::state::rows`]) through the same store, lease and format
//! checks as `run`, so using them while a CronJob runs is safe.

use crate::board;
use std::fmt::Write;

use anyhow::Context;
use chrono::{SecondsFormat, Utc};

use super::{Cli, StateCommand, load_plan};
use crate::config::Plan;
use crate::duration::format_duration;
use crate::exit;
use crate::state::StateStore;
use crate::state::rows::{self, RowMemory, displayed};

/// The state store a command reads: `--state`, then `INFRA_HEALTH_STATE`, then config.
pub(super) fn open(plan: &Plan, flag: Option<&str>) -> anyhow::Result<StateStore> {
    Ok(StateStore::open(&crate::state::url_for(
        flag,
        plan.state_url.as_deref(),
    ))?)
}

/// The state store `state show` / `state reset` read, which must already exist: opening a local
/// store creates its directory, and a mistyped `--state` would otherwise show an empty memory
/// (and leave a new directory behind) instead of saying that nothing is there.
pub(super) fn open_existing(plan: &Plan, flag: Option<&str>) -> anyhow::Result<StateStore> {
    let url = crate::state::url_for(flag, plan.state_url.as_deref());
    if !url.contains("://") || url.starts_with("file://") {
        let dir = std::path::Path::new(url.strip_prefix("file://").unwrap_or(&url));
        if !dir.is_dir() {
            anyhow::bail!(
                "no state store at {}: the directory does not exist (nothing has run with this \
                 state yet, or the path is mistyped); state comes from --state, then \
                 INFRA_HEALTH_STATE, then the config's [state] url, then ./.infra-health",
                dir.display()
            );
        }
    }
    open(plan, flag)
}

/// The row memory as a table (or JSON), rows of the config first, then stored rows the config
/// no longer has.
pub async fn show(plan: &Plan, state_flag: Option<&str>, json: bool) -> anyhow::Result<String> {
    let state = open_existing(plan, state_flag)?;
    let memory = rows::load(&state).await?;
    if json {
        let mut text = serde_json::to_string_pretty(&memory).context("cannot encode the state")?;
        text.push('\n');
        return Ok(text);
    }
    Ok(table(plan, &memory, state.location()))
}

fn table(plan: &Plan, memory: &RowMemory, location: &str) -> String {
    let now = Utc::now();
    let mut lines = vec![[
        "ROW".to_string(),
        "STATUS".into(),
        "VALUE".into(),
        "OBSERVED".into(),
        "AGE".into(),
        "LAST RUNS".into(),
        "WHY".into(),
    ]];
    for stored in &memory.rows {
        let def = plan.checks.iter().find(|d| d.row == stored.row);
        let result = match def {
            Some(d) => displayed(stored, d.carry_forward, now),
            None => stored.current.clone(),
        };
        let mut status = board::look(result.status, result.inferred)
            .label
            .to_string();
        if def.is_none() {
            status.push_str(" (not in config)");
        }
        let value = if result.value.is_some() {
            result.display_value()
        } else {
            "-".into()
        };
        let observed = stored
            .last_known
            .as_ref()
            .and_then(|r| r.observed_at)
            .or(result.observed_at);
        let age = observed
            .map(|t| {
                let secs = (now - t).num_seconds().max(0).unsigned_abs();
                format_duration(std::time::Duration::from_secs(secs))
            })
            .unwrap_or_else(|| "-".into());
        // An unknown row says why (its `reason` tag and the words), an inferred one since when.
        let why = match (&result.unknown_reason, &result.reason) {
            (Some(tag), Some(words)) => format!("{}: {}", tag.tag(), words),
            (Some(tag), None) => tag.tag().to_string(),
            (None, Some(words)) if result.inferred => words.clone(),
            _ => String::new(),
        };
        let why = clip(why.lines().next().unwrap_or(""), 120);
        let strip: String = stored
            .history
            .iter()
            .map(|h| board::look(h.status, h.inferred).icon)
            .collect();
        lines.push([
            stored.row.to_string(),
            status,
            value,
            observed
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_else(|| "never".into()),
            age,
            strip,
            why,
        ]);
    }
    let mut widths = [0usize; 7];
    for l in &lines {
        for (i, c) in l.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, c) in l.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            let _ = write!(line, "{c}{}  ", " ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\n{} remembered in {location}. History: ✓ pass, ~ inferred, ! warn, ✗ fail, ? unknown (oldest first).",
        super::output::count(memory.rows.len(), "row", "rows")
    );
    out
}

/// `text` cut to `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Forget one row, under the lease. An unknown row is an error that lists the known ones.
pub async fn reset(plan: &Plan, state_flag: Option<&str>, row: &str) -> anyhow::Result<()> {
    let state = open_existing(plan, state_flag)?;
    let (removed, known) = state
        .update_json(rows::ROWS_KEY, |m: &mut RowMemory| {
            let known: Vec<String> = m.rows.iter().map(|r| r.row.to_string()).collect();
            (m.remove(row), known)
        })
        .await?;
    if !removed {
        anyhow::bail!(
            "no row {row:?} in the state at {}; rows are written category/workflow/task/check, known: {}",
            state.location(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(())
}

/// `state show` and `state reset`.
pub async fn execute(cli: &Cli, cmd: &StateCommand) -> anyhow::Result<u8> {
    match cmd {
        StateCommand::Show { json, state } => {
            let plan = load_plan(cli)?;
            super::output::stdout(&crate::secret::redact(
                &show(&plan, state.as_deref(), *json).await?,
            ))?;
            Ok(exit::OK)
        }
        StateCommand::Reset { row, state } => {
            let plan = load_plan(cli)?;
            reset(&plan, state.as_deref(), row).await?;
            println!("forgot row {row}");
            Ok(exit::OK)
        }
    }
}
