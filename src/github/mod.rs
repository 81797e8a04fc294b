//! The GitHub REST API client, and nothing about collectors.
//!
//! [`client`] talks to the API (auth, base URL, pagination, retries, cost accounting) and applies
//! the [`rate_limit`] policy; [`cache`] holds the validators and page cache of conditional
//! requests; [`replay`] the recorded responses a `file://` base answers from; [`error`] why a
//! request failed; [`models`] the response shapes; [`app_auth`] mints GitHub App tokens. What the
//! `github_*` collectors share on top of it (common options, the per-repository loop, windows,
//! self-metrics) lives with them in [`crate::collectors::github`].

pub mod app_auth;
pub mod budget;
pub mod cache;
pub mod client;
pub mod error;
pub mod models;
pub mod rate_limit;
pub mod replay;
pub mod shard;
