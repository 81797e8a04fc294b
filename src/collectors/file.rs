//! `file`: observations read from a JSON file.
//!
//! The file is a list of `{signal, value, timestamp?, unit?, tags?, ids?}` objects (or an object with an
//! `observations` list). It lets the whole pipeline run before any real source is wired, lets a
//! job that already computes its numbers feed them in, and drives the bundled example.
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `path` | the JSON file, relative to the config file | required |
//! | `max_age` | observations older than this are dropped (the row turns `unknown`) | none |
//! | `rebase_timestamps` | shift every timestamp so the newest is "now" (example data) | `false` |
//!
//! A missing `timestamp` means "now". Signals are whatever the file names.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use super::{BuildContext, CollectContext, CollectError, Collector, CollectorKind};
use crate::checks::duration::parse_duration;
use crate::observation::{Observation, Value};

pub const KIND: CollectorKind = CollectorKind {
    name: "file",
    description: "observations read from a JSON file (list of {signal, value, timestamp?, unit?, tags?, ids?})",
    signals: &["<any, as named in the file>"],
    tags: &[],
    self_metrics: &[],
    build,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    path: String,
    #[serde(default)]
    max_age: Option<String>,
    #[serde(default)]
    rebase_timestamps: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileObservation {
    signal: String,
    value: Value,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
    /// Identities of the samples or counted events: each is sent once.
    #[serde(default)]
    ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileShape {
    List(Vec<FileObservation>),
    Wrapped { observations: Vec<FileObservation> },
}

pub struct FileCollector {
    path: PathBuf,
    max_age: Option<std::time::Duration>,
    rebase_timestamps: bool,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, String> {
    let cfg: FileConfig = ctx.options()?;
    let max_age = match cfg.max_age.as_deref() {
        Some(s) => Some(parse_duration(s).map_err(|e| format!("max_age: {e}"))?),
        None => None,
    };
    Ok(Arc::new(FileCollector {
        path: ctx.resolve_path(&cfg.path),
        max_age,
        rebase_timestamps: cfg.rebase_timestamps,
    }))
}

impl FileCollector {
    pub fn parse(&self, text: &str, now: DateTime<Utc>) -> Result<Vec<Observation>, CollectError> {
        let shape: FileShape = serde_json::from_str(text).map_err(|e| {
            // serde_json's untagged error loses the field; retry the list shape for a precise one.
            let detail = serde_json::from_str::<Vec<FileObservation>>(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| e.to_string());
            CollectError::Source(format!("{}: {detail}", self.path.display()))
        })?;
        let items = match shape {
            FileShape::List(v) | FileShape::Wrapped { observations: v } => v,
        };
        let newest = items.iter().filter_map(|o| o.timestamp).max();
        let shift = match (self.rebase_timestamps, newest) {
            (true, Some(newest)) => now - newest,
            _ => chrono::TimeDelta::zero(),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let timestamp = item.timestamp.map(|t| t + shift).unwrap_or(now);
            if let Some(max_age) = self.max_age {
                let age = (now - timestamp).to_std().unwrap_or_default();
                if age > max_age {
                    tracing::debug!(signal = %item.signal, "dropping observation older than max_age");
                    continue;
                }
            }
            out.push(Observation {
                signal: item.signal,
                value: item.value,
                unit: item.unit,
                timestamp,
                tags: item.tags,
                ids: item.ids,
            });
        }
        Ok(out)
    }
}

impl Collector for FileCollector {
    fn collect<'a>(
        &'a self,
        ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>> {
        Box::pin(async move {
            let text = tokio::fs::read_to_string(&self.path)
                .await
                .map_err(|source| CollectError::Io {
                    context: format!("cannot read {}", self.path.display()),
                    source,
                })?;
            self.parse(&text, ctx.now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector() -> FileCollector {
        FileCollector {
            path: PathBuf::from("obs.json"),
            max_age: None,
            rebase_timestamps: false,
        }
    }

    #[test]
    fn reads_a_list_with_defaults() {
        let now = Utc::now();
        let obs = collector()
            .parse(
                r#"[{"signal":"a","value":1.5},{"signal":"b","value":"success","tags":{"workflow":"tests"}},
                   {"signal":"c","value":[1,2,3],"unit":"second","timestamp":"2026-01-01T00:00:00Z"}]"#,
                now,
            )
            .unwrap();
        assert_eq!(obs.len(), 3);
        assert_eq!(obs[0].value, Value::Number(1.5));
        assert_eq!(obs[0].timestamp, now);
        assert_eq!(obs[1].tags["workflow"], "tests");
        assert_eq!(obs[2].value, Value::Samples(vec![1.0, 2.0, 3.0]));
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let err = collector()
            .parse(r#"[{"signal":"a","valeu":1}]"#, Utc::now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("obs.json"), "{err}");
        assert!(err.contains("valeu"), "{err}");
    }

    #[test]
    fn rebasing_moves_the_newest_to_now() {
        let mut c = collector();
        c.rebase_timestamps = true;
        let now = Utc::now();
        let obs = c
            .parse(
                r#"[{"signal":"a","value":1,"timestamp":"2026-01-01T00:00:00Z"},
                   {"signal":"b","value":1,"timestamp":"2026-01-01T01:00:00Z"}]"#,
                now,
            )
            .unwrap();
        assert_eq!(obs[1].timestamp, now);
        assert_eq!(obs[0].timestamp, now - chrono::TimeDelta::hours(1));
    }
}
