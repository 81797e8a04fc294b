//! The rules: how a change is recognised as a revert, a hotfix or a force merge (commit
//! messages, pull request title, labels and head branch), and the self-revert exception.

use regex::Regex;

use super::CommitsCollector;
use super::changes::Change;
use crate::collectors::BuildError;
use crate::github::models::PullItem;

/// One kind of commit to count, and how to recognise it.
#[derive(Debug)]
pub(in crate::collectors::github) struct Rule {
    patterns: Vec<Regex>,
    labels: Vec<String>,
    prefixes: Vec<String>,
}

impl Rule {
    pub(in crate::collectors::github) fn new(
        key: &str,
        patterns: &[String],
        labels: Vec<String>,
        prefixes: Vec<String>,
    ) -> Result<Rule, BuildError> {
        let patterns = patterns
            .iter()
            .map(|p| {
                Regex::new(p)
                    .map_err(|e| BuildError::at(key, format!("invalid pattern {p:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            patterns,
            labels: labels.into_iter().map(|l| l.to_lowercase()).collect(),
            prefixes,
        })
    }

    pub(in crate::collectors::github) fn matches_message(&self, message: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(message))
    }

    pub(in crate::collectors::github) fn matches_pull(&self, pr: &PullItem) -> bool {
        self.patterns.iter().any(|p| p.is_match(&pr.title))
            || pr
                .labels
                .iter()
                .any(|l| self.labels.contains(&l.to_lowercase()))
            || self
                .prefixes
                .iter()
                .any(|p| pr.head.starts_with(p.as_str()))
    }

    #[cfg(test)]
    pub(super) fn matches(&self, message: &str, pull: Option<&PullItem>) -> bool {
        self.matches_message(message) || pull.is_some_and(|p| self.matches_pull(p))
    }
}

impl CommitsCollector {
    /// The shas a commit message says it reverts.
    pub(super) fn reverted<'m>(&self, message: &'m str) -> Vec<&'m str> {
        self.revert_ref
            .captures_iter(message)
            .filter_map(|c| c.get(1).map(|m| m.as_str()))
            .collect()
    }

    /// Whether every commit `message` reverts belongs to the same change (or its PR).
    fn reverts_only_its_own(&self, message: &str, change: &Change, pr_commits: &[String]) -> bool {
        let refs = self.reverted(message);
        !refs.is_empty()
            && refs.iter().all(|r| {
                let r = r.to_ascii_lowercase();
                change.commits.iter().any(|c| c.sha.starts_with(&r))
                    || pr_commits.iter().any(|c| c.starts_with(&r))
            })
    }

    pub(super) fn matches(
        &self,
        rule: &Rule,
        change: &Change,
        pr_commits: &[String],
        reverts: bool,
    ) -> bool {
        change.commits.iter().any(|c| {
            rule.matches_message(&c.message)
                && !(reverts && self.reverts_only_its_own(&c.message, change, pr_commits))
        }) || change.pr.is_some_and(|p| rule.matches_pull(p))
    }
}
