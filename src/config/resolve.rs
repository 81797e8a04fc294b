//! The resolve stage: each raw table validated and turned into its part of the [`Plan`](super::Plan)
//! (defaults, dashboard, sink, collectors, rows), every problem recorded in [`Problems`] with
//! its line and key.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::checks::RowId;
use crate::checks::{CheckDef, Condition, Encoding, Summary};
use crate::collectors::{self, BuildContext, CollectorInstance};
use crate::duration::parse_duration;
use crate::schema::{self, Schema};
use crate::sinks::{SinkKind, SinkSettings};

use super::locate::{header_line, key_line, line_of};
use super::problems::Problems;
use super::raw::{CHECK_KEYS, RawAlerting, RawCheck, RawDashboard, RawDatadog, RawDefaults};
use super::{
    CollectorSchedule, DEFAULT_CARRY_FORWARD, DEFAULT_COLLECTOR_TIMEOUT, DashboardSettings,
    DatadogSettings, Defaults, RowAlerting,
};

/// How often the pipeline delivers unless `[datadog] period` says otherwise (the cron job).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(600);
/// How long a row fails before its monitor alerts, unless configured.
pub const DEFAULT_ALERT_AFTER: Duration = Duration::from_secs(30 * 60);
/// How long a row is unknown before the unknown-rows monitor notifies, unless configured.
pub const DEFAULT_UNKNOWN_AFTER: Duration = Duration::from_secs(2 * 3600);
/// Datadog's evaluation delay for the monitors, unless configured.
pub const DEFAULT_EVALUATION_DELAY: Duration = Duration::from_secs(300);

/// A row's own alerting keys, read by [`resolve_checks`] and resolved in [`resolve_datadog`]
/// with its category's and the `[datadog]` table's.
pub(super) struct RowAlertRaw {
    row: RowId,
    line: usize,
    alert: Option<bool>,
    alert_after: Option<Duration>,
    notify: Option<Vec<String>>,
    link: Option<String>,
    collector: String,
}

/// Where a collector's source is looked at by a person, from its options.
fn source_link(kind: &str, options: &toml::Table) -> Option<String> {
    let text = |k: &str| options.get(k).and_then(toml::Value::as_str);
    if let Some(repo) = text("repo") {
        let base = format!("https://github.com/{repo}");
        return Some(match kind {
            "github_actions" => match text("branch") {
                Some(b) => format!("{base}/actions?query=branch%3A{b}"),
                None => format!("{base}/actions"),
            },
            "github_commits" => match text("branch") {
                Some(b) => format!("{base}/commits/{b}"),
                None => format!("{base}/commits"),
            },
            "github_pulls" => format!("{base}/pulls"),
            "github_issues" => format!("{base}/issues"),
            _ => base,
        });
    }
    text("url").map(str::to_string)
}

fn check_handles(p: &mut Problems, line: usize, key: &str, handles: &[String]) {
    for h in handles {
        let ok = h.starts_with('@') && h.len() > 1 && !h.chars().any(char::is_whitespace);
        if !ok {
            p.at(
                line,
                Some(key.to_string()),
                format!(
                    "{h:?} is not a Datadog notification handle; write it as Datadog does, e.g.                      \"@slack-infra-alerts\", \"@pagerduty-infra\" or \"@team@example.com\""
                ),
            );
        }
    }
}

pub(super) fn resolve_datadog(
    p: &mut Problems,
    raw: Option<&Spanned<toml::Table>>,
    collectors: Vec<CollectorSchedule>,
    rows: Vec<RowAlertRaw>,
) -> DatadogSettings {
    let span = raw.map(|r| r.span()).unwrap_or(0..0);
    let parsed: RawDatadog = match raw {
        Some(t) => match toml::Value::Table(t.get_ref().clone()).try_into() {
            Ok(d) => d,
            Err(e) => {
                p.serde(&span, "datadog", &e);
                RawDatadog::default()
            }
        },
        None => RawDatadog::default(),
    };
    let duration = |p: &mut Problems, key: &str, v: &Option<String>, default: Duration| match v
        .as_deref()
        .map(parse_duration)
    {
        None => default,
        Some(Ok(d)) if d.as_secs() > 0 => d,
        Some(Ok(_)) => {
            p.key(&span, "datadog", key, "must be at least 1s");
            default
        }
        Some(Err(e)) => {
            p.key(&span, "datadog", key, e.to_string());
            default
        }
    };
    let period = duration(p, "period", &parsed.period, DEFAULT_PERIOD);
    let alert_after = duration(p, "alert_after", &parsed.alert_after, DEFAULT_ALERT_AFTER);
    let unknown_after = duration(
        p,
        "unknown_after",
        &parsed.unknown_after,
        DEFAULT_UNKNOWN_AFTER,
    );
    let evaluation_delay = duration(
        p,
        "evaluation_delay",
        &parsed.evaluation_delay,
        DEFAULT_EVALUATION_DELAY,
    );
    let line = raw.map(|r| header_line(p.text, &r.span())).unwrap_or(0);
    check_handles(p, line, "datadog.notify", &parsed.notify);
    if let Some(u) = &parsed.unknown_notify {
        check_handles(p, line, "datadog.unknown_notify", u);
    }
    let mut categories: Vec<(String, RawAlerting, Option<Duration>)> = Vec::new();
    for (name, c) in &parsed.category {
        let after = match c.alert_after.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                p.key(
                    &span,
                    "datadog",
                    &format!("category.{name}.alert_after"),
                    e.to_string(),
                );
                None
            }
        };
        if let Some(n) = &c.notify {
            check_handles(p, line, &format!("datadog.category.{name}.notify"), n);
        }
        categories.push((name.clone(), c.clone(), after));
    }
    let collectors: Vec<CollectorSchedule> = collectors
        .into_iter()
        .map(|mut c| {
            if c.period.is_zero() {
                c.period = period;
            }
            c
        })
        .collect();
    let rows = rows
        .into_iter()
        .map(|r| {
            let category = categories
                .iter()
                .find(|(n, _, _)| *n == r.row.workflow_category);
            let enabled = r
                .alert
                .or(category.and_then(|(_, c, _)| c.alert))
                .unwrap_or(true);
            let after = r
                .alert_after
                .or(category.and_then(|(_, _, a)| *a))
                .unwrap_or(alert_after);
            if let Some(n) = &r.notify {
                check_handles(p, r.line, "check.notify", n);
            }
            let notify = r
                .notify
                .clone()
                .or(category.and_then(|(_, c, _)| c.notify.clone()))
                .unwrap_or_else(|| parsed.notify.clone());
            let link = r.link.clone().or_else(|| {
                collectors
                    .iter()
                    .find(|c| c.name == r.collector)
                    .and_then(|c| c.link.clone())
            });
            (
                r.row,
                RowAlerting {
                    alert_after: enabled.then_some(after),
                    notify,
                    link,
                },
            )
        })
        .collect();
    DatadogSettings {
        period,
        unknown_notify: parsed
            .unknown_notify
            .unwrap_or_else(|| parsed.notify.clone()),
        notify: parsed.notify,
        unknown_after,
        evaluation_delay,
        dashboard_url: parsed.dashboard_url,
        rows,
        collectors,
    }
}

pub(super) fn resolve_defaults(p: &mut Problems, raw: Option<&Spanned<toml::Table>>) -> Defaults {
    let span = raw.map(|r| r.span()).unwrap_or(0..0);
    let parsed: RawDefaults = match raw {
        Some(t) => p
            .lenient(&span, "defaults", t.get_ref())
            .unwrap_or_default(),
        None => RawDefaults::default(),
    };
    let carry_forward = match parsed.carry_forward.as_deref().map(parse_duration) {
        None => DEFAULT_CARRY_FORWARD,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.key(&span, "defaults", "carry_forward", e.to_string());
            DEFAULT_CARRY_FORWARD
        }
    };
    for (k, v) in &parsed.tags {
        if let Err(e) = schema::validate_tag_key(k).and_then(|_| schema::validate_tag_value(k, v)) {
            p.key(&span, "defaults", "tags", e.to_string());
        }
    }
    // DD_ENV wins over the file, as it does for the Datadog Agent and tracers.
    let env = std::env::var("DD_ENV")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or(parsed.env)
        .unwrap_or_else(|| "dev".to_string());
    let source = parsed.source.unwrap_or_else(|| "cron".into());
    for (key, value) in [("env", &env), ("source", &source)] {
        if let Err(e) = schema::validate_tag_value(key, value) {
            p.key(&span, "defaults", key, e.to_string());
        }
    }
    Defaults {
        prefix: parsed
            .prefix
            .unwrap_or_else(|| schema::DEFAULT_PREFIX.into()),
        env,
        service: parsed
            .service
            .unwrap_or_else(|| schema::DEFAULT_SERVICE.into()),
        source,
        carry_forward,
        tags: parsed.tags,
    }
}

pub(super) fn resolve_dashboard(
    p: &mut Problems,
    raw: Option<&Spanned<toml::Table>>,
    defaults: &Defaults,
) -> DashboardSettings {
    let parsed: RawDashboard = match raw {
        Some(t) => p
            .lenient(&t.span(), "dashboard", t.get_ref())
            .unwrap_or_default(),
        None => RawDashboard::default(),
    };
    if let (Some(t), Some(raw)) = (&parsed.title, raw)
        && t.trim().is_empty()
    {
        p.key(
            &raw.span(),
            "dashboard",
            "title",
            "the title must not be empty",
        );
    }
    DashboardSettings {
        title: parsed
            .title
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| format!("Infra health ({})", defaults.env)),
        description: parsed.description.unwrap_or_else(|| {
            "Health matrix of CI, code, training and evaluation, generated by infra-health."
                .to_string()
        }),
    }
}

pub(super) fn resolve_sink(p: &mut Problems, raw: Option<&Spanned<toml::Table>>) -> SinkSettings {
    let mut settings = SinkSettings {
        kind: SinkKind::Auto,
        events: false,
        datadog: toml::Table::new(),
    };
    let Some(raw) = raw else {
        return settings;
    };
    let span = raw.span();
    let mut table = raw.get_ref().clone();
    if let Some(v) = table.remove("type") {
        match v.try_into::<SinkKind>() {
            Ok(k) => settings.kind = k,
            Err(_) => p.key(
                &span,
                "sink",
                "type",
                "expected one of \"auto\", \"datadog\", \"local\", \"dry-run\"",
            ),
        }
    }
    if let Some(v) = table.remove("events") {
        match v.as_bool() {
            Some(b) => settings.events = b,
            None => p.key(&span, "sink", "events", "expected true or false"),
        }
    }
    for problem in crate::sinks::datadog::config::check_options(&table) {
        p.key(&span, "sink", &problem.key, problem.why);
    }
    settings.datadog = table;
    settings
}

pub(super) fn resolve_collectors(
    p: &mut Problems,
    raw: &[Spanned<toml::Table>],
    config_dir: &Path,
    schedules: &mut Vec<CollectorSchedule>,
) -> Vec<CollectorInstance> {
    let mut out: Vec<CollectorInstance> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for table in raw {
        let span = table.span();
        let mut options = table.get_ref().clone();
        let header = header_line(p.text, &span);
        let name = match options.remove("name") {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
            Some(_) => {
                p.key(&span, "collector", "name", "expected a non-empty string");
                continue;
            }
            None => {
                p.at(
                    header,
                    Some("collector.name".into()),
                    "every [[collector]] needs a `name`",
                );
                continue;
            }
        };
        if let Some(first) = seen.get(&name) {
            p.key(
                &span,
                "collector",
                "name",
                format!("duplicate collector name {name:?} (first defined on line {first})"),
            );
            continue;
        }
        seen.insert(name.clone(), header);
        let kind_name = match options.remove("type") {
            Some(toml::Value::String(s)) => s,
            _ => {
                p.at(
                    header,
                    Some("collector.type".into()),
                    format!(
                        "collector {name:?} needs a `type`, one of: {}",
                        collectors::kind_names()
                    ),
                );
                continue;
            }
        };
        let Some(kind) = collectors::find_kind(&kind_name) else {
            p.key(
                &span,
                "collector",
                "type",
                format!(
                    "unknown collector type {kind_name:?}; available: {}",
                    collectors::kind_names()
                ),
            );
            continue;
        };
        let timeout = match options.remove("timeout") {
            None => DEFAULT_COLLECTOR_TIMEOUT,
            Some(toml::Value::String(s)) => match parse_duration(&s) {
                Ok(d) => d,
                Err(e) => {
                    p.key(&span, "collector", "timeout", e.to_string());
                    continue;
                }
            },
            Some(_) => {
                p.key(
                    &span,
                    "collector",
                    "timeout",
                    "expected a duration string such as \"30s\"",
                );
                continue;
            }
        };
        // Common keys for the Datadog side: how often its job runs, where its source is.
        let period = match options.remove("period") {
            None => Duration::ZERO,
            Some(toml::Value::String(s)) => match parse_duration(&s) {
                Ok(d) if d.as_secs() > 0 => d,
                Ok(_) => {
                    p.key(&span, "collector", "period", "must be at least 1s");
                    continue;
                }
                Err(e) => {
                    p.key(&span, "collector", "period", e.to_string());
                    continue;
                }
            },
            Some(_) => {
                p.key(
                    &span,
                    "collector",
                    "period",
                    "expected a duration string such as \"10m\" (how often its CronJob runs)",
                );
                continue;
            }
        };
        let link = match options.remove("link") {
            None => source_link(kind.name, &options),
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => {
                p.key(&span, "collector", "link", "expected a URL string");
                continue;
            }
        };
        schedules.push(CollectorSchedule {
            name: name.clone(),
            kind: kind.name,
            period,
            link,
        });
        let ctx = BuildContext {
            name: &name,
            options,
            config_dir: config_dir.to_path_buf(),
        };
        match (kind.build)(&ctx) {
            Ok(collector) => out.push(CollectorInstance {
                name,
                kind: kind.name,
                timeout,
                collector,
            }),
            Err(e) => {
                let (line, key) = match &e.key {
                    Some(key) => (
                        key_line(p.text, &span, key),
                        Some(format!("collector.{key}")),
                    ),
                    None => (line_of(p.text, span.start), None),
                };
                p.at(
                    line,
                    key,
                    format!("collector {name:?} ({}): {}", kind.name, e.message),
                );
            }
        }
    }
    out
}

/// The keys every `[[check]]` must have, with a placeholder that passes their own checks.
const REQUIRED_CHECK_KEYS: &[(&str, &str)] = &[
    ("workflow_category", "missing"),
    ("workflow_name", "missing"),
    ("task", "missing"),
    ("check", "missing"),
    ("collector", "missing"),
    ("signal", "missing"),
    ("condition", ">=0"),
    ("metric", "missing.metric"),
];

/// A row table with every missing required key reported and filled with a placeholder (unique
/// per row, so two incomplete rows are not duplicates of each other); the filled keys.
fn fill_missing(
    p: &mut Problems,
    span: &std::ops::Range<usize>,
    table: &toml::Table,
) -> (toml::Table, Vec<&'static str>) {
    let mut filled = table.clone();
    let mut keys = Vec::new();
    let line = header_line(p.text, span);
    for (key, placeholder) in REQUIRED_CHECK_KEYS {
        // A misspelt key (`metrc`) is the missing one: one problem, and its value is checked.
        let typo = filled
            .keys()
            .find(|k| !CHECK_KEYS.contains(&k.as_str()) && typo_distance(k, key) <= 2)
            .cloned();
        if let (false, Some(typo)) = (filled.contains_key(*key), typo) {
            p.key(
                span,
                "check",
                &typo,
                format!("unknown key `{typo}`; did you mean `{key}`?"),
            );
            if let Some(value) = filled.remove(&typo) {
                filled.insert(key.to_string(), value);
            }
            continue;
        }
        if !filled.contains_key(*key) {
            p.at(
                line,
                Some(format!("check.{key}")),
                format!("missing field `{key}`: every [[check]] needs one"),
            );
            let value = match *key {
                "condition" | "metric" => placeholder.to_string(),
                _ => format!("{placeholder}_line_{line}"),
            };
            filled.insert(key.to_string(), toml::Value::String(value));
            keys.push(*key);
        }
    }
    (filled, keys)
}

/// Edit distance between two keys (insertions, deletions, substitutions).
fn typo_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(super) fn resolve_checks(
    p: &mut Problems,
    raw: &[Spanned<toml::Table>],
    defaults: &Defaults,
    schema: &Schema,
    collectors: &[CollectorInstance],
    warnings: &mut Vec<String>,
    row_alerts: &mut Vec<RowAlertRaw>,
) -> Vec<CheckDef> {
    let mut out = Vec::new();
    let mut seen: HashMap<RowId, usize> = HashMap::new();
    // Metric name (with its pipeline) → the type it is sent as, and the first row's line.
    let mut kinds: HashMap<String, (&'static str, usize)> = HashMap::new();
    // Condition tag value → the condition sent with it and its row's line: two conditions
    // that mean different things must not arrive in Datadog as the same tag.
    let mut condition_tags: HashMap<String, (Condition, usize)> = HashMap::new();
    for table in raw {
        // A missing required key is reported, then filled with a placeholder so the row's
        // other keys are still checked; problems of the placeholder itself are dropped.
        let (filled, placeholders) = fill_missing(p, &table.span(), table.get_ref());
        let list_before = p.list.len();
        let rows_before = out.len();
        let alerts_before = row_alerts.len();
        'row: {
            let span = table.span();
            let header = header_line(p.text, &span);
            let Some(r) = p.lenient::<RawCheck>(&span, "check", &filled) else {
                break 'row;
            };
            let errors_before = p.list.len();
            let row = RowId {
                source: r.source.clone().unwrap_or_else(|| defaults.source.clone()),
                workflow_category: r.workflow_category.clone(),
                workflow_name: r.workflow_name.clone(),
                task: r.task.clone(),
                check: r.check.clone(),
                repo: None,
            };
            for (key, value) in [
                ("source", &row.source),
                ("workflow_category", &row.workflow_category),
                ("workflow_name", &row.workflow_name),
                ("task", &row.task),
                ("check", &row.check),
            ] {
                if let Err(e) = schema::validate_tag_value(key, value) {
                    p.key(&span, "check", key, e.to_string());
                }
            }
            let condition = match Condition::parse(&r.condition) {
                Ok(c) => Some(c),
                Err(e) => {
                    p.key(&span, "check", "condition", e.to_string());
                    None
                }
            };
            let warn = match r.warn.as_deref().map(Condition::parse) {
                None => None,
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    p.key(&span, "check", "warn", e.to_string());
                    None
                }
            };
            if let Some(word) = condition.as_ref().and_then(Condition::non_ascii_word) {
                p.key(
                    &span,
                    "check",
                    "condition",
                    format!(
                        "the word {word:?} has characters outside ASCII; the `condition` tag keeps \
                         only a-z, 0-9, `_` and `.`, so it would arrive in Datadog as {:?}, which \
                         other words share; compare on an ASCII word",
                        condition
                            .as_ref()
                            .map(Condition::tag_value)
                            .unwrap_or_default()
                    ),
                );
            }
            if let (Some(c), Some(w)) = (&condition, &warn)
                && let Err(why) = c.check_warn(w)
            {
                p.key(&span, "check", "warn", why);
            }
            if !collectors.iter().any(|c| c.name == r.collector) {
                let names: Vec<&str> = collectors.iter().map(|c| c.name.as_str()).collect();
                p.key(
                    &span,
                    "check",
                    "collector",
                    format!(
                        "no collector named {:?} (defined: {})",
                        r.collector,
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
            }
            if let Err(e) = schema.metric_name(&row.pipeline(), &r.metric) {
                p.key(&span, "check", "metric", e.to_string());
            }
            for (k, v) in &r.tags {
                if let Err(e) =
                    schema::validate_tag_key(k).and_then(|_| schema::validate_tag_value(k, v))
                {
                    p.key(&span, "check", "tags", e.to_string());
                }
            }
            if let Some(u) = &r.unit
                && let Err(e) = schema::validate_tag_value("unit", u)
            {
                p.key(&span, "check", "unit", e.to_string());
            }
            let parse_dur = |p: &mut Problems,
                             key: &str,
                             value: &Option<String>,
                             default: Duration| match value
                .as_deref()
                .map(parse_duration)
            {
                None => default,
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    p.key(&span, "check", key, e.to_string());
                    default
                }
            };
            let carry_forward =
                parse_dur(p, "carry_forward", &r.carry_forward, defaults.carry_forward);
            let interval = parse_dur(p, "interval", &r.interval, Duration::from_secs(600));
            if interval.as_secs() == 0 {
                p.key(
                    &span,
                    "check",
                    "interval",
                    "a COUNT interval must be at least 1s",
                );
            }
            if let Some(first) = seen.get(&row) {
                p.at(
                    header,
                    Some("check".into()),
                    format!("duplicate row {row} (first defined on line {first}); rows are identified by workflow_category, workflow_name, task and check"),
                );
                break 'row;
            }
            seen.insert(row.clone(), header);
            let Some(condition) = condition else {
                break 'row;
            };
            if p.list.len() > errors_before {
                break 'row;
            }
            let tag = condition.tag_value();
            match condition_tags.get(&tag) {
                Some((other, line)) if !other.same_meaning(&condition) => {
                    p.key(
                        &span,
                        "check",
                        "condition",
                        format!(
                            "condition {} is sent as the tag condition:{tag}, like the different \
                             condition {} of the row on line {line}; Datadog could not tell them \
                             apart: write one of them differently",
                            condition.human(),
                            other.human()
                        ),
                    );
                    break 'row;
                }
                Some(_) => {}
                None => {
                    condition_tags.insert(tag, (condition.clone(), header));
                }
            }
            let encoding = r.encoding.unwrap_or(match condition.operand() {
                crate::checks::condition::Operand::Text(_) => Encoding::Status,
                _ => Encoding::Gauge,
            });
            if encoding == Encoding::Distribution && r.summary.is_none() && !r.percentiles {
                warnings.push(format!(
                    "{}:{header}: row {row} is a distribution compared on p90 (set `summary` to choose)",
                    p.file.display()
                ));
            }
            // Datadog keeps one type per metric name: a name sent as a distribution by one row and
            // as a gauge or count by another would be misread (or dropped) on one side.
            let kind = match encoding {
                Encoding::Status | Encoding::Gauge => "gauge",
                Encoding::Count => "count",
                Encoding::Distribution => "distribution",
            };
            // A count row also sends its level as the gauge `<metric>.window`.
            let mut sent = vec![(r.metric.clone(), kind)];
            if encoding == Encoding::Count {
                sent.push((crate::schema::encode::window_metric(&r.metric), "gauge"));
            }
            let mut clash = false;
            for (metric, kind) in sent {
                let full = format!("{}.{}", row.pipeline(), metric);
                match kinds.get(&full) {
                    Some((other, line)) if *other != kind => {
                        p.key(
                            &span,
                            "check",
                            "metric",
                            format!(
                                "metric {metric:?} is sent as a {kind} here but as a {other} by the row on line {line}; Datadog keeps one type per metric name"
                            ),
                        );
                        clash = true;
                    }
                    _ => {
                        kinds.insert(full, (kind, header));
                    }
                }
            }
            if clash {
                break 'row;
            }
            let alert_after = match r.alert_after.as_deref().map(parse_duration) {
                None => None,
                Some(Ok(d)) if d.as_secs() >= 60 => Some(d),
                Some(Ok(_)) => {
                    p.key(
                        &span,
                        "check",
                        "alert_after",
                        "must be at least 1m (Datadog monitors evaluate per minute)",
                    );
                    break 'row;
                }
                Some(Err(e)) => {
                    p.key(&span, "check", "alert_after", e.to_string());
                    break 'row;
                }
            };
            row_alerts.push(RowAlertRaw {
                row: row.clone(),
                line: header,
                alert: r.alert,
                alert_after,
                notify: r.notify.clone(),
                link: r.link.clone(),
                collector: r.collector.clone(),
            });
            let title = r.title.clone().unwrap_or_else(|| {
                format!("{} {}", r.task.replace('_', " "), r.check.replace('_', " "))
            });
            out.push(CheckDef {
                row,
                collector: r.collector,
                signal: r.signal,
                matches: r.matches,
                aggregate: r.aggregate,
                condition,
                warn,
                encoding,
                metric: r.metric,
                summary: r.summary.unwrap_or(Summary::P90),
                percentiles: r.percentiles,
                interval: interval.as_secs().max(1),
                unit: r.unit,
                carry_forward,
                tags: r.tags,
                title,
            });
        }
        if !placeholders.is_empty() {
            let keys: Vec<String> = placeholders.iter().map(|k| format!("check.{k}")).collect();
            let mut i = 0;
            p.list.retain(|e| {
                i += 1;
                i <= list_before || !e.key.as_ref().is_some_and(|k| keys.contains(k))
            });
            out.truncate(rows_before);
            row_alerts.truncate(alerts_before);
        }
    }
    out
}
