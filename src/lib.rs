//! orgsync mirrors a WeCom contact directory into SQLite and publishes every change as a
//! CloudEvents JSON line on a Unix socket.

pub mod model;
pub mod simulator;
