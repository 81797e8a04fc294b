//! The health matrix as a terminal table: row, value, condition, status.
//!
//! Rows are grouped by category and workflow as in the plan's spreadsheet mockup. Colour is used
//! only when stdout is a terminal, and the status is always written out as a word too, so the
//! table reads the same in a CronJob log, a pipe or for a colour-blind reader.

use std::fmt::Write;

use crate::checks::Status;
use crate::checks::{CheckDef, CheckResult};

/// Render rows (definition + result) as a table.
pub fn render(rows: &[(&CheckDef, &CheckResult)], color: bool) -> String {
    let mut sorted: Vec<&(&CheckDef, &CheckResult)> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.0.row.workflow_category, &a.0.row.workflow_name)
            .cmp(&(&b.0.row.workflow_category, &b.0.row.workflow_name))
    });
    let header = ["WORKFLOW", "CHECK", "VALUE", "CONDITION", "STATUS"].map(String::from);
    let mut lines: Vec<([String; 5], Option<&CheckResult>)> = vec![(header, None)];
    for (def, result) in sorted {
        let status = if result.inferred {
            format!("{} (inferred)", result.status)
        } else {
            result.status.to_string()
        };
        let mut condition = def.condition.human();
        if let Some(w) = &def.warn {
            let _ = write!(condition, " (warn {})", w.human());
        }
        let cells = [
            format!("{}/{}", def.row.workflow_category, def.row.workflow_name),
            def.title.clone(),
            result.display_value(),
            condition,
            status,
        ];
        lines.push((cells, Some(*result)));
    }
    let mut widths = [0usize; 5];
    for (cells, _) in &lines {
        for (i, cell) in cells.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let mut out = String::new();
    for (cells, result) in &lines {
        let status = match result {
            Some(r) if color => paint(&cells[4], r.status, r.inferred),
            _ => cells[4].clone(),
        };
        let _ = writeln!(
            out,
            "{}  {}  {}  {}  {}",
            pad(&cells[0], widths[0]),
            pad(&cells[1], widths[1]),
            pad(&cells[2], widths[2]),
            pad(&cells[3], widths[3]),
            status
        );
    }
    out
}

fn paint(text: &str, status: Status, inferred: bool) -> String {
    let code = match (status, inferred) {
        (Status::Pass, false) => "1;32",
        (Status::Pass, true) => "92",
        (Status::Warn, _) => "1;33",
        (Status::Fail, _) => "1;31",
        (Status::Unknown, _) => "90",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
