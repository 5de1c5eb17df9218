//! The store against a real SQLite file: the mirror round-trips exactly, events get
//! consecutive seqs that are never reused, cursors never move back.

use orgsync::diff::diff;
use orgsync::events::{changeset_events, EventSource};
use orgsync::model::{Department, Member, Membership, Snapshot};
use orgsync::store::{consumers, event_log, mirror, runs, Store, StoreError};
use serde_json::json;

fn sample() -> Snapshot {
    let mut snapshot = Snapshot::default();
    snapshot.insert_department(Department {
        id: 1,
        name: Some("示例科技".into()),
        name_en: None,
        parent_id: Some(0),
        order: Some(4_294_967_295),
        leaders: Some(vec!["Boss".into()]),
    });
    snapshot.insert_department(Department::new(2));
    let mut boss = Member::new("Boss");
    boss.name = Some("老板".into());
    boss.mobile = Some("13800000000".into());
    boss.departments = Some(vec![
        Membership {
            id: 2,
            order: 9,
            is_leader: false,
        },
        Membership {
            id: 1,
            order: 4_294_967_295,
            is_leader: true,
        },
    ]);
    boss.extattr =
        Some(json!({"attrs": [{"type": 0, "name": "工号", "text": {"value": "001"}}]}).into());
    boss.direct_leaders = Some(vec![]);
    snapshot.insert_member(boss);
    // Everything unknown, including the department list.
    snapshot.insert_member(Member::new("ghost"));
    snapshot
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("orgsync.db")).expect("open store");
    (dir, store)
}

#[test]
fn mirror_round_trips_every_field_including_unknowns() {
    let (_dir, mut store) = open();
    let pull = sample();
    let changes = diff(&Snapshot::default(), pull.clone());
    store
        .write(|tx| mirror::apply(tx, &changes))
        .expect("apply");
    let loaded = mirror::load(store.conn()).expect("load");
    assert_eq!(loaded, pull);
    assert!(diff(&loaded, pull.clone()).is_empty());

    let mut next = pull.clone();
    next.members.remove("ghost");
    next.departments.remove(&2);
    let changes = diff(&loaded, next.clone());
    store
        .write(|tx| mirror::apply(tx, &changes))
        .expect("apply");
    assert_eq!(mirror::load(store.conn()).expect("load"), next);
    let counts = mirror::counts(store.conn()).expect("counts");
    assert_eq!((counts.departments, counts.members), (1, 1));
}

#[test]
fn events_get_consecutive_seqs_that_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orgsync.db");
    let source = EventSource::new("wwcorp");
    let drafts = changeset_events(&diff(&Snapshot::default(), sample()));
    {
        let mut store = Store::open(&path).expect("open");
        let seqs = store
            .write(|tx| event_log::append(tx, &source, Some(7), &drafts, chrono::Utc::now()))
            .expect("append");
        assert_eq!(seqs, (1..=drafts.len() as i64).collect::<Vec<_>>());
        // A rolled-back append leaves no trace and burns no seq.
        let failed: Result<(), StoreError> = store.write(|tx| {
            event_log::append(tx, &source, Some(8), &drafts, chrono::Utc::now())?;
            Err(StoreError::Sqlite(rusqlite::Error::InvalidQuery))
        });
        assert!(failed.is_err());
    }
    let store = Store::open(&path).expect("reopen");
    let head = event_log::head(store.conn()).expect("head");
    assert_eq!(head, drafts.len() as i64);
    let events = event_log::read_after(store.conn(), 1, 100).expect("read");
    assert_eq!(events.len(), drafts.len() - 1);
    assert_eq!(events[0].seq, 2);
    let body: serde_json::Value = serde_json::from_str(&events[0].body).expect("json");
    assert_eq!(body["id"], "wwcorp:2");
    assert_eq!(body["syncrun"], "7");
}

#[test]
fn consumer_cursor_never_moves_back() {
    let (_dir, store) = open();
    consumers::ack(store.conn(), "bi", 10, "uid:0").expect("ack");
    consumers::ack(store.conn(), "bi", 4, "uid:0").expect("ack");
    assert_eq!(
        consumers::cursor(store.conn(), "bi").expect("cursor"),
        Some(10)
    );
    assert_eq!(
        consumers::cursor(store.conn(), "other").expect("cursor"),
        None
    );
}

/// Begins a CLI run and rewrites its row as if process `pid` had begun it, at `started_at`
/// when given.
fn begin_as(store: &Store, pid: u32, started_at: Option<&str>) -> i64 {
    let id = runs::begin(store.conn(), orgsync::queue::Trigger::Cli).expect("begin");
    store
        .conn()
        .execute(
            "UPDATE runs SET pid = ?2, started_at = COALESCE(?3, started_at) WHERE id = ?1",
            rusqlite::params![id, pid, started_at],
        )
        .expect("update");
    id
}

/// Asserts that the newest run, `running`, is still running and that the one before it was
/// marked interrupted.
fn assert_only_the_older_run_interrupted(store: &Store, running: i64) {
    let recent = runs::recent(store.conn(), 10).expect("recent");
    assert_eq!(recent[0].id, running);
    assert_eq!(recent[0].outcome, runs::Outcome::Running);
    assert_eq!(recent[1].outcome, runs::Outcome::Interrupted);
}

#[test]
fn runs_of_dead_processes_are_marked_interrupted() {
    let (_dir, store) = open();
    // A pid that cannot exist stands for a process killed mid-run.
    begin_as(&store, 2_147_483_000, None);
    let own = runs::begin(store.conn(), orgsync::queue::Trigger::Cli).expect("begin");
    assert_eq!(runs::mark_interrupted(store.conn()).expect("mark"), 1);
    assert_only_the_older_run_interrupted(&store, own);
}

/// A run whose pid now belongs to another process, one that started after the run did, was
/// left by a process that is gone: the pid was reused.
#[test]
fn a_run_whose_pid_was_reused_is_marked_interrupted() {
    let (_dir, store) = open();
    let mut newer = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    begin_as(&store, newer.id(), Some("2020-01-01T00:00:00.000Z"));
    // PID 1 started before this run began, so the run may still be its.
    let older = begin_as(&store, 1, None);

    let marked = runs::mark_interrupted(store.conn()).expect("mark");
    newer.kill().expect("kill sleep");
    newer.wait().expect("reap sleep");
    assert_eq!(marked, 1);
    assert_only_the_older_run_interrupted(&store, older);
}

#[test]
fn a_store_for_another_corp_is_refused() {
    let (_dir, mut store) = open();
    store.bind_corp("wwa").expect("bind");
    store.bind_corp("wwa").expect("same corp again");
    let err = store.bind_corp("wwb").expect_err("other corp");
    assert!(err.to_string().contains("wwa"), "{err}");
}

#[test]
fn a_file_that_is_not_sqlite_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orgsync.db");
    std::fs::write(
        &path,
        b"this is not a database, just text that is long enough",
    )
    .expect("write");
    match Store::open(&path) {
        Err(StoreError::Corrupt { .. }) => {}
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("opened a corrupt store"),
    }
}
