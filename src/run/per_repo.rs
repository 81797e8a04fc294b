//! Rows per repository: a check whose collector covers an organisation (or several
//! repositories) is one row per repository, each reading only that repository's observations
//! and tagged `repo:<owner/name>`; the dashboard shows each check's worst status across the
//! selected repositories and drills down with `$repo`.
//!
//! Which repositories is the collector's to say after it collected ([`Coverage`]): the set
//! changes as repositories are added, archived or filtered out. A row of a repository the
//! collector no longer covers (in its own shard, by a listing GitHub answered this run) is
//! retired from the row memory, so it leaves the matrix and the board instead of going stale
//! for ever.

use std::collections::{BTreeSet, HashMap};

use super::CollectorOutcome;
use crate::checks::{CheckDef, RowId};
use crate::collectors::Coverage;

/// This job's rows with every check of a per-repository collector made one per repository.
/// A check that already names its repository (`match = { repo = "…" }`) stays one row.
pub fn expand(rows: Vec<CheckDef>, outcomes: &[CollectorOutcome]) -> Vec<CheckDef> {
    let coverage = coverage_by_collector(outcomes);
    let mut out = Vec::with_capacity(rows.len());
    for def in rows {
        match coverage.get(def.collector.as_str()) {
            // A shard with none of the collector's repositories has nothing to say of its rows.
            Some(c) if c.units.is_empty() && !c.shard.is_all() => {}
            Some(c) if c.per_unit && !def.matches.contains_key("repo") && !c.units.is_empty() => {
                out.extend(c.units.iter().map(|repo| def.for_repo(repo)));
            }
            _ => out.push(def),
        }
    }
    out
}

/// What a job's run retires: the stored rows made from one of `rows` (by its template) for a
/// repository its collector, which succeeded and read its listing this run, no longer covers in
/// its shard. A collector turned from an organisation back to one repository retires its rows
/// per repository.
pub struct Retirement {
    /// Template row → (repositories covered, the coverage).
    by_template: HashMap<RowId, (BTreeSet<String>, Coverage)>,
}

impl Retirement {
    pub fn new(rows: &[CheckDef], outcomes: &[CollectorOutcome]) -> Retirement {
        let coverage = coverage_by_collector(outcomes);
        let mut by_template = HashMap::new();
        for def in rows {
            if let Some(c) = coverage.get(def.collector.as_str())
                && c.settled
                && !def.matches.contains_key("repo")
            {
                let units = c.units.iter().map(|u| u.to_ascii_lowercase()).collect();
                by_template.insert(def.row.template(), (units, (*c).clone()));
            }
        }
        Retirement { by_template }
    }

    pub fn retires(&self, row: &RowId) -> bool {
        let Some(repo) = &row.repo else {
            return false;
        };
        match self.by_template.get(&row.template()) {
            Some((units, c)) => {
                c.shard.owns(repo) && (!c.per_unit || !units.contains(&repo.to_ascii_lowercase()))
            }
            None => false,
        }
    }
}

/// The coverage of each collector that succeeded and reports one.
fn coverage_by_collector(outcomes: &[CollectorOutcome]) -> HashMap<&str, &Coverage> {
    outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .filter_map(|o| Some((o.name.as_str(), o.coverage.as_ref()?)))
        .collect()
}

/// The rows the board shows: the plan's, each check of a per-repository collector as the rows
/// the memory holds for it (one per repository), and the job's own rows the plan does not have.
pub fn board_rows(
    plan_rows: &[CheckDef],
    job_rows: &[CheckDef],
    memory: &crate::state::rows::RowMemory,
) -> Vec<CheckDef> {
    let mut out = Vec::new();
    for def in plan_rows {
        let mut repos: BTreeSet<&str> = memory
            .rows
            .iter()
            .filter(|r| r.row.template() == def.row)
            .filter_map(|r| r.row.repo.as_deref())
            .collect();
        repos.extend(
            job_rows
                .iter()
                .filter(|r| r.row.template() == def.row)
                .filter_map(|r| r.row.repo.as_deref()),
        );
        if repos.is_empty() {
            out.push(def.clone());
        } else {
            out.extend(repos.into_iter().map(|repo| def.for_repo(repo)));
        }
    }
    out.extend(
        job_rows
            .iter()
            .filter(|r| !plan_rows.iter().any(|c| c.row == r.row.template()))
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::Shard;

    fn def(collector: &str) -> CheckDef {
        let mut d = crate::state::rows::tests::def("duration", 26);
        d.collector = collector.into();
        d
    }

    fn outcome(name: &str, units: &[&str], settled: bool, shard: Shard) -> CollectorOutcome {
        CollectorOutcome {
            name: name.into(),
            kind: "github_actions",
            duration_secs: 0.0,
            result: Ok(Vec::new()),
            error_type: None,
            unknown_reason: None,
            self_metrics: Vec::new(),
            coverage: Some(Coverage {
                units: units.iter().map(|u| u.to_string()).collect(),
                per_unit: true,
                settled,
                shard,
            }),
        }
    }

    #[test]
    fn a_check_becomes_a_row_per_repository_and_a_pinned_one_stays() {
        let mut pinned = def("gh");
        pinned.row.check = "pinned".into();
        pinned.matches.insert("repo".into(), "acme/a".into());
        let rows = expand(
            vec![def("gh"), pinned, def("other")],
            &[outcome("gh", &["acme/a", "acme/b"], true, Shard::ALL)],
        );
        let names: Vec<String> = rows.iter().map(|r| r.row.to_string()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names[0].ends_with("@acme/a") && names[1].ends_with("@acme/b"));
        assert_eq!(
            rows[1].matches.get("repo").map(String::as_str),
            Some("acme/b")
        );
        assert!(rows[2].row.repo.is_none() && rows[3].row.repo.is_none());
    }

    #[test]
    fn only_a_settled_listing_retires_and_only_in_its_own_shard() {
        let d = def("gh");
        let gone = d.row.for_repo("acme/gone");
        let kept = d.row.for_repo("acme/a");
        let r = Retirement::new(
            std::slice::from_ref(&d),
            &[outcome("gh", &["acme/a"], true, Shard::ALL)],
        );
        assert!(r.retires(&gone) && !r.retires(&kept) && !r.retires(&d.row));
        let unsettled = Retirement::new(
            std::slice::from_ref(&d),
            &[outcome("gh", &["acme/a"], false, Shard::ALL)],
        );
        assert!(!unsettled.retires(&gone));
        // A repository of another shard is that shard's to retire.
        let shard = Shard { index: 1, count: 2 };
        let other = (0..50)
            .map(|i| format!("acme/r{i}"))
            .find(|n| !shard.owns(n))
            .expect("some repository in shard 2");
        let sharded = Retirement::new(
            std::slice::from_ref(&d),
            &[outcome("gh", &["acme/a"], true, shard)],
        );
        assert!(!sharded.retires(&d.row.for_repo(&other)));
    }
}
