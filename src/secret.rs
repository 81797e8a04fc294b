//! Secrets (API keys, tokens) in a type that cannot be printed by accident, and the one
//! redaction mechanism that keeps their values inside the process.
//!
//! `Debug` and `Display` print `[redacted]`; the value is reachable only through
//! [`Secret::expose`], which is called where a header is set and nowhere else. Every secret can
//! come from an environment variable or from a file named by `<VAR>_FILE` (a mounted Kubernetes
//! secret), the convention of the official Docker images.
//!
//! A value can still come back in from outside: a probe that prints its environment, a server
//! that echoes a header in an error. So every secret, when it is created, is also recorded in a
//! process-wide registry ([`register`]), and [`redact`] replaces each recorded value by
//! [`REDACTED`]. It is applied where outside text enters the program (an `exec` probe's stdout
//! and stderr) and again at every edge where text leaves it: the log writer, the printed matrix
//! and summary, the error message of `main`, every JSON object the state store writes and the
//! board. [`register_well_known`] records the tool's own keys (`DD_API_KEY`, `DD_APP_KEY`,
//! `GITHUB_TOKEN`, `GH_TOKEN` and their `_FILE` forms) at start-up, whether or not this run uses
//! them, so a child that finds them some other way is redacted too.
//!
//! A key must be one token: a value holding whitespace or a control character (a newline
//! pasted in with it) is a configuration error naming the variable, never the value
//! ([`Secret::from_env`]); HTTP would refuse it as a header anyway, and it is not retried.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

/// What a secret's value is replaced by.
pub const REDACTED: &str = "[redacted]";

/// The tool's own secrets, registered for redaction at start-up and never passed to a probe
/// unless its `pass_env` names one.
pub const WELL_KNOWN: &[&str] = &["DD_API_KEY", "DD_APP_KEY", "GITHUB_TOKEN", "GH_TOKEN"];

/// Values shorter than this are not redacted (they would blank out ordinary words); no real
/// key is this short.
const MIN_REDACTED_LEN: usize = 4;

fn registry() -> &'static RwLock<Vec<String>> {
    static REGISTRY: RwLock<Vec<String>> = RwLock::new(Vec::new());
    &REGISTRY
}

/// Record `value` so that [`redact`] hides it from now on.
pub fn register(value: &str) {
    if value.len() < MIN_REDACTED_LEN {
        return;
    }
    let Ok(mut values) = registry().write() else {
        return;
    };
    if !values.iter().any(|v| v == value) {
        values.push(value.to_string());
        // Longest first: a key that contains another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// Record the values of the tool's own keys ([`WELL_KNOWN`], directly or through `<VAR>_FILE`)
/// that are set, valid or not. Called once at start-up.
pub fn register_well_known() {
    for var in WELL_KNOWN {
        if let Ok(v) = std::env::var(var) {
            register(v.trim());
        }
        // Only a small regular file (a mounted secret): never block on a FIFO or read a device.
        if let Ok(path) = std::env::var(format!("{var}_FILE"))
            && std::fs::metadata(path.trim()).is_ok_and(|m| m.is_file() && m.len() <= 65536)
            && let Ok(content) = std::fs::read_to_string(path.trim())
        {
            register(content.trim());
        }
    }
}

/// `text` with every registered secret replaced by [`REDACTED`] (borrowed when there is none).
pub fn redact(text: &str) -> Cow<'_, str> {
    let Ok(values) = registry().read() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for v in values.iter() {
        if out.contains(v.as_str()) {
            out = Cow::Owned(out.replace(v.as_str(), REDACTED));
        }
    }
    out
}

/// Captured text (a probe's stderr, a line of its stdout) made safe to put in a log line or a
/// message: secrets redacted, and newlines and other control characters escaped (`\n`, `\t`,
/// `\u{1b}`), so what a child prints can never forge a line of this program's log.
pub fn sanitize_captured(text: &str) -> String {
    let redacted = redact(text);
    let mut out = String::with_capacity(redacted.len());
    for c in redacted.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret held by the process: registered for redaction.
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first of `vars` that is set (directly, or via `<VAR>_FILE`), trimmed. A `_FILE` that
    /// cannot be read is an error naming the file, never the content; so is a value holding
    /// whitespace or a control character inside it (naming the variable, never the value).
    pub fn from_env(vars: &[&str]) -> Result<Option<Secret>, String> {
        for var in vars {
            if let Ok(v) = std::env::var(var)
                && !v.trim().is_empty()
            {
                return checked(var, v.trim()).map(Some);
            }
            let file_var = format!("{var}_FILE");
            if let Ok(path) = std::env::var(&file_var)
                && !path.trim().is_empty()
            {
                let content = std::fs::read_to_string(path.trim())
                    .map_err(|e| format!("{file_var}: cannot read {}: {e}", path.trim()))?;
                let content = content.trim();
                if content.is_empty() {
                    return Err(format!("{file_var}: {} is empty", path.trim()));
                }
                return checked(&format!("{file_var} ({})", path.trim()), content).map(Some);
            }
        }
        Ok(None)
    }
}

/// A key is one token: refuse whitespace or control characters inside it (registered for
/// redaction all the same, since it is still somebody's key).
fn checked(source: &str, value: &str) -> Result<Secret, String> {
    let secret = Secret::new(value);
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        let what = match c {
            '\n' | '\r' => "a line break",
            c if c.is_control() => "a control character",
            _ => "whitespace",
        };
        return Err(format!(
            "{source}: the key contains {what}; a key is one token: set it without the extra characters (the value is not shown)"
        ));
    }
    Ok(secret)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("abc123");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "abc123");
    }

    #[test]
    fn a_secret_is_redacted_wherever_it_appears() {
        let _s = Secret::new("k3y-redact-me-0123");
        let text = "token=k3y-redact-me-0123 and again k3y-redact-me-0123.";
        assert_eq!(redact(text), "token=[redacted] and again [redacted].");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        // Too short to be a key: left alone rather than blanking out words.
        register("ab");
        assert_eq!(redact("ab cd"), "ab cd");
    }

    #[test]
    fn captured_text_cannot_forge_log_lines() {
        let _s = Secret::new("sanitize-secret-999");
        let text = "oops\n2026-01-01T00:00:00Z  INFO forged line\r\u{1b}[31m sanitize-secret-999";
        let clean = sanitize_captured(text);
        assert!(!clean.contains('\n') && !clean.contains('\r') && !clean.contains('\u{1b}'));
        assert!(
            clean.contains("oops\\n2026") && clean.contains("\\u{1b}"),
            "{clean}"
        );
        assert!(clean.ends_with("[redacted]"), "{clean}");
    }

    #[test]
    fn a_key_with_a_line_break_or_space_is_refused_naming_the_variable_only() {
        for (var, value) in [
            ("INFRA_HEALTH_TEST_KEY_NL", "abcd1234\nefgh5678"),
            ("INFRA_HEALTH_TEST_KEY_SP", "abcd1234 efgh5678"),
            ("INFRA_HEALTH_TEST_KEY_CTL", "abcd1234\u{7}efgh5678"),
        ] {
            // SAFETY: a variable name only this test uses.
            unsafe { std::env::set_var(var, value) };
            let err = Secret::from_env(&[var]).unwrap_err();
            assert!(err.contains(var), "{err}");
            assert!(
                !err.contains("abcd1234") && !err.contains("efgh5678"),
                "{err}"
            );
            // SAFETY: as above.
            unsafe { std::env::remove_var(var) };
        }
        // SAFETY: as above.
        unsafe { std::env::set_var("INFRA_HEALTH_TEST_KEY_OK", "  abcd1234efgh5678\n") };
        let ok = Secret::from_env(&["INFRA_HEALTH_TEST_KEY_OK"]).unwrap();
        assert_eq!(ok.unwrap().expose(), "abcd1234efgh5678");
    }
}
