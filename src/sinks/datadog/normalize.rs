//! The normaliser: decides which points may be sent at all, before anything is encoded.
//!
//! Datadog accepts points at most one hour old and at most ten minutes ahead; anything else is
//! silently discarded by the intake, so it is dropped here instead, *and counted* by reason.
//! JSON has no NaN or infinity, so non-finite values are dropped and counted the same way.

use std::collections::BTreeMap;

use crate::schema::{Metric, MetricValue};

use super::encode::{DistributionSeries, Entry, Series};

/// How far back Datadog accepts points.
pub const MAX_AGE_SECS: i64 = 3600;
/// How far ahead Datadog accepts points.
pub const MAX_AHEAD_SECS: i64 = 600;

/// The accepted timestamp range at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub now: i64,
}

/// Why a point was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Older than one hour (usually spooled data that waited too long).
    Expired,
    /// More than ten minutes in the future.
    InFuture,
    /// NaN or infinite.
    NotFinite,
    /// The intake refused it (400) or it cannot fit any request.
    Rejected,
    /// It could not be delivered and the spool could not store it.
    SpoolFailed,
}

impl DropReason {
    /// A short stable tag value (`reason:<tag>` on the self-metric).
    pub fn tag(self) -> &'static str {
        match self {
            DropReason::Expired => "expired",
            DropReason::InFuture => "in_future",
            DropReason::NotFinite => "not_finite",
            DropReason::Rejected => "rejected",
            DropReason::SpoolFailed => "spool_failed",
        }
    }
}

/// Points dropped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped(pub BTreeMap<DropReason, usize>);

impl Dropped {
    pub fn add(&mut self, reason: DropReason, points: usize) {
        if points > 0 {
            *self.0.entry(reason).or_default() += points;
        }
    }

    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    pub fn merge(&mut self, other: &Dropped) {
        for (r, n) in &other.0 {
            self.add(*r, *n);
        }
    }

    /// `12 expired, 1 not_finite`
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(r, n)| format!("{n} {}", r.tag()))
            .collect();
        parts.join(", ")
    }
}

impl Window {
    pub fn new(now: i64) -> Window {
        Window { now }
    }

    /// `None` when `ts` may be sent, else why not.
    pub fn check(&self, ts: i64) -> Option<DropReason> {
        if ts < self.now - MAX_AGE_SECS {
            Some(DropReason::Expired)
        } else if ts > self.now + MAX_AHEAD_SECS {
            Some(DropReason::InFuture)
        } else {
            None
        }
    }

    /// The intake entry for `m`, or the reason it cannot be sent (counting its points).
    pub fn entry<'a>(&self, m: &'a Metric) -> Result<Entry<'a>, (DropReason, usize)> {
        let points = m.value.point_count();
        if let Some(reason) = self.check(m.timestamp) {
            return Err((reason, points));
        }
        let finite = match &m.value {
            MetricValue::Gauge(v)
            | MetricValue::Count { value: v, .. }
            | MetricValue::Rate { value: v, .. } => v.is_finite(),
            MetricValue::Distribution(vs) => !vs.is_empty() && vs.iter().all(|v| v.is_finite()),
        };
        if !finite {
            return Err((DropReason::NotFinite, points));
        }
        Ok(match Series::from_metric(m) {
            Some(s) => Entry::Series(s),
            None => match DistributionSeries::from_metric(m) {
                Some(d) => Entry::Distribution(d),
                None => return Err((DropReason::NotFinite, points)),
            },
        })
    }

    /// Drop a spooled series entry whose point has left the window.
    pub fn keep_series(&self, s: &Series<'_>, dropped: &mut Dropped) -> bool {
        match self.check(s.points[0].timestamp) {
            None => true,
            Some(r) => {
                dropped.add(r, 1);
                false
            }
        }
    }

    pub fn keep_distribution(&self, d: &DistributionSeries<'_>, dropped: &mut Dropped) -> bool {
        match self.check(d.points[0].0) {
            None => true,
            Some(r) => {
                dropped.add(r, d.points[0].1.len().max(1));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(ts: i64, v: f64) -> Metric {
        Metric {
            name: "a.b.c".into(),
            value: MetricValue::Gauge(v),
            timestamp: ts,
            tags: vec!["k:v".into()],
            unit: None,
        }
    }

    #[test]
    fn the_window_is_one_hour_back_and_ten_minutes_ahead() {
        let w = Window::new(10_000);
        assert!(w.entry(&gauge(10_000 - 3600, 1.0)).is_ok());
        assert_eq!(
            w.entry(&gauge(10_000 - 3601, 1.0)).err(),
            Some((DropReason::Expired, 1))
        );
        assert!(w.entry(&gauge(10_600, 1.0)).is_ok());
        assert_eq!(
            w.entry(&gauge(10_601, 1.0)).err(),
            Some((DropReason::InFuture, 1))
        );
        assert_eq!(
            w.entry(&gauge(10_000, f64::NAN)).err(),
            Some((DropReason::NotFinite, 1))
        );
        let mut d = Dropped::default();
        d.add(DropReason::Expired, 3);
        d.add(DropReason::NotFinite, 1);
        d.add(DropReason::Rejected, 0);
        assert_eq!(d.total(), 4);
        assert_eq!(d.describe(), "3 expired, 1 not_finite");
    }
}
