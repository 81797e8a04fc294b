//! The request builder: a stream of metrics in, a lazy sequence of ready requests out.
//!
//! It pulls one metric at a time, lets the normaliser decide whether it may be sent, and feeds
//! it to the encoder for its endpoint (series or distribution points). A request is handed out
//! as soon as its batch is sealed, so sending starts while later metrics are still being
//! encoded and memory stays at a batch or two whatever the number of metrics.

use std::borrow::Borrow;

use super::config::Compression;
use super::encode::{
    EncodeError, EncodedRequest, Encoder, Endpoint, Entry, LIMITS, Limits, samples_per_entry,
};
use super::normalize::{DropReason, Dropped, Window};
use crate::schema::Metric;

pub struct RequestBuilder<I> {
    metrics: I,
    window: Window,
    limits: Limits,
    series: Encoder,
    distributions: Encoder,
    done: bool,
    /// Points not sent, by reason (outside the window, not finite, fit in no request).
    pub dropped: Dropped,
    /// Encoding failures, for the report.
    pub problems: Vec<String>,
    /// Series entries handed to the encoders.
    pub accepted: usize,
}

impl<I, M> RequestBuilder<I>
where
    I: Iterator<Item = M>,
    M: Borrow<Metric>,
{
    pub fn new(metrics: I, window: Window, compression: Compression) -> RequestBuilder<I> {
        Self::with_limits(metrics, window, compression, LIMITS)
    }

    pub fn with_limits(
        metrics: I,
        window: Window,
        compression: Compression,
        limits: Limits,
    ) -> RequestBuilder<I> {
        RequestBuilder {
            metrics,
            window,
            limits,
            series: Encoder::new(Endpoint::Series, compression, limits),
            // The distribution endpoint accepts deflate only.
            distributions: Encoder::new(Endpoint::DistributionPoints, Compression::Deflate, limits),
            done: false,
            dropped: Dropped::default(),
            problems: Vec::new(),
            accepted: 0,
        }
    }

    /// Keep uncompressed bodies too (the dry run prints them).
    pub fn keep_raw(mut self) -> RequestBuilder<I> {
        self.series = self.series.keep_raw(true);
        self.distributions = self.distributions.keep_raw(true);
        self
    }

    fn note(&mut self, result: Result<(), EncodeError>, points: usize) {
        if let Err(e) = result {
            self.dropped.add(DropReason::Rejected, points);
            self.problems.push(e.to_string());
        }
    }

    fn finish(&mut self) {
        let r = self.series.finish();
        self.note(r, 0);
        let r = self.distributions.finish();
        self.note(r, 0);
        let unfit = self.series.unfit_points + self.distributions.unfit_points;
        if unfit > 0 {
            self.problems.push(format!(
                "{unfit} points were larger than a whole request allows and were not sent"
            ));
        }
        self.dropped.add(DropReason::Rejected, unfit);
        self.done = true;
    }
}

impl<I, M> Iterator for RequestBuilder<I>
where
    I: Iterator<Item = M>,
    M: Borrow<Metric>,
{
    type Item = EncodedRequest;

    fn next(&mut self) -> Option<EncodedRequest> {
        loop {
            if let Some(r) = self.series.pop().or_else(|| self.distributions.pop()) {
                return Some(r);
            }
            if self.done {
                return None;
            }
            let Some(m) = self.metrics.next() else {
                self.finish();
                continue;
            };
            let m = m.borrow();
            match self.window.entry(m) {
                Ok(Entry::Series(s)) => {
                    self.accepted += 1;
                    let r = self.series.push(&s, 1);
                    self.note(r, 1);
                }
                Ok(Entry::Distribution(d)) => {
                    self.accepted += 1;
                    // Any number of samples: split into entries that each fit a request.
                    for c in d.chunks(samples_per_entry(self.limits)) {
                        let points = c.point_count();
                        let r = self.distributions.push(&c, points);
                        self.note(r, points);
                    }
                }
                Err((reason, points)) => self.dropped.add(reason, points),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::MetricValue;

    #[test]
    fn metrics_are_routed_by_kind_and_filtered_by_window() {
        let now = 1_700_000_000;
        let m = |value, ts| Metric {
            name: "metta.infra.t.x".into(),
            value,
            timestamp: ts,
            tags: vec!["a:b".into()],
            unit: None,
        };
        let metrics = [
            m(MetricValue::Gauge(1.0), now),
            m(MetricValue::Distribution(vec![1.0, 2.0]), now),
            m(MetricValue::Gauge(1.0), now - 7200),
            m(
                MetricValue::Count {
                    value: 3.0,
                    interval: 60,
                },
                now,
            ),
        ];
        let mut b = RequestBuilder::new(metrics.iter(), Window::new(now), Compression::Gzip);
        let reqs: Vec<_> = b.by_ref().collect();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].endpoint, Endpoint::Series);
        assert_eq!(reqs[0].series, 2);
        assert_eq!(reqs[0].compression, Compression::Gzip);
        assert_eq!(reqs[1].endpoint, Endpoint::DistributionPoints);
        assert_eq!(reqs[1].compression, Compression::Deflate);
        assert_eq!(reqs[1].points, 2);
        assert_eq!(b.dropped.total(), 1);
        assert_eq!(b.dropped.describe(), "1 expired");
    }
}
