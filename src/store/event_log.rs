//! The event log: every event ever published, in `seq` order, as the exact line delivered.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension};
use serde::Serialize;

use super::{consumers, Store, StoreError};
use crate::events::{EventDraft, EventSource};

/// How many events one prune transaction deletes at most: a backlog of months is dropped in
/// steps, so that a sync waiting for the write lock waits for one step, not for all of them.
const PRUNE_STEP: i64 = 10_000;

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

/// Checks that the event log can be trusted before anything reads or extends it: the head
/// covers every stored event (a lowered head would hand out seqs again), and the newest event's
/// line is JSON that names its own seq (a damaged row would be sent to every consumer).
/// Returns the head.
pub fn check(conn: &Connection) -> Result<i64, StoreError> {
    let head = head(conn)?;
    let newest: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, body FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, body)) = newest else {
        return Ok(head);
    };
    let problem = if seq > head {
        Some(format!(
            "its head ({head}) is below its newest event ({seq})"
        ))
    } else {
        match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(event) if event["seq"] == seq => None,
            Ok(_) => Some(format!("event {seq} carries another seq in its line")),
            Err(e) => Some(format!("event {seq} is not a JSON line ({e})")),
        }
    };
    match problem {
        Some(problem) => Err(StoreError::CorruptEventLog { problem }),
        None => Ok(head),
    }
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
            time_text: stored_time(time),
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
    read_after_bounded(conn, after, limit, usize::MAX)
}

/// [`read_after`], stopping once the bodies read reach `max_bytes` (always at least one event,
/// however large): what a reader holds at once is bounded in bytes, not only in count.
pub fn read_after_bounded(
    conn: &Connection,
    after: i64,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, type, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after, limit as i64])?;
    let mut events = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        let event = StoredEvent {
            seq: row.get(0)?,
            kind: row.get(1)?,
            body: row.get(2)?,
        };
        bytes += event.body.len();
        events.push(event);
        if bytes >= max_bytes {
            break;
        }
    }
    Ok(events)
}

/// Event times are stored in one fixed-width UTC form, so that comparing the text compares the
/// times.
fn stored_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: u64,
    /// The oldest seq kept afterwards; `None` when no event is kept.
    pub oldest: Option<i64>,
}

/// Deletes the events that retention no longer needs, as of `now`: an event goes once it is
/// older than `retention_days`, but never while it comes after the cursor of a consumer that
/// acked within `retention_days`.
///
/// Only a run of the oldest events is ever deleted, never one in the middle: the log stays
/// contiguous from its oldest seq to the head, which is how a subscriber's gap is detected.
/// The head stays where it is (seqs are never reused).
pub fn prune(
    store: &mut Store,
    now: DateTime<Utc>,
    retention_days: u32,
) -> Result<Pruned, StoreError> {
    let cutoff = now - TimeDelta::days(i64::from(retention_days));
    let mut deleted = 0;
    loop {
        // The bound is taken inside each write transaction, so that an ack committed between
        // two steps is respected by the next one.
        let step = store.write(|tx| {
            let Some(oldest) = oldest(tx)? else {
                return Ok(0);
            };
            let bound = prune_bound(tx, cutoff)?.min(oldest + PRUNE_STEP - 1);
            if bound < oldest {
                return Ok(0);
            }
            Ok(tx.execute("DELETE FROM events WHERE seq <= ?1", [bound])? as u64)
        })?;
        if step == 0 {
            break;
        }
        deleted += step;
    }
    Ok(Pruned {
        deleted,
        oldest: oldest(store.conn())?,
    })
}

/// The highest seq that may be deleted: the events before the first one at or after `cutoff`,
/// but none after the lowest cursor of a consumer active since `cutoff`.
fn prune_bound(conn: &Connection, cutoff: DateTime<Utc>) -> Result<i64, StoreError> {
    // Scans from the oldest event and stops at the first recent one: it reads only what is
    // about to be deleted.
    let first_recent: Option<i64> = conn
        .query_row(
            "SELECT seq FROM events WHERE time >= ?1 ORDER BY seq LIMIT 1",
            [stored_time(cutoff)],
            |r| r.get(0),
        )
        .optional()?;
    let by_age = match first_recent {
        Some(seq) => seq - 1,
        None => head(conn)?,
    };
    let by_consumers = consumers::active_floor(conn, cutoff)?.unwrap_or(i64::MAX);
    Ok(by_age.min(by_consumers))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::EventType;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("orgsync.db")).expect("open store");
        (dir, store)
    }

    /// Appends `count` events dated `time`; returns their seqs.
    fn append_at(store: &mut Store, count: usize, time: DateTime<Utc>) -> Vec<i64> {
        let drafts = vec![
            EventDraft {
                kind: EventType::MemberUpdated,
                subject: "member/zhangsan".into(),
                data: json!({}),
            };
            count
        ];
        let source = EventSource::new("wwtest");
        store
            .write(|tx| append(tx, &source, None, &drafts, time))
            .expect("append")
    }

    fn kept(store: &Store) -> Vec<i64> {
        read_after(store.conn(), 0, usize::MAX >> 1)
            .expect("read")
            .into_iter()
            .map(|event| event.seq)
            .collect()
    }

    fn days(n: i64) -> TimeDelta {
        TimeDelta::days(n)
    }

    #[test]
    fn a_bounded_read_stops_at_its_byte_budget_but_takes_at_least_one_event() {
        let (_dir, mut store) = open();
        append_at(&mut store, 10, Utc::now());
        let one = read_after(store.conn(), 0, 1).unwrap()[0].body.len();
        let read = |max_bytes| {
            read_after_bounded(store.conn(), 0, 100, max_bytes)
                .unwrap()
                .len()
        };
        assert_eq!(read(1), 1);
        assert_eq!(read(2 * one), 2);
        assert_eq!(read(2 * one + 1), 3);
        assert_eq!(read(usize::MAX), 10);
    }

    #[test]
    fn events_older_than_the_retention_go_and_the_head_stays() {
        let (_dir, mut store) = open();
        let now = Utc::now();
        append_at(&mut store, 3, now - days(40));
        append_at(&mut store, 2, now - days(30) + TimeDelta::seconds(5));
        let pruned = prune(&mut store, now, 30).expect("prune");
        assert_eq!(
            pruned,
            Pruned {
                deleted: 3,
                oldest: Some(4)
            }
        );
        assert_eq!(kept(&store), vec![4, 5]);
        assert_eq!(head(store.conn()).expect("head"), 5);
        // Nothing more to do until time passes.
        assert_eq!(prune(&mut store, now, 30).expect("prune").deleted, 0);
    }

    #[test]
    fn pruning_everything_keeps_the_head_and_seqs_are_not_reused() {
        let (_dir, mut store) = open();
        let now = Utc::now();
        append_at(&mut store, 4, now - days(31));
        let pruned = prune(&mut store, now, 30).expect("prune");
        assert_eq!(
            pruned,
            Pruned {
                deleted: 4,
                oldest: None
            }
        );
        assert_eq!(head(store.conn()).expect("head"), 4);
        assert_eq!(append_at(&mut store, 1, now), vec![5]);
    }

    #[test]
    fn an_active_consumer_holds_back_the_events_after_its_cursor() {
        let (_dir, mut store) = open();
        let now = Utc::now();
        append_at(&mut store, 10, now - days(40));
        store
            .write(|tx| consumers::ack(tx, "hr-app", 4, "uid:0"))
            .expect("ack");
        let pruned = prune(&mut store, now, 30).expect("prune");
        assert_eq!(
            pruned,
            Pruned {
                deleted: 4,
                oldest: Some(5)
            },
            "all are past retention, but hr-app acked seq 4 just now"
        );
        // A month on without another ack, hr-app no longer holds anything back.
        let pruned = prune(&mut store, now + days(31), 30).expect("prune");
        assert_eq!(
            pruned,
            Pruned {
                deleted: 6,
                oldest: None
            }
        );
    }

    #[test]
    fn a_consumer_idle_longer_than_the_retention_holds_nothing_back() {
        let (_dir, mut store) = open();
        let start = Utc::now();
        append_at(&mut store, 5, start);
        store
            .write(|tx| consumers::ack(tx, "gone-app", 1, "uid:0"))
            .expect("ack");
        store
            .write(|tx| consumers::ack(tx, "busy-app", 3, "uid:0"))
            .expect("ack");
        // busy-app acks again much later; gone-app never does.
        store
            .conn()
            .execute(
                "UPDATE consumers SET updated_at = ?1 WHERE name = 'busy-app'",
                [(start + days(35)).to_rfc3339()],
            )
            .expect("age the ack");
        let pruned = prune(&mut store, start + days(40), 30).expect("prune");
        assert_eq!(pruned.oldest, Some(4));
    }

    #[test]
    fn only_the_oldest_run_of_events_goes_even_when_clocks_disagree() {
        let (_dir, mut store) = open();
        let now = Utc::now();
        append_at(&mut store, 2, now - days(60));
        // Written by a process whose clock was ahead: newer by seq, "recent" by time.
        append_at(&mut store, 1, now);
        append_at(&mut store, 2, now - days(50));
        let pruned = prune(&mut store, now, 30).expect("prune");
        assert_eq!(pruned.oldest, Some(3));
        assert_eq!(kept(&store), vec![3, 4, 5]);
    }

    #[test]
    fn a_large_backlog_is_pruned_in_steps_to_the_end() {
        let (_dir, mut store) = open();
        let now = Utc::now();
        let count = (PRUNE_STEP * 2 + 7) as usize;
        append_at(&mut store, count, now - days(31));
        append_at(&mut store, 1, now);
        let pruned = prune(&mut store, now, 30).expect("prune");
        assert_eq!(pruned.deleted, count as u64);
        assert_eq!(pruned.oldest, Some(count as i64 + 1));
    }

    #[test]
    fn a_sink_holds_back_the_events_after_its_cursor_however_long_it_fails() {
        let (_dir, mut store) = open();
        let now = Utc::now();
        append_at(&mut store, 10, now - days(90));
        store
            .write(|tx| {
                consumers::move_cursor(
                    tx,
                    &consumers::sink_consumer("crm"),
                    None,
                    6,
                    consumers::SINK_OWNER,
                )
            })
            .expect("place the sink's cursor");
        // Its cursor last moved long ago: a socket consumer's would no longer count.
        store
            .conn()
            .execute(
                "UPDATE consumers SET updated_at = ?1",
                [(now - days(80)).to_rfc3339()],
            )
            .expect("age the cursor");
        let pruned = prune(&mut store, now, 30).expect("prune");
        assert_eq!(pruned.oldest, Some(7));
        assert_eq!(kept(&store), vec![7, 8, 9, 10]);
    }

    #[test]
    fn sink_cursors_are_reserved_and_move_only_from_where_they_were_seen() {
        let (_dir, mut store) = open();
        append_at(&mut store, 5, Utc::now());
        let name = consumers::sink_consumer("crm");
        let claim = consumers::check_owner(store.conn(), &name, "uid:1000", false).expect("check");
        assert!(matches!(claim, Err(consumers::ClaimError::Reserved { .. })));
        let claim = consumers::check_owner(store.conn(), &name, "uid:0", true).expect("check");
        assert!(matches!(claim, Err(consumers::ClaimError::Reserved { .. })));
        let owner = consumers::SINK_OWNER;
        let moved = |store: &mut Store, from, to| {
            store
                .write(|tx| consumers::move_cursor(tx, &name, from, to, owner))
                .expect("move")
        };
        assert!(moved(&mut store, None, 2));
        assert!(!moved(&mut store, None, 4), "placed once");
        assert!(moved(&mut store, Some(2), 5));
        // An admin replayed to 1 meanwhile: a delivery confirmed from 5 must not undo it.
        assert!(moved(&mut store, Some(5), 1));
        assert!(!moved(&mut store, Some(5), 5));
        assert_eq!(
            consumers::cursor(store.conn(), &name).expect("cursor"),
            Some(1)
        );
    }
}
