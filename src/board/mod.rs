//! The local health board: one self-contained HTML file showing the matrix.
//!
//! It is the plan's spreadsheet mockup, made from the row memory ([`crate::state::rows`]) and
//! the plan: rows grouped by category and workflow, one cell per check coloured green (pass),
//! light green (inferred: carried forward from an earlier run), amber (warn), red (fail) or grey
//! (unknown). Each cell also says its status in words with an icon (✓ ~ ! ✗ ?), so it reads
//! without colour; it shows the value and the human condition, and its tooltip gives the
//! observation time, the collector it came from and why it is unknown or inferred. A strip of
//! the row's last runs shows its history.
//!
//! The file fetches nothing (inline CSS, no scripts, no fonts or images from the network), so it
//! can be opened from a CronJob's state directory, attached to a ticket or served as is. Every
//! piece of text is HTML-escaped: row names, values and reasons come from config and sources.
//! `infra-health run` rewrites `board.html` in the state store; `infra-health board` writes it
//! on demand.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::checks::Status;
use crate::checks::{CheckDef, CheckResult};
use crate::observation::UnknownReason;
use crate::state::rows::{RowMemory, StoredRow, displayed};

/// Where `run` writes the board in the state store.
pub const BOARD_KEY: &str = "board.html";

/// How a row looks on the board: the CSS class, icon and word for its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub class: &'static str,
    pub icon: &'static str,
    pub label: &'static str,
}

/// The look of a status; an inferred pass or warn is "inferred" (light green), whatever its
/// underlying status, while an inferred fail stays red: a known failure is not softened.
pub fn look(status: Status, inferred: bool) -> Look {
    let (class, icon, label) = match (status, inferred) {
        (Status::Pass | Status::Warn, true) => ("status-inferred", "~", "inferred"),
        (Status::Pass, false) => ("status-pass", "✓", "pass"),
        (Status::Warn, false) => ("status-warn", "!", "warn"),
        (Status::Fail, false) => ("status-fail", "✗", "fail"),
        (Status::Fail, true) => ("status-fail", "✗", "fail (inferred)"),
        (Status::Unknown, _) => ("status-unknown", "?", "unknown"),
    };
    Look { class, icon, label }
}

/// Escape text for HTML content and attribute values, with every secret's value redacted first
/// (the board is an edge where text leaves the process).
pub fn escape(text: &str) -> String {
    let text = crate::secret::redact(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --pass:#1a7f37; --inferred:#a7e3b5; --warn:#f2cc60; --fail:#cf222e; --unknown:#d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2328; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #59636e; margin: 0 0 12px; }
.legend { display: flex; gap: 8px; flex-wrap: wrap; list-style: none; padding: 0; margin: 0 0 8px; }
.legend li { padding: 3px 10px; border-radius: 4px; }
table.matrix { border-collapse: collapse; width: 100%; table-layout: fixed; }
.matrix th, .matrix td { border: 1px solid #d1d9e0; padding: 6px 8px; text-align: left; vertical-align: middle; }
.matrix thead th { background: #f6f8fa; font-weight: 600; }
.matrix col.c-row { width: 34%; } .matrix col.c-cell { width: 36%; } .matrix col.c-hist { width: 30%; }
tr.workflow th { background: #eef1f4; font-weight: 600; }
.rowname small { display: block; color: #59636e; font-weight: normal; font-family: ui-monospace, monospace; font-size: 12px; }
.cell { display: grid; grid-template-columns: auto 1fr auto; gap: 2px 8px; align-items: baseline; }
.cell .icon { font-weight: 700; font-size: 16px; }
.cell .label { font-weight: 600; text-transform: uppercase; font-size: 12px; letter-spacing: .03em; }
.cell .value { font-weight: 700; font-variant-numeric: tabular-nums; text-align: right; }
.cell .condition { grid-column: 2 / 4; font-size: 12px; opacity: .9; }
.status-pass { background: var(--pass); color: #fff; }
.status-inferred { background: var(--inferred); color: #0b3d1a; }
.status-warn { background: var(--warn); color: #3d2e00; }
.status-fail { background: var(--fail); color: #fff; }
.status-unknown { background: var(--unknown); color: #1f2328; }
.history { white-space: nowrap; }
.history .hist { display: inline-block; width: 14px; height: 20px; margin-right: 2px; border-radius: 2px; font-size: 10px; line-height: 20px; text-align: center; overflow: hidden; }
.history .none { color: #59636e; font-size: 12px; }
td[title], span[title] { cursor: help; }
footer { margin-top: 28px; color: #59636e; font-size: 12px; }
"#;

/// One row as drawn: its definition, what it shows now, and its memory (for the history).
type BoardRow<'a> = (&'a CheckDef, CheckResult, Option<&'a StoredRow>);

/// Render the board for the rows of `checks`, as the memory shows them at `now`.
pub fn render(
    checks: &[CheckDef],
    memory: &RowMemory,
    now: DateTime<Utc>,
    location: &str,
) -> String {
    // (repository, category) -> workflow -> rows, in config order within a workflow: the rows
    // of one source first, then each repository of an organisation with its own sections.
    type Section<'a> = (Option<&'a str>, &'a str);
    let mut groups: BTreeMap<Section, BTreeMap<&str, Vec<BoardRow>>> = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for def in checks {
        let stored = memory.get(&def.row);
        let result = match stored {
            Some(s) => displayed(s, def.carry_forward, now),
            None => def.unknown_result(UnknownReason::NoData, "no run has recorded this row yet"),
        };
        *counts
            .entry(look(result.status, result.inferred).label)
            .or_default() += 1;
        groups
            .entry((def.row.repo.as_deref(), def.row.workflow_category.as_str()))
            .or_default()
            .entry(def.row.workflow_name.as_str())
            .or_default()
            .push((def, result, stored));
    }

    let mut html = String::new();
    let now_text = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"infra-health {}\">\n\
         <title>Infrastructure health — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&now_text)
    );
    let summary: Vec<String> = [
        "pass",
        "inferred",
        "warn",
        "fail",
        "fail (inferred)",
        "unknown",
    ]
    .iter()
    .filter_map(|l| counts.get(l).map(|n| format!("{n} {l}")))
    .collect();
    let _ = write!(
        html,
        "<header>\n<h1>Infrastructure health</h1>\n\
         <p class=\"meta\">Generated <time datetime=\"{t}\">{t}</time> from <code>{loc}</code> · {n} rows: {s}</p>\n\
         <ul class=\"legend\" aria-label=\"Legend\">",
        t = escape(&now_text),
        loc = escape(location),
        n = checks.len(),
        s = escape(&summary.join(", ")),
    );
    for (status, inferred, meaning) in [
        (Status::Pass, false, "condition holds"),
        (Status::Pass, true, "last value carried forward"),
        (Status::Warn, false, "only the warn condition holds"),
        (Status::Fail, false, "condition fails"),
        (Status::Unknown, false, "no recent data"),
    ] {
        let l = look(status, inferred);
        let _ = write!(
            html,
            "<li class=\"{}\"><span aria-hidden=\"true\">{}</span> {} — {meaning}</li>",
            l.class, l.icon, l.label
        );
    }
    html.push_str("</ul>\n</header>\n<main>\n");

    for ((repo, category), workflows) in &groups {
        let (id, heading) = match repo {
            Some(repo) => (format!("{repo}-{category}"), format!("{repo} — {category}")),
            None => (category.to_string(), category.to_string()),
        };
        let _ = write!(
            html,
            "<section class=\"category\" id=\"category-{id}\">\n<h2>{c}</h2>\n\
             <table class=\"matrix\">\n<colgroup><col class=\"c-row\"><col class=\"c-cell\"><col class=\"c-hist\"></colgroup>\n\
             <thead><tr><th scope=\"col\">Check</th><th scope=\"col\">Status · value · condition</th>\
             <th scope=\"col\">Last runs (oldest → newest)</th></tr></thead>\n",
            id = escape(&id.replace(|c: char| !c.is_ascii_alphanumeric(), "-")),
            c = escape(&heading)
        );
        for (workflow, rows) in workflows {
            let _ = write!(
                html,
                "<tbody>\n<tr class=\"workflow\"><th colspan=\"3\" scope=\"rowgroup\">{}</th></tr>\n",
                escape(workflow)
            );
            for (def, result, stored) in rows {
                row_html(&mut html, def, result, *stored);
            }
            html.push_str("</tbody>\n");
        }
        html.push_str("</table>\n</section>\n");
    }
    if checks.is_empty() {
        html.push_str("<p>No rows are configured.</p>\n");
    }
    html.push_str(
        "</main>\n<footer>Hover a cell for the observation time, its source and why it is \
         inferred or unknown. Written by <code>infra-health</code>; this file loads nothing \
         from the network.</footer>\n</body>\n</html>\n",
    );
    html
}

fn row_html(html: &mut String, def: &CheckDef, result: &CheckResult, stored: Option<&StoredRow>) {
    let l = look(result.status, result.inferred);
    let value = if result.value.is_some() {
        result.display_value()
    } else {
        "—".to_string()
    };
    let mut condition = def.condition.human();
    if let Some(w) = &def.warn {
        let _ = write!(condition, " (warn {})", w.human());
    }
    let mut tip = vec![format!("{}: {}", def.row, l.label)];
    match result.observed_at {
        Some(t) => tip.push(format!(
            "observed {}",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        )),
        None => tip.push("never observed".into()),
    }
    tip.push(format!(
        "source: {} (collector {})",
        def.row.source, result.collector
    ));
    if let Some(r) = &result.reason {
        tip.push(r.clone());
    }
    if let Some(d) = stored.and_then(StoredRow::delta)
        && d != 0.0
    {
        tip.push(format!("change since previous value: {d:+}"));
    }
    let title = if def.title.is_empty() {
        format!("{} / {}", def.row.task, def.row.check)
    } else {
        def.title.clone()
    };
    let _ = write!(
        html,
        "<tr class=\"row\" data-row=\"{id}\">\
         <th scope=\"row\" class=\"rowname\">{title}<small>{task}/{check}</small></th>\
         <td class=\"cell {class}\" data-status=\"{label}\" title=\"{tip}\">\
         <span class=\"icon\" aria-hidden=\"true\">{icon}</span>\
         <span class=\"label\">{label}</span>\
         <span class=\"value\">{value}</span>\
         <span class=\"condition\">condition {condition}</span></td>\
         <td class=\"history\">",
        id = escape(&def.row.to_string()),
        title = escape(&title),
        task = escape(&def.row.task),
        check = escape(&def.row.check),
        class = l.class,
        label = escape(l.label),
        tip = escape(&tip.join("\n")),
        icon = l.icon,
        value = escape(&value),
        condition = escape(&condition),
    );
    match stored.map(|s| s.history.as_slice()) {
        Some(history) if !history.is_empty() => {
            for h in history {
                let hl = look(h.status, h.inferred);
                let _ = write!(
                    html,
                    "<span class=\"hist {}\" title=\"{}: {}\">{}</span>",
                    hl.class,
                    escape(&h.at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                    escape(hl.label),
                    hl.icon
                );
            }
        }
        _ => html.push_str("<span class=\"none\">no runs yet</span>"),
    }
    html.push_str("</td></tr>\n");
}

/// Render the board from the memory and write it to [`BOARD_KEY`] in the state store; returns
/// where it went (a file path for a local store).
pub async fn publish(
    state: &crate::state::StateStore,
    checks: &[CheckDef],
    memory: &RowMemory,
    now: DateTime<Utc>,
) -> Result<String, crate::state::StateError> {
    let html = render(checks, memory, now, state.location());
    state.put(BOARD_KEY, bytes::Bytes::from(html)).await?;
    Ok(match state.local_dir() {
        Some(dir) => dir.join(BOARD_KEY).display().to_string(),
        None => format!("{}/{BOARD_KEY}", state.location().trim_end_matches('/')),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Condition;
    use crate::checks::RowId;
    use crate::observation::{Observation, Value};
    use crate::state::rows::reconcile;

    fn def(workflow: &str, task: &str, condition: &str, title: &str) -> CheckDef {
        let mut d = crate::state::rows::tests::def(task, 1);
        d.row = RowId {
            source: "cron".into(),
            workflow_category: "ci".into(),
            workflow_name: workflow.into(),
            task: task.into(),
            check: "c".into(),
            repo: None,
        };
        d.signal = task.into();
        d.condition = Condition::parse(condition).unwrap();
        d.title = title.into();
        d
    }

    #[test]
    fn cells_carry_status_classes_and_text_is_escaped() {
        let now = Utc::now();
        let checks = vec![
            def("main", "a", "<5", "Passing <b>row</b>"),
            def("main", "b", "<5", "Failing"),
            def("other", "c", "<5", "Inferred"),
            def("other", "d", "<5", "Never"),
        ];
        let obs = |s: &str, v: f64| Observation::new(s, Value::Number(v), now);
        let mut memory = RowMemory::default();
        let fresh: Vec<(usize, CheckResult)> = vec![
            (0, checks[0].evaluate(Ok(&[obs("a", 1.0)]))),
            (1, checks[1].evaluate(Ok(&[obs("b", 9.0)]))),
            (2, checks[2].evaluate(Ok(&[obs("c", 2.0)]))),
        ];
        reconcile(&mut memory, &checks, &fresh, now, &Default::default());
        let later = now + chrono::TimeDelta::minutes(10);
        reconcile(
            &mut memory,
            &checks,
            &fresh[..2],
            later,
            &Default::default(),
        );
        let html = render(&checks, &memory, later, "/tmp/<state>");
        assert!(html.contains("Passing &lt;b&gt;row&lt;/b&gt;"));
        assert!(!html.contains("<b>row"));
        assert!(html.contains("/tmp/&lt;state&gt;"));
        for (row, class) in [
            ("ci/main/a/c", "status-pass"),
            ("ci/main/b/c", "status-fail"),
            ("ci/other/c/c", "status-inferred"),
            ("ci/other/d/c", "status-unknown"),
        ] {
            let at = html.find(&format!("data-row=\"{row}\"")).unwrap();
            let cell = &html[at..at + 400];
            assert!(
                cell.contains(&format!("class=\"cell {class}\"")),
                "{row}: {cell}"
            );
        }
        assert!(html.contains("condition &lt;5"));
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("<script")
        );
        // Two runs recorded for the inferred row: pass, then inferred.
        let at = html.find("data-row=\"ci/other/c/c\"").unwrap();
        let rest = &html[at..];
        let strip = &rest[rest.find("class=\"history\"").unwrap()..rest.find("</tr>").unwrap()];
        assert_eq!(strip.matches("class=\"hist status-pass\"").count(), 1);
        assert_eq!(strip.matches("class=\"hist status-inferred\"").count(), 1);
    }
}
