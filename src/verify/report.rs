//! One verification: check what the record says was delivered against what the query API
//! answers (polling while rows are still on their way), the [`Report`], its text for a person
//! and its self-metrics. The commands that print it and map it to an exit code are
//! `cli::verify` (`verify`, `run --verify`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use super::check::{self, Outcome, RowReport};
use super::dashboard::{self, WidgetProblem};
use super::query::QueryApi;
use crate::config::Plan;
use crate::schema::Metric;
use crate::state::StateStore;

/// How long `run --verify` polls by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);
/// The default window: what was delivered in the last 30 minutes.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(30 * 60);
/// Pause between two checks while polling.
const POLL: Duration = Duration::from_secs(10);

/// Options of `infra-health verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub state: Option<String>,
    /// The window read back: `[now - since, now]`.
    pub since: Duration,
    /// Poll until everything is visible or this much time has passed (zero: check once).
    pub wait: Duration,
    /// Also run every widget query of the rendered dashboard.
    pub dashboard: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            state: None,
            since: DEFAULT_SINCE,
            wait: Duration::ZERO,
            dashboard: false,
        }
    }
}

/// Counts per outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub landed: usize,
    pub missing: usize,
    pub late: usize,
    /// Rows delivered before the window: not read back.
    pub not_checked: usize,
    pub different_value: usize,
    pub different_status: usize,
    pub different_tags: usize,
    /// Rows not visible (missing, late): `<prefix>.verify.rows_missing`.
    pub rows_missing: usize,
    /// Rows visible but not as sent: `<prefix>.verify.rows_different`.
    pub rows_different: usize,
    /// Dashboard widget queries that fail verification.
    pub widget_problems: usize,
}

/// Everything one verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub site: String,
    pub from: i64,
    pub to: i64,
    /// HTTP requests made to the query API (retries included), over every poll.
    pub requests: usize,
    /// Checks made (more than one when polling).
    pub attempts: usize,
    pub rows: Vec<RowReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub widgets: Option<Vec<WidgetProblem>>,
    pub summary: Summary,
    pub ok: bool,
}

fn summarise(rows: &[RowReport], widgets: Option<&[WidgetProblem]>) -> Summary {
    let count = |o: Outcome| rows.iter().filter(|r| r.outcome == o).count();
    Summary {
        rows: rows.len(),
        landed: count(Outcome::Landed),
        missing: count(Outcome::Missing),
        late: count(Outcome::Late),
        not_checked: count(Outcome::NotChecked),
        different_value: count(Outcome::DifferentValue),
        different_status: count(Outcome::DifferentStatus),
        different_tags: count(Outcome::DifferentTags),
        rows_missing: rows.iter().filter(|r| r.outcome.is_missing()).count(),
        rows_different: rows.iter().filter(|r| r.outcome.is_different()).count(),
        widget_problems: widgets.map_or(0, |w| w.iter().filter(|p| p.fails).count()),
    }
}

/// Check once: every delivered row not `settled` by an earlier poll (and with `dashboard`,
/// every widget query). The report's rows are in the record's order, settled ones included.
async fn check_once(
    plan: &Plan,
    api: &QueryApi,
    last: &super::LastDelivered,
    settled: &BTreeMap<String, RowReport>,
    since: Duration,
    with_dashboard: bool,
) -> anyhow::Result<Report> {
    let to = Utc::now().timestamp();
    let from = to - i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
    let in_window: Vec<&super::DeliveredRow> = last
        .rows
        .values()
        .filter(|r| r.delivered_at >= from)
        .collect();
    let pending = super::LastDelivered {
        rows: last
            .rows
            .iter()
            .filter(|(k, _)| !settled.contains_key(*k))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect(),
        metrics: BTreeMap::new(),
    };
    let rollup = check::rollup_for(to - from);
    let to_query: Vec<&super::DeliveredRow> = pending
        .rows
        .values()
        .filter(|r| r.delivered_at >= from)
        .collect();
    let queries = check::queries(&to_query, rollup);
    let answers = api.run(&queries, from, to).await?;
    let answers: BTreeMap<String, Vec<_>> = queries.into_iter().zip(answers).collect();
    let mut fresh: BTreeMap<&String, RowReport> = pending
        .rows
        .keys()
        .zip(check::rows(&pending, &answers, from, rollup))
        .collect();
    let rows: Vec<RowReport> = last
        .rows
        .keys()
        .filter_map(|k| fresh.remove(k).or_else(|| settled.get(k).cloned()))
        .collect();
    let widgets = if with_dashboard {
        let rendered = crate::dashboard::render(plan)?;
        let wq = dashboard::widget_queries(&rendered);
        let texts: Vec<String> = wq.iter().map(|q| q.query.clone()).collect();
        let answers = api.run(&texts, from, to).await?;
        let mut problems = dashboard::problems(&wq, &answers, last, from);
        problems.extend(dashboard::percentile_problems(plan, api.client()).await?);
        Some(problems)
    } else {
        None
    };
    let summary = summarise(&rows, widgets.as_deref());
    // A job that stopped delivering has nothing in the window: that is not "all landed".
    let ok = !in_window.is_empty()
        && summary.rows_missing == 0
        && summary.rows_different == 0
        && summary.widget_problems == 0;
    Ok(Report {
        site: api.site().to_string(),
        from,
        to,
        requests: api.requests(),
        attempts: 1,
        rows,
        widgets,
        summary,
        ok,
    })
}

/// `infra-health verify`: read what was delivered, ask Datadog, poll up to `wait`.
pub async fn verify(plan: &Plan, opts: &VerifyOptions) -> anyhow::Result<Report> {
    let api = QueryApi::from_env(plan, crate::net::http_client()?)?;
    let state = StateStore::open(&crate::state::url_for(
        opts.state.as_deref(),
        plan.state_url.as_deref(),
    ))?;
    let last = super::load(&state).await?.filter(|l| !l.rows.is_empty());
    let Some(last) = last else {
        anyhow::bail!(
            "nothing to verify: no delivery to Datadog is recorded in the state store at {}; \
             run `infra-health run` with DD_API_KEY set (and the same --state) first",
            state.location()
        );
    };
    let started = Instant::now();
    let mut attempts = 0;
    // Rows already seen as sent are not asked for again while polling.
    let mut settled: BTreeMap<String, RowReport> = BTreeMap::new();
    loop {
        attempts += 1;
        let mut report =
            check_once(plan, &api, &last, &settled, opts.since, opts.dashboard).await?;
        report.attempts = attempts;
        for (key, row) in last.rows.keys().zip(&report.rows) {
            if matches!(row.outcome, Outcome::Landed | Outcome::NotChecked) {
                settled.insert(key.clone(), row.clone());
            }
        }
        let left = opts.wait.saturating_sub(started.elapsed());
        if report.ok || left.is_zero() || crate::shutdown::requested() {
            return Ok(report);
        }
        tracing::info!(
            "{} rows not visible as sent yet; checking again in {}s",
            report.summary.rows_missing + report.summary.rows_different,
            POLL.min(left).as_secs()
        );
        tokio::select! {
            _ = tokio::time::sleep(POLL.min(left)) => {}
            _ = crate::shutdown::requested_wait() => {}
        }
    }
}

/// The report for a person: one line per row, the widgets, a summary.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let width = report
        .rows
        .iter()
        .map(|r| r.row.len())
        .max()
        .unwrap_or(3)
        .max(3);
    for r in &report.rows {
        out.push_str(&format!(
            "{:<16} {:<width$} status {:<7} sent {}\n",
            r.outcome.label(),
            r.row,
            r.status.as_str(),
            check::time(r.delivered_at),
        ));
        for d in &r.details {
            out.push_str(&format!("    {d}\n"));
        }
    }
    if let Some(widgets) = &report.widgets {
        if widgets.is_empty() {
            out.push_str("dashboard: every widget query returns the series delivered\n");
        }
        for w in widgets {
            out.push_str(&format!(
                "{} widget {:?} ({}): {}\n    {}\n",
                if w.fails { "FAIL" } else { "note" },
                w.widget,
                w.path,
                w.detail,
                w.query
            ));
        }
    }
    let s = &report.summary;
    out.push_str(&format!(
        "\n{} rows: {} landed, {} missing, {} late, {} different value, {} different status, {} different tags, {} not checked{}; {} query requests to {} over {} to {}{}. {}\n",
        s.rows,
        s.landed,
        s.missing,
        s.late,
        s.different_value,
        s.different_status,
        s.different_tags,
        s.not_checked,
        if report.widgets.is_some() {
            format!("; {} dashboard widget problems", s.widget_problems)
        } else {
            String::new()
        },
        report.requests,
        report.site,
        check::time(report.from),
        check::time(report.to),
        if report.attempts > 1 {
            format!(" ({} checks)", report.attempts)
        } else {
            String::new()
        },
        if report.ok {
            "Everything delivered is visible as sent."
        } else if s.rows == s.not_checked {
            "NOTHING was delivered in the window: is the job running? (widen --since to check older deliveries)"
        } else {
            "NOT everything delivered is visible as sent."
        }
    ));
    out
}

/// `<prefix>.verify.rows_missing` and `<prefix>.verify.rows_different`, built by the schema
/// ([`crate::schema::Schema::verify_metrics`]), which the catalog and the dashboard read too.
pub fn self_metrics(plan: &Plan, report: &Report, now: i64) -> Vec<Metric> {
    match plan.schema.verify_metrics(
        &plan.defaults.source,
        report.summary.rows_missing,
        report.summary.rows_different,
        now,
    ) {
        Ok(metrics) => metrics,
        Err(e) => {
            tracing::error!("verify self-metrics refused: {e}");
            Vec::new()
        }
    }
}
