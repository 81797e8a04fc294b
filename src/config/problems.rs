//! Config errors and how they are collected: each problem with its file, line and key
//! (`ConfigError`), all of a file's problems (`ConfigErrors`), the `Problems` collector that
//! turns a table's span and a key into that line, and the cutting of long values in messages.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{header_line, key_in_message, key_line};
use super::{BUNDLED_CONFIG, DEFAULT_CONFIG_FILE};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    /// The key at fault (`check.condition`), when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}: ", self.file.display(), self.line)?;
        }
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
/// Why the config could not be read, how its path was chosen and how to give one.
pub(super) fn unreadable_message(path: &Path, e: &std::io::Error) -> String {
    let env = std::env::var_os("INFRA_HEALTH_CONFIG").filter(|v| !v.is_empty());
    let chosen = match &env {
        Some(v) if Path::new(v) == path => "tried the path in $INFRA_HEALTH_CONFIG".to_string(),
        _ if path == Path::new(DEFAULT_CONFIG_FILE) => format!(
            "tried ./{DEFAULT_CONFIG_FILE} in the current directory: neither --config nor \
             $INFRA_HEALTH_CONFIG is set"
        ),
        _ => "tried the path given with --config".to_string(),
    };
    let what = if e.kind() == std::io::ErrorKind::NotFound {
        "no config file here".to_string()
    } else {
        format!("cannot read the config file: {e}")
    };
    format!(
        "{what} ({chosen}). The config is looked for in this order: --config PATH, \
         $INFRA_HEALTH_CONFIG, ./{DEFAULT_CONFIG_FILE}. Give one with `--config PATH`; the \
         bundled config is {BUNDLED_CONFIG} in the repository (e.g. \
         `infra-health --config {BUNDLED_CONFIG} board`)"
    )
}

/// Longest value quoted in an error message; longer ones are cut (a config value can be
/// megabytes long, and a message may quote it more than once).
pub const MAX_QUOTED_VALUE: usize = 80;
/// Longest error message; the rest is cut with a note.
pub const MAX_MESSAGE: usize = 2000;

/// Cut every quoted value (`"…"` or `` `…` ``) longer than [`MAX_QUOTED_VALUE`] characters to
/// that many with `…` and its length, then the whole message to [`MAX_MESSAGE`] characters.
pub fn clip_message(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE + 100));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '`' {
            // Find the closing quote, skipping backslash escapes.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            if j < chars.len() {
                let inner = &chars[i + 1..j];
                out.push(c);
                if inner.len() > MAX_QUOTED_VALUE {
                    out.extend(&inner[..MAX_QUOTED_VALUE]);
                    out.push('…');
                    out.push(c);
                    out.push_str(&format!(" ({} characters)", inner.len()));
                } else {
                    out.extend(inner);
                    out.push(c);
                }
                i = j + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    let n = out.chars().count();
    if n > MAX_MESSAGE {
        let mut cut: String = out.chars().take(MAX_MESSAGE).collect();
        cut.push_str(&format!("… (message cut, {n} characters)"));
        return cut;
    }
    out
}

/// Collects errors with positions while the plan is built.
pub(super) struct Problems<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) list: Vec<ConfigError>,
}

impl Problems<'_> {
    pub(super) fn at(&mut self, line: usize, key: Option<String>, message: impl Into<String>) {
        self.list.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: key.map(|k| clip_message(&k)),
            message: clip_message(&message.into()),
        });
    }

    /// An error about `key` inside the table at `span`.
    pub(super) fn key(
        &mut self,
        span: &std::ops::Range<usize>,
        section: &str,
        key: &str,
        message: impl Into<String>,
    ) {
        let line = key_line(self.text, span, key);
        self.at(line, Some(format!("{section}.{key}")), message);
    }

    /// Deserialize the table at `span` into `T`, reporting every bad key rather than only the
    /// first: an unknown or mistyped key is reported, left out, and the rest read again, so one
    /// bad key does not hide the table's other keys (nor what depends on them: a bad `prefix`
    /// after an unknown `[defaults]` key, or a row's own errors). `None` only when the table
    /// cannot be read without a key it lacks (a required field).
    pub(super) fn lenient<T: serde::de::DeserializeOwned>(
        &mut self,
        span: &std::ops::Range<usize>,
        section: &str,
        table: &toml::Table,
    ) -> Option<T> {
        let mut table = table.clone();
        // Each round removes one key, so this ends.
        for _ in 0..=table.len() {
            let err = match toml::Value::Table(table.clone()).try_into::<T>() {
                Ok(value) => return Some(value),
                Err(e) => e,
            };
            let message = err.message().trim().to_string();
            let named = key_in_message(&message)
                .filter(|k| table.contains_key(k) && !message.starts_with("missing field"));
            let bad = named.or_else(|| bad_key::<T>(&table));
            match bad {
                Some(key) => {
                    self.key(span, section, &key, message);
                    table.remove(&key);
                }
                None => {
                    self.serde(span, section, &err);
                    return None;
                }
            }
        }
        None
    }

    /// A serde error for the table at `span`: point at the key it names, if any.
    pub(super) fn serde(
        &mut self,
        span: &std::ops::Range<usize>,
        section: &str,
        err: &toml::de::Error,
    ) {
        let message = err.message().trim().to_string();
        match key_in_message(&message) {
            Some(key) => self.key(span, section, &key, message),
            None => {
                // "invalid type: string "x", expected u64" has no key; find the bad value's key
                // by deserialising field by field is overkill: point at the table.
                self.at(
                    header_line(self.text, span),
                    Some(section.to_string()),
                    message,
                )
            }
        }
    }
}

/// The key of `table` whose value alone `T` refuses (a wrong type), found by reading each key on
/// its own: a missing required field is not its fault.
fn bad_key<T: serde::de::DeserializeOwned>(table: &toml::Table) -> Option<String> {
    table.iter().find_map(|(k, v)| {
        let mut single = toml::Table::new();
        single.insert(k.clone(), v.clone());
        match toml::Value::Table(single).try_into::<T>() {
            Err(e) if !e.message().trim().starts_with("missing field") => Some(k.clone()),
            _ => None,
        }
    })
}
