use std::collections::HashMap;

use chrono::{TimeDelta, Utc};
use regex::Regex;

use super::changes::{Change, CommitItem, group_changes};
use super::rules::Rule;
use super::*;
use crate::github::models::PullItem;
use crate::observation::Value;

#[test]
fn default_rules_recognise_the_usual_spellings() {
    let revert = Rule::new(
        "r",
        &default_revert_patterns(),
        default_revert_labels(),
        default_revert_prefixes(),
    )
    .unwrap();
    assert!(revert.matches("Revert \"Add x\"\n\nThis reverts commit abcdef1.", None));
    assert!(!revert.matches("Reverting nothing", None));
    let hotfix = Rule::new(
        "h",
        &default_hotfix_patterns(),
        default_hotfix_labels(),
        default_hotfix_prefixes(),
    )
    .unwrap();
    assert!(hotfix.matches("hotfix: fix the build", None));
    assert!(hotfix.matches("[HOTFIX] fix", None));
    assert!(!hotfix.matches("add hotfixes docs", None));
    let pr = PullItem {
        number: 1,
        title: "x".into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        merged_at: None,
        merge_commit_sha: None,
        labels: vec!["HotFix".into()],
        head: "feature".into(),
        base: "main".into(),
        head_sha: None,
    };
    assert!(hotfix.matches("plain", Some(&pr)));
    let err = Rule::new("x", &["(".into()], vec![], vec![]).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("x"));
    assert!(err.message.contains("x"));
}

fn commit(sha: &str, message: &str, parents: &[&str]) -> CommitItem {
    CommitItem {
        sha: sha.into(),
        message: message.into(),
        date: Some(Utc::now()),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    }
}

fn collector() -> CommitsCollector {
    let ctx = BuildContext {
        name: "commits",
        options: toml::from_str("repo = \"o/r\"").expect("test options parse"),
        config_dir: std::path::PathBuf::from("."),
    };
    let (source, o): (_, CommitsOptions) =
        GithubSource::build_with(&ctx).expect("default options are valid");
    CommitsCollector {
        source,
        window: TimeDelta::days(7),
        reverts: Rule::new(
            "r",
            &o.revert_patterns,
            o.revert_labels,
            o.revert_branch_prefixes,
        )
        .expect("defaults"),
        hotfixes: Rule::new(
            "h",
            &o.hotfix_patterns,
            o.hotfix_labels,
            o.hotfix_branch_prefixes,
        )
        .expect("defaults"),
        force_merges: Rule::new(
            "f",
            &o.force_merge_patterns,
            o.force_merge_labels,
            o.force_merge_branch_prefixes,
        )
        .expect("defaults"),
        count_force_pushes: true,
        count_unapproved: true,
        count_failing_checks: true,
        required_checks: None,
        revert_ref: Regex::new("(?m)^This reverts commit ([0-9a-fA-F]{7,40})").expect("valid"),
    }
}

#[test]
fn a_merged_revert_is_one_change_and_a_self_revert_is_none() {
    let c = collector();
    // main: m3 (merge of PR 7: r1 reverting a main commit) <- s2 (squash of PR 8 quoting a
    // revert of its own wip commit) <- d1 (direct).
    let commits = vec![
        commit(
            "m3",
            "Merge pull request #7 from o/undo\n\nRevert \"x\"",
            &["s2", "r1"],
        ),
        commit(
            "r1",
            "Revert \"x\"\n\nThis reverts commit d1d1d1d1.",
            &["s2"],
        ),
        commit(
            "s2",
            "Feature (#8)\n\n* wip\n\n* Revert \"wip\"\n\nThis reverts commit abcdef12.",
            &["d1d1d1d1"],
        ),
        commit("d1d1d1d1", "hotfix: direct", &["old"]),
    ];
    let pr = |n: u64, sha: &str, labels: &[&str]| PullItem {
        number: n,
        title: "t".into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        merged_at: Some(Utc::now()),
        merge_commit_sha: Some(sha.into()),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        head: "x".into(),
        base: "main".into(),
        head_sha: None,
    };
    let p7 = pr(7, "m3", &["revert"]);
    let p8 = pr(8, "s2", &[]);
    let by_sha: HashMap<&str, &PullItem> = [("m3", &p7), ("s2", &p8)].into_iter().collect();
    let changes = group_changes(&commits, &by_sha);
    let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, vec!["d1d1d1d1", "pr#7", "pr#8"]);
    let pr7 = &changes[1];
    assert_eq!(
        pr7.commits.len(),
        2,
        "the merge commit and the commit it brought in"
    );
    let own8 = vec!["abcdef1234567890".to_string()];
    let reverts: Vec<&str> = changes
        .iter()
        .filter(|ch| {
            let own: &[String] = if ch.key == "pr#8" { &own8 } else { &[] };
            c.matches(&c.reverts, ch, own, true)
        })
        .map(|ch| ch.key.as_str())
        .collect();
    assert_eq!(reverts, vec!["pr#7"]);
    // Without knowing PR 8's commits its quoted revert is unresolved: they are fetched.
    let refs: Vec<&Change> = changes.iter().collect();
    let state = CommitsState::default();
    assert_eq!(c.prs_needing_commits(&refs, &state), vec![7, 8]);
    let hotfixes = changes
        .iter()
        .filter(|ch| c.matches(&c.hotfixes, ch, &[], false))
        .count();
    assert_eq!(hotfixes, 1);
}

#[test]
fn commits_without_parents_are_each_their_own_change() {
    let commits = vec![commit("a", "x", &[]), commit("b", "y", &[])];
    let changes = group_changes(&commits, &HashMap::new());
    assert_eq!(changes.len(), 2);
    let ids: Vec<String> = changes.iter().map(|c| c.key.clone()).collect();
    let o = counted_observation("commits.reverts", ids, Utc::now());
    assert_eq!(o.value, Value::Number(o.ids.len() as f64));
}
