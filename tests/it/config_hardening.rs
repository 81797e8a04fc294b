//! Issue 14, config part: `validate` and `run` check every table (`[sink]` included) with
//! file:line:key, an empty or missing config says what to do, long values are cut in messages,
//! and `-o` is refused where it would do nothing.

use std::path::{Path, PathBuf};

use crate::support::{bin, repo_root};

fn bundled_config() -> PathBuf {
    repo_root().join("config/infra-health.toml")
}

/// The bundled config with `[sink]`'s `type` line replaced by `sink_lines`, written to `dir`.
fn config_with_sink(dir: &Path, sink_lines: &str) -> (PathBuf, String) {
    let good = std::fs::read_to_string(bundled_config()).unwrap();
    let at = good
        .find("\n[sink]\n")
        .expect("the bundled config has a [sink] table")
        + 1;
    let end = at + good[at..].find("\n\n").unwrap();
    let text = format!("{}[sink]\n{sink_lines}{}", &good[..at], &good[end..]);
    // Relative paths of the bundled collectors resolve against the config's directory.
    let text = text.replace(
        "\"../examples/",
        &format!("\"{}/examples/", repo_root().display()),
    );
    let path = dir.join("bad.toml");
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the config"))
        + 1
}

#[test]
fn sink_mistakes_are_reported_by_validate_and_run_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (config, text) = config_with_sink(
        dir.path(),
        "type = \"local\"\ncompresion = \"zstd1\"\ncompression = \"br\"\nmax_retries = -1\nsite = \"nonsense\"\ntimeout = \"0s\"\n",
    );
    let expected = [
        (
            "compresion =",
            "sink.compresion",
            "did you mean `compression`?",
        ),
        (
            "compression = \"br\"",
            "sink.compression",
            "use one of \"zstd1\", \"gzip\", \"deflate\"",
        ),
        ("max_retries =", "sink.max_retries", "from 0 to 100"),
        ("site =", "sink.site", "expected one of: datadoghq.com"),
        ("timeout = \"0s\"", "sink.timeout", "must be greater than 0"),
    ];
    let state = tempfile::tempdir().unwrap();
    for args in [vec!["validate"], vec!["run", "--dry-run"]] {
        let out = bin()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .env("INFRA_HEALTH_STATE", state.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("5 problems"), "{args:?}: {stderr}");
        for (needle, key, says) in expected {
            let at = format!("bad.toml:{}: `{key}`: ", line_of(&text, needle));
            let line = stderr
                .lines()
                .find(|l| l.contains(&at))
                .unwrap_or_else(|| panic!("{args:?}: no {at:?} in:\n{stderr}"));
            assert!(line.contains(says), "{args:?}: {line:?} lacks {says:?}");
        }
    }
}

#[test]
fn validate_accepts_good_sink_options_and_any_case_of_a_site() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = config_with_sink(
        dir.path(),
        "type = \"local\"\nsite = \"DatadogHQ.EU\"\ncompression = \"gzip\"\nmax_retries = 0\ntimeout = \"2s\"\n",
    );
    let out = bin()
        .arg("validate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dd_site_in_upper_case_is_accepted() {
    // A Datadog run against a closed local port: with DD_SITE refused it would stop at the
    // config (exit 1, "unknown Datadog site"); accepted, it gets as far as delivery (exit 4).
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = config_with_sink(
        dir.path(),
        "type = \"datadog\"\nendpoint = \"http://127.0.0.1:9\"\nmax_retries = 0\ntimeout = \"2s\"\ndeadline = \"5s\"\n",
    );
    let state = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["run", "--only", "eval", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(state.path())
        .env("DD_SITE", "DATADOGHQ.COM")
        .env("DD_API_KEY", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("unknown Datadog site"), "{stderr}");
    assert_eq!(out.status.code(), Some(4), "{stderr}");
}

#[test]
fn an_empty_config_is_an_error_saying_how_to_add_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "[defaults]\nenv = \"dev\"\n").unwrap();
    let out = bin()
        .arg("validate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("empty.toml:1: `check`: no rows"),
        "{stderr}"
    );
    assert!(stderr.contains("[[check]]"), "{stderr}");
    assert!(stderr.contains("config/infra-health.toml"), "{stderr}");
}

#[test]
fn a_missing_config_says_where_it_looked_and_where_the_bundled_one_is() {
    let cwd = tempfile::tempdir().unwrap();
    let out = bin().arg("board").current_dir(cwd.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains(":0:"), "{stderr}");
    for says in [
        "no config file here",
        "--config PATH",
        "$INFRA_HEALTH_CONFIG",
        "./infra-health.toml",
        "config/infra-health.toml in the repository",
    ] {
        assert!(stderr.contains(says), "missing {says:?} in:\n{stderr}");
    }
    // Through the environment variable, the message says that is where the path came from.
    let out = bin()
        .arg("board")
        .current_dir(cwd.path())
        .env("INFRA_HEALTH_CONFIG", "nowhere.toml")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("nowhere.toml: no config file here (tried the path in $INFRA_HEALTH_CONFIG)"),
        "{stderr}"
    );
}

#[test]
fn a_huge_value_is_cut_in_error_messages() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(bundled_config()).unwrap();
    let huge = "x".repeat(5_000_000);
    let text = good.replacen(
        "prefix = \"metta.infra\"",
        &format!("prefix = \"{huge}\""),
        1,
    );
    assert_ne!(text, good);
    let config = dir.path().join("huge.toml");
    std::fs::write(&config, &text).unwrap();
    let out = bin()
        .arg("validate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.len() < 4000, "{} bytes of stderr", stderr.len());
    assert!(stderr.contains("`defaults.prefix`"), "{stderr}");
    assert!(stderr.contains("…\" (5000000 characters)"), "{stderr}");
}

#[test]
fn output_without_dry_run_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("bodies.json");
    for args in [
        vec!["run", "-o"],
        vec!["import-stable", "--from", "/nonexistent-artifacts", "-o"],
    ] {
        let out = bin()
            .args(&args)
            .arg(&out_file)
            .arg("--config")
            .arg(bundled_config())
            .arg("--state")
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("without --dry-run does nothing"),
            "{stderr}"
        );
        assert!(!out_file.exists());
    }
}

#[test]
fn dry_run_output_into_a_missing_directory_is_a_usage_error_not_a_delivery_failure() {
    let state = tempfile::tempdir().unwrap();
    for args in [
        vec!["run", "--dry-run", "-o", "/nonexistent/dir/f"],
        vec![
            "import-stable",
            "--from",
            "/nonexistent-artifacts",
            "--dry-run",
            "-o",
            "/nonexistent/dir/f",
        ],
    ] {
        let out = bin()
            .args(&args)
            .arg("--config")
            .arg(bundled_config())
            .arg("--state")
            .arg(state.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the directory /nonexistent/dir does not exist"),
            "{stderr}"
        );
    }
}
