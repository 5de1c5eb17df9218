//! The event log as host applications use it, whatever the transport: a page of events after a
//! position (the HTTP API's `GET /v1/events`), a consumer's durable ack, and a resync request.
//! Subscriptions and pages read the log through [`crate::event_reader`], so both report a gap
//! or a replaced store the same way.

use rusqlite::Connection;
use serde::Serialize;

use crate::event_reader::{self, ReadError};
use crate::events::TypeFilter;
use crate::queue::{SyncQueue, Trigger};
use crate::store::consumers::{self, ClaimError};
use crate::store::event_log::{self, StoredEvent};
use crate::store::{runs, Store, StoreError};

/// A consumer name is at most this many characters.
pub const MAX_CONSUMER_CHARS: usize = 128;

/// A validated consumer name: 1 to 128 characters, none of them a control character, so that
/// it prints safely in `orgsync status` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerName(pub(crate) String);

impl ConsumerName {
    pub fn new(name: &str) -> Result<ConsumerName, String> {
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_CONSUMER_CHARS {
            return Err(format!(
                "must be 1 to {MAX_CONSUMER_CHARS} characters (got {chars})"
            ));
        }
        if let Some(bad) = name.chars().find(|&c| !printable(c)) {
            return Err(format!(
                "must be printable: letters, digits, punctuation and plain spaces, without \
                 control, bidirectional or zero-width characters (found U+{:04X})",
                u32::from(bad)
            ));
        }
        if name.starts_with(' ') || name.ends_with(' ') {
            return Err("must not start or end with a space".into());
        }
        Ok(ConsumerName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a character may appear in a consumer name, which operators read in `orgsync status`
/// and `orgsync consumers`: no control characters, no bidirectional or zero-width formatting
/// (which make one name look like another), and no whitespace but the plain space.
fn printable(c: char) -> bool {
    let format = matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xE0000..=0xE007F
    );
    !c.is_control() && !format && (c == ' ' || !c.is_whitespace())
}

/// Who acks a consumer: its owner name (`uid:N` on the socket, `token:NAME` over HTTP) and
/// whether it is an admin, who may use any consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub admin: bool,
}

/// Why an ack was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("seq {seq} is above the event head {head}; ack only seqs you have received")]
    AboveHead { seq: i64, head: i64 },
    #[error(transparent)]
    Consumer(#[from] ClaimError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores `consumer`'s cursor at `seq` for `owner`: only the consumer's owner (or an admin) may
/// move it, and a new consumer counts against its owner's share.
pub fn ack(store: &mut Store, consumer: &str, seq: i64, owner: &Owner) -> Result<(), AckError> {
    let head = event_log::head(store.conn())?;
    // The head only grows, so checked outside the write it stays true.
    if seq > head {
        return Err(AckError::AboveHead { seq, head });
    }
    // Checked and written in one transaction, so that two first acks cannot both slip under a
    // cap.
    store.try_write(|tx| {
        consumers::check_owner(tx, consumer, &owner.name, owner.admin)??;
        consumers::ack(tx, consumer, seq, &owner.name)?;
        Ok::<_, AckError>(())
    })
}

/// Checks that `owner` may read as `consumer` (reading creates nothing, so only another
/// owner's consumer is refused, never a cap).
pub fn check_reader(conn: &Connection, consumer: &str, owner: &Owner) -> Result<(), AckError> {
    match consumers::check_owner(conn, consumer, &owner.name, owner.admin)? {
        Err(owned @ ClaimError::Owned { .. }) => Err(owned.into()),
        _ => Ok(()),
    }
}

/// The answer to a resync request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resync {
    /// Always true: one run starts after the request, whether it queued it or merged into one
    /// already pending.
    pub queued: bool,
    /// The request merged into a run already pending.
    pub merged: bool,
    /// The run that serves the request is the first with an id above this one.
    pub after_run: i64,
}

/// Queues a run with `trigger`.
pub fn resync(
    conn: &Connection,
    queue: &SyncQueue,
    trigger: Trigger,
) -> Result<Resync, StoreError> {
    // Read before queueing, so that it cannot be the id of the run that serves this request.
    let after_run = runs::last_id(conn)?;
    let newly_queued = queue.request(trigger);
    Ok(Resync {
        queued: true,
        merged: !newly_queued,
        after_run,
    })
}

/// What a page of events asks for.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub since: Option<i64>,
    pub consumer: Option<ConsumerName>,
    pub types: Option<TypeFilter>,
    /// At most this many events (at least one).
    pub limit: usize,
}

/// A page of events.
#[derive(Debug, Default)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    /// The position after this page: read from here next. With a type filter it may be past
    /// the last event returned (the ones filtered out are read too).
    pub next: i64,
    /// The event head when the page was read.
    pub head: i64,
}

/// How many bytes of events one page holds, at most (but always one event): a page's cost in
/// memory is bounded however large the events are.
pub const PAGE_BYTES: usize = 8 << 20;

/// Where a page starts: `since`, else the consumer's cursor, else the head (only what comes
/// next), and the head.
pub fn page_start(conn: &Connection, request: &PageRequest) -> Result<(i64, i64), ReadError> {
    event_reader::start(
        conn,
        request.since,
        request.consumer.as_ref().map(ConsumerName::as_str),
    )
}

/// Reads the events after `cursor` the request wants, at most `limit` of them and
/// [`PAGE_BYTES`]; stops early at the head.
pub fn read_page(
    conn: &Connection,
    mut cursor: i64,
    request: &PageRequest,
) -> Result<Page, ReadError> {
    let limit = request.limit.max(1);
    let mut page = Page {
        head: event_log::head(conn)?,
        ..Page::default()
    };
    let mut bytes = 0;
    loop {
        let batch = event_reader::next_batch(conn, cursor, request.types.as_ref())?;
        let Some(last_seq) = batch.last_seq else {
            break;
        };
        let mut full = false;
        for event in batch.events {
            if page.events.len() >= limit || (bytes >= PAGE_BYTES && !page.events.is_empty()) {
                full = true;
                break;
            }
            bytes += event.body.len();
            cursor = event.seq;
            page.events.push(event);
        }
        if full {
            break;
        }
        cursor = last_seq;
    }
    page.next = cursor;
    page.head = page.head.max(cursor);
    Ok(page)
}
