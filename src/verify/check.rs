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
//! | not checked | the last delivery is older than the window (`--since`): not read back, and not a failure (a job that stopped delivering altogether fails `verify`: nothing in the window) |
//!
//! The queries ask for a rollup fine enough that one bucket holds one run
//! ([`rollup_for`]): with Datadog's default for a long window (an hour for a week), several
//! runs would be averaged into one point and every value would look different.

use std::collections::BTreeMap;

use serde::Serialize;

use super::query::Series;
use super::{DeliveredRow, LastDelivered, SentSeries};
use crate::checks::Status;

/// How one row (or one of its series) came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    NotChecked,
    Landed,
    Late,
    DifferentValue,
    DifferentTags,
    DifferentStatus,
    Missing,
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
            Outcome::NotChecked => "not checked",
        }
    }

    /// Not visible in Datadog (for `<prefix>.verify.rows_missing`).
    pub fn is_missing(self) -> bool {
        matches!(self, Outcome::Missing | Outcome::Late)
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

/// The rollup interval (seconds) for a window of `window` seconds: 20 s up to about 5.5
/// hours, then as fine as a thousand points per series allow, in whole minutes.
pub fn rollup_for(window: i64) -> i64 {
    let fine = (window + 999) / 1000;
    if fine <= 20 {
        20
    } else {
        (fine + 59) / 60 * 60
    }
}

/// The grouped query answering `s`, with a rollup of `rollup` seconds.
pub fn query_for(s: &SentSeries, rollup: i64) -> String {
    let scope: Vec<String> = SCOPE
        .iter()
        .filter_map(|k| s.tag(k).map(|v| format!("{k}:{v}")))
        .collect();
    let scope = if scope.is_empty() {
        "*".to_string()
    } else {
        scope.join(",")
    };
    // A row made per repository is one series per repository: split by it too.
    let mut by: Vec<&str> = GROUP_BY.to_vec();
    if s.tag("repo").is_some() {
        by.push("repo");
    }
    format!(
        "max:{}{{{scope}}} by {{{}}}.rollup(avg, {rollup})",
        s.metric,
        by.join(",")
    )
}

/// Every distinct query the rows need, in a stable order.
pub fn queries(rows: &[&DeliveredRow], rollup: i64) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .flat_map(|r| r.series.iter().map(|s| query_for(s, rollup)))
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
        .filter(|g| {
            IDENTITY.iter().all(|k| g.tag(k) == s.tag(k))
                && (s.tag("repo").is_none() || g.tag("repo") == s.tag("repo"))
        })
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

pub fn date_time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ts.to_string())
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
    rollup: i64,
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
            report.outcome = Outcome::NotChecked;
            report.details.push(format!(
                "last delivered at {}, before the window starting {} (widen --since to check it)",
                date_time(r.delivered_at),
                time(from)
            ));
            out.push(report);
            continue;
        }
        for s in &r.series {
            let answer = answers
                .get(&query_for(s, rollup))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
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
            query_for(&s, 20),
            "max:m.check.status{source:cron,env:prod,service:s} by {workflow_category,workflow_name,task,check,condition,status}.rollup(avg, 20)"
        );
        assert_eq!(rollup_for(1800), 20);
        assert_eq!(rollup_for(86_400), 120);
        assert_eq!(rollup_for(7 * 86_400), 660);
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

    #[test]
    fn rows_delivered_before_the_window_are_not_checked() {
        let mut last = LastDelivered::default();
        let row = |check: &str, at: i64| DeliveredRow {
            row: crate::checks::RowId {
                source: "cron".into(),
                workflow_category: "ci".into(),
                workflow_name: "w".into(),
                task: "t".into(),
                check: check.into(),
                repo: None,
            },
            status: Status::Pass,
            delivered_at: at,
            series: vec![SentSeries {
                tags: sent("pass", 1.0)
                    .tags
                    .into_iter()
                    .map(|t| {
                        if t == "check:c" {
                            format!("check:{check}")
                        } else {
                            t
                        }
                    })
                    .collect(),
                timestamp: at,
                ..sent("pass", 1.0)
            }],
        };
        last.rows.insert("a".into(), row("old", 100));
        last.rows.insert("b".into(), row("c", 1_000));
        let answer = vec![series(
            &with(&["condition:lt_5m", "status:pass"]),
            &[(1000, 1.0)],
        )];
        let q = query_for(&last.rows["b"].series[0], 20);
        let answers = BTreeMap::from([(q, answer)]);
        let reports = rows(&last, &answers, 500, 20);
        assert_eq!(reports[0].outcome, Outcome::NotChecked);
        assert!(
            reports[0].details[0].contains("before the window"),
            "{:?}",
            reports[0]
        );
        assert!(!reports[0].outcome.is_missing() && !reports[0].outcome.is_different());
        assert_eq!(reports[1].outcome, Outcome::Landed);
    }
}
