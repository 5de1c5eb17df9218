//! Freshness through callbacks: from a change in WeCom to its event on the socket, and what a
//! burst of callbacks (a department move) costs.
//!
//! ```sh
//! cargo build --release --bin orgsync --example bench_callbacks
//! target/release/examples/bench_callbacks --members 10000 --changes 200 --burst 5000
//! ```
//!
//! The simulator runs in this process (it sends the callbacks) with a generated company; the
//! release binary next to this one runs as `orgsync run` with `[callback]` on loopback, after
//! an `orgsync sync` filled its store. A subscriber reads the socket from the store's head.
//!
//! 1. **Latency**: `--changes` members get a new position, one every `--interval-ms`; each
//!    change is timed from the simulator's edit (when the callback goes out) to its
//!    `orgsync.member.updated` on the socket. The daemon collects a burst for about two seconds
//!    before its callback run, so the latency is that wait plus the run.
//! 2. **Burst**: `--burst` members move to another department in one edit, which sends one
//!    callback each; timed from the edit to the last of their events, with the callbacks the
//!    receiver recorded and the daemon's CPU time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

#[path = "support/tenant.rs"]
mod tenant;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use clap::Parser;
use orgsync_simulator::{CallbackTarget, Directory, Payload, Simulator};
use serde_json::{json, Value};
use tenant::{cpu, orgsync_command, Reaped};

const TOKEN: &str = "benchtoken";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

#[derive(Parser)]
#[command(about = "WeCom change to socket event through callbacks; the cost of a burst")]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    /// Changes timed one by one.
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Time between two changes.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Members moved in one edit.
    #[arg(long, default_value_t = 5_000)]
    burst: usize,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let directory = Directory::generate(2024, (args.members / 20).max(1), args.members);
    let sim = runtime.block_on(Simulator::start(directory)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let info = sim.directory();
    std::fs::write(path("secret"), &info.corp_secret).unwrap();
    std::fs::write(path("callback.token"), TOKEN).unwrap();
    std::fs::write(path("callback.key"), KEY).unwrap();
    let config = path("orgsync.toml");
    std::fs::write(
        &config,
        format!(
            "[wecom]\ncorp_id = \"{}\"\ncorp_secret_file = \"secret\"\napi_base = \"{}\"\n\
             [store]\npath = \"orgsync.db\"\n[socket]\npath = \"orgsync.sock\"\n\
             [safety]\nmax_delete_ratio = 1.0\n\
             [callback]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"callback.token\"\n\
             encoding_aes_key_file = \"callback.key\"\n",
            info.corp_id,
            sim.api_base()
        ),
    )
    .unwrap();
    tenant::sync(&config);
    let daemon = Reaped(
        orgsync_command()
            .args(["run", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(path("daemon.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let url = loop {
        let log = std::fs::read_to_string(path("daemon.log")).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("callback listening")) {
            let addr = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            break format!("http://{addr}/wecom/callback");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while UnixStream::connect(path("orgsync.sock")).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _guard = runtime.enter();
    sim.send_callbacks(Some(CallbackTarget {
        url,
        token: TOKEN.into(),
        encoding_aes_key: KEY.into(),
        payload: Payload::Full,
    }))
    .unwrap();
    let mut socket = Subscriber::open(&path("orgsync.sock"));
    println!(
        "{} members; {} changes one every {} ms; a burst of {}",
        args.members, args.changes, args.interval_ms, args.burst
    );

    // 1. Latency.
    let users: Vec<String> = info.users.iter().map(|u| u.userid.clone()).collect();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    let mut next_change = 0;
    let mut next_at = Instant::now();
    while latencies.len() < args.changes {
        if next_change < args.changes && Instant::now() >= next_at {
            let userid = users[next_change].clone();
            sim.edit(|d| {
                let user = d.users.iter_mut().find(|u| u.userid == userid).unwrap();
                user.position = format!("bench {next_change}");
            });
            sent.insert(userid, Instant::now());
            next_change += 1;
            next_at += Duration::from_millis(args.interval_ms);
        }
        if let Some(event) = socket.next(Duration::from_millis(5)) {
            if event["type"] == "orgsync.member.updated" {
                let userid = event["data"]["userid"].as_str().unwrap_or_default();
                if let Some(at) = sent.remove(userid) {
                    latencies.push(at.elapsed());
                }
            }
        }
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "latency over {} changes: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        latencies.len(),
        pct(0.5).as_secs_f64(),
        pct(0.99).as_secs_f64(),
        pct(1.0).as_secs_f64()
    );

    // 2. Burst: move members into another department in one edit.
    let target = info.departments.last().unwrap().id;
    // Members not in the target department already, so that each move is a change.
    let moved: Vec<String> = info
        .users
        .iter()
        .skip(args.changes)
        .filter(|u| u.department != [target])
        .take(args.burst)
        .map(|u| u.userid.clone())
        .collect();
    let cpu_before = cpu(daemon.0.id());
    let before_burst = sim
        .callbacks_sent()
        .delivered
        .load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let moving: std::collections::HashSet<&str> = moved.iter().map(String::as_str).collect();
    sim.edit(|d| {
        for user in d
            .users
            .iter_mut()
            .filter(|u| moving.contains(u.userid.as_str()))
        {
            user.department = vec![target];
            user.order = vec![0];
            user.is_leader_in_dept = vec![0];
            user.main_department = target;
        }
    });
    let mut remaining: std::collections::HashSet<&str> = moved.iter().map(String::as_str).collect();
    let mut runs = 0;
    while !remaining.is_empty() {
        let Some(event) = socket.next(Duration::from_secs(120)) else {
            panic!("{} moved members never arrived", remaining.len());
        };
        match event["type"].as_str() {
            Some("orgsync.member.updated") => {
                remaining.remove(event["data"]["userid"].as_str().unwrap_or_default());
            }
            Some("orgsync.sync.completed") => runs += 1,
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let delivered = |sim: &Simulator| {
        sim.callbacks_sent()
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    println!(
        "burst of {}: every event {:.1} s after the edit, by run {} ({} callbacks delivered by then)",
        moved.len(),
        seconds,
        runs,
        delivered(&sim) - before_burst,
    );
    // Until every callback is delivered, recorded and covered by a run.
    loop {
        let status = request(&path("orgsync.sock"), &json!({"op": "status"}));
        let callbacks = &status["status"]["daemon"]["callbacks"];
        let done = delivered(&sim) - before_burst >= moved.len() as u64
            && callbacks["pending"] == 0
            && status["status"]["daemon"]["running"].is_null()
            && status["status"]["daemon"]["queued"] == false;
        if done {
            break;
        }
        while socket.next(Duration::from_millis(1)).is_some() {}
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "burst of {}: all its callbacks delivered, recorded and covered by a run {:.1} s after the edit; daemon CPU {:.2} s",
        moved.len(),
        started.elapsed().as_secs_f64(),
        cpu(daemon.0.id()) - cpu_before
    );
    // What the daemon's callback runs spent, from their summary lines.
    let log = std::fs::read_to_string(path("daemon.log")).unwrap_or_default();
    let field = |line: &str, name: &str| -> u64 {
        line.split(&format!(" {name}="))
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let runs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sync completed") && l.contains("trigger=callback"))
        .collect();
    let total = |name: &str| runs.iter().map(|l| field(l, name)).sum::<u64>();
    println!(
        "{} callback runs: pull (user/get) {} ms, compare {} ms, apply and events {} ms, commit {} ms in all",
        runs.len(),
        total("pull_ms"),
        total("load_ms") + total("diff_ms"),
        total("apply_ms") + total("events_ms") + total("match_ms"),
        total("commit_ms")
    );
    drop(daemon);
}

/// A subscriber from the store's head, read with a timeout.
struct Subscriber {
    lines: BufReader<UnixStream>,
    /// A line read in part when a timeout struck.
    partial: String,
}

impl Subscriber {
    fn open(path: &std::path::Path) -> Subscriber {
        let status = request(path, &json!({"op": "status"}));
        let head = status["status"]["events"]["head"].as_i64().unwrap_or(0);
        let mut stream = UnixStream::connect(path).unwrap();
        writeln!(stream, "{}", json!({"op": "subscribe", "since": head})).unwrap();
        let mut lines = BufReader::new(stream);
        let mut reply = String::new();
        lines.read_line(&mut reply).unwrap();
        Subscriber {
            lines,
            partial: String::new(),
        }
    }

    fn next(&mut self, timeout: Duration) -> Option<Value> {
        self.lines
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
        // On a timeout, what was read of the line stays in `partial` for the next call.
        let _ = self.lines.read_line(&mut self.partial);
        if !self.partial.ends_with('\n') {
            return None;
        }
        let line = std::mem::take(&mut self.partial);
        serde_json::from_str(&line).ok()
    }
}

fn request(path: &std::path::Path, request: &Value) -> Value {
    let mut stream = UnixStream::connect(path).unwrap();
    writeln!(stream, "{request}").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}
