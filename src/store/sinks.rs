//! The delivery state of each push sink (`[[sinks.webhook]]`): paused or not, the current
//! streak of failures, the last confirmed delivery. The sink's position is not here: it is the
//! cursor of the consumer `sink:NAME` (see [`super::consumers::sink_consumer`]), so that status
//! and retention treat it like every other consumer's.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::rows::{self, from_row, FromRow};
use super::StoreError;

/// A sink's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkRow {
    pub name: String,
    pub kind: String,
    /// How many seconds of failing make the sink alarming (its `alert_after_secs`). Defaults to
    /// 0 when read from the status of a daemon older than the field.
    #[serde(default)]
    pub alert_after: i64,
    /// When a 410 Gone paused it; `None` while it delivers.
    pub paused_at: Option<String>,
    pub paused_reason: Option<String>,
    /// The first failed attempt of the current streak; `None` after a delivery.
    pub failing_since: Option<String>,
    /// Failed attempts in the current streak.
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt: Option<String>,
    pub delivered_at: Option<String>,
}

from_row!(SinkRow {
    name,
    kind,
    alert_after,
    paused_at,
    paused_reason,
    failing_since,
    attempts,
    last_error,
    next_attempt,
    delivered_at,
});

/// Records that the sink `name` of `kind` exists (a sink seen for the first time), keeping its
/// state if it has one.
pub fn register(
    conn: &Connection,
    name: &str,
    kind: &str,
    alert_after_secs: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO sinks (name, kind, alert_after) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, alert_after = excluded.alert_after",
        params![
            name,
            kind,
            i64::try_from(alert_after_secs).unwrap_or(i64::MAX)
        ],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, name: &str) -> Result<Option<SinkRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT * FROM sinks WHERE name = ?1",
            [name],
            SinkRow::from_row,
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<SinkRow>, StoreError> {
    rows::all(conn, "SELECT * FROM sinks ORDER BY name", [])
}

/// One more failed attempt: its error and when the next one is due. Returns when the streak
/// of failures began (it may have begun before a restart).
pub fn record_failure(
    conn: &Connection,
    name: &str,
    error: &str,
    now: DateTime<Utc>,
    next_attempt: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "UPDATE sinks SET failing_since = coalesce(failing_since, ?2),
                 attempts = attempts + 1, last_error = ?3, next_attempt = ?4
             WHERE name = ?1
             RETURNING failing_since",
            params![name, now.to_rfc3339(), error, next_attempt.to_rfc3339()],
            |r| r.get(0),
        )
        .optional()?)
}

/// A confirmed delivery ends the streak of failures (the last error stays, for the record).
pub fn record_delivery(
    conn: &Connection,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sinks SET failing_since = NULL, attempts = 0, next_attempt = NULL,
             delivered_at = ?2
         WHERE name = ?1",
        params![name, now.to_rfc3339()],
    )?;
    Ok(())
}

/// Pauses the sink until [`resume`]: the target said it wants nothing more (410 Gone).
pub fn pause(
    conn: &Connection,
    name: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sinks SET paused_at = ?2, paused_reason = ?3, next_attempt = NULL
         WHERE name = ?1",
        params![name, now.to_rfc3339(), reason],
    )?;
    Ok(())
}

/// Resumes a paused sink and starts its retries afresh; false when there is no such sink.
pub fn resume(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE sinks SET paused_at = NULL, paused_reason = NULL, failing_since = NULL,
             attempts = 0, next_attempt = NULL
         WHERE name = ?1",
        [name],
    )? > 0)
}
