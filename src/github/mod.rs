//! The GitHub REST API client, and nothing about collectors.
//!
//! [`client`] talks to the API (auth, rate limits, conditional requests, replay and recording);
//! [`models`] holds the response shapes; [`app_auth`] mints GitHub App tokens. What the
//! `github_*` collectors share on top of it (common options, the per-repository loop, windows,
//! self-metrics) lives with them in [`crate::collectors::github`].

pub mod app_auth;
pub mod client;
pub mod models;
