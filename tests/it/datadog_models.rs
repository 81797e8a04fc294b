//! Every generated dashboard, monitor and metric tag configuration deserialises in Datadog's
//! official client models (the `datadog-api-client` Python package, installed by scripts/test)
//! with no field the models do not know.
//!
//! The check is `support/datadog_models.py`: it converts each body with the client's own
//! `validate_and_convert_types` (types, enums, required fields, oneOf members) and then walks
//! the result, because the client keeps unknown keys quietly as "additional properties".

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::repo_root;

/// Write each (model, body) to `dir` and run the model check on all of them: (ok, output).
fn check(dir: &Path, bodies: &[(&str, Value)]) -> (bool, String) {
    let mut args = Vec::new();
    for (i, (model, body)) in bodies.iter().enumerate() {
        let path = dir.join(format!("{i:03}-{model}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(body).unwrap()).unwrap();
        args.push(format!("{model}={}", path.display()));
    }
    let out = Command::new("python3")
        .arg(repo_root().join("tests/it/support/datadog_models.py"))
        .args(&args)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named 'datadog_api_client'"),
        "the datadog-api-client Python package is missing: run scripts/test, or \
         `python3 -m pip install datadog-api-client`"
    );
    (out.status.success(), text)
}

fn bodies(config: &Path) -> Vec<(&'static str, Value)> {
    let plan = infra_health::config::load(config).unwrap();
    let desired = infra_health::datadog_side::desired(
        &plan,
        "https://app.datadoghq.com/dashboard/abc-def-ghi/infra-health",
    )
    .unwrap();
    let mut out = vec![("dashboard", desired.dashboard)];
    out.extend(desired.monitors.into_iter().map(|m| ("monitor", m.body)));
    for c in desired.tag_configs {
        out.push(("tag_config_create", c.create_body()));
        out.push(("tag_config_update", c.update_body()));
    }
    out
}

#[test]
fn everything_generated_fits_datadogs_official_models() {
    let dir = tempfile::tempdir().unwrap();
    for config in ["config/infra-health.toml", "config/production.toml"] {
        let all = bodies(&repo_root().join(config));
        let monitors = all.iter().filter(|(m, _)| *m == "monitor").count();
        assert!(monitors >= 20, "{config}: {monitors} monitors");
        assert!(
            all.iter().any(|(m, _)| *m == "tag_config_create"),
            "{config}"
        );
        let (ok, out) = check(dir.path(), &all);
        assert!(ok, "{config}:\n{out}");
        assert!(
            out.contains(&format!("checked {} bodies, 0 problems", all.len())),
            "{out}"
        );
    }
}

#[test]
fn the_model_check_finds_an_unknown_field_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let all = bodies(&repo_root().join("config/infra-health.toml"));
    let mut dashboard = all[0].1.clone();
    dashboard["widgets"][1]["definition"]["widgets"][0]["definition"]["colour"] = json!("red");
    let mut monitor = all[1].1.clone();
    monitor["options"]["notify_nodata"] = json!(true);
    let (ok, out) = check(
        dir.path(),
        &[("dashboard", dashboard), ("monitor", monitor)],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("notify_nodata: not a field of MonitorOptions"),
        "{out}"
    );
    assert!(out.contains("colour"), "{out}");
}
