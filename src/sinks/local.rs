//! The local sink: the request bodies Datadog would get, written to the state store.
//!
//! Each run writes `payloads/<UTC time>/series.json` and `distribution_points.json` (the same
//! documents as a dry run). Only the newest [`KEEP_RUNS`] runs are kept, so a laptop or a
//! key-less CronJob does not fill its disk. A run with nothing to write writes no folder, and
//! pruning a run removes its folder too, so no empty payload folders are left behind.

use std::sync::Arc;

use bytes::Bytes;

use super::DeliveryReport;
use crate::schema::Metric;
use crate::sinks::datadog::encode;
use crate::state::StateStore;

pub const KEEP_RUNS: usize = 50;

pub struct LocalSink {
    state: Arc<StateStore>,
}

impl LocalSink {
    pub fn new(state: Arc<StateStore>) -> LocalSink {
        LocalSink { state }
    }

    pub async fn deliver(&self, metrics: &[Metric]) -> DeliveryReport {
        if metrics.is_empty() {
            return DeliveryReport {
                destination: format!("{} (nothing to write)", self.state.location()),
                ok: true,
                ..Default::default()
            };
        }
        let dir = format!(
            "payloads/{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        let mut report = DeliveryReport {
            destination: format!("{}/{dir}", self.state.location()),
            ..Default::default()
        };
        let (series, distributions) = encode::payloads(metrics);
        let bodies = [
            ("series.json", serde_json::to_vec_pretty(&series)),
            (
                "distribution_points.json",
                serde_json::to_vec_pretty(&distributions),
            ),
        ];
        for (file, body) in bodies {
            let key = format!("{dir}/{file}");
            let result = match body {
                // Files under the state directory leave the process: redacted like every other.
                Ok(b) => self
                    .state
                    .put(
                        &key,
                        Bytes::from(
                            crate::secret::redact(&String::from_utf8_lossy(&b)).into_owned(),
                        ),
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot encode {file}: {e}")),
            };
            if let Err(e) = result {
                report.problems.push(e);
            }
        }
        report.ok = report.problems.is_empty();
        if report.ok {
            report.delivered_series = metrics.len();
        }
        if let Err(e) = self.prune().await {
            tracing::warn!("could not prune old local payloads: {e}");
        }
        report
    }

    async fn prune(&self) -> Result<(), crate::state::StateError> {
        let keys = self.state.list("payloads").await?;
        let mut runs: Vec<&str> = keys
            .iter()
            .filter_map(|k| k.strip_prefix("payloads/")?.split('/').next())
            .collect();
        runs.dedup();
        if runs.len() <= KEEP_RUNS {
            return Ok(());
        }
        let cutoff = runs.len() - KEEP_RUNS;
        for old in &runs[..cutoff] {
            for k in keys
                .iter()
                .filter(|k| k.starts_with(&format!("payloads/{old}/")))
            {
                self.state.delete(k).await?;
            }
            // A file store keeps the emptied folder; remove it (only if it is empty).
            if let Some(root) = self.state.local_dir() {
                let _ = std::fs::remove_dir(root.join("payloads").join(old));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs_on_disk(root: &std::path::Path) -> Vec<String> {
        match std::fs::read_dir(root.join("payloads")) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    #[tokio::test]
    async fn nothing_to_write_makes_no_folder_and_pruning_removes_folders() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(StateStore::open(&dir.path().display().to_string()).unwrap());
        let sink = LocalSink::new(state.clone());
        let report = sink.deliver(&[]).await;
        assert!(report.ok, "{:?}", report.problems);
        assert!(
            runs_on_disk(dir.path()).is_empty(),
            "an empty run wrote a folder"
        );
        assert!(!dir.path().join("payloads").exists());

        for i in 0..KEEP_RUNS + 3 {
            let key = format!("payloads/20260101T0000{i:02}.000Z/series.json");
            state.put(&key, Bytes::from_static(b"{}")).await.unwrap();
        }
        assert_eq!(runs_on_disk(dir.path()).len(), KEEP_RUNS + 3);
        sink.prune().await.unwrap();
        let mut left = runs_on_disk(dir.path());
        left.sort();
        assert_eq!(left.len(), KEEP_RUNS, "emptied folders are left: {left:?}");
        assert_eq!(left[0], "20260101T000003.000Z");
    }
}
