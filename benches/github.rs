//! Benchmark: the five `github_*` collectors against the fake GitHub with 5,000 workflow runs,
//! 1,000 pull requests and 2,000 issues (and the deployments of its commits). For a first run (empty state) and a steady-state run
//! (nothing changed): requests made, primary-rate-limit cost, wall time, and our own CPU time
//! (process CPU minus the time the in-process fake spent building responses). Prints medians
//! over several rounds and the peak RSS (VmHWM).
//!
//! Run: `cargo bench --bench github` (targets: steady state 0 primary points and < 0.2 s; first
//! run < 1 s of our own time).

mod common;
#[path = "../tests/it/support/fake_github.rs"]
mod fake_github;
#[path = "../tests/it/support/github_history.rs"]
mod github_history;

use common::{cpu_seconds, median, peak_rss_kb};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};
use infra_health::state::StateStore;

const ROUNDS: usize = 5;

#[derive(Default)]
struct Round {
    /// Requests per collector, in plan order.
    per_collector: Vec<(String, f64)>,
    requests: f64,
    primary: f64,
    not_modified: f64,
    wall: f64,
    own_cpu: f64,
}

async fn one_run(
    plan: &infra_health::config::Plan,
    state: &Arc<StateStore>,
    now: DateTime<Utc>,
    fake: &fake_github::FakeGithub,
) -> Round {
    let busy0 = fake.state.busy_nanos.load(Ordering::Relaxed);
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let outcomes = fake_github::collect_once(plan, state, now).await;
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let fake_busy = (fake.state.busy_nanos.load(Ordering::Relaxed) - busy0) as f64 / 1e9;
    for o in &outcomes {
        if let Err(e) = &o.result {
            panic!("collector {} failed: {e}", o.name);
        }
    }
    let mut r = Round {
        wall,
        own_cpu: (cpu - fake_busy).max(0.0),
        ..Round::default()
    };
    for inst in &plan.collectors {
        for m in inst.collector.self_metrics() {
            match m.path.as_str() {
                "github.requests" => {
                    r.requests += m.value;
                    r.per_collector.push((inst.name.clone(), m.value));
                }
                "github.primary_cost" => r.primary += m.value,
                "github.not_modified" => r.not_modified += m.value,
                _ => {}
            }
        }
    }
    r
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
        let sizes = github_history::Sizes {
            runs: 5000,
            pulls: 1000,
            issues: 2000,
        };
        let h = github_history::History::generate(7, sizes, now);
        let fake = fake_github::FakeGithub::start(vec![h]).await;
        let common = format!(
            "repo = \"{}\"\napi_url = \"{}\"\nmax_concurrency = 8\nmax_requests_per_minute = 1000000\n",
            github_history::REPO,
            fake.url
        );
        let text = format!(
            "[[collector]]\nname = \"actions\"\ntype = \"github_actions\"\nworkflows = [\"tests\", \"benchmarks\"]\n{common}\n\
             [[collector]]\nname = \"commits\"\ntype = \"github_commits\"\n{common}\n\
             [[collector]]\nname = \"pulls\"\ntype = \"github_pulls\"\n{common}\n\
             [[collector]]\nname = \"issues\"\ntype = \"github_issues\"\nlabels = [\"training\", \"infra\", \"bug\"]\n{common}\n\
             [[collector]]\nname = \"deployments\"\ntype = \"github_deployments\"\nenvironments = [\"production\", \"staging\"]\n{common}\n"
        );
        let plan = infra_health::config::parse(Path::new("bench.toml"), &text).unwrap();
        let mut first = Vec::new();
        let mut steady = Vec::new();
        for _ in 0..ROUNDS {
            let dir = tempfile::tempdir().unwrap();
            let state = Arc::new(StateStore::open(dir.path().to_str().unwrap()).unwrap());
            first.push(one_run(&plan, &state, now, &fake).await);
            steady.push(one_run(&plan, &state, now, &fake).await);
        }
        println!("github collectors, 5,000 runs / 1,000 PRs / 2,000 issues, {ROUNDS} rounds (medians)");
        for (name, rounds) in [("first run", &first), ("steady state", &steady)] {
            let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
            println!(
                "  {name:<13} requests {:>5}  primary cost {:>5}  304s {:>5}  wall {:.3} s  own CPU {:.3} s",
                m(|r| r.requests),
                m(|r| r.primary),
                m(|r| r.not_modified),
                m(|r| r.wall),
                m(|r| r.own_cpu),
            );
            let names: Vec<String> = rounds[0].per_collector.iter().map(|(n, _)| n.clone()).collect();
            let parts: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let v = median(rounds.iter().map(|r| r.per_collector.get(i).map_or(0.0, |p| p.1)).collect());
                    format!("{n} {v}")
                })
                .collect();
            println!("  {:<13} requests by collector: {}", "", parts.join(", "));
        }
        println!("  peak RSS {} KiB", peak_rss_kb());
    });
}
