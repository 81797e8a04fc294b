use chrono::{DateTime, TimeDelta};

use super::records::{ActionsState, JobsSummary, QueueSample, RunRecord};
use super::workflows::{describe_workflows, file_stem, resolve_workflow};
use super::*;
use crate::github::models::WorkflowDef;
use crate::observation::Value;

fn wf(id: u64, name: &str, file: &str) -> WorkflowDef {
    WorkflowDef {
        id,
        name: name.into(),
        path: format!(".github/workflows/{file}"),
    }
}

#[test]
fn workflows_resolve_exactly_then_case_insensitively() {
    let all = vec![
        wf(1, "Unit Tests", "tests.yml"),
        wf(2, "Benchmarks", "bench.yaml"),
    ];
    let ids = |w: &str| -> Vec<u64> { resolve_workflow(w, &all).iter().map(|w| w.id).collect() };
    assert_eq!(ids("tests"), vec![1]);
    assert_eq!(ids("Unit Tests"), vec![1]);
    assert_eq!(ids("benchmarks"), vec![2]);
    assert_eq!(ids("BENCH"), vec![2]);
    assert!(ids("lint").is_empty());
    assert_eq!(file_stem(".github/workflows/x.yml@refs/heads/main"), "x");
    assert!(describe_workflows(&all).contains("Benchmarks (bench.yaml)"));
}

fn record(created: i64, conclusion: Option<&str>, status: &str) -> RunRecord {
    let t = DateTime::from_timestamp(1_700_000_000 + created, 0).unwrap_or_default();
    RunRecord {
        workflow_id: 1,
        status: status.into(),
        conclusion: conclusion.map(str::to_string),
        run_attempt: 1,
        created_at: t,
        updated_at: t + TimeDelta::seconds(60),
        run_started_at: Some(t),
        jobs: Some(JobsSummary {
            queue: vec![
                QueueSample {
                    job_id: created as u64 * 10,
                    secs: 3.0,
                    runner: "ubuntu-latest".into(),
                },
                QueueSample {
                    job_id: created as u64 * 10 + 1,
                    secs: 5.0,
                    runner: "gpu".into(),
                },
            ],
            timed_out: vec![created as u64 * 10],
            cancelled: 0,
            started: true,
        }),
        first_attempt_failed: Some(true),
    }
}

fn collector() -> ActionsCollector {
    let ctx = BuildContext {
        name: "actions",
        options: toml::from_str("repo = \"o/r\"\nworkflows = [\"tests\"]")
            .expect("test options parse"),
        config_dir: std::path::PathBuf::from("."),
    };
    let (source, _): (_, ActionsOptions) =
        GithubSource::build_with(&ctx).expect("test options are valid");
    ActionsCollector {
        source,
        window: TimeDelta::days(7),
        workflows: vec!["tests".into()],
        events: vec!["push".into()],
        jobs: true,
        timeout_annotation: DEFAULT_TIMEOUT_ANNOTATION.into(),
    }
}

#[test]
fn ids_match_samples_and_counts_and_superseded_runs_keep_the_verdict() {
    let c = collector();
    let repo = Repo::parse("o/r").unwrap();
    let mut state = ActionsState::default();
    state
        .runs
        .insert(1, record(1, Some("failure"), "completed"));
    state
        .runs
        .insert(2, record(2, Some("success"), "completed"));
    state
        .runs
        .insert(3, record(3, Some("cancelled"), "completed"));
    state.runs.insert(4, record(4, None, "in_progress"));
    let workflows = vec![wf(1, "Tests", "tests.yml")];
    let now = DateTime::from_timestamp(1_700_000_600, 0).unwrap_or_default();
    let obs = c.observations(&repo, &state, &workflows, now, now);
    let get = |s: &str| obs.iter().find(|o| o.signal == s).expect(s);
    let conclusion = get("workflow.conclusion");
    assert_eq!(conclusion.value, Value::Text("success".into()));
    assert_eq!(conclusion.tags["newer_run"], "in_progress");
    assert_eq!(
        get("workflow.verdict_age").value,
        Value::Number((600 - 2 - 60) as f64)
    );
    for o in &obs {
        match &o.value {
            Value::Samples(s) => assert_eq!(s.len(), o.ids.len(), "{}", o.signal),
            Value::Number(n) if o.signal == "runs.flaky" || o.signal == "jobs.timed_out" => {
                assert_eq!(*n as usize, o.ids.len(), "{}", o.signal)
            }
            _ => {}
        }
    }
    assert_eq!(get("workflow.duration").ids, vec!["1.1", "2.1", "3.1"]);
    assert_eq!(get("runs.flaky").ids.len(), 3);
    let gpu = obs
        .iter()
        .find(|o| {
            o.signal == "jobs.queue_time_by_runner"
                && o.tags.get("runner").map(String::as_str) == Some("gpu")
        })
        .expect("gpu queue samples");
    assert_eq!(gpu.ids, vec!["11", "21", "31"]);
}
