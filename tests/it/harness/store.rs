//! The store as it is on disk, read straight from the SQLite file (read-only), so that a test
//! can say "unchanged" or "exactly what replaying the events gives".

use std::path::Path;

use chrono::{DateTime, Utc};
use orgsync::events::{EventDraft, EventSource, EventType};
use orgsync::model::{Department, Member, Snapshot};
use orgsync::store::{event_log, Store};
use serde_json::{json, Value};

/// Everything a run can change.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreState {
    pub mirror: Snapshot,
    /// `(seq, type, body)` of every stored event.
    pub events: Vec<(i64, String, String)>,
    /// `(id, outcome)` of every run.
    pub runs: Vec<(i64, String)>,
}

impl StoreState {
    /// A store that does not exist yet is empty.
    pub fn read(path: &Path) -> StoreState {
        if !path.exists() {
            return StoreState {
                mirror: Snapshot::default(),
                events: Vec::new(),
                runs: Vec::new(),
            };
        }
        let conn = read_only(path);
        let mirror = orgsync::store::mirror::load(&conn).expect("load the mirror");
        let events = query(
            &conn,
            "SELECT seq, type, body FROM events ORDER BY seq",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        );
        let runs = query(&conn, "SELECT id, outcome FROM runs ORDER BY id", |r| {
            Ok((r.get(0)?, r.get(1)?))
        });
        StoreState {
            mirror,
            events,
            runs,
        }
    }

    pub fn head(&self) -> i64 {
        self.events.last().map_or(0, |e| e.0)
    }

    pub fn outcome(&self, run: i64) -> Option<&str> {
        self.runs
            .iter()
            .find(|(id, _)| *id == run)
            .map(|(_, outcome)| outcome.as_str())
    }

    /// The events as JSON.
    pub fn event_values(&self) -> Vec<Value> {
        self.events
            .iter()
            .map(|(_, _, body)| serde_json::from_str(body).expect("stored events are JSON"))
            .collect()
    }

    /// The mirror that replaying every stored event from an empty one gives.
    pub fn replayed(&self) -> Snapshot {
        replay(&self.event_values())
    }
}

pub fn read_only(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the store read-only")
}

fn query<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    let mut statement = conn.prepare(sql).expect("prepare");
    let rows = statement.query_map([], row).expect("query");
    rows.collect::<Result<_, _>>().expect("read rows")
}

/// `PRAGMA integrity_check` of the store, "ok" when sound.
pub fn integrity(path: &Path) -> String {
    read_only(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// Applies events to an empty mirror in order, as a host application would.
fn replay(events: &[Value]) -> Snapshot {
    replay_onto(Snapshot::default(), events)
}

/// Applies events in order to a copy of the directory, as a host application that listed it
/// first would.
pub fn replay_onto(mut snapshot: Snapshot, events: &[Value]) -> Snapshot {
    for event in events {
        let data = &event["data"];
        let department = || -> Department {
            serde_json::from_value(data["department"].clone()).expect("a department object")
        };
        let member = || -> Member {
            serde_json::from_value(data["member"].clone()).expect("a member object")
        };
        match event["type"].as_str().unwrap_or_default() {
            "orgsync.department.created" | "orgsync.department.updated" => {
                snapshot.insert_department(department())
            }
            "orgsync.department.deleted" => {
                snapshot.departments.remove(&department().id);
            }
            "orgsync.member.joined" | "orgsync.member.updated" => snapshot.insert_member(member()),
            "orgsync.member.left" => {
                snapshot.members.remove(&member().key());
            }
            _ => {}
        }
    }
    snapshot
}

/// Commits `count` events of `kind` about `subject`, with empty data, dated `time` as a sync
/// at that time would have dated them.
pub fn commit_dated(
    store: &mut Store,
    source: &EventSource,
    (kind, subject): (EventType, &str),
    count: usize,
    time: DateTime<Utc>,
) {
    let drafts = vec![
        EventDraft {
            kind,
            subject: subject.into(),
            data: json!({}),
        };
        count
    ];
    store
        .write(|tx| event_log::append(tx, source, None, &drafts, time))
        .expect("append");
}
