//! What a plan emits: every metric name a run of this config can send, with the tags that
//! identify each series.
//!
//! The dashboard is generated from this list and validated against it, so it can never chart a
//! metric that is not sent or filter on a tag that is never set. The list mirrors the encoding in
//! [`crate::schema::encode`] (names and tags are built by the same [`Schema`] calls); a test runs
//! the bundled config and checks that everything it actually sends is listed here, so the two
//! cannot drift apart unnoticed.
//!
//! A series is described by the tags whose value is known from the config alone (`fixed`: the
//! row's identifying tags, `condition`, `env`, `service`, the row's own tags, `collector`) and
//! the keys whose value depends on the data (`variable`: `status`, `repo`, `unit`, `inferred`,
//! `reason`, …). A few series are only sent sometimes ([`Presence`]): GitHub's rate-limit
//! figure when GitHub sent one, points dropped by the Datadog sink.

use std::collections::{BTreeMap, BTreeSet};

use crate::checks::Status;
use crate::checks::{CheckDef, Encoding};
use crate::collectors::{self, CollectorInstance};
use crate::config::Plan;
use crate::observation::{OPTIONAL_TAGS, SelfMetricChart};
use crate::schema::{Schema, SchemaError};
use crate::sinks::SinkKind;

/// How a series is stored by Datadog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SeriesKind {
    Gauge,
    Count,
    Distribution,
}

/// When a series is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Every run that evaluates its row (or runs its collector). A row's value metrics are
    /// left out while the row is `unknown`; its `check.unknown` and `state.carry_forward`
    /// flags are always sent.
    Always,
    /// Only when the source reported the figure (GitHub's rate-limit headers, dropped points).
    Sometimes,
}

/// What a series is about, for the dashboard's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A row of the matrix: the index into `plan.checks`.
    Row(usize),
    /// One of the tool's own metrics about a collector instance.
    Collector(String),
    /// The tool's own metrics about delivery.
    Delivery,
    /// What `verify` (or `run --verify`) found reading deliveries back.
    Verify,
}

/// One metric name with one set of identifying tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub metric: String,
    pub kind: SeriesKind,
    /// Tags whose value the config decides, already normalised as they are sent.
    pub fixed: BTreeMap<String, String>,
    /// Tag keys whose value comes from the data (and that may be absent).
    pub variable: BTreeSet<String>,
    pub presence: Presence,
    pub origin: Origin,
    /// For a collector's declared self-metric: the dashboard chart it is drawn on.
    pub chart: Option<SelfMetricChart>,
}

impl Series {
    /// Whether the series may carry the tag key at all.
    pub fn has_key(&self, key: &str) -> bool {
        self.fixed.contains_key(key) || self.variable.contains(key)
    }

    /// Whether `key:value` can be one of its tags.
    pub fn may_match(&self, key: &str, value: &str) -> bool {
        match self.fixed.get(key) {
            Some(v) => v == value,
            None => self.variable.contains(key),
        }
    }

    /// The row's identifying tags (`source`, `workflow_category`, …), when fixed.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.fixed.get(key).map(String::as_str)
    }
}

/// Every series a plan can emit, rows first (in config order), then the tool's own metrics.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub series: Vec<Series>,
}

impl Catalog {
    pub fn of(plan: &Plan) -> Result<Catalog, SchemaError> {
        let mut out = Catalog::default();
        for (i, def) in plan.checks.iter().enumerate() {
            let collector = plan.collectors.iter().find(|c| c.name == def.collector);
            out.row_series(&plan.schema, i, def, collector)?;
        }
        for instance in &plan.collectors {
            out.collector_series(&plan.schema, &plan.defaults.source, instance)?;
        }
        if matches!(plan.sink.kind, SinkKind::Auto | SinkKind::Datadog) {
            let m = plan.schema.dropped_points_metric(
                &plan.defaults.source,
                "datadog",
                "expired",
                0,
                0,
            )?;
            out.push(
                &m.name,
                SeriesKind::Gauge,
                &m.tags,
                &["reason"],
                Presence::Sometimes,
                Origin::Delivery,
            );
            // Every run that delivers to Datadog (through the ledger) sends both, zero or not;
            // the local and dry-run sinks have no ledger.
            for m in plan
                .schema
                .ledger_metrics(&plan.defaults.source, "datadog", 0, 0, 0)?
            {
                out.push(
                    &m.name,
                    SeriesKind::Gauge,
                    &m.tags,
                    &[],
                    Presence::Sometimes,
                    Origin::Delivery,
                );
            }
            // Sent only by a verification, which needs the query API's keys.
            for m in plan.schema.verify_metrics(&plan.defaults.source, 0, 0, 0)? {
                out.push(
                    &m.name,
                    SeriesKind::Gauge,
                    &m.tags,
                    &[],
                    Presence::Sometimes,
                    Origin::Verify,
                );
            }
        }
        Ok(out)
    }

    /// One line per series for a person: name, type, the identifying tags (`env` and
    /// `service`, the same on every series, left out), the tags that come from the data, and
    /// `(sometimes)` for a series only sent when its source reports it.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for s in &self.series {
            let kind = match s.kind {
                SeriesKind::Gauge => "gauge",
                SeriesKind::Count => "count",
                SeriesKind::Distribution => "distribution",
            };
            let fixed: Vec<String> = s
                .fixed
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "env" | "service"))
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            let variable: Vec<&str> = s.variable.iter().map(String::as_str).collect();
            out.push_str(&format!(
                "{:<52} {:<12} {{{}}} + {{{}}}{}\n",
                s.metric,
                kind,
                fixed.join(","),
                variable.join(","),
                if s.presence == Presence::Sometimes {
                    " (sometimes)"
                } else {
                    ""
                }
            ));
        }
        out.push_str(&format!(
            "{} series of {} metrics\n",
            self.series.len(),
            self.metric_names().len()
        ));
        out
    }

    /// The distinct metric names, in first-seen order.
    pub fn metric_names(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.series
            .iter()
            .map(|s| s.metric.as_str())
            .filter(|m| seen.insert(*m))
            .collect()
    }

    /// Series of one metric name.
    pub fn of_metric<'a>(&'a self, metric: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| s.metric == metric)
    }

    fn push(
        &mut self,
        metric: &str,
        kind: SeriesKind,
        tags: &[String],
        variable: &[&str],
        presence: Presence,
        origin: Origin,
    ) {
        let mut fixed = BTreeMap::new();
        let mut vars: BTreeSet<String> = variable.iter().map(|s| s.to_string()).collect();
        for t in tags {
            let (k, v) = t.split_once(':').unwrap_or((t.as_str(), ""));
            fixed.insert(k.to_string(), v.to_string());
        }
        // The status tag changes with the data; so do tags listed as variable.
        for key in vars.iter().chain(std::iter::once(&"status".to_string())) {
            fixed.remove(key);
        }
        vars.insert("status".into());
        self.series.push(Series {
            metric: metric.to_string(),
            kind,
            fixed,
            variable: vars,
            presence,
            origin,
            chart: None,
        });
    }

    /// The series of one row, as [`Schema::row_metrics`] builds them.
    fn row_series(
        &mut self,
        schema: &Schema,
        index: usize,
        def: &CheckDef,
        collector: Option<&CollectorInstance>,
    ) -> Result<(), SchemaError> {
        let pipeline = def.row.pipeline();
        let condition = def.condition.tag_value();
        // Tags with a value the config decides: the row's own tags, the optional tags its
        // `match` requires of the observation, and its unit.
        let mut fixed: BTreeMap<String, String> = def
            .matches
            .iter()
            .filter(|(k, _)| OPTIONAL_TAGS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        fixed.extend(def.tags.clone());
        if let Some(u) = &def.unit {
            fixed.insert("unit".into(), u.clone());
        }
        // Tags the observation may bring: declared by the collector kind; `unit` when the row
        // does not set one; `inferred` on a carried-forward row.
        let mut variable: Vec<&str> = collector
            .and_then(|c| collectors::find_kind(c.kind))
            .map(|k| k.tags.to_vec())
            .unwrap_or_default();
        variable.retain(|k| !fixed.contains_key(*k));
        if def.unit.is_none() {
            variable.push("unit");
        }
        let origin = Origin::Row(index);
        let tags_for =
            |name: &str, status: Status| schema.tags(name, &def.row, &condition, status, &fixed);

        let mut known_vars = variable.clone();
        known_vars.push("inferred");
        // `check.unknown` is 1 with a `reason` for an unknown row (which usually has no
        // observation, so no observation tags) and 0 with the row's tags otherwise.
        let unknown = schema.unknown_metric(&pipeline)?;
        let mut unknown_vars = known_vars.clone();
        unknown_vars.push("reason");
        self.push(
            &unknown,
            SeriesKind::Gauge,
            &tags_for(&unknown, Status::Unknown)?,
            &unknown_vars,
            Presence::Always,
            origin.clone(),
        );

        let value = schema.metric_name(&pipeline, &def.metric)?;
        let value_tags = tags_for(&value, Status::Pass)?;
        let mut value_series = |name: &str, kind: SeriesKind| {
            self.push(
                name,
                kind,
                &value_tags,
                &known_vars,
                Presence::Always,
                origin.clone(),
            )
        };
        match def.encoding {
            Encoding::Status | Encoding::Gauge => value_series(&value, SeriesKind::Gauge),
            Encoding::Count => {
                let level = schema.metric_name(
                    &pipeline,
                    &crate::schema::encode::window_metric(&def.metric),
                )?;
                value_series(&level, SeriesKind::Gauge);
                value_series(&value, SeriesKind::Count);
            }
            Encoding::Distribution => {
                if def.percentiles {
                    for suffix in ["p50", "p90"] {
                        let name =
                            schema.metric_name(&pipeline, &format!("{}.{suffix}", def.metric))?;
                        value_series(&name, SeriesKind::Gauge);
                    }
                }
                value_series(&value, SeriesKind::Distribution);
            }
        }
        let status = schema.status_metric(&pipeline)?;
        self.push(
            &status,
            SeriesKind::Gauge,
            &tags_for(&status, Status::Pass)?,
            &known_vars,
            Presence::Always,
            origin.clone(),
        );
        let carried = schema.carry_forward_metric()?;
        self.push(
            &carried,
            SeriesKind::Gauge,
            &tags_for(&carried, Status::Pass)?,
            &known_vars,
            Presence::Always,
            origin,
        );
        Ok(())
    }

    /// A collector instance's own metrics: run time, success and series count for every
    /// collector, and what its kind declares (with the chart each is drawn on).
    fn collector_series(
        &mut self,
        schema: &Schema,
        source: &str,
        instance: &CollectorInstance,
    ) -> Result<(), SchemaError> {
        let origin = Origin::Collector(instance.name.clone());
        let stats = crate::schema::encode::CollectorStats {
            collector: &instance.name,
            duration_secs: 0.0,
            ok: true,
            observations: 0,
            error_type: None,
        };
        for m in schema.collector_metrics(source, &stats, 0)? {
            self.push(
                &m.name,
                SeriesKind::Gauge,
                &m.tags,
                &["error_type"],
                Presence::Always,
                origin.clone(),
            );
        }
        let Some(kind) = collectors::find_kind(instance.kind) else {
            return Ok(());
        };
        for decl in kind.self_metrics {
            let declared = [decl.value(0.0)];
            for m in schema.collector_extra_metrics(source, &instance.name, &declared, 0)? {
                let presence = if decl.sometimes {
                    Presence::Sometimes
                } else {
                    Presence::Always
                };
                self.push(
                    &m.name,
                    SeriesKind::Gauge,
                    &m.tags,
                    &[],
                    presence,
                    origin.clone(),
                );
                if let Some(pushed) = self.series.last_mut() {
                    pushed.chart = decl.chart;
                }
            }
        }
        Ok(())
    }
}
