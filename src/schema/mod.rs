//! The metric schema: the only place that builds metric names and tag lists.
//!
//! Every metric we send is named `<prefix>.<pipeline>.<domain>.<signal>` and carries the nine
//! required tags of the ingestion plan (`source`, `workflow_category`, `workflow_name`, `task`,
//! `check`, `condition`, `status`, `env`, `service`). Dashboards mix `source:cron` and
//! `source:stable_suite` rows, which only works if every emitter builds names and tags the same
//! way; so no other module formats a metric name or a `key:value` tag. A metric missing a required
//! tag is refused here with an error rather than sent half-labelled.

pub mod encode;
pub mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use rules::{Rewrite, normalize_metric_name, normalize_tag};

use crate::checks::{RowId, Status};

/// The tags every metric must carry, in the order they are written.
pub const REQUIRED_TAGS: &[&str] = &[
    "source",
    "workflow_category",
    "workflow_name",
    "task",
    "check",
    "condition",
    "status",
    "env",
    "service",
];

/// The tag on every Datadog object infra-health creates besides metrics (monitors): what
/// `datadog apply --prune` may delete, and what the dashboard's monitor summary lists.
pub const MANAGED_BY_TAG: &str = "managed-by:infra-health";

pub const DEFAULT_PREFIX: &str = "metta.infra";
pub const DEFAULT_SERVICE: &str = "infra-health-dashboard";

/// How a metric's value is encoded for Datadog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricValue {
    Gauge(f64),
    /// A count over `interval` seconds.
    Count {
        value: f64,
        interval: u64,
    },
    Rate {
        value: f64,
        interval: u64,
    },
    /// Every sample, so Datadog can compute percentiles itself.
    Distribution(Vec<f64>),
}

impl MetricValue {
    /// Datadog's v2 intake type number (0 unspecified, 1 count, 2 rate, 3 gauge); distributions
    /// go to a different endpoint and have none.
    pub fn intake_type(&self) -> Option<u8> {
        match self {
            MetricValue::Count { .. } => Some(1),
            MetricValue::Rate { .. } => Some(2),
            MetricValue::Gauge(_) => Some(3),
            MetricValue::Distribution(_) => None,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            MetricValue::Gauge(_) => "gauge",
            MetricValue::Count { .. } => "count",
            MetricValue::Rate { .. } => "rate",
            MetricValue::Distribution(_) => "distribution",
        }
    }

    /// How many points this metric puts in a payload (the Agent caps a payload by points).
    pub fn point_count(&self) -> usize {
        match self {
            MetricValue::Distribution(v) => v.len().max(1),
            _ => 1,
        }
    }
}

/// One metric ready for a sink: a valid name, a complete tag list, one timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: MetricValue,
    /// Unix seconds.
    pub timestamp: i64,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SchemaError {
    #[error("metric {metric}: required tag `{tag}` is missing or empty")]
    MissingTag { metric: String, tag: &'static str },
    #[error("invalid metric name {name:?}: {why}")]
    BadName { name: String, why: String },
    #[error("invalid tag {tag:?}: {why}")]
    BadTag { tag: String, why: String },
    #[error("tag key `{key}` is reserved by Datadog and set by infra-health itself")]
    ReservedKey { key: String },
    #[error("tag key `{key}` is not allowed on metrics (allowed extras: {allowed})")]
    NotAllowed { key: String, allowed: String },
}

/// Run-wide settings every metric shares: prefix, `env`, `service` and extra tags.
#[derive(Debug, Clone)]
pub struct Schema {
    prefix: String,
    env: String,
    service: String,
    /// Already-normalised `key:value` tags added to every metric.
    extra_tags: Vec<String>,
}

impl Schema {
    pub fn new(
        prefix: &str,
        env: &str,
        service: &str,
        extra_tags: &BTreeMap<String, String>,
    ) -> Result<Schema, SchemaError> {
        let (prefix_norm, rewrite) =
            normalize_metric_name(prefix).map_err(|why| SchemaError::BadName {
                name: prefix.to_string(),
                why,
            })?;
        if let Some(r) = rewrite {
            return Err(SchemaError::BadName {
                name: prefix.to_string(),
                why: r.to_string(),
            });
        }
        if let Some(why) = empty_segment(prefix) {
            return Err(SchemaError::BadName {
                name: prefix.to_string(),
                why: format!(
                    "the prefix {why}, so metric names would contain \"..\"; write it as {:?}",
                    segments_joined(prefix)
                ),
            });
        }
        let mut extra = Vec::new();
        for (k, v) in extra_tags {
            if rules::is_reserved_key(k) || REQUIRED_TAGS.contains(&k.as_str()) {
                return Err(SchemaError::ReservedKey { key: k.clone() });
            }
            extra.push(tag(k, v)?);
        }
        Ok(Schema {
            prefix: prefix_norm,
            env: env.to_string(),
            service: service.to_string(),
            extra_tags: extra,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn env(&self) -> &str {
        &self.env
    }

    /// `<prefix>.<pipeline>.<path>`, where `path` is `<domain>.<signal>` (e.g. `ci.workflow.success`).
    pub fn metric_name(&self, pipeline: &str, path: &str) -> Result<String, SchemaError> {
        if let Some(why) = empty_segment(path) {
            return Err(SchemaError::BadName {
                name: path.to_string(),
                why: format!(
                    "the metric {why}, so the name would contain \"..\"; write it as {:?}",
                    segments_joined(path)
                ),
            });
        }
        if path.split('.').filter(|s| !s.is_empty()).count() < 2 {
            return Err(SchemaError::BadName {
                name: path.to_string(),
                why: "expected <domain>.<signal>, e.g. ci.workflow.success".into(),
            });
        }
        self.checked_name(&format!("{}.{}.{}", self.prefix, pipeline, path))
    }

    /// `<prefix>.<path>`, for the tool's own metrics (`collector.duration`, `delivery.dropped_points`).
    pub fn self_metric_name(&self, path: &str) -> Result<String, SchemaError> {
        self.checked_name(&format!("{}.{}", self.prefix, path))
    }

    fn checked_name(&self, name: &str) -> Result<String, SchemaError> {
        let (n, rewrite) = normalize_metric_name(name).map_err(|why| SchemaError::BadName {
            name: name.to_string(),
            why,
        })?;
        match rewrite {
            // A name that Datadog would rewrite is refused: config validation reports it with
            // the line, and we never change a name the user typed behind their back.
            Some(r) => Err(SchemaError::BadName {
                name: name.to_string(),
                why: r.to_string(),
            }),
            None => Ok(n),
        }
    }

    /// Name of the per-row health gauge (1 pass, 0.5 warn, 0 fail).
    pub fn status_metric(&self, pipeline: &str) -> Result<String, SchemaError> {
        self.metric_name(pipeline, "check.status")
    }

    /// Name of the gauge sent (=1) for a row whose status is unknown, instead of a placeholder 0.
    pub fn unknown_metric(&self, pipeline: &str) -> Result<String, SchemaError> {
        self.metric_name(pipeline, "check.unknown")
    }

    /// Name of the synthetic carry-forward gauge (`<prefix>.state.carry_forward`).
    pub fn carry_forward_metric(&self) -> Result<String, SchemaError> {
        self.self_metric_name("state.carry_forward")
    }

    /// The complete tag list for a row's metric: the required tags in a fixed order, then the
    /// run's extra tags, then `optional` (keys from [`crate::observation::OPTIONAL_TAGS`] or the row's own tags).
    pub fn tags(
        &self,
        metric: &str,
        row: &RowId,
        condition_tag: &str,
        status: Status,
        optional: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, SchemaError> {
        let required: [(&'static str, &str); 9] = [
            ("source", &row.source),
            ("workflow_category", &row.workflow_category),
            ("workflow_name", &row.workflow_name),
            ("task", &row.task),
            ("check", &row.check),
            ("condition", condition_tag),
            ("status", status.as_str()),
            ("env", &self.env),
            ("service", &self.service),
        ];
        let mut tags = Vec::with_capacity(required.len() + self.extra_tags.len() + optional.len());
        for (key, value) in required {
            if value.trim().is_empty() {
                return Err(SchemaError::MissingTag {
                    metric: metric.to_string(),
                    tag: key,
                });
            }
            tags.push(tag(key, value)?);
        }
        tags.extend(self.extra_tags.iter().cloned());
        for (k, v) in optional {
            if REQUIRED_TAGS.contains(&k.as_str()) || rules::is_reserved_key(k) {
                return Err(SchemaError::ReservedKey { key: k.clone() });
            }
            tags.push(tag(k, v)?);
        }
        Ok(tags)
    }
}

/// One `key:value` tag, normalised. Values Datadog would rewrite are normalised silently here
/// (they come from data, e.g. a workflow called `Tests (Linux)`); keys must already be valid.
pub fn tag(key: &str, value: &str) -> Result<String, SchemaError> {
    let (k, rewrite) = normalize_tag(key).map_err(|why| SchemaError::BadTag {
        tag: key.to_string(),
        why,
    })?;
    if rewrite.is_some() || k.contains(':') {
        return Err(SchemaError::BadTag {
            tag: key.to_string(),
            why: "a tag key is lower-case letters, digits and '_ - . /', starting with a letter"
                .into(),
        });
    }
    let (t, _) = normalize_tag(&format!("{k}:{value}")).map_err(|why| SchemaError::BadTag {
        tag: format!("{k}:{value}"),
        why,
    })?;
    Ok(t)
}

/// Check that a user-chosen tag key (a row's `tags`, `defaults.tags`) is usable.
pub fn validate_tag_key(key: &str) -> Result<(), SchemaError> {
    if rules::is_reserved_key(key) || REQUIRED_TAGS.contains(&key) {
        return Err(SchemaError::ReservedKey {
            key: key.to_string(),
        });
    }
    tag(key, "x").map(|_| ())
}

/// Check that a tag value the user typed would reach Datadog unchanged.
pub fn validate_tag_value(key: &str, value: &str) -> Result<(), SchemaError> {
    let raw = format!("{key}:{value}");
    match normalize_tag(&raw) {
        Ok((_, None)) => Ok(()),
        Ok((_, Some(r))) => Err(SchemaError::BadTag {
            tag: raw,
            why: r.to_string(),
        }),
        Err(why) => Err(SchemaError::BadTag { tag: raw, why }),
    }
}

/// Why a dotted name has an empty segment (`metta.`, `.infra`, `a..b`), if it has one.
fn empty_segment(name: &str) -> Option<&'static str> {
    if name.ends_with('.') {
        Some("ends with a dot")
    } else if name.starts_with('.') {
        Some("starts with a dot")
    } else if name.contains("..") {
        Some("has an empty segment (\"..\")")
    } else {
        None
    }
}

/// The name without its empty segments, as a suggestion.
fn segments_joined(name: &str) -> String {
    name.split('.')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::pipeline_for_source;

    fn schema() -> Schema {
        Schema::new("metta.infra", "prod", DEFAULT_SERVICE, &BTreeMap::new()).unwrap()
    }

    fn row() -> RowId {
        RowId {
            source: "cron".into(),
            workflow_category: "ci".into(),
            workflow_name: "latest_state_of_main".into(),
            task: "tests_blocking_merge".into(),
            check: "workflow_success".into(),
            repo: None,
        }
    }

    #[test]
    fn names_follow_the_convention() {
        let s = schema();
        assert_eq!(
            s.metric_name("cron", "ci.workflow.success").unwrap(),
            "metta.infra.cron.ci.workflow.success"
        );
        assert_eq!(
            s.metric_name(&pipeline_for_source("stable_suite"), "training.sps")
                .unwrap(),
            "metta.infra.stablesuite.training.sps"
        );
        assert!(s.metric_name("cron", "success").is_err());
        assert!(s.metric_name("cron", "ci.p90-duration").is_err());
    }

    #[test]
    fn a_prefix_or_metric_with_an_empty_segment_is_refused() {
        let empty = BTreeMap::new();
        for (prefix, says) in [
            ("metta.", "ends with a dot"),
            ("metta..infra", "has an empty segment"),
        ] {
            let err = Schema::new(prefix, "prod", "svc", &empty)
                .err()
                .unwrap_or_else(|| panic!("{prefix:?} accepted"))
                .to_string();
            assert!(err.contains(says), "{prefix}: {err}");
            assert!(err.contains("\"..\""), "{err}");
        }
        let err = Schema::new("metta.", "prod", "svc", &empty)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("write it as \"metta\""), "{err}");
        let s = schema();
        let err = s
            .metric_name("cron", "ci..success")
            .unwrap_err()
            .to_string();
        assert!(err.contains("write it as \"ci.success\""), "{err}");
        assert!(s.metric_name("cron", "ci.success.").is_err());
    }

    #[test]
    fn every_required_tag_is_written_in_order() {
        let s = schema();
        let tags = s
            .tags("m", &row(), "eq_success", Status::Pass, &BTreeMap::new())
            .unwrap();
        let keys: Vec<&str> = tags.iter().map(|t| t.split(':').next().unwrap()).collect();
        assert_eq!(keys, REQUIRED_TAGS);
        assert!(tags.contains(&"condition:eq_success".to_string()));
        assert!(tags.contains(&"service:infra-health-dashboard".to_string()));
    }

    #[test]
    fn a_missing_required_tag_is_refused() {
        let s = schema();
        let mut r = row();
        r.task = " ".into();
        let err = s
            .tags("m", &r, "eq_success", Status::Pass, &BTreeMap::new())
            .unwrap_err();
        assert_eq!(
            err,
            SchemaError::MissingTag {
                metric: "m".into(),
                tag: "task"
            }
        );
        let err = s
            .tags("m", &row(), "", Status::Pass, &BTreeMap::new())
            .unwrap_err();
        assert!(err.to_string().contains("`condition`"));
    }

    #[test]
    fn optional_tags_cannot_override_required_ones() {
        let s = schema();
        let mut extra = BTreeMap::new();
        extra.insert("env".to_string(), "dev".to_string());
        assert!(
            s.tags("m", &row(), "eq_success", Status::Pass, &extra)
                .is_err()
        );
        let mut extra = BTreeMap::new();
        extra.insert("repo".to_string(), "Org/Repo".to_string());
        let tags = s
            .tags("m", &row(), "eq_success", Status::Pass, &extra)
            .unwrap();
        assert!(tags.contains(&"repo:org/repo".to_string()));
    }
}
