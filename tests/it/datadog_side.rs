//! `infra-health datadog plan|apply|terraform` against the fake Datadog (dashboards, monitors,
//! metric tag configurations), through the binary.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::fake_datadog::FakeDatadog;
use crate::support::fake_monitors::check_monitor;
use crate::support::{bin, repo_root};

const API_KEY: &str = "api-key-for-datadog-side-tests-0";
const APP_KEY: &str = "app-key-for-datadog-side-tests-1";

struct Setup {
    fake: FakeDatadog,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// The bundled config (example paths made absolute) with `extra` appended, against a fake.
fn setup(extra: &str) -> Setup {
    let fake = FakeDatadog::start(API_KEY);
    fake.set_app_key(APP_KEY);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("config/infra-health.toml")).unwrap();
    let text = text.replace(
        "../examples",
        repo_root().join("examples").to_str().unwrap(),
    );
    let config = dir.path().join("infra-health.toml");
    std::fs::write(&config, format!("{text}\n{extra}")).unwrap();
    Setup { fake, dir, config }
}

impl Setup {
    /// `infra-health datadog <args>`: exit code, stdout, stderr. Never prints a key.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = bin();
        c.arg("datadog")
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("DD_API_KEY", API_KEY)
            .env("DD_APP_KEY", APP_KEY)
            .env("DD_URL", &self.fake.url);
        if args[0] != "terraform" {
            c.arg("--state").arg(self.dir.path().join("state"));
        }
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        for key in [API_KEY, APP_KEY] {
            assert!(
                !stdout.contains(key) && !stderr.contains(key),
                "a key leaked:\n{stdout}\n{stderr}"
            );
        }
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }
}

fn tags(m: &Value) -> Vec<&str> {
    m["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

const DISTRIBUTIONS: &[&str] = &[
    "metta.infra.cron.ci.workflow.duration",
    "metta.infra.cron.ci.jobs.queue_time",
    "metta.infra.cron.github.pulls.time_to_merge",
    "metta.infra.cron.delivery.lead_time",
    "metta.infra.cron.delivery.recovery_time",
    "metta.infra.cron.eval.remote.latency",
];

#[test]
fn apply_makes_everything_the_config_implies_and_a_second_apply_changes_nothing() {
    let s = setup("[datadog]\nnotify = [\"@slack-infra-alerts\"]\n");
    // Somebody's own monitor, and a distribution whose percentiles were turned off by hand.
    let theirs = s.fake.insert_monitor(json!({
        "name": "their own monitor", "type": "query alert",
        "query": "avg(last_5m):avg:system.cpu.user{*} > 90", "tags": ["team:web"],
        "options": {"thresholds": {"critical": 90}}
    }));
    s.fake.set_tag_config(
        DISTRIBUTIONS[0],
        json!({"metric_type": "distribution", "tags": ["env"], "include_percentiles": false, "exclude_tags_mode": false}),
    );

    let (code, out, err) = s.run(&["plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("+ dashboard \"Infra health (prod)\": create"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "~ metric tag configuration {:?}: update",
            DISTRIBUTIONS[0]
        )) && out.contains("percentiles are off"),
        "{out}"
    );
    assert_eq!(
        s.fake.monitor_counts(),
        (0, 0, 0, 0),
        "plan changed something"
    );
    assert!(s.fake.dashboards().is_empty());

    let (code, out, err) = s.run(&["apply"]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Every monitor validated before it was created.
    let (creates, updates, deletes, validations) = s.fake.monitor_counts();
    assert_eq!(creates, 26 + 2 + 8, "{creates} monitors created:\n{out}");
    assert_eq!((updates, deletes), (0, 0));
    assert_eq!(validations, creates);
    let seen = s.fake.seen();
    let first_create = seen
        .iter()
        .position(|r| r.method == "POST" && r.path == "/api/v1/monitor")
        .unwrap();
    assert_eq!(seen[first_create - 1].path, "/api/v1/monitor/validate");

    // Percentiles on every distribution, every tag kept.
    for metric in DISTRIBUTIONS {
        let c = s
            .fake
            .tag_config(metric)
            .unwrap_or_else(|| panic!("{metric}"));
        let a = &c["data"]["attributes"];
        assert_eq!(a["include_percentiles"], true, "{metric}: {c}");
        assert_eq!(a["exclude_tags_mode"], true, "{metric}: {c}");
        assert_eq!(a["tags"], json!([]), "{metric}: {c}");
    }

    // One dashboard; monitors carry its URL, the row, its condition and the handles.
    let dashboards = s.fake.dashboards();
    assert_eq!(dashboards.len(), 1);
    let url = dashboards[0]["url"].as_str().unwrap();
    let monitors = s.fake.monitors();
    let row = monitors
        .iter()
        .find(|m| {
            m["name"]
                .as_str()
                .unwrap()
                .starts_with("[infra-health] p90 workflow duration")
        })
        .expect("the duration row's monitor");
    let message = row["message"].as_str().unwrap();
    for needle in [
        url,
        "`<5m`",
        "warn `<8m`",
        "@slack-infra-alerts",
        "{{value}}",
        "https://github.com/acme/widgets/actions",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    assert_eq!(
        row["options"]["thresholds"],
        json!({"critical": 0.5, "warning": 1})
    );
    assert!(
        row["query"]
            .as_str()
            .unwrap()
            .starts_with("max(last_30m):min:metta.infra.cron.check.status{")
    );
    assert_eq!(row["options"]["require_full_window"], false);
    let job = monitors
        .iter()
        .find(|m| m["name"].as_str().unwrap().contains("job import-stable"))
        .expect("the stable-suite import job's monitor");
    assert_eq!(job["options"]["notify_no_data"], true);
    assert!(job["options"]["no_data_timeframe"].as_i64().unwrap() >= 20);
    assert!(
        monitors
            .iter()
            .any(|m| m["name"] == "[infra-health] cron: row unknown" && m["priority"] == 4)
    );

    // A second apply changes nothing, and plan says so.
    let before = (
        s.fake.monitor_counts(),
        s.fake.tag_writes(),
        (s.fake.dashboard_creates(), s.fake.dashboard_updates()),
    );
    let (code, out, err) = s.run(&["apply"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("applied: 0 created, 0 updated, 0 deleted"),
        "{out}"
    );
    let (code, out, _) = s.run(&["plan"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("plan: 0 to create, 0 to update, 0 to delete"),
        "{out}"
    );
    let after = (
        s.fake.monitor_counts(),
        s.fake.tag_writes(),
        (s.fake.dashboard_creates(), s.fake.dashboard_updates()),
    );
    assert_eq!(before.0.0, after.0.0, "monitors created again");
    assert_eq!(before.0.1, after.0.1, "monitors updated again");
    assert_eq!(before.1, after.1, "tag configurations written again");
    assert_eq!(before.2, after.2, "the dashboard was written again");

    // Their monitor was never touched.
    let theirs_now = s
        .fake
        .monitors()
        .into_iter()
        .find(|m| m["id"] == theirs)
        .unwrap();
    assert_eq!(theirs_now["name"], "their own monitor");
}

#[test]
fn prune_deletes_only_what_infra_health_made_and_the_config_no_longer_implies() {
    let s = setup("");
    let (code, _, err) = s.run(&["apply"]);
    assert_eq!(code, 0, "{err}");
    let theirs = s.fake.insert_monitor(json!({
        "name": "theirs", "type": "query alert", "query": "avg(last_5m):avg:a.b{*} > 1",
        "tags": ["env:prod"], "options": {"thresholds": {"critical": 1}}
    }));
    let count = s.fake.monitors().len();

    // Opt the evaluation rows out, by category, and drop the eval latency row: its
    // distribution's tag configuration is no longer implied.
    let text = std::fs::read_to_string(&s.config).unwrap();
    let start = text
        .find("[[check]]\nworkflow_category = \"evaluation\"\nworkflow_name = \"remote_eval\"\ntask = \"request_eval\"\ncheck = \"latency_p50\"")
        .expect("the latency row");
    let tail = "metric = \"eval.remote.latency\"\n";
    let end = start + text[start..].find(tail).unwrap() + tail.len();
    let text = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(
        &s.config,
        format!("{text}\n[datadog.category.evaluation]\nalert = false\n"),
    )
    .unwrap();
    let latency = "metta.infra.cron.eval.remote.latency";
    assert!(s.fake.tag_config(latency).is_some());
    let (code, out, _) = s.run(&["plan"]);
    assert_eq!(code, 0);
    let orphans = out
        .matches("no longer in the config (delete with --prune)")
        .count();
    assert_eq!(
        orphans, 5,
        "the four evaluation rows and the latency percentiles:\n{out}"
    );
    let (code, out, _) = s.run(&["apply"]);
    assert_eq!(code, 0);
    assert_eq!(
        s.fake.monitors().len(),
        count,
        "apply without --prune deleted:\n{out}"
    );

    let (code, out, err) = s.run(&["apply", "--prune"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("5 deleted"), "{out}");
    assert!(s.fake.tag_config(latency).is_none(), "{out}");
    assert!(s.fake.tag_config(DISTRIBUTIONS[0]).is_some());
    let left = s.fake.monitors();
    assert_eq!(left.len(), count - 4);
    assert!(
        left.iter().any(|m| m["id"] == theirs),
        "their monitor was deleted"
    );
    assert!(
        left.iter()
            .all(|m| m["id"] == theirs || tags(m).contains(&"managed-by:infra-health"))
    );
    assert!(
        !left
            .iter()
            .any(|m| m["name"].as_str().unwrap().contains("(cron evaluation/")),
        "an opted-out row kept its monitor"
    );
}

#[test]
fn the_fake_refuses_what_datadog_refuses() {
    let good = json!({"name": "n", "type": "query alert",
        "query": "max(last_30m):min:a.b{x:y,env:prod} < 0.5",
        "options": {"thresholds": {"critical": 0.5, "warning": 1}}});
    assert!(check_monitor(good.to_string().as_bytes()).is_ok());
    for (bad, why) in [
        (
            json!({"name": "n", "type": "query alert", "query": "max(last_30m):min:a.b{x:y} < ",
            "options": {"thresholds": {"critical": 0.5}}}),
            "invalid",
        ),
        (
            json!({"name": "n", "type": "query alert", "query": "max(last_30m):min:a.b{x:y} < 0.5",
            "options": {"thresholds": {"critical": 1}}}),
            "does not match",
        ),
        (
            json!({"name": "n", "type": "query alert", "query": "max(last_30m):min:a.b{x:y} < 0.5",
            "options": {"thresholds": {"critical": 0.5, "warning": 0.2}}}),
            "less severe",
        ),
        (
            json!({"name": "n", "type": "query alert", "query": "max(last_30m):min:a.b{x:y} < 0.5",
            "options": {"thresholds": {"critical": 0.5}, "notify_nodata": true}}),
            "Invalid option",
        ),
    ] {
        let e = check_monitor(bad.to_string().as_bytes()).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
    // Through the API: validate answers 400 with Datadog's words.
    let fake = FakeDatadog::start(API_KEY);
    fake.set_app_key(APP_KEY);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/v1/monitor/validate", fake.url))
            .header("DD-API-KEY", API_KEY)
            .header("DD-APPLICATION-KEY", APP_KEY)
            .body(
                json!({"name": "n", "type": "query alert", "query": "avg:a.b{*} > 1",
                "options": {"thresholds": {"critical": 1}}})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 400);
}

#[test]
fn terraform_export_covers_dashboard_monitors_and_tag_configurations() {
    let s = setup("");
    let (code, out, err) = s.run(&["terraform"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches("resource \"datadog_dashboard_json\"").count(),
        1
    );
    assert_eq!(
        out.matches("resource \"datadog_metric_tag_configuration\"")
            .count(),
        DISTRIBUTIONS.len()
    );
    assert!(
        out.matches("resource \"datadog_monitor\"").count() >= 30,
        "{out}"
    );
    assert!(out.contains("${datadog_dashboard_json.infra_health.url}"));
    assert!(out.contains("include_percentiles = true"));
    // No unescaped interpolation other than the dashboard reference.
    let stray = out
        .match_indices("${")
        .filter(|(i, _)| !out[..*i].ends_with('$'))
        .filter(|(i, _)| !out[*i..].starts_with("${datadog_dashboard_json."))
        .count();
    assert_eq!(stray, 0);
}
