//! Events per second that a sink pushes: to one webhook receiver, one event per POST and in
//! batches of 100, and to a `nats-server -js` (when `nats-server` is installed):
//!
//! ```sh
//! cargo run --release --example bench_sinks              # 105,000 events
//! cargo run --release --example bench_sinks -- 20000     # another count
//! ```
//!
//! The store holds the backlog of a large first sync (`orgsync.member.joined`-sized lines,
//! about 900 bytes) committed at once; the sink is the daemon's own runner
//! ([`orgsync::delivery::Sinks`]) started on it, and the time is from its start until its
//! cursor is at the head, every event confirmed. The webhook receiver is a minimal hyper
//! server in this process that answers 204; the broker a `nats-server -js` child on loopback
//! with file storage. Everything shares the machine's cores, as it would in production.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use orgsync::config::{SigningKeys, SinkStart};
use orgsync::delivery::nats::NatsSettings;
use orgsync::delivery::webhook::WebhookSettings;
use orgsync::delivery::{SinkSettings, Sinks, Target};
use orgsync::events::{EventDraft, EventSource, EventType};
use orgsync::store::{consumers, event_log, Store, BUSY_TIMEOUT};
use serde_json::json;
use tokio::sync::watch;

const DEFAULT_EVENTS: i64 = 105_000;
const CORP: &str = "ww0123456789abcdef";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = match std::env::args().nth(1) {
        Some(count) => count.parse()?,
        None => DEFAULT_EVENTS,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("{events} events; time until the sink's cursor is at the head");
    println!("{:<34} {:>9} {:>12}", "sink", "seconds", "events/s");
    let receiver = runtime.block_on(webhook_receiver());
    for batch in [1, 100] {
        let target = Target::Webhook(WebhookSettings {
            url: format!("http://{receiver}/hook").parse()?,
            keys: SigningKeys::from_keys(vec![vec![7; 32]]),
            timeout: Duration::from_secs(10),
        });
        let name = format!("webhook, batch_size = {batch}");
        measure(&runtime, &name, target, batch, events)?;
    }
    match nats_server() {
        Some((mut child, url, _dir)) => {
            let target = Target::Nats(NatsSettings {
                servers: vec![url],
                corp_id: CORP.into(),
                subject_prefix: "orgsync".into(),
                stream: Some("BENCH".into()),
                create_stream: true,
                credentials: None,
                tls_ca_file: None,
                tls_client: None,
                tls_required: false,
                timeout: Duration::from_secs(10),
            });
            measure(&runtime, "nats, max_in_flight = 256", target, 256, events)?;
            let _ = child.kill();
            let _ = child.wait();
        }
        None => println!("nats: skipped (nats-server is not installed)"),
    }
    Ok(())
}

/// Fills a fresh store with `events`, runs one sink on it until its cursor is at the head.
fn measure(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    target: Target,
    batch_size: usize,
    events: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("orgsync.db");
    fill(&path, events)?;
    let settings = SinkSettings {
        name: "bench".into(),
        target,
        types: None,
        batch_size,
        start: SinkStart::Beginning,
        retry_first_delay: Duration::from_millis(100),
        retry_max_delay: Duration::from_secs(1),
        alert_after: Duration::from_secs(3600),
    };
    let (_head, head_rx) = watch::channel(events);
    let store = Store::open_existing(&path, BUSY_TIMEOUT)?;
    let started = Instant::now();
    let sinks = runtime.block_on(async { Sinks::start(vec![settings], path.clone(), head_rx) });
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let cursor = consumers::cursor(store.conn(), &consumers::sink_consumer("bench"))?;
        if cursor == Some(events) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{name}: stuck at {cursor:?}"
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    runtime.block_on(sinks.stop());
    println!(
        "{name:<34} {seconds:>9.2} {:>12.0}",
        events as f64 / seconds
    );
    Ok(())
}

fn fill(path: &Path, events: i64) -> Result<(), Box<dyn std::error::Error>> {
    let mut store = Store::open(path)?;
    let source = EventSource::new(CORP);
    let mut next = 1;
    while next <= events {
        let drafts: Vec<EventDraft> = (next..=(next + 9_999).min(events))
            .map(member_joined)
            .collect();
        next += drafts.len() as i64;
        store.write(|tx| event_log::append(tx, &source, Some(1), &drafts, Utc::now()))?;
    }
    Ok(())
}

/// A member as a first sync reports it.
fn member_joined(n: i64) -> EventDraft {
    let userid = format!("user{n:06}");
    EventDraft {
        kind: EventType::MemberJoined,
        subject: format!("member/{userid}"),
        data: json!({
            "userid": userid,
            "member": {
                "userid": userid, "name": "陈静", "alias": "Lily", "position": "前端工程师",
                "mobile": format!("159{:08}", n % 100_000_000),
                "email": format!("{userid}@xinghe.example.com"),
                "biz_mail": format!("{userid}@xinghe.exmail.example.com"),
                "gender": "2", "status": 1, "telephone": "",
                "departments": [{"id": 3, "order": 0, "is_leader": false}],
                "main_department": 3, "direct_leaders": ["liuyang"],
                "extattr": {"attrs": [
                    {"type": 0, "name": "工号", "text": {"value": format!("XH{n:06}")}},
                    {"type": 1, "name": "个人主页", "web": {"url": format!("https://xinghe.example.com/~{userid}"), "title": "主页"}},
                ]},
            },
        }),
    }
}

/// A receiver that answers every POST with 204; its address.
async fn webhook_receiver() -> std::net::SocketAddr {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/hook",
        post(|_body: axum::body::Bytes| async { axum::http::StatusCode::NO_CONTENT }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A `nats-server -js` on a free loopback port, once it listens; `None` when not installed.
fn nats_server() -> Option<(std::process::Child, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .arg("-sd")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, format!("nats://127.0.0.1:{port}"), dir))
}
