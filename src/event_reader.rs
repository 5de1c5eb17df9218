//! How a reader of the event log (a socket subscription, `orgsync events`) starts and reads:
//! in bounded batches, straight from SQLite, so that a slow reader costs one batch of memory and
//! nothing else, and events pruned before they were read are reported as a gap, never skipped.

use rusqlite::Connection;

use crate::events::TypeFilter;
use crate::store::event_log::{self, StoredEvent};
use crate::store::{consumers, StoreError};

/// Why a reader cannot start or go on where it asked.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the events after seq {cursor} up to {} were pruned (the oldest available is {oldest}); reconcile your copy of the directory, then subscribe with since={}", oldest - 1, oldest - 1)]
    Gap { cursor: i64, oldest: i64 },
    #[error("since={since} is ahead of the event head {head}: this position belongs to another store (replaced, or restored from a backup); take a new snapshot, then subscribe from its seq")]
    AheadOfHead { since: i64, head: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ReadError {
    fn from(error: rusqlite::Error) -> ReadError {
        ReadError::Store(StoreError::from(error))
    }
}

/// How many events one read takes from the log, at most.
pub const BATCH: usize = 1000;

/// How many bytes of events one read takes, at most (but always one event): a subscriber's
/// batch costs the daemon this much memory however large the events are.
pub const BATCH_BYTES: usize = 1 << 20;

/// Where a subscription starts, and the head to announce: `since` if given; else the
/// consumer's last acked seq if it has one; else the head (only new events).
pub fn start(
    conn: &Connection,
    since: Option<i64>,
    consumer: Option<&str>,
) -> Result<(i64, i64), ReadError> {
    // One read transaction, so that the head, the cursor and the oldest event agree.
    let tx = conn.unchecked_transaction()?;
    let head = event_log::head(&tx)?;
    let start = match (since, consumer) {
        (Some(since), _) => since,
        (None, Some(consumer)) => consumers::cursor(&tx, consumer)?.unwrap_or(head),
        (None, None) => head,
    };
    if start > head {
        return Err(ReadError::AheadOfHead { since: start, head });
    }
    check_gap(&tx, start, head)?;
    Ok((start, head))
}

/// The events after `cursor` that were pruned unread make a gap, reported rather than skipped.
/// With nothing kept, the oldest event available is the next one to be committed.
fn check_gap(conn: &Connection, cursor: i64, head: i64) -> Result<(), ReadError> {
    let oldest = event_log::oldest(conn)?.unwrap_or(head + 1);
    if cursor + 1 < oldest {
        return Err(ReadError::Gap { cursor, oldest });
    }
    Ok(())
}

/// One read of the log.
pub struct Batch {
    /// The events the subscription wants, in seq order.
    pub events: Vec<StoredEvent>,
    /// The last seq read, delivered or filtered out; `None` when there was nothing to read.
    pub last_seq: Option<i64>,
}

/// Reads the next batch after `cursor`. Pruning may have run since the previous read; a batch
/// that does not continue right after the cursor is checked for a gap in the same snapshot.
pub fn next_batch(
    conn: &Connection,
    cursor: i64,
    types: Option<&TypeFilter>,
) -> Result<Batch, ReadError> {
    let tx = conn.unchecked_transaction()?;
    let mut events = event_log::read_after_bounded(&tx, cursor, BATCH, BATCH_BYTES)?;
    if events.first().map(|event| event.seq) != Some(cursor + 1) {
        check_gap(&tx, cursor, event_log::head(&tx)?)?;
    }
    let last_seq = events.last().map(|event| event.seq);
    if let Some(types) = types {
        events.retain(|event| types.matches(&event.kind));
    }
    Ok(Batch { events, last_seq })
}
