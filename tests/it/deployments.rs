//! `github_deployments` (the four DORA keys) against the fake GitHub: one scenario per known
//! complaint about other tools. Each scenario is a small history written out by hand; the
//! expected values are worked out here from the scenario's own times (finished − committed,
//! failed ÷ deployed), not by the collector's code.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use infra_health::observation::{Observation, Value};
use infra_health::state::StateStore;

use crate::support::fake_github::{FakeGithub, collect_once};
use crate::support::github_history::{
    CommitData, DeployRun, DeploymentData, History, IssueData, REPO,
};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Hour `h` of the scenario: it starts 20 days before now, inside the default 30-day window.
fn t(h: i64) -> DateTime<Utc> {
    now() - TimeDelta::days(20) + TimeDelta::hours(h)
}

/// A deployment finishes ten minutes after it is created.
const DEPLOY_TAKES: TimeDelta = TimeDelta::minutes(10);

fn sha(n: u64) -> String {
    format!("{n:040x}")
}

/// A history being written: commits on `main` and deployments.
struct Scenario {
    h: History,
}

impl Scenario {
    fn new() -> Scenario {
        Scenario {
            h: History::empty(REPO, now()),
        }
    }

    /// A commit `n` with `parents`, committed at `at`.
    fn commit(&mut self, n: u64, message: &str, at: DateTime<Utc>, parents: &[u64]) -> String {
        let s = sha(n);
        self.h.commits.insert(
            0,
            CommitData {
                sha: s.clone(),
                message: message.into(),
                date: at,
                parents: parents.iter().map(|p| sha(*p)).collect(),
                change: s.clone(),
                mainline: true,
            },
        );
        s
    }

    /// Deployment `id` of commit `n` to `env`, created at `at`, ending in `state` ten minutes
    /// later (after `in_progress`).
    fn deploy(&mut self, id: u64, n: u64, env: &str, at: DateTime<Utc>, state: &str) {
        self.h.deployments.push(DeploymentData {
            id,
            sha: sha(n),
            environment: env.into(),
            created_at: at,
            statuses: vec![
                ("in_progress".into(), at + TimeDelta::minutes(1)),
                (state.into(), at + DEPLOY_TAKES),
            ],
        });
    }

    fn incident(&mut self, number: u64, at: DateTime<Utc>) {
        self.h.issues.push(IssueData {
            number,
            state: "open".into(),
            labels: vec!["incident".into()],
            is_pull: false,
            created_at: at,
            closed_at: None,
        });
    }
}

fn toml(url: &str, extra: &str) -> String {
    // The fake enforces no per-minute limit: the client's own (900) would only slow the tests.
    format!(
        "[[collector]]\nname = \"delivery\"\ntype = \"github_deployments\"\nrepo = \"{REPO}\"\n\
         api_url = \"{url}\"\nretry_base = \"10ms\"\nmax_retries = 2\n\
         max_requests_per_minute = 100000\n{extra}\n"
    )
}

struct Ran {
    obs: Vec<Observation>,
    metrics: BTreeMap<String, f64>,
}

async fn run(plan: &infra_health::config::Plan, state: &Arc<StateStore>) -> Ran {
    let outcomes = collect_once(plan, state, now()).await;
    let o = outcomes.into_iter().next().expect("one collector");
    let obs = o.result.unwrap_or_else(|e| panic!("collector failed: {e}"));
    let metrics = o
        .self_metrics
        .into_iter()
        .map(|m| (m.path, m.value))
        .collect();
    Ran { obs, metrics }
}

/// Collect once from `scenario` with `extra` options; the fake is returned for its log.
async fn collect(scenario: Scenario, extra: &str) -> (Ran, FakeGithub) {
    let fake = FakeGithub::start(vec![scenario.h]).await;
    let plan = infra_health::config::parse(
        Path::new("/tmp/deployments-test.toml"),
        &toml(&fake.url, extra),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let ran = run(&plan, &state).await;
    (ran, fake)
}

fn find<'a>(obs: &'a [Observation], signal: &str, env: &str) -> Option<&'a Observation> {
    obs.iter().find(|o| {
        o.signal == signal
            && o.tags.get("environment").map(String::as_str) == Some(env)
            && o.tags.get("repo").map(String::as_str) == Some(REPO)
    })
}

/// `(id, value)` of a count's events or a distribution's samples, sorted by id.
fn by_id(obs: &[Observation], signal: &str, env: &str) -> Vec<(String, f64)> {
    let o = find(obs, signal, env).unwrap_or_else(|| panic!("no {signal} for {env}: {obs:#?}"));
    let mut v: Vec<(String, f64)> = match &o.value {
        Value::Samples(s) => o.ids.iter().cloned().zip(s.iter().copied()).collect(),
        Value::Number(n) => {
            assert_eq!(
                *n as usize,
                o.ids.len(),
                "{signal}: one id per counted event"
            );
            o.ids.iter().map(|i| (i.clone(), 1.0)).collect()
        }
        v => panic!("{signal}: {v:?}"),
    };
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn ids(obs: &[Observation], signal: &str, env: &str) -> Vec<String> {
    by_id(obs, signal, env)
        .into_iter()
        .map(|(i, _)| i)
        .collect()
}

fn rate(obs: &[Observation], env: &str) -> Option<f64> {
    find(obs, "deployments.change_failure_rate", env).map(|o| match o.value {
        Value::Number(n) => n,
        ref v => panic!("{v:?}"),
    })
}

fn secs(d: TimeDelta) -> f64 {
    d.num_seconds() as f64
}

/// `(DEPLOYMENT:SHA, finished − committed)` expected for deployment `id` finished at `done`.
fn lead(id: u64, done: DateTime<Utc>, commits: &[(u64, DateTime<Utc>)]) -> Vec<(String, f64)> {
    commits
        .iter()
        .map(|(n, at)| (format!("{id}:{}", sha(*n)), secs(done - *at)))
        .collect()
}

fn sorted(mut v: Vec<(String, f64)>) -> Vec<(String, f64)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// fourkeys #46: several merges in one deployment. Every commit the deployment shipped (the
/// pull requests' own commits and both merge commits) is one sample, against the deployment's
/// finish time.
#[tokio::test]
async fn several_merges_in_one_deployment_give_one_sample_per_commit() {
    let mut s = Scenario::new();
    s.commit(1, "initial", t(0), &[]);
    s.deploy(100, 1, "production", t(1), "success");
    // PR A: a1, a2 merged by m1; PR B: b1 merged by m2 on top.
    s.commit(2, "a1", t(2), &[1]);
    s.commit(3, "a2", t(3), &[2]);
    s.commit(4, "Merge pull request #1", t(4), &[1, 3]);
    s.commit(5, "b1", t(3), &[1]);
    s.commit(6, "Merge pull request #2", t(5), &[4, 5]);
    s.deploy(101, 6, "production", t(8), "success");
    let (ran, _) = collect(s, "").await;

    let done = t(8) + DEPLOY_TAKES;
    let expected = lead(
        101,
        done,
        &[(2, t(2)), (3, t(3)), (4, t(4)), (5, t(3)), (6, t(5))],
    );
    assert_eq!(
        by_id(&ran.obs, "deployments.lead_time", "production"),
        sorted(expected)
    );
    // The first deployment has no previous one: no samples of its own.
    assert_eq!(
        ids(&ran.obs, "deployments", "production"),
        strings(&["100", "101"])
    );
    assert!(ids(&ran.obs, "deployments.failed", "production").is_empty());
    assert_eq!(rate(&ran.obs, "production"), Some(0.0));
    assert!(by_id(&ran.obs, "deployments.recovery_time", "production").is_empty());
}

/// DevLake #6953 and #8188: two environments are counted apart, and each deployment is compared
/// with the previous deployment to its own environment.
#[tokio::test]
async fn two_environments_each_compare_with_their_own_previous_deployment() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    s.commit(3, "c3", t(4), &[2]);
    s.deploy(200, 1, "staging", t(1), "success");
    s.deploy(201, 2, "staging", t(3), "success");
    s.deploy(202, 3, "staging", t(5), "success");
    s.deploy(300, 1, "production", t(1), "success");
    s.deploy(301, 3, "production", t(10), "success");
    let (ran, _) = collect(s, "environments = [\"production\", \"staging\"]").await;

    assert_eq!(
        ids(&ran.obs, "deployments", "staging"),
        strings(&["200", "201", "202"])
    );
    assert_eq!(
        ids(&ran.obs, "deployments", "production"),
        strings(&["300", "301"])
    );
    let mut staging = lead(201, t(3) + DEPLOY_TAKES, &[(2, t(2))]);
    staging.extend(lead(202, t(5) + DEPLOY_TAKES, &[(3, t(4))]));
    assert_eq!(
        by_id(&ran.obs, "deployments.lead_time", "staging"),
        sorted(staging)
    );
    // Production went from c1 to c3: both c2 and c3 reached it at 301, whatever staging did.
    let production = lead(301, t(10) + DEPLOY_TAKES, &[(2, t(2)), (3, t(4))]);
    assert_eq!(
        by_id(&ran.obs, "deployments.lead_time", "production"),
        sorted(production)
    );
}

/// A rollback is a deployment; it ships no commits (its sha is behind), and it fails every
/// deployment since the sha it restores. Recovery is the time to the rollback.
#[tokio::test]
async fn a_rollback_fails_what_it_rolls_back_and_recovers_it() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    s.commit(3, "c3", t(6), &[2]);
    s.deploy(10, 1, "production", t(1), "success");
    s.deploy(11, 2, "production", t(3), "success");
    s.deploy(12, 1, "production", t(4), "success"); // rollback to c1
    s.deploy(13, 3, "production", t(7), "success"); // c2 (fixed by c3) goes out again
    let (ran, _) = collect(s, "").await;

    assert_eq!(
        ids(&ran.obs, "deployments", "production"),
        strings(&["10", "11", "12", "13"])
    );
    assert_eq!(
        ids(&ran.obs, "deployments.failed", "production"),
        strings(&["11"])
    );
    assert_eq!(rate(&ran.obs, "production"), Some(1.0 / 4.0));
    assert_eq!(
        by_id(&ran.obs, "deployments.recovery_time", "production"),
        vec![("11".to_string(), secs(t(4) - t(3)))]
    );
    // 12 (the rollback) ships nothing; 13 ships c2 and c3 again, against c1 (what ran before).
    let mut expected = lead(11, t(3) + DEPLOY_TAKES, &[(2, t(2))]);
    expected.extend(lead(13, t(7) + DEPLOY_TAKES, &[(2, t(2)), (3, t(6))]));
    assert_eq!(
        by_id(&ran.obs, "deployments.lead_time", "production"),
        sorted(expected)
    );
}

/// A revert of a commit a deployment shipped, landing on the branch afterwards, fails that
/// deployment; so does a hotfix landing before the next deployment.
#[tokio::test]
async fn a_revert_of_a_shipped_commit_and_a_hotfix_fail_their_deployments() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    let feature = s.commit(2, "add feature", t(2), &[1]);
    s.deploy(20, 1, "production", t(1), "success");
    s.deploy(21, 2, "production", t(3), "success");
    s.commit(
        3,
        &format!("Revert \"add feature\"\n\nThis reverts commit {feature}."),
        t(5),
        &[2],
    );
    s.deploy(22, 3, "production", t(6), "success");
    s.commit(4, "c4", t(7), &[3]);
    s.deploy(23, 4, "production", t(8), "success");
    s.commit(5, "hotfix: crash on start", t(9), &[4]);
    s.deploy(24, 5, "production", t(10), "success");
    let (ran, _) = collect(s, "").await;

    assert_eq!(
        ids(&ran.obs, "deployments.failed", "production"),
        strings(&["21", "23"])
    );
    assert_eq!(rate(&ran.obs, "production"), Some(2.0 / 5.0));
    assert_eq!(
        by_id(&ran.obs, "deployments.recovery_time", "production"),
        sorted(vec![
            ("21".to_string(), secs(t(6) - t(3))),
            ("23".to_string(), secs(t(10) - t(8))),
        ])
    );
}

/// DevLake #8150: an incident is pinned to the latest deployment only when it is opened within
/// 24 h of it; one opened days after the last deployment is attributed to none. fourkeys #213: an
/// incident counts once, however often it is updated.
#[tokio::test]
async fn an_incident_days_after_the_last_deployment_is_not_attributed() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    s.deploy(30, 1, "production", t(1), "success");
    s.deploy(31, 2, "production", t(3), "success");
    s.incident(7, t(3) + TimeDelta::days(3));
    let (ran, _) = collect(s, "").await;
    assert!(ids(&ran.obs, "deployments.failed", "production").is_empty());
    assert_eq!(rate(&ran.obs, "production"), Some(0.0));

    // The same history with an incident two hours after 30 (before 31): 30 failed, recovered
    // by 31.
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    s.deploy(30, 1, "production", t(1), "success");
    s.deploy(31, 2, "production", t(5), "success");
    s.incident(8, t(1) + TimeDelta::hours(2));
    s.incident(9, t(3) + TimeDelta::days(3));
    let (ran, _) = collect(s, "").await;
    assert_eq!(
        ids(&ran.obs, "deployments.failed", "production"),
        strings(&["30"])
    );
    assert_eq!(rate(&ran.obs, "production"), Some(0.5));
    assert_eq!(
        by_id(&ran.obs, "deployments.recovery_time", "production"),
        vec![("30".to_string(), secs(t(5) - t(1)))]
    );
}

/// A deployment that ended `failure` or `error` did not deploy: it is not counted, not a change
/// failure, and the next one is compared with the last that did deploy. One whose `success` was
/// followed by `inactive` (superseded) did deploy.
#[tokio::test]
async fn a_deployment_that_failed_to_deploy_is_not_counted() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    s.commit(3, "c3", t(4), &[2]);
    s.deploy(40, 1, "production", t(1), "success");
    s.h.deployments[0]
        .statuses
        .push(("inactive".into(), t(5) + DEPLOY_TAKES));
    s.deploy(41, 2, "production", t(3), "failure");
    s.deploy(42, 2, "production", t(3) + TimeDelta::minutes(30), "error");
    s.deploy(43, 3, "production", t(5), "success");
    s.deploy(44, 3, "production", t(6), "in_progress");
    let (ran, _) = collect(s, "").await;

    assert_eq!(
        ids(&ran.obs, "deployments", "production"),
        strings(&["40", "43"])
    );
    assert!(ids(&ran.obs, "deployments.failed", "production").is_empty());
    assert_eq!(
        by_id(&ran.obs, "deployments.lead_time", "production"),
        sorted(lead(43, t(5) + DEPLOY_TAKES, &[(2, t(2)), (3, t(4))]))
    );
}

/// The first deployment in reach has no previous one: it is counted and yields no samples.
#[tokio::test]
async fn a_first_deployment_has_no_lead_time_samples() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    s.deploy(50, 2, "production", t(3), "success");
    let (ran, fake) = collect(s, "").await;
    assert_eq!(ids(&ran.obs, "deployments", "production"), strings(&["50"]));
    assert!(by_id(&ran.obs, "deployments.lead_time", "production").is_empty());
    assert_eq!(rate(&ran.obs, "production"), Some(0.0));
    assert!(
        !fake.log().iter().any(|l| l.target.contains("/compare/")),
        "nothing to compare"
    );
}

/// No deployment in the window: a count of 0, and no rate at all (its row is unknown, not 0 %).
#[tokio::test]
async fn no_deployment_gives_no_change_failure_rate() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    let (ran, _) = collect(s, "").await;
    assert!(ids(&ran.obs, "deployments", "production").is_empty());
    assert_eq!(rate(&ran.obs, "production"), None);
}

/// The weaker source: successful runs of a named workflow on the branch stand in.
#[tokio::test]
async fn a_workflow_stands_in_where_there_are_no_deployments() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    for (id, n, h) in [(900_u64, 1_u64, 1_i64), (901, 2, 3)] {
        s.h.deploy_runs.push(DeployRun {
            id,
            sha: sha(n),
            branch: "main".into(),
            created_at: t(h),
            updated_at: t(h) + DEPLOY_TAKES,
        });
    }
    let (ran, _) = collect(s, "workflow = \"deploy.yml\"").await;
    assert_eq!(
        ids(&ran.obs, "deployments", "production"),
        strings(&["900", "901"])
    );
    assert_eq!(
        by_id(&ran.obs, "deployments.lead_time", "production"),
        lead(901, t(3) + DEPLOY_TAKES, &[(2, t(2))])
    );
}

/// Cost: the first run for a repository with 500 deployments in the window, every request
/// counted by the fake; an unchanged second run costs no primary rate limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_deployments_cost_and_an_unchanged_run_costs_nothing() {
    let mut s = Scenario::new();
    s.commit(1, "c0", t(0), &[]);
    // One commit and one deployment every half hour: 500 of each over 10.4 days.
    let at = |i: u64| t(0) + TimeDelta::minutes(30 * (i as i64 + 1));
    for i in 0..500_u64 {
        s.commit(i + 2, &format!("change {i}"), at(i), &[i + 1]);
        s.deploy(
            10_000 + i,
            i + 2,
            "production",
            at(i) + TimeDelta::minutes(20),
            "success",
        );
    }
    let fake = FakeGithub::start(vec![s.h]).await;
    let plan = infra_health::config::parse(
        Path::new("/tmp/deployments-test.toml"),
        &toml(&fake.url, "max_concurrency = 16"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let first = run(&plan, &state).await;
    let log = fake.log();
    let count = |part: &str| log.iter().filter(|l| l.target.contains(part)).count();
    // 5 listing pages (100 a page), one statuses read per deployment, one comparison per
    // deployment after the first, 6 pages of branch commits (501), one page each of closed
    // pulls and incident issues.
    let expected = 5 + 500 + 499 + 6 + 1 + 1;
    assert_eq!(count("/deployments?"), 5);
    assert_eq!(count("/statuses"), 500);
    assert_eq!(count("/compare/"), 499);
    assert_eq!(log.len(), expected, "first run");
    assert_eq!(first.metrics["github.requests"], expected as f64);
    assert_eq!(ids(&first.obs, "deployments", "production").len(), 500);
    assert_eq!(
        by_id(&first.obs, "deployments.lead_time", "production").len(),
        499
    );
    println!("github_deployments, 500 deployments: first run {expected} requests");

    fake.clear_log();
    let second = run(&plan, &state).await;
    assert_eq!(second.metrics["github.primary_cost"], 0.0);
    let log = fake.log();
    assert!(log.iter().all(|l| l.status == 304), "{log:#?}");
    assert_eq!(second.metrics["github.requests"], log.len() as f64);
    assert_eq!(
        by_id(&second.obs, "deployments.lead_time", "production"),
        by_id(&first.obs, "deployments.lead_time", "production")
    );
    println!(
        "github_deployments, 500 deployments: unchanged run {} requests, all 304",
        log.len()
    );
}

/// The bundled config's Delivery rows: replayed from the example recording, known (not
/// `unknown`), drawn in the board's `delivery` section and the dashboard's "Delivery" group.
#[test]
fn the_bundled_delivery_rows_reach_the_board_and_the_dashboard() {
    let config = crate::support::repo_root().join("config/infra-health.toml");
    let state = tempfile::tempdir().unwrap();
    let out = crate::support::bin()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(state.path())
        .args(["--only", "github_example_deployments"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let delivery: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("delivery/dora"))
        .collect();
    assert_eq!(delivery.len(), 5, "{stdout}");
    assert!(delivery.iter().all(|l| !l.contains("unknown")), "{stdout}");
    let board = std::fs::read_to_string(state.path().join("board.html")).unwrap();
    assert!(board.contains("id=\"category-delivery\""));
    assert!(board.contains("Lead time for changes p50"));

    let plan = infra_health::config::load(&config).unwrap();
    let dashboard = infra_health::dashboard::render(&plan).unwrap();
    let groups: Vec<&str> = dashboard["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["definition"]["title"].as_str())
        .collect();
    assert!(groups.contains(&"Delivery"), "{groups:?}");
}

/// A deployment of a sha GitHub cannot compare (a force-pushed branch: 404) yields no lead
/// time samples; the repository's other figures still count, and the answer is kept.
#[tokio::test]
async fn a_sha_github_cannot_compare_costs_only_its_own_samples() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    s.deploy(60, 1, "production", t(1), "success");
    s.deploy(61, 99, "production", t(3), "success"); // sha 99 is in no history
    s.deploy(62, 2, "production", t(4), "success");
    let (ran, fake) = collect(s, "").await;
    assert_eq!(
        ids(&ran.obs, "deployments", "production"),
        strings(&["60", "61", "62"])
    );
    assert!(by_id(&ran.obs, "deployments.lead_time", "production").is_empty());
    assert_eq!(
        fake.log()
            .iter()
            .filter(|l| l.target.contains("/compare/") && l.status == 404)
            .count(),
        2
    );
}

/// A deployment still in progress is asked again each run, conditionally: unchanged, it costs
/// no primary rate limit; once it succeeds it is counted, and its statuses are not read again.
#[tokio::test]
async fn an_unfinished_deployment_is_asked_again_at_no_cost_until_it_finishes() {
    let mut s = Scenario::new();
    s.commit(1, "c1", t(0), &[]);
    s.commit(2, "c2", t(2), &[1]);
    s.deploy(70, 1, "production", t(1), "success");
    s.deploy(71, 2, "production", t(3), "in_progress");
    let fake = FakeGithub::start(vec![s.h]).await;
    let plan = infra_health::config::parse(
        Path::new("/tmp/deployments-test.toml"),
        &toml(&fake.url, ""),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let first = run(&plan, &state).await;
    assert_eq!(
        ids(&first.obs, "deployments", "production"),
        strings(&["70"])
    );

    fake.clear_log();
    let second = run(&plan, &state).await;
    assert_eq!(second.metrics["github.primary_cost"], 0.0);
    let statuses: Vec<_> = fake
        .log()
        .into_iter()
        .filter(|l| l.target.contains("/statuses"))
        .collect();
    assert_eq!(statuses.len(), 1, "only the unfinished one: {statuses:?}");
    assert!(statuses[0].target.contains("/71/") && statuses[0].status == 304);

    // It succeeds at t(3) + 10 m.
    fake.with_history(REPO, |h| {
        let d = h.deployments.iter_mut().find(|d| d.id == 71).unwrap();
        d.statuses.push(("success".into(), t(3) + DEPLOY_TAKES));
    });
    fake.clear_log();
    let third = run(&plan, &state).await;
    assert_eq!(
        ids(&third.obs, "deployments", "production"),
        strings(&["70", "71"])
    );
    assert_eq!(
        by_id(&third.obs, "deployments.lead_time", "production"),
        lead(71, t(3) + DEPLOY_TAKES, &[(2, t(2))])
    );
    fake.clear_log();
    run(&plan, &state).await;
    assert!(!fake.log().iter().any(|l| l.target.contains("/statuses")));
}
