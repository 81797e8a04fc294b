//! The Datadog sink: metrics to the intake API, nothing lost and nothing oversized.
//!
//! One file per stage, in the order data flows (the shape of Vector's Datadog metrics sink):
//! - [`config`]: the `[sink]` table and `DD_*` environment, validated once (site, base URL,
//!   compression, timeouts, retries);
//! - [`normalize`]: which points may be sent at all (Datadog's −1 h / +10 min window, finite
//!   values); the rest is dropped *and counted* by reason;
//! - [`encode`]: entries into compressed bodies within the size and point limits, handing back
//!   what does not fit to the next batch;
//! - [`request`]: the lazy metric stream → request sequence tying the two together;
//! - [`client`]: the one Datadog API client (keys, typed errors, retry policy), shared with
//!   the dashboard commands, `verify` and `credentials check`;
//! - [`service`]: delivery through the client (413 split, early stop, deadline);
//! - [`spool`]: undelivered requests kept in the state store and re-sent first next run;
//! - [`events`]: status-change events;
//! - this file: the sink that runs the stages for one delivery and reports what happened.

pub mod client;
pub mod config;
pub mod encode;
pub mod events;
pub mod normalize;
pub mod request;
pub mod service;
pub mod spool;

use std::borrow::Borrow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;

use super::DeliveryReport;
use crate::checks::StatusChange;
use crate::schema::{Metric, Schema};
use crate::state::StateStore;
pub use client::{ApiError, Client, KeyCheck, Purpose, RetryPolicy, keys, with_retries};
pub use config::{Compression, DatadogConfig, SITES, site_base};
use encode::{EncodedRequest, Entry, LIMITS, encode_entries};
use normalize::{DropReason, Dropped, Window};
use request::RequestBuilder;
use service::{Outcome, Service};
use spool::{Spool, SpoolBatch};

/// Who the sink's own metrics (`<prefix>.delivery.dropped_points`) are reported as.
struct SelfMetrics {
    schema: Schema,
    source: String,
}

pub struct DatadogSink {
    client: Client,
    state: Arc<StateStore>,
    self_metrics: Option<Box<SelfMetrics>>,
}

/// Problems can repeat per request; keep each once and at most a screenful.
fn summarise(problems: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut more = 0;
    for p in problems {
        if out.contains(&p) {
            continue;
        }
        if out.len() < 10 {
            out.push(p);
        } else {
            more += 1;
        }
    }
    if more > 0 {
        out.push(format!("… and {more} more problems"));
    }
    out
}

impl DatadogSink {
    /// The sink sending through `client` (for [`Purpose::Intake`]), spooling into `state`.
    pub fn new(client: Client, state: Arc<StateStore>) -> DatadogSink {
        DatadogSink {
            client: client.intake_only(),
            state,
            self_metrics: None,
        }
    }

    /// Report dropped points as `<prefix>.delivery.dropped_points`, built by `schema`.
    pub fn with_self_metrics(mut self, schema: Schema, source: &str) -> DatadogSink {
        self.self_metrics = Some(Box::new(SelfMetrics {
            schema,
            source: source.to_string(),
        }));
        self
    }

    pub fn site(&self) -> &str {
        self.client.site()
    }

    pub fn config(&self) -> &DatadogConfig {
        self.client.config()
    }

    fn service(&self) -> Service {
        Service::new(
            self.client.clone(),
            RetryPolicy::from_config(self.client.config(), Instant::now()),
            self.client.config().compression,
        )
    }

    /// Deliver a run's metrics, stamped relative to the current time.
    pub async fn deliver(&self, metrics: &[Metric]) -> DeliveryReport {
        self.deliver_at(metrics.iter(), chrono::Utc::now().timestamp())
            .await
    }

    /// Deliver: the spool first, then `metrics` (streamed, never held as one body), then the
    /// dropped-points self-metric. `now` (Unix seconds) decides which points are inside
    /// Datadog's window.
    pub async fn deliver_at<I, M>(&self, metrics: I, now: i64) -> DeliveryReport
    where
        I: Iterator<Item = M>,
        M: Borrow<Metric>,
    {
        let service = self.service();
        let spool = Spool::new(self.state.clone());
        let window = Window::new(now);
        let mut dropped = Dropped::default();
        let mut problems = Vec::new();
        let mut report = DeliveryReport {
            destination: format!("Datadog ({})", self.client.config().describe()),
            ..Default::default()
        };

        let resent = self
            .resend_spool(&service, &spool, window, &mut dropped, &mut problems)
            .await;
        report.delivered_series += resent.delivered_series;
        let mut failed = resent.retry_later_count;

        let mut builder = RequestBuilder::new(metrics, window, self.config().compression);
        let outcome = self.send_all(&service, &mut builder).await;
        dropped.merge(&builder.dropped);
        problems.extend(std::mem::take(&mut builder.problems));
        failed += self
            .settle(outcome, &spool, &mut report, &mut dropped, &mut problems)
            .await;

        self.finish_report(
            &service, &spool, window, now, dropped, failed, problems, report,
        )
        .await
    }

    /// Deliver a run's ledger batch, already durable in the spool under `key` and claimed by
    /// this run (see `run::ledger`): send its entries, then remove it; what the intake could not
    /// take now is written back under the same key (one whole-object put, so a kill leaves the
    /// old or the new content, never neither) for the next run; what it refused for good is
    /// counted. `dropped` holds what was already dropped while preparing the batch.
    pub async fn deliver_ledger(
        &self,
        key: &str,
        batch: SpoolBatch,
        claim: crate::state::Claim,
        now: i64,
        mut dropped: Dropped,
    ) -> DeliveryReport {
        let service = self.service();
        let spool = Spool::new(self.state.clone());
        let window = Window::new(now);
        let mut problems = Vec::new();
        let mut report = DeliveryReport {
            destination: format!("Datadog ({})", self.client.config().describe()),
            ..Default::default()
        };
        let manifest = batch.manifest.clone();
        let absorbed = batch.absorbed.clone();
        let entries = batch.into_entries();
        let total = entries.len();
        let mut keep: Vec<Entry<'static>> = Vec::new();
        let failed = match encode_entries(&entries, self.config().compression, LIMITS) {
            Ok((requests, unfit)) => {
                dropped.add(DropReason::Rejected, unfit);
                let outcome = self.send_all(&service, requests.into_iter()).await;
                report.delivered_series += outcome.delivered_series;
                dropped.add(DropReason::Rejected, outcome.rejected_points);
                problems.extend(outcome.problems);
                for req in &outcome.retry_later {
                    match req.entries() {
                        Ok(e) => keep.extend(e),
                        Err(e) => {
                            problems.push(format!("cannot read back an undelivered request: {e}"));
                            dropped.add(DropReason::SpoolFailed, req.points);
                        }
                    }
                }
                outcome.retry_later.len()
            }
            Err(e) => {
                // Nothing was sent: the batch stays as it is for the next run.
                problems.push(format!("cannot encode the ledger batch {key}: {e}"));
                keep = entries;
                1
            }
        };
        if keep.is_empty() {
            if let Err(e) = spool.remove(key).await {
                problems.push(format!("cannot remove delivered batch {key}: {e}"));
            }
        } else if keep.len() != total {
            let mut rest = SpoolBatch::from_entries(keep);
            rest.manifest = manifest;
            rest.absorbed = absorbed;
            report.spooled_series += rest.len();
            if let Err(e) = spool.put(key, &rest).await {
                // The batch as written before sending stays: what was delivered may go again.
                problems.push(format!("cannot rewrite spooled batch {key}: {e}"));
            }
        } else {
            report.spooled_series += total;
        }
        spool.release(claim).await;
        self.finish_report(
            &service, &spool, window, now, dropped, failed, problems, report,
        )
        .await
    }

    /// Send the dropped-points self-metric and settle the report's verdict and problems.
    #[allow(clippy::too_many_arguments)]
    async fn finish_report(
        &self,
        service: &Service,
        spool: &Spool,
        window: Window,
        now: i64,
        mut dropped: Dropped,
        mut failed: usize,
        mut problems: Vec<String>,
        mut report: DeliveryReport,
    ) -> DeliveryReport {
        if dropped.total() > 0 {
            tracing::warn!(
                "dropped {} points that cannot be delivered ({})",
                dropped.total(),
                dropped.describe()
            );
            let own = self.dropped_metrics(&dropped, now);
            if !own.is_empty() {
                let mut builder =
                    RequestBuilder::new(own.iter(), window, self.config().compression);
                let outcome = self.send_all(service, &mut builder).await;
                failed += self
                    .settle(outcome, spool, &mut report, &mut dropped, &mut problems)
                    .await;
            }
        }
        report.dropped_points = dropped.total();
        report.rejected_points = dropped.0.get(&DropReason::Rejected).copied().unwrap_or(0);
        report.send_failed = failed > 0 || dropped.0.contains_key(&DropReason::SpoolFailed);
        report.ok = failed == 0
            && !dropped.0.contains_key(&DropReason::Rejected)
            && !dropped.0.contains_key(&DropReason::SpoolFailed);
        if report.spooled_series > 0 {
            problems.push(format!(
                "{} series spooled in {} for the next run",
                report.spooled_series,
                self.state.location()
            ));
        }
        report.problems = summarise(problems);
        report
    }

    /// Send requests, `concurrency` at a time, as the iterator produces them.
    async fn send_all(
        &self,
        service: &Service,
        requests: impl Iterator<Item = EncodedRequest>,
    ) -> Outcome {
        futures::stream::iter(requests)
            .map(|r| service.deliver(r))
            .buffer_unordered(self.config().concurrency)
            .fold(Outcome::default(), |mut acc, o| async move {
                acc.merge(o);
                acc
            })
            .await
    }

    /// Count what was delivered, spool what should be retried, count what was refused.
    /// Returns how many requests were not delivered.
    async fn settle(
        &self,
        outcome: Outcome,
        spool: &Spool,
        report: &mut DeliveryReport,
        dropped: &mut Dropped,
        problems: &mut Vec<String>,
    ) -> usize {
        report.delivered_series += outcome.delivered_series;
        dropped.add(DropReason::Rejected, outcome.rejected_points);
        problems.extend(outcome.problems);
        let failed = outcome.retry_later.len();
        for req in outcome.retry_later {
            match self.spool_request(spool, &req).await {
                Ok(()) => report.spooled_series += req.series,
                Err(e) => {
                    problems.push(e);
                    dropped.add(DropReason::SpoolFailed, req.points);
                }
            }
        }
        failed
    }

    async fn spool_request(&self, spool: &Spool, req: &EncodedRequest) -> Result<(), String> {
        let batch = SpoolBatch::from_request(req)
            .map_err(|e| format!("cannot read back an undelivered request to spool it: {e}"))?;
        spool
            .write(&batch)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot spool {} undelivered series: {e}", batch.len()))
    }

    /// Re-send every spooled batch, oldest first, dropping (and counting) expired points.
    async fn resend_spool(
        &self,
        service: &Service,
        spool: &Spool,
        window: Window,
        dropped: &mut Dropped,
        problems: &mut Vec<String>,
    ) -> Resent {
        let mut resent = Resent::default();
        let keys = match spool.keys().await {
            Ok(k) => k,
            Err(e) => {
                problems.push(format!("cannot list the spool: {e}"));
                return resent;
            }
        };
        for key in keys {
            let claim = match spool.claim(&key).await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    tracing::info!("spooled batch {key} is being re-sent by another run");
                    continue;
                }
                Err(e) => {
                    problems.push(format!("cannot claim spooled batch {key}: {e}"));
                    continue;
                }
            };
            self.resend_one(service, spool, &key, window, dropped, problems, &mut resent)
                .await;
            spool.release(claim).await;
        }
        resent
    }

    /// Re-send one claimed spooled batch (see [`Self::resend_spool`]).
    #[allow(clippy::too_many_arguments)]
    async fn resend_one(
        &self,
        service: &Service,
        spool: &Spool,
        key: &str,
        window: Window,
        dropped: &mut Dropped,
        problems: &mut Vec<String>,
        resent: &mut Resent,
    ) {
        {
            let key = key.to_string();
            let mut batch = match spool.load(&key).await {
                Ok(Some(b)) => b,
                // Delivered and removed by another run since we listed it.
                Ok(None) => return,
                Err(e) => {
                    problems.push(format!("cannot read spooled batch {key}: {e}"));
                    return;
                }
            };
            let before = batch.points();
            batch.retain_window(window, dropped);
            let expired = before - batch.points();
            if batch.is_empty() {
                if let Err(e) = spool.remove(&key).await {
                    problems.push(format!("cannot remove spooled batch {key}: {e}"));
                }
                return;
            }
            if let Some(why) = service.stop_reason() {
                // Nothing will be sent this run: keep the batch, minus what expired.
                let kept = if expired > 0 {
                    self.state.put_json(&key, &batch).await
                } else {
                    Ok(())
                };
                if let Err(e) = kept {
                    problems.push(format!("cannot rewrite spooled batch {key}: {e}"));
                }
                resent.retry_later_count += 1;
                problems.push(format!("spooled batches kept for later because {why}"));
                return;
            }
            let entries = batch.into_entries();
            let outcome = match encode_entries(&entries, self.config().compression, LIMITS) {
                Ok((requests, unfit)) => {
                    dropped.add(DropReason::Rejected, unfit);
                    self.send_all(service, requests.into_iter()).await
                }
                Err(e) => {
                    problems.push(format!("cannot re-encode spooled batch {key}: {e}"));
                    resent.retry_later_count += 1;
                    return;
                }
            };
            tracing::info!(
                "re-sent {} spooled series from {key}",
                outcome.delivered_series
            );
            resent.delivered_series += outcome.delivered_series;
            dropped.add(DropReason::Rejected, outcome.rejected_points);
            problems.extend(outcome.problems);
            resent.retry_later_count += outcome.retry_later.len();
            let mut all_kept = true;
            for req in &outcome.retry_later {
                if let Err(e) = self.spool_request(spool, req).await {
                    problems.push(e);
                    all_kept = false;
                }
            }
            // Delete the old object only once what still failed is safely stored again.
            if all_kept {
                if let Err(e) = spool.remove(&key).await {
                    problems.push(format!("cannot remove spooled batch {key}: {e}"));
                }
            } else {
                problems.push(format!(
                    "kept spooled batch {key}: could not re-spool its failures"
                ));
            }
        }
    }

    /// `<prefix>.delivery.dropped_points` per reason, when the schema is known.
    fn dropped_metrics(&self, dropped: &Dropped, now: i64) -> Vec<Metric> {
        let Some(own) = &self.self_metrics else {
            return Vec::new();
        };
        dropped
            .0
            .iter()
            .filter_map(|(reason, points)| {
                own.schema
                    .dropped_points_metric(&own.source, "datadog", reason.tag(), *points, now)
                    .map_err(|e| tracing::error!("dropped-points self-metric refused: {e}"))
                    .ok()
            })
            .collect()
    }

    /// Send one Datadog event per status change (`POST /api/v1/events`). Returns how many
    /// were accepted, or every failure.
    pub async fn send_events(&self, changes: &[StatusChange]) -> Result<usize, String> {
        let Some(own) = &self.self_metrics else {
            return Err("events need the metric schema (DatadogSink::with_self_metrics)".into());
        };
        let service = self.service();
        let mut sent = 0;
        let mut errors = Vec::new();
        for change in changes {
            let event = match events::event(&own.schema, change) {
                Ok(e) => e,
                Err(e) => {
                    errors.push(format!("event for {}: {e}", change.row));
                    continue;
                }
            };
            let body = match serde_json::to_vec(&event) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    errors.push(format!("event for {}: {e}", change.row));
                    continue;
                }
            };
            match service
                .post_with_retries("/api/v1/events", None, body)
                .await
            {
                Ok(_) => sent += 1,
                Err(e) => errors.push(format!("event for {}: {e}", change.row)),
            }
        }
        if errors.is_empty() {
            Ok(sent)
        } else {
            Err(format!(
                "{sent} events sent; {}",
                summarise(errors).join("; ")
            ))
        }
    }
}

#[derive(Default)]
struct Resent {
    delivered_series: usize,
    retry_later_count: usize,
}
