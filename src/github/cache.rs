//! Conditional requests: the validators (`ETag`, `Last-Modified`) of earlier responses and the
//! per-page cache of listings the collectors keep in the state store, so an unchanged page costs
//! a 304 and no primary rate limit.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Stored validators of an earlier response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    pub(super) fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The answer to a (conditional) GET.
#[derive(Debug)]
pub enum Fetched {
    NotModified,
    Fresh {
        body: Bytes,
        validators: Validators,
        /// The `rel="next"` page as a request key, when there is one.
        next: Option<String>,
    },
}

/// One page of a listing as stored between runs: its validators, its next page and the items
/// the collector derived from it (never the raw body: GitHub's objects are large).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedPage {
    #[serde(default)]
    pub validators: Validators,
    #[serde(default)]
    pub next: Option<String>,
    pub items: serde_json::Value,
}

/// Per-page cache of conditional listings, kept in the state store by the collectors. Pages not
/// used in a run are dropped when it is saved, so the cache never outgrows one run's listings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PageCache {
    #[serde(default)]
    pub pages: BTreeMap<String, CachedPage>,
    #[serde(skip)]
    pub(super) touched: BTreeSet<String>,
}

impl PageCache {
    /// Take the page `key` (if cached) out into a cache of its own, so one listing can be read
    /// concurrently with others; [`absorb`](Self::absorb) puts it back.
    pub fn split_off(&mut self, key: &str) -> PageCache {
        let mut own = PageCache::default();
        if let Some(page) = self.pages.remove(key) {
            own.pages.insert(key.to_string(), page);
        }
        own
    }

    /// Put back what a cache of its own holds: its pages, and which of them were read.
    pub fn absorb(&mut self, other: PageCache) {
        self.touched.extend(other.touched);
        self.pages.extend(other.pages);
    }

    /// Drop the pages this run did not read.
    pub fn retain_touched(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        self.pages.retain(|k, _| touched.contains(k));
    }
}
