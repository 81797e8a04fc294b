//! Datadog's naming rules for metric names and tags, applied in one place.
//!
//! Datadog rewrites what breaks its rules instead of refusing it, so a name that looks fine in
//! a config can arrive as something else (`condition:<5m` and `condition:>5m` both become
//! `condition:_5m`). We apply the same rules ourselves, so what we send is what Datadog stores,
//! and we return what changed so that callers can report it instead of changing a user's name
//! behind their back.

use std::fmt;

/// Longest metric name Datadog accepts.
pub const MAX_METRIC_NAME_LEN: usize = 200;
/// Longest tag (key and value together) Datadog accepts.
pub const MAX_TAG_LEN: usize = 200;
/// Tag keys Datadog gives a meaning of its own; we set `source`, `service` and `env` on purpose
/// and refuse them anywhere a user could set them by accident.
pub const RESERVED_TAG_KEYS: &[&str] = &["host", "device", "source", "service", "env", "version"];

/// What normalisation did to a name or tag, for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub original: String,
    pub normalized: String,
    pub why: &'static str,
}

impl fmt::Display for Rewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} becomes {:?} ({})",
            self.original, self.normalized, self.why
        )
    }
}

/// Normalise a metric name the way Datadog does: ASCII letters, digits, `_` and `.`, starting
/// with a letter, at most 200 characters. Returns the name and, when it changed, why.
pub fn normalize_metric_name(name: &str) -> Result<(String, Option<Rewrite>), String> {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    let trimmed_start = out.trim_start_matches(|c: char| !c.is_ascii_alphabetic());
    if trimmed_start.is_empty() {
        return Err(format!(
            "metric name {name:?} has no ASCII letter to start with"
        ));
    }
    let mut normalized = trimmed_start.to_string();
    let mut why = if out.len() != name.len() || out != name {
        Some("only ASCII letters, digits, '_' and '.' are allowed")
    } else {
        None
    };
    if normalized.len() != out.len() {
        why = Some("a metric name must start with a letter");
    }
    if normalized.len() > MAX_METRIC_NAME_LEN {
        normalized.truncate(MAX_METRIC_NAME_LEN);
        why = Some("a metric name is at most 200 characters");
    }
    let rewrite = why.map(|why| Rewrite {
        original: name.to_string(),
        normalized: normalized.clone(),
        why,
    });
    Ok((normalized, rewrite))
}

/// Normalise one `key:value` tag the way Datadog does: lower case; letters, digits and
/// `_ - : . /` (others become `_`); starting with a letter; at most 200 characters; not ending
/// with `:`.
pub fn normalize_tag(tag: &str) -> Result<(String, Option<Rewrite>), String> {
    let mut out = String::with_capacity(tag.len());
    let mut why = None;
    for c in tag.chars() {
        let lower = c.to_ascii_lowercase();
        if lower != c && c.is_ascii() {
            why.get_or_insert("tags are lower-cased");
        }
        if lower.is_ascii_alphanumeric() || matches!(lower, '_' | '-' | ':' | '.' | '/') {
            out.push(lower);
        } else if c.is_alphabetic() {
            // Datadog keeps Unicode letters; so do we. Lower-casing may yield a mark that is no
            // letter ('İ' is 'i' and a combining dot): that becomes '_' now, not on a second pass.
            for l in c.to_lowercase() {
                if l != c {
                    why.get_or_insert("tags are lower-cased");
                }
                if l.is_alphanumeric() {
                    out.push(l);
                } else {
                    why = Some("only letters, digits and '_ - : . /' are allowed in tags");
                    out.push('_');
                }
            }
        } else {
            why = Some("only letters, digits and '_ - : . /' are allowed in tags");
            out.push('_');
        }
    }
    let start = out
        .char_indices()
        .find(|(_, c)| c.is_alphabetic())
        .map(|(i, _)| i);
    let Some(start) = start else {
        return Err(format!("tag {tag:?} has no letter to start with"));
    };
    if start > 0 {
        out.drain(..start);
        why = Some("a tag must start with a letter");
    }
    // Truncate before trimming colons, or the cut could leave a trailing ':'.
    if out.len() > MAX_TAG_LEN {
        let mut cut = MAX_TAG_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        why = Some("a tag is at most 200 characters");
    }
    while out.ends_with(':') {
        out.pop();
        why = Some("a tag must not end with ':'");
    }
    let rewrite = why.map(|why| Rewrite {
        original: tag.to_string(),
        normalized: out.clone(),
        why,
    });
    Ok((out, rewrite))
}

/// Whether a tag key is one Datadog reserves.
pub fn is_reserved_key(key: &str) -> bool {
    RESERVED_TAG_KEYS.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_keep_valid_input() {
        let (n, r) = normalize_metric_name("metta.infra.cron.ci.workflow.success").unwrap();
        assert_eq!(n, "metta.infra.cron.ci.workflow.success");
        assert!(r.is_none());
    }

    #[test]
    fn metric_names_are_rewritten_and_reported() {
        let (n, r) = normalize_metric_name("metta.infra.cron.ci.p90-duration").unwrap();
        assert_eq!(n, "metta.infra.cron.ci.p90_duration");
        assert!(r.is_some());
        let (n, _) = normalize_metric_name("9lives.x").unwrap();
        assert_eq!(n, "lives.x");
        assert!(normalize_metric_name("123").is_err());
        let long = "a".repeat(250);
        assert_eq!(normalize_metric_name(&long).unwrap().0.len(), 200);
    }

    #[test]
    fn tags_follow_datadog_rules() {
        assert_eq!(normalize_tag("Status:PASS").unwrap().0, "status:pass");
        assert_eq!(normalize_tag("condition:<5m").unwrap().0, "condition:_5m");
        assert_eq!(normalize_tag("condition:>5m").unwrap().0, "condition:_5m");
        assert_eq!(normalize_tag("repo:org/repo").unwrap().0, "repo:org/repo");
        assert_eq!(normalize_tag("key:").unwrap().0, "key");
        assert!(normalize_tag("status:pass").unwrap().1.is_none());
        assert!(normalize_tag(":::").is_err());
        // Found by the property test: lower-casing 'İ' gives 'i' and a combining dot.
        let (n, _) = normalize_tag("İ").unwrap();
        assert_eq!(n, "i_");
        assert_eq!(normalize_tag(&n).unwrap(), (n, None));
    }

    proptest::proptest! {
        #[test]
        fn normalisation_is_idempotent_and_valid(s in ".{0,300}") {
            if let Ok((n, _)) = normalize_tag(&s) {
                proptest::prop_assert!(n.len() <= MAX_TAG_LEN);
                proptest::prop_assert!(!n.ends_with(':'));
                let (again, rewrite) = normalize_tag(&n).unwrap();
                proptest::prop_assert_eq!(&again, &n);
                proptest::prop_assert!(rewrite.is_none());
            }
            if let Ok((n, _)) = normalize_metric_name(&s) {
                proptest::prop_assert!(n.len() <= MAX_METRIC_NAME_LEN);
                proptest::prop_assert!(n.chars().next().is_some_and(|c| c.is_ascii_alphabetic()));
                let (again, rewrite) = normalize_metric_name(&n).unwrap();
                proptest::prop_assert_eq!(&again, &n);
                proptest::prop_assert!(rewrite.is_none());
            }
        }
    }
}
