//! Every network answer is read with a size cap (README, Limits): a GitHub page or a Datadog
//! query answer larger than its cap, announced or chunked, is a clear error naming the path and
//! the cap, and the run goes on with everything else.

use crate::support::fake_datadog::FakeDatadog;
use crate::support::oversized::Oversized;
use crate::support::{bin, repo_root};

const API_KEY: &str = "api-key-for-cap-tests-0000000000";
const APP_KEY: &str = "app-key-for-cap-tests-1111111111";

/// 17 MiB: one MiB past the GitHub page cap.
const PAST_GITHUB_CAP: usize = 17 * 1024 * 1024;
/// 33 MiB: one MiB past the Datadog answer cap.
const PAST_DATADOG_CAP: usize = 33 * 1024 * 1024;

#[test]
fn an_oversized_github_page_fails_its_collector_and_the_run_goes_on() {
    for chunked in [false, true] {
        let server = Oversized::start(PAST_GITHUB_CAP, chunked);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("infra-health.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[[collector]]
name = "issues"
type = "github_issues"
repo = "acme/widgets"
labels = ["bug"]
api_url = "{url}"
retry_base = "10ms"
max_retries = 1

[[collector]]
name = "stable_suite"
type = "stable_suite"
url = "{examples}"
incremental = false
rebase_timestamps = true

[[check]]
workflow_category = "code"
workflow_name = "bug_queue"
task = "bugs"
check = "open_count"
collector = "issues"
signal = "issues.open"
condition = "<100"
metric = "github.bugs.count"

[[check]]
source = "stable_suite"
workflow_category = "training"
workflow_name = "multigpu_arena"
task = "hearts"
check = "runs_successfully"
collector = "stable_suite"
signal = "run.success"
match = {{ job = "multigpu_arena" }}
condition = ">=1"
encoding = "status"
carry_forward = "26h"
metric = "training.run_success"
"#,
                url = server.url,
                examples = repo_root().join("examples/stable-suite").display(),
            ),
        )
        .unwrap();
        let out = bin()
            .args(["run", "--dry-run", "--config"])
            .arg(&config)
            .arg("--state")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(3),
            "chunked={chunked}: a failed collector is exit 3\n{stdout}\n{stderr}"
        );
        let all = format!("{stdout}\n{stderr}");
        assert!(
            all.contains("/repos/acme/widgets/issues")
                && all.contains("larger than 16777216 bytes"),
            "chunked={chunked}: the error names the path and the cap:\n{all}"
        );
        let doc: serde_json::Value = serde_json::from_str(&stdout).expect("dry-run JSON");
        let series: Vec<String> = doc["requests"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["body"]["series"].as_array().cloned().unwrap_or_default())
            .map(|s| s["metric"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(
            series.iter().any(|m| m.ends_with("training.run_success")),
            "chunked={chunked}: the other collector's row is delivered: {series:?}"
        );
    }
}

#[test]
fn an_oversized_datadog_query_answer_is_a_clear_error() {
    let fake = FakeDatadog::start(API_KEY);
    fake.set_app_key(APP_KEY);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("config/infra-health.toml")).unwrap();
    let text = text.replace(
        "../examples",
        repo_root().join("examples").to_str().unwrap(),
    );
    let config = dir.path().join("infra-health.toml");
    std::fs::write(&config, text).unwrap();
    let cmd = |args: &[&str], url: &str| {
        let out = bin()
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--state")
            .arg(dir.path().join("state"))
            .env("DD_API_KEY", API_KEY)
            .env("DD_APP_KEY", APP_KEY)
            .env("DD_URL", url)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = cmd(&["run"], &fake.url);
    assert_eq!(code, 0, "{out}");
    for chunked in [false, true] {
        let server = Oversized::start(PAST_DATADOG_CAP, chunked);
        let (code, out) = cmd(&["verify"], &server.url);
        assert!(
            code == 1 || code == 7,
            "chunked={chunked}: verify ends with its documented code: {code}\n{out}"
        );
        assert!(
            out.contains("/api/v1/query") && out.contains("larger than 33554432 bytes"),
            "chunked={chunked}: the error names the path and the cap:\n{out}"
        );
    }
}
