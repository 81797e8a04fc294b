//! The documentation stays in step with the code: the JSON Schema's fields are the parser's, the
//! bundled example artifacts are valid, and the probe outcome table lists exactly the outcomes.

use infra_health::collectors::http_probe::Outcome;
use infra_health::stable_suite::{self, Format};
use serde_json::Value;

use crate::support::repo_root;

#[test]
fn json_schema_matches_the_artifact_model() {
    let text = std::fs::read_to_string(repo_root().join("docs/stable-suite-artifact.schema.json"))
        .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert!(
        schema["$schema"]
            .as_str()
            .unwrap()
            .contains("json-schema.org")
    );
    let props: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // A full artifact written by the model has exactly the schema's properties (but `$schema`).
    let mut a = stable_suite::parse(
        &std::fs::read(repo_root().join("examples/stable-suite/2026-11-20/multigpu_arena.json"))
            .unwrap(),
        Format::Json,
        "example",
    )
    .unwrap();
    a.recipe = Some("r".into());
    a.runner = Some("r".into());
    a.exit_code = Some(0);
    let written: Value = serde_json::from_slice(&stable_suite::write_json(&a).unwrap()).unwrap();
    let mut keys: Vec<&str> = written
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.push("$schema");
    keys.sort();
    let mut props_sorted = props.clone();
    props_sorted.sort();
    assert_eq!(keys, props_sorted);
    // Every required field, when removed, is reported by name.
    for field in schema["required"].as_array().unwrap() {
        let field = field.as_str().unwrap();
        let mut doc = written.clone();
        doc.as_object_mut().unwrap().remove(field);
        let err = stable_suite::parse(doc.to_string().as_bytes(), Format::Json, "x").unwrap_err();
        assert_eq!(err.field.as_deref(), Some(field));
    }
    // And a document with `$schema` pointing at the schema is accepted.
    let mut doc = written.clone();
    doc["$schema"] = Value::String("../docs/stable-suite-artifact.schema.json".into());
    stable_suite::parse(doc.to_string().as_bytes(), Format::Json, "x").unwrap();
}

#[test]
fn bundled_examples_are_valid_artifacts_in_both_formats() {
    let dir = repo_root().join("examples/stable-suite");
    let mut formats = Vec::new();
    for day in std::fs::read_dir(&dir).unwrap() {
        for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let name = path.display().to_string();
            let format = Format::of(&name).unwrap();
            stable_suite::parse(&std::fs::read(&path).unwrap(), format, &name).unwrap();
            formats.push(format);
        }
    }
    assert!(formats.contains(&Format::Json) && formats.contains(&Format::Parquet));
}

#[test]
fn the_outcome_table_lists_exactly_the_outcomes() {
    let doc = std::fs::read_to_string(repo_root().join("docs/eval-probes.md")).unwrap();
    let section = doc
        .split("### Outcomes")
        .nth(1)
        .unwrap()
        .split("###")
        .next()
        .unwrap();
    let documented: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    let code: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(documented, code);
    let module = std::fs::read_to_string(repo_root().join("src/collectors/http_probe.rs")).unwrap();
    for o in code {
        assert!(
            module.contains(&format!("//! | `{o}` |")),
            "module docs miss {o}"
        );
    }
}
