//! The WeCom side of orgsync: the API client and the directory pull.
//!
//! [`WecomClient`] owns the HTTP connection pool, the access token and the retry policy;
//! [`pull`] reads the department subtree and every member in it into a
//! [`Snapshot`](crate::model::Snapshot), all or nothing. [`callback`] reads what WeCom pushes:
//! contact-change callbacks, signed and encrypted.

mod call;
pub mod callback;
mod client;
mod errcode;
mod error;
mod gate;
mod in_flight;
mod pull;
mod secret;
mod token;
mod tree;
mod wire;

#[cfg(test)]
mod tests;

pub use call::{Call, ClientStats};
pub use client::{ClientSettings, LoginIdentity, RetryPolicy, WecomClient};
pub use errcode::{ApiError, ErrcodeClass, ErrcodeInfo, MemberRefusal};
pub use error::WecomError;
pub use in_flight::{InFlightLimit, MemberReads};
pub use pull::{departments, pull, Progress, Pull, PullError, PullStats};
pub use secret::Secret;
pub use token::{TokenShelf, REFUSAL_HOLD};
pub use tree::{belongs, Inconsistency, Reach, ALL_VISIBLE};
