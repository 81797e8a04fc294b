//! The `github_*` collectors against the fake GitHub (`support/fake_github.rs`).
//!
//! Expectations are computed here, from the generated history, by definitions written out
//! independently of the collectors' code.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use infra_health::config::Plan;
use infra_health::observation::{Observation, Value};
use infra_health::state::StateStore;

use crate::support::fake_github::{FakeGithub, Faults, collect_once};
use crate::support::github_history::{
    BRANCH_EVENTS, History, REPO, RunData, Sizes, TIMEOUT_ANNOTATION,
};

const SEED: u64 = 8;

fn fixed_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn plan(text: &str) -> Plan {
    infra_health::config::parse(Path::new("/tmp/github-test.toml"), text)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The four collectors pointed at `url` for `repos`, with short test waits.
fn collectors_toml(url: &str, repos: &str, extra: &str) -> String {
    let common = format!(
        "repos = {repos}\napi_url = \"{url}\"\nmin_secondary_wait = \"50ms\"\nretry_base = \"10ms\"\nmax_retries = 4\nmax_concurrency = 16\nmax_requests_per_minute = 100000\n{extra}"
    );
    format!(
        r#"
[[collector]]
name = "actions"
type = "github_actions"
workflows = ["tests", "benchmarks"]
{common}
[[collector]]
name = "commits"
type = "github_commits"
{common}
[[collector]]
name = "pulls"
type = "github_pulls"
{common}
[[collector]]
name = "issues"
type = "github_issues"
labels = ["training", "infra", "bug"]
{common}
"#
    )
}

/// The four collectors and `github_deployments` (production and staging), as the bundled
/// example records them.
fn with_deployments(url: &str, repos: &str, extra: &str) -> String {
    format!(
        "{}\n[[collector]]\nname = \"deployments\"\ntype = \"github_deployments\"\nenvironments = [\"production\", \"staging\"]\nrepos = {repos}\napi_url = \"{url}\"\nretry_base = \"10ms\"\nmax_concurrency = 16\n{extra}\n",
        collectors_toml(url, repos, extra)
    )
}

struct Collected {
    obs: BTreeMap<String, Vec<Observation>>,
    metrics: BTreeMap<String, BTreeMap<String, f64>>,
    errors: BTreeMap<String, String>,
}

async fn collect_all(plan: &Plan, state: &Arc<StateStore>, now: DateTime<Utc>) -> Collected {
    let outcomes = collect_once(plan, state, now).await;
    let mut c = Collected {
        obs: BTreeMap::new(),
        metrics: BTreeMap::new(),
        errors: BTreeMap::new(),
    };
    for o in outcomes {
        match o.result {
            Ok(obs) => {
                c.obs.insert(o.name.clone(), obs);
            }
            Err(e) => {
                c.errors.insert(o.name.clone(), e);
            }
        }
    }
    for inst in &plan.collectors {
        let m = inst
            .collector
            .self_metrics()
            .into_iter()
            .map(|m| (m.path, m.value))
            .collect();
        c.metrics.insert(inst.name.clone(), m);
    }
    c
}

fn find<'a>(obs: &'a [Observation], signal: &str, tags: &[(&str, &str)]) -> &'a Observation {
    obs.iter()
        .find(|o| {
            o.signal == signal
                && tags
                    .iter()
                    .all(|(k, v)| o.tags.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no observation {signal} {tags:?} in {obs:#?}"))
}

fn number(obs: &[Observation], signal: &str, tags: &[(&str, &str)]) -> f64 {
    match &find(obs, signal, tags).value {
        Value::Number(n) => *n,
        v => panic!("{signal}: not a number: {v:?}"),
    }
}

fn samples(obs: &[Observation], signal: &str) -> Vec<f64> {
    match &find(obs, signal, &[]).value {
        Value::Samples(s) => {
            let mut s = s.clone();
            s.sort_by(f64::total_cmp);
            s
        }
        v => panic!("{signal}: not samples: {v:?}"),
    }
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

// ---- independent expectations -------------------------------------------------------------

struct ActionsExpected {
    conclusions: BTreeMap<&'static str, String>,
    failing_other: usize,
    success_ratio: f64,
    completed: usize,
    flaky: Vec<String>,
    durations: Vec<(String, f64)>,
    queue: Vec<(String, f64)>,
    queue_by_runner: BTreeMap<String, Vec<f64>>,
    timed_out: Vec<String>,
    cancelled: usize,
}

/// Runs of the repository itself on `main` for the default events (definition 1).
fn own_main(h: &History, r: &RunData) -> bool {
    r.branch == "main" && r.head_repo == h.repo && BRANCH_EVENTS.contains(&r.event.as_str())
}

const VERDICTS: &[&str] = &[
    "success",
    "failure",
    "timed_out",
    "startup_failure",
    "action_required",
];

/// Expected values at `h.now`; `unreadable` jobs' annotations cannot be read (counted cancelled).
fn expect_actions(h: &History, unreadable: &[u64]) -> ActionsExpected {
    let start = h.now - TimeDelta::days(7);
    let done: Vec<&RunData> = h
        .runs
        .iter()
        .filter(|r| own_main(h, r) && r.created_at >= start && r.status == "completed")
        .collect();
    // Definition 2: the newest completed run whose conclusion is a verdict.
    let latest = |wf: usize| {
        done.iter()
            .filter(|r| r.workflow == wf && VERDICTS.contains(&r.conclusion.as_deref().unwrap()))
            .max_by_key(|r| (r.created_at, r.id))
            .map(|r| r.conclusion.clone().unwrap())
    };
    let mut conclusions = BTreeMap::new();
    conclusions.insert("tests", latest(0).unwrap()); // workflow "Tests", file tests.yml
    conclusions.insert("benchmarks", latest(1).unwrap()); // workflow "Benchmarks", file bench.yml
    let failing_other = (2..h.workflows.len())
        .filter(|w| {
            latest(*w).is_some_and(|c| c == "failure" || c == "timed_out" || c == "startup_failure")
        })
        .count();
    let decided: Vec<_> = done
        .iter()
        .filter(|r| {
            !matches!(
                r.conclusion.as_deref(),
                Some("cancelled" | "skipped" | "neutral")
            )
        })
        .collect();
    let ok = decided
        .iter()
        .filter(|r| r.conclusion.as_deref() == Some("success"))
        .count();
    let flaky = done
        .iter()
        .filter(|r| {
            r.run_attempt > 1
                && r.conclusion.as_deref() == Some("success")
                && matches!(
                    r.first_attempt_conclusion.as_deref(),
                    Some("failure" | "timed_out")
                )
        })
        .map(|r| r.id.to_string())
        .collect();
    // Definition 6: work that ran — not skipped, and a job of the last attempt started.
    let ran = |j: &&crate::support::github_history::JobData| {
        j.started_at.is_some() && j.conclusion.as_deref() != Some("skipped")
    };
    let durations = done
        .iter()
        .filter(|r| {
            r.conclusion.as_deref() != Some("skipped")
                && h.jobs[&r.id]
                    .iter()
                    .filter(|j| j.run_attempt == r.run_attempt)
                    .any(|j| ran(&j))
        })
        .map(|r| {
            (
                format!("{}.{}", r.id, r.run_attempt),
                (r.updated_at - r.run_started_at).num_seconds() as f64,
            )
        })
        .collect();
    let mut queue = Vec::new();
    let mut queue_by_runner: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut timed_out = Vec::new();
    let mut cancelled = 0;
    for r in &done {
        for j in &h.jobs[&r.id] {
            if ran(&j) {
                let s = (j.started_at.unwrap() - j.created_at).num_seconds() as f64;
                queue.push((j.id.to_string(), s));
                queue_by_runner
                    .entry(j.labels.last().unwrap().clone())
                    .or_default()
                    .push(s);
            }
            match j.conclusion.as_deref() {
                Some("timed_out") => timed_out.push(j.id.to_string()),
                Some("cancelled") => {
                    let annotated = h
                        .annotations
                        .get(&j.id)
                        .is_some_and(|a| a.iter().any(|m| m == TIMEOUT_ANNOTATION));
                    if annotated && !unreadable.contains(&j.id) {
                        timed_out.push(j.id.to_string())
                    } else {
                        cancelled += 1
                    }
                }
                _ => {}
            }
        }
    }
    for v in queue_by_runner.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    let mut flaky: Vec<String> = flaky;
    flaky.sort();
    timed_out.sort();
    ActionsExpected {
        conclusions,
        failing_other,
        success_ratio: ok as f64 / decided.len() as f64,
        completed: done.len(),
        flaky,
        durations: sorted_pairs(durations),
        queue: sorted_pairs(queue),
        queue_by_runner,
        timed_out,
        cancelled,
    }
}

fn sorted_pairs(mut v: Vec<(String, f64)>) -> Vec<(String, f64)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// An observation's samples paired with their ids, sorted by id.
fn id_samples(o: &Observation) -> Vec<(String, f64)> {
    match &o.value {
        Value::Samples(s) => {
            assert_eq!(s.len(), o.ids.len(), "{}: one id per sample", o.signal);
            sorted_pairs(o.ids.iter().cloned().zip(s.iter().copied()).collect())
        }
        v => panic!("{}: not samples: {v:?}", o.signal),
    }
}

/// A counted observation's ids, sorted; the count must equal their number.
fn counted_ids(o: &Observation) -> Vec<String> {
    let n = match &o.value {
        Value::Number(n) => *n,
        v => panic!("{}: not a number: {v:?}", o.signal),
    };
    assert_eq!(
        n as usize,
        o.ids.len(),
        "{}: one id per counted event",
        o.signal
    );
    let mut ids = o.ids.clone();
    ids.sort();
    ids
}

fn check_actions(obs: &[Observation], h: &History) {
    check_actions_with(obs, h, &[])
}

fn check_actions_with(obs: &[Observation], h: &History, unreadable: &[u64]) {
    let e = expect_actions(h, unreadable);
    for (w, c) in &e.conclusions {
        match &find(obs, "workflow.conclusion", &[("workflow", w)]).value {
            Value::Text(t) => assert_eq!(t, c, "latest conclusion of {w}"),
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(
        number(obs, "workflows.failing_other", &[]),
        e.failing_other as f64
    );
    assert!((number(obs, "workflow.success_ratio", &[]) - e.success_ratio).abs() < 1e-12);
    assert_eq!(number(obs, "runs.completed", &[]), e.completed as f64);
    assert_eq!(counted_ids(find(obs, "runs.flaky", &[])), e.flaky);
    assert_eq!(id_samples(find(obs, "workflow.duration", &[])), e.durations);
    assert_eq!(id_samples(find(obs, "jobs.queue_time", &[])), e.queue);
    for (runner, expected) in &e.queue_by_runner {
        assert_eq!(
            &samples_tagged(obs, "jobs.queue_time_by_runner", &[("runner", runner)]),
            expected,
            "queue time on {runner}"
        );
    }
    assert_eq!(counted_ids(find(obs, "jobs.timed_out", &[])), e.timed_out);
    assert_eq!(number(obs, "jobs.cancelled", &[]), e.cancelled as f64);
    assert!(
        !e.flaky.is_empty() && !e.timed_out.is_empty() && e.cancelled > 0,
        "history too small to test"
    );
    assert!(
        e.queue_by_runner.len() > 1,
        "history has one runner label only"
    );
    let o = find(obs, "runs.flaky", &[]);
    assert_eq!(o.tags["repo"], h.repo);
    assert_eq!(o.tags["branch"], "main");
}

fn samples_tagged(obs: &[Observation], signal: &str, tags: &[(&str, &str)]) -> Vec<f64> {
    match &find(obs, signal, tags).value {
        Value::Samples(s) => sorted(s.clone()),
        v => panic!("{signal}: not samples: {v:?}"),
    }
}

/// Changes on `main` in the window, as the generator made them: (change id, its commits, its PR).
fn changes_in_window(
    h: &History,
) -> Vec<(
    String,
    Vec<&crate::support::github_history::CommitData>,
    Option<&crate::support::github_history::PullData>,
)> {
    let start = h.now - TimeDelta::days(7);
    let since = start - TimeDelta::seconds(start.timestamp().rem_euclid(86_400));
    let mut out = Vec::new();
    for landed in h
        .commits
        .iter()
        .filter(|c| c.mainline && c.date >= start && c.date <= h.now)
    {
        // What the listing shows of the change (it starts at the day-aligned `since`).
        let members: Vec<_> = h
            .commits
            .iter()
            .filter(|c| c.change == landed.change && c.date >= since)
            .collect();
        let pr = h
            .pulls
            .iter()
            .find(|p| p.merge_commit_sha.as_deref() == Some(landed.sha.as_str()));
        out.push((landed.change.clone(), members, pr));
    }
    out
}

struct CommitsExpected {
    reverts: Vec<String>,
    hotfixes: Vec<String>,
    force_merges: Vec<String>,
    unapproved: Vec<String>,
    failing: Vec<String>,
    force_pushes: Vec<String>,
    /// Reverts as the old per-commit count saw them (to show the history exercises the dedupe).
    naive_reverts: usize,
}

fn expect_commits(h: &History) -> CommitsExpected {
    use crate::support::github_history::PullData;
    let start = h.now - TimeDelta::days(7);
    let changes = changes_in_window(h);
    // Definition 5: a commit reverting only commits of its own PR is not a revert on the branch.
    let reverted = |m: &str| -> Vec<String> {
        m.lines()
            .filter_map(|l| l.strip_prefix("This reverts commit "))
            .map(|r| r.trim_end_matches('.').to_string())
            .collect()
    };
    let revert_msg = |m: &str, pr: Option<&PullData>| {
        let refs = reverted(m);
        let own =
            !refs.is_empty() && pr.is_some_and(|p| refs.iter().all(|r| p.commits.contains(r)));
        (m.starts_with("Revert \"") || !refs.is_empty()) && !own
    };
    let pick =
        |f: &dyn Fn(&[&crate::support::github_history::CommitData], Option<&PullData>) -> bool| {
            let mut v: Vec<String> = changes
                .iter()
                .filter(|(_, cs, pr)| f(cs, *pr))
                .map(|(id, _, _)| id.clone())
                .collect();
            v.sort();
            v
        };
    let reverts = pick(&|cs, p| {
        cs.iter().any(|c| revert_msg(&c.message, p))
            || p.is_some_and(|p| {
                p.labels.iter().any(|l| l == "revert")
                    || p.head.starts_with("revert-")
                    || p.title.starts_with("Revert \"")
            })
    });
    let hotfixes = pick(&|cs, p| {
        cs.iter()
            .any(|c| c.message.to_lowercase().starts_with("hotfix"))
            || p.is_some_and(|p| {
                p.labels.iter().any(|l| l == "hotfix")
                    || p.head.starts_with("hotfix/")
                    || p.head.starts_with("hotfix-")
            })
    });
    let convention = pick(&|cs, p| {
        cs.iter()
            .any(|c| c.message.to_lowercase().contains("[force merge]"))
            || p.is_some_and(|p| p.labels.iter().any(|l| l == "force-merge"))
    });
    let unapproved = pick(&|_, p| p.is_some_and(|p| !p.approved));
    let failing = pick(&|_, p| p.is_some_and(|p| p.checks_failed));
    let mut force_pushes: Vec<String> = h
        .force_pushes
        .iter()
        .filter(|f| f.timestamp >= start && f.timestamp <= h.now)
        .map(|f| f.after.clone())
        .collect();
    force_pushes.sort();
    let mut force_merges: Vec<String> = convention
        .iter()
        .chain(&unapproved)
        .chain(&failing)
        .chain(&force_pushes)
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    force_merges.sort();
    let naive_reverts = h
        .commits
        .iter()
        .filter(|c| c.date >= start && c.date <= h.now)
        .filter(|c| {
            let pr = h
                .pulls
                .iter()
                .find(|p| p.merge_commit_sha.as_deref() == Some(c.sha.as_str()));
            c.message.starts_with("Revert \"")
                || c.message
                    .lines()
                    .any(|l| l.starts_with("This reverts commit "))
                || pr.is_some_and(|p| {
                    p.labels.iter().any(|l| l == "revert") || p.head.starts_with("revert-")
                })
        })
        .count();
    CommitsExpected {
        reverts,
        hotfixes,
        force_merges,
        unapproved,
        failing,
        force_pushes,
        naive_reverts,
    }
}

fn check_commits(obs: &[Observation], h: &History) {
    let start = h.now - TimeDelta::days(7);
    let window = h
        .commits
        .iter()
        .filter(|c| c.date >= start && c.date <= h.now)
        .count();
    let e = expect_commits(h);
    assert_eq!(number(obs, "commits.count", &[]), window as f64);
    assert_eq!(counted_ids(find(obs, "commits.reverts", &[])), e.reverts);
    assert_eq!(counted_ids(find(obs, "commits.hotfixes", &[])), e.hotfixes);
    assert_eq!(
        counted_ids(find(obs, "commits.force_merges", &[])),
        e.force_merges
    );
    assert_eq!(
        counted_ids(find(obs, "commits.unapproved_merges", &[])),
        e.unapproved
    );
    assert_eq!(
        counted_ids(find(obs, "commits.failing_check_merges", &[])),
        e.failing
    );
    assert_eq!(
        counted_ids(find(obs, "commits.force_pushes", &[])),
        e.force_pushes
    );
    assert!(
        e.reverts.len() > 1
            && e.hotfixes.len() > 1
            && !e.unapproved.is_empty()
            && !e.failing.is_empty()
            && !e.force_pushes.is_empty(),
        "history too small"
    );
    assert!(
        e.naive_reverts > e.reverts.len(),
        "the history must hold merged reverts or self-reverts that a per-commit count gets wrong"
    );
}

fn check_pulls(obs: &[Observation], h: &History) {
    let start = h.now - TimeDelta::days(7);
    let stale_before = h.now - TimeDelta::days(14);
    let merged: Vec<f64> = h
        .pulls
        .iter()
        .filter(|p| p.base == "main")
        .filter_map(|p| {
            p.merged_at
                .filter(|m| *m >= start)
                .map(|m| (m - p.created_at).num_seconds() as f64)
        })
        .collect();
    let stale = h
        .pulls
        .iter()
        .filter(|p| p.state == "open" && p.base == "main" && p.updated_at < stale_before)
        .count();
    assert_eq!(number(obs, "pulls.merged", &[]), merged.len() as f64);
    assert_eq!(samples(obs, "pulls.time_to_merge"), sorted(merged));
    let ttm = find(obs, "pulls.time_to_merge", &[]);
    let mut ids = ttm.ids.clone();
    ids.sort();
    let mut expected_ids: Vec<String> = h
        .pulls
        .iter()
        .filter(|p| p.base == "main" && p.merged_at.is_some_and(|m| m >= start))
        .map(|p| p.number.to_string())
        .collect();
    expected_ids.sort();
    assert_eq!(ids, expected_ids);
    let _ = id_samples(ttm); // one id per sample, in order
    assert_eq!(number(obs, "pulls.stale_open", &[]), stale as f64);
    assert!(stale > 0);
}

fn expected_open(h: &History, label: &str) -> f64 {
    h.issues
        .iter()
        .filter(|i| i.state == "open" && !i.is_pull && i.labels.iter().any(|l| l == label))
        .count() as f64
}

fn check_issues(obs: &[Observation], h: &History) {
    let start = h.now - TimeDelta::days(7);
    let in_window = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t >= start && t <= h.now);
    for label in ["training", "infra", "bug"] {
        assert_eq!(
            number(obs, "issues.open", &[("label", label), ("repo", &h.repo)]),
            expected_open(h, label),
            "label {label}"
        );
        let issues: Vec<_> = h
            .issues
            .iter()
            .filter(|i| !i.is_pull && i.labels.iter().any(|l| l == label))
            .collect();
        let ids = |f: &dyn Fn(&&crate::support::github_history::IssueData) -> bool| {
            let mut v: Vec<String> = issues
                .iter()
                .filter(|i| f(i))
                .map(|i| i.number.to_string())
                .collect();
            v.sort();
            v
        };
        let opened = ids(&|i| in_window(Some(i.created_at)));
        let closed = ids(&|i| in_window(i.closed_at));
        assert!(
            !opened.is_empty() && !closed.is_empty(),
            "history too small"
        );
        assert_eq!(
            counted_ids(find(obs, "issues.opened", &[("label", label)])),
            opened,
            "opened, label {label}"
        );
        assert_eq!(
            counted_ids(find(obs, "issues.closed", &[("label", label)])),
            closed,
            "closed, label {label}"
        );
    }
}

fn gets(fake: &FakeGithub) -> Vec<crate::support::fake_github::Logged> {
    fake.log()
        .into_iter()
        .filter(|l| l.method == "GET")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_match_the_history_and_a_second_run_costs_no_primary_rate_limit() {
    let h = History::generate(
        SEED,
        Sizes {
            runs: 5000,
            pulls: 400,
            issues: 600,
        },
        fixed_now(),
    );
    let in_window_main = h
        .runs
        .iter()
        .filter(|r| r.branch == "main" && r.created_at >= h.now - TimeDelta::days(7))
        .count();
    assert!(
        in_window_main > 1000,
        "the 1,000-result cap must matter: {in_window_main}"
    );
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let plan = plan(&collectors_toml(&fake.url, &format!("[\"{REPO}\"]"), ""));

    let first = collect_all(&plan, &state, h.now).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    check_actions(&first.obs["actions"], &h);
    check_commits(&first.obs["commits"], &h);
    check_pulls(&first.obs["pulls"], &h);
    check_issues(&first.obs["issues"], &h);
    // Runs were listed a day at a time (each slice under the 1,000 cap), covering all 7 days.
    let log = gets(&fake);
    let listings: Vec<_> = log
        .iter()
        .filter(|l| l.target.contains("/actions/runs?"))
        .collect();
    assert!(
        listings
            .iter()
            .all(|l| l.target.contains("branch=main") && l.target.contains("created=")),
        "{listings:?}"
    );
    assert!(listings.len() >= 8, "{listings:?}");
    assert!(
        log.iter().all(|l| l.status == 200),
        "first run: {:?}",
        log.iter().find(|l| l.status != 200)
    );
    let first_requests: f64 = first.metrics.values().map(|m| m["github.requests"]).sum();
    assert_eq!(first_requests as usize, log.len());

    // Second run, nothing changed: every request is a conditional one answered 304.
    fake.clear_log();
    let second = collect_all(&plan, &state, h.now + TimeDelta::minutes(10)).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let log = gets(&fake);
    let not_304: Vec<_> = log.iter().filter(|l| l.status != 304).collect();
    assert!(
        not_304.is_empty(),
        "steady state spent primary rate limit on {not_304:?}"
    );
    assert!(log.iter().all(|l| l.conditional));
    for (name, m) in &second.metrics {
        assert_eq!(m["github.primary_cost"], 0.0, "{name}");
        assert_eq!(m["github.requests"], m["github.not_modified"], "{name}");
        assert!(m.contains_key("github.rate_limit.remaining"), "{name}");
    }
    let second_requests: f64 = second.metrics.values().map(|m| m["github.requests"]).sum();
    assert_eq!(second_requests as usize, log.len());
    eprintln!(
        "first run {} requests, steady state {} requests (all 304)",
        first_requests, second_requests
    );
    // The same values come back from the cache (the window moved 10 minutes, so compare the
    // signals that cannot have changed with it).
    let mut later = h.clone();
    later.now = h.now + TimeDelta::minutes(10);
    check_issues(&second.obs["issues"], &later);
    assert_eq!(
        find(
            &second.obs["actions"],
            "workflow.conclusion",
            &[("workflow", "tests")]
        )
        .value,
        find(
            &first.obs["actions"],
            "workflow.conclusion",
            &[("workflow", "tests")]
        )
        .value
    );
    let change = number(
        &second.obs["issues"],
        "issues.open_change",
        &[("label", "training")],
    );
    assert_eq!(change, 0.0);

    // A run in progress completes: it is re-fetched by id and its jobs are read once.
    let finished = fake.with_history(REPO, |h| {
        let r = h
            .runs
            .iter_mut()
            .find(|r| r.status != "completed" && r.branch == "main")
            .expect("an in-progress run on main");
        r.status = "completed".into();
        r.conclusion = Some("success".into());
        r.updated_at += TimeDelta::seconds(100);
        r.id
    });
    fake.clear_log();
    let third = collect_all(&plan, &state, h.now + TimeDelta::minutes(20)).await;
    assert!(third.errors.is_empty());
    let fresh: Vec<String> = gets(&fake)
        .into_iter()
        .filter(|l| l.status == 200)
        .map(|l| l.target)
        .collect();
    // Seen again on its day's listing (the page's ETag changed); the other days answered 304.
    assert!(
        fresh.iter().any(|t| t.contains("/actions/runs?")),
        "{fresh:?}"
    );
    assert!(
        fresh
            .iter()
            .any(|t| t.starts_with(&format!("/repos/{REPO}/actions/runs/{finished}/jobs")))
    );
    // Everything still matches the (changed) history at the later time.
    let mut updated = fake.with_history(REPO, |h| h.clone());
    updated.now = h.now + TimeDelta::minutes(20);
    check_actions(&third.obs["actions"], &updated);
}

#[tokio::test]
async fn secondary_limits_and_server_errors_are_waited_out_and_retried() {
    let h = History::generate(
        SEED + 1,
        Sizes {
            runs: 50,
            pulls: 20,
            issues: 300,
        },
        fixed_now(),
    );
    let fake = FakeGithub::start(vec![h.clone()]).await;
    fake.set_faults(Faults {
        secondary_with_retry_after: 1,
        secondary_without_retry_after: 1,
        server_errors: 2,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let text = format!(
        r#"
[[collector]]
name = "issues"
type = "github_issues"
repo = "{REPO}"
labels = ["training"]
api_url = "{}"
min_secondary_wait = "50ms"
retry_base = "10ms"
"#,
        fake.url
    );
    let plan = plan(&text);
    let started = std::time::Instant::now();
    let c = collect_all(&plan, &state, h.now).await;
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "retry-after: 1 was not honoured"
    );
    check_issues_label(&c.obs["issues"], &h, "training");
    let statuses: Vec<u16> = gets(&fake).iter().map(|l| l.status).collect();
    assert_eq!(&statuses[..4], &[403, 403, 502, 502]);
    assert!(statuses[4..].iter().all(|s| *s == 200));
    assert_eq!(c.metrics["issues"]["github.retries"], 4.0);
}

fn check_issues_label(obs: &[Observation], h: &History, label: &str) {
    assert_eq!(
        number(obs, "issues.open", &[("label", label)]),
        expected_open(h, label)
    );
}

#[tokio::test]
async fn an_unreachable_repository_only_turns_its_own_rows_unknown() {
    let good = History::generate(
        SEED + 2,
        Sizes {
            runs: 40,
            pulls: 20,
            issues: 100,
        },
        fixed_now(),
    );
    let mut broken = History::generate(
        SEED + 3,
        Sizes {
            runs: 40,
            pulls: 20,
            issues: 100,
        },
        fixed_now(),
    );
    broken.repo = "acme/broken".into();
    let fake = FakeGithub::start(vec![good.clone(), broken]).await;
    fake.set_faults(Faults {
        broken_repos: vec!["acme/broken".into()],
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[[collector]]
name = "issues"
type = "github_issues"
repos = ["{REPO}", "acme/broken"]
labels = ["training"]
api_url = "{url}"
retry_base = "10ms"
max_retries = 2

[[collector]]
name = "broken_only"
type = "github_pulls"
repo = "acme/broken"
api_url = "{url}"
retry_base = "10ms"
max_retries = 2

[[check]]
workflow_category = "code"
workflow_name = "bug_queue"
task = "good"
check = "open_count"
collector = "issues"
signal = "issues.open"
match = {{ label = "training", repo = "{REPO}" }}
condition = "<100000"
metric = "github.bugs.count"

[[check]]
workflow_category = "code"
workflow_name = "bug_queue"
task = "broken"
check = "open_count"
collector = "issues"
signal = "issues.open"
match = {{ label = "training", repo = "acme/broken" }}
condition = "<100000"
metric = "github.bugs.count"

[[check]]
workflow_category = "code"
workflow_name = "pull_requests"
task = "broken"
check = "merged"
collector = "broken_only"
signal = "pulls.merged"
condition = ">=0"
metric = "github.pulls.merged"
"#,
        url = fake.url
    );
    let plan = plan(&text);
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let started = std::time::Instant::now();
    let outcomes = collect_once(&plan, &state, good.now).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let results = infra_health::run::evaluate(&plan.checks, &outcomes);
    let status = |task: &str| {
        results
            .iter()
            .find(|(i, _)| {
                plan.checks[*i].row.task == task && plan.checks[*i].collector == "issues"
            })
            .map(|(_, r)| r.status)
            .unwrap()
    };
    use infra_health::checks::Status;
    assert_eq!(status("good"), Status::Pass);
    assert_eq!(status("broken"), Status::Unknown);
    let broken_only = outcomes.iter().find(|o| o.name == "broken_only").unwrap();
    let err = broken_only.result.as_ref().unwrap_err();
    assert!(err.contains("acme/broken") && err.contains("503"), "{err}");
    let issues = outcomes.iter().find(|o| o.name == "issues").unwrap();
    assert!(issues.result.is_ok());
    let metrics = plan.collectors[0].collector.self_metrics();
    let failed = metrics
        .iter()
        .find(|m| m.path == "github.repos_failed")
        .unwrap();
    assert_eq!(failed.value, 1.0);
}

#[tokio::test]
async fn github_app_auth_mints_and_uses_an_installation_token() {
    let h = History::generate(
        SEED,
        Sizes {
            runs: 10,
            pulls: 5,
            issues: 50,
        },
        fixed_now(),
    );
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("app.pem");
    crate::support::write_github_app_key(&pem_path);
    let text = format!(
        r#"
[[collector]]
name = "issues"
type = "github_issues"
repo = "{REPO}"
labels = ["training", "bug"]
api_url = "{}"
app_id = 12345
installation_id = 777
private_key_path = "{}"
"#,
        fake.url,
        pem_path.display()
    );
    let plan = plan(&text);
    let state = Arc::new(StateStore::open(dir.path().join("state").to_str().unwrap()).unwrap());
    let c = collect_all(&plan, &state, h.now).await;
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    check_issues_label(&c.obs["issues"], &h, "bug");
    let log = fake.log();
    let posts: Vec<_> = log.iter().filter(|l| l.method == "POST").collect();
    assert_eq!(posts.len(), 1, "one installation token for the whole run");
    assert_eq!(posts[0].target, "/app/installations/777/access_tokens");
    assert!(
        posts[0]
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Bearer ey")
    );
    assert!(
        log.iter()
            .filter(|l| l.method == "GET")
            .all(|l| l.authorization.as_deref() == Some("Bearer ghs_installation_token_for_tests"))
    );
}

/// The whole pipeline through the binary: a token from `GITHUB_TOKEN_FILE` is sent, never
/// printed or stored, and the API-cost self-metrics reach the delivered metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_sends_a_file_token_and_reports_api_cost_self_metrics() {
    let h = History::generate(
        SEED,
        Sizes {
            runs: 10,
            pulls: 5,
            issues: 50,
        },
        fixed_now(),
    );
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "ghp_secret_value_123\n").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[collector]]
name = "bugs"
type = "github_issues"
repo = "{REPO}"
labels = ["bug"]
api_url = "{}"

[[check]]
workflow_category = "code"
workflow_name = "bug_queue"
task = "bugs"
check = "open_count"
collector = "bugs"
signal = "issues.open"
match = {{ label = "bug" }}
condition = "<100000"
metric = "github.bugs.count"
"#,
            fake.url
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let (config2, state2) = (config.clone(), state_dir.clone());
    let out = tokio::task::spawn_blocking(move || {
        crate::support::bin()
            .env("GITHUB_TOKEN_FILE", &token_file)
            .args(["run", "--dry-run", "--config"])
            .arg(&config2)
            .arg("--state")
            .arg(&state2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        fake.log()
            .iter()
            .all(|l| l.authorization.as_deref() == Some("Bearer ghp_secret_value_123"))
    );
    for name in [
        "metta.infra.github.requests",
        "metta.infra.github.not_modified",
        "metta.infra.github.rate_limit.remaining",
    ] {
        assert!(stdout.contains(name), "{name} missing from\n{stdout}");
    }
    assert!(stdout.contains("collector:bugs"));
    assert!(!stdout.contains("ghp_secret") && !stderr.contains("ghp_secret"));
    for entry in walk(&state_dir) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !text.contains("ghp_secret_value_123"),
            "{} holds the token",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The example under `examples/github/` is a recording of the fake; replaying a recording gives
/// exactly what the live fake gave. `INFRA_HEALTH_WRITE_GITHUB_EXAMPLE=1` rewrites the example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_to_the_same_observations() {
    let h = History::generate(
        2026,
        Sizes {
            runs: 240,
            pulls: 60,
            issues: 80,
        },
        fixed_now(),
    );
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("recording");
    let live_plan = plan(&with_deployments(
        &fake.url,
        &format!("[\"{REPO}\"]"),
        &format!("record_to = \"{}\"", rec.display()),
    ));
    let state = Arc::new(StateStore::open(dir.path().join("s1").to_str().unwrap()).unwrap());
    let live = collect_all(&live_plan, &state, h.now).await;
    assert!(live.errors.is_empty(), "{:?}", live.errors);

    let replay_plan = plan(&with_deployments(
        &format!("file://{}", rec.display()),
        &format!("[\"{REPO}\"]"),
        "",
    ));
    let state2 = Arc::new(StateStore::open(dir.path().join("s2").to_str().unwrap()).unwrap());
    // A much later wall clock: replay computes windows from the recording time.
    let later = Utc::now();
    let replayed = collect_all(&replay_plan, &state2, later).await;
    assert!(replayed.errors.is_empty(), "{:?}", replayed.errors);
    for (name, obs) in &live.obs {
        let strip = |v: &[Observation]| -> Vec<(String, Value, BTreeMap<String, String>)> {
            v.iter()
                .map(|o| (o.signal.clone(), o.value.clone(), o.tags.clone()))
                .collect()
        };
        assert_eq!(strip(obs), strip(&replayed.obs[name]), "{name}");
        assert!(replayed.obs[name].iter().all(|o| o.timestamp == later));
    }
    if std::env::var("INFRA_HEALTH_WRITE_GITHUB_EXAMPLE").is_ok_and(|v| v == "1") {
        let target = crate::support::repo_root().join("examples/github");
        std::fs::create_dir_all(&target).unwrap();
        for f in std::fs::read_dir(&rec).unwrap().flatten() {
            std::fs::copy(f.path(), target.join(f.file_name())).unwrap();
        }
    }
}

/// The README's offline command shows GitHub rows from the bundled example, labelled as such.
#[test]
fn the_default_config_replays_the_bundled_github_example_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::bin()
        .current_dir(crate::support::repo_root())
        .args(["run", "--config", "config/infra-health.toml", "--state"])
        .arg(dir.path())
        .args([
            "--only",
            "github_example_actions",
            "--only",
            "github_example_commits",
            "--only",
            "github_example_pulls",
            "--only",
            "github_example_issues",
            "--only",
            "github_example_deployments",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("EXAMPLE GitHub data"), "{stderr}");
    for title in [
        "Tests blocking merge passing",
        "Benchmarks passing",
        "Other workflows failing",
        "Flaky reruns, 7 days",
        "p90 workflow duration",
        "Jobs timed out, 7 days",
        "Job queue time p90",
        "Hotfixes, 7 days",
        "Force merges, 7 days",
        "Reverts, 7 days",
        "Time to merge p90",
        "Open bugs: training",
        "Deployments to production, 30 days",
        "Lead time for changes p50",
        "Change failure rate",
        "Failed deployments, 30 days",
        "Failed deployment recovery time p50",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(title))
            .unwrap_or_else(|| panic!("no row {title:?} in\n{stdout}"));
        assert!(!line.to_lowercase().contains("unknown"), "{line}");
    }
}

/// An exhausted primary limit whose reset is far away stops the collector with a clear error
/// after one request, instead of retrying into a ban.
#[tokio::test]
async fn an_exhausted_primary_rate_limit_stops_and_reports() {
    let h = History::generate(
        SEED,
        Sizes {
            runs: 10,
            pulls: 5,
            issues: 20,
        },
        fixed_now(),
    );
    let fake = FakeGithub::start(vec![h.clone()]).await;
    fake.set_faults(Faults {
        primary_exhausted: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let text = format!(
        "[[collector]]\nname = \"issues\"\ntype = \"github_issues\"\nrepo = \"{REPO}\"\nlabels = [\"bug\"]\napi_url = \"{}\"\nmax_rate_limit_wait = \"5m\"\n",
        fake.url
    );
    let c = collect_all(&plan(&text), &state, h.now).await;
    let err = &c.errors["issues"];
    assert!(
        err.contains("rate limit") && err.contains("stopping"),
        "{err}"
    );
    assert_eq!(fake.log().len(), 1);
}

/// docs/collectors.md lists every signal each GitHub collector produces.
#[test]
fn the_collector_docs_list_every_github_signal() {
    let doc =
        std::fs::read_to_string(crate::support::repo_root().join("docs/collectors.md")).unwrap();
    for kind in infra_health::collectors::REGISTRY
        .iter()
        .filter(|k| k.name.starts_with("github_"))
    {
        let section = doc
            .split("\n### ")
            .find(|s| s.starts_with(&format!("`{}`", kind.name)))
            .unwrap_or_else(|| panic!("no section for {}", kind.name));
        for signal in kind.signals {
            assert!(
                section.contains(&format!("| `{signal}` |")),
                "docs/collectors.md: {} does not document {signal}",
                kind.name
            );
        }
    }
}

// ---- one test per definition (issue 13) ------------------------------------------------------

fn actions_only(url: &str, extra: &str) -> Plan {
    plan(&format!(
        r#"
[[collector]]
name = "actions"
type = "github_actions"
repo = "{REPO}"
api_url = "{url}"
retry_base = "10ms"
max_retries = 2
max_concurrency = 16
{extra}
"#
    ))
}

fn medium_history() -> History {
    History::generate(
        SEED + 5,
        Sizes {
            runs: 1500,
            pulls: 200,
            issues: 100,
        },
        fixed_now(),
    )
}

/// Definitions 1 and 2: a fork's failing pull-request run on its own `main`, and a newer run
/// cancelled by `cancel-in-progress`, leave the row on the latest verdict of the repository's own
/// runs, with a newer run in progress flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_runs_and_superseded_runs_do_not_replace_the_latest_verdict() {
    let h = medium_history();
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let plan = actions_only(&fake.url, "workflows = [\"tests\", \"benchmarks\"]");
    let c = collect_all(&plan, &state, h.now).await;
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let obs = &c.obs["actions"];
    // What a naive "newest completed run on a branch called main" would say.
    let start = h.now - TimeDelta::days(7);
    let naive = h
        .runs
        .iter()
        .filter(|r| r.workflow == 0 && r.branch == "main" && r.status == "completed")
        .filter(|r| r.created_at >= start)
        .max_by_key(|r| (r.created_at, r.id))
        .unwrap();
    assert_eq!(naive.head_repo, crate::support::github_history::FORK);
    assert_eq!(naive.conclusion.as_deref(), Some("failure"));
    let conclusion = find(obs, "workflow.conclusion", &[("workflow", "tests")]);
    assert_eq!(conclusion.value, Value::Text("success".into()));
    assert_eq!(
        conclusion.tags.get("newer_run").map(String::as_str),
        Some("in_progress")
    );
    // The verdict's age, from the history: the newest own success of "Tests".
    let verdict = h
        .runs
        .iter()
        .filter(|r| own_main(&h, r) && r.workflow == 0 && r.status == "completed")
        .filter(|r| VERDICTS.contains(&r.conclusion.as_deref().unwrap()))
        .max_by_key(|r| (r.created_at, r.id))
        .unwrap();
    assert_eq!(
        number(obs, "workflow.verdict_age", &[("workflow", "tests")]),
        (h.now - verdict.updated_at).num_seconds().max(0) as f64
    );
    // Fork runs feed no row: none of their ids is among the duration samples.
    let forks: Vec<String> = h
        .runs
        .iter()
        .filter(|r| r.head_repo != h.repo)
        .map(|r| format!("{}.{}", r.id, r.run_attempt))
        .collect();
    assert!(!forks.is_empty());
    let durations = find(obs, "workflow.duration", &[]);
    assert!(durations.ids.iter().all(|id| !forks.contains(id)));
    check_actions(obs, &h);
}

/// Definition 3: a run re-run days later (same id, same `created_at`) is counted as flaky as soon
/// as the re-run finishes; an unchanged repository costs no primary rate limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_rerun_of_an_old_run_is_counted_as_soon_as_it_finishes() {
    let h = medium_history();
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let plan = actions_only(&fake.url, "workflows = [\"tests\", \"benchmarks\"]");
    let first = collect_all(&plan, &state, h.now).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    check_actions(&first.obs["actions"], &h);

    // Steady state: every request conditional and answered 304.
    fake.clear_log();
    let later = h.now + TimeDelta::minutes(10);
    let steady = collect_all(&plan, &state, later).await;
    assert!(steady.errors.is_empty(), "{:?}", steady.errors);
    assert_eq!(steady.metrics["actions"]["github.primary_cost"], 0.0);
    assert!(gets(&fake).iter().all(|l| l.status == 304 && l.conditional));

    // A run from five days ago that failed is re-run now and passes.
    let rerun = fake.with_history(REPO, |h| {
        let r = h
            .runs
            .iter_mut()
            .find(|r| {
                r.branch == "main"
                    && r.head_repo == REPO
                    && r.event == "push"
                    && r.run_attempt == 1
                    && r.conclusion.as_deref() == Some("failure")
                    && r.created_at < h.now - TimeDelta::days(5)
            })
            .expect("an old failed run");
        r.run_attempt = 2;
        r.first_attempt_conclusion = Some("failure".into());
        r.conclusion = Some("success".into());
        r.run_started_at = h.now + TimeDelta::minutes(12);
        r.updated_at = h.now + TimeDelta::minutes(18);
        let id = r.id;
        let created = r.created_at;
        let jobs = h.jobs.get_mut(&id).unwrap();
        let retry: Vec<_> = jobs
            .iter()
            .map(|j| crate::support::github_history::JobData {
                id: j.id + 9_000_000,
                run_attempt: 2,
                conclusion: Some("success".into()),
                created_at: created + TimeDelta::days(5),
                started_at: Some(created + TimeDelta::days(5) + TimeDelta::seconds(7)),
                completed_at: Some(created + TimeDelta::days(5) + TimeDelta::seconds(90)),
                labels: j.labels.clone(),
            })
            .collect();
        jobs.extend(retry);
        id
    });
    let mut updated = fake.with_history(REPO, |h| h.clone());
    updated.now = h.now + TimeDelta::minutes(20);
    assert!(
        !expect_actions(&h, &[]).flaky.contains(&rerun.to_string())
            && expect_actions(&updated, &[])
                .flaky
                .contains(&rerun.to_string())
    );
    fake.clear_log();
    let after = collect_all(&plan, &state, updated.now).await;
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    let obs = &after.obs["actions"];
    assert!(counted_ids(find(obs, "runs.flaky", &[])).contains(&rerun.to_string()));
    assert!(
        find(obs, "workflow.duration", &[])
            .ids
            .contains(&format!("{rerun}.2"))
    );
    check_actions(obs, &updated);
    // Only the changed day's pages, the run's jobs and its first attempt cost anything.
    let fresh: Vec<String> = gets(&fake)
        .into_iter()
        .filter(|l| l.status == 200)
        .map(|l| l.target)
        .collect();
    assert!(
        fresh.contains(&format!("/repos/{REPO}/actions/runs/{rerun}/attempts/1")),
        "{fresh:?}"
    );
    let listing_pages = fresh
        .iter()
        .filter(|t| t.contains("/actions/runs?"))
        .count();
    assert!(
        (1..=4).contains(&listing_pages),
        "only the re-run's page (and the pages after it) change: {fresh:?}"
    );
    eprintln!(
        "late re-run: {} requests, primary cost {}",
        after.metrics["actions"]["github.requests"],
        after.metrics["actions"]["github.primary_cost"]
    );
}

/// Definition 4: a timeout annotation behind 130 lint annotations is found (every page is read);
/// an annotations request that keeps failing leaves that job counted as cancelled, and the
/// collector and its other rows carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_annotations_page_is_read_and_an_unreadable_one_only_affects_its_job() {
    let h = medium_history();
    let start = h.now - TimeDelta::days(7);
    let annotated: Vec<u64> = h
        .runs
        .iter()
        .filter(|r| own_main(&h, r) && r.created_at >= start && r.status == "completed")
        .flat_map(|r| &h.jobs[&r.id])
        .filter(|j| j.conclusion.as_deref() == Some("cancelled"))
        .filter(|j| {
            h.annotations
                .get(&j.id)
                .is_some_and(|a| a.iter().any(|m| m == TIMEOUT_ANNOTATION))
        })
        .map(|j| j.id)
        .collect();
    let deep: Vec<u64> = annotated
        .iter()
        .copied()
        .filter(|id| h.annotations[id].len() > 100)
        .collect();
    assert!(!deep.is_empty(), "no timeout behind a long annotation list");
    let broken = deep[0];
    let fake = FakeGithub::start(vec![h.clone()]).await;
    fake.set_faults(Faults {
        broken_paths: vec![format!("/check-runs/{broken}/annotations")],
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let plan = actions_only(&fake.url, "workflows = [\"tests\", \"benchmarks\"]");
    let c = collect_all(&plan, &state, h.now).await;
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let obs = &c.obs["actions"];
    let timed_out = counted_ids(find(obs, "jobs.timed_out", &[]));
    assert!(!timed_out.contains(&broken.to_string()));
    for id in deep.iter().skip(1) {
        assert!(timed_out.contains(&id.to_string()), "job {id} on page 2");
    }
    check_actions_with(obs, &h, &[broken]);
    let log = gets(&fake);
    assert!(
        log.iter()
            .filter(|l| l.target.contains("/annotations"))
            .all(|l| l.target.contains("per_page=100"))
    );
    assert!(
        log.iter()
            .any(|l| l.target.contains("/annotations") && l.target.contains("page=2"))
    );
}

/// Definition 8: a listed workflow is found case-insensitively; one that matches nothing turns
/// its row unknown with `reason:workflow_not_found`, and the reason names the repository's
/// workflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_matches_nothing_is_unknown_with_a_reason() {
    let h = History::generate(
        SEED,
        Sizes {
            runs: 200,
            pulls: 10,
            issues: 10,
        },
        fixed_now(),
    );
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let rows = |task: &str, workflow: &str| {
        format!(
            r#"
[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "{task}"
check = "workflow_success"
collector = "actions"
signal = "workflow.conclusion"
match = {{ workflow = "{workflow}" }}
condition = "==success"
metric = "ci.workflow.success"
"#
        )
    };
    let plan = actions_only(
        &fake.url,
        &format!(
            "workflows = [\"BENCHMARKS\", \"benchmark\"]\n{}{}",
            rows("found", "BENCHMARKS"),
            rows("missing", "benchmark")
        ),
    );
    let outcomes = collect_once(&plan, &state, h.now).await;
    let results = infra_health::run::evaluate(&plan.checks, &outcomes);
    let result = |task: &str| {
        results
            .iter()
            .find(|(i, _)| plan.checks[*i].row.task == task)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    use infra_health::checks::Status;
    assert_ne!(
        result("found").status,
        Status::Unknown,
        "{:?}",
        result("found")
    );
    let missing = result("missing");
    assert_eq!(missing.status, Status::Unknown);
    let reason = missing.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("workflow not found")
            && reason.contains("Benchmarks (bench.yml)")
            && reason.contains("Tests (tests.yml)"),
        "{reason}"
    );
    let metrics =
        infra_health::run::metrics(&plan, &plan.checks, &results, &outcomes, h.now.timestamp());
    assert!(
        metrics
            .iter()
            .any(|m| m.tags.iter().any(|t| t == "task:missing")
                && m.tags.iter().any(|t| t == "reason:workflow_not_found")),
        "{metrics:#?}"
    );
}

/// A day with more runs than GitHub lists for one filtered query is listed hour by hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_past_the_listing_cap_is_listed_hour_by_hour() {
    let mut h = History::generate(
        SEED + 6,
        Sizes {
            runs: 2600,
            pulls: 10,
            issues: 10,
        },
        fixed_now(),
    );
    // Squeeze every run into the last 11 hours, all on today (keeping their order).
    for r in &mut h.runs {
        let ago = (h.now - r.created_at).num_seconds() / 18;
        let shift = (h.now - TimeDelta::seconds(ago)) - r.created_at;
        r.created_at += shift;
        r.run_started_at += shift;
        r.updated_at += shift;
    }
    let day = h.now - TimeDelta::seconds(h.now.timestamp().rem_euclid(86_400));
    let busy = h
        .runs
        .iter()
        .filter(|r| r.branch == "main" && r.created_at >= day)
        .count();
    assert!(busy > 1000, "{busy}");
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
    let plan = actions_only(&fake.url, "workflows = [\"tests\"]\njobs = false");
    let c = collect_all(&plan, &state, h.now).await;
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let start = h.now - TimeDelta::days(7);
    let expected = h
        .runs
        .iter()
        .filter(|r| own_main(&h, r) && r.created_at >= start && r.status == "completed")
        .count();
    assert_eq!(
        number(&c.obs["actions"], "runs.completed", &[]),
        expected as f64
    );
    let hourly = gets(&fake)
        .iter()
        .filter(|l| l.target.contains("/actions/runs?") && l.target.contains("T01%3A00%3A00Z"))
        .count()
        + gets(&fake)
            .iter()
            .filter(|l| l.target.contains("/actions/runs?") && l.target.contains("T01:00:00Z"))
            .count();
    assert!(hourly > 0, "no hourly slice was listed");
    // The next run lists the busy day by the hour straight away, every page answered 304.
    fake.clear_log();
    let again = collect_all(&plan, &state, h.now + TimeDelta::minutes(1)).await;
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    assert_eq!(again.metrics["actions"]["github.primary_cost"], 0.0);
}

/// Definition 8, before deploying: `validate --online` names a listed workflow that matches
/// nothing, with the repository's workflows, and fails; a config whose workflows all exist passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_online_refuses_a_workflow_that_matches_nothing() {
    let h = History::generate(
        SEED,
        Sizes {
            runs: 20,
            pulls: 5,
            issues: 5,
        },
        fixed_now(),
    );
    let fake = FakeGithub::start(vec![h.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, workflows: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                r#"
[[collector]]
name = "actions"
type = "github_actions"
repo = "{REPO}"
api_url = "{}"
workflows = {workflows}

[[check]]
workflow_category = "ci"
workflow_name = "latest_state_of_main"
task = "tests"
check = "workflow_success"
collector = "actions"
signal = "workflow.conclusion"
match = {{ workflow = "tests" }}
condition = "==success"
metric = "ci.workflow.success"
"#,
                fake.url
            ),
        )
        .unwrap();
        path
    };
    let bad = write("bad.toml", r#"["tests", "benchmark"]"#);
    let good = write("good.toml", r#"["tests", "BENCHMARKS"]"#);
    let validate = |path: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            crate::support::bin()
                .args(["validate", "--online", "--config"])
                .arg(&path)
                .output()
                .unwrap()
        })
    };
    let out = validate(bad).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("\"benchmark\"")
            && stdout.contains("Benchmarks (bench.yml)")
            && !stdout.contains("\"tests\" matches"),
        "{stdout}"
    );
    let out = validate(good).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("online checks: ok"), "{stdout}");
    assert!(fake.log().iter().all(|l| {
        l.target
            .starts_with(&format!("/repos/{REPO}/actions/workflows"))
    }));
}
