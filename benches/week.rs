//! Benchmark: a simulated week of ten-minute cron runs (the week scenario of the test suite:
//! fake GitHub with an evolving history, the fake Datadog intake, the local state store), then
//! unchanged steady-state runs.
//!
//! Prints, for the week: runs, wall time per run (median), points and samples the intake
//! accepted, and the state store's bytes at the end (by object); for the steady-state run
//! (nothing changed on GitHub): requests, requests that cost primary rate limit, wall time and
//! the process's CPU time minus what the in-process fake GitHub spent answering (medians of 7);
//! and the peak RSS.
//!
//! Run: `cargo bench --bench week` (targets: steady state 0 primary points and < 0.2 s of our
//! own time; the state store bounded). `WEEK_BENCH_EVALS=0` leaves the eval results file empty
//! (no hourly evals, no 30,000-sample catch-up): the same work as before that row existed, to
//! compare the delivery path alone with an older build.

// The fakes are shared with the test suite, which uses more of them than this benchmark does.
#![allow(dead_code)]

mod common;
#[path = "../tests/it/support/fake_dashboards.rs"]
mod fake_dashboards;
#[path = "../tests/it/support/fake_datadog.rs"]
mod fake_datadog;
#[path = "../tests/it/support/fake_github.rs"]
mod fake_github;
#[path = "../tests/it/support/fake_monitors.rs"]
mod fake_monitors;
#[path = "../tests/it/support/github_history.rs"]
mod github_history;
#[path = "../tests/it/support/query_eval.rs"]
mod query_eval;
#[path = "../tests/it/support/week_scenario.rs"]
mod week_scenario;

use common::{cpu_seconds, median, peak_rss_kb};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use infra_health::run::RunOptions;
use week_scenario::*;

const ROUNDS: usize = 7;

/// Bytes of every file under `dir`, by path relative to it.
fn sizes(dir: &Path, base: &Path, out: &mut Vec<(String, u64)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            sizes(&p, base, out);
        } else if let Ok(m) = e.metadata() {
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            out.push((rel, m.len()));
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = scenario();
        let base = github_history::History::generate(
            7,
            github_history::Sizes {
                runs: 0,
                pulls: 0,
                issues: 0,
            },
            at(0),
        );
        let github = fake_github::FakeGithub::start(vec![base]).await;
        let intake = fake_datadog::FakeDatadog::start(KEY);
        let dir = tempfile::tempdir().unwrap();
        let plan = infra_health::config::parse(
            &dir.path().join("week.toml"),
            &config(&github.url, &intake.url),
        )
        .unwrap();
        let state_dir = dir.path().join("state");
        let opts = |t: i64| RunOptions {
            state: Some(state_dir.display().to_string()),
            now: Some(at(t)),
            datadog_key: Some(infra_health::secret::Secret::new(KEY)),
            ..Default::default()
        };
        let mut walls = Vec::new();
        let mut spool_peak = 0u64;
        let week = Instant::now();
        for t in steps() {
            let results = if std::env::var("WEEK_BENCH_EVALS").as_deref() == Ok("0") {
                "[]".to_string()
            } else {
                evals(t)
            };
            std::fs::write(dir.path().join(EVAL_FILE), results).unwrap();
            github.with_history(github_history::REPO, |h| show(h, &s, t));
            github.set_faults(fake_github::Faults {
                broken_repos: if collector_up(t) {
                    Vec::new()
                } else {
                    vec![github_history::REPO.into()]
                },
                ..Default::default()
            });
            intake.set_now(at(t).timestamp());
            let started = Instant::now();
            let summary = infra_health::run::run(&plan, opts(t)).await.unwrap();
            walls.push(started.elapsed().as_secs_f64());
            assert!(summary.delivery.ok, "{:?}", summary.delivery.problems);
            let mut spool = Vec::new();
            sizes(&state_dir.join("spool"), &state_dir, &mut spool);
            spool_peak = spool_peak.max(spool.iter().map(|(_, b)| b).sum());
        }
        let week_secs = week.elapsed().as_secs_f64();
        let points = intake.recorded();
        let samples: usize = points
            .iter()
            .filter(|p| p.kind.is_none())
            .map(|p| p.values.len())
            .sum();
        println!(
            "week: {} runs in {week_secs:.1} s (median {:.1} ms a run); intake accepted {} points, {} distribution samples",
            walls.len(),
            median(walls.clone()) * 1000.0,
            points.len(),
            samples
        );
        let mut files = Vec::new();
        sizes(&state_dir, &state_dir, &mut files);
        files.retain(|(p, _)| !p.starts_with("payloads"));
        files.sort_by_key(|(_, b)| std::cmp::Reverse(*b));
        let total: u64 = files.iter().map(|(_, b)| b).sum();
        println!(
            "state store after the week: {total} bytes (spool after any run: at most {spool_peak} bytes)"
        );
        for (p, b) in files.iter().take(8) {
            println!("  {b:>9}  {p}");
        }

        let end = (STEPS - 1) * STEP;
        let (mut requests, mut charged, mut wall, mut own) = (vec![], vec![], vec![], vec![]);
        for round in 0..ROUNDS {
            let t = end + 60 * (round as i64 + 1);
            intake.set_now(at(t).timestamp());
            github.clear_log();
            let busy0 = github.state.busy_nanos.load(Ordering::Relaxed);
            let cpu0 = cpu_seconds();
            let started = Instant::now();
            let summary = infra_health::run::run(&plan, opts(t)).await.unwrap();
            wall.push(started.elapsed().as_secs_f64());
            let busy = (github.state.busy_nanos.load(Ordering::Relaxed) - busy0) as f64 / 1e9;
            own.push((cpu_seconds() - cpu0 - busy).max(0.0));
            assert!(summary.delivery.ok);
            let log = github.log();
            requests.push(log.len() as f64);
            charged.push(log.iter().filter(|l| l.status != 304).count() as f64);
        }
        println!(
            "steady state (nothing new on GitHub), medians of {ROUNDS}: {} requests, {} charged to the primary limit, wall {:.3} s, own CPU {:.3} s",
            median(requests),
            median(charged),
            median(wall),
            median(own)
        );
        println!("peak RSS {} MiB", peak_rss_kb() / 1024);
    });
}
