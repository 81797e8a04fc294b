//! The Datadog health dashboard, generated from the same config that defines the rows.
//!
//! The seed planned a dashboard built by hand in the Datadog UI "once first metrics land", to
//! be codified later. Built by hand, a dashboard drifts from the config: a renamed check or a
//! new row leaves a widget querying a metric nobody sends, and nothing says so. Here the
//! dashboard is a function of the plan: [`crate::catalog`] lists every series the config emits,
//! [`build`] lays widgets out over exactly those series, and [`validate`] reads the resulting
//! JSON back and refuses it if a query names anything the config does not emit, or if an
//! emitted series is shown by no widget.
//!
//! From there it goes out as JSON (`dashboard render`), as a Terraform
//! `datadog_dashboard_json` resource ([`terraform`]), or straight to the Dashboards API
//! (`dashboard push`, an idempotent upsert; `dashboard diff` shows what a push would change),
//! see [`api`].

pub mod api;
pub mod build;
pub mod diff;
pub mod query;
pub mod terraform;
pub mod validate;

use serde_json::Value;
use thiserror::Error;

use crate::catalog::Catalog;
use crate::config::Plan;
use crate::schema::SchemaError;

#[derive(Debug, Error)]
pub enum DashboardError {
    #[error("cannot list the metrics this config emits: {0}")]
    Catalog(#[from] SchemaError),
    #[error(
        "the generated dashboard does not match the config ({} problem{}):\n  {}",
        .0.len(),
        if .0.len() == 1 { "" } else { "s" },
        .0.join("\n  ")
    )]
    Invalid(Vec<String>),
}

/// The dashboard of a plan, checked against what the plan emits.
pub fn render(plan: &Plan) -> Result<Value, DashboardError> {
    let catalog = Catalog::of(plan)?;
    let dashboard = build::dashboard(plan, &catalog);
    let problems = validate::problems(&dashboard, &catalog);
    if problems.is_empty() {
        Ok(dashboard)
    } else {
        Err(DashboardError::Invalid(problems))
    }
}

/// The dashboard as the pretty JSON that `render` prints and Terraform embeds.
pub fn to_json(dashboard: &Value) -> String {
    let mut text = serde_json::to_string_pretty(dashboard).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// How many widgets a dashboard holds, counting those inside groups.
pub fn widget_count(dashboard: &Value) -> usize {
    fn count(widgets: &Value) -> usize {
        widgets.as_array().map_or(0, |ws| {
            ws.iter()
                .map(|w| 1 + count(&w["definition"]["widgets"]))
                .sum()
        })
    }
    count(&dashboard["widgets"])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// One row of a generated config: (category, workflow, task, check, encoding, metric,
    /// source, label, percentiles).
    type Row = (usize, usize, usize, usize, usize, usize, bool, bool, bool);

    fn config(rows: &[Row]) -> String {
        let mut text = String::from(
            "[defaults]\nenv = \"prod\"\n\n[[collector]]\nname = \"obs\"\ntype = \"file\"\npath = \"obs.json\"\n\n\
             [[collector]]\nname = \"gh\"\ntype = \"github_issues\"\nrepo = \"acme/widgets\"\nlabels = [\"bug\"]\n\n",
        );
        let mut seen = std::collections::BTreeSet::new();
        for &(cat, wf, task, check, enc, metric, stable, label, pct) in rows {
            let category = ["ci", "code", "training", "evaluation", "ops"][cat];
            let (wf, task, check) = (format!("w{wf}"), format!("t{task}"), format!("c{check}"));
            if !seen.insert((category, wf.clone(), task.clone(), check.clone())) {
                continue;
            }
            let encoding = ["status", "gauge", "count", "distribution"][enc];
            let condition = if encoding == "status" {
                "==success"
            } else {
                "<5"
            };
            text.push_str(&format!(
                "[[check]]\nworkflow_category = \"{category}\"\nworkflow_name = \"{wf}\"\n\
                 task = \"{task}\"\ncheck = \"{check}\"\ncollector = \"{}\"\nsignal = \"s\"\n\
                 condition = \"{condition}\"\nencoding = \"{encoding}\"\nmetric = \"m.{}_{encoding}\"\n",
                if label { "gh" } else { "obs" },
                ["a", "b", "c"][metric],
            ));
            if stable {
                text.push_str("source = \"stable_suite\"\n");
            }
            if label {
                text.push_str("tags = { label = \"bug\" }\n");
            }
            if encoding == "distribution" && pct {
                text.push_str("percentiles = true\n");
            }
            text.push('\n');
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever rows a config has, the generated dashboard shows every series it emits and
        /// queries nothing else: `render` never returns a validation error.
        #[test]
        fn any_valid_config_renders_a_valid_dashboard(
            rows in prop::collection::vec(
                (0..5usize, 0..2usize, 0..2usize, 0..2usize, 0..4usize, 0..3usize,
                 any::<bool>(), any::<bool>(), any::<bool>()),
                1..14,
            )
        ) {
            let text = config(&rows);
            let plan = match crate::config::parse(std::path::Path::new("/tmp/generated.toml"), &text) {
                Ok(p) => p,
                Err(e) => panic!("the generator wrote an invalid config:\n{text}\n{e}"),
            };
            let rendered = super::render(&plan);
            prop_assert!(rendered.is_ok(), "{}\n{}", text, rendered.err().map(|e| e.to_string()).unwrap_or_default());
        }
    }
}
