//! An organisation, not a repository: discovery, rows per repository, the request budget and
//! its backfill, and shards on one S3 state store, against the fake GitHub and the fake intake.
//!
//! What each run should cover is worked out here from what the fake serves (the repositories,
//! their listing fields, the filters of the config), not from the collectors' code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;

use chrono::{DateTime, Utc};
use infra_health::checks::Status;
use infra_health::observation::UnknownReason;
use infra_health::run::{RunOptions, RunSummary};
use serde_json::json;

use crate::support::fake_datadog::FakeDatadog;
use crate::support::fake_github::FakeGithub;
use crate::support::github_history::{History, Sizes};
use crate::support::s3;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn fixed_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn history(repo: &str, seed: u64, runs: usize, pulls: usize) -> History {
    let mut h = History::generate(
        seed,
        Sizes {
            runs,
            pulls,
            issues: 0,
        },
        fixed_now(),
    );
    // The generated runs of the repository itself name it as their head repository.
    for r in &mut h.runs {
        if r.head_repo == h.repo {
            r.head_repo = repo.to_string();
        }
    }
    h.repo = repo.to_string();
    h
}

/// A `github_pulls` collector over `repos` (with `extra` options) and one row on it.
fn pulls_config(github: &str, sink: &str, repos: &str, extra: &str) -> String {
    format!(
        r#"
[defaults]
env = "prod"

{sink}

[[collector]]
name = "pulls"
type = "github_pulls"
repos = {repos}
api_url = "{github}"
retry_base = "10ms"
max_retries = 2
{extra}

[[check]]
workflow_category = "ci"
workflow_name = "pull_requests"
task = "merged"
check = "count"
title = "Pull requests merged"
collector = "pulls"
signal = "pulls.merged"
condition = ">=0"
encoding = "gauge"
metric = "pulls.merged"
"#
    )
}

/// A `github_actions` collector over `org:acme` (with `extra` options), jobs read, and a row
/// on the queue time's median.
fn actions_config(github: &str, extra: &str) -> String {
    format!(
        r#"
[[collector]]
name = "actions"
type = "github_actions"
repos = ["org:acme"]
workflows = ["tests"]
jobs = true
api_url = "{}"
retry_base = "10ms"
max_retries = 2
max_concurrency = 2
{extra}

[[check]]
workflow_category = "ci"
workflow_name = "tests"
task = "queue"
check = "p50"
title = "Queue time"
collector = "actions"
signal = "jobs.queue_time"
condition = "<1h"
encoding = "gauge"
summary = "p50"
unit = "second"
metric = "ci.queue_time"
"#,
        github
    )
}

fn datadog_sink(url: &str) -> String {
    format!(
        "[sink]\ntype = \"datadog\"\nendpoint = \"{url}\"\nmax_retries = 1\nbackoff = \"5ms\"\ntimeout = \"5s\""
    )
}

/// The binary with `args`, `--config cfg --state state`, the API key, and none of the
/// environment that would redirect it (a developer's or a runner's).
fn binary(args: &[&str], cfg: &Path, state: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("infra-health"));
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .args(["--state", state])
        .env("DD_API_KEY", KEY)
        .env_remove("DD_URL")
        .env_remove("DD_SITE")
        .env_remove("INFRA_HEALTH_STATE")
        .env_remove("INFRA_HEALTH_SHARD")
        .env_remove("GITHUB_REPOSITORY")
        .env_remove("GITHUB_API_URL");
    c
}

/// `pulls_config` on `org:acme` delivering to `intake`, written to `dir/org.toml`.
fn write_org_config(dir: &Path, github: &str, intake: &str) -> std::path::PathBuf {
    let cfg = dir.join("org.toml");
    std::fs::write(
        &cfg,
        pulls_config(github, &datadog_sink(intake), r#"["org:acme"]"#, ""),
    )
    .unwrap();
    cfg
}

fn repos_of(summary: &RunSummary) -> BTreeSet<String> {
    summary
        .results
        .iter()
        .filter_map(|(_, r)| r.row.repo.clone())
        .collect()
}

async fn run_at(
    plan: &infra_health::config::Plan,
    state: &Path,
    now: DateTime<Utc>,
    key: bool,
) -> RunSummary {
    infra_health::run::run(
        plan,
        RunOptions {
            state: Some(state.display().to_string()),
            now: Some(now),
            datadog_key: key.then(|| infra_health::secret::Secret::new(KEY)),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Discovery over runs: filters, a repository added, one archived, one deleted; the listing
/// conditional; rows per repository in Datadog, in the row memory and on the board.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_is_discovered_filtered_and_followed_from_run_to_run() {
    let gh = FakeGithub::start(vec![
        history("acme/api", 1, 0, 6),
        history("acme/web", 2, 0, 6),
        history("acme/ml-train", 3, 0, 6),
        history("acme/old", 4, 0, 2),
        history("acme/fork-of-x", 5, 0, 2),
        history("acme/empty", 6, 0, 0),
        history("acme/team-sandbox", 7, 0, 2),
        history("acme/off", 8, 0, 2),
        history("other/elsewhere", 9, 0, 2),
    ])
    .await;
    gh.set_repo_meta("acme/old", json!({"archived": true}));
    gh.set_repo_meta("acme/fork-of-x", json!({"fork": true}));
    gh.set_repo_meta("acme/empty", json!({"size": 0}));
    gh.set_repo_meta("acme/off", json!({"disabled": true}));
    let intake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let text = pulls_config(
        &gh.url,
        &datadog_sink(&intake.url),
        r#"["org:acme"]"#,
        "exclude = [\"*-sandbox\"]",
    );
    let plan = infra_health::config::parse(&dir.path().join("org.toml"), &text).unwrap();
    let state = dir.path().join("state");
    let now = fixed_now();
    intake.set_now(now.timestamp());

    // What the organisation should give: its active, non-empty, unforked repositories that
    // no pattern excludes; never another organisation's.
    let expected: BTreeSet<String> = ["acme/api", "acme/ml-train", "acme/web"]
        .map(String::from)
        .into();
    let first = run_at(&plan, &state, now, true).await;
    assert_eq!(repos_of(&first), expected);
    assert_eq!(first.results.len(), 3, "one row per repository");
    let status_metric = "metta.infra.cron.pulls.merged";
    let tagged: BTreeSet<String> = intake
        .stored()
        .iter()
        .filter(|p| p.metric == status_metric)
        .filter_map(|p| {
            p.tags
                .iter()
                .find_map(|t| t.strip_prefix("repo:").map(String::from))
        })
        .collect();
    assert_eq!(tagged, expected, "each repository's row is its own series");

    // Unchanged: the listing is revalidated and costs nothing.
    gh.clear_log();
    let again = run_at(&plan, &state, now + chrono::TimeDelta::minutes(10), true).await;
    assert_eq!(repos_of(&again), expected);
    let listing: Vec<_> = gh
        .log()
        .into_iter()
        .filter(|l| l.target.starts_with("/orgs/acme/repos"))
        .collect();
    assert!(!listing.is_empty());
    assert!(
        listing.iter().all(|l| l.conditional && l.status == 304),
        "{listing:?}"
    );

    // A repository added appears; one archived and one deleted leave.
    gh.add_history(history("acme/new", 10, 0, 3));
    gh.set_repo_meta("acme/web", json!({"archived": true}));
    gh.remove_repo("acme/ml-train");
    let later = run_at(&plan, &state, now + chrono::TimeDelta::minutes(20), true).await;
    let expected: BTreeSet<String> = ["acme/api", "acme/new"].map(String::from).into();
    assert_eq!(repos_of(&later), expected);
    let store = infra_health::state::StateStore::open(state.to_str().unwrap()).unwrap();
    let memory = infra_health::state::rows::load(&store).await.unwrap();
    let remembered: BTreeSet<String> = memory
        .rows
        .iter()
        .filter_map(|r| r.row.repo.clone())
        .collect();
    assert_eq!(remembered, expected, "the retired rows left the memory");
    let board = std::fs::read_to_string(state.join("board.html")).unwrap();
    assert!(board.contains("acme/new — ci") && board.contains("acme/api — ci"));
    assert!(!board.contains("acme/web") && !board.contains("acme/ml-train"));
}

/// A first run that does not fit the run's request budget is spread over the next runs: the
/// newest details first, the rows of a repository not yet whole `unknown` with
/// `reason:backfilling` and no value, a progress self-metric, and in the end the same values as
/// a collection with no budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_past_the_budget_is_backfilled_over_the_next_runs() {
    let names = ["acme/a", "acme/b", "acme/c", "acme/d"];
    let histories: Vec<History> = names
        .iter()
        .enumerate()
        .map(|(i, n)| history(n, 20 + i as u64, 150, 0))
        .collect();
    let gh = FakeGithub::start(histories.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let budgeted = infra_health::config::parse(
        &dir.path().join("b.toml"),
        &actions_config(&gh.url, "max_in_flight = 3"),
    )
    .unwrap();
    let unlimited =
        infra_health::config::parse(&dir.path().join("u.toml"), &actions_config(&gh.url, ""))
            .unwrap();
    let now = fixed_now();

    // The same organisation collected with no budget to speak of: the values to reach.
    gh.set_remaining(1_000_000);
    let whole = run_at(&unlimited, &dir.path().join("whole"), now, false).await;
    let truth: BTreeMap<String, Option<f64>> = whole
        .results
        .iter()
        .map(|(_, r)| (r.row.to_string(), r.compared))
        .collect();
    assert_eq!(truth.len(), 4);
    let reasons: Vec<_> = whole
        .results
        .iter()
        .map(|(_, r)| r.reason.clone())
        .collect();
    assert!(truth.values().all(Option::is_some), "{truth:?} {reasons:?}");
    let first_cost = gh.log().iter().filter(|l| l.status == 200).count();

    // Each run finds 150 requests left: it may spend 80 % (120), a fraction of the first run.
    assert!(
        first_cost > 2 * 120,
        "the backfill needs several runs ({first_cost})"
    );
    let state = dir.path().join("state");
    gh.state
        .peak_in_flight
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let mut progress = Vec::new();
    for k in 0..12 {
        gh.set_remaining(150);
        gh.clear_log();
        let summary = run_at(&budgeted, &state, now, false).await;
        let spent = gh.log().iter().filter(|l| l.status == 200).count();
        assert!(spent <= 120, "run {k} spent {spent} of an allowance of 120");
        for (_, r) in &summary.results {
            if r.unknown_reason == Some(UnknownReason::Backfilling) {
                assert!(r.value.is_none() && r.compared.is_none(), "{r:?}");
                assert_eq!(r.status, Status::Unknown);
            }
        }
        let figures: BTreeMap<String, f64> = summary.collectors[0]
            .self_metrics
            .iter()
            .map(|m| (m.path.clone(), m.value))
            .collect();
        progress.push(figures["github.backfill.progress"]);
        let backfilling = figures["github.repos_backfilling"];
        if backfilling == 0.0 {
            let got: BTreeMap<String, Option<f64>> = summary
                .results
                .iter()
                .map(|(_, r)| (r.row.to_string(), r.compared))
                .collect();
            assert_eq!(
                got, truth,
                "after the backfill, the values of a whole collection"
            );
            break;
        }
        assert!(k < 11, "still backfilling after 12 runs: {progress:?}");
    }
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(progress[0] < 1.0, "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[1] >= w[0]),
        "progress never goes back: {progress:?}"
    );
    let peak = gh
        .state
        .peak_in_flight
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1..=3).contains(&peak),
        "max_in_flight = 3 held: {peak} in flight"
    );
}

/// Three shards run at once on one S3 state store: every repository is collected by exactly
/// one of them, the row memory holds every repository's row, and each shard's rows reach
/// Datadog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_at_once_split_an_organisation_over_one_s3_store() {
    let names: Vec<String> = (0..12).map(|i| format!("acme/service-{i:02}")).collect();
    let gh = FakeGithub::start(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| history(n, 40 + i as u64, 0, 3))
            .collect(),
    )
    .await;
    let intake = FakeDatadog::start(KEY);
    let endpoint = s3::endpoint();
    s3::create_bucket(&endpoint, "shards-it");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_org_config(dir.path(), &gh.url, &intake.url);
    let state = "s3://shards-it/org";
    let children: Vec<_> = (1..=3)
        .map(|k| {
            let shard = format!("{k}/3");
            let mut cmd = binary(&["run", "--shard", &shard], &cfg, state);
            cmd.env("RUST_LOG", "info")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in s3::env(&endpoint) {
                cmd.env(k, v);
            }
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
    }
    // GitHub saw each repository's pulls listed, and each listing asked once: by one process.
    let listed: Vec<String> = gh
        .log()
        .iter()
        .filter(|l| l.target.contains("/pulls?"))
        .map(|l| l.target.clone())
        .collect();
    let repos: BTreeSet<String> = listed
        .iter()
        .filter_map(|t| t.split('/').nth(3).map(|n| format!("acme/{n}")))
        .collect();
    assert_eq!(repos.len(), 12, "{listed:?}");
    let distinct: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(
        distinct.len(),
        listed.len(),
        "no listing asked twice: {listed:?}"
    );
    // The split is not degenerate: every shard had repositories of its own.
    for k in 1..=3u32 {
        let shard = infra_health::collectors::Shard { index: k, count: 3 };
        assert!(
            names.iter().any(|n| shard.owns(n)),
            "shard {shard} is empty"
        );
    }
    // The shared row memory holds every repository's row; Datadog got every one.
    let rt_vars = s3::env(&endpoint)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v));
    let store = infra_health::state::StateStore::open_with(state, rt_vars).unwrap();
    let memory = infra_health::state::rows::load(&store).await.unwrap();
    let remembered: BTreeSet<String> = memory
        .rows
        .iter()
        .filter_map(|r| r.row.repo.clone())
        .collect();
    assert_eq!(remembered, names.iter().cloned().collect::<BTreeSet<_>>());
    let delivered: BTreeSet<String> = intake
        .stored()
        .iter()
        .filter(|p| p.metric == "metta.infra.cron.pulls.merged")
        .filter_map(|p| {
            p.tags
                .iter()
                .find_map(|t| t.strip_prefix("repo:").map(String::from))
        })
        .collect();
    assert_eq!(delivered, remembered);
}

/// A repository whose first collection takes longer than its time limit (here: a 20-a-minute
/// request ceiling and a 3 s `repo_timeout`) stops sending at 80 % of the limit instead of
/// waiting, keeps what it fetched, and the next runs finish it: no run is cut off by the hard
/// timeout, and the values come out as a collection with no limits gives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_out_of_time_keeps_its_progress_and_goes_on() {
    let gh = FakeGithub::start(vec![history("acme/slow", 77, 120, 0)]).await;
    gh.set_remaining(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let parse = |name: &str, extra: &str| {
        infra_health::config::parse(&dir.path().join(name), &actions_config(&gh.url, extra))
            .unwrap()
    };
    let limited = parse(
        "l.toml",
        "max_requests_per_minute = 20\nrepo_timeout = \"3s\"",
    );
    let unlimited = parse("u.toml", "");
    let now = fixed_now();
    let whole = run_at(&unlimited, &dir.path().join("whole"), now, false).await;
    let truth = whole.results[0].1.compared;
    assert!(truth.is_some(), "{:?}", whole.results[0].1.reason);
    let needed = gh.log().len();
    assert!(
        needed > 2 * 20,
        "several runs are needed ({needed} requests)"
    );

    let state = dir.path().join("state");
    for k in 0..12 {
        gh.clear_log();
        let started = std::time::Instant::now();
        let summary = run_at(&limited, &state, now, false).await;
        let took = started.elapsed();
        assert!(
            summary.collectors[0].result.is_ok(),
            "run {k}: {:?}",
            summary.collectors[0].result
        );
        assert!(
            took < std::time::Duration::from_millis(2900),
            "run {k} took {took:?}: stopped by the hard limit, not at 80 % of it"
        );
        assert!(
            gh.log().len() <= 20,
            "run {k} sent {} requests",
            gh.log().len()
        );
        let r = &summary.results[0].1;
        if r.unknown_reason == Some(UnknownReason::Backfilling) {
            assert!(r.compared.is_none());
            assert!(k < 11, "still backfilling after 12 runs");
            continue;
        }
        assert_eq!(r.compared, truth, "run {k}: {:?}", r.reason);
        assert!(k >= 2, "finished in run {k}: the limit did not bite");
        return;
    }
}

/// `verify` reads back a row per repository: each repository's series on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_back_every_repository_row() {
    const APP: &str = "app-key-for-organisation-tests-1";
    let gh = FakeGithub::start(vec![
        history("acme/a", 61, 0, 4),
        history("acme/b", 62, 0, 4),
        history("acme/c", 63, 0, 4),
    ])
    .await;
    let intake = FakeDatadog::start(KEY);
    intake.set_app_key(APP);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_org_config(dir.path(), &gh.url, &intake.url);
    let state = dir.path().join("state");
    let bin = |args: &[&str]| {
        let mut c = binary(args, &cfg, state.to_str().unwrap());
        c.env("DD_APP_KEY", APP).env("DD_URL", &intake.url);
        c
    };
    let run = bin(&["run"]).output().await.unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = bin(&["verify"]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 rows: 3 landed, 0 missing"), "{stdout}");
    for repo in ["acme/a", "acme/b", "acme/c"] {
        assert!(
            stdout.contains(&format!("ci/pull_requests/merged/count@{repo}")),
            "{stdout}"
        );
    }
}

/// `repos = ["installation"]` as a GitHub App: every repository the installation can read
/// (two organisations here), listed with the installation token; and `checks --metrics` prices
/// the rows for the repositories the run covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_installation_covers_its_repositories_and_checks_prices_them() {
    let gh = FakeGithub::start(vec![
        history("acme/a", 81, 0, 2),
        history("partner/b", 82, 0, 2),
        history("partner/old", 83, 0, 2),
    ])
    .await;
    gh.set_repo_meta("partner/old", json!({"archived": true}));
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("app.pem");
    crate::support::write_github_app_key(&pem);
    let extra = format!(
        "app_id = 12345\ninstallation_id = 777\nprivate_key_path = \"{}\"",
        pem.display()
    );
    let cfg = dir.path().join("app.toml");
    std::fs::write(
        &cfg,
        pulls_config(&gh.url, "", r#"["installation"]"#, &extra),
    )
    .unwrap();
    let plan = infra_health::config::load(&cfg).unwrap();
    let state = dir.path().join("state");
    let summary = run_at(&plan, &state, fixed_now(), false).await;
    let expected: BTreeSet<String> = ["acme/a", "partner/b"].map(String::from).into();
    assert_eq!(repos_of(&summary), expected);
    let listing: Vec<_> = gh
        .log()
        .into_iter()
        .filter(|l| l.target.starts_with("/installation/repositories"))
        .collect();
    assert_eq!(listing.len(), 1);
    assert_eq!(
        listing[0].authorization.as_deref(),
        Some("Bearer ghs_installation_token_for_tests")
    );

    let out = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("infra-health"))
        .args(["checks", "--metrics", "--config"])
        .arg(&cfg)
        .env("INFRA_HEALTH_STATE", &state)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("for the 2 repositories the last runs covered (1 of the config's rows made once per repository"),
        "{stdout}"
    );
}
