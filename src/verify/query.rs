//! The metrics query API (`GET /api/v1/query?from&to&query`), read with few requests.
//!
//! Several queries go into one request, comma-separated, as the v1 API allows; each series
//! of the answer names its query with `query_index`. Calls use the delivery's client and
//! retry policy, so a 429 waits as long as `Retry-After` / `X-RateLimit-Reset` say, and 5xx
//! and transport errors back off. Both keys are needed; neither ever appears in a message.

use reqwest::Method;
use serde::Deserialize;

use crate::config::Plan;
use crate::sinks::datadog::{ApiError, Client, Purpose};

/// At most this many queries in one request…
pub const MAX_QUERIES_PER_REQUEST: usize = 12;
/// …and at most this much query text, so the URL stays well under servers' limits.
pub const MAX_QUERY_TEXT: usize = 3_000;

/// A failed query call, worded for the person running `verify`.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "{path}: Datadog ({site}) refused the keys (HTTP {status}); check DD_API_KEY and DD_APP_KEY \
         (with the timeseries_query scope if it is scoped) and DD_SITE: keys from another site are refused"
    )]
    Forbidden {
        path: String,
        site: String,
        status: u16,
    },
    #[error("{0}")]
    Api(ApiError),
    #[error("{path}: Datadog answered the query with an error: {message}")]
    Answer { path: String, message: String },
}

impl From<ApiError> for QueryError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Forbidden { path, site, status } => {
                QueryError::Forbidden { path, site, status }
            }
            other => QueryError::Api(other),
        }
    }
}

/// One series of an answer: its group's tags and its non-empty points (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub metric: String,
    pub tags: Vec<String>,
    pub points: Vec<(i64, f64)>,
    /// The rollup interval of the points, in seconds, when Datadog says.
    pub interval: Option<i64>,
}

impl Series {
    pub fn tag(&self, key: &str) -> Option<&str> {
        super::tag_value(&self.tags, key)
    }

    /// The newest point.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.points.last().copied()
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    series: Vec<AnswerSeries>,
}

#[derive(Deserialize)]
struct AnswerSeries {
    #[serde(default)]
    metric: String,
    #[serde(default)]
    tag_set: Vec<String>,
    #[serde(default)]
    pointlist: Vec<(f64, Option<f64>)>,
    #[serde(default)]
    query_index: Option<usize>,
    #[serde(default)]
    interval: Option<i64>,
}

pub const PATH: &str = "/api/v1/query";

/// The query API of one site, with both keys; counts the HTTP requests it makes.
pub struct QueryApi {
    client: Client,
}

impl QueryApi {
    /// The API for the plan's `[sink]` settings and the environment's keys. Both keys are
    /// required; the error says which is missing and how to provide it.
    pub fn from_env(plan: &Plan, http: reqwest::Client) -> anyhow::Result<QueryApi> {
        Ok(QueryApi::new(Client::from_env(
            &plan.sink.datadog,
            http,
            Purpose::Query,
        )?))
    }

    /// The API through `client`, which must carry an application key.
    pub fn new(client: Client) -> QueryApi {
        QueryApi { client }
    }

    /// The client, to deliver through the same site and keys.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn site(&self) -> &str {
        self.client.site()
    }

    /// HTTP requests made so far (retries included).
    pub fn requests(&self) -> usize {
        self.client.requests()
    }

    /// Run `queries` over `[from, to]` (Unix seconds), packed several to a request. The answer
    /// holds, for each query in order, its series.
    pub async fn run(
        &self,
        queries: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<Series>>, QueryError> {
        let mut out: Vec<Vec<Series>> = vec![Vec::new(); queries.len()];
        for batch in batches(queries) {
            let texts: Vec<&str> = batch.iter().map(|i| queries[*i].as_str()).collect();
            let answer = self.call(&texts.join(","), from, to).await?;
            for s in answer {
                let index = match s.query_index {
                    Some(i) if i < batch.len() => i,
                    // One query per request needs no index.
                    _ if batch.len() == 1 => 0,
                    _ => {
                        // Without an index, the first query of the batch naming the metric.
                        match batch
                            .iter()
                            .position(|q| query_metric(&queries[*q]) == Some(s.metric.as_str()))
                        {
                            Some(i) => i,
                            None => continue,
                        }
                    }
                };
                let points = s
                    .pointlist
                    .iter()
                    .filter_map(|(ms, v)| {
                        let v = (*v)?;
                        (v.is_finite() && ms.is_finite()).then_some(((*ms / 1000.0) as i64, v))
                    })
                    .collect();
                out[batch[index]].push(Series {
                    metric: s.metric,
                    tags: s.tag_set,
                    points,
                    interval: s.interval,
                });
            }
        }
        Ok(out)
    }

    async fn call(&self, query: &str, from: i64, to: i64) -> Result<Vec<AnswerSeries>, QueryError> {
        let params = [
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("query", query.to_string()),
        ];
        let bytes = self
            .client
            .call_with_retries(Method::GET, PATH, &params, None)
            .await?;
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| QueryError::Answer {
            path: PATH.into(),
            message: format!("the answer is not the JSON expected: {e}"),
        })?;
        if answer.status.as_deref() == Some("error") {
            return Err(QueryError::Answer {
                path: PATH.into(),
                message: answer.error.unwrap_or_else(|| "(no error text)".into()),
            });
        }
        Ok(answer.series)
    }
}

/// The metric a query names (`max:NAME{…}`).
pub fn query_metric(query: &str) -> Option<&str> {
    let (_, rest) = query.split_once(':')?;
    rest.split('{').next()
}

/// Indices of `queries`, packed into requests of at most [`MAX_QUERIES_PER_REQUEST`] queries
/// and [`MAX_QUERY_TEXT`] characters (a longer single query goes alone).
pub fn batches(queries: &[String]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut len = 0;
    for (i, q) in queries.iter().enumerate() {
        let fits = out.last().is_some_and(|b| {
            b.len() < MAX_QUERIES_PER_REQUEST && len + 1 + q.len() <= MAX_QUERY_TEXT
        });
        if fits {
            len += 1 + q.len();
            if let Some(b) = out.last_mut() {
                b.push(i);
            }
        } else {
            len = q.len();
            out.push(vec![i]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_packed_by_count_and_length() {
        let short: Vec<String> = (0..30).map(|i| format!("max:m{i}{{a:b}}")).collect();
        let b = batches(&short);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].len(), MAX_QUERIES_PER_REQUEST);
        assert_eq!(b.concat(), (0..30).collect::<Vec<_>>());
        let long = vec!["x".repeat(MAX_QUERY_TEXT - 10), "y".repeat(20), "z".into()];
        assert_eq!(batches(&long), vec![vec![0], vec![1, 2]]);
        assert!(batches(&[]).is_empty());
        assert_eq!(query_metric("max:a.b{c:d} by {e}"), Some("a.b"));
    }
}
