//! Datadog metric queries: built as values, written as text, read back for validation.
//!
//! The dashboard is validated on the JSON it will send, not on the values it was built from, so
//! a mistake in writing a query is caught too: every query string in the rendered JSON is parsed
//! back with [`MetricQuery::parse`] and checked against the [`crate::catalog`]. Only the subset
//! of the query language the generator writes is understood:
//! `space:metric{k:v,$var} by {k1,k2}.rollup(method[, secs]).fill(last, secs)`.

use std::fmt;

/// The longest gap `fill(last, N)` may bridge: Datadog refuses larger N.
pub const MAX_FILL_SECONDS: u64 = 600;

/// Space aggregators (and distribution percentiles) the generator uses.
pub const AGGREGATORS: &[&str] = &[
    "avg", "sum", "min", "max", "count", "p50", "p75", "p90", "p95", "p99",
];

/// A function applied after the grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Function {
    /// `.rollup(method)` or `.rollup(method, seconds)`.
    Rollup {
        method: String,
        seconds: Option<u64>,
    },
    /// `.fill(last, seconds)`: carry the last value over a gap of at most `seconds`.
    FillLast(u64),
    /// `.as_count()`: a COUNT's points summed per time bucket, as counts (not a rate).
    AsCount,
}

/// One metric query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricQuery {
    pub aggregator: String,
    pub metric: String,
    /// `key:value` filters.
    pub filters: Vec<(String, String)>,
    /// Template variables applied as filters (`$env`), by name.
    pub variables: Vec<String>,
    pub group_by: Vec<String>,
    pub functions: Vec<Function>,
}

impl MetricQuery {
    pub fn new(aggregator: &str, metric: &str) -> MetricQuery {
        MetricQuery {
            aggregator: aggregator.to_string(),
            metric: metric.to_string(),
            filters: Vec::new(),
            variables: Vec::new(),
            group_by: Vec::new(),
            functions: Vec::new(),
        }
    }

    pub fn filter(mut self, key: &str, value: &str) -> MetricQuery {
        self.filters.push((key.to_string(), value.to_string()));
        self
    }

    pub fn variable(mut self, name: &str) -> MetricQuery {
        self.variables.push(name.to_string());
        self
    }

    pub fn by(mut self, keys: &[String]) -> MetricQuery {
        self.group_by.extend(keys.iter().cloned());
        self
    }

    pub fn function(mut self, f: Function) -> MetricQuery {
        self.functions.push(f);
        self
    }

    /// Read a query written by [`fmt::Display`] (or by hand in the same subset).
    pub fn parse(text: &str) -> Result<MetricQuery, String> {
        let text = text.trim();
        let (aggregator, rest) = text
            .split_once(':')
            .ok_or("expected `aggregator:metric{…}`")?;
        if !AGGREGATORS.contains(&aggregator) {
            return Err(format!(
                "unknown aggregator {aggregator:?}; expected one of {}",
                AGGREGATORS.join(", ")
            ));
        }
        let open = rest.find('{').ok_or("expected `{` after the metric name")?;
        let metric = &rest[..open];
        if metric.is_empty() {
            return Err("the metric name is empty".into());
        }
        let close = rest[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or("unclosed `{` in the filter")?;
        let mut q = MetricQuery::new(aggregator, metric);
        for part in rest[open + 1..close].split(',').map(str::trim) {
            match part {
                "" | "*" => {}
                v if v.starts_with('$') => q.variables.push(v[1..].to_string()),
                f => {
                    let (k, v) = f
                        .split_once(':')
                        .ok_or_else(|| format!("filter {f:?} is not `key:value`"))?;
                    q.filters.push((k.to_string(), v.to_string()));
                }
            }
        }
        let mut rest = rest[close + 1..].trim_start();
        if let Some(after) = rest.strip_prefix("by") {
            let after = after.trim_start();
            let inner = after.strip_prefix('{').ok_or("expected `by {…}`")?;
            let end = inner.find('}').ok_or("unclosed `by {`")?;
            q.group_by = inner[..end]
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            rest = inner[end + 1..].trim_start();
        }
        while let Some(call) = rest.strip_prefix('.') {
            let open = call.find('(').ok_or("expected `.function(…)`")?;
            let close = call[open..]
                .find(')')
                .map(|i| open + i)
                .ok_or("unclosed `(` in a function")?;
            let name = &call[..open];
            let args: Vec<&str> = call[open + 1..close].split(',').map(str::trim).collect();
            let seconds = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| format!("{name}(): {s:?} is not a number of seconds"))
            };
            q.functions.push(match (name, args.as_slice()) {
                ("rollup", [method]) => Function::Rollup {
                    method: method.to_string(),
                    seconds: None,
                },
                ("rollup", [method, secs]) => Function::Rollup {
                    method: method.to_string(),
                    seconds: Some(seconds(secs)?),
                },
                ("fill", ["last", secs]) => Function::FillLast(seconds(secs)?),
                ("as_count", [""]) => Function::AsCount,
                _ => return Err(format!("unsupported function `.{}`", &call[..=close])),
            });
            rest = call[close + 1..].trim_start();
        }
        if !rest.is_empty() {
            return Err(format!("unexpected text {rest:?} at the end of the query"));
        }
        Ok(q)
    }
}

impl fmt::Display for MetricQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut filters: Vec<String> = self
            .filters
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        filters.extend(self.variables.iter().map(|v| format!("${v}")));
        if filters.is_empty() {
            filters.push("*".into());
        }
        write!(
            f,
            "{}:{}{{{}}}",
            self.aggregator,
            self.metric,
            filters.join(",")
        )?;
        if !self.group_by.is_empty() {
            write!(f, " by {{{}}}", self.group_by.join(","))?;
        }
        for func in &self.functions {
            match func {
                Function::Rollup {
                    method,
                    seconds: None,
                } => write!(f, ".rollup({method})")?,
                Function::Rollup {
                    method,
                    seconds: Some(s),
                } => write!(f, ".rollup({method}, {s})")?,
                Function::FillLast(s) => write!(f, ".fill(last, {s})")?,
                Function::AsCount => write!(f, ".as_count()")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_the_datadog_syntax() {
        let q = MetricQuery::new("max", "metta.infra.cron.check.status")
            .filter("workflow_category", "ci")
            .variable("env")
            .by(&["workflow_name".into(), "task".into()])
            .function(Function::FillLast(600));
        assert_eq!(
            q.to_string(),
            "max:metta.infra.cron.check.status{workflow_category:ci,$env} by {workflow_name,task}.fill(last, 600)"
        );
        assert_eq!(MetricQuery::parse(&q.to_string()).unwrap(), q);
        assert_eq!(
            MetricQuery::new("sum", "a.b").to_string(),
            "sum:a.b{*}",
            "no filter is written as {{*}}"
        );
    }

    #[test]
    fn reads_hand_written_queries_and_names_what_is_wrong() {
        let q = MetricQuery::parse("avg:a.b{x:y} by {z}.rollup(max, 3600).fill(last,900)").unwrap();
        assert_eq!(q.functions[1], Function::FillLast(900));
        assert_eq!(
            q.functions[0],
            Function::Rollup {
                method: "max".into(),
                seconds: Some(3600)
            }
        );
        assert!(
            MetricQuery::parse("a.b{x:y}")
                .unwrap_err()
                .contains("aggregator")
        );
        assert!(
            MetricQuery::parse("max:a.b{x}")
                .unwrap_err()
                .contains("key:value")
        );
        assert!(
            MetricQuery::parse("max:a.b{x:y}.timeshift(1)")
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(
            MetricQuery::parse("max:a.b{x:y} junk")
                .unwrap_err()
                .contains("junk")
        );
    }

    proptest! {
        #[test]
        fn written_queries_read_back_the_same(
            agg in prop::sample::select(AGGREGATORS),
            metric in "[a-z][a-z0-9_.]{0,30}",
            filters in prop::collection::vec(("[a-z][a-z_]{0,10}", "[a-z0-9][a-z0-9_./-]{0,12}"), 0..4),
            vars in prop::collection::vec("[a-z]{1,6}", 0..3),
            by in prop::collection::vec("[a-z][a-z_]{0,10}", 0..3),
            fill in prop::option::of(0u64..2000),
            as_count in any::<bool>(),
            rollup in prop::option::of(("(max|sum|avg)", prop::option::of(1u64..100_000))),
        ) {
            let mut q = MetricQuery::new(agg, &metric);
            for (k, v) in &filters { q = q.filter(k, v); }
            for v in &vars { q = q.variable(v); }
            q = q.by(&by);
            if let Some((m, s)) = rollup { q = q.function(Function::Rollup { method: m, seconds: s }); }
            if let Some(s) = fill { q = q.function(Function::FillLast(s)); }
            if as_count { q = q.function(Function::AsCount); }
            prop_assert_eq!(MetricQuery::parse(&q.to_string()).unwrap(), q);
        }

        #[test]
        fn parsing_never_panics(text in ".{0,80}") {
            let _ = MetricQuery::parse(&text);
        }
    }
}
