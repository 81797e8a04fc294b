//! The Datadog sink's settings: the `[sink]` table's remaining keys plus the environment,
//! validated once into a [`DatadogConfig`] the other stages only read.
//!
//! Resolution order, as the Datadog Agent does it: `DD_SITE` over `site` over `datadoghq.com`;
//! `DD_URL` over `endpoint` over `https://api.<site>`. An unknown site is an error listing the
//! nine known ones; a base URL may only be plain `http://` when it points at loopback.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::checks::duration::parse_duration;

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
    Key { key: &'static str, why: String },
    #[error("{source_name}: {why}")]
    Site { source_name: String, why: String },
    #[error("{source_name}: {why}")]
    Url { source_name: String, why: String },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDatadogConfig {
    site: Option<String>,
    endpoint: Option<String>,
    compression: Option<String>,
    timeout: Option<String>,
    deadline: Option<String>,
    max_retries: Option<u32>,
    backoff: Option<String>,
    max_backoff: Option<String>,
    concurrency: Option<usize>,
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

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn duration(
    key: &'static str,
    v: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(t) => parse_duration(t).map_err(|e| ConfigError::Key {
            key,
            why: e.to_string(),
        }),
    }
}

impl DatadogConfig {
    /// Validate the `[sink]` options and the environment (`DD_SITE`, `DD_URL`).
    pub fn resolve(options: &toml::Table) -> Result<DatadogConfig, ConfigError> {
        let raw: RawDatadogConfig =
            toml::Value::Table(options.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let msg = e.message().trim().to_string();
                    if msg.contains("unknown field") {
                        ConfigError::Table(format!("{msg}; `type` and `events` are also allowed"))
                    } else {
                        ConfigError::Table(msg)
                    }
                })?;
        let (site, site_source) = match env_var("DD_SITE") {
            Some(s) => (s, "DD_SITE".to_string()),
            None => match raw.site {
                Some(s) => (s, "[sink] site".to_string()),
                None => (DEFAULT_SITE.to_string(), "default site".to_string()),
            },
        };
        let site_base = site_base(&site);
        let (base, base_source) = match env_var("DD_URL") {
            Some(u) => (u, "DD_URL".to_string()),
            None => match raw.endpoint {
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
        let compression = match raw.compression.as_deref() {
            None => Compression::default(),
            Some(c) => Compression::from_content_encoding(c)
                .filter(|_| c != "zstd")
                .ok_or_else(|| ConfigError::Key {
                    key: "compression",
                    why: format!("{c:?} is not one of \"zstd1\", \"gzip\", \"deflate\""),
                })?,
        };
        let concurrency = raw.concurrency.unwrap_or(2);
        if concurrency == 0 || concurrency > 32 {
            return Err(ConfigError::Key {
                key: "concurrency",
                why: format!("{concurrency} is outside 1..=32"),
            });
        }
        let max_retries = raw.max_retries.unwrap_or(5);
        if max_retries > 100 {
            return Err(ConfigError::Key {
                key: "max_retries",
                why: format!("{max_retries} is more than 100"),
            });
        }
        Ok(DatadogConfig {
            site,
            base,
            compression,
            timeout: duration("timeout", raw.timeout.as_deref(), Duration::from_secs(20))?,
            deadline: duration(
                "deadline",
                raw.deadline.as_deref(),
                Duration::from_secs(300),
            )?,
            max_retries,
            backoff: duration(
                "backoff",
                raw.backoff.as_deref(),
                Duration::from_millis(500),
            )?,
            max_backoff: duration(
                "max_backoff",
                raw.max_backoff.as_deref(),
                Duration::from_secs(30),
            )?,
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
