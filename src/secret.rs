//! Secrets (API keys, tokens) in a type that cannot be printed by accident.
//!
//! `Debug` and `Display` print `[redacted]`; the value is reachable only through
//! [`Secret::expose`], which is called where a header is set and nowhere else. Every secret can
//! come from an environment variable or from a file named by `<VAR>_FILE` (a mounted Kubernetes
//! secret), the convention of the official Docker images.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first of `vars` that is set (directly, or via `<VAR>_FILE`), trimmed. A `_FILE` that
    /// cannot be read is an error naming the file, never the content.
    pub fn from_env(vars: &[&str]) -> Result<Option<Secret>, String> {
        for var in vars {
            if let Ok(v) = std::env::var(var)
                && !v.trim().is_empty()
            {
                return Ok(Some(Secret(v.trim().to_string())));
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
                return Ok(Some(Secret(content.to_string())));
            }
        }
        Ok(None)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
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
}
