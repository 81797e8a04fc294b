//! The whole Datadog side as Terraform: the dashboard (`datadog_dashboard_json`), every monitor
//! (`datadog_monitor`) and every distribution's tag configuration
//! (`datadog_metric_tag_configuration`), for teams that manage Datadog with Terraform rather
//! than with `datadog apply`.
//!
//! Strings are written as JSON string literals, which HCL reads the same (`\"`, `\\`, `\n`,
//! `\uXXXX`), with Terraform's `${` and `%{` escaped. The monitors' dashboard link is the
//! dashboard resource's own `url` attribute, unless `[datadog] dashboard_url` is set.

use serde_json::Value;

use super::metric_config::TagConfig;
use super::monitors::MonitorSpec;

/// Where the monitors' messages put the dashboard link, replaced by a Terraform reference.
pub const LINK_MARKER: &str = "@@infra-health-dashboard-url@@";

/// A Terraform string literal.
fn string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".into())
        .replace("${", "$${")
        .replace("%{", "%%{")
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| string(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A resource name from a free text key: letters, digits and `_`.
fn resource_name(prefix: &str, key: &str) -> String {
    let mut out = format!("{prefix}_");
    for c in key.chars() {
        out.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        });
    }
    out
}

fn number(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => string(other.as_str().unwrap_or("")),
    }
}

/// One `datadog_monitor` resource.
pub fn monitor(spec: &MonitorSpec, dashboard_resource: &str) -> String {
    let b = &spec.body;
    let o = &b["options"];
    let tags: Vec<String> = b["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let message = string(b["message"].as_str().unwrap_or("")).replace(
        LINK_MARKER,
        &format!("${{datadog_dashboard_json.{dashboard_resource}.url}}"),
    );
    let mut out = format!(
        "resource \"datadog_monitor\" \"{}\" {{\n  name     = {}\n  type     = {}\n  query    = {}\n  message  = {}\n  tags     = {}\n  priority = {}\n\n  require_full_window = {}\n  evaluation_delay    = {}\n  notify_no_data      = {}\n  include_tags        = {}\n  notify_audit        = {}\n",
        resource_name("monitor", &spec.key),
        string(b["name"].as_str().unwrap_or("")),
        string(b["type"].as_str().unwrap_or("")),
        string(b["query"].as_str().unwrap_or("")),
        message,
        list(&tags),
        number(&b["priority"]),
        number(&o["require_full_window"]),
        number(&o["evaluation_delay"]),
        number(&o["notify_no_data"]),
        number(&o["include_tags"]),
        number(&o["notify_audit"]),
    );
    if let Some(n) = o.get("no_data_timeframe") {
        out.push_str(&format!("  no_data_timeframe   = {}\n", number(n)));
    }
    out.push_str("\n  monitor_thresholds {\n");
    for level in ["critical", "warning"] {
        if let Some(v) = o["thresholds"].get(level) {
            out.push_str(&format!("    {level} = {}\n", number(v)));
        }
    }
    out.push_str("  }\n}\n");
    out
}

/// One `datadog_metric_tag_configuration` resource.
pub fn tag_config(c: &TagConfig) -> String {
    format!(
        "resource \"datadog_metric_tag_configuration\" \"{}\" {{\n  metric_name         = {}\n  metric_type         = \"distribution\"\n  tags                = []\n  include_percentiles = true\n  exclude_tags_mode   = true\n}}\n",
        resource_name("percentiles", &c.metric),
        string(&c.metric),
    )
}

/// The whole file: the dashboard resource, then the tag configurations, then the monitors.
pub fn file(
    dashboard_tf: &str,
    configs: &[TagConfig],
    monitors: &[MonitorSpec],
    name: &str,
) -> String {
    let mut out = dashboard_tf.to_string();
    for c in configs {
        out.push('\n');
        out.push_str(&tag_config(c));
    }
    for m in monitors {
        out.push('\n');
        out.push_str(&monitor(m, name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_escaped_and_the_link_is_a_reference() {
        let spec = MonitorSpec {
            key: "row-a.b".into(),
            body: json!({"name": "n \"q\"", "type": "query alert", "query": "max(last_5m):max:m{*} < 1",
                "message": format!("{{{{value}}}} ${{x}} {LINK_MARKER}"), "tags": ["a:b"], "priority": 2,
                "options": {"thresholds": {"critical": 1}, "require_full_window": false,
                    "evaluation_delay": 300, "notify_no_data": true, "no_data_timeframe": 20,
                    "include_tags": true, "notify_audit": false}}),
        };
        let tf = monitor(&spec, "infra_health");
        assert!(
            tf.contains("resource \"datadog_monitor\" \"monitor_row_a_b\""),
            "{tf}"
        );
        assert!(tf.contains("\"n \\\"q\\\"\""), "{tf}");
        assert!(
            tf.contains("{{value}} $${x} ${datadog_dashboard_json.infra_health.url}"),
            "{tf}"
        );
        assert!(
            tf.contains("critical = 1") && tf.contains("no_data_timeframe   = 20"),
            "{tf}"
        );
    }
}
