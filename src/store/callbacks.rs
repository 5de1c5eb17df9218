//! WeCom contact-change callbacks as received: recorded before WeCom gets its answer, so that an
//! answered callback is never lost, and pending until a run covers it (a targeted run over what
//! they name, or any full run that started after they arrived).

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection};

use super::rows::{self, from_row};
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
from_row!(Callback {
    id,
    change_type,
    userid,
    new_userid,
    department_id
});

/// What recording a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A callback not seen before.
    New,
    /// The same payload as one still pending: a redelivery (WeCom redelivers, sometimes twice
    /// within a second).
    Duplicate,
    /// The same payload as one a run already covered: a redelivery, or a second real change
    /// whose ID-only payload reads the same within one second. It is pending again, so that
    /// one more run reads it (reading again is harmless; missing a change is not).
    Again,
}

/// What a payload a run covered already does when it comes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covered {
    /// It is pending again ([`Recorded::Again`]): a redelivery, or a second real change.
    Reopens,
    /// It stays covered ([`Recorded::Duplicate`]): a callback signed long ago is a replay, and
    /// replayed again and again it must not start run after run.
    Stays,
}

/// Records a callback, detecting repeats by the hash of its decrypted payload.
pub fn record(
    conn: &Connection,
    hash: &str,
    callback: &Callback,
    covered: Covered,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
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
    if inserted == 1 {
        return Ok(Recorded::New);
    }
    if covered == Covered::Stays {
        return Ok(Recorded::Duplicate);
    }
    // Pending again, and newest: a run that began before this is not taken to cover it.
    let reopened = conn
        .prepare_cached(
            "UPDATE callbacks SET applied_run = NULL, received_at = ?2,
                 id = (SELECT max(id) + 1 FROM callbacks)
             WHERE hash = ?1 AND applied_run IS NOT NULL",
        )?
        .execute(params![hash, now.to_rfc3339()])?;
    Ok(if reopened == 1 {
        Recorded::Again
    } else {
        Recorded::Duplicate
    })
}

/// The callbacks no run has covered yet, oldest first.
pub fn pending(conn: &Connection) -> Result<Vec<Callback>, StoreError> {
    rows::all(
        conn,
        "SELECT id, change_type, userid, new_userid, department_id FROM callbacks
         WHERE applied_run IS NULL ORDER BY id",
        [],
    )
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
    fn a_duplicate_is_recognized_and_a_repeat_after_a_run_is_pending_again() {
        let store = Store::in_memory().unwrap();
        let conn = store.conn();
        let now = Utc::now();
        assert_eq!(
            record(conn, "h1", &callback("a"), Covered::Reopens, now).unwrap(),
            Recorded::New
        );
        assert_eq!(
            record(conn, "h1", &callback("a"), Covered::Reopens, now).unwrap(),
            Recorded::Duplicate
        );
        assert_eq!(
            record(conn, "h2", &callback("b"), Covered::Reopens, now).unwrap(),
            Recorded::New
        );
        let pending = pending(conn).unwrap();
        assert_eq!(pending.len(), 2);
        applied(conn, pending[0].id, 7, now).unwrap();
        assert_eq!(pending_count(conn).unwrap(), 1);
        // The same payload after a run covered it is pending again, after the other one: a
        // second change that reads the same is never lost.
        assert_eq!(
            record(conn, "h1", &callback("a"), Covered::Reopens, now).unwrap(),
            Recorded::Again
        );
        let pending = super::pending(conn).unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[1].userid.as_deref(), Some("a"));
    }

    #[test]
    fn a_covered_payload_signed_long_ago_stays_covered() {
        let store = Store::in_memory().unwrap();
        let conn = store.conn();
        let now = Utc::now();
        let record = |covered| record(conn, "h1", &callback("a"), covered, now).unwrap();
        assert_eq!(record(Covered::Stays), Recorded::New, "seen first: taken");
        applied(conn, pending(conn).unwrap()[0].id, 7, now).unwrap();
        assert_eq!(record(Covered::Stays), Recorded::Duplicate);
        assert_eq!(pending_count(conn).unwrap(), 0);
    }
}
