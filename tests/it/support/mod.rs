//! Test doubles at the network edge only: real servers on 127.0.0.1.

#![allow(dead_code)]

pub mod fake_dashboards;
pub mod fake_datadog;
pub mod fake_github;
pub mod fake_monitors;
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

/// Run the bundled-style `config` once (local sink: no key) on `state`, so the row memory
/// starts with a baseline, then empty every row's identity memory, keeping when it began: every
/// event and sample the sources show is then new to the next run, as if the memory had been
/// started before any of them (a first run counts nothing).
pub fn start_memory_before_the_data(config: &std::path::Path, state: &std::path::Path) {
    let out = bin()
        .args(["run", "--config"])
        .arg(config)
        .arg("--state")
        .arg(state)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    forget_identities(state);
}

/// Empty every row's identity memory, keeping when it began.
pub fn forget_identities(state: &std::path::Path) {
    use infra_health::state::{StateStore, rows};
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let store = StateStore::open(&state.display().to_string()).expect("the state store opens");
        store
            .update_json(rows::ROWS_KEY, |m: &mut rows::RowMemory| {
                for r in &mut m.rows {
                    r.delivered.ids = Default::default();
                }
                assert!(m.rows.iter().any(|r| r.delivered.since.is_some()));
            })
            .await
            .expect("the row memory is written");
    });
}

/// Write a fresh RSA key for a GitHub App (PKCS#8 PEM) to `path`.
pub fn write_github_app_key(path: &std::path::Path) {
    use aws_lc_rs::encoding::AsDer;
    use base64::Engine;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = key.as_der().unwrap();
    std::fs::write(
        path,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        ),
    )
    .unwrap();
}
