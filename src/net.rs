//! Small network rules shared by every client: the one HTTP client's settings, plain
//! `http://` only to loopback, and reading an answer's body with a size cap (an answer of any
//! size read whole once took 1.1 GB for one `verify`). A leaf: it imports no other module of
//! the crate.

use anyhow::Context;
use bytes::{Bytes, BytesMut};

/// The one HTTP client of a run: rustls, a real User-Agent (GitHub rejects an empty one),
/// connect and overall timeouts.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("infra-health/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")
}

/// Whether `url` points at a loopback address (127.0.0.0/8, `localhost`, `[::1]`).
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Refuse a base URL that would send credentials in clear text: `https://` anywhere,
/// `http://` only to loopback (tests, local proxies).
pub fn check_base_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback_url(url) => Ok(parsed),
        "http" => Err(format!(
            "refusing plain http:// to {url:?}: only loopback addresses may use http://"
        )),
        other => Err(format!("unsupported URL scheme {other:?} in {url:?}")),
    }
}

/// Why an answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body passed `cap` bytes (announced by `Content-Length` or counted while reading);
    /// nothing more of it was read.
    #[error(
        "the answer to {path} is larger than {cap} bytes, the cap on such an answer; it was not read"
    )]
    TooLarge { path: String, cap: usize },
    /// The connection failed while reading the body.
    #[error("reading the answer to {path}: {source}")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
}

impl BodyError {
    /// A short stable tag for self-metrics and retries.
    pub fn is_too_large(&self) -> bool {
        matches!(self, BodyError::TooLarge { .. })
    }
}

/// Read `response`'s body chunk by chunk, at most `cap` bytes: a longer body (announced or
/// sent) is an error naming the URL's path and the cap, and the rest of it is never read.
pub async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Bytes, BodyError> {
    let path = response.url().path().to_string();
    let too_large = |path: String| BodyError::TooLarge { path, cap };
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX))
    {
        return Err(too_large(path));
    }
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(too_large(path));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => {
                return Err(BodyError::Transport {
                    path,
                    source: e.without_url(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rules() {
        assert!(check_base_url("https://api.datadoghq.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("http://localhost:1").is_ok());
        assert!(check_base_url("http://[::1]:1").is_ok());
        assert!(check_base_url("http://10.0.0.1").is_err());
        assert!(check_base_url("http://example.com").is_err());
        assert!(check_base_url("ftp://127.0.0.1").is_err());
    }
}
