//! Integration tests, compiled into one binary (one link instead of one per file).
//!
//! Every server these tests talk to is started here on 127.0.0.1 (see `support/`) and stops by
//! itself; nothing else is mocked.

mod answer_caps;
mod board;
mod config_hardening;
mod dashboard;
mod dashboard_push;
mod datadog_delivery;
mod datadog_models;
mod datadog_side;
mod dead_pipeline;
mod deploy_day;
mod deployments;
mod docs;
mod edges;
mod exec_probe;
mod fake_dashboards;
mod file_inputs;
mod foundation;
mod github;
mod helm_chart;
mod http_probe;
mod jobs;
mod ledger;
mod organisation;
mod overlap;
mod parquet_ecosystem;
mod secrets;
mod shutdown;
mod stable_suite;
mod stable_suite_docs;
mod state;
mod support;
mod verify;
mod week;
