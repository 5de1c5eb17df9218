//! Durable consumer cursors: the last seq each named consumer acknowledged.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumer {
    pub name: String,
    pub acked_seq: i64,
    pub updated_at: String,
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
pub fn ack(conn: &Connection, name: &str, seq: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO consumers (name, acked_seq, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET
             acked_seq = max(acked_seq, excluded.acked_seq),
             updated_at = excluded.updated_at",
        params![name, seq, Utc::now().to_rfc3339()],
    )?;
    Ok(())
}

pub fn list(conn: &Connection) -> Result<Vec<Consumer>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT name, acked_seq, updated_at FROM consumers ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(Consumer {
            name: r.get(0)?,
            acked_seq: r.get(1)?,
            updated_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The lowest cursor among the consumers that acked at or after `since`: retention must keep
/// every event after it. A consumer that has not acked since then no longer holds events back.
/// A timestamp that does not parse (edited by hand) counts as recent, so that a doubt keeps
/// events rather than dropping them.
pub fn active_floor(conn: &Connection, since: DateTime<Utc>) -> Result<Option<i64>, StoreError> {
    Ok(list(conn)?
        .into_iter()
        .filter(|consumer| {
            DateTime::parse_from_rfc3339(&consumer.updated_at).map_or(true, |acked| acked >= since)
        })
        .map(|consumer| consumer.acked_seq)
        .min())
}
