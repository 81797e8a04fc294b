//! The `github_*` collectors, one file each, and what they share.
//!
//! [`actions`], [`commits`], [`pulls`], [`issues`] and [`deployments`] each read one kind of GitHub data. This
//! module owns what they have in common: the options every `github_*` collector accepts
//! ([`COMMON_KEYS`]), how they resolve (environment first, as GitHub Actions names them:
//! `GITHUB_API_URL`, `GITHUB_REPOSITORY`, `GITHUB_TOKEN`), the per-repository loop
//! ([`GithubSource`]: repositories are collected concurrently, each under `repo_timeout`, and one
//! that fails or stays unreachable only loses its own observations), the rolling windows, the
//! observation helpers that give each sample or counted event its id, and the self-metrics
//! ([`SELF_METRICS`]) every one of them reports. Talking to the API (auth, rate limits,
//! conditional requests, replay, response shapes) is [`crate::github`]'s job.

pub mod actions;
pub mod commits;
pub mod deployments;
pub mod discovery;
pub mod issues;
pub mod pulls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::Deserialize;

use super::{BuildContext, BuildError, CollectContext, CollectError, Coverage};
use crate::duration::parse_duration;
use crate::github::app_auth;
use crate::github::budget::BudgetSettings;
use crate::github::client::{Auth, Base, GithubClient, Settings, Stats, stop_requests_at};
use crate::github::error::GithubError;
use crate::github::rate_limit::Policy;
use crate::github::replay::Replay;
use crate::observation::{SelfMetric, SelfMetricDecl};
pub use discovery::{Filters, RepoSet};

/// The self-metrics every GitHub collector reports, in the order [`GithubSource::self_metrics`]
/// fills them; the collectors' registry entries declare this list for the dashboard.
pub const SELF_METRICS: &[SelfMetricDecl] = &[
    SelfMetricDecl::new("github.requests").chart(COST_CHART),
    SelfMetricDecl::new("github.not_modified").chart(COST_CHART),
    SelfMetricDecl::new("github.primary_cost").chart(COST_CHART),
    SelfMetricDecl::new("github.retries").chart(COST_CHART),
    SelfMetricDecl::new("github.repos_failed").chart(COST_CHART),
    // Known only when GitHub answered with rate-limit headers (not when replaying).
    SelfMetricDecl::new("github.rate_limit.remaining")
        .sometimes()
        .chart_lowest("GitHub rate limit remaining"),
    SelfMetricDecl::new("github.repos").chart(BACKFILL_CHART),
    SelfMetricDecl::new("github.repos_backfilling").chart(BACKFILL_CHART),
    // The share of the covered repositories whose collection is whole (1 once backfilled).
    SelfMetricDecl::new("github.backfill.progress")
        .sometimes()
        .chart_lowest("GitHub backfill progress"),
];

const BACKFILL_CHART: &str = "GitHub repositories covered and backfilling";

const COST_CHART: &str = "GitHub API cost per run";
use crate::observation::{Observation, UnknownReason};
use crate::secret::Secret;

/// The public API when neither `GITHUB_API_URL` nor `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Option keys shared by every `github_*` collector (the rest of its table is its own).
pub const COMMON_KEYS: &[&str] = &[
    "repo",
    "repos",
    "branch",
    "api_url",
    "token_env",
    "app_id",
    "private_key_path",
    "installation_id",
    "max_concurrency",
    "min_secondary_wait",
    "retry_base",
    "max_retries",
    "max_rate_limit_wait",
    "repo_timeout",
    "record_to",
    "rate_limit_reserve",
    "max_in_flight",
    "max_requests_per_minute",
    "topics",
    "include",
    "exclude",
    "include_forks",
    "include_archived",
    "include_empty",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonOptions {
    #[serde(default)]
    repo: Option<String>,
    #[serde(default)]
    repos: Vec<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    app_id: Option<u64>,
    #[serde(default)]
    private_key_path: Option<String>,
    #[serde(default)]
    installation_id: Option<u64>,
    #[serde(default)]
    max_concurrency: Option<usize>,
    #[serde(default)]
    min_secondary_wait: Option<String>,
    #[serde(default)]
    retry_base: Option<String>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    max_rate_limit_wait: Option<String>,
    #[serde(default)]
    repo_timeout: Option<String>,
    #[serde(default)]
    record_to: Option<String>,
    #[serde(default)]
    rate_limit_reserve: Option<f64>,
    #[serde(default)]
    max_in_flight: Option<usize>,
    #[serde(default)]
    max_requests_per_minute: Option<u32>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    include_forks: bool,
    #[serde(default)]
    include_archived: bool,
    #[serde(default)]
    include_empty: bool,
}

/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Repo {
    pub full: String,
}

impl Repo {
    pub fn parse(text: &str) -> Result<Repo, String> {
        let t = text.trim();
        let ok = t.split('/').count() == 2
            && t.split('/').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            });
        if ok {
            Ok(Repo {
                full: t.to_string(),
            })
        } else {
            Err(format!(
                "{text:?} is not a repository (expected owner/name)"
            ))
        }
    }
}

/// What a `github_*` collector was built with: repositories, branch, client settings.
pub struct GithubSource {
    pub instance: String,
    /// The repositories `repos` names, organisations and installation it discovers.
    pub repos: RepoSet,
    pub branch: String,
    pub settings: Arc<Settings>,
    pub repo_timeout: Duration,
    last: std::sync::Mutex<Option<LastCollection>>,
}

/// What the last collection covered and cost.
#[derive(Debug, Clone)]
struct LastCollection {
    stats: Stats,
    failed: usize,
    backfilling: usize,
    coverage: Coverage,
}

fn duration_opt(v: &Option<String>, key: &str, default: Duration) -> Result<Duration, BuildError> {
    match v {
        Some(s) => parse_duration(s).map_err(|e| BuildError::at(key, e)),
        None => Ok(default),
    }
}

impl GithubSource {
    /// Validate the common options; returns the collector's own options (the other keys).
    /// [`build`](Self::build), then the collector's own options (the keys that are not common)
    /// into `T`, refusing unknown ones.
    pub fn build_with<T: serde::de::DeserializeOwned>(
        ctx: &BuildContext,
    ) -> Result<(GithubSource, T), BuildError> {
        let (source, rest) = Self::build(ctx)?;
        let own = toml::Value::Table(rest)
            .try_into()
            .map_err(|e: toml::de::Error| BuildError::options(&e))?;
        Ok((source, own))
    }

    pub fn build(ctx: &BuildContext) -> Result<(GithubSource, toml::Table), BuildError> {
        let mut common = toml::Table::new();
        let mut rest = toml::Table::new();
        for (k, v) in &ctx.options {
            if COMMON_KEYS.contains(&k.as_str()) {
                common.insert(k.clone(), v.clone());
            } else {
                rest.insert(k.clone(), v.clone());
            }
        }
        let opts: CommonOptions = toml::Value::Table(common)
            .try_into()
            .map_err(|e: toml::de::Error| BuildError::options(&e))?;
        let env = |name: &str| std::env::var(name).ok().filter(|s| !s.trim().is_empty());

        // A `file://` api_url replays a recording of named repositories: it is a fixed input,
        // so the environment of a GitHub Actions runner (GITHUB_API_URL, GITHUB_REPOSITORY) must
        // neither send it to the network nor ask it for another repository.
        let replay = opts
            .api_url
            .as_deref()
            .is_some_and(|u| u.starts_with("file://"));
        let env = |name: &str| {
            if replay && matches!(name, "GITHUB_API_URL" | "GITHUB_REPOSITORY") {
                if std::env::var_os(name).is_some_and(|v| !v.is_empty()) {
                    tracing::debug!(
                        "collector {}: {name} ignored: api_url replays a recording",
                        ctx.name
                    );
                }
                return None;
            }
            env(name)
        };
        let mut names: Vec<String> = opts.repo.into_iter().chain(opts.repos).collect();
        // GITHUB_REPOSITORY (a GitHub Actions runner, or the chart's github.repository) names
        // the repository of a one-repository config; it never replaces an organisation.
        if let Some(r) = env("GITHUB_REPOSITORY")
            && names.len() <= 1
            && !names
                .iter()
                .any(|n| n.starts_with("org:") || n == "installation")
        {
            names = vec![r];
        }
        if names.is_empty() {
            return Err(BuildError::new(
                "no repository: set `repo = \"owner/name\"`, or `repos` (names, org:<organisation>, installation), or GITHUB_REPOSITORY",
            ));
        }
        let repos = RepoSet::parse(
            &names,
            Filters {
                topics: opts.topics,
                include: opts.include,
                exclude: opts.exclude,
                include_forks: opts.include_forks,
                include_archived: opts.include_archived,
                include_empty: opts.include_empty,
            },
        )?;

        let api_url = env("GITHUB_API_URL")
            .or(opts.api_url)
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let base = match api_url.strip_prefix("file://") {
            Some(dir) => {
                let dir: PathBuf = ctx.resolve_path(dir);
                match Replay::load(&dir) {
                    Ok(replay) => Base::Replay(Arc::new(replay)),
                    Err(e) => Base::ReplayUnavailable(format!("api_url: {e}")),
                }
            }
            None => Base::Http(
                crate::net::check_base_url(&api_url).map_err(|e| BuildError::at("api_url", e))?,
            ),
        };

        let auth = match (opts.app_id, opts.private_key_path, opts.installation_id) {
            (Some(app_id), Some(key_path), Some(installation_id)) => {
                let path = ctx.resolve_path(&key_path);
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    BuildError::at(
                        "private_key_path",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let key = app_auth::AppKey::from_pem(app_id, &pem).map_err(|e| {
                    BuildError::at("private_key_path", format!("{}: {e}", path.display()))
                })?;
                Auth::App {
                    key,
                    installation_id,
                }
            }
            (None, None, None) => {
                let vars: Vec<&str> = match &opts.token_env {
                    Some(v) => vec![v.as_str()],
                    None => vec!["GITHUB_TOKEN", "GH_TOKEN"],
                };
                match Secret::from_env(&vars).map_err(BuildError::new)? {
                    Some(t) => Auth::Token(t),
                    None => Auth::None,
                }
            }
            _ => {
                return Err(BuildError::new(
                    "GitHub App auth needs all of `app_id`, `private_key_path` and `installation_id`",
                ));
            }
        };
        if matches!(auth, Auth::None) && matches!(base, Base::Http(_)) {
            tracing::warn!(
                "collector {}: no GitHub token (GITHUB_TOKEN, GH_TOKEN or *_FILE): unauthenticated requests are limited to 60 an hour",
                ctx.name
            );
        }

        let defaults = Policy::default();
        let policy = Policy {
            max_concurrency: opts.max_concurrency.unwrap_or(defaults.max_concurrency),
            min_secondary_wait: duration_opt(
                &opts.min_secondary_wait,
                "min_secondary_wait",
                defaults.min_secondary_wait,
            )?,
            retry_base: duration_opt(&opts.retry_base, "retry_base", defaults.retry_base)?,
            max_retries: opts.max_retries.unwrap_or(defaults.max_retries),
            max_rate_limit_wait: duration_opt(
                &opts.max_rate_limit_wait,
                "max_rate_limit_wait",
                defaults.max_rate_limit_wait,
            )?,
        };
        if policy.max_concurrency == 0 || policy.max_concurrency > 100 {
            return Err(BuildError::at(
                "max_concurrency",
                "must be 1..=100 (GitHub allows 100 concurrent requests)",
            ));
        }
        let defaults = BudgetSettings::default();
        let budget = BudgetSettings {
            reserve: opts.rate_limit_reserve.unwrap_or(defaults.reserve),
            max_in_flight: opts.max_in_flight.unwrap_or(defaults.max_in_flight),
            per_minute: opts.max_requests_per_minute.unwrap_or(defaults.per_minute),
        };
        if !(0.0..1.0).contains(&budget.reserve) {
            return Err(BuildError::at(
                "rate_limit_reserve",
                "must be at least 0 and below 1 (the share of the rate limit left that a run keeps unspent; 0.2 keeps 20 %)",
            ));
        }
        if budget.max_in_flight == 0 || budget.max_in_flight > 100 {
            return Err(BuildError::at(
                "max_in_flight",
                "must be 1..=100 (GitHub allows 100 concurrent requests)",
            ));
        }
        if budget.per_minute == 0 {
            return Err(BuildError::at(
                "max_requests_per_minute",
                "must be at least 1 (GitHub's secondary limit is 900 REST points a minute)",
            ));
        }
        let record_to = opts
            .record_to
            .map(|d| (ctx.resolve_path(&d), ctx.name.to_string()));
        Ok((
            GithubSource {
                instance: ctx.name.to_string(),
                repos,
                branch: opts.branch.unwrap_or_else(|| "main".into()),
                settings: Arc::new(Settings {
                    base,
                    auth,
                    policy,
                    record_to,
                    budget,
                }),
                repo_timeout: duration_opt(
                    &opts.repo_timeout,
                    "repo_timeout",
                    Duration::from_secs(50),
                )?,
                last: std::sync::Mutex::new(None),
            },
            rest,
        ))
    }

    /// The moment windows are computed from: the run's time, or the recording's in replay.
    pub fn now(&self, ctx: &CollectContext) -> DateTime<Utc> {
        match &self.settings.base {
            Base::Replay(r) => r.recorded_at,
            Base::Http(_) | Base::ReplayUnavailable(_) => ctx.now,
        }
    }

    /// The branch, encoded for a query string or a path segment (`release/1.2` →
    /// `release%2F1.2`).
    pub fn branch_param(&self) -> String {
        query_param(&self.branch)
    }

    /// Where this collector keeps `what` for `repo` in the state store.
    pub fn state_key(&self, repo: &Repo, what: &str) -> String {
        format!(
            "github/{}/{}/{what}.json",
            self.instance,
            repo.full.replace('/', "__")
        )
    }

    /// Run `work` for every repository this run covers ([`RepoSet::resolve`]: the named ones
    /// and the discovered ones of this shard), `max_concurrency` repositories at a time in name
    /// order, each under `repo_timeout`. Every client of the run on the same API and credential
    /// spends from one budget ([`crate::github::budget`]).
    ///
    /// A repository that fails loses only its own rows: they are `unknown` (`collector_failed`,
    /// or `backfilling` when the run's request budget ran out before its collection was whole,
    /// which the next runs continue). The collector fails only when every repository failed
    /// for another reason.
    pub async fn collect_each<'a, F>(
        &'a self,
        ctx: &'a CollectContext,
        work: F,
    ) -> Result<Vec<Observation>, CollectError>
    where
        F: Fn(
            Arc<GithubClient>,
            Repo,
            DateTime<Utc>,
        ) -> BoxFuture<'a, anyhow::Result<Vec<Observation>>>,
    {
        if let Base::ReplayUnavailable(why) = &self.settings.base {
            return Err(CollectError::Source(why.clone()));
        }
        let budget = ctx
            .github
            .get(&self.settings.budget_key(), self.settings.budget);
        let client = Arc::new(GithubClient::with_budget(
            ctx.http.clone(),
            self.settings.clone(),
            budget,
        ));
        let now = self.now(ctx);
        if let Base::Replay(r) = &self.settings.base {
            tracing::info!(
                "collector {}: replaying EXAMPLE GitHub data from {} (recorded {}), not live data",
                self.instance,
                r.dir.display(),
                r.recorded_at
            );
        }
        let resolved = self
            .repos
            .resolve(
                ctx,
                &client,
                &format!("github/{}", self.instance),
                ctx.shard,
            )
            .await
            .map_err(|e| CollectError::Source(format!("{e:#}")))?;
        if self.repos.discovers() {
            tracing::info!(
                "collector {}: {} repositories{}{}{}",
                self.instance,
                resolved.repos.len(),
                if ctx.shard.is_all() {
                    String::new()
                } else {
                    format!(
                        " in shard {} ({} in the others)",
                        ctx.shard, resolved.other_shards
                    )
                },
                if resolved.skipped.is_empty() {
                    String::new()
                } else {
                    let parts: Vec<String> = resolved
                        .skipped
                        .iter()
                        .map(|(why, n)| format!("{n} {why}"))
                        .collect();
                    format!("; skipped: {}", parts.join(", "))
                },
                if resolved.settled {
                    ""
                } else {
                    " (from the last listing)"
                }
            );
        }
        let limit = self.settings.policy.max_concurrency;
        let results: Vec<(Repo, anyhow::Result<Vec<Observation>>)> =
            futures::stream::iter(resolved.repos.iter().cloned().map(|repo| {
                let fut = work(client.clone(), repo.clone(), now);
                async move {
                    // At 80 % of the time limit the repository stops sending requests and keeps
                    // what it has (a backfill goes on next run); the hard limit stays for work
                    // that hangs without asking GitHub anything.
                    let soft = tokio::time::Instant::now() + self.repo_timeout.mul_f64(0.8);
                    let fut = stop_requests_at(soft, self.repo_timeout, fut);
                    let r = match tokio::time::timeout(self.repo_timeout, fut).await {
                        Ok(r) => r,
                        Err(_) => Err(anyhow::anyhow!(
                            "timed out after {}",
                            crate::duration::format_duration(self.repo_timeout)
                        )),
                    };
                    (repo, r)
                }
            }))
            .buffered(limit)
            .collect()
            .await;
        let mut out = Vec::new();
        let mut failures = Vec::new();
        let mut backfilling = 0;
        for (repo, r) in results {
            match r {
                Ok(obs) => out.extend(obs),
                Err(e) => {
                    let budget_spent = e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<GithubError>(),
                            Some(GithubError::BudgetSpent { .. } | GithubError::OutOfTime { .. })
                        )
                    });
                    let (why, text) = if budget_spent {
                        backfilling += 1;
                        tracing::warn!(
                            "collector {}: repository {}: {e:#}; the next runs go on (rows unknown: backfilling)",
                            self.instance,
                            repo.full
                        );
                        (
                            UnknownReason::Backfilling,
                            format!(
                                "backfilling: {}'s collection did not fit in this run's GitHub request budget or time; the next runs go on",
                                repo.full
                            ),
                        )
                    } else {
                        tracing::error!(
                            "collector {}: repository {}: {e:#}",
                            self.instance,
                            repo.full
                        );
                        failures.push(format!("{}: {e:#}", repo.full));
                        (
                            UnknownReason::CollectorFailed,
                            format!("repository {}: {e:#}", repo.full),
                        )
                    };
                    out.push(
                        Observation::unavailable(why, text, ctx.now).with_tag("repo", &repo.full),
                    );
                }
            }
        }
        if let Err(e) = client.save_recording(ctx.now) {
            tracing::warn!(
                "collector {}: cannot save the recording: {e}",
                self.instance
            );
        }
        let stats = client.stats();
        let coverage = Coverage {
            units: resolved.repos.iter().map(|r| r.full.clone()).collect(),
            per_unit: self.repos.per_repo(),
            settled: resolved.settled,
            shard: ctx.shard,
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some(LastCollection {
                stats,
                failed: failures.len(),
                backfilling,
                coverage,
            });
        }
        tracing::info!(
            "collector {}: {} GitHub requests, {} answered 304, primary rate-limit cost {}",
            self.instance,
            stats.requests,
            stats.not_modified,
            stats.primary_cost
        );
        if !failures.is_empty() && failures.len() == resolved.repos.len() {
            return Err(CollectError::Source(failures.join("; ")));
        }
        Ok(out)
    }

    /// The repositories the last collection covered, for rows made per repository.
    pub fn coverage(&self) -> Option<Coverage> {
        self.last
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|l| l.coverage.clone()))
    }

    /// The API cost of the last collection, as `github.*` self-metrics (in [`SELF_METRICS`] order).
    pub fn self_metrics(&self) -> Vec<SelfMetric> {
        let Some(last) = self.last.lock().ok().and_then(|l| l.clone()) else {
            return Vec::new();
        };
        let stats = last.stats;
        let repos = last.coverage.units.len();
        let values = [
            Some(stats.requests as f64),
            Some(stats.not_modified as f64),
            Some(stats.primary_cost as f64),
            Some(stats.retries as f64),
            Some(last.failed as f64),
            // Known only when GitHub answered with rate-limit headers (not when replaying).
            stats.rate_limit_remaining.map(|r| r as f64),
            Some(repos as f64),
            Some(last.backfilling as f64),
            (repos > 0).then(|| (repos - last.backfilling) as f64 / repos as f64),
        ];
        SELF_METRICS
            .iter()
            .zip(values)
            .filter_map(|(decl, v)| v.map(|v| decl.value(v)))
            .collect()
    }

    /// The client's cost counters of the last collection (tests and the benchmark read them).
    pub fn last_stats(&self) -> Option<Stats> {
        self.last
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|l| l.stats))
    }
}

/// What a collector keeps per repository between runs, with the version of its shape: an object
/// written by another version is started afresh (a cache, never a source of truth).
pub trait RepoState: Default + serde::de::DeserializeOwned {
    /// The version this build writes.
    const VERSION: u32;
    fn version(&self) -> u32;
    /// An empty state of this version.
    fn fresh() -> Self;
}

impl GithubSource {
    /// `repo`'s state object `what` and its key: the stored one, or a fresh one when there is
    /// none or it has another version.
    pub async fn load_state<T: RepoState>(
        &self,
        ctx: &CollectContext,
        repo: &Repo,
        what: &str,
    ) -> anyhow::Result<(String, T)> {
        let key = self.state_key(repo, what);
        let state: Option<T> = ctx.state.get_json(&key).await?;
        let state = state
            .filter(|s| s.version() == T::VERSION)
            .unwrap_or_else(T::fresh);
        Ok((key, state))
    }
}

/// Save a state object, unless this is a dry run: then nothing is written, so checkpoints and
/// caches never advance.
pub async fn save_state<T: serde::Serialize>(
    ctx: &CollectContext,
    key: &str,
    value: &T,
) -> anyhow::Result<()> {
    if ctx.dry_run {
        return Ok(());
    }
    ctx.state.put_json(key, value).await?;
    Ok(())
}

/// `text` encoded for a query string or a path segment (`/` → `%2F`, space → `+`).
pub fn query_param(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Midnight UTC of `t`'s day: the days-aligned lower bound for `since=` parameters. A URL that
/// stays the same all day keeps answering 304, where `since=<now − 7d>` would change every run
/// and never be cached.
pub fn day_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(86_400), 0).unwrap_or(t)
}

/// Parse a window option (`7d`) with a default.
/// The rolling window every `github_*` collector counts over: `window`, default 7 days.
pub fn window(v: &Option<String>) -> Result<chrono::TimeDelta, BuildError> {
    window_opt(v, "window", Duration::from_secs(7 * 86_400))
}

pub fn window_opt(
    v: &Option<String>,
    key: &str,
    default: Duration,
) -> Result<chrono::TimeDelta, BuildError> {
    let d = duration_opt(v, key, default)?;
    chrono::TimeDelta::from_std(d).map_err(|_| BuildError::at(key, "too long"))
}

/// A [`Value::Samples`](crate::observation::Value) observation with one id per sample, built
/// from `(value, id)` pairs so the two vectors cannot drift apart: the pipeline sends each
/// sample once by its id.
pub fn samples_observation(
    signal: &str,
    pairs: impl IntoIterator<Item = (f64, String)>,
    at: DateTime<Utc>,
) -> Observation {
    let (values, ids): (Vec<f64>, Vec<String>) = pairs.into_iter().unzip();
    Observation::new(signal, crate::observation::Value::Samples(values), at).with_ids(ids)
}

/// A count of events with one id per counted event (the value is the number of ids), so the
/// pipeline can send each event once as a COUNT increment.
pub fn counted_observation(signal: &str, ids: Vec<String>, at: DateTime<Utc>) -> Observation {
    let n = ids.len() as f64;
    Observation::new(signal, crate::observation::Value::Number(n), at).with_ids(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::Value;

    #[test]
    fn samples_and_counts_carry_one_id_each() {
        let at = Utc::now();
        let o = samples_observation(
            "x",
            vec![(1.0, "a".to_string()), (2.0, "b".to_string())],
            at,
        );
        match &o.value {
            Value::Samples(s) => {
                assert_eq!(s, &vec![1.0, 2.0]);
                assert_eq!(o.ids, vec!["a", "b"]);
            }
            v => panic!("{v:?}"),
        }
        let c = counted_observation("y", vec!["pr#1".into(), "abc".into()], at);
        assert_eq!(c.value, Value::Number(2.0));
        assert_eq!(c.ids.len(), 2);
        let empty = counted_observation("z", Vec::new(), at);
        assert_eq!(empty.value, Value::Number(0.0));
    }
}
