//! Metric tag configurations: percentiles enabled on every distribution, every tag kept.
//!
//! Datadog answers `p50:`…`p99:` on a distribution only after percentile aggregations are
//! enabled for that metric (Metrics Summary, or `POST/PATCH /api/v2/metrics/{name}/tags` with
//! `include_percentiles: true`). Without it the dashboard's p50/p90 widgets are empty. A tag
//! configuration also restricts which tags stay queryable, unless it is in exclude mode with
//! nothing excluded: that is what this writes (`exclude_tags_mode: true`, `tags: []`), so every
//! tag the tool sends can still be filtered and grouped on.
//!
//! Percentiles are billed: each distribution tag set costs 5 custom metrics (count, sum, min,
//! max, avg) and 5 more with percentiles (p50, p75, p90, p95, p99). [`cost`] counts what a config
//! costs, for `checks --metrics` (docs/dashboard.md, "What it costs").

use std::fmt;

use serde_json::{Value, json};

use crate::catalog::{Catalog, SeriesKind};

/// The JSON:API type of a metric tag configuration.
pub const TYPE: &str = "manage_tags";

/// One distribution's wanted configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagConfig {
    pub metric: String,
}

impl TagConfig {
    /// `POST /api/v2/metrics/{name}/tags`.
    pub fn create_body(&self) -> Value {
        json!({"data": {
            "type": TYPE,
            "id": self.metric,
            "attributes": {
                "metric_type": "distribution",
                "tags": [],
                "include_percentiles": true,
                "exclude_tags_mode": true
            }
        }})
    }

    /// `PATCH /api/v2/metrics/{name}/tags` (the metric type cannot change).
    pub fn update_body(&self) -> Value {
        json!({"data": {
            "type": TYPE,
            "id": self.metric,
            "attributes": {
                "tags": [],
                "include_percentiles": true,
                "exclude_tags_mode": true
            }
        }})
    }

    /// What is off in the live configuration (`GET /api/v2/metrics/{name}/tags`), in words;
    /// empty when percentiles are on and no tag is dropped.
    pub fn problems(&self, live: &Value) -> Vec<String> {
        let attrs = &live["data"]["attributes"];
        let mut out = Vec::new();
        if attrs["include_percentiles"].as_bool() != Some(true) {
            out.push("percentiles are off (include_percentiles is not true)".to_string());
        }
        let tags: Vec<&str> = attrs["tags"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let exclude = attrs["exclude_tags_mode"].as_bool().unwrap_or(false);
        match (exclude, tags.is_empty()) {
            (true, true) => {}
            (true, false) => out.push(format!("the tags {} are excluded", tags.join(", "))),
            (false, _) => out.push(format!(
                "only the tags [{}] are queryable (include mode)",
                tags.join(", ")
            )),
        }
        out
    }
}

/// The configuration every distribution of the catalog needs, one per metric name.
pub fn tag_configs(catalog: &Catalog) -> Vec<TagConfig> {
    let mut out: Vec<TagConfig> = Vec::new();
    for s in &catalog.series {
        if s.kind == SeriesKind::Distribution && !out.iter().any(|c| c.metric == s.metric) {
            out.push(TagConfig {
                metric: s.metric.clone(),
            });
        }
    }
    out
}

/// Custom metrics a config costs in a steady hour: one per series (tag set) of a gauge or
/// count, 5 per distribution tag set, 5 more for its percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    pub gauges: usize,
    pub counts: usize,
    pub distributions: usize,
}

/// Custom metrics per distribution tag set without percentiles.
pub const PER_DISTRIBUTION: usize = 5;
/// Extra custom metrics per distribution tag set with percentile aggregations on.
pub const PER_PERCENTILES: usize = 5;

impl Cost {
    pub fn distribution_metrics(&self) -> usize {
        self.distributions * PER_DISTRIBUTION
    }

    pub fn percentile_metrics(&self) -> usize {
        self.distributions * PER_PERCENTILES
    }

    pub fn total(&self) -> usize {
        self.gauges + self.counts + self.distribution_metrics() + self.percentile_metrics()
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "custom metrics: about {} in a steady hour ({} gauge and {} count series, {} \
             distribution series × {PER_DISTRIBUTION} = {}, percentiles × {PER_PERCENTILES} = {}); \
             every extra value of a tag that comes from the data (status, repo, …) seen in the \
             hour counts again",
            self.total(),
            self.gauges,
            self.counts,
            self.distributions,
            self.distribution_metrics(),
            self.percentile_metrics(),
        )
    }
}

/// What the catalog's series cost.
pub fn cost(catalog: &Catalog) -> Cost {
    cost_with(catalog, |_| 1)
}

/// What the catalog's series cost when each stands for `times(series)` series: a row made per
/// repository counts once per repository covered.
pub fn cost_with(catalog: &Catalog, times: impl Fn(&crate::catalog::Series) -> usize) -> Cost {
    let mut c = Cost::default();
    for s in &catalog.series {
        let n = times(s);
        match s.kind {
            SeriesKind::Gauge => c.gauges += n,
            SeriesKind::Count => c.counts += n,
            SeriesKind::Distribution => c.distributions += n,
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_configuration_is_judged_on_percentiles_and_tags() {
        let c = TagConfig {
            metric: "m.d".into(),
        };
        let ok = c.create_body();
        assert!(c.problems(&ok).is_empty(), "{:?}", c.problems(&ok));
        let off = json!({"data": {"attributes": {"include_percentiles": false, "exclude_tags_mode": true, "tags": []}}});
        assert_eq!(c.problems(&off).len(), 1);
        let include =
            json!({"data": {"attributes": {"include_percentiles": true, "tags": ["env"]}}});
        assert!(c.problems(&include)[0].contains("include mode"));
        assert_eq!(
            Cost {
                gauges: 3,
                counts: 1,
                distributions: 2
            }
            .total(),
            24
        );
    }
}
