//! `infra-health board`: write the local HTML health board from the state store's row memory.
//! The page itself is rendered by [`crate::board`].

use std::path::Path;

use anyhow::Context;
use chrono::Utc;

use super::{BoardArgs, Cli, load_plan};
use crate::board;
use crate::config::Plan;
use crate::exit;
use crate::state::rows;

/// Write the board: to `out`, else `board.html` in a local state directory, else `./board.html`.
pub async fn write_board(
    plan: &Plan,
    state_flag: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<String> {
    let state = super::state::open(plan, state_flag)?;
    let memory = rows::load(&state).await?;
    let now = Utc::now();
    let rows = crate::run::per_repo::board_rows(&plan.checks, &[], &memory);
    let html = board::render(&rows, &memory, now, state.location());
    let path = match (out, state.local_dir()) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(dir)) => dir.join(board::BOARD_KEY),
        (None, None) => Path::new(board::BOARD_KEY).to_path_buf(),
    };
    // Written next to its destination and renamed, so a browser never loads half a file.
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, html).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.display().to_string())
}

pub async fn execute(cli: &Cli, args: &BoardArgs) -> anyhow::Result<u8> {
    let plan = load_plan(cli)?;
    let at = write_board(&plan, args.state.as_deref(), args.out.as_deref()).await?;
    println!("health board written to {at}");
    Ok(exit::OK)
}
