//! What a push would change: the generated dashboard against the live one, for a person.
//!
//! Only what infra-health writes is compared. Datadog adds fields of its own to a stored
//! dashboard (`id`, `url`, `created_at`, `author_handle`, an `id` on every widget, defaults it
//! fills in); a key the generated dashboard does not set is not a change. A key the live
//! dashboard lacks counts as equal to an empty value, and numbers compare by value (`1` and
//! `1.0` are the same), so a dashboard read back from Datadog diffs clean against itself.

use std::fmt;

use serde_json::Value;

/// One difference, at a JSON path such as `widgets[1].definition.title`.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// In the generated dashboard, not in the live one.
    Added { path: String, value: Value },
    /// In the live dashboard, not in the generated one (list items only).
    Removed { path: String, value: Value },
    Changed {
        path: String,
        live: Value,
        generated: Value,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { path, value } => write!(f, "+ {path}: {}", summary(value)),
            Change::Removed { path, value } => write!(f, "- {path}: {}", summary(value)),
            Change::Changed {
                path,
                live,
                generated,
            } => write!(f, "~ {path}: {} → {}", summary(live), summary(generated)),
        }
    }
}

/// A value in one line: a widget by its type and title, a scalar as JSON, else its size.
fn summary(v: &Value) -> String {
    let def = v.get("definition").unwrap_or(v);
    if let Some(t) = def.get("type").and_then(Value::as_str) {
        return match def.get("title").and_then(Value::as_str) {
            Some(title) => format!("{t} widget {title:?}"),
            None => format!("{t} widget"),
        };
    }
    match v {
        Value::Array(a) => format!("a list of {}", a.len()),
        Value::Object(o) => format!("an object with {} keys", o.len()),
        other => {
            let s = other.to_string();
            if s.chars().count() > 120 {
                format!("{}…", s.chars().take(120).collect::<String>())
            } else {
                s
            }
        }
    }
}

/// Every difference between the generated dashboard and the live one.
pub fn changes(generated: &Value, live: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", generated, live, &mut out);
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, generated: &Value, live: &Value, out: &mut Vec<Change>) {
    match (generated, live) {
        (Value::Object(g), Value::Object(l)) => {
            for (key, gv) in g {
                let p = join(path, key);
                match l.get(key) {
                    Some(lv) => walk(&p, gv, lv, out),
                    None if is_empty(gv) => {}
                    None => out.push(Change::Added {
                        path: p,
                        value: gv.clone(),
                    }),
                }
            }
        }
        (Value::Array(g), Value::Array(l)) => {
            for (i, gv) in g.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match l.get(i) {
                    Some(lv) => walk(&p, gv, lv, out),
                    None => out.push(Change::Added {
                        path: p,
                        value: gv.clone(),
                    }),
                }
            }
            for (i, lv) in l.iter().enumerate().skip(g.len()) {
                out.push(Change::Removed {
                    path: format!("{path}[{i}]"),
                    value: lv.clone(),
                });
            }
        }
        (Value::Number(g), Value::Number(l)) if g.as_f64() == l.as_f64() => {}
        (g, l) if g == l || (is_empty(g) && is_empty(l)) => {}
        (g, l) => out.push(Change::Changed {
            path: path.to_string(),
            live: l.clone(),
            generated: g.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_datadog_adds_are_not_changes() {
        let generated = json!({"title": "T", "widgets": [{"definition": {"type": "note", "content": "x"}}], "markers": []});
        let live = json!({"id": "abc-def-ghi", "title": "T", "url": "/dashboard/abc-def-ghi/t",
            "widgets": [{"id": 123, "definition": {"type": "note", "content": "x", "font_size": "14"}}]});
        assert_eq!(changes(&generated, &live), vec![]);
        assert_eq!(changes(&json!({"v": 1}), &json!({"v": 1.0})), vec![]);
    }

    #[test]
    fn changes_name_their_path_and_widget() {
        let generated = json!({"title": "New", "widgets": [
            {"definition": {"type": "note", "content": "x"}},
            {"definition": {"type": "timeseries", "title": "Reverts"}}
        ]});
        let live =
            json!({"title": "Old", "widgets": [{"definition": {"type": "note", "content": "y"}}]});
        let lines: Vec<String> = changes(&generated, &live)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            lines,
            vec![
                "~ title: \"Old\" → \"New\"",
                "~ widgets[0].definition.content: \"y\" → \"x\"",
                "+ widgets[1]: timeseries widget \"Reverts\"",
            ]
        );
        let removed = changes(
            &json!({"widgets": []}),
            &json!({"widgets": [{"definition": {"type": "note"}}]}),
        );
        assert_eq!(removed[0].to_string(), "- widgets[0]: note widget");
    }
}
