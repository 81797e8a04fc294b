//! Object stores from URLs, with one set of S3 conventions for every part of infra-health.
//!
//! The state store and the stable-suite importer both read `s3://bucket/prefix` URLs. Both take
//! S3 settings from the usual AWS environment (`AWS_REGION`, credentials or IRSA web identity)
//! and an S3-compatible server from `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`), where plain
//! `http://` is accepted only to a loopback address (a local MinIO or moto), never across a
//! network. Keeping this in one place keeps those rules the same everywhere.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum S3Error {
    #[error("invalid S3 endpoint {endpoint:?}: {why}")]
    BadEndpoint { endpoint: String, why: String },
    #[error("cannot configure S3 bucket {bucket:?}: {source}")]
    Build {
        bucket: String,
        #[source]
        source: object_store::Error,
    },
}

/// An S3 client for `bucket`, configured from the process environment.
pub fn s3(bucket: &str) -> Result<object_store::aws::AmazonS3, S3Error> {
    s3_with_env(bucket, &std::env::vars().collect::<Vec<_>>())
}

/// An S3 client for `bucket`, configured from the given `AWS_*` variables (tests pass their
/// own, so parallel tests never race on the process environment).
pub fn s3_with_env(
    bucket: &str,
    env: &[(String, String)],
) -> Result<object_store::aws::AmazonS3, S3Error> {
    let var = |name: &str| {
        env.iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let mut builder = object_store::aws::AmazonS3Builder::new();
    for (key, value) in env {
        if key.starts_with("AWS_")
            && let Ok(config_key) = key.to_ascii_lowercase().parse()
        {
            builder = builder.with_config(config_key, value);
        }
    }
    // PutMode::Create / Update become `If-None-Match: *` / `If-Match: <etag>`, which S3 (since
    // 2024), MinIO, R2 and moto honour. This is object_store's default; it is set here so the
    // state lease never silently degrades to an unconditional put.
    builder = builder
        .with_bucket_name(bucket)
        .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
    if let Some(endpoint) = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")) {
        let loopback = crate::net::is_loopback_url(&endpoint);
        if endpoint.starts_with("http://") && !loopback {
            return Err(S3Error::BadEndpoint {
                endpoint,
                why: "plain http:// is only allowed to loopback addresses".into(),
            });
        }
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(loopback)
            .with_virtual_hosted_style_request(false);
    }
    builder.build().map_err(|source| S3Error::Build {
        bucket: bucket.to_string(),
        source,
    })
}

/// Split `s3://bucket/some/prefix` into the bucket and the prefix (without slashes around it).
pub fn split_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket, prefix.trim_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(split_s3_url("s3://b/p/q/"), Some(("b", "p/q")));
        assert_eq!(split_s3_url("s3://b"), Some(("b", "")));
        assert_eq!(split_s3_url("s3:///x"), None);
        assert_eq!(split_s3_url("file:///x"), None);
    }
}
