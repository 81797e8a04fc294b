//! Each delivered row against what the query API answers.
//!
//! One grouped query per metric name and `source`/`env`/`service`:
//! `max:<metric>{source:…,env:…,service:…} by {workflow_category,workflow_name,task,check,condition,status}`,
//! so the whole matrix takes a few queries, not one per row. A sent point is found in the
//! answer by its row's identifying tags and the rollup bucket holding its timestamp; then:
//!
//! | outcome | meaning |
//! | --- | --- |
//! | landed | the point is there, with the status tag and value sent |
//! | different value | the point is there with another value |
//! | different status | the row's point at that time carries another `status` tag |
//! | different tags | the row's point is there, but Datadog holds another `condition` (a rewritten tag) |
//! | late | the row's series is there, but not (yet) the point sent: ingestion delay |
//! | missing | Datadog has no series of the row at all in the window |
//! | stale | the last delivery is older than the window (`--since`): nothing to check |

use std::collections::BTreeMap;

use serde::Serialize;

use super::query::Series;
use super::{DeliveredRow, LastDelivered, SentSeries};
use crate::schema::Status;

/// How one row (or one of its series) came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Landed,
    Late,
    DifferentValue,
    DifferentTags,
    DifferentStatus,
    Missing,
    Stale,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Landed => "landed",
            Outcome::Late => "late",
            Outcome::DifferentValue => "different value",
            Outcome::DifferentTags => "different tags",
            Outcome::DifferentStatus => "different status",
            Outcome::Missing => "missing",
            Outcome::Stale => "stale",
        }
    }

    /// Not visible in Datadog (for `<prefix>.verify.rows_missing`).
    pub fn is_missing(self) -> bool {
        matches!(self, Outcome::Missing | Outcome::Late | Outcome::Stale)
    }

    /// Visible but not as sent (for `<prefix>.verify.rows_different`).
    pub fn is_different(self) -> bool {
        matches!(
            self,
            Outcome::DifferentValue | Outcome::DifferentTags | Outcome::DifferentStatus
        )
    }
}

/// One row's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct RowReport {
    pub row: String,
    pub source: String,
    pub status: Status,
    pub delivered_at: i64,
    pub outcome: Outcome,
    /// What differs or is missing, one line per series that did not land.
    pub details: Vec<String>,
}

/// The identifying tags of a row's series.
const IDENTITY: &[&str] = &["workflow_category", "workflow_name", "task", "check"];

/// Tags a grouped query splits by.
pub const GROUP_BY: &[&str] = &[
    "workflow_category",
    "workflow_name",
    "task",
    "check",
    "condition",
    "status",
];

/// Tags a grouped query filters on (the same for every row of one job and environment).
const SCOPE: &[&str] = &["source", "env", "service"];

/// The grouped query answering `s`.
pub fn query_for(s: &SentSeries) -> String {
    let scope: Vec<String> = SCOPE
        .iter()
        .filter_map(|k| s.tag(k).map(|v| format!("{k}:{v}")))
        .collect();
    let scope = if scope.is_empty() {
        "*".to_string()
    } else {
        scope.join(",")
    };
    format!("max:{}{{{scope}}} by {{{}}}", s.metric, GROUP_BY.join(","))
}

/// Every distinct query the rows need, in a stable order.
pub fn queries(rows: &[&DeliveredRow]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .flat_map(|r| r.series.iter().map(query_for))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn same_value(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// The point of `g` in the rollup bucket holding `ts`.
fn point_at(g: &Series, ts: i64) -> Option<f64> {
    let interval = g.interval.filter(|i| *i > 0).unwrap_or(60);
    g.points
        .iter()
        .rev()
        .find(|(at, _)| *at <= ts && ts - at < interval)
        .map(|(_, v)| *v)
}

/// How one sent series came back, with a line saying why when it did not land.
pub fn judge(s: &SentSeries, answer: &[Series]) -> (Outcome, Option<String>) {
    let row: Vec<&Series> = answer
        .iter()
        .filter(|g| IDENTITY.iter().all(|k| g.tag(k) == s.tag(k)))
        .collect();
    let status = s.tag("status").unwrap_or("");
    let condition = s.tag("condition").unwrap_or("");
    let metric = &s.metric;
    if row.iter().all(|g| g.points.is_empty()) {
        return (
            Outcome::Missing,
            Some(format!(
                "{metric}: no series with this row's tags in the window (dropped by Datadog, or a tag was rewritten)"
            )),
        );
    }
    let exact = row
        .iter()
        .filter(|g| g.tag("status") == Some(status) && g.tag("condition") == Some(condition))
        .find_map(|g| point_at(g, s.timestamp));
    if let Some(got) = exact {
        if same_value(got, s.value) {
            return (Outcome::Landed, None);
        }
        return (
            Outcome::DifferentValue,
            Some(format!("{metric}: sent {}, Datadog shows {got}", s.value)),
        );
    }
    if let Some((other, got)) = row
        .iter()
        .filter(|g| g.tag("condition") == Some(condition))
        .find_map(|g| Some((g.tag("status")?, point_at(g, s.timestamp)?)))
    {
        return (
            Outcome::DifferentStatus,
            Some(format!(
                "{metric}: sent status:{status}, Datadog shows status:{other} (value {got})"
            )),
        );
    }
    if let Some(other) = row
        .iter()
        .find_map(|g| point_at(g, s.timestamp).and(g.tag("condition")))
    {
        return (
            Outcome::DifferentTags,
            Some(format!(
                "{metric}: sent condition:{condition}, Datadog holds condition:{other} (the tag was rewritten)"
            )),
        );
    }
    let newest = row.iter().filter_map(|g| g.last()).map(|(at, _)| at).max();
    (
        Outcome::Late,
        Some(format!(
            "{metric}: the point sent at {} is not visible yet{}",
            time(s.timestamp),
            newest
                .map(|at| format!(" (newest point: {})", time(at)))
                .unwrap_or_default()
        )),
    )
}

pub fn time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// The verdict of every row, given each query's answer (`answers[query]`).
pub fn rows(
    last: &LastDelivered,
    answers: &BTreeMap<String, Vec<Series>>,
    from: i64,
) -> Vec<RowReport> {
    let mut out = Vec::new();
    for r in last.rows.values() {
        let mut report = RowReport {
            row: r.name(),
            source: r.row.source.clone(),
            status: r.status,
            delivered_at: r.delivered_at,
            outcome: Outcome::Landed,
            details: Vec::new(),
        };
        if r.delivered_at < from {
            report.outcome = Outcome::Stale;
            report.details.push(format!(
                "last delivered at {}, before the window starting {} (widen --since, or check that the job runs)",
                time(r.delivered_at),
                time(from)
            ));
            out.push(report);
            continue;
        }
        for s in &r.series {
            let answer = answers.get(&query_for(s)).map(Vec::as_slice).unwrap_or(&[]);
            let (outcome, detail) = judge(s, answer);
            report.outcome = report.outcome.max(outcome);
            report.details.extend(detail);
        }
        out.push(report);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(status: &str, value: f64) -> SentSeries {
        SentSeries {
            metric: "m.check.status".into(),
            tags: [
                "source:cron",
                "workflow_category:ci",
                "workflow_name:w",
                "task:t",
                "check:c",
                "condition:lt_5m",
                &format!("status:{status}"),
                "env:prod",
                "service:s",
            ]
            .iter()
            .map(|t| t.to_string())
            .collect(),
            value,
            timestamp: 1_000,
        }
    }

    fn series(tags: &[&str], points: &[(i64, f64)]) -> Series {
        Series {
            metric: "m.check.status".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            points: points.to_vec(),
            interval: Some(20),
        }
    }

    const ROW: [&str; 4] = [
        "workflow_category:ci",
        "workflow_name:w",
        "task:t",
        "check:c",
    ];

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        ROW.iter().chain(extra).copied().collect()
    }

    #[test]
    fn each_outcome_is_told_apart() {
        let s = sent("pass", 1.0);
        assert_eq!(
            query_for(&s),
            "max:m.check.status{source:cron,env:prod,service:s} by {workflow_category,workflow_name,task,check,condition,status}"
        );
        let ok = series(&with(&["condition:lt_5m", "status:pass"]), &[(1000, 1.0)]);
        assert_eq!(judge(&s, &[ok]).0, Outcome::Landed);
        let value = series(&with(&["condition:lt_5m", "status:pass"]), &[(1000, 0.5)]);
        assert_eq!(judge(&s, &[value]).0, Outcome::DifferentValue);
        let status = series(&with(&["condition:lt_5m", "status:fail"]), &[(1000, 1.0)]);
        let (o, why) = judge(&s, &[status]);
        assert_eq!(o, Outcome::DifferentStatus);
        assert!(why.unwrap().contains("status:fail"));
        let tags = series(&with(&["condition:_5m", "status:pass"]), &[(1000, 1.0)]);
        let (o, why) = judge(&s, &[tags]);
        assert_eq!(o, Outcome::DifferentTags);
        assert!(why.unwrap().contains("condition:_5m"));
        let old = series(&with(&["condition:lt_5m", "status:pass"]), &[(400, 1.0)]);
        assert_eq!(judge(&s, &[old]).0, Outcome::Late);
        let other_row = series(
            &[
                "workflow_category:ci",
                "workflow_name:x",
                "task:t",
                "check:c",
                "condition:lt_5m",
                "status:pass",
            ],
            &[(1000, 1.0)],
        );
        assert_eq!(judge(&s, &[other_row]).0, Outcome::Missing);
        assert_eq!(judge(&s, &[]).0, Outcome::Missing);
    }
}
