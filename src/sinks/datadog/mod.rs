//! The Datadog sink: metrics to the intake API.
//!
//! Series go to `POST /api/v2/series` and distributions to `POST /api/v1/distribution_points`,
//! authenticated with `DD-API-KEY`. The site comes from `DD_SITE` or the sink's `site`, and a
//! base-URL override (`DD_URL` or `endpoint`) serves proxies and tests; plain `http://` is only
//! accepted for loopback addresses.

pub mod encode;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::DeliveryReport;
use crate::schema::Metric;
use crate::secret::Secret;
use crate::state::StateStore;

/// Datadog sites and their API hosts (`https://api.<site>`).
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

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DatadogConfig {
    site: Option<String>,
    endpoint: Option<String>,
    timeout: Option<String>,
}

pub struct DatadogSink {
    base: url::Url,
    site: String,
    key: Secret,
    timeout: Duration,
    http: reqwest::Client,
    #[allow(dead_code)]
    state: Arc<StateStore>,
}

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

impl DatadogSink {
    pub fn new(
        options: &toml::Table,
        key: Secret,
        state: Arc<StateStore>,
        http: reqwest::Client,
    ) -> anyhow::Result<DatadogSink> {
        let cfg: DatadogConfig = toml::Value::Table(options.clone())
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("[sink]: {}", e.message().trim()))?;
        let site = std::env::var("DD_SITE")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or(cfg.site)
            .unwrap_or_else(|| "datadoghq.com".into());
        let base = match std::env::var("DD_URL")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or(cfg.endpoint)
        {
            Some(url) => url,
            None => site_base(&site).map_err(anyhow::Error::msg)?,
        };
        let base = crate::net::check_base_url(&base).map_err(anyhow::Error::msg)?;
        let timeout = match cfg.timeout.as_deref() {
            Some(t) => crate::checks::duration::parse_duration(t)
                .map_err(|e| anyhow::anyhow!("[sink] timeout: {e}"))?,
            None => Duration::from_secs(20),
        };
        Ok(DatadogSink {
            base,
            site,
            key,
            timeout,
            http,
            state,
        })
    }

    async fn post(&self, path: &str, body: Vec<u8>, encoding: &str) -> Result<(), String> {
        let url = self
            .base
            .join(path)
            .map_err(|e| format!("cannot build the URL for {path}: {e}"))?;
        let response = self
            .http
            .post(url)
            .timeout(self.timeout)
            .header("DD-API-KEY", self.key.expose())
            .header("Content-Type", "application/json")
            .header("Content-Encoding", encoding)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{path}: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() == 403 {
            return Err(format!("{path}: API key rejected by {}", self.site));
        }
        Err(format!(
            "{path}: HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        ))
    }

    pub async fn deliver(&self, metrics: &[Metric]) -> DeliveryReport {
        let mut report = DeliveryReport {
            destination: format!("Datadog ({})", self.site),
            ..Default::default()
        };
        let (series, distributions) = encode::payloads(metrics);
        if !series.series.is_empty() {
            let result = serde_json::to_vec(&series)
                .map_err(|e| e.to_string())
                .and_then(|json| zstd::bulk::compress(&json, 3).map_err(|e| e.to_string()));
            match result {
                Ok(body) => match self.post("/api/v2/series", body, "zstd1").await {
                    Ok(()) => report.delivered_series += series.series.len(),
                    Err(e) => report.problems.push(e),
                },
                Err(e) => report.problems.push(format!("cannot encode series: {e}")),
            }
        }
        if !distributions.series.is_empty() {
            let result = serde_json::to_vec(&distributions)
                .map_err(|e| e.to_string())
                .and_then(|json| {
                    let mut enc =
                        flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                    enc.write_all(&json)
                        .and_then(|_| enc.finish())
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(body) => match self
                    .post("/api/v1/distribution_points", body, "deflate")
                    .await
                {
                    Ok(()) => report.delivered_series += distributions.series.len(),
                    Err(e) => report.problems.push(e),
                },
                Err(e) => report
                    .problems
                    .push(format!("cannot encode distributions: {e}")),
            }
        }
        report.ok = report.problems.is_empty();
        report
    }
}
