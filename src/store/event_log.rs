//! The event log: every event ever published, in `seq` order, as the exact line delivered.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;
use crate::events::{EventDraft, EventSource};

/// An event as stored and delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub kind: String,
    /// The CloudEvents JSON line, without the trailing newline.
    pub body: String,
}

/// The highest seq ever assigned (0 before the first event). Pruning never lowers it.
pub fn head(conn: &Connection) -> Result<i64, StoreError> {
    let head: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(head.unwrap_or(0))
}

/// The oldest seq still kept, if any.
pub fn oldest(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row("SELECT min(seq) FROM events", [], |r| r.get(0))?)
}

/// Appends events with consecutive seqs after the head. Must run inside the write transaction
/// of the change the events describe; the seqs are known before insertion so that each stored
/// line already carries its own seq and id.
pub fn append(
    conn: &Connection,
    source: &EventSource,
    run: Option<i64>,
    drafts: &[EventDraft],
    time: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let mut seq = head(conn)?;
    let run_label = run.map(|r| r.to_string());
    let time_text = time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (seq, type, run_id, time, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut seqs = Vec::with_capacity(drafts.len());
    for draft in drafts {
        seq += 1;
        let body = source.encode(draft, seq, run_label.as_deref(), time);
        insert.execute(params![seq, draft.kind.as_str(), run, time_text, body])?;
        seqs.push(seq);
    }
    Ok(seqs)
}

/// Up to `limit` events with `seq > after`, in order.
pub fn read_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, type, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
        Ok(StoredEvent {
            seq: r.get(0)?,
            kind: r.get(1)?,
            body: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
