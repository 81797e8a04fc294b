//! `--dry-run`: print the exact requests that would be sent, send nothing.
//!
//! The requests come from the Datadog sink's own request builder, so a dry run shows the same
//! batches (split by the size and point limits, filtered by the timestamp window) that a real
//! run would send, with their bodies uncompressed. The output is one JSON document,
//! `{"requests":[{"method","path","body"}, …]}`, so it can be piped into `jq` or diffed between
//! runs; the matrix goes to stderr to keep stdout clean.

use std::path::PathBuf;

use super::DeliveryReport;
use crate::schema::Metric;
use crate::sinks::datadog::Compression;
use crate::sinks::datadog::normalize::Window;
use crate::sinks::datadog::request::RequestBuilder;

pub struct DryRunSink {
    output: Option<PathBuf>,
}

impl DryRunSink {
    pub fn new(output: Option<PathBuf>) -> DryRunSink {
        DryRunSink { output }
    }

    /// The requests as one JSON document, relative to the current time.
    pub fn render(metrics: &[Metric]) -> Result<String, String> {
        Self::render_at(metrics, chrono::Utc::now().timestamp()).map(|(t, _, _)| t)
    }

    /// The requests for a run taken at `now`, how many series they hold and how many points
    /// would not be sent (outside Datadog's window, not finite).
    pub fn render_at(metrics: &[Metric], now: i64) -> Result<(String, usize, usize), String> {
        let mut builder =
            RequestBuilder::new(metrics.iter(), Window::new(now), Compression::default())
                .keep_raw();
        let mut requests = Vec::new();
        let mut series = 0;
        for req in builder.by_ref() {
            let raw = req.uncompressed().map_err(|e| e.to_string())?;
            let body: serde_json::Value =
                serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
            series += req.series;
            requests.push(serde_json::json!({
                "method": "POST",
                "path": req.endpoint.path(),
                "body": body,
            }));
        }
        if let Some(p) = builder.problems.first() {
            return Err(p.clone());
        }
        if builder.dropped.total() > 0 {
            tracing::warn!(
                "dry run: {} points would not be sent ({})",
                builder.dropped.total(),
                builder.dropped.describe()
            );
        }
        let mut text = serde_json::to_string_pretty(&serde_json::json!({ "requests": requests }))
            .map_err(|e| e.to_string())?;
        text.push('\n');
        Ok((text, series, builder.dropped.total()))
    }

    pub async fn deliver(&self, metrics: &[Metric]) -> DeliveryReport {
        self.deliver_at(metrics, chrono::Utc::now().timestamp())
            .await
    }

    pub async fn deliver_at(&self, metrics: &[Metric], now: i64) -> DeliveryReport {
        let mut report = DeliveryReport {
            destination: match &self.output {
                Some(p) => p.display().to_string(),
                None => "stdout (dry run)".into(),
            },
            ..Default::default()
        };
        let (text, series, dropped) = match Self::render_at(metrics, now) {
            Ok(t) => t,
            Err(e) => {
                report
                    .problems
                    .push(format!("cannot encode the request bodies: {e}"));
                return report;
            }
        };
        // The request bodies leave the process: no secret's value goes with them.
        let text = crate::secret::redact(&text);
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
                report.delivered_series = series;
                report.dropped_points = dropped;
            }
            Err(e) => report.problems.push(e),
        }
        report
    }
}
