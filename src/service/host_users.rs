//! The writes a host application makes, both admin only, each committed with its link events:
//! its users (`host_users.put`), re-matched at once, and login links (`link.put`).

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use super::ServiceError;
use crate::events::EventSource;
use crate::matching::apply::{link, put_host_users, LinkError, PutError};
use crate::model::host_user::{HostUser, Method};
use crate::store::{event_log, Store, StoreError};

/// What `host_users.put` answers: counts over the whole host-user set after the put.
#[derive(Debug, Clone, Serialize)]
pub struct PutSummary {
    pub linked: usize,
    pub ambiguous: usize,
    pub unmatched: usize,
    pub links_created: usize,
    pub links_removed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The request itself is wrong (a user given twice, a bad user); nothing was applied.
    #[error("{0}; nothing was applied")]
    Bad(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> WriteError {
        WriteError::Service(ServiceError::Store(error))
    }
}

/// The host users of a request's `users` array; a bad one is named by its index.
pub fn parse_users(items: &[Value]) -> Result<Vec<HostUser>, (usize, String)> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| HostUser::from_json(item).map_err(|e| (index, e.to_string())))
        .collect()
}

/// Writes the host users (with `replace`, they are the whole set) and re-matches, in one
/// transaction with the link events; returns the summary and the event head after it.
pub fn put(
    store: &mut Store,
    source: &EventSource,
    by: &str,
    users: &[HostUser],
    replace: bool,
) -> Result<(PutSummary, i64), WriteError> {
    let now = Utc::now();
    let (_, changes) = store
        .try_write(|tx| put_host_users(tx, source, by, users, replace, now))
        .map_err(|e| match e {
            PutError::Store(e) => WriteError::from(e),
            duplicate @ PutError::Duplicate { .. } => WriteError::Bad(duplicate.to_string()),
        })?;
    let counts = changes.assessment.host_users;
    let summary = PutSummary {
        linked: counts.linked,
        ambiguous: counts.ambiguous,
        unmatched: counts.unmatched,
        links_created: changes.created.len(),
        links_removed: changes.removed.len(),
    };
    Ok((summary, event_log::head(store.conn())?))
}

/// A login link to record (`link.put`, method `login`): the host user proved both identities.
pub struct LoginLink {
    pub host_user_id: String,
    pub userid: String,
}

impl LoginLink {
    /// Records it, as done by `by`; the event head after it.
    pub fn record(
        &self,
        store: &mut Store,
        source: &EventSource,
        by: &str,
    ) -> Result<i64, WriteError> {
        let now = Utc::now();
        store
            .try_write(|tx| {
                link(
                    tx,
                    source,
                    by,
                    &self.host_user_id,
                    &self.userid,
                    Method::Login,
                    now,
                )
            })
            .map_err(|e| match e {
                LinkError::Store(e) => WriteError::from(e),
                unknown => WriteError::Service(ServiceError::NotFound(unknown.to_string())),
            })?;
        Ok(event_log::head(store.conn())?)
    }
}
