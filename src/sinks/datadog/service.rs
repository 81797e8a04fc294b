//! The delivery service: sends the sink's requests through the [`Client`] with retries,
//! splitting a request the intake answers with 413 into halves (read back into entries,
//! recursively, until the intake accepts), and stopping early when the key is rejected, the
//! intake stops answering, the deadline passes or the shutdown grace period ends: what is not
//! sent then goes to the spool.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;

use super::client::{ApiError, Client, RetryPolicy, with_retries};
use super::config::Compression;
use super::encode::{EncodedRequest, LIMITS, encode_entries};

/// What happened to the requests given to [`Service::deliver`].
#[derive(Debug, Default)]
pub struct Outcome {
    pub delivered_series: usize,
    pub delivered_points: usize,
    /// Not delivered but worth trying again next run.
    pub retry_later: Vec<EncodedRequest>,
    /// Points the intake refused for good (400, or one entry still too large).
    pub rejected_points: usize,
    pub problems: Vec<String>,
}

impl Outcome {
    pub fn merge(&mut self, other: Outcome) {
        self.delivered_series += other.delivered_series;
        self.delivered_points += other.delivered_points;
        self.retry_later.extend(other.retry_later);
        self.rejected_points += other.rejected_points;
        self.problems.extend(other.problems);
    }
}

/// Sends requests with retries, splitting on 413, and stops early when the intake is clearly
/// unavailable or the key is rejected (the rest goes to the spool without being tried).
pub struct Service {
    pub client: Client,
    pub policy: RetryPolicy,
    compression: Compression,
    /// Set on a 403: every later request would fail the same way.
    key_rejected: AtomicBool,
    /// Requests that used up their retries; past two, the intake is treated as down.
    exhausted: AtomicUsize,
}

impl Service {
    pub fn new(client: Client, policy: RetryPolicy, compression: Compression) -> Service {
        Service {
            client,
            policy,
            compression,
            key_rejected: AtomicBool::new(false),
            exhausted: AtomicUsize::new(0),
        }
    }

    /// Why nothing more should be sent this run, if so.
    pub fn stop_reason(&self) -> Option<&'static str> {
        if self.key_rejected.load(Ordering::Relaxed) {
            Some("the API key was rejected")
        } else if self.exhausted.load(Ordering::Relaxed) >= 2 {
            Some("the intake is not answering")
        } else if Instant::now() >= self.policy.deadline {
            Some("the delivery deadline passed")
        } else if crate::shutdown::deadline().is_some_and(|d| Instant::now() >= d) {
            Some("the process was asked to stop and its grace period ran out")
        } else {
            None
        }
    }

    /// POST with retries. `Err` is the last error once retrying is pointless or out of budget.
    pub async fn post_with_retries(
        &self,
        path: &str,
        encoding: Option<Compression>,
        body: Bytes,
    ) -> Result<Bytes, ApiError> {
        let result = with_retries(
            &self.policy,
            || self.key_rejected.load(Ordering::Relaxed),
            |timeout| {
                let body = body.clone();
                async move {
                    let r = self.client.post(path, encoding, body, timeout).await;
                    if let Err(ApiError::Forbidden { .. }) = r {
                        self.key_rejected.store(true, Ordering::Relaxed);
                    }
                    r
                }
            },
        )
        .await;
        result.map_err(|failed| {
            if failed.retries_exhausted {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
            }
            failed.error
        })
    }

    /// Deliver one request (and its halves, after a 413).
    pub async fn deliver(&self, request: EncodedRequest) -> Outcome {
        let mut out = Outcome::default();
        let mut stack = vec![request];
        while let Some(req) = stack.pop() {
            if let Some(why) = self.stop_reason() {
                out.problems.push(format!(
                    "{}: {} series not sent because {why}",
                    req.endpoint.path(),
                    req.series
                ));
                out.retry_later.push(req);
                continue;
            }
            let path = req.endpoint.path();
            match self
                .post_with_retries(path, Some(req.compression), req.body.clone())
                .await
            {
                Ok(_) => {
                    out.delivered_series += req.series;
                    out.delivered_points += req.points;
                }
                Err(ApiError::TooLarge { .. }) if req.series > 1 => {
                    match split(&req, self.compression) {
                        Ok(halves) => {
                            tracing::warn!(
                                "{path}: HTTP 413 for {} series ({} bytes); sending them in {} smaller requests",
                                req.series,
                                req.body.len(),
                                halves.len()
                            );
                            stack.extend(halves.into_iter().rev());
                        }
                        Err(e) => {
                            out.problems
                                .push(format!("{path}: cannot split after 413: {e}"));
                            out.retry_later.push(req);
                        }
                    }
                }
                Err(e @ (ApiError::BadRequest { .. } | ApiError::TooLarge { .. })) => {
                    tracing::error!("{e}; {} points dropped", req.points);
                    out.rejected_points += req.points;
                    out.problems.push(e.to_string());
                }
                Err(e) => {
                    out.problems.push(e.to_string());
                    out.retry_later.push(req);
                }
            }
        }
        out
    }
}

/// Two (or more) requests holding the entries of `req` in halves.
fn split(req: &EncodedRequest, compression: Compression) -> Result<Vec<EncodedRequest>, String> {
    let entries = req.entries().map_err(|e| e.to_string())?;
    let mid = entries.len() / 2;
    let mut out = Vec::new();
    for half in [&entries[..mid], &entries[mid..]] {
        let (reqs, unfit) = encode_entries(half, compression, LIMITS).map_err(|e| e.to_string())?;
        if unfit > 0 {
            return Err(format!("{unfit} points fit in no request"));
        }
        out.extend(reqs);
    }
    Ok(out)
}
