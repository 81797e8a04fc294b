//! `infra-health credentials check`: are the configured keys accepted, without printing them?
//!
//! Datadog: the API key against `GET /api/v1/validate` on the configured site (`DD_SITE`, the
//! `[sink]` table, `DD_URL`/`endpoint`), and, when `DD_APP_KEY` is set, the pair against
//! `GET /api/v2/validate_keys`. Each check prints one line naming the key by its variable and
//! the site, never its value. More checks (the GitHub token's scopes) are added to
//! [`CHECKS`]-style functions below and to [`check_all`].

use super::Cli;
use crate::config::{self, Plan};
use crate::exit;
use crate::secret::Secret;
use crate::sinks::datadog::{ApiError, Client, DatadogConfig, KeyCheck};

/// The commands that need `DD_APP_KEY` (README, "Which key each command needs"; a test runs
/// each of them without it).
pub const APP_KEY_COMMANDS: [&str; 6] = [
    "dashboard push",
    "dashboard diff",
    "datadog plan",
    "datadog apply",
    "verify",
    "run --verify",
];

/// The result of one credential check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// What was checked (`Datadog API key (DD_API_KEY)`).
    pub what: String,
    /// `true` valid, `false` rejected or not checkable.
    pub ok: bool,
    /// One line for a person (never contains a secret).
    pub detail: String,
}

/// Check the Datadog API key (and application key when set), through the same client the
/// sink uses: no state store, no delivery.
pub async fn check_datadog(options: &toml::Table, http: reqwest::Client) -> Vec<CheckLine> {
    let what = "Datadog API key (DD_API_KEY)".to_string();
    let fail = |what: &str, detail: String| CheckLine {
        what: what.to_string(),
        ok: false,
        detail,
    };
    let key = match Secret::from_env(&["DD_API_KEY"]) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return vec![fail(
                &what,
                "not set (set DD_API_KEY or DD_API_KEY_FILE)".into(),
            )];
        }
        Err(e) => return vec![fail(&what, e)],
    };
    let config = match DatadogConfig::resolve(options) {
        Ok(c) => c,
        Err(e) => return vec![fail(&what, e.to_string())],
    };
    let client = Client::new(http, config, key);
    let site = client.site().to_string();
    let judge = |what: &str, answer: Result<KeyCheck, ApiError>, valid: &str, rejected: &str| {
        match answer {
            Ok(KeyCheck::Valid) => CheckLine {
                what: what.to_string(),
                ok: true,
                detail: format!("{valid} {site}"),
            },
            Ok(KeyCheck::Rejected) => fail(what, format!("{rejected} {site}")),
            Err(e) => fail(what, format!("could not check against {site}: {e}")),
        }
    };
    let mut lines = vec![judge(
        &what,
        client.validate().await,
        "valid for",
        "API key rejected by",
    )];
    let app_what = "Datadog application key (DD_APP_KEY)";
    match Secret::from_env(&["DD_APP_KEY"]) {
        Ok(None) => lines.push(CheckLine {
            what: app_what.to_string(),
            ok: true,
            detail: format!("not set (only {} need it)", APP_KEY_COMMANDS.join(", ")),
        }),
        Err(e) => lines.push(fail(app_what, e)),
        Ok(Some(app)) => {
            let client = client.with_app_key(app);
            lines.push(judge(
                app_what,
                client.validate_app_key().await,
                "valid with the API key for",
                "application key rejected by",
            ));
        }
    }
    lines
}

/// Every credential check. The GitHub token check (scopes via `GET /` response headers) joins
/// here when the GitHub client lands: push its lines after Datadog's.
pub async fn check_all(plan: Option<&Plan>, http: reqwest::Client) -> Vec<CheckLine> {
    let options = plan.map(|p| p.sink.datadog.clone()).unwrap_or_default();
    check_datadog(&options, http).await
}

/// Print one line per check; exit 0 when every set key is valid.
pub async fn execute(cli: &Cli) -> anyhow::Result<u8> {
    // The config is optional here: it only supplies `[sink]` site/endpoint.
    let path = config::resolve_path(cli.config.as_deref());
    let plan = if path.exists() {
        Some(config::load(&path)?)
    } else {
        None
    };
    let lines = check_all(plan.as_ref(), crate::net::http_client()?).await;
    for l in &lines {
        println!(
            "{} {}: {}",
            if l.ok { "ok  " } else { "FAIL" },
            l.what,
            l.detail
        );
    }
    Ok(if lines.iter().all(|l| l.ok) {
        exit::OK
    } else {
        exit::FATAL
    })
}
