//! The JSON form of an artifact, read field by field so every error names its field.
//!
//! serde's derived errors say "invalid type: string, expected f64 at line 3 column 10"; a
//! producer fixing its output wants `metrics[2].value`. So the document is parsed as a JSON value
//! and each field is taken out by hand. Unknown keys are refused (a typo such as `finshed_at`
//! would otherwise pass silently as a missing optional field), and so are duplicate keys (JSON
//! parsers disagree on which one wins; serde_json keeps the last, silently).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{Artifact, ArtifactError, Criterion, ExitStatus, RUN_FIELDS, RunMetric};

/// Top-level keys besides [`RUN_FIELDS`]: an optional `$schema` pointer and the two lists.
pub(crate) const LIST_KEYS: &[&str] = &["$schema", "metrics", "acceptance"];

struct Fields<'a> {
    file: &'a str,
    prefix: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn err(&self, key: &str, msg: impl Into<String>) -> ArtifactError {
        ArtifactError::new(self.file, Some(&self.path(key)), msg)
    }

    fn only(&self, allowed: &[&str]) -> Result<(), ArtifactError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.err(
                k,
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> Result<&'a Value, ArtifactError> {
        self.get(key)
            .ok_or_else(|| self.err(key, "required field is missing"))
    }

    fn string(&self, key: &str) -> Result<String, ArtifactError> {
        let v = self.required(key)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.err(key, format!("expected a string, got {}", kind(v))))
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, ArtifactError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    fn number(&self, key: &str) -> Result<f64, ArtifactError> {
        let v = self.required(key)?;
        v.as_f64()
            .ok_or_else(|| self.err(key, format!("expected a number, got {}", kind(v))))
    }

    fn integer(&self, key: &str) -> Result<i64, ArtifactError> {
        let v = self.required(key)?;
        v.as_i64()
            .ok_or_else(|| self.err(key, format!("expected an integer, got {}", kind(v))))
    }

    fn time(&self, key: &str) -> Result<chrono::DateTime<chrono::Utc>, ArtifactError> {
        let s = self.string(key)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| {
                self.err(
                    key,
                    format!("{s:?} is not an RFC 3339 time such as 2026-11-20T04:10:00Z ({e})"),
                )
            })
    }

    fn list(&self, key: &str) -> Result<Vec<Fields<'a>>, ArtifactError> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let items = v
            .as_array()
            .ok_or_else(|| self.err(key, format!("expected a list, got {}", kind(v))))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("{}[{i}]", self.path(key));
                match item.as_object() {
                    Some(map) => Ok(Fields {
                        file: self.file,
                        prefix: path,
                        map,
                    }),
                    None => Err(ArtifactError::new(
                        self.file,
                        Some(&path),
                        format!("expected an object, got {}", kind(item)),
                    )),
                }
            })
            .collect()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Builds a [`Value`] like serde_json does, but refuses an object with a key twice, recording
/// the duplicate's path (`metrics[1].name`) in `dup`.
struct Strict<'p> {
    path: String,
    dup: &'p RefCell<Option<String>>,
}

impl Strict<'_> {
    fn child(&self, part: &str) -> String {
        if self.path.is_empty() || part.starts_with('[') {
            format!("{}{part}", self.path)
        } else {
            format!("{}.{part}", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict {
            path: self.child(&format!("[{}]", out.len())),
            dup: self.dup,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.child(&key);
            if out.contains_key(&key) {
                *self.dup.borrow_mut() = Some(path);
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let v = map.next_value_seed(Strict {
                path,
                dup: self.dup,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parse JSON text into a [`Value`], refusing duplicate keys with an error naming the file and
/// the key's path.
fn parse_strict(bytes: &[u8], file: &str) -> Result<Value, ArtifactError> {
    // A UTF-8 byte-order mark (written by some Windows tools) is not part of the JSON.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let dup = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict {
        path: String::new(),
        dup: &dup,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match dup.take() {
        Some(path) => ArtifactError::new(
            file,
            Some(&path),
            format!(
                "the key appears more than once (line {}, column {}); each key may appear once: remove the duplicate",
                e.line(),
                e.column()
            ),
        ),
        None => ArtifactError::new(file, None, format!("not valid JSON: {e}")),
    })
}

/// Parse the JSON form. Types and required fields are checked here; [`Artifact::validate`]
/// checks the rest.
pub fn parse(bytes: &[u8], file: &str) -> Result<Artifact, ArtifactError> {
    let doc = parse_strict(bytes, file)?;
    let map = doc.as_object().ok_or_else(|| {
        ArtifactError::new(
            file,
            None,
            format!("expected a JSON object, got {}", kind(&doc)),
        )
    })?;
    let top = Fields {
        file,
        prefix: String::new(),
        map,
    };
    let top_keys: Vec<&str> = RUN_FIELDS.iter().chain(LIST_KEYS).copied().collect();
    top.only(&top_keys)?;
    let version = top.integer("schema_version")?;
    let schema_version = u32::try_from(version).map_err(|_| {
        top.err(
            "schema_version",
            format!("{version} is not a schema version"),
        )
    })?;
    let status_text = top.string("exit_status")?;
    let exit_status =
        ExitStatus::parse_explained(&status_text).map_err(|m| top.err("exit_status", m))?;
    let metrics = top
        .list("metrics")?
        .into_iter()
        .map(|m| {
            m.only(&["name", "value", "unit"])?;
            Ok(RunMetric {
                name: m.string("name")?,
                value: m.number("value")?,
                unit: m.string("unit")?,
            })
        })
        .collect::<Result<Vec<_>, ArtifactError>>()?;
    let acceptance = top
        .list("acceptance")?
        .into_iter()
        .map(|c| {
            c.only(&["metric", "condition"])?;
            Ok(Criterion {
                metric: c.string("metric")?,
                condition: c.string("condition")?,
            })
        })
        .collect::<Result<Vec<_>, ArtifactError>>()?;
    Ok(Artifact {
        schema_version,
        suite: top.string("suite")?,
        job: top.string("job")?,
        recipe: top.opt_string("recipe")?,
        run_id: top.string("run_id")?,
        runner: top.opt_string("runner")?,
        started_at: top.time("started_at")?,
        finished_at: top.time("finished_at")?,
        exit_status,
        exit_code: match top.get("exit_code") {
            None => None,
            Some(_) => Some(top.integer("exit_code")?),
        },
        metrics,
        acceptance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stable_suite::{Format, tests::sample, write_json};

    fn field_of(text: &str) -> Option<String> {
        crate::stable_suite::parse(text.as_bytes(), Format::Json, "a.json")
            .unwrap_err()
            .field
    }

    #[test]
    fn round_trips_through_the_writer() {
        let bytes = write_json(&sample()).unwrap();
        let back = crate::stable_suite::parse(&bytes, Format::Json, "a.json").unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend(write_json(&sample()).unwrap());
        let back = crate::stable_suite::parse(&bytes, Format::Json, "a.json").unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn errors_name_file_and_field() {
        let mut v: Value = serde_json::from_slice(&write_json(&sample()).unwrap()).unwrap();
        v["metrics"][1]["value"] = Value::String("fast".into());
        let err = crate::stable_suite::parse(v.to_string().as_bytes(), Format::Json, "runs/a.json")
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("metrics[1].value"));
        assert!(
            err.to_string()
                .starts_with("runs/a.json: field `metrics[1].value`"),
            "{err}"
        );

        let mut v: Value = serde_json::from_slice(&write_json(&sample()).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("run_id");
        assert_eq!(field_of(&v.to_string()).as_deref(), Some("run_id"));

        let mut v: Value = serde_json::from_slice(&write_json(&sample()).unwrap()).unwrap();
        v["finshed_at"] = Value::String("x".into());
        assert_eq!(field_of(&v.to_string()).as_deref(), Some("finshed_at"));

        let mut v: Value = serde_json::from_slice(&write_json(&sample()).unwrap()).unwrap();
        v["started_at"] = Value::String("yesterday".into());
        assert_eq!(field_of(&v.to_string()).as_deref(), Some("started_at"));

        let mut v: Value = serde_json::from_slice(&write_json(&sample()).unwrap()).unwrap();
        v["exit_status"] = Value::String("ok".into());
        assert_eq!(field_of(&v.to_string()).as_deref(), Some("exit_status"));

        assert_eq!(field_of("{\"schema_version\": 1"), None);
        assert_eq!(field_of("[1,2]"), None);
    }

    #[test]
    fn duplicate_keys_are_an_error_naming_file_and_key() {
        let text = String::from_utf8(write_json(&sample()).unwrap()).unwrap();
        // A second `suite` at the top level: serde_json alone would keep the last one.
        let dup_top = text.replacen('{', "{\"suite\": \"other\",", 1);
        let err = crate::stable_suite::parse(dup_top.as_bytes(), Format::Json, "runs/a.json")
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("suite"));
        let shown = err.to_string();
        assert!(shown.starts_with("runs/a.json: field `suite`"), "{shown}");
        assert!(shown.contains("more than once"), "{shown}");

        let mut v: Value = serde_json::from_slice(&write_json(&sample()).unwrap()).unwrap();
        v["metrics"][1]["unit"] = Value::String("UNIT".into());
        let dup_nested =
            v.to_string()
                .replacen("\"unit\":\"UNIT\"", "\"unit\":\"UNIT\",\"value\":0", 1);
        assert_eq!(field_of(&dup_nested).as_deref(), Some("metrics[1].value"));

        // The same key in two different objects is fine.
        let back = crate::stable_suite::parse(text.as_bytes(), Format::Json, "a.json").unwrap();
        assert_eq!(back, sample());
    }
}
