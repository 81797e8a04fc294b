//! The four keys computed from what was read: no I/O here, so every definition can be read (and
//! tested) in one place. See the module docs of [`super`] and docs/collectors.md.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};

/// One successful deployment to one environment (a failed one never gets here).
#[derive(Debug, Clone)]
pub(super) struct Deployed {
    /// The deployment id (or, for the workflow source, the run id).
    pub(super) id: u64,
    pub(super) sha: String,
    pub(super) created: DateTime<Utc>,
    /// When it deployed: its `success` status (or the run's last update).
    pub(super) finished: DateTime<Utc>,
}

/// What `compare/{previous}...{sha}` said.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Compared {
    /// `ahead`, `behind`, `identical` or `diverged`.
    pub(super) status: String,
    /// The commits the head has and the base has not: `(sha, committed)`.
    #[serde(default)]
    pub(super) commits: Vec<(String, Option<DateTime<Utc>>)>,
}

/// A commit that landed on the branch, as the failure rules need it.
#[derive(Debug, Clone)]
pub(super) struct Landed {
    pub(super) sha: String,
    pub(super) date: Option<DateTime<Utc>>,
    /// Matches the hotfix rules (message or pull request).
    pub(super) hotfix: bool,
    /// When it matches the revert rules: the shas its `This reverts commit X` lines name.
    pub(super) reverts: Vec<String>,
}

/// What the keys are computed from, for one repository and environment.
pub(super) struct Inputs<'a> {
    /// Successful deployments in reach, oldest first.
    pub(super) deployed: &'a [Deployed],
    /// `compare` answers by deployment id (none for the first one, nor when the sha did not
    /// change).
    pub(super) compared: &'a BTreeMap<u64, Compared>,
    /// Commits that landed on the branch (listed, plus those later deployments shipped).
    pub(super) landed: &'a [Landed],
    /// Creation times of incident issues.
    pub(super) incidents: &'a [DateTime<Utc>],
    pub(super) incident_window: TimeDelta,
    pub(super) window_start: DateTime<Utc>,
    pub(super) now: DateTime<Utc>,
}

/// The four keys for one repository and environment.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Keys {
    /// Deployment ids finished in the window.
    pub(super) deployments: Vec<String>,
    /// `(seconds, "DEPLOYMENT:SHA")`.
    pub(super) lead_time: Vec<(f64, String)>,
    /// Failed deployment ids in the window.
    pub(super) failed: Vec<String>,
    /// `(seconds, "DEPLOYMENT")` of each failed deployment that recovered.
    pub(super) recovery_time: Vec<(f64, String)>,
}

fn seconds(d: TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Whether `short` (a full or abbreviated sha) names `full`.
fn names(short: &str, full: &str) -> bool {
    // `get`, not indexing: a sha from the network is not trusted to be ASCII.
    short.len() >= 7
        && full
            .get(..short.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(short))
}

impl Inputs<'_> {
    fn in_window(&self, d: &Deployed) -> bool {
        d.finished >= self.window_start && d.finished <= self.now
    }

    /// The commits deployment `i` shipped: none for the first in reach, a rollback (`behind`) or
    /// a redeploy of the same sha.
    fn shipped(&self, i: usize) -> &[(String, Option<DateTime<Utc>>)] {
        match self.compared.get(&self.deployed[i].id) {
            Some(c) if i > 0 && (c.status == "ahead" || c.status == "diverged") => &c.commits,
            _ => &[],
        }
    }

    /// Whether deployment `i` is a rollback: its sha is behind the previous deployment's.
    fn rollback(&self, i: usize) -> bool {
        i > 0
            && self
                .compared
                .get(&self.deployed[i].id)
                .is_some_and(|c| c.status == "behind")
    }

    /// Indices of failed deployments (all in reach), by the three rules.
    pub(super) fn failed(&self) -> BTreeSet<usize> {
        let d = self.deployed;
        let mut failed = BTreeSet::new();
        // (a) a rollback to a sha deployed earlier fails every deployment in between.
        for r in 0..d.len() {
            if !self.rollback(r) {
                continue;
            }
            if let Some(e) = (0..r).rev().find(|&j| d[j].sha == d[r].sha) {
                failed.extend((e + 1..r).filter(|&x| d[x].sha != d[r].sha));
            }
        }
        for i in 0..d.len() {
            let shipped = self.shipped(i);
            // (b) a revert of a commit it shipped landed on the branch (not one it shipped too).
            let reverted = self.landed.iter().any(|l| {
                !shipped.iter().any(|(s, _)| s == &l.sha)
                    && l.reverts
                        .iter()
                        .any(|r| shipped.iter().any(|(s, _)| names(r, s)))
            });
            // (b) a hotfix landed after it and before the next deployment.
            let until = d.get(i + 1).map_or(self.now, |n| n.created);
            let hotfix = self
                .landed
                .iter()
                .any(|l| l.hotfix && l.date.is_some_and(|t| t >= d[i].finished && t < until));
            if reverted || hotfix {
                failed.insert(i);
            }
        }
        // (c) an incident opened within `incident_window` of the latest deployment before it.
        for t in self.incidents {
            if let Some(i) = (0..d.len()).rev().find(|&i| d[i].finished <= *t)
                && *t - d[i].finished <= self.incident_window
            {
                failed.insert(i);
            }
        }
        failed
    }

    pub(super) fn keys(&self) -> Keys {
        let d = self.deployed;
        let failed = self.failed();
        let mut keys = Keys::default();
        for i in 0..d.len() {
            if !self.in_window(&d[i]) {
                continue;
            }
            keys.deployments.push(d[i].id.to_string());
            for (sha, committed) in self.shipped(i) {
                let Some(committed) = committed else { continue };
                let lead = d[i].finished - *committed;
                // A commit dated after its deployment (a skewed clock) is no sample.
                if lead >= TimeDelta::zero() {
                    keys.lead_time
                        .push((seconds(lead), format!("{}:{sha}", d[i].id)));
                }
            }
            if failed.contains(&i) {
                keys.failed.push(d[i].id.to_string());
                if let Some(n) = (i + 1..d.len()).find(|n| !failed.contains(n)) {
                    keys.recovery_time
                        .push((seconds(d[n].finished - d[i].finished), d[i].id.to_string()));
                }
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + h * 3600, 0).unwrap_or_default()
    }

    fn dep(id: u64, sha: &str, h: i64) -> Deployed {
        Deployed {
            id,
            sha: sha.repeat(40),
            created: t(h),
            finished: t(h) + TimeDelta::minutes(10),
        }
    }

    fn cmp(status: &str, commits: &[(&str, i64)]) -> Compared {
        Compared {
            status: status.into(),
            commits: commits
                .iter()
                .map(|(s, h)| (s.repeat(40), Some(t(*h))))
                .collect(),
        }
    }

    fn inputs<'a>(
        deployed: &'a [Deployed],
        compared: &'a BTreeMap<u64, Compared>,
        landed: &'a [Landed],
        incidents: &'a [DateTime<Utc>],
    ) -> Inputs<'a> {
        Inputs {
            deployed,
            compared,
            landed,
            incidents,
            incident_window: TimeDelta::hours(24),
            window_start: t(0),
            now: t(1000),
        }
    }

    /// The worked example of docs/collectors.md, `github_deployments`, minute for minute.
    #[test]
    fn the_documented_example_holds() {
        let at = |h: i64, m: i64| t(h) + TimeDelta::minutes(m);
        let d = |id: u64, sha: &str, h: i64| Deployed {
            id,
            sha: sha.into(),
            created: at(h, 0),
            finished: at(h, 10),
        };
        let deployed = [
            d(10, "c1", 9),
            d(11, "m", 11),
            d(12, "c1", 12),
            d(13, "c3", 13),
        ];
        let commits = |list: &[(&str, i64, i64)]| -> Vec<(String, Option<DateTime<Utc>>)> {
            list.iter()
                .map(|(s, h, m)| (s.to_string(), Some(at(*h, *m))))
                .collect()
        };
        let pr = [("p1", 8, 0), ("p2", 8, 30), ("c2", 9, 30), ("m", 10, 0)];
        let mut all = pr.to_vec();
        all.push(("c3", 12, 30));
        let compared: BTreeMap<u64, Compared> = [
            (
                11,
                Compared {
                    status: "ahead".into(),
                    commits: commits(&pr),
                },
            ),
            (
                12,
                Compared {
                    status: "behind".into(),
                    commits: Vec::new(),
                },
            ),
            (
                13,
                Compared {
                    status: "ahead".into(),
                    commits: commits(&all),
                },
            ),
        ]
        .into();
        let mut inputs = inputs(&deployed, &compared, &[], &[]);
        let k = inputs.keys();
        assert_eq!(k.deployments, vec!["10", "11", "12", "13"]);
        let minutes = |id: &str| -> Vec<f64> {
            k.lead_time
                .iter()
                .filter(|(_, i)| i.starts_with(&format!("{id}:")))
                .map(|(v, _)| v / 60.0)
                .collect()
        };
        assert_eq!(minutes("11"), vec![190.0, 160.0, 100.0, 70.0]);
        assert_eq!(minutes("13"), vec![310.0, 280.0, 220.0, 190.0, 40.0]);
        assert!(minutes("10").is_empty() && minutes("12").is_empty());
        assert_eq!(k.failed, vec!["11"]);
        assert_eq!(k.recovery_time, vec![(3600.0, "11".to_string())]);
        // An incident at 15:00 fails 13 (1 h 50 m after it); two days later, none.
        let soon = [at(15, 0)];
        inputs.incidents = &soon;
        assert_eq!(inputs.keys().failed, vec!["11", "13"]);
        let late = [at(15 + 48, 0)];
        inputs.incidents = &late;
        assert_eq!(inputs.keys().failed, vec!["11"]);
    }

    #[test]
    fn a_sha_names_a_commit_by_a_prefix_of_seven_or_more() {
        assert!(names("abcdef1", "abcdef1234"));
        assert!(names("ABCDEF1", "abcdef1234"));
        assert!(!names("abcdef", "abcdef1234"));
        assert!(!names("abcdef12345", "abcdef1234"));
        // Not a char boundary: no panic, no match.
        assert!(!names("abcdefg", "abcdefé12345"));
    }

    #[test]
    fn a_rollback_fails_every_deployment_since_the_sha_it_restores() {
        let d = [
            dep(1, "a", 1),
            dep(2, "b", 2),
            dep(3, "c", 3),
            dep(4, "a", 4),
        ];
        let c: BTreeMap<u64, Compared> = [
            (2, cmp("ahead", &[("b", 1)])),
            (3, cmp("ahead", &[("c", 2)])),
            (4, cmp("behind", &[])),
        ]
        .into();
        let k = inputs(&d, &c, &[], &[]).keys();
        assert_eq!(k.failed, vec!["2", "3"]);
        // Both recover at deployment 4 (4 h 10 m − 2 h 10 m, and − 3 h 10 m).
        assert_eq!(
            k.recovery_time,
            vec![(7200.0, "2".to_string()), (3600.0, "3".to_string())]
        );
        // 2 and 3 shipped one commit each, committed 1 h 10 m before; 1 is first; 4 rolls back.
        assert_eq!(
            k.lead_time,
            vec![
                (4200.0, format!("2:{}", "b".repeat(40))),
                (4200.0, format!("3:{}", "c".repeat(40)))
            ]
        );
    }

    #[test]
    fn an_incident_is_pinned_only_to_a_recent_latest_deployment() {
        let d = [dep(1, "a", 1), dep(2, "b", 2)];
        let c: BTreeMap<u64, Compared> = [(2, cmp("ahead", &[("b", 1)]))].into();
        // 30 h after deployment 2: outside 24 h, attributed to nobody.
        let late = [t(32)];
        assert!(inputs(&d, &c, &[], &late).keys().failed.is_empty());
        // 1 h 50 m after deployment 1 but deployment 2 came since: 2 is the latest, 0 h 50 m.
        let soon = [t(3)];
        assert_eq!(inputs(&d, &c, &[], &soon).keys().failed, vec!["2"]);
    }

    #[test]
    fn a_revert_of_a_commit_shipped_in_the_same_deployment_does_not_fail_it() {
        let d = [dep(1, "a", 1), dep(2, "b", 5)];
        let c: BTreeMap<u64, Compared> = [(2, cmp("ahead", &[("b", 1), ("e", 2)]))].into();
        let landed = [Landed {
            sha: "e".repeat(40),
            date: Some(t(2)),
            hotfix: false,
            reverts: vec!["b".repeat(7)],
        }];
        assert!(inputs(&d, &c, &landed, &[]).keys().failed.is_empty());
        let later = [Landed {
            sha: "f".repeat(40),
            date: Some(t(6)),
            hotfix: false,
            reverts: vec!["b".repeat(7)],
        }];
        assert_eq!(inputs(&d, &c, &later, &[]).keys().failed, vec!["2"]);
    }
}
