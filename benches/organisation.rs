//! Benchmark: an organisation of 200 repositories (generated histories: 250 workflow runs, 30
//! pull requests and 20 issues each) served by the fake GitHub on loopback, collected by the
//! four `github_*` collectors with `repos = ["org:acme"]`.
//!
//! Prints, for a first run with no budget to speak of and for a steady-state run (nothing
//! changed): requests, primary-rate-limit cost, requests per repository, wall time, peak
//! requests in flight, the most requests in one minute; then how many runs a first run takes
//! when each run finds a fresh 5,000-request hour (GitHub's limit for a token) and keeps 20 %
//! of it; then peak RSS and state bytes per repository.
//!
//! Run: `cargo bench --bench organisation` (the fake's per-minute ceiling is lifted for the
//! first run, so its wall time is the client's; at GitHub's 900 a minute the same requests take
//! `requests / 900` minutes, printed too).

mod common;
#[path = "../tests/it/support/fake_github.rs"]
mod fake_github;
#[path = "../tests/it/support/github_history.rs"]
mod github_history;

use common::peak_rss_kb;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use infra_health::collectors::CollectContext;
use infra_health::state::StateStore;

const REPOS: usize = 200;

struct Round {
    requests: usize,
    primary: usize,
    wall: f64,
    peak_in_flight: i64,
    peak_minute: usize,
    backfilling: f64,
    /// The budget's own count of primary cost and its allowance.
    budget: Vec<(u64, Option<u64>)>,
}

async fn one_run(
    plan: &infra_health::config::Plan,
    state: &Arc<StateStore>,
    now: DateTime<Utc>,
    fake: &fake_github::FakeGithub,
) -> Round {
    fake.clear_log();
    let ctx = Arc::new(CollectContext::new(
        now,
        infra_health::net::http_client().unwrap(),
        state.clone(),
        false,
    ));
    let selected: Vec<_> = plan.collectors.iter().collect();
    let t = Instant::now();
    let outcomes = infra_health::run::collect(&selected, ctx.clone()).await;
    let wall = t.elapsed().as_secs_f64();
    for o in &outcomes {
        if let Err(e) = &o.result {
            panic!("collector {} failed: {e}", o.name);
        }
    }
    let log = fake.log();
    let backfilling = outcomes
        .iter()
        .flat_map(|o| &o.self_metrics)
        .filter(|m| m.path == "github.repos_backfilling")
        .map(|m| m.value)
        .fold(0.0, f64::max);
    Round {
        requests: log.len(),
        primary: log.iter().filter(|l| l.status != 304).count(),
        wall,
        peak_in_flight: ctx
            .github
            .stats()
            .iter()
            .map(|s| s.peak_in_flight as i64)
            .max()
            .unwrap_or(0),
        peak_minute: ctx
            .github
            .stats()
            .iter()
            .map(|s| s.peak_per_minute)
            .max()
            .unwrap_or(0),
        backfilling,
        budget: ctx
            .github
            .stats()
            .iter()
            .map(|s| (s.spent, s.allowance))
            .collect(),
    }
}

fn dir_bytes(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_bytes(&p);
            } else if let Ok(m) = e.metadata() {
                total += m.len();
            }
        }
    }
    total
}

/// Bytes under `root` by what holds them: `github/<collector>/…` by collector and file name
/// (`actions.json`, `discovery`), everything else by its first path segment.
fn bytes_by_kind(root: &Path, path: &Path, out: &mut std::collections::BTreeMap<String, u64>) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                bytes_by_kind(root, &p, out);
            } else if let Ok(m) = e.metadata() {
                let rel = p.strip_prefix(root).unwrap_or(&p);
                let parts: Vec<String> = rel
                    .iter()
                    .map(|c| c.to_string_lossy().to_string())
                    .collect();
                let kind = match parts.as_slice() {
                    [g, collector, sub, ..] if g == "github" && sub == "discovery" => {
                        format!("{collector}/discovery")
                    }
                    [g, collector, .., file] if g == "github" => format!("{collector}/{file}"),
                    [first, ..] => first.clone(),
                    [] => String::new(),
                };
                *out.entry(kind).or_default() += m.len();
            }
        }
    }
}

fn plan(url: &str, extra: &str) -> infra_health::config::Plan {
    let common = format!(
        "repos = [\"org:acme\"]\napi_url = \"{url}\"\nmax_concurrency = 16\nrepo_timeout = \"10m\"\n{extra}\n"
    );
    let text = format!(
        "[[collector]]\nname = \"actions\"\ntype = \"github_actions\"\nworkflows = [\"tests\", \"benchmarks\"]\ntimeout = \"30m\"\n{common}\n\
         [[collector]]\nname = \"commits\"\ntype = \"github_commits\"\ntimeout = \"30m\"\n{common}\n\
         [[collector]]\nname = \"pulls\"\ntype = \"github_pulls\"\ntimeout = \"30m\"\n{common}\n\
         [[collector]]\nname = \"issues\"\ntype = \"github_issues\"\nlabels = [\"training\", \"infra\", \"bug\"]\ntimeout = \"30m\"\n{common}\n"
    );
    infra_health::config::parse(Path::new("bench.toml"), &text).unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let now = DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let histories: Vec<_> = (0..REPOS)
            .map(|i| {
                let mut h = github_history::History::generate(
                    100 + i as u64,
                    github_history::Sizes {
                        runs: 250,
                        pulls: 30,
                        issues: 20,
                    },
                    now,
                );
                let name = format!("acme/service-{i:03}");
                for r in &mut h.runs {
                    if r.head_repo == h.repo {
                        r.head_repo = name.clone();
                    }
                }
                h.repo = name;
                h
            })
            .collect();
        let fake = fake_github::FakeGithub::start(histories).await;

        // 1. A first run and a steady-state run, with no budget to speak of.
        let unbounded = plan(&fake.url, "max_requests_per_minute = 1000000");
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
        fake.set_remaining(10_000_000);
        let first = one_run(&unbounded, &state, now, &fake).await;
        let steady = one_run(&unbounded, &state, now, &fake).await;
        println!("organisation of {REPOS} repositories (250 runs, 30 PRs, 20 issues each), 4 github_* collectors");
        for (name, r) in [("first run", &first), ("steady state", &steady)] {
            println!(
                "  {name:<13} requests {:>6} ({:.1}/repo)  primary cost {:>6}  wall {:>6.2} s  peak in flight {:>3}  most in a minute {:>6}",
                r.requests,
                r.requests as f64 / REPOS as f64,
                r.primary,
                r.wall,
                r.peak_in_flight,
                r.peak_minute
            );
        }
        println!(
            "  first run at GitHub's 900 requests a minute: {:.0} minutes",
            first.requests as f64 / 900.0
        );
        println!(
            "  state bytes per repository: {:.0}",
            dir_bytes(dir.path()) as f64 / REPOS as f64
        );
        let mut kinds = std::collections::BTreeMap::new();
        bytes_by_kind(dir.path(), dir.path(), &mut kinds);
        let parts: Vec<String> = kinds
            .iter()
            .map(|(k, b)| format!("{k} {:.0}", *b as f64 / REPOS as f64))
            .collect();
        println!("    per repository by object: {}", parts.join(", "));

        // 2. The same first run on a 5,000-an-hour token, one run an hour (a fresh hour each
        // run), 20 % of what is left kept in reserve (the per-minute ceiling lifted again: at
        // 900 a minute a run of 5,000 requests takes about 6 minutes).
        let budgeted = plan(&fake.url, "max_requests_per_minute = 1000000");
        let dir2 = tempfile::tempdir().unwrap();
        let state2 = Arc::new(StateStore::open(dir2.path().to_str().unwrap()).unwrap());
        let mut runs = 0;
        let mut spent = Vec::new();
        loop {
            runs += 1;
            fake.set_remaining(5000);
            let r = one_run(&budgeted, &state2, now, &fake).await;
            spent.push((r.primary, r.requests));
            eprintln!("    run {runs}: budget (spent, allowance) {:?}", r.budget);
            if r.backfilling == 0.0 || runs >= 40 {
                println!(
                    "  backfill on a 5,000/h token: {runs} hourly runs; (primary cost, requests) per run {:?}; peak in flight {}; most in a minute {}",
                    spent, r.peak_in_flight, r.peak_minute
                );
                break;
            }
        }
        println!("  peak RSS {} KiB", peak_rss_kb());
    });
}
