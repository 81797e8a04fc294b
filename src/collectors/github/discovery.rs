//! Which repositories a `github_*` collector covers: the ones its `repos` names, and every
//! repository of an organisation (`org:<org>`) or of the GitHub App installation
//! (`installation`) that passes its filters.
//!
//! An organisation is listed every run, each page conditional on its `ETag`, so an unchanged
//! organisation costs 304s and no rate limit, a repository added is covered on the next run and
//! one archived or removed stops being covered (its rows leave the matrix: see
//! docs/organisation.md). The pages are kept in the state store; when GitHub cannot be read,
//! the last listing stands in, and the run says so and retires nothing.
//!
//! Filters apply to discovered repositories only (a repository `repos` names is always covered):
//! archived, disabled, empty (no commits) and forked repositories are skipped unless
//! `include_archived` / `include_empty` / `include_forks` say otherwise (a disabled one cannot be
//! read at all); `topics` keeps those with at least one of the topics; `include` and `exclude`
//! are globs (`*`, `?`, without case) on `owner/name`, or on the name alone for a pattern with no
//! `/`. Last, `--shard K/N` keeps this job's share ([`crate::github::shard`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Repo;
use crate::collectors::{BuildError, CollectContext};
use crate::github::cache::PageCache;
use crate::github::client::{GithubClient, decode};
use crate::github::error::GithubError;
use crate::github::models::{InstallationReposPage, ListedRepo};
use crate::github::shard::Shard;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub include_forks: bool,
    #[serde(default)]
    pub include_archived: bool,
    #[serde(default)]
    pub include_empty: bool,
}

/// One entry of `repos`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Named(Repo),
    Org(String),
    Installation,
}

/// What `repos` asks for, and the filters of what is discovered.
#[derive(Debug)]
pub struct RepoSet {
    entries: Vec<Entry>,
    filters: Filters,
}

/// This run's repositories.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// In name order, this shard's only.
    pub repos: Vec<Repo>,
    /// Every listing was answered by GitHub this run (fresh or 304): a repository missing from
    /// it is gone. False when a cached listing stood in.
    pub settled: bool,
    /// Discovered repositories left out by a filter, by why.
    pub skipped: BTreeMap<&'static str, usize>,
    /// Repositories of the other shards.
    pub other_shards: usize,
}

impl RepoSet {
    /// Parse `repos` entries and the filter options.
    pub fn parse(names: &[String], filters: Filters) -> Result<RepoSet, BuildError> {
        let mut entries = Vec::new();
        for name in names {
            let t = name.trim();
            let entry = if let Some(org) = t.strip_prefix("org:") {
                let org = org.trim();
                if org.is_empty()
                    || !org
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(BuildError::at(
                        "repos",
                        format!("{name:?}: expected org:<organisation>"),
                    ));
                }
                Entry::Org(org.to_string())
            } else if t == "installation" {
                Entry::Installation
            } else {
                Entry::Named(Repo::parse(t).map_err(|e| {
                    BuildError::at(
                        "repos",
                        format!(
                            "{e}; or org:<organisation>, or installation (every repository of the GitHub App installation)"
                        ),
                    )
                })?)
            };
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        for pattern in filters.include.iter().chain(&filters.exclude) {
            if pattern.trim().is_empty() {
                return Err(BuildError::at("include", "an empty pattern"));
            }
        }
        let set = RepoSet { entries, filters };
        let filtering = !set.filters.topics.is_empty()
            || !set.filters.include.is_empty()
            || !set.filters.exclude.is_empty()
            || set.filters.include_forks
            || set.filters.include_archived
            || set.filters.include_empty;
        if filtering && !set.discovers() {
            return Err(BuildError::new(
                "topics, include, exclude and include_* filter discovered repositories: add org:<organisation> or installation to `repos`",
            ));
        }
        Ok(set)
    }

    /// Whether a listing is read (an organisation or the installation).
    pub fn discovers(&self) -> bool {
        self.entries.iter().any(|e| !matches!(e, Entry::Named(_)))
    }

    /// The repositories named outright.
    pub fn named(&self) -> Vec<Repo> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Named(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether rows are made per repository: an organisation, or more than one repository.
    pub fn per_repo(&self) -> bool {
        self.discovers() || self.entries.len() > 1
    }

    /// This run's repositories (see the module docs). `state_prefix` is where the listing pages
    /// are kept (`github/<collector>`).
    pub async fn resolve(
        &self,
        ctx: &CollectContext,
        client: &GithubClient,
        state_prefix: &str,
        shard: Shard,
    ) -> anyhow::Result<Resolved> {
        let mut out = Resolved {
            settled: true,
            ..Resolved::default()
        };
        let mut all: BTreeMap<String, Repo> = BTreeMap::new();
        for entry in &self.entries {
            let listed = match entry {
                Entry::Named(r) => {
                    all.insert(r.full.to_ascii_lowercase(), r.clone());
                    continue;
                }
                Entry::Org(org) => {
                    let key = format!("{state_prefix}/discovery/org-{org}.json");
                    self.list(ctx, client, &key, ListingOf::Org(org)).await?
                }
                Entry::Installation => {
                    let key = format!("{state_prefix}/discovery/installation.json");
                    self.list(ctx, client, &key, ListingOf::Installation)
                        .await?
                }
            };
            out.settled &= listed.settled;
            for r in listed.repos {
                match self.skip_reason(&r) {
                    Some(why) => *out.skipped.entry(why).or_default() += 1,
                    None => {
                        if let Ok(repo) = Repo::parse(&r.full_name) {
                            all.entry(repo.full.to_ascii_lowercase()).or_insert(repo);
                        }
                    }
                }
            }
        }
        for repo in all.into_values() {
            if shard.owns(&repo.full) {
                out.repos.push(repo);
            } else {
                out.other_shards += 1;
            }
        }
        Ok(out)
    }

    /// Why a discovered repository is left out, if it is.
    fn skip_reason(&self, r: &ListedRepo) -> Option<&'static str> {
        let f = &self.filters;
        if r.disabled {
            return Some("disabled");
        }
        if r.archived && !f.include_archived {
            return Some("archived");
        }
        if r.fork && !f.include_forks {
            return Some("fork");
        }
        if r.size == 0 && !f.include_empty {
            return Some("empty");
        }
        if !f.topics.is_empty()
            && !r
                .topics
                .iter()
                .any(|t| f.topics.iter().any(|w| w.eq_ignore_ascii_case(t)))
        {
            return Some("topics");
        }
        if !f.include.is_empty() && !f.include.iter().any(|p| repo_glob(p, &r.full_name)) {
            return Some("include");
        }
        if f.exclude.iter().any(|p| repo_glob(p, &r.full_name)) {
            return Some("exclude");
        }
        None
    }

    /// One listing, conditional page by page; the cached pages stand in when GitHub cannot be
    /// read (not settled), and an organisation that is a user account is listed as one.
    async fn list(
        &self,
        ctx: &CollectContext,
        client: &GithubClient,
        key: &str,
        of: ListingOf<'_>,
    ) -> anyhow::Result<Listing> {
        let mut cache: PageCache = ctx.state.get_json(key).await?.unwrap_or_default();
        let mut first = of.first();
        let mut answer = list_repos(client, &mut cache, first.clone(), &of).await;
        if let (ListingOf::Org(user), Err(GithubError::Status { status: 404, .. })) = (&of, &answer)
        {
            first = format!("/users/{user}/repos?type=owner&per_page=100");
            answer = list_repos(client, &mut cache, first.clone(), &of).await;
        }
        match answer {
            Ok(repos) => {
                cache.retain_touched();
                super::save_state(ctx, key, &cache).await?;
                Ok(Listing {
                    repos,
                    settled: true,
                })
            }
            Err(e) => match cached_listing(&cache, &of) {
                Some(repos) => {
                    tracing::warn!(
                        "{}: cannot list the repositories ({e}); using the last listing ({} repositories), retiring none",
                        of.describe(),
                        repos.len()
                    );
                    Ok(Listing {
                        repos,
                        settled: false,
                    })
                }
                None => Err(anyhow::anyhow!(
                    "{}: cannot list the repositories: {e}",
                    of.describe()
                )),
            },
        }
    }
}

/// What one listing gave.
struct Listing {
    repos: Vec<ListedRepo>,
    settled: bool,
}

enum ListingOf<'a> {
    Org(&'a str),
    Installation,
}

impl ListingOf<'_> {
    fn first(&self) -> String {
        match self {
            ListingOf::Org(org) => format!("/orgs/{org}/repos?type=all&per_page=100"),
            ListingOf::Installation => "/installation/repositories?per_page=100".into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            ListingOf::Org(org) => format!("org:{org}"),
            ListingOf::Installation => "the GitHub App installation".into(),
        }
    }
}

async fn list_repos(
    client: &GithubClient,
    cache: &mut PageCache,
    first: String,
    of: &ListingOf<'_>,
) -> Result<Vec<ListedRepo>, GithubError> {
    let installation = matches!(of, ListingOf::Installation);
    client
        .list(
            cache,
            first,
            move |k, body| {
                if installation {
                    let page: InstallationReposPage = decode(k, body)?;
                    Ok(page.repositories)
                } else {
                    decode(k, body)
                }
            },
            |_| false,
        )
        .await
}

/// The last listing, from the cached pages along their `next` links (either first page).
fn cached_listing(cache: &PageCache, of: &ListingOf<'_>) -> Option<Vec<ListedRepo>> {
    let starts = match of {
        ListingOf::Org(user) => vec![
            of.first(),
            format!("/users/{user}/repos?type=owner&per_page=100"),
        ],
        ListingOf::Installation => vec![of.first()],
    };
    let start = starts.into_iter().find(|k| cache.pages.contains_key(k))?;
    let mut out = Vec::new();
    let mut key = Some(start);
    let mut seen = std::collections::BTreeSet::new();
    while let Some(k) = key.take() {
        if !seen.insert(k.clone()) {
            break;
        }
        let page = cache.pages.get(&k)?;
        let items: Vec<ListedRepo> = serde_json::from_value(page.items.clone()).ok()?;
        out.extend(items);
        key = page.next.clone();
    }
    Some(out)
}

/// Whether `pattern` (`*`, `?`, without case) matches `owner/name`, or the name alone when the
/// pattern has no `/`.
pub fn repo_glob(pattern: &str, full_name: &str) -> bool {
    let subject = if pattern.contains('/') {
        full_name
    } else {
        full_name.rsplit('/').next().unwrap_or(full_name)
    };
    let p: Vec<char> = pattern.trim().to_lowercase().chars().collect();
    let s: Vec<char> = subject.to_lowercase().chars().collect();
    // Iterative wildcard match with one backtrack point: linear in practice, no recursion.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == '?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str) -> ListedRepo {
        ListedRepo {
            full_name: name.into(),
            archived: false,
            disabled: false,
            fork: false,
            size: 10,
            topics: vec!["ml".into()],
            default_branch: Some("main".into()),
        }
    }

    #[test]
    fn globs_match_names_and_full_names() {
        assert!(repo_glob("svc-*", "acme/svc-api"));
        assert!(!repo_glob("svc-*", "acme/web"));
        assert!(repo_glob("acme/*", "Acme/Web"));
        assert!(repo_glob("*-sandbox", "acme/team-sandbox"));
        assert!(repo_glob("a?c", "x/abc"));
        assert!(!repo_glob("a?c", "x/abbc"));
        assert!(repo_glob("*", "x/anything"));
        assert!(repo_glob("*a*b*c*", "x/aXbYc"));
        assert!(!repo_glob("*a*b*c*", "x/aXcYb"));
    }

    #[test]
    fn default_filters_skip_archived_disabled_empty_and_forks() {
        let set = RepoSet::parse(&["org:acme".into()], Filters::default()).expect("parse");
        let mut r = listed("acme/a");
        assert_eq!(set.skip_reason(&r), None);
        r.archived = true;
        assert_eq!(set.skip_reason(&r), Some("archived"));
        r = listed("acme/a");
        r.fork = true;
        assert_eq!(set.skip_reason(&r), Some("fork"));
        r = listed("acme/a");
        r.size = 0;
        assert_eq!(set.skip_reason(&r), Some("empty"));
        r = listed("acme/a");
        r.disabled = true;
        assert_eq!(set.skip_reason(&r), Some("disabled"));
    }

    #[test]
    fn topics_include_and_exclude() {
        let filters = Filters {
            topics: vec!["ML".into()],
            include: vec!["svc-*".into()],
            exclude: vec!["*-legacy".into()],
            ..Filters::default()
        };
        let set = RepoSet::parse(&["org:acme".into()], filters).expect("parse");
        assert_eq!(set.skip_reason(&listed("acme/svc-a")), None);
        assert_eq!(set.skip_reason(&listed("acme/web")), Some("include"));
        assert_eq!(set.skip_reason(&listed("acme/svc-legacy")), Some("exclude"));
        let mut r = listed("acme/svc-b");
        r.topics = vec!["web".into()];
        assert_eq!(set.skip_reason(&r), Some("topics"));
    }

    #[test]
    fn entries_parse_and_filters_need_discovery() {
        let set = RepoSet::parse(
            &["acme/a".into(), "org:acme".into(), "installation".into()],
            Filters::default(),
        )
        .expect("parse");
        assert!(set.discovers() && set.per_repo());
        assert_eq!(set.named().len(), 1);
        let one = RepoSet::parse(&["acme/a".into()], Filters::default()).expect("parse");
        assert!(!one.per_repo());
        let e = RepoSet::parse(
            &["acme/a".into()],
            Filters {
                topics: vec!["x".into()],
                ..Filters::default()
            },
        )
        .unwrap_err();
        assert!(e.message.contains("org:"), "{e}");
        let e = RepoSet::parse(&["org:".into()], Filters::default()).unwrap_err();
        assert!(e.message.contains("org:<organisation>"), "{e}");
        let e = RepoSet::parse(&["acme".into()], Filters::default()).unwrap_err();
        assert!(e.message.contains("installation"), "{e}");
    }
}
