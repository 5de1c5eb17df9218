//! The audit trail of links: every link created or removed, when, how, by whom and what it
//! replaced. Unlike the event log it is never pruned: who linked an account to a person must be
//! answerable long after the events are gone.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::rows::{self, from_row};
use super::StoreError;
use crate::model::userid_key;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub at: String,
    /// `created` or `removed`.
    pub action: String,
    pub host_user_id: String,
    pub userid: String,
    pub method: String,
    /// Why a link was removed.
    pub reason: Option<String>,
    /// Who made the change: `run N` (a sync), `cli uid N`, `socket uid N`, `http token NAME`.
    pub by: String,
    /// For a created link, the links the same change removed from its host user or member.
    pub replaced: Option<String>,
}
from_row!(Entry {
    at,
    action,
    host_user_id,
    userid,
    method,
    reason,
    by,
    replaced
});

pub fn record(conn: &Connection, entry: &Entry) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO link_audit (at, action, host_user_id, userid_key, userid, method, reason, by, replaced)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        entry.at,
        entry.action,
        entry.host_user_id,
        userid_key(&entry.userid),
        entry.userid,
        entry.method,
        entry.reason,
        entry.by,
        entry.replaced
    ])?;
    Ok(())
}

/// Every entry of a host user id or a member's userid (case-insensitive), oldest first.
pub fn history(conn: &Connection, id: &str) -> Result<Vec<Entry>, StoreError> {
    rows::all(
        conn,
        "SELECT at, action, host_user_id, userid, method, reason, by, replaced FROM link_audit
         WHERE host_user_id = ?1 OR userid_key = ?2 ORDER BY id",
        params![id, userid_key(id)],
    )
}
