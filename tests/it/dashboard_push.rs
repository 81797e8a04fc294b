//! `dashboard push` and `dashboard diff` against the fake Datadog Dashboards API.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::support::fake_datadog::{FakeDatadog, Fault};
use crate::support::{bin, repo_root};

const API_KEY: &str = "api-key-for-dashboard-tests-00";
const APP_KEY: &str = "app-key-for-dashboard-tests-11";
const TITLE: &str = "Infra health (prod)";

struct Setup {
    fake: FakeDatadog,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// A fake with both keys, and a copy of the bundled config (example paths made absolute).
fn setup(edit: impl Fn(String) -> String) -> Setup {
    let fake = FakeDatadog::start(API_KEY);
    fake.set_app_key(APP_KEY);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("config/infra-health.toml")).unwrap();
    let text = text.replace(
        "../examples",
        repo_root().join("examples").to_str().unwrap(),
    );
    let config = dir.path().join("infra-health.toml");
    std::fs::write(&config, edit(text)).unwrap();
    Setup { fake, dir, config }
}

impl Setup {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `infra-health dashboard <cmd>`: exit code, stdout, stderr. Never prints a key.
    fn dashboard(&self, cmd: &str, app_key: bool) -> (i32, String, String) {
        self.dashboard_with(cmd, app_key, &self.config)
    }

    fn dashboard_with(&self, cmd: &str, app_key: bool, config: &Path) -> (i32, String, String) {
        let mut c = bin();
        c.args(["dashboard", cmd, "--config"])
            .arg(config)
            .arg("--state")
            .arg(self.state())
            .env("DD_API_KEY", API_KEY)
            .env("DD_URL", &self.fake.url);
        if app_key {
            c.env("DD_APP_KEY", APP_KEY);
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

#[test]
fn pushing_twice_keeps_one_dashboard_and_diff_then_reports_no_changes() {
    let s = setup(|t| t);
    let (code, out, err) = s.dashboard("diff", true);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("no dashboard titled \"Infra health (prod)\"") && out.contains("create"),
        "{out}"
    );

    let (code, out, err) = s.dashboard("push", true);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" created: "), "{out}");
    assert_eq!(s.fake.dashboard_creates(), 1);
    let stored = s.fake.dashboards();
    assert_eq!(stored.len(), 1);
    let id = stored[0]["id"].as_str().unwrap().to_string();
    assert!(
        out.contains(&id) && out.contains("https://app.datadoghq.com/dashboard/"),
        "{out}"
    );
    assert_eq!(stored[0]["title"], TITLE);

    let (code, out, err) = s.dashboard("push", true);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("dashboard {id} updated (no changes)")),
        "{out}"
    );
    assert_eq!(
        s.fake.dashboard_creates(),
        1,
        "the second push is an update"
    );
    assert_eq!(s.fake.dashboard_updates(), 1);
    assert_eq!(s.fake.dashboards().len(), 1);

    let (code, out, err) = s.dashboard("diff", true);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("dashboard {id} (\"{TITLE}\")")) && out.ends_with("no changes\n"),
        "{out}"
    );
    // The second push found the dashboard by the id the first one stored, without listing.
    let listed = s
        .fake
        .seen()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/dashboard")
        .count();
    assert_eq!(
        listed, 2,
        "only the first diff and first push list dashboards"
    );
}

#[test]
fn a_changed_threshold_shows_in_diff_and_push_applies_it() {
    let s = setup(|t| t);
    assert_eq!(s.dashboard("push", true).0, 0);
    // The same file name in another directory: the legend names the file, not its path.
    std::fs::create_dir(s.dir.path().join("changed")).unwrap();
    let changed = s.dir.path().join("changed/infra-health.toml");
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &changed,
        text.replace("condition = \"<5m\"", "condition = \"<6m\""),
    )
    .unwrap();

    let (code, out, err) = s.dashboard_with("diff", true, &changed);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": 2 changes"), "{out}");
    assert!(
        out.contains("markers[0].value: \"y = 300\" → \"y = 360\""),
        "{out}"
    );
    assert!(out.contains("markers[0].label: \"<5m\" → \"<6m\""), "{out}");

    let (code, out, _) = s.dashboard_with("push", true, &changed);
    assert_eq!(code, 0);
    assert!(out.contains("updated (2 changes)"), "{out}");
    let (_, out, _) = s.dashboard_with("diff", true, &changed);
    assert!(out.ends_with("no changes\n"), "{out}");
    assert_eq!(s.fake.dashboards().len(), 1);
}

#[test]
fn a_dashboard_made_by_hand_is_found_by_title_across_pages() {
    let s = setup(|t| t);
    s.fake.set_dashboard_page_size(2);
    for i in 0..5 {
        s.fake.insert_dashboard(json!({
            "title": format!("Team dashboard {i}"), "layout_type": "ordered", "widgets": []
        }));
    }
    let by_hand = s.fake.insert_dashboard(json!({
        "title": TITLE, "layout_type": "ordered",
        "widgets": [{"definition": {"type": "note", "content": "made in the UI"}}]
    }));

    let (code, out, err) = s.dashboard("diff", true);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("dashboard {by_hand}")), "{out}");
    assert!(
        out.contains("~ widgets[0].definition.content: \"made in the UI\" →"),
        "{out}"
    );
    assert!(out.contains("+ widgets[1]: group widget \"CI\""), "{out}");

    let (code, out, err) = s.dashboard("push", true);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("dashboard {by_hand} updated")),
        "{out}"
    );
    assert_eq!(s.fake.dashboard_creates(), 0, "nothing new was created");
    assert_eq!(s.fake.dashboards().len(), 6);
    let now = s.fake.dashboard(&by_hand).unwrap();
    assert_eq!(now["widgets"][1]["definition"]["title"], "CI");
}

#[test]
fn without_an_app_key_push_and_diff_fail_clearly_and_send_nothing() {
    let s = setup(|t| t);
    for cmd in ["push", "diff"] {
        let (code, out, err) = s.dashboard(cmd, false);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains("needs an application key: set DD_APP_KEY (or DD_APP_KEY_FILE)"),
            "{err}"
        );
    }
    assert!(s.fake.seen().is_empty(), "no request without the key");
    // A wrong application key is a 403 from the API, reported as such.
    let mut c = bin();
    let out = c
        .args(["dashboard", "push", "--config"])
        .arg(&s.config)
        .arg("--state")
        .arg(s.state())
        .env("DD_API_KEY", API_KEY)
        .env("DD_APP_KEY", "not-the-app-key")
        .env("DD_URL", &s.fake.url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refused the keys (HTTP 403); check DD_API_KEY, DD_APP_KEY")
            && !err.contains("not-the-app-key"),
        "{err}"
    );
    assert!(s.fake.dashboards().is_empty());
}

#[test]
fn a_deleted_dashboard_is_created_again_and_two_with_its_title_are_refused() {
    let s = setup(|t| t);
    s.fake.push_faults([Fault::Status {
        status: 429,
        retry_after: Some(0),
    }]);
    let (code, out, err) = s.dashboard("push", true);
    assert_eq!(code, 0, "a throttled call is retried: {err}");
    let first = s.fake.dashboards()[0]["id"].as_str().unwrap().to_string();
    assert!(out.contains(&first));

    // Someone deletes it in the UI: the stored id is gone, nothing has the title, so a new one.
    {
        let mut inner = s.fake.shared.lock().unwrap();
        inner.dashboards.by_id.remove(&first);
        inner.dashboards.order.retain(|id| *id != first);
    }
    let (code, out, err) = s.dashboard("push", true);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "the dashboard {first} stored by the last push no longer exists"
        )),
        "{err}"
    );
    assert!(out.contains(" created: "), "{out}");
    let second = s.fake.dashboards()[0]["id"].as_str().unwrap().to_string();
    assert_ne!(first, second);

    // A copy with the same title appears and the stored id is lost: which one to overwrite is
    // not ours to guess.
    let copy = s
        .fake
        .insert_dashboard(json!({"title": TITLE, "layout_type": "ordered", "widgets": []}));
    std::fs::remove_dir_all(s.state()).unwrap();
    let (code, _, err) = s.dashboard("push", true);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "2 dashboards on datadoghq.com are titled \"{TITLE}\""
        )) && err.contains(&second)
            && err.contains(&copy),
        "{err}"
    );
    assert_eq!(s.fake.dashboards().len(), 2);
}
