//! The socket of the real `orgsync run` binary, against the simulated WeCom tenant, as host
//! applications meet it: the Python example client, a stalled consumer's cost in memory, and
//! retention at start-up. Every wait is for a line, a reply or a process, bounded by a timeout
//! that fails the test.

use std::path::Path;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use orgsync::events::{EventDraft, EventSource, EventType};
use orgsync::store::{consumers, event_log, Store};
use orgsync_simulator::{Directory, SimUser};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::harness::{commit_dated, seq_of, Client, Env, Python};

/// The sample tenant; the daemon logs warnings only.
async fn setup() -> Env {
    Env::with_config(Directory::sample(), "[log]\nlevel = \"warn\"\n").await
}

/// Waits for the first sync's events; returns them as (seq, type, data).
async fn first_sync(env: &Env) -> Vec<(i64, String, Value)> {
    let mut client = env.subscribe(json!({"op": "subscribe", "since": 0})).await;
    assert_eq!(client.reply["ok"], true, "{}", client.reply);
    let mut events = Vec::new();
    loop {
        let event = client.next().await;
        let kind = event["type"].as_str().expect("an event").to_owned();
        events.push((
            event["seq"].as_i64().expect("seq"),
            kind,
            event["data"].clone(),
        ));
        if events
            .last()
            .is_some_and(|(_, kind, _)| kind == "orgsync.sync.completed")
        {
            return events;
        }
    }
}

/// Asks the daemon to sync and returns once the run's events are committed.
async fn resync(env: &Env) {
    let mut watcher = env
        .subscribe(json!({"op": "subscribe", "types": ["orgsync.sync.*"]}))
        .await;
    assert_eq!(watcher.reply["ok"], true, "{}", watcher.reply);
    let mut admin = Client::connect(&env.socket_path()).await;
    assert_eq!(admin.request(json!({"op": "resync"})).await["queued"], true);
    assert_eq!(watcher.next().await["type"], "orgsync.sync.completed");
}

/// The daemon's resident and peak resident memory, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

const PRODUCED: i64 = 100_000;
const WARM_UP: i64 = 10_000;
/// Events per write transaction, as a large sync run commits them.
const PER_COMMIT: usize = 2_000;
/// What the daemon may grow by, after warming up, while 90,000 more events (about 75 MiB of
/// lines) go to one consumer and past a stalled one. Holding the stalled consumer's backlog
/// in memory would take far more; reading the log in bounded batches takes none.
const GROWTH_BOUND_KIB: u64 = 16 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_consumer_costs_the_daemon_no_memory_while_another_reads_100k_events() {
    let env = setup().await;
    let daemon = env.start_daemon().await;
    let first = first_sync(&env).await;
    let head = first.last().expect("events").0;
    // Real member objects from the first sync, reused as the data of the updates below.
    let members: Vec<Value> = first
        .iter()
        .filter(|(_, kind, _)| kind == "orgsync.member.joined")
        .map(|(_, _, data)| data.clone())
        .collect();

    let mut stalled = env
        .subscribe(json!({"op": "subscribe", "since": head}))
        .await;
    assert_eq!(stalled.reply["ok"], true, "{}", stalled.reply);

    // The last seq the reader has read; it is gone once the reader has failed.
    let (read, mut reading) = watch::channel(head);
    let reader = {
        let mut client = env
            .subscribe(json!({"op": "subscribe", "since": head}))
            .await;
        assert_eq!(client.reply["ok"], true, "{}", client.reply);
        tokio::spawn(async move {
            let mut line = Vec::new();
            for expected in head + 1..=head + PRODUCED {
                client.raw_line(&mut line).await;
                assert_eq!(seq_of(&line), Some(expected));
                read.send_replace(expected);
            }
        })
    };

    let mut store = Store::open(&env.store_path()).expect("open store");
    let source = EventSource::new(&env.sim.directory().corp_id);
    let mut produce = |count: i64| {
        let drafts: Vec<EventDraft> = (0..count as usize)
            .map(|n| {
                let mut data = members[n % members.len()].clone();
                data["changes"] =
                    json!({"position": {"old": "工程师", "new": format!("高级工程师 {n}")}});
                EventDraft {
                    kind: EventType::MemberUpdated,
                    subject: format!("member/{}", data["userid"].as_str().unwrap_or("")),
                    data,
                }
            })
            .collect();
        for chunk in drafts.chunks(PER_COMMIT) {
            store
                .write(|tx| event_log::append(tx, &source, None, chunk, Utc::now()))
                .expect("append");
        }
    };

    produce(WARM_UP);
    let warmed_up = reading.wait_for(|&read| read >= head + WARM_UP);
    let warmed_up = tokio::time::timeout(Duration::from_secs(120), warmed_up)
        .await
        .map(|read| read.is_ok());
    assert_ne!(warmed_up, Ok(false), "the reader failed");
    assert!(
        warmed_up.is_ok(),
        "the reader is stuck at {}",
        *reading.borrow()
    );
    let (baseline, _) = memory_kib(daemon.pid);
    let mut peak_sampled = baseline;
    for _ in 0..(PRODUCED - WARM_UP) / PER_COMMIT as i64 {
        produce(PER_COMMIT as i64);
        peak_sampled = peak_sampled.max(memory_kib(daemon.pid).0);
    }
    tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the reader gets every event")
        .expect("reader task");
    let (rss, hwm) = memory_kib(daemon.pid);
    eprintln!(
        "daemon memory: {baseline} KiB after {WARM_UP} events, {rss} KiB after {PRODUCED} (sampled peak {peak_sampled} KiB, VmHWM {hwm} KiB)"
    );
    assert!(
        hwm.saturating_sub(baseline) < GROWTH_BOUND_KIB,
        "the daemon grew from {baseline} KiB to a peak of {hwm} KiB"
    );

    // The stalled consumer lost nothing: once it reads, its events come in order.
    let mut line = Vec::new();
    for expected in head + 1..=head + 1_000 {
        stalled.raw_line(&mut line).await;
        assert_eq!(seq_of(&line), Some(expected));
    }
    daemon.stop().await;
}

/// The seqs of the next `n` summary lines (`SEQ TYPE SUBJECT`) the example prints.
async fn printed_seqs(example: &mut Python, n: usize) -> Vec<i64> {
    let mut seqs = Vec::with_capacity(n);
    for _ in 0..n {
        let line = example.line().await;
        let seq = line
            .split(' ')
            .next()
            .and_then(|seq| seq.parse().ok())
            .unwrap_or_else(|| panic!("not an event summary: {line}"));
        seqs.push(seq);
    }
    seqs
}

fn python_example(env: &Env, args: &[&str]) -> Python {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/subscribe.py");
    let socket = env.socket_path();
    let mut all = vec![std::ffi::OsStr::new("--socket"), socket.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    Python::spawn(&script, all)
}

fn cursor(env: &Env, consumer: &str) -> Option<i64> {
    let store = Store::open(&env.store_path()).expect("open store");
    consumers::cursor(store.conn(), consumer).expect("cursor")
}

/// One more member in the simulated tenant, for the next sync to report.
fn hire(env: &Env, userid: &str) {
    env.sim
        .edit(|directory| directory.users.push(SimUser::new(userid, "新同事", &[1])));
}

#[tokio::test]
async fn the_python_example_prints_acks_and_resumes_across_restarts() {
    let env = setup().await;
    let daemon = env.start_daemon().await;
    let head = first_sync(&env).await.last().expect("events").0;

    // From the start, a given number of events, then exit with them acknowledged.
    let mut first = python_example(
        &env,
        &[
            "--consumer",
            "py-host",
            "--since",
            "0",
            "--count",
            &head.to_string(),
        ],
    );
    assert_eq!(
        printed_seqs(&mut first, head as usize).await,
        (1..=head).collect::<Vec<_>>()
    );
    assert!(first.wait().await.success());
    assert_eq!(cursor(&env, "py-host"), Some(head));

    // Without --since it resumes after its ack: only the next run's events come.
    let mut second = python_example(&env, &["--consumer", "py-host"]);
    hire(&env, "xinren1");
    resync(&env).await;
    assert_eq!(printed_seqs(&mut second, 2).await, vec![head + 1, head + 2]);

    // The daemon restarts under it: it reconnects and carries on, with nothing twice.
    daemon.stop().await;
    let daemon = env.start_daemon().await;
    hire(&env, "xinren2");
    resync(&env).await;
    assert_eq!(printed_seqs(&mut second, 2).await, vec![head + 3, head + 4]);

    // Stopped by a service manager, it acknowledges what it printed before exiting.
    second.signal(libc::SIGTERM);
    assert!(second.wait().await.success());
    assert_eq!(cursor(&env, "py-host"), Some(head + 4));
    assert!(
        second
            .line_within(Duration::from_millis(100))
            .await
            .is_none(),
        "printed more than the new events"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_python_example_reports_a_gap_and_exits_3() {
    let env = setup().await;
    {
        let mut store = Store::open(&env.store_path()).expect("open store");
        let source = EventSource::new("unused");
        let about = (EventType::SyncCompleted, "run/0");
        commit_dated(
            &mut store,
            &source,
            about,
            5,
            Utc::now() - TimeDelta::days(40),
        );
    }
    let daemon = env.start_daemon().await;
    // Pruned at start-up, as events.retention_days (30 by default) says.
    env.status_when("the start-up prune", |status| {
        status["events"]["oldest"]
            .as_i64()
            .is_none_or(|oldest| oldest > 5)
            .then_some(())
    })
    .await;
    let mut example = python_example(&env, &["--consumer", "late", "--since", "0"]);
    assert_eq!(example.wait().await.code(), Some(3));
    daemon.stop().await;
}
