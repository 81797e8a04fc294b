//! The Datadog sink's settings: the `[sink]` table's remaining keys plus the environment,
//! validated once into a [`DatadogConfig`] the other stages only read.
//!
//! Resolution order, as the Datadog Agent does it: `DD_SITE` over `site` over `datadoghq.com`;
//! `DD_URL` over `endpoint` over `https://api.<site>`. An unknown site is an error listing the
//! nine known ones; a base URL may only be plain `http://` when it points at loopback.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::duration::parse_duration;

/// Datadog sites (`DD_SITE`); the API lives at `https://api.<site>`.
pub const SITES: &[&str] = &[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
    "uk1.datadoghq.com",
];

pub const DEFAULT_SITE: &str = "datadoghq.com";

/// The API base URL for a site, or an error listing the known sites.
pub fn site_base(site: &str) -> Result<String, String> {
    if SITES.contains(&site) {
        Ok(format!("https://api.{site}"))
    } else {
        Err(format!(
            "unknown Datadog site {site:?}; expected one of: {}",
            SITES.join(", ")
        ))
    }
}

/// How series bodies are compressed (`Content-Encoding`). Distribution points are always
/// `deflate`: that endpoint accepts nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Compression {
    #[default]
    #[serde(rename = "zstd1")]
    Zstd1,
    #[serde(rename = "gzip")]
    Gzip,
    #[serde(rename = "deflate")]
    Deflate,
}

impl Compression {
    /// The `Content-Encoding` header value.
    pub fn content_encoding(self) -> &'static str {
        match self {
            Compression::Zstd1 => "zstd1",
            Compression::Gzip => "gzip",
            Compression::Deflate => "deflate",
        }
    }

    pub fn from_content_encoding(s: &str) -> Option<Compression> {
        match s {
            "zstd1" | "zstd" => Some(Compression::Zstd1),
            "gzip" => Some(Compression::Gzip),
            "deflate" => Some(Compression::Deflate),
            _ => None,
        }
    }
}

/// A problem in the `[sink]` table or the `DD_*` environment.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("[sink]: {0}")]
    Table(String),
    #[error("[sink] {key}: {why}")]
    Key { key: String, why: String },
    #[error("{source_name}: {why}")]
    Site { source_name: String, why: String },
    #[error("{source_name}: {why}")]
    Url { source_name: String, why: String },
}

/// One problem with one key of the `[sink]` table, found without the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    /// The key at fault, as written in the table.
    pub key: String,
    pub why: String,
}

/// Keys the `[sink]` table may hold for Datadog (after `type` and `events`).
pub const KEYS: &[&str] = &[
    "site",
    "endpoint",
    "compression",
    "timeout",
    "deadline",
    "max_retries",
    "backoff",
    "max_backoff",
    "concurrency",
];

/// Keys the `[sink]` table reads itself, before the Datadog options.
const SINK_KEYS: &[&str] = &["type", "events"];

const COMPRESSIONS: &[&str] = &["zstd1", "gzip", "deflate"];

/// Validated Datadog sink settings.
#[derive(Debug, Clone)]
pub struct DatadogConfig {
    pub site: String,
    pub base: url::Url,
    pub compression: Compression,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Overall budget for one `deliver`: past it, what is left is spooled.
    pub deadline: Duration,
    /// Retries after the first attempt of a request.
    pub max_retries: u32,
    /// First backoff; doubles per retry, jittered, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl DatadogConfig {
    /// Where requests go, for a person: the site, and the URL when `DD_URL` / `endpoint` sends
    /// them somewhere else than the site's own API (`datadoghq.com via http://127.0.0.1:8126/`).
    pub fn describe(&self) -> String {
        match site_base(&self.site) {
            Ok(own) if own.trim_end_matches('/') == self.base.as_str().trim_end_matches('/') => {
                self.site.clone()
            }
            _ => format!("{} via {}", self.site, self.base),
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A site as Datadog spells it: host names are case-insensitive, so `DATADOGHQ.COM` is
/// `datadoghq.com`.
pub fn normalize_site(site: &str) -> String {
    site.trim().to_ascii_lowercase()
}

/// Edit distance, for "did you mean" on unknown keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key closest to `key`, when it is close enough to be a typo.
fn closest_key(key: &str) -> Option<&'static str> {
    SINK_KEYS
        .iter()
        .chain(KEYS)
        .map(|k| (distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A value as it appears in a message: short, with its length when it was cut.
fn shown(value: &toml::Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 40 {
        return text;
    }
    let cut: String = text.chars().take(40).collect();
    format!("{cut}… ({} characters)", text.chars().count())
}

/// The `[sink]` options after `type` and `events`, each checked on its own: every problem with
/// the key it belongs to. Needs no environment, so `validate` can report them with file:line.
pub fn check_options(options: &toml::Table) -> Vec<OptionProblem> {
    let mut problems = Vec::new();
    let mut bad = |key: &str, why: String| {
        problems.push(OptionProblem {
            key: key.to_string(),
            why,
        })
    };
    for (key, value) in options {
        let text = value.as_str();
        let not_a_string = || format!("expected a string, found {}", shown(value));
        match key.as_str() {
            "site" => match text {
                None => bad(key, not_a_string()),
                Some(s) => {
                    if let Err(why) = site_base(&normalize_site(s)) {
                        bad(key, why);
                    }
                }
            },
            "endpoint" => match text {
                None => bad(key, not_a_string()),
                Some(u) => {
                    if let Err(why) = crate::net::check_base_url(u) {
                        bad(key, why);
                    }
                }
            },
            "compression" => match text {
                Some(c) if COMPRESSIONS.contains(&c) => {}
                _ => bad(
                    key,
                    format!(
                        "{} is not an accepted compression; use one of \"zstd1\", \"gzip\", \"deflate\"",
                        shown(value)
                    ),
                ),
            },
            "timeout" | "deadline" | "backoff" | "max_backoff" => match text {
                None => bad(
                    key,
                    format!(
                        "expected a duration string such as \"20s\", found {}",
                        shown(value)
                    ),
                ),
                Some(t) => match parse_duration(t) {
                    Err(e) => bad(key, e.to_string()),
                    Ok(d) if d.is_zero() => bad(
                        key,
                        format!("{t:?} is refused: {key} must be greater than 0 (e.g. \"20s\")"),
                    ),
                    Ok(_) => {}
                },
            },
            "max_retries" => match value.as_integer() {
                Some(n) if (0..=100).contains(&n) => {}
                _ => bad(
                    key,
                    format!(
                        "{} is refused: max_retries is a whole number from 0 to 100",
                        shown(value)
                    ),
                ),
            },
            "concurrency" => match value.as_integer() {
                Some(n) if (1..=32).contains(&n) => {}
                _ => bad(
                    key,
                    format!(
                        "{} is refused: concurrency is a whole number from 1 to 32",
                        shown(value)
                    ),
                ),
            },
            _ => bad(
                key,
                format!(
                    "unknown key{}; the [sink] table takes: {}",
                    closest_key(key)
                        .map(|k| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default(),
                    SINK_KEYS
                        .iter()
                        .chain(KEYS)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    // Each on its own is fine; together they must still make sense.
    let get = |k: &str| {
        options
            .get(k)
            .and_then(|v| v.as_str())
            .and_then(|t| parse_duration(t).ok())
    };
    if let (Some(backoff), Some(max)) = (get("backoff"), get("max_backoff"))
        && backoff > max
    {
        bad(
            "max_backoff",
            "max_backoff is below backoff; the first wait would already exceed the cap".to_string(),
        );
    }
    problems
}

fn duration(v: Option<&toml::Value>, default: Duration) -> Duration {
    v.and_then(|v| v.as_str())
        .and_then(|t| parse_duration(t).ok())
        .unwrap_or(default)
}

impl DatadogConfig {
    /// Validate the `[sink]` options and the environment (`DD_SITE`, `DD_URL`).
    pub fn resolve(options: &toml::Table) -> Result<DatadogConfig, ConfigError> {
        if let Some(first) = check_options(options).into_iter().next() {
            return Err(ConfigError::Key {
                key: first.key,
                why: first.why,
            });
        }
        let option_str = |k: &str| options.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let (site, site_source) = match env_var("DD_SITE") {
            Some(s) => (normalize_site(&s), "DD_SITE".to_string()),
            None => match option_str("site") {
                Some(s) => (normalize_site(&s), "[sink] site".to_string()),
                None => (DEFAULT_SITE.to_string(), "default site".to_string()),
            },
        };
        let site_base = site_base(&site);
        let (base, base_source) = match env_var("DD_URL") {
            Some(u) => (u, "DD_URL".to_string()),
            None => match option_str("endpoint") {
                Some(u) => (u, "[sink] endpoint".to_string()),
                None => (
                    site_base.clone().map_err(|why| ConfigError::Site {
                        source_name: site_source.clone(),
                        why,
                    })?,
                    site_source.clone(),
                ),
            },
        };
        // A base-URL override still needs a known site for messages ("rejected by <site>"):
        // an unknown DD_SITE is an error either way, so a typo never goes unnoticed.
        site_base.map_err(|why| ConfigError::Site {
            source_name: site_source,
            why,
        })?;
        let base = crate::net::check_base_url(&base).map_err(|why| ConfigError::Url {
            source_name: base_source,
            why,
        })?;
        let compression = option_str("compression")
            .and_then(|c| Compression::from_content_encoding(&c))
            .unwrap_or_default();
        let integer = |k: &str| options.get(k).and_then(|v| v.as_integer());
        let max_retries = integer("max_retries")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(5);
        let concurrency = integer("concurrency")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(2);
        Ok(DatadogConfig {
            site,
            base,
            compression,
            timeout: duration(options.get("timeout"), Duration::from_secs(20)),
            deadline: duration(options.get("deadline"), Duration::from_secs(300)),
            max_retries,
            backoff: duration(options.get("backoff"), Duration::from_millis(500)),
            max_backoff: duration(options.get("max_backoff"), Duration::from_secs(30)),
            concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn every_site_has_an_api_base() {
        assert_eq!(SITES.len(), 9);
        assert_eq!(
            site_base("datadoghq.eu").unwrap(),
            "https://api.datadoghq.eu"
        );
        let err = site_base("datadoghq.con").unwrap_err();
        assert!(err.contains("unknown Datadog site") && err.contains("us5.datadoghq.com"));
    }

    #[test]
    fn every_bad_option_is_reported_with_its_key() {
        let problems = check_options(&table(
            "compresion = \"zstd1\"\ncompression = \"br\"\nmax_retries = -1\nsite = \"nonsense\"\ntimeout = \"0s\"\ndeadline = \"0s\"\nconcurrency = 0\nbackoff = \"2s\"\nmax_backoff = \"1s\"\nendpoint = 5",
        ));
        let find = |key: &str| {
            problems
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.why.clone())
                .unwrap_or_else(|| panic!("no problem for {key}: {problems:?}"))
        };
        assert!(find("compresion").contains("did you mean `compression`?"));
        assert!(find("compression").contains("\"br\" is not an accepted compression"));
        assert!(find("compression").contains("\"zstd1\", \"gzip\", \"deflate\""));
        assert!(find("max_retries").contains("-1 is refused"));
        assert!(find("site").contains("uk1.datadoghq.com"));
        assert!(find("timeout").contains("must be greater than 0"));
        assert!(find("deadline").contains("must be greater than 0"));
        assert!(find("concurrency").contains("1 to 32"));
        assert!(find("max_backoff").contains("below backoff"));
        assert!(find("endpoint").contains("expected a string"));
        assert_eq!(problems.len(), 9, "{problems:?}");
        // A key far from every known one gets no guess, but the list of keys.
        let far = check_options(&table("zzzzzzzz = 1"));
        assert!(!far[0].why.contains("did you mean"), "{far:?}");
        assert!(far[0].why.contains("max_backoff"), "{far:?}");
        // resolve refuses what check_options refuses.
        let err = DatadogConfig::resolve(&table("timeout = \"0s\"")).unwrap_err();
        assert!(err.to_string().contains("[sink] timeout"), "{err}");
    }

    #[test]
    fn a_site_is_read_in_any_case() {
        assert_eq!(normalize_site(" DATADOGHQ.COM "), "datadoghq.com");
        assert!(check_options(&table("site = \"US5.DatadogHQ.com\"")).is_empty());
        let cfg = DatadogConfig::resolve(&table("site = \"DATADOGHQ.EU\"")).unwrap();
        assert_eq!(cfg.site, "datadoghq.eu");
        assert_eq!(cfg.base.as_str(), "https://api.datadoghq.eu/");
    }

    #[test]
    fn options_are_validated_with_the_key_named() {
        let cfg = DatadogConfig::resolve(&table(
            "site = \"datadoghq.eu\"\ncompression = \"gzip\"\ntimeout = \"2s\"\nmax_retries = 1",
        ))
        .unwrap();
        assert_eq!(cfg.base.as_str(), "https://api.datadoghq.eu/");
        assert_eq!(cfg.compression, Compression::Gzip);
        assert_eq!(cfg.timeout, Duration::from_secs(2));
        let err = DatadogConfig::resolve(&table("sitee = \"x\"")).unwrap_err();
        assert!(err.to_string().contains("sitee"), "{err}");
        let err = DatadogConfig::resolve(&table("compression = \"brotli\"")).unwrap_err();
        assert!(err.to_string().contains("[sink] compression"), "{err}");
        let err = DatadogConfig::resolve(&table("site = \"nope.example\"")).unwrap_err();
        assert!(err.to_string().contains("unknown Datadog site"), "{err}");
        let err =
            DatadogConfig::resolve(&table("endpoint = \"http://10.1.2.3:8080\"")).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let ok = DatadogConfig::resolve(&table("endpoint = \"http://127.0.0.1:9\"")).unwrap();
        assert_eq!(ok.base.as_str(), "http://127.0.0.1:9/");
    }
}
