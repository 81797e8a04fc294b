//! Request bodies for Datadog's intake, shared by the Datadog sink and `--dry-run` so that a dry
//! run prints exactly what would be sent.
//!
//! - `POST /api/v2/series`: `{"series":[{"metric","type","points":[{"timestamp","value"}],"tags","unit","interval"}]}`
//! - `POST /api/v1/distribution_points`: `{"series":[{"metric","points":[[ts,[v,…]]],"tags"}]}`

use serde::Serialize;

use crate::schema::{Metric, MetricValue};

#[derive(Serialize)]
pub struct SeriesPayload<'a> {
    pub series: Vec<Series<'a>>,
}

#[derive(Serialize)]
pub struct Series<'a> {
    pub metric: &'a str,
    #[serde(rename = "type")]
    pub kind: u8,
    pub points: [Point; 1],
    pub tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

#[derive(Serialize)]
pub struct Point {
    pub timestamp: i64,
    pub value: f64,
}

#[derive(Serialize)]
pub struct DistributionPayload<'a> {
    pub series: Vec<DistributionSeries<'a>>,
}

#[derive(Serialize)]
pub struct DistributionSeries<'a> {
    pub metric: &'a str,
    pub points: [(i64, &'a [f64]); 1],
    pub tags: &'a [String],
}

/// The v2 series entry for a gauge, count or rate; `None` for a distribution.
pub fn series(m: &Metric) -> Option<Series<'_>> {
    let (value, interval) = match &m.value {
        MetricValue::Gauge(v) => (*v, None),
        MetricValue::Count { value, interval } | MetricValue::Rate { value, interval } => {
            (*value, Some(*interval))
        }
        MetricValue::Distribution(_) => return None,
    };
    Some(Series {
        metric: &m.name,
        kind: m.value.intake_type().unwrap_or(0),
        points: [Point {
            timestamp: m.timestamp,
            value,
        }],
        tags: &m.tags,
        unit: m.unit.as_deref(),
        interval,
    })
}

/// The v1 distribution entry for a distribution; `None` for the others.
pub fn distribution(m: &Metric) -> Option<DistributionSeries<'_>> {
    match &m.value {
        MetricValue::Distribution(v) => Some(DistributionSeries {
            metric: &m.name,
            points: [(m.timestamp, v.as_slice())],
            tags: &m.tags,
        }),
        _ => None,
    }
}

/// Split metrics into the two payloads.
pub fn payloads(metrics: &[Metric]) -> (SeriesPayload<'_>, DistributionPayload<'_>) {
    (
        SeriesPayload {
            series: metrics.iter().filter_map(series).collect(),
        },
        DistributionPayload {
            series: metrics.iter().filter_map(distribution).collect(),
        },
    )
}
