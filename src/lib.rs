//! infra-health: watch an engineering organisation's infrastructure and ship a pass/fail health
//! matrix to Datadog.
//!
//! The data flows one way: config → [`collectors`] → [`observation`]s → [`checks`] → metrics
//! built by the [`schema`] → [`sinks`]. The [`state`] store is the only thing kept between runs.
//! Each module owns one step and says why in its own docs; `main.rs` only parses arguments and
//! maps errors to exit codes. The layers, top down: [`cli`] (one file per command) → [`run`] (the
//! pipeline) → collectors, checks, schema, sinks, state → leaf utilities ([`duration`], [`net`],
//! [`secret`]); docs/architecture.md draws them and says where each concept lives.

pub mod board;
pub mod catalog;
pub mod checks;
pub mod cli;
pub mod collectors;
pub mod config;
pub mod dashboard;
pub mod datadog_side;
pub mod duration;
pub mod exit;
pub mod github;
pub mod matrix;
pub mod net;
pub mod observation;
pub mod progress;
pub mod run;
pub mod schema;
pub mod secret;
pub mod shutdown;
pub mod sinks;
pub mod stable_suite;
pub mod state;
pub mod store_url;
pub mod verify;
