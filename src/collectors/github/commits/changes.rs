//! Commits grouped into changes: the first-parent chain, what each merge brought in, `pr#N`
//! identities, and which pull requests' commits are needed to tell self-reverts apart.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CommitsCollector, CommitsState};
use crate::github::models::PullItem;

/// What is kept of a commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CommitItem {
    pub(super) sha: String,
    pub(super) message: String,
    pub(super) date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) parents: Vec<String>,
}

/// One change: the commit that landed it on the branch and the commits it brought in.
#[derive(Debug)]
pub(super) struct Change<'a> {
    pub(super) key: String,
    pub(super) landed: &'a CommitItem,
    pub(super) commits: Vec<&'a CommitItem>,
    pub(super) pr: Option<&'a PullItem>,
}

/// Group commits (newest first, as listed) into changes; see the module docs.
pub(super) fn group_changes<'a>(
    commits: &'a [CommitItem],
    by_merge_sha: &HashMap<&str, &'a PullItem>,
) -> Vec<Change<'a>> {
    let by_sha: HashMap<&str, &CommitItem> = commits.iter().map(|c| (c.sha.as_str(), c)).collect();
    let mut mainline: Vec<&CommitItem> = Vec::new();
    let mut on_mainline: HashSet<&str> = HashSet::new();
    let mut cur = commits.first();
    while let Some(c) = cur {
        if !on_mainline.insert(c.sha.as_str()) {
            break;
        }
        mainline.push(c);
        cur = c
            .parents
            .first()
            .and_then(|p| by_sha.get(p.as_str()).copied());
    }
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, m) in mainline.iter().enumerate() {
        let mut stack: Vec<&str> = m.parents.iter().skip(1).map(String::as_str).collect();
        while let Some(sha) = stack.pop() {
            if on_mainline.contains(sha) || owner.contains_key(sha) {
                continue;
            }
            let Some(c) = by_sha.get(sha) else { continue };
            owner.insert(c.sha.as_str(), i);
            stack.extend(c.parents.iter().map(String::as_str));
        }
    }
    let mut groups: Vec<(&CommitItem, Vec<&CommitItem>)> =
        mainline.iter().map(|m| (*m, vec![*m])).collect();
    for c in commits {
        match owner.get(c.sha.as_str()) {
            Some(i) => groups[*i].1.push(c),
            // Not reachable through parents (e.g. a listing without parents): its own change.
            None if !on_mainline.contains(c.sha.as_str()) => groups.push((c, vec![c])),
            None => {}
        }
    }
    let mut changes: BTreeMap<String, Change<'a>> = BTreeMap::new();
    for (landed, members) in groups {
        let pr = by_merge_sha.get(landed.sha.as_str()).copied();
        let key = match pr {
            Some(p) => format!("pr#{}", p.number),
            None => landed.sha.clone(),
        };
        match changes.get_mut(&key) {
            Some(ch) => ch.commits.extend(members),
            None => {
                changes.insert(
                    key.clone(),
                    Change {
                        key,
                        landed,
                        commits: members,
                        pr,
                    },
                );
            }
        }
    }
    changes.into_values().collect()
}

impl CommitsCollector {
    /// PRs whose commits are needed to tell a self-revert from a revert on the branch.
    pub(super) fn prs_needing_commits(
        &self,
        changes: &[&Change],
        state: &CommitsState,
    ) -> Vec<u64> {
        changes
            .iter()
            .filter_map(|ch| {
                let pr = ch.pr?;
                if state.pr_commits.contains_key(&pr.number) {
                    return None;
                }
                let unresolved = ch.commits.iter().any(|c| {
                    self.reverted(&c.message).iter().any(|r| {
                        let r = r.to_ascii_lowercase();
                        !ch.commits.iter().any(|x| x.sha.starts_with(&r))
                    })
                });
                unresolved.then_some(pr.number)
            })
            .collect()
    }
}
