//! `--dry-run`: print the exact requests that would be sent, send nothing.
//!
//! The output is one JSON document, `{"requests":[{"method","path","body"}, …]}`, so it can be
//! piped into `jq` or diffed between runs; the matrix goes to stderr to keep stdout clean.

use std::path::PathBuf;

use super::DeliveryReport;
use crate::schema::Metric;
use crate::sinks::datadog::encode;

pub struct DryRunSink {
    output: Option<PathBuf>,
}

impl DryRunSink {
    pub fn new(output: Option<PathBuf>) -> DryRunSink {
        DryRunSink { output }
    }

    /// The requests as one JSON document.
    pub fn render(metrics: &[Metric]) -> serde_json::Result<String> {
        let (series, distributions) = encode::payloads(metrics);
        let mut requests = Vec::new();
        if !series.series.is_empty() {
            requests.push(serde_json::json!({
                "method": "POST",
                "path": "/api/v2/series",
                "body": serde_json::to_value(&series)?,
            }));
        }
        if !distributions.series.is_empty() {
            requests.push(serde_json::json!({
                "method": "POST",
                "path": "/api/v1/distribution_points",
                "body": serde_json::to_value(&distributions)?,
            }));
        }
        let mut text = serde_json::to_string_pretty(&serde_json::json!({ "requests": requests }))?;
        text.push('\n');
        Ok(text)
    }

    pub async fn deliver(&self, metrics: &[Metric]) -> DeliveryReport {
        let mut report = DeliveryReport {
            destination: match &self.output {
                Some(p) => p.display().to_string(),
                None => "stdout (dry run)".into(),
            },
            ..Default::default()
        };
        let text = match Self::render(metrics) {
            Ok(t) => t,
            Err(e) => {
                report
                    .problems
                    .push(format!("cannot encode the request bodies: {e}"));
                return report;
            }
        };
        let written = match &self.output {
            Some(path) => tokio::fs::write(path, text.as_bytes())
                .await
                .map_err(|e| format!("cannot write {}: {e}", path.display())),
            None => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|_| out.flush())
                    .map_err(|e| format!("cannot write to stdout: {e}"))
            }
        };
        match written {
            Ok(()) => {
                report.ok = true;
                report.delivered_series = metrics.len();
            }
            Err(e) => report.problems.push(e),
        }
        report
    }
}
