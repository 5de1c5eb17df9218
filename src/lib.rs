//! orgsync mirrors a WeCom contact directory into SQLite and publishes every change as a
//! CloudEvents JSON line on a Unix socket.

pub mod callback;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod demo;
pub mod diff;
pub mod dry_run;
pub mod event_reader;
pub mod events;
pub mod guard;
pub mod hashing;
pub mod http;
pub mod logging;
pub mod matching;
pub mod memory;
pub mod model;
pub mod pull_dump;
pub mod queue;
pub mod schedule;
pub mod service;
pub mod shutdown;
pub mod socket;
pub mod status;
pub mod store;
pub mod strict_json;
pub mod sync;
pub mod targeted;
pub mod token_file;
pub mod wecom;
