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
//! | `max_bytes` | a larger file is refused (row `unknown`) without being read past the cap | `16777216` (16 MiB) |
//!
//! A missing `timestamp` means "now". Signals are whatever the file names. A UTF-8 byte-order
//! mark at the start of the file is accepted.
//!
//! `ids`, when given, must be one per sample (for a number: one per counted event, or one),
//! each at most [`crate::observation::MAX_ID_BYTES`] bytes, none repeated: an observation that
//! breaks this is skipped with a warning naming it (file and position, signal), and the others
//! still count.
//!
//! No input can hold the process: the path must be a regular file (after following symlinks).
//! A FIFO, a device such as `/dev/zero`, a socket or a directory is refused with an error naming
//! the path, and the file is opened with `O_NONBLOCK` and checked again on the open descriptor,
//! so a FIFO swapped in between never blocks `open`. The read stops at `max_bytes` + 1 bytes and
//! runs on a blocking thread that the collector's `timeout` gives up on; `main` shuts the runtime
//! down without waiting for such a thread, so the process still exits after delivery.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use super::{BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind};
use crate::duration::parse_duration;
use crate::observation::{Observation, Value, check_ids};

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
    #[serde(default)]
    max_bytes: Option<u64>,
}

/// The default cap on the file's size: observations for a health matrix are small, and a
/// runaway file must not eat the job's memory.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

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
    max_bytes: u64,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let cfg: FileConfig = ctx.options()?;
    let max_age = match cfg.max_age.as_deref() {
        Some(s) => Some(parse_duration(s).map_err(|e| BuildError::at("max_age", e))?),
        None => None,
    };
    let max_bytes = cfg.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 {
        return Err(BuildError::at("max_bytes", "must be at least 1"));
    }
    Ok(Arc::new(FileCollector {
        path: ctx.resolve_path(&cfg.path),
        max_age,
        rebase_timestamps: cfg.rebase_timestamps,
        max_bytes,
    }))
}

/// What a path is, in words, when it is not a regular file.
fn not_regular(ft: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Read `path` if it is a regular file of at most `max_bytes` bytes. Blocking: call it on a
/// blocking thread. Never blocks on a FIFO's `open` and never reads past `max_bytes` + 1 bytes.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<String, CollectError> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |what: &str| {
        CollectError::Source(format!(
            "{}: is {what}, not a regular file; point `path` at a JSON file",
            path.display()
        ))
    };
    let io = |context: String| move |source| CollectError::Io { context, source };
    // stat(2) first: it never blocks, and a socket cannot even be opened.
    let meta = std::fs::metadata(path).map_err(io(format!("cannot read {}", path.display())))?;
    if let Some(what) = not_regular(meta.file_type()) {
        return Err(refuse(what));
    }
    // O_NONBLOCK: if the path was swapped for a FIFO since the stat, open returns at once
    // instead of waiting for a writer; fstat on the descriptor then refuses it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(io(format!("cannot read {}", path.display())))?;
    if let Some(what) = not_regular(meta.file_type()) {
        return Err(refuse(what));
    }
    let too_large = |size: String| {
        CollectError::Source(format!(
            "{}: {size} is larger than max_bytes ({max_bytes} bytes); make the file smaller or raise `max_bytes`",
            path.display()
        ))
    };
    if meta.len() > max_bytes {
        return Err(too_large(format!("{} bytes", meta.len())));
    }
    // The size can grow while we read: the cap holds on what is read, not on what was stat'ed.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io(format!("cannot read {}", path.display())))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large("the file (it grew while being read)".into()));
    }
    String::from_utf8(bytes).map_err(|e| {
        CollectError::Source(format!(
            "{}: not UTF-8 text (invalid byte at offset {}); the file must be JSON",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

impl FileCollector {
    /// A collector of `path` with the defaults (no `max_age`, no rebasing, 16 MiB): what the
    /// fuzz target and property tests of [`FileCollector::parse`] read with.
    pub fn new(path: PathBuf) -> FileCollector {
        FileCollector {
            path,
            max_age: None,
            rebase_timestamps: false,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    pub fn parse(&self, text: &str, now: DateTime<Utc>) -> Result<Vec<Observation>, CollectError> {
        // A byte-order mark, as some Windows editors write, is not part of the JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
        for (i, item) in items.into_iter().enumerate() {
            // One observation with bad identities is skipped, naming it; the rest still count.
            if let Err(why) = check_ids(&item.value, &item.ids) {
                tracing::warn!(
                    "{}: observation {} (signal {:?}): bad ids: {why}; skipped",
                    self.path.display(),
                    i + 1,
                    item.signal
                );
                continue;
            }
            let timestamp = match item.timestamp {
                // Found by the property tests: a year -262143 beside a year +262142 overflowed.
                Some(t) => t.checked_add_signed(shift).ok_or_else(|| {
                    CollectError::Source(format!(
                        "{}: observation {i} ({}): timestamp {} cannot be shifted by \
                         rebase_timestamps ({} s) within the calendar",
                        self.path.display(),
                        item.signal,
                        t.to_rfc3339(),
                        shift.num_seconds()
                    ))
                })?,
                None => now,
            };
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
                unknown_reason: None,
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
            // On a blocking thread: a read stuck in the kernel (a hung network mount) holds
            // only that thread, and the collector's timeout gives up on it.
            let path = self.path.clone();
            let max_bytes = self.max_bytes;
            let text = tokio::task::spawn_blocking(move || read_regular_file(&path, max_bytes))
                .await
                .map_err(|e| {
                    CollectError::Source(format!("{}: the read failed: {e}", self.path.display()))
                })??;
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
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    #[test]
    fn non_regular_files_are_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("obs.fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let err = read_regular_file(&fifo, 1024).unwrap_err().to_string();
        assert!(err.contains("obs.fifo") && err.contains("FIFO"), "{err}");
        let err = read_regular_file(Path::new("/dev/zero"), 1024)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("character device"),
            "{err}"
        );
        let err = read_regular_file(tmp.path(), 1024).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
        let sock = tmp.path().join("obs.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = read_regular_file(&sock, 1024).unwrap_err().to_string();
        assert!(err.contains("obs.sock") && err.contains("socket"), "{err}");
        // A symlink to a device is judged by what it points at.
        let link = tmp.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read_regular_file(&link, 1024).unwrap_err().to_string();
        assert!(err.contains("zero.json") && err.contains("device"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn the_size_cap_is_enforced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("obs.json");
        std::fs::write(&path, "[]").unwrap();
        assert_eq!(read_regular_file(&path, 2).unwrap(), "[]");
        std::fs::write(&path, "[ ]").unwrap();
        let err = read_regular_file(&path, 2).unwrap_err().to_string();
        assert!(
            err.contains("obs.json") && err.contains("max_bytes"),
            "{err}"
        );
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
    fn a_byte_order_mark_is_accepted() {
        let obs = collector()
            .parse("\u{feff}[{\"signal\":\"a\",\"value\":1}]", Utc::now())
            .unwrap();
        assert_eq!(obs.len(), 1);
    }

    #[test]
    fn an_observation_with_bad_ids_is_skipped_and_the_rest_still_count() {
        let long = "x".repeat(300);
        let text = format!(
            r#"[{{"signal":"short","value":[1,2,3],"ids":["a","b"]}},
               {{"signal":"long","value":[1],"ids":["{long}"]}},
               {{"signal":"dup","value":[1,2],"ids":["a","a"]}},
               {{"signal":"good","value":[1,2],"ids":["a","b"]}}]"#
        );
        let obs = collector().parse(&text, Utc::now()).unwrap();
        let names: Vec<&str> = obs.iter().map(|o| o.signal.as_str()).collect();
        assert_eq!(names, vec!["good"]);
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

    #[test]
    fn rebasing_extreme_timestamps_is_an_error_not_a_panic() {
        let mut c = collector();
        c.rebase_timestamps = true;
        let err = c
            .parse(
                r#"[{"signal":"a","value":0,"timestamp":"-262143-01-01T00:00:00Z"},
                   {"signal":"b","value":0,"timestamp":"+262142-12-31T23:59:59Z"}]"#,
                Utc::now(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("obs.json") && err.contains("observation 0 (a)"),
            "{err}"
        );
    }

    /// Any JSON text, and lists of observations with extreme timestamps, parse or give an error
    /// naming the file; never a panic (the `observations` fuzz target reads the same way).
    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn timestamp() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("2026-11-20T04:10:00Z".to_string()),
                Just("+262142-12-31T23:59:59Z".to_string()),
                Just("-262143-01-01T00:00:00Z".to_string()),
                (0i64..4_000_000_000).prop_map(|s| {
                    DateTime::from_timestamp(s, 0)
                        .unwrap_or_default()
                        .to_rfc3339()
                }),
            ]
        }

        fn observation() -> impl Strategy<Value = String> {
            (
                "[a-z.]{0,8}",
                prop_oneof![
                    any::<f64>().prop_map(|f| serde_json::json!(f).to_string()),
                    Just("\"text\"".to_string()),
                    Just("[1, 2, 3]".to_string()),
                    Just("null".to_string()),
                    Just("{}".to_string()),
                ],
                prop::option::of(timestamp()),
            )
                .prop_map(|(signal, value, ts)| match ts {
                    Some(ts) => {
                        format!(r#"{{"signal":"{signal}","value":{value},"timestamp":"{ts}"}}"#)
                    }
                    None => format!(r#"{{"signal":"{signal}","value":{value}}}"#),
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

            #[test]
            fn any_text_parses_or_names_the_file(text in ".{0,64}", rebase in any::<bool>()) {
                let mut c = FileCollector::new("obs.json".into());
                c.rebase_timestamps = rebase;
                if let Err(e) = c.parse(&text, Utc::now()) {
                    prop_assert!(e.to_string().contains("obs.json"), "{}", e);
                }
            }

            #[test]
            fn observation_lists_never_panic(
                items in prop::collection::vec(observation(), 0..5),
                rebase in any::<bool>(),
                max_age in prop::option::of(0u64..100_000),
            ) {
                let mut c = FileCollector::new("obs.json".into());
                c.rebase_timestamps = rebase;
                c.max_age = max_age.map(std::time::Duration::from_secs);
                let text = format!("[{}]", items.join(","));
                match c.parse(&text, Utc::now()) {
                    Ok(obs) => prop_assert!(obs.len() <= items.len()),
                    Err(e) => prop_assert!(e.to_string().contains("obs.json"), "{}", e),
                }
            }
        }
    }
}
