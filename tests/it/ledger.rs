//! The delivery ledger under random kills and outages: every event counted exactly once.
//!
//! Each case drives the real pipeline (a `file` collector whose results gain events and samples
//! every run, the real state store on disk, the fake intake on loopback) through a dozen runs
//! ten minutes apart on a pinned clock. Any run after the first may find Datadog down (503) or
//! be killed at a random instant (its future dropped, as SIGKILL ends a pod: whatever it had
//! written stays, whatever it had not is gone). A few healthy runs close the case. Then, read
//! as Datadog keeps it (last write wins per series and second):
//! - the COUNT sums to exactly the events that appeared after the first run (the first run
//!   records a baseline);
//! - every sample that appeared after the first run arrived, and none of the first run's;
//! - a sample arrived twice only when the run that first sent it was killed (Datadog stored the
//!   request, the answer never came, the next run sent it again: the one window write-ahead
//!   cannot close, and it cannot double a COUNT, which lands on the same second);
//! - the spool is empty.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use crate::support::fake_datadog::{FakeDatadog, Fault};
use crate::support::week_scenario::at;
use infra_health::run::RunOptions;

const KEY: &str = "ledger-property-key";

fn config(intake: &str) -> String {
    format!(
        r#"
[defaults]
env = "prod"

[sink]
type = "datadog"
endpoint = "{intake}"
max_retries = 1
backoff = "5ms"
timeout = "2s"

[[collector]]
name = "evals"
type = "file"
path = "results.json"

[[check]]
workflow_category = "evaluation"
workflow_name = "remote_eval"
task = "failures"
check = "count"
title = "Eval failures"
collector = "evals"
signal = "eval.failures"
condition = "<1000"
encoding = "count"
metric = "eval.failures"

[[check]]
workflow_category = "evaluation"
workflow_name = "remote_eval"
task = "latency"
check = "latency_p50"
title = "Eval latency"
collector = "evals"
signal = "eval.latency"
condition = "<1000s"
encoding = "distribution"
summary = "p50"
unit = "second"
metric = "eval.latency"
"#
    )
}

/// What the results file shows after run `k`: every event and sample so far.
fn results(events: &[Vec<String>], samples: &[Vec<f64>], t: i64) -> String {
    let ids: Vec<&String> = events.iter().flatten().collect();
    let values: Vec<f64> = samples.iter().flatten().copied().collect();
    let sample_ids: Vec<String> = values.iter().map(|v| format!("s{v}")).collect();
    json!([
        {"signal": "eval.failures", "value": ids.len(), "ids": ids, "timestamp": at(t).to_rfc3339()},
        {"signal": "eval.latency", "value": values, "ids": sample_ids, "timestamp": at(t).to_rfc3339()},
    ])
    .to_string()
}

#[derive(Debug, Clone)]
enum Fate {
    Healthy,
    DatadogDown,
    Killed(u64),
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        3 => Just(Fate::Healthy),
        1 => Just(Fate::DatadogDown),
        2 => (0u64..120).prop_map(Fate::Killed),
    ]
}

fn one_case(plan_fates: Vec<(usize, usize, Fate)>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let intake = FakeDatadog::start(KEY);
        let dir = tempfile::tempdir().unwrap();
        let plan =
            infra_health::config::parse(&dir.path().join("ledger.toml"), &config(&intake.url))
                .unwrap();
        let state = dir.path().join("state");
        let mut events: Vec<Vec<String>> = Vec::new();
        let mut samples: Vec<Vec<f64>> = Vec::new();
        let mut killed: Vec<i64> = Vec::new();
        // The run that sent each recorded point: run `k` sent points `ends[k-1]..ends[k]`.
        let mut ends: Vec<usize> = Vec::new();
        let mut killed_runs: BTreeSet<usize> = BTreeSet::new();
        let mut fates = vec![(2usize, 2usize, Fate::Healthy)];
        fates.extend(plan_fates);
        fates.extend(std::iter::repeat_n((0, 0, Fate::Healthy), 3));
        for (k, (new_events, new_samples, fate)) in fates.into_iter().enumerate() {
            let t = k as i64 * 600;
            events.push((0..new_events).map(|j| format!("ev-{k}-{j}")).collect());
            samples.push((0..new_samples).map(|j| (k * 100 + j) as f64).collect());
            std::fs::write(
                dir.path().join("results.json"),
                results(&events, &samples, t),
            )
            .unwrap();
            intake.set_now(at(t).timestamp());
            match fate {
                Fate::DatadogDown => intake.fault_rate(1.0, k as u64, vec![Fault::status(503)]),
                _ => intake.fault_rate(0.0, 0, Vec::new()),
            }
            let opts = RunOptions {
                state: Some(state.display().to_string()),
                now: Some(at(t)),
                datadog_key: Some(infra_health::secret::Secret::new(KEY)),
                ..Default::default()
            };
            let run = infra_health::run::run(&plan, opts);
            match fate {
                Fate::Killed(ms) => {
                    if tokio::time::timeout(Duration::from_millis(ms), run)
                        .await
                        .is_err()
                    {
                        killed.push(at(t).timestamp());
                        killed_runs.insert(k);
                        // A request whose body was out when the run died still lands: let the
                        // intake finish it, so it is counted as this run's.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                _ => {
                    run.await.unwrap();
                }
            }
            ends.push(intake.recorded().len());
        }
        let raw = intake.recorded();
        let stored = intake.stored();
        // COUNT: exactly the events after the baseline run.
        let counted: f64 = stored
            .iter()
            .filter(|p| p.metric == "metta.infra.cron.eval.failures" && p.kind == Some(1))
            .map(|p| p.values[0])
            .sum();
        let expected: usize = events.iter().skip(1).map(Vec::len).sum();
        prop_assert_eq!(counted, expected as f64, "killed at {:?}", killed);
        // Samples: all after the baseline, none of it, twice only from a killed run.
        let sender = |i: usize| ends.iter().position(|&end| i < end).unwrap_or(ends.len());
        let mut seen: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, p) in raw.iter().enumerate() {
            if p.metric == "metta.infra.cron.eval.latency" && p.kind.is_none() {
                for v in &p.values {
                    seen.entry(v.to_bits()).or_default().push(sender(i));
                }
            }
        }
        let wanted: BTreeSet<u64> = samples
            .iter()
            .skip(1)
            .flatten()
            .map(|v| v.to_bits())
            .collect();
        let got: BTreeSet<u64> = seen.keys().copied().collect();
        prop_assert_eq!(&got, &wanted, "killed at {:?}", killed);
        for (v, senders) in &seen {
            if senders.len() > 1 {
                // Arrival order: the first sender is the run whose answer may have been lost.
                let first = senders[0];
                prop_assert!(
                    killed_runs.contains(&first),
                    "sample {} sent {} times, first by run {} which was not killed (killed: {:?})",
                    f64::from_bits(*v),
                    senders.len(),
                    first,
                    killed_runs
                );
            }
        }
        let spool: Vec<_> = std::fs::read_dir(state.join("spool"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .map(|e| e.file_name())
            .collect();
        prop_assert!(spool.is_empty(), "spool not empty: {:?}", spool);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn every_event_is_counted_once_through_random_kills_and_outages(
        runs in proptest::collection::vec((0usize..4, 0usize..5, fate()), 4..10)
    ) {
        one_case(runs)?;
    }
}

/// A single row with a million new samples (a long catch-up) is delivered whole: split into
/// entries of 5,000 and requests within every limit the intake enforces (413 past them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_new_samples_of_one_row_are_delivered_whole() {
    let intake = FakeDatadog::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&intake.url).replace(
        "path = \"results.json\"",
        "path = \"results.json\"\nmax_bytes = 67108864",
    );
    let plan = infra_health::config::parse(&dir.path().join("ledger.toml"), &config).unwrap();
    let state = dir.path().join("state");
    let opts = |t: i64| RunOptions {
        state: Some(state.display().to_string()),
        now: Some(at(t)),
        datadog_key: Some(infra_health::secret::Secret::new(KEY)),
        ..Default::default()
    };
    // The first run starts the row memory (a baseline of nothing), the second brings them all.
    std::fs::write(dir.path().join("results.json"), results(&[], &[], 0)).unwrap();
    intake.set_now(at(0).timestamp());
    infra_health::run::run(&plan, opts(0)).await.unwrap();
    let million: Vec<f64> = (0..1_000_000).map(f64::from).collect();
    std::fs::write(
        dir.path().join("results.json"),
        results(&[], &[million], 600),
    )
    .unwrap();
    intake.set_now(at(600).timestamp());
    let summary = infra_health::run::run(&plan, opts(600)).await.unwrap();
    assert!(summary.delivery.ok, "{:?}", summary.delivery.problems);
    let got: usize = intake
        .recorded()
        .iter()
        .filter(|p| p.metric == "metta.infra.cron.eval.latency")
        .map(|p| p.values.len())
        .sum();
    assert_eq!(got, 1_000_000);
    assert!(
        intake
            .seen()
            .iter()
            .all(|s| s.status == 202 || s.path != "/api/v1/distribution_points"),
        "a distribution request was refused"
    );
}
