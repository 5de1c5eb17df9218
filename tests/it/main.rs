//! The integration tests, one test binary: each module was a test file of its own, and every
//! module that needs a daemon, a simulated tenant or a client gets it from [`harness`].
//!
//! `cargo test --test it MODULE::` runs one module, e.g. `cargo test --test it failure_wecom::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod harness;

mod callbacks;
mod cli_output;
mod department_anomalies;
mod diff_golden;
mod diff_streamed;
mod docs;
mod failure_crash;
mod failure_data;
mod failure_guard;
mod failure_local;
mod failure_runs;
mod failure_wecom;
mod http_api;
mod login;
mod matching;
mod matching_lookups;
mod newcomer;
mod pipeline;
mod pull_dump;
mod read_api;
mod service_logs;
mod service_notify;
mod service_socket_access;
mod service_status;
mod simulator_api;
mod simulator_cli;
mod simulator_faults;
mod simulator_login;
mod sinks_nats;
mod sinks_webhook;
mod socket_bind;
mod socket_daemon;
mod socket_server;
mod socket_trust;
mod store;
mod store_identity;
mod systemd_units;
