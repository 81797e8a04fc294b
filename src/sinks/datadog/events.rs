//! Status-change events: one Datadog event per row whose status changed, so the dashboard's
//! timelines carry an annotation at the moment a row went red or green again.
//!
//! `POST /api/v1/events` `{title, text, tags, alert_type, aggregation_key}`. The alert type
//! follows the new status (fail → `error`, pass → `success`, warn/unknown → `warning`); the
//! aggregation key is a stable hash of the row, so Datadog groups a row's flips together. Tags
//! come from the schema like every metric's. Off unless `[sink] events = true`.

use serde::Serialize;

use crate::checks::Status;
use crate::checks::{Condition, StatusChange};
use crate::schema::{Schema, SchemaError};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub title: String,
    pub text: String,
    pub tags: Vec<String>,
    pub alert_type: &'static str,
    pub aggregation_key: String,
    pub source_type_name: &'static str,
}

pub fn alert_type(to: Status) -> &'static str {
    match to {
        Status::Fail => "error",
        Status::Pass => "success",
        Status::Warn | Status::Unknown => "warning",
    }
}

/// A stable, short aggregation key per row (Datadog allows 100 characters).
pub fn aggregation_key(change: &StatusChange) -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}|{}", change.row.source, change.row).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("infra-health-{h:016x}")
}

/// The event for one change.
pub fn event(schema: &Schema, change: &StatusChange) -> Result<Event, SchemaError> {
    // The condition arrives in its human form (`<5m`); the tag needs the tag-safe one.
    let condition_tag = Condition::parse(&change.condition)
        .map(|c| c.tag_value())
        .unwrap_or_else(|_| change.condition.clone());
    let tags = schema.event_tags(&change.row, &condition_tag, change.to)?;
    let title = if change.title.trim().is_empty() {
        change.row.to_string()
    } else {
        change.title.clone()
    };
    let value = change
        .value
        .as_deref()
        .map(|v| format!(", value {v}"))
        .unwrap_or_default();
    Ok(Event {
        title: format!("{title}: {} → {}", change.from, change.to),
        text: format!(
            "Health row {} ({}) changed from {} to {} (condition {}{value}).",
            change.row, change.row.source, change.from, change.to, change.condition
        ),
        tags,
        alert_type: alert_type(change.to),
        aggregation_key: aggregation_key(change),
        source_type_name: "infra-health",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::RowId;
    use std::collections::BTreeMap;

    #[test]
    fn events_carry_schema_tags_and_a_stable_key() {
        let schema = Schema::new("metta.infra", "prod", "svc", &BTreeMap::new()).unwrap();
        let change = StatusChange {
            row: RowId {
                source: "cron".into(),
                workflow_category: "ci".into(),
                workflow_name: "ci_smoothness".into(),
                task: "duration".into(),
                check: "p90".into(),
                repo: None,
            },
            title: "p90 workflow duration".into(),
            from: Status::Pass,
            to: Status::Fail,
            value: Some("6m".into()),
            condition: "<5m".into(),
        };
        let e = event(&schema, &change).unwrap();
        assert_eq!(e.alert_type, "error");
        assert!(
            e.tags.contains(&"condition:lt_5m".to_string()),
            "{:?}",
            e.tags
        );
        assert!(e.tags.contains(&"status:fail".to_string()));
        assert_eq!(e.title, "p90 workflow duration: pass → fail");
        assert_eq!(e.aggregation_key, aggregation_key(&change));
        assert!(e.aggregation_key.len() <= 100);
        let mut other = change.clone();
        other.row.check = "p50".into();
        assert_ne!(aggregation_key(&other), e.aggregation_key);
        assert_eq!(alert_type(Status::Unknown), "warning");
        assert_eq!(alert_type(Status::Pass), "success");
    }
}
