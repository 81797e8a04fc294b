//! The run listing: one UTC day per slice, hour by hour past the 1,000-result cap, each page
//! conditional on its `ETag`; and merging what was listed into the stored runs.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;

use super::ActionsCollector;
use super::records::{ActionsState, RunRecord};
use crate::collectors::github::{Repo, day_floor};
use crate::github::cache::PageCache;
use crate::github::client::{GithubClient, decode};
use crate::github::models::{Run, RunsPage};

/// GitHub returns at most this many results for a filtered run listing.
const LISTING_CAP: usize = 1000;

fn fmt_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl ActionsCollector {
    fn slice_key(&self, repo: &Repo, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        let branch = self.source.branch_param();
        format!(
            "/repos/{}/actions/runs?branch={branch}&created={}..{}&per_page=100",
            repo.full,
            fmt_ts(from),
            fmt_ts(to)
        )
    }

    /// List slices `(from, to)` concurrently, each with its own page cache.
    async fn list_slices(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
        slices: Vec<(DateTime<Utc>, DateTime<Utc>)>,
        fresh: &mut BTreeMap<String, PageCache>,
    ) -> anyhow::Result<Vec<(DateTime<Utc>, Vec<Run>)>> {
        let limit = self.source.settings.policy.max_concurrency;
        let jobs = slices.into_iter().map(|(from, to)| {
            let name = fmt_ts(from);
            let mut cache = state.slices.remove(&name).unwrap_or_default();
            let key = self.slice_key(repo, from, to);
            async move {
                let runs = client
                    .list(
                        &mut cache,
                        key,
                        |k, body| {
                            let page: RunsPage = decode(k, body)?;
                            Ok(page.workflow_runs)
                        },
                        |_| false,
                    )
                    .await;
                cache.retain_touched();
                (from, name, cache, runs)
            }
        });
        let mut results = futures::stream::iter(jobs).buffer_unordered(limit);
        let mut out = Vec::new();
        let mut failure = None;
        while let Some((from, name, cache, runs)) = results.next().await {
            fresh.insert(name, cache);
            match runs {
                Ok(r) => out.push((from, r)),
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// Every run of the branch created in the window's days, day slice by day slice.
    pub(super) async fn list_runs(
        &self,
        client: &GithubClient,
        repo: &Repo,
        state: &mut ActionsState,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Run>> {
        let day = TimeDelta::days(1);
        let second = TimeDelta::seconds(1);
        let mut days = Vec::new();
        let mut d = day_floor(window_start);
        while d <= now {
            days.push(d);
            d += day;
        }
        let label = |d: DateTime<Utc>| d.format("%Y-%m-%d").to_string();
        let first_day = days.first().map(|d| label(*d)).unwrap_or_default();
        state.split_days.retain(|d| *d >= first_day);
        let mut fresh = BTreeMap::new();
        let whole: Vec<_> = days
            .iter()
            .filter(|d| !state.split_days.contains(&label(**d)))
            .map(|d| (*d, *d + day - second))
            .collect();
        let mut runs = Vec::new();
        let mut split: Vec<DateTime<Utc>> = days
            .iter()
            .filter(|d| state.split_days.contains(&label(**d)))
            .copied()
            .collect();
        for (from, listed) in self
            .list_slices(client, repo, state, whole, &mut fresh)
            .await?
        {
            if listed.len() >= LISTING_CAP {
                tracing::info!(
                    "collector {}: {}: {} has at least {LISTING_CAP} runs on {}; listing it hour by hour",
                    self.source.instance,
                    repo.full,
                    label(from),
                    self.source.branch
                );
                state.split_days.insert(label(from));
                fresh.remove(&fmt_ts(from));
                split.push(from);
            } else {
                runs.extend(listed);
            }
        }
        let hours: Vec<_> = split
            .iter()
            .flat_map(|d| {
                (0..24).map(move |h| {
                    let from = *d + TimeDelta::hours(h);
                    (from, from + TimeDelta::hours(1) - second)
                })
            })
            .collect();
        for (from, listed) in self
            .list_slices(client, repo, state, hours, &mut fresh)
            .await?
        {
            if listed.len() >= LISTING_CAP {
                tracing::warn!(
                    "collector {}: {}: the hour from {} has {LISTING_CAP} runs or more; GitHub lists no more, later ones are missed",
                    self.source.instance,
                    repo.full,
                    fmt_ts(from)
                );
            }
            runs.extend(listed);
        }
        // Slices not listed this run (out of the window) are dropped with their pages.
        state.slices = fresh;
        Ok(runs)
    }

    /// Whether a listed run is a run of the repository itself on the branch, for a counted event.
    fn on_branch(&self, run: &Run, repo: &Repo) -> bool {
        let own = run
            .head_repository
            .as_ref()
            .and_then(|r| r.full_name.as_deref())
            .is_none_or(|n| n.eq_ignore_ascii_case(&repo.full));
        let event = run
            .event
            .as_deref()
            .is_none_or(|e| self.events.iter().any(|x| x == e));
        own && event && run.head_branch.as_deref() == Some(self.source.branch.as_str())
    }

    /// Replace the stored runs with those listed, keeping what was derived for unchanged ones.
    pub(super) fn merge_runs(
        &self,
        repo: &Repo,
        state: &mut ActionsState,
        listed: &[Run],
        window_start: DateTime<Utc>,
    ) {
        let mut seen = BTreeSet::new();
        for run in listed {
            if run.created_at < window_start || !self.on_branch(run, repo) {
                continue;
            }
            seen.insert(run.id);
            match state.runs.get_mut(&run.id) {
                Some(r) => r.update(run),
                None => {
                    state.runs.insert(run.id, RunRecord::from_run(run));
                }
            }
        }
        state.runs.retain(|id, _| seen.contains(id));
    }
}
