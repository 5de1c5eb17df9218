//! Events per second that the socket delivers to 1 and to 10 consumers, each replaying the
//! same backlog from `since: 0`:
//!
//! ```sh
//! cargo run --release --example bench_events              # 200,000 events
//! cargo run --release --example bench_events -- 500000    # another count
//! ```
//!
//! The daemon's side is the real server (`socket::serve`) on a real store in a temporary
//! directory. The events are `orgsync.member.updated` lines of the size real ones have (about
//! 800 bytes). Each consumer is a thread of this process that reads lines as a lean host
//! application would and checks that it got every seq in order; consumers and server share
//! the machine's cores, as they do in production.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

#[path = "../tests/it/harness/event_line.rs"]
mod event_line;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use orgsync::events::{EventDraft, EventSource, EventType};
use orgsync::model::{Member, Membership};
use orgsync::queue::SyncQueue;
use orgsync::socket::{self, ServerContext, SocketSettings};
use orgsync::store::{event_log, Store};
use serde_json::json;
use tokio::sync::watch;

use event_line::seq_of;

const DEFAULT_EVENTS: i64 = 200_000;
/// Events per write transaction while filling the store, like a large sync run.
const FILL_CHUNK: i64 = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = match std::env::args().nth(1) {
        Some(count) => count.parse()?,
        None => DEFAULT_EVENTS,
    };
    let dir = tempfile::tempdir()?;
    let store_path = dir.path().join("orgsync.db");
    let started = Instant::now();
    let bytes = fill(&store_path, events)?;
    println!(
        "store: {events} events, {:.0} bytes each on average, written in {:.1}s",
        bytes as f64 / events as f64,
        started.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let socket_path = dir.path().join("orgsync.sock");
    let (shutdown, shutdown_rx) = watch::channel(false);
    // The head never moves during the run; the sender must outlive the server all the same.
    let (head, head_rx) = watch::channel(events);
    let settings = SocketSettings {
        path: socket_path.clone(),
        group: None,
        admin_uids: vec![],
        admin_gids: vec![],
        max_connections: 64,
        max_connections_per_uid: 64,
        first_request_timeout: Duration::from_secs(30),
        allow_insecure_directory: false,
    };
    let server = runtime.block_on(async {
        let listener = socket::bind(&settings)?;
        let client = orgsync::wecom::WecomClient::new(orgsync::wecom::ClientSettings::new(
            "http://127.0.0.1:9",
            "wwbench",
            orgsync::wecom::Secret::new("unused"),
        ))
        .expect("client");
        let login = orgsync::service::login::Login::new(
            Arc::new(move || {
                (
                    client.clone(),
                    orgsync::wecom::Reach {
                        root: orgsync::wecom::ALL_VISIBLE,
                        named_members: false,
                    },
                )
            }),
            store_path.clone(),
        );
        let ctx = Arc::new(ServerContext {
            store_path,
            head: head_rx,
            head_publisher: head.clone(),
            source: EventSource::new("wwbench"),
            queue: Arc::new(SyncQueue::default()),
            status: Arc::new(|| Ok(json!({}))),
            settings,
            daemon_uid: 0,
            login,
        });
        Ok::<_, socket::SocketError>(tokio::spawn(socket::serve(listener, ctx, shutdown_rx)))
    })?;

    for consumers in [1, 10] {
        let (elapsed, slowest) = replay(&socket_path, consumers, events)?;
        let delivered = events * consumers as i64;
        println!(
            "{consumers:>2} consumer(s): {:>9.0} events/s each (slowest {:>9.0}), {:>9.0} events/s in total, {:.0} MB/s; {delivered} events in {:.2}s",
            events as f64 / elapsed.as_secs_f64(),
            events as f64 / slowest.as_secs_f64(),
            delivered as f64 / elapsed.as_secs_f64(),
            (bytes * consumers as u64) as f64 / elapsed.as_secs_f64() / 1e6,
            elapsed.as_secs_f64(),
        );
    }
    shutdown.send_replace(true);
    runtime.block_on(server)?;
    Ok(())
}

/// Writes `events` member updates to a fresh store; returns the bytes of the event lines.
fn fill(path: &Path, events: i64) -> Result<u64, Box<dyn std::error::Error>> {
    let mut store = Store::open(path)?;
    let source = EventSource::new("ww0123456789abcdef");
    let mut bytes = 0;
    let mut next = 1;
    while next <= events {
        let drafts: Vec<EventDraft> = (next..=(next + FILL_CHUNK - 1).min(events))
            .map(member_updated)
            .collect();
        next += drafts.len() as i64;
        let seqs =
            store.write(|tx| event_log::append(tx, &source, Some(1), &drafts, Utc::now()))?;
        let last = seqs.last().copied().unwrap_or(0);
        bytes += event_log::read_after(store.conn(), last - seqs.len() as i64, seqs.len())?
            .iter()
            .map(|event| event.body.len() as u64 + 1)
            .sum::<u64>();
    }
    Ok(bytes)
}

/// A member's move to another department, as a sync reports it.
fn member_updated(n: i64) -> EventDraft {
    let userid = format!("user{n:06}");
    let mut member = Member::new(userid.clone());
    member.name = Some("陈静".into());
    member.alias = Some("Lily".into());
    member.position = Some("前端工程师".into());
    member.mobile = Some(format!("159{:08}", n % 100_000_000));
    member.email = Some(format!("{userid}@xinghe.example.com"));
    member.biz_mail = Some(format!("{userid}@xinghe.exmail.example.com"));
    member.gender = Some("2".into());
    member.status = Some(1);
    member.telephone = Some(String::new());
    member.departments = Some(vec![Membership {
        id: 3,
        order: 0,
        is_leader: false,
    }]);
    member.main_department = Some(3);
    member.direct_leaders = Some(vec!["liuyang".into()]);
    member.extattr = Some(json!({"attrs": [
        {"type": 0, "name": "工号", "text": {"value": format!("XH{n:06}")}},
        {"type": 1, "name": "个人主页", "web": {"url": format!("https://xinghe.example.com/~{userid}"), "title": "主页"}},
    ]}).into());
    EventDraft {
        kind: EventType::MemberUpdated,
        subject: format!("member/{userid}"),
        data: json!({
            "userid": userid,
            "member": member,
            "changes": {
                "departments": {
                    "old": [{"id": 4, "order": 80, "is_leader": false}],
                    "new": [{"id": 3, "order": 0, "is_leader": false}],
                },
                "main_department": {"old": 4, "new": 3},
            },
        }),
    }
}

/// `consumers` subscribers replay the whole log at once; returns the time until the last of
/// them has every event, and the slowest one's own time.
fn replay(
    socket_path: &Path,
    consumers: usize,
    events: i64,
) -> Result<(Duration, Duration), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let readers: Vec<_> = (0..consumers)
        .map(|_| {
            let path = socket_path.to_owned();
            std::thread::spawn(move || consume(&path, events))
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for reader in readers {
        let own = reader.join().map_err(|_| "a consumer thread panicked")??;
        slowest = slowest.max(own);
    }
    Ok((started.elapsed(), slowest))
}

/// Subscribes from the start and reads until seq `events`, checking that every seq arrives in
/// order; returns how long that took.
fn consume(path: &Path, events: i64) -> Result<Duration, String> {
    let started = Instant::now();
    let mut stream = UnixStream::connect(path).map_err(|e| e.to_string())?;
    stream
        .write_all(b"{\"op\":\"subscribe\",\"since\":0}\n")
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::with_capacity(1 << 16, stream);
    let mut line = Vec::new();
    lines
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if !line.starts_with(b"{\"ok\":true") {
        return Err(format!(
            "subscribe refused: {}",
            String::from_utf8_lossy(&line)
        ));
    }
    for expected in 1..=events {
        line.clear();
        lines
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if seq_of(&line) != Some(expected) {
            return Err(format!(
                "expected seq {expected}, got {}",
                String::from_utf8_lossy(&line)
            ));
        }
    }
    Ok(started.elapsed())
}
