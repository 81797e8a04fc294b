//! Checks on a dashboard document before it is printed or sent.
//!
//! Two kinds of check, both on the JSON itself:
//! - the shape Datadog requires: `title`, `layout_type` and `widgets`; known widget types;
//!   conditional formats with a valid `comparator`, numeric `value` and a known `palette`;
//!   `fill(last, N)` with N at most 600 seconds;
//! - agreement with the config: every query names a metric the [`Catalog`] lists with tags its
//!   series can carry, every template variable it uses exists, and every series the config
//!   emits is shown by at least one query.
//!
//! Each problem names the widget by title and by its path in the JSON
//! (`widgets[1].definition.widgets[0]`), so it can be found in the rendered file.

use std::collections::BTreeMap;

use serde_json::Value;

use super::query::{Function, MAX_FILL_SECONDS, MetricQuery};
use crate::catalog::{Catalog, Series, SeriesKind};

/// `conditional_formats` comparators Datadog accepts.
pub const COMPARATORS: &[&str] = &[">", ">=", "<", "<=", "="];

/// `conditional_formats` palettes Datadog accepts.
pub const PALETTES: &[&str] = &[
    "blue",
    "custom_bg",
    "custom_image",
    "custom_text",
    "gray_on_white",
    "grey",
    "green",
    "orange",
    "red",
    "red_on_white",
    "white_on_gray",
    "white_on_green",
    "green_on_white",
    "white_on_red",
    "white_on_yellow",
    "yellow_on_white",
    "black_on_light_yellow",
    "black_on_light_green",
    "black_on_light_red",
];

/// Widget types the generator writes (and that Datadog knows).
pub const WIDGET_TYPES: &[&str] = &[
    "group",
    "note",
    "query_table",
    "timeseries",
    "query_value",
    "toplist",
    "distribution",
    "check_status",
    "free_text",
    "heatmap",
    "manage_status",
];

/// Everything wrong with a dashboard; empty when it is fine.
pub fn problems(dashboard: &Value, catalog: &Catalog) -> Vec<String> {
    let mut v = Validator {
        catalog,
        variables: BTreeMap::new(),
        shown: vec![false; catalog.series.len()],
        problems: Vec::new(),
    };
    v.top(dashboard);
    for (series, shown) in catalog.series.iter().zip(&v.shown) {
        if !shown {
            v.problems.push(format!(
                "metric {} ({}) is emitted but no widget shows it",
                series.metric,
                describe(series)
            ));
        }
    }
    v.problems
}

fn describe(s: &Series) -> String {
    [
        "workflow_category",
        "workflow_name",
        "task",
        "check",
        "collector",
    ]
    .iter()
    .filter_map(|k| s.fixed.get(*k).map(|v| format!("{k}:{v}")))
    .collect::<Vec<_>>()
    .join(",")
}

struct Validator<'a> {
    catalog: &'a Catalog,
    /// Template variable name → the tag key it filters.
    variables: BTreeMap<String, String>,
    /// Which catalog series some query shows.
    shown: Vec<bool>,
    problems: Vec<String>,
}

impl Validator<'_> {
    fn top(&mut self, d: &Value) {
        let Some(obj) = d.as_object() else {
            self.problems
                .push("the dashboard is not a JSON object".into());
            return;
        };
        match obj.get("title").and_then(Value::as_str) {
            Some(t) if !t.trim().is_empty() => {}
            _ => self.problems.push("`title` is missing or empty".into()),
        }
        match obj.get("layout_type").and_then(Value::as_str) {
            Some("ordered" | "free") => {}
            other => self.problems.push(format!(
                "`layout_type` must be \"ordered\" or \"free\", not {other:?}"
            )),
        }
        for (i, tv) in obj
            .get("template_variables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            match tv.get("name").and_then(Value::as_str) {
                Some(name) => {
                    let prefix = tv.get("prefix").and_then(Value::as_str).unwrap_or(name);
                    self.variables.insert(name.to_string(), prefix.to_string());
                }
                None => self
                    .problems
                    .push(format!("template_variables[{i}] has no `name`")),
            }
        }
        match obj.get("widgets").and_then(Value::as_array) {
            Some(widgets) => self.widgets(widgets, "widgets"),
            None => self
                .problems
                .push("`widgets` is missing or not a list".into()),
        }
    }

    fn widgets(&mut self, widgets: &[Value], path: &str) {
        for (i, w) in widgets.iter().enumerate() {
            self.widget(w, &format!("{path}[{i}]"));
        }
    }

    fn widget(&mut self, w: &Value, path: &str) {
        let Some(def) = w.get("definition") else {
            self.problems
                .push(format!("{path}: a widget needs a `definition`"));
            return;
        };
        let path = format!("{path}.definition");
        let title = def
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("(untitled)")
            .to_string();
        let at = format!("widget {title:?} ({path})");
        match def.get("type").and_then(Value::as_str) {
            Some("group") => match def.get("widgets").and_then(Value::as_array) {
                Some(inner) => self.widgets(inner, &format!("{path}.widgets")),
                None => self.problems.push(format!("{at}: a group needs `widgets`")),
            },
            // A monitor summary's query searches monitors, not metrics.
            Some("manage_status") => {}
            Some(t) if WIDGET_TYPES.contains(&t) => self.contents(def, &at),
            Some(t) => self
                .problems
                .push(format!("{at}: unknown widget type {t:?}")),
            None => self.problems.push(format!("{at}: `type` is missing")),
        }
    }

    /// Conditional formats and queries anywhere under a (non-group) widget definition.
    fn contents(&mut self, v: &Value, at: &str) {
        match v {
            Value::Object(map) => {
                if let (Some(Value::Array(queries)), Some(Value::Array(formulas))) =
                    (map.get("queries"), map.get("formulas"))
                {
                    self.formulas(queries, formulas, at);
                }
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("conditional_formats", Value::Array(formats)) => {
                            for f in formats {
                                self.format(f, at);
                            }
                        }
                        ("query" | "q", Value::String(q)) => self.query(q, at),
                        _ => self.contents(value, at),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.contents(item, at);
                }
            }
            _ => {}
        }
    }

    /// Every name a formula uses is one of its request's queries (`status`, `a + b`); a name
    /// followed by `(` is a function.
    fn formulas(&mut self, queries: &[Value], formulas: &[Value], at: &str) {
        let names: Vec<&str> = queries
            .iter()
            .filter_map(|q| q.get("name").and_then(Value::as_str))
            .collect();
        for f in formulas {
            let Some(text) = f.get("formula").and_then(Value::as_str) else {
                self.problems
                    .push(format!("{at}: a formula has no `formula` text"));
                continue;
            };
            let mut rest = text;
            while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
                let tail = &rest[start..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let (word, after) = tail.split_at(end);
                if !after.trim_start().starts_with('(') && !names.contains(&word) {
                    self.problems.push(format!(
                        "{at}: formula {text:?} uses {word:?}, which is not one of its queries ({})",
                        names.join(", ")
                    ));
                }
                rest = after;
            }
        }
    }

    fn format(&mut self, f: &Value, at: &str) {
        let comparator = f.get("comparator").and_then(Value::as_str);
        if !comparator.is_some_and(|c| COMPARATORS.contains(&c)) {
            self.problems.push(format!(
                "{at}: conditional format comparator {comparator:?} is not one of {}",
                COMPARATORS.join(" ")
            ));
        }
        if !f.get("value").is_some_and(Value::is_number) {
            self.problems
                .push(format!("{at}: conditional format `value` must be a number"));
        }
        let palette = f.get("palette").and_then(Value::as_str);
        if !palette.is_some_and(|p| PALETTES.contains(&p)) {
            self.problems.push(format!(
                "{at}: conditional format palette {palette:?} is not one Datadog knows ({})",
                PALETTES.join(", ")
            ));
        }
    }

    fn query(&mut self, text: &str, at: &str) {
        let q = match MetricQuery::parse(text) {
            Ok(q) => q,
            Err(e) => {
                self.problems
                    .push(format!("{at}: cannot read query {text:?}: {e}"));
                return;
            }
        };
        for f in &q.functions {
            if let Function::FillLast(n) = f
                && *n > MAX_FILL_SECONDS
            {
                self.problems.push(format!(
                    "{at}: query {text:?} uses fill(last, {n}); Datadog accepts at most {MAX_FILL_SECONDS} seconds (carry-forward is emitted instead)"
                ));
            }
        }
        let mut keys: Vec<(String, Option<String>)> = q
            .filters
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        for var in &q.variables {
            match self.variables.get(var) {
                Some(prefix) => keys.push((prefix.clone(), None)),
                None => self.problems.push(format!(
                    "{at}: query {text:?} uses ${var}, which is not a template variable"
                )),
            }
        }
        keys.extend(q.group_by.iter().map(|k| (k.clone(), None)));

        let named: Vec<usize> = (0..self.catalog.series.len())
            .filter(|i| self.catalog.series[*i].metric == q.metric)
            .collect();
        if named.is_empty() {
            self.problems.push(format!(
                "{at}: query {text:?} names metric {}, which the config does not emit",
                q.metric
            ));
            return;
        }
        let percentile = q.aggregator.starts_with('p');
        let mut matched = 0;
        for i in named {
            let s = &self.catalog.series[i];
            let fits = keys.iter().all(|(k, v)| match v {
                Some(v) => s.may_match(k, v),
                None => s.has_key(k),
            });
            if fits {
                matched += 1;
                self.shown[i] = true;
                if percentile && s.kind != SeriesKind::Distribution {
                    self.problems.push(format!(
                        "{at}: query {text:?} takes a percentile of {}, which is not a distribution",
                        q.metric
                    ));
                }
            }
        }
        if matched == 0 {
            let missing: Vec<String> = keys
                .iter()
                .filter(|(k, v)| {
                    !self.catalog.of_metric(&q.metric).any(|s| match v {
                        Some(v) => s.may_match(k, v),
                        None => s.has_key(k),
                    })
                })
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}:{v}"),
                    None => k.clone(),
                })
                .collect();
            self.problems.push(format!(
                "{at}: query {text:?} matches no series the config emits{}",
                if missing.is_empty() {
                    " (no single series has all of its tags)".to_string()
                } else {
                    format!(": no {} series has {}", q.metric, missing.join(", "))
                }
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Plan;
    use serde_json::json;

    fn bundled() -> (Plan, Catalog, Value) {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/infra-health.toml");
        let plan = crate::config::load(&path).expect("the bundled config is valid");
        let catalog = Catalog::of(&plan).expect("catalog");
        let dashboard = super::super::build::dashboard(&plan, &catalog);
        (plan, catalog, dashboard)
    }

    /// The first widget of the CI group: the CI health matrix.
    fn ci_matrix(d: &mut Value) -> &mut Value {
        &mut d["widgets"][1]["definition"]["widgets"][0]["definition"]
    }

    #[test]
    fn the_bundled_dashboard_has_no_problem() {
        let (_, catalog, dashboard) = bundled();
        assert_eq!(problems(&dashboard, &catalog), Vec::<String>::new());
    }

    #[test]
    fn a_query_for_a_metric_or_tag_the_config_does_not_emit_names_the_widget() {
        let (_, catalog, mut d) = bundled();
        let q = &mut ci_matrix(&mut d)["requests"][0]["queries"][0]["query"];
        *q = json!(
            q.as_str()
                .unwrap()
                .replace("workflow_category:ci", "workflow_category:cii")
        );
        let p = problems(&d, &catalog);
        assert!(
            p.iter().any(|m| m
                .contains("widget \"CI health\" (widgets[1].definition.widgets[0].definition)")
                && m.contains("no metta.infra.cron.check.status series has workflow_category:cii")),
            "{p:#?}"
        );

        let (_, catalog, mut d) = bundled();
        let q = &mut ci_matrix(&mut d)["requests"][0]["queries"][0]["query"];
        *q = json!(q.as_str().unwrap().replace("check.status", "check.statuss"));
        let p = problems(&d, &catalog);
        assert!(
            p.iter().any(|m| m.contains(
                "names metric metta.infra.cron.check.statuss, which the config does not emit"
            )),
            "{p:#?}"
        );
        // …and the real status metric of the CI rows is now shown by no widget.
        assert!(p.iter().any(|m| m.starts_with("metric metta.infra.cron.check.status (workflow_category:ci,workflow_name:latest_state_of_main")), "{p:#?}");
    }

    #[test]
    fn fill_above_600_seconds_palettes_and_comparators_are_checked() {
        let (_, catalog, mut d) = bundled();
        let chart = &mut d["widgets"][1]["definition"]["widgets"][1]["definition"];
        let q = &mut chart["requests"][0]["queries"][0]["query"];
        *q = json!(
            q.as_str()
                .unwrap()
                .replace("fill(last, 600)", "fill(last, 900)")
        );
        let formats = &mut ci_matrix(&mut d)["requests"][0]["formulas"][0]["conditional_formats"];
        formats[0]["palette"] = json!("black_on_yellow");
        formats[1]["comparator"] = json!("==");
        formats[2]["value"] = json!("zero");
        let p = problems(&d, &catalog);
        assert!(
            p.iter()
                .any(|m| m.contains("fill(last, 900)") && m.contains("at most 600")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("palette Some(\"black_on_yellow\")")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|m| m.contains("comparator Some(\"==\")")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|m| m.contains("`value` must be a number")),
            "{p:#?}"
        );
    }

    #[test]
    fn required_fields_unknown_types_and_variables_are_checked() {
        let (_, catalog, mut d) = bundled();
        d.as_object_mut().unwrap().remove("title");
        d["layout_type"] = json!("grid");
        d["widgets"][0]["definition"]["type"] = json!("sparkline");
        let q = &mut ci_matrix(&mut d)["requests"][0]["queries"][0]["query"];
        *q = json!(q.as_str().unwrap().replace("$repo", "$team"));
        let p = problems(&d, &catalog);
        for needle in [
            "`title` is missing",
            "`layout_type` must be",
            "unknown widget type \"sparkline\"",
            "$team, which is not a template variable",
        ] {
            assert!(p.iter().any(|m| m.contains(needle)), "{needle}: {p:#?}");
        }
        let p = problems(&json!({"title": "t", "layout_type": "ordered"}), &catalog);
        assert!(
            p.iter().any(|m| m.contains("`widgets` is missing")),
            "{p:#?}"
        );
    }

    #[test]
    fn a_formula_must_use_its_own_queries() {
        let (_, catalog, mut d) = bundled();
        let formulas = &mut ci_matrix(&mut d)["requests"][0]["formulas"];
        formulas[1]["formula"] = json!("abs(inferred) + statuss");
        let p = problems(&d, &catalog);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].contains("formula \"abs(inferred) + statuss\" uses \"statuss\", which is not one of its queries (status, inferred, unknown)"),
            "{p:#?}"
        );
    }

    #[test]
    fn a_percentile_of_a_gauge_is_refused() {
        let (_, catalog, mut d) = bundled();
        let chart = &mut d["widgets"][1]["definition"]["widgets"][2]["definition"];
        let q = &mut chart["requests"][0]["queries"][0]["query"];
        *q = json!(q.as_str().unwrap().replacen("max:", "p90:", 1));
        let p = problems(&d, &catalog);
        assert!(p.iter().any(|m| m.contains("not a distribution")), "{p:#?}");
    }
}
