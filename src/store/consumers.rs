//! Durable consumer cursors: the last seq each named consumer acknowledged, and who owns each.
//!
//! A consumer belongs to the peer that created it with its first ack (`uid:N` over the socket);
//! only its owner or an admin may ack it or subscribe as it, so one host application cannot
//! move another's cursor. Cursors from before owners were recorded have none; the first peer
//! to ack one claims it.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::rows::{self, from_row};
use super::StoreError;

/// How many consumers one owner may create, and how many there may be in all: each holds back
/// retention while it acks, and each is a row every status reads.
pub const MAX_PER_OWNER: usize = 32;
pub const MAX_TOTAL: usize = 1024;

/// The owner of every sink's consumer: the daemon's own push delivery (`[[sinks.*]]`).
pub const SINK_OWNER: &str = "sink";

/// A sink's consumer is named `sink:NAME`; no socket or HTTP peer may take such a name.
pub const SINK_PREFIX: &str = "sink:";

/// The consumer name of the sink `name`.
pub fn sink_consumer(name: &str) -> String {
    format!("{SINK_PREFIX}{name}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumer {
    pub name: String,
    pub acked_seq: i64,
    pub updated_at: String,
    pub owner: Option<String>,
}
from_row!(Consumer {
    name,
    acked_seq,
    updated_at,
    owner
});

/// Why a peer may not use a consumer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("consumer {name:?} belongs to {owner}; use a name of your own (or ask an admin to `orgsync consumers remove` it)")]
    Owned { name: String, owner: String },
    #[error("{owner} already has {MAX_PER_OWNER} consumers; reuse one, or ask an admin to remove stale ones with `orgsync consumers remove NAME`")]
    TooManyForOwner { owner: String },
    #[error("there are already {MAX_TOTAL} consumers; an admin can list and remove stale ones with `orgsync consumers`")]
    TooMany,
    #[error("consumer names starting with `sink:` belong to the daemon's sinks; use another name (an admin moves a sink's cursor with `orgsync sinks replay`)")]
    Reserved { name: String },
}

/// Checks that `owner` may use consumer `name`, creating nothing. An admin may use any;
/// an unowned cursor from before owners is claimed by the first to ack it.
pub fn check_owner(
    conn: &Connection,
    name: &str,
    owner: &str,
    admin: bool,
) -> Result<Result<(), ClaimError>, StoreError> {
    if name.starts_with(SINK_PREFIX) && owner != SINK_OWNER {
        return Ok(Err(ClaimError::Reserved {
            name: name.to_owned(),
        }));
    }
    let stored: Option<Option<String>> = conn
        .query_row("SELECT owner FROM consumers WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(match stored {
        Some(Some(stored)) if stored != owner && !admin => Err(ClaimError::Owned {
            name: name.to_owned(),
            owner: stored,
        }),
        Some(_) => Ok(()),
        None if admin => Ok(()),
        None => {
            let mine: i64 = conn.query_row(
                "SELECT count(*) FROM consumers WHERE owner = ?1",
                [owner],
                |r| r.get(0),
            )?;
            let all: i64 = conn.query_row("SELECT count(*) FROM consumers", [], |r| r.get(0))?;
            if usize::try_from(mine).unwrap_or(usize::MAX) >= MAX_PER_OWNER {
                Err(ClaimError::TooManyForOwner {
                    owner: owner.to_owned(),
                })
            } else if usize::try_from(all).unwrap_or(usize::MAX) >= MAX_TOTAL {
                Err(ClaimError::TooMany)
            } else {
                Ok(())
            }
        }
    })
}

/// Removes a consumer; false when there was none of that name.
pub fn remove(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    if let Some(sink) = name.strip_prefix(SINK_PREFIX) {
        conn.execute("DELETE FROM sinks WHERE name = ?1", [sink])?;
    }
    Ok(conn.execute("DELETE FROM consumers WHERE name = ?1", [name])? > 0)
}

/// Moves a consumer's cursor from `expected` to `seq`, forwards or backwards, creating it
/// (owned by `owner`) when `expected` is `None` and there is none. False, changing nothing,
/// when the cursor is not at `expected` any more (an admin moved it meanwhile): the caller
/// reads it again rather than overwrite the admin's move.
pub fn move_cursor(
    conn: &Connection,
    name: &str,
    expected: Option<i64>,
    seq: i64,
    owner: &str,
) -> Result<bool, StoreError> {
    let now = Utc::now().to_rfc3339();
    let changed = match expected {
        Some(expected) => conn.execute(
            "UPDATE consumers SET acked_seq = ?2, updated_at = ?3 WHERE name = ?1 AND acked_seq = ?4",
            params![name, seq, now, expected],
        )?,
        None => conn.execute(
            "INSERT INTO consumers (name, acked_seq, updated_at, owner) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
            params![name, seq, now, owner],
        )?,
    };
    Ok(changed > 0)
}

pub fn cursor(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT acked_seq FROM consumers WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?)
}

/// Stores the consumer's cursor. A cursor never moves backwards: an ack that arrives late
/// (after a later one) must not cause redelivery of what was already acknowledged.
/// A new consumer belongs to `owner`; an unowned one is claimed by it.
pub fn ack(conn: &Connection, name: &str, seq: i64, owner: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO consumers (name, acked_seq, updated_at, owner) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET
             acked_seq = max(acked_seq, excluded.acked_seq),
             updated_at = excluded.updated_at,
             owner = coalesce(owner, excluded.owner)",
        params![name, seq, Utc::now().to_rfc3339(), owner],
    )?;
    Ok(())
}

pub fn list(conn: &Connection) -> Result<Vec<Consumer>, StoreError> {
    rows::all(
        conn,
        "SELECT name, acked_seq, updated_at, owner FROM consumers ORDER BY name",
        [],
    )
}

impl Consumer {
    /// Whether retention keeps the events after this cursor, for a retention that began at
    /// `since`. A consumer that has not acked since then no longer holds events back; a sink
    /// always does, however long it has been failing (it is reported loudly instead), until
    /// it is removed with `orgsync consumers remove sink:NAME`. A timestamp that does not
    /// parse (edited by hand) counts as recent, so that a doubt keeps events rather than
    /// dropping them.
    pub fn holds_events(&self, since: DateTime<Utc>) -> bool {
        self.owner.as_deref() == Some(SINK_OWNER)
            || DateTime::parse_from_rfc3339(&self.updated_at).map_or(true, |acked| acked >= since)
    }
}

/// The lowest cursor among the consumers that hold events back ([`Consumer::holds_events`]):
/// retention must keep every event after it.
pub fn active_floor(conn: &Connection, since: DateTime<Utc>) -> Result<Option<i64>, StoreError> {
    Ok(list(conn)?
        .into_iter()
        .filter(|consumer| consumer.holds_events(since))
        .map(|consumer| consumer.acked_seq)
        .min())
}
