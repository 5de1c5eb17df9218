//! WeCom contact-change callbacks as received: recorded before WeCom gets its answer, so that an
//! answered callback is never lost, and pending until a run covers it (a targeted run over what
//! they name, or any full run that started after they arrived).

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection};

use super::StoreError;

/// One callback, as the targeted run needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub id: i64,
    /// `create_user`, `update_user`, `delete_user`, `create_party`, ... as WeCom names it, or
    /// `event:NAME` for another event.
    pub change_type: String,
    pub userid: Option<String>,
    pub new_userid: Option<String>,
    pub department_id: Option<i64>,
}

/// Records a callback; `false` when one with the same payload hash was recorded already (WeCom
/// redelivers, sometimes twice within a second).
pub fn record(
    conn: &Connection,
    hash: &str,
    callback: &Callback,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO callbacks
                 (hash, received_at, change_type, userid, new_userid, department_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            hash,
            now.to_rfc3339(),
            callback.change_type,
            callback.userid,
            callback.new_userid,
            callback.department_id
        ])?;
    Ok(inserted == 1)
}

/// The callbacks no run has covered yet, oldest first.
pub fn pending(conn: &Connection) -> Result<Vec<Callback>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, change_type, userid, new_userid, department_id FROM callbacks
         WHERE applied_run IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Callback {
            id: r.get(0)?,
            change_type: r.get(1)?,
            userid: r.get(2)?,
            new_userid: r.get(3)?,
            department_id: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many callbacks are pending.
pub fn pending_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM callbacks WHERE applied_run IS NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Marks the callbacks up to and including `up_to` (an id from [`pending`]) as covered by
/// `run`, and forgets those covered more than a week ago: their hashes only guard against
/// redeliveries, which come within minutes.
pub fn applied(
    conn: &Connection,
    up_to: i64,
    run: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE callbacks SET applied_run = ?2 WHERE applied_run IS NULL AND id <= ?1",
    )?
    .execute(params![up_to, run])?;
    let horizon = (now - Duration::days(7)).to_rfc3339();
    conn.prepare_cached(
        "DELETE FROM callbacks WHERE applied_run IS NOT NULL AND received_at < ?1",
    )?
    .execute([horizon])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn callback(userid: &str) -> Callback {
        Callback {
            id: 0,
            change_type: "update_user".into(),
            userid: Some(userid.into()),
            new_userid: None,
            department_id: None,
        }
    }

    #[test]
    fn a_duplicate_is_refused_and_a_run_covers_what_came_before_it() {
        let store = Store::in_memory().unwrap();
        let conn = store.conn();
        let now = Utc::now();
        assert!(record(conn, "h1", &callback("a"), now).unwrap());
        assert!(!record(conn, "h1", &callback("a"), now).unwrap());
        assert!(record(conn, "h2", &callback("b"), now).unwrap());
        let pending = pending(conn).unwrap();
        assert_eq!(pending.len(), 2);
        applied(conn, pending[0].id, 7, now).unwrap();
        assert_eq!(pending_count(conn).unwrap(), 1);
        // A redelivery of a covered callback is still a duplicate.
        assert!(!record(conn, "h1", &callback("a"), now).unwrap());
    }
}
