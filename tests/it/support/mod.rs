//! Test doubles at the network edge only: real servers on 127.0.0.1.

#![allow(dead_code)]

pub mod fake_dashboards;
pub mod fake_datadog;
pub mod fake_github;
pub mod github_history;
pub mod oversized;
pub mod query_eval;
pub mod s3;
pub mod week_scenario;

use std::path::PathBuf;

/// The built `infra-health` binary, as a command with a clean environment for secrets.
pub fn bin() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("infra-health").expect("binary is built");
    for var in [
        "DD_API_KEY",
        "DD_API_KEY_FILE",
        "DD_APP_KEY",
        "DD_APP_KEY_FILE",
        "DD_SITE",
        "DD_ENV",
        "DD_URL",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITHUB_TOKEN_FILE",
        "GITHUB_API_URL",
        "GITHUB_REPOSITORY",
        "INFRA_HEALTH_CONFIG",
        "INFRA_HEALTH_STATE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The repository root (for the bundled config and examples).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
