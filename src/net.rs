//! Small network rules shared by every client: the one HTTP client's settings, and plain
//! `http://` only to loopback. A leaf: it imports no other module of the crate.

use anyhow::Context;

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
