//! `infra-health credentials check`: are the configured keys accepted, without printing them?
//!
//! Datadog: the API key against `GET /api/v1/validate` on the configured site (`DD_SITE`, the
//! `[sink]` table, `DD_URL`/`endpoint`), and, when `DD_APP_KEY` is set, the pair against
//! `GET /api/v2/validate_keys`. Each check prints one line naming the key by its variable and
//! the site, never its value. More checks (the GitHub token's scopes) are added to
//! [`CHECKS`]-style functions below and to [`check_all`].

use std::sync::Arc;

use super::Cli;
use crate::config::{self, Plan};
use crate::exit;
use crate::secret::Secret;
use crate::sinks::datadog::{DatadogSink, KeyCheck};
use crate::state::StateStore;

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

/// Check the Datadog API key (and application key when set).
pub async fn check_datadog(options: &toml::Table, http: reqwest::Client) -> Vec<CheckLine> {
    let what = "Datadog API key (DD_API_KEY)".to_string();
    let key = match Secret::from_env(&["DD_API_KEY"]) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return vec![CheckLine {
                what,
                ok: false,
                detail: "not set (set DD_API_KEY or DD_API_KEY_FILE)".into(),
            }];
        }
        Err(e) => {
            return vec![CheckLine {
                what,
                ok: false,
                detail: e,
            }];
        }
    };
    // The sink needs a state store only to deliver; validation never touches it.
    let state = match std::env::temp_dir()
        .to_str()
        .map(|d| StateStore::open(&format!("{d}/infra-health-credentials")))
    {
        Some(Ok(s)) => Arc::new(s),
        _ => {
            return vec![CheckLine {
                what,
                ok: false,
                detail: "cannot open a scratch state store in the temp directory".into(),
            }];
        }
    };
    let sink = match DatadogSink::new(options, key.clone(), state, http.clone()) {
        Ok(s) => s,
        Err(e) => {
            return vec![CheckLine {
                what,
                ok: false,
                detail: e.to_string(),
            }];
        }
    };
    let site = sink.site().to_string();
    let mut lines = vec![match sink.check_key().await {
        Ok(KeyCheck::Valid) => CheckLine {
            what: what.clone(),
            ok: true,
            detail: format!("valid for {site}"),
        },
        Ok(KeyCheck::Rejected) => CheckLine {
            what: what.clone(),
            ok: false,
            detail: format!("API key rejected by {site}"),
        },
        Err(e) => CheckLine {
            what: what.clone(),
            ok: false,
            detail: format!("could not check against {site}: {e}"),
        },
    }];
    let app_what = "Datadog application key (DD_APP_KEY)".to_string();
    match Secret::from_env(&["DD_APP_KEY"]) {
        Ok(None) => lines.push(CheckLine {
            what: app_what,
            ok: true,
            detail: "not set (only `dashboard push` needs it)".into(),
        }),
        Err(e) => lines.push(CheckLine {
            what: app_what,
            ok: false,
            detail: e,
        }),
        Ok(Some(app)) => {
            let client =
                crate::sinks::datadog::Client::new(http, sink.config().base.clone(), &site, key);
            lines.push(match client.validate_app_key(&app, sink.timeout()).await {
                Ok(KeyCheck::Valid) => CheckLine {
                    what: app_what,
                    ok: true,
                    detail: format!("valid with the API key for {site}"),
                },
                Ok(KeyCheck::Rejected) => CheckLine {
                    what: app_what,
                    ok: false,
                    detail: format!("application key rejected by {site}"),
                },
                Err(e) => CheckLine {
                    what: app_what,
                    ok: false,
                    detail: format!("could not check against {site}: {e}"),
                },
            });
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
