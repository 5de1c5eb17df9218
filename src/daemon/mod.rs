//! `orgsync run`: the long-running daemon.

pub mod queue;
