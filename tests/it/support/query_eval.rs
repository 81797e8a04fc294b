//! A small evaluator of Datadog metric queries over what the fake intake accepted.
//!
//! It reads what a user reads: the dashboard's own queries, evaluated the way Datadog
//! aggregates points after many runs. It is written from Datadog's documented behaviour, not
//! from infra-health's code (it has its own query parser), so a test that compares its answer
//! with a scenario's ground truth checks what was *sent* against what is *true*.
//!
//! The query subset is the one the dashboard writes:
//!
//! ```text
//! AGG:METRIC{FILTER,…} [by {KEY,…}] [.as_count()] [.rollup(METHOD[, SECONDS])] [.fill(last, N)]
//! ```
//!
//! Evaluation over a time frame `[from, to]`:
//! 1. **Select** the accepted points of METRIC whose tags hold every filter (`key:value`;
//!    `$var` takes the template variable's value, `*` or an unset variable matches anything).
//! 2. **Buckets**: the frame is cut into rollup intervals — `.rollup`'s seconds, else Datadog's
//!    default for the frame's length ([`default_interval`]) — aligned on multiples of the
//!    interval since the epoch, so the last bucket of a week usually holds most of an hour.
//! 3. **Time aggregation** per series (one distinct tag set) and bucket: GAUGE points are
//!    averaged (or rolled up with `.rollup`'s method), COUNT points summed. A COUNT reads as a
//!    count only with `.as_count()`; without it (or with `.as_rate()`) the bucket's sum is
//!    divided by the bucket's seconds, Datadog's per-second rate, so a count widget that forgets
//!    the modifier shows a wrong number here as it would in Datadog.
//! 4. **Space aggregation** per group (`by` keys) and bucket with AGG (`avg`, `sum`, `min`,
//!    `max`) over the series. A DISTRIBUTION has no per-series step: AGG (`p50`, `p90`, `p95`,
//!    `p99`, `count`, `sum`, `avg`, `min`, `max`) is computed over every sample of every point in
//!    the bucket, which is why a sample sent twice weighs twice.
//! 5. `.fill(last, N)`: an empty bucket takes the last *real* value when it is at most N
//!    seconds old (a filled bucket does not carry the fill further); N is at most 600, as
//!    Datadog's query layer allows.
//!
//! A scalar (query value, query table) reduces each group's buckets with the widget's
//! aggregator (`last`, `sum`, `avg`, `min`, `max`); for a distribution with any reducer but
//! `last`, Datadog computes the percentile over every sample of the frame, and so does this.
//! A widget that pins its own frame (`time.live_span`) is evaluated over that frame, whatever
//! the dashboard's.
//!
//! Percentiles are nearest-rank over the exact samples (Datadog's sketches are within 1 %).

#![allow(dead_code)]

use std::collections::BTreeMap;

use super::fake_datadog::Recorded;

/// Datadog's default rollup interval for a time frame of `secs` seconds (the graphing
/// defaults: 20 s for an hour, 5 min for a day, 1 h for a week).
pub fn default_interval(secs: i64) -> i64 {
    match secs {
        s if s <= 3_600 => 20,
        s if s <= 4 * 3_600 => 60,
        s if s <= 86_400 => 300,
        s if s <= 2 * 86_400 => 600,
        s if s <= 7 * 86_400 => 3_600,
        _ => 4 * 3_600,
    }
}

/// The seconds of a `live_span` (`1h`, `15m`, `1d`, `1w`, …).
pub fn live_span_secs(span: &str) -> Option<i64> {
    let (n, unit) = span.split_at(span.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    Some(
        n * match unit {
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "mo" => 30 * 86_400,
            _ => return None,
        },
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub aggregator: String,
    pub metric: String,
    pub filters: Vec<Filter>,
    pub group_by: Vec<String>,
    pub as_count: bool,
    pub as_rate: bool,
    pub rollup: Option<(String, Option<i64>)>,
    pub fill_last: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Tag(String),
    Variable(String),
}

/// Read a query of the subset above; anything else is an error naming it.
pub fn parse(text: &str) -> Result<Query, String> {
    let text = text.trim();
    let (aggregator, rest) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: no aggregator"))?;
    let open = rest.find('{').ok_or_else(|| format!("{text:?}: no {{"))?;
    let close = rest.find('}').ok_or_else(|| format!("{text:?}: no }}"))?;
    let metric = rest[..open].to_string();
    let filters = rest[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != "*")
        .map(|f| match f.strip_prefix('$') {
            Some(v) => Filter::Variable(v.to_string()),
            None => Filter::Tag(f.to_string()),
        })
        .collect();
    let mut rest = rest[close + 1..].trim_start();
    let mut group_by = Vec::new();
    if let Some(after) = rest.strip_prefix("by {") {
        let end = after
            .find('}')
            .ok_or_else(|| format!("{text:?}: unclosed by"))?;
        group_by = after[..end]
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        rest = after[end + 1..].trim_start();
    }
    let mut q = Query {
        aggregator: aggregator.to_string(),
        metric,
        filters,
        group_by,
        as_count: false,
        as_rate: false,
        rollup: None,
        fill_last: None,
    };
    while let Some(call) = rest.strip_prefix('.') {
        let open = call
            .find('(')
            .ok_or_else(|| format!("{text:?}: bad function"))?;
        let close = call
            .find(')')
            .ok_or_else(|| format!("{text:?}: bad function"))?;
        let args: Vec<&str> = call[open + 1..close].split(',').map(str::trim).collect();
        match (&call[..open], args.as_slice()) {
            ("as_count", [""]) => q.as_count = true,
            ("as_rate", [""]) => q.as_rate = true,
            ("rollup", [m]) => q.rollup = Some((m.to_string(), None)),
            ("rollup", [m, s]) => {
                q.rollup = Some((
                    m.to_string(),
                    Some(s.parse().map_err(|_| text.to_string())?),
                ))
            }
            ("fill", ["last", n]) => {
                let n: i64 = n.parse().map_err(|_| text.to_string())?;
                if !(0..=600).contains(&n) {
                    return Err(format!("{text:?}: fill(last, N) takes N up to 600 seconds"));
                }
                q.fill_last = Some(n)
            }
            (f, _) => return Err(format!("{text:?}: unsupported function {f}")),
        }
        rest = call[close + 1..].trim_start();
    }
    if !rest.is_empty() {
        return Err(format!("{text:?}: trailing {rest:?}"));
    }
    Ok(q)
}

/// One group's key: its `by` tags, `key:value`, joined with `,`.
pub type Group = String;

/// One group's timeseries: (bucket start, value) per bucket.
pub type Buckets = Vec<(i64, Option<f64>)>;

/// What the intake accepted, ready to query.
pub struct Intake<'a> {
    pub points: &'a [Recorded],
    /// Template variable values (`env` → `prod`); an unset variable matches everything.
    pub variables: BTreeMap<String, String>,
}

fn tag_value<'t>(tags: &'t [String], key: &str) -> Option<&'t str> {
    tags.iter()
        .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
}

fn nearest_rank(samples: &mut [f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

/// `avg`, `sum`, `min`, `max`, `count`, or a percentile `pNN`, of some numbers.
pub fn aggregate(how: &str, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return if how == "count" { Some(0.0) } else { None };
    }
    Some(match how {
        "sum" => values.iter().sum(),
        "avg" => values.iter().sum::<f64>() / values.len() as f64,
        "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "count" => values.len() as f64,
        p if p.starts_with('p') => nearest_rank(values, p[1..].parse().ok()?)?,
        other => panic!("aggregator {other} is not in the evaluator's subset"),
    })
}

impl Intake<'_> {
    fn matches(&self, q: &Query, p: &Recorded) -> bool {
        p.metric == q.metric
            && q.filters.iter().all(|f| match f {
                Filter::Tag(t) => p.tags.iter().any(|pt| pt == t),
                Filter::Variable(v) => match self.variables.get(v) {
                    Some(value) if value != "*" => {
                        p.tags.iter().any(|pt| *pt == format!("{v}:{value}"))
                    }
                    _ => true,
                },
            })
    }

    fn group_of(q: &Query, p: &Recorded) -> Group {
        q.group_by
            .iter()
            .map(|k| format!("{k}:{}", tag_value(&p.tags, k).unwrap_or("N/A")))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The query as a timeseries over `[from, to]`: per group, one value (or none) per bucket,
    /// with the bucket's start time.
    pub fn timeseries(
        &self,
        text: &str,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<Group, Buckets>, String> {
        let q = parse(text)?;
        let interval = q
            .rollup
            .as_ref()
            .and_then(|(_, s)| *s)
            .unwrap_or_else(|| default_interval(to - from));
        // Buckets are aligned on multiples of the interval since the epoch, as Datadog's are.
        let first = from.div_euclid(interval);
        let buckets = (to.div_euclid(interval) - first + 1) as usize;
        let bucket_of = |ts: i64| (ts.div_euclid(interval) - first) as usize;
        let selected: Vec<&Recorded> = self
            .points
            .iter()
            .filter(|p| p.timestamp >= from && p.timestamp <= to && self.matches(&q, p))
            .collect();
        let is_distribution = selected.iter().any(|p| p.kind.is_none());
        // group → bucket → series (tags) → values
        type Cell = BTreeMap<Vec<String>, Vec<f64>>;
        let mut cells: BTreeMap<Group, Vec<Cell>> = BTreeMap::new();
        for p in &selected {
            let row = cells
                .entry(Self::group_of(&q, p))
                .or_insert_with(|| vec![BTreeMap::new(); buckets]);
            row[bucket_of(p.timestamp)]
                .entry(p.tags.clone())
                .or_default()
                .extend_from_slice(&p.values);
        }
        let mut out = BTreeMap::new();
        for (group, row) in cells {
            let mut series = Vec::with_capacity(buckets);
            let mut last: Option<(i64, f64)> = None;
            for (b, by_series) in row.into_iter().enumerate() {
                let start = (first + b as i64) * interval;
                let value = if by_series.is_empty() {
                    None
                } else if is_distribution {
                    let mut all: Vec<f64> = by_series.into_values().flatten().collect();
                    aggregate(&q.aggregator, &mut all)
                } else {
                    let count = selected_kind(&selected) == Some(1);
                    let mut per_series: Vec<f64> = by_series
                        .into_values()
                        .filter_map(|mut v| {
                            let how = match (&q.rollup, count) {
                                (Some((m, _)), _) => m.as_str(),
                                (None, true) => "sum",
                                _ => "avg",
                            };
                            let v = aggregate(how, &mut v)?;
                            // A COUNT without `.as_count()` reads as a per-second rate.
                            Some(if count && (q.as_rate || !q.as_count) {
                                v / interval as f64
                            } else {
                                v
                            })
                        })
                        .collect();
                    aggregate(&q.aggregator, &mut per_series)
                };
                if let Some(v) = value {
                    last = Some((start, v));
                }
                let value = match (value, q.fill_last, last) {
                    (None, Some(n), Some((at, v))) if start - at <= n => Some(v),
                    (v, _, _) => v,
                };
                series.push((start, value));
            }
            out.insert(group, series);
        }
        Ok(out)
    }

    /// The query reduced to one number per group over `[from, to]` with `reducer` (a query
    /// table's or query value's aggregator).
    pub fn scalar(
        &self,
        text: &str,
        from: i64,
        to: i64,
        reducer: &str,
    ) -> Result<BTreeMap<Group, f64>, String> {
        let q = parse(text)?;
        let distribution = self
            .points
            .iter()
            .any(|p| p.metric == q.metric && p.kind.is_none());
        if distribution && reducer != "last" {
            // Over the whole frame at once: every sample of every point.
            let mut groups: BTreeMap<Group, Vec<f64>> = BTreeMap::new();
            for p in self
                .points
                .iter()
                .filter(|p| p.timestamp >= from && p.timestamp <= to && self.matches(&q, p))
            {
                groups
                    .entry(Self::group_of(&q, p))
                    .or_default()
                    .extend_from_slice(&p.values);
            }
            return Ok(groups
                .into_iter()
                .filter_map(|(g, mut v)| Some((g, aggregate(&q.aggregator, &mut v)?)))
                .collect());
        }
        let series = self.timeseries(text, from, to)?;
        Ok(series
            .into_iter()
            .filter_map(|(g, buckets)| {
                let mut values: Vec<f64> = buckets.iter().filter_map(|(_, v)| *v).collect();
                let v = match reducer {
                    "last" => values.last().copied(),
                    r => aggregate(r, &mut values),
                }?;
                Some((g, v))
            })
            .collect())
    }
}

fn selected_kind(points: &[&Recorded]) -> Option<u64> {
    points.first().and_then(|p| p.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(metric: &str, tags: &[&str], ts: i64, values: &[f64], kind: Option<u64>) -> Recorded {
        Recorded {
            path: String::new(),
            metric: metric.into(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            timestamp: ts,
            values: values.to_vec(),
            kind,
            interval: None,
        }
    }

    #[test]
    fn counts_sum_gauges_average_and_distributions_pool_their_samples() {
        let points = vec![
            point("c", &["row:a", "status:pass"], 100, &[2.0], Some(1)),
            point("c", &["row:a", "status:fail"], 700, &[3.0], Some(1)),
            point("g", &["row:a"], 100, &[1.0], Some(3)),
            point("g", &["row:a"], 110, &[0.0], Some(3)),
            point("d", &["row:a"], 100, &[1.0, 2.0, 3.0], None),
            point("d", &["row:a"], 800, &[10.0], None),
        ];
        let intake = Intake {
            points: &points,
            variables: BTreeMap::new(),
        };
        let sum = intake
            .scalar("sum:c{row:a}.as_count()", 0, 3600, "sum")
            .unwrap();
        assert_eq!(sum[""], 5.0);
        // One 20 s bucket holds both gauge points: averaged, then `last`.
        let g = intake.scalar("min:g{*} by {row}", 0, 3600, "last").unwrap();
        assert_eq!(g["row:a"], 0.5);
        let p90 = intake.scalar("p90:d{*}", 0, 3600, "avg").unwrap();
        assert_eq!(p90[""], 10.0);
        let n = intake.scalar("count:d{*}", 0, 3600, "sum").unwrap();
        assert_eq!(n[""], 4.0);
        assert!(parse("max:x{a:b}.timeshift(1)").is_err());
        assert!(parse("max:x{a:b}.fill(last, 900)").is_err());
        // Without `.as_count()` a COUNT is a per-second rate over the bucket.
        let rate = intake.scalar("sum:c{row:a}", 0, 3600, "sum").unwrap();
        assert!((rate[""] - 5.0 / 20.0).abs() < 1e-9, "{rate:?}");
        // A filled bucket does not carry the fill further than N seconds from the real point.
        let gauge = vec![point("g", &["row:a"], 0, &[1.0], Some(3))];
        let intake = Intake {
            points: &gauge,
            variables: BTreeMap::new(),
        };
        let filled = intake
            .timeseries("max:g{*}.rollup(max, 60).fill(last, 120)", 0, 600)
            .unwrap();
        let values: Vec<Option<f64>> = filled[""].iter().map(|(_, v)| *v).collect();
        assert_eq!(&values[..4], &[Some(1.0), Some(1.0), Some(1.0), None]);
        assert_eq!(live_span_secs("1h"), Some(3600));
    }
}
