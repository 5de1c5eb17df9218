//! The event log: every event ever published, in `seq` order, as the exact line delivered.

use chrono::{DateTime, Utc};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension};
use serde::Serialize;

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
pub fn append<D: Serialize>(
    conn: &Connection,
    source: &EventSource,
    run: Option<i64>,
    drafts: &[EventDraft<D>],
    time: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let mut appender = Appender::new(conn, source, run, time)?;
    drafts.iter().map(|draft| appender.push(draft)).collect()
}

/// [`append`] for drafts made as they are needed: each is encoded, stored and dropped before
/// the next is made. Returns the last seq assigned, if any.
pub fn append_each<D: Serialize>(
    conn: &Connection,
    source: &EventSource,
    run: Option<i64>,
    drafts: impl IntoIterator<Item = EventDraft<D>>,
    time: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let mut appender = Appender::new(conn, source, run, time)?;
    let mut last = None;
    for draft in drafts {
        last = Some(appender.push(&draft)?);
    }
    Ok(last)
}

struct Appender<'c> {
    insert: CachedStatement<'c>,
    source: &'c EventSource,
    run: Option<i64>,
    run_label: Option<String>,
    time: DateTime<Utc>,
    time_text: String,
    seq: i64,
}

impl<'c> Appender<'c> {
    fn new(
        conn: &'c Connection,
        source: &'c EventSource,
        run: Option<i64>,
        time: DateTime<Utc>,
    ) -> Result<Appender<'c>, StoreError> {
        Ok(Appender {
            insert: conn.prepare_cached(
                "INSERT INTO events (seq, type, run_id, time, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            source,
            run,
            run_label: run.map(|r| r.to_string()),
            time,
            time_text: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            seq: head(conn)?,
        })
    }

    fn push<D: Serialize>(&mut self, draft: &EventDraft<D>) -> Result<i64, StoreError> {
        let seq = self.seq + 1;
        let body = self
            .source
            .encode(draft, seq, self.run_label.as_deref(), self.time);
        self.insert.execute(params![
            seq,
            draft.kind.as_str(),
            self.run,
            self.time_text,
            body
        ])?;
        self.seq = seq;
        Ok(seq)
    }
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
