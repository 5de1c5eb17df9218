//! The read side at scale: how long a full snapshot of a 100,000-member directory takes over
//! the socket and over HTTP, how much the daemon's memory grows while it serves one (it
//! streams: the mirror is never loaded whole), and how fast one consumer pages through the
//! first sync's events with `GET /v1/events`.
//!
//! ```sh
//! cargo build --release && cargo run --release --example bench_snapshot -- --members 100000
//! ```
//!
//! It runs the release binary next to it as three processes, so the daemon's numbers are its
//! own: `orgsync simulator --members N` serves a generated company, `orgsync sync` fills a
//! store in a temporary directory, and `orgsync run` serves it. The driver reads the snapshot
//! as a host application would and samples the daemon's RSS from /proc while it does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

#[path = "support/tenant.rs"]
mod tenant;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tenant::Tenant;

#[derive(Parser)]
#[command(about = "A full snapshot over the socket: time and the daemon's RSS growth")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args = Args::parse();
    let tenant = Tenant::synced(
        args.members,
        "[http]\nlisten = \"127.0.0.1:0\"\n[[http.tokens]]\nname = \"bench\"\nscope = \"read\"\n\
         token_file = \"read.token\"\n",
        &[("read.token", TOKEN)],
    );
    let daemon = tenant.serve();
    let socket = tenant.socket.clone();
    let pid = daemon.0.id();
    let http = http_address(&tenant.path("daemon.log"));
    println!(
        "transport,members,seconds,lines,mib,daemon_rss_before_mib,daemon_rss_peak_mib,growth_mib"
    );
    for round in 0..args.repeat * 2 {
        let over_http = round % 2 == 1;
        let before = rss_kib(pid);
        let peak = Arc::new(AtomicU64::new(before));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let started = Instant::now();
        let (lines, bytes) = match over_http {
            false => snapshot(&socket),
            true => http_snapshot(&http),
        };
        let seconds = started.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        let peak = peak.load(Ordering::Relaxed);
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "{},{},{seconds:.2},{lines},{:.1},{:.1},{:.1},{:.1}",
            if over_http { "http" } else { "socket" },
            args.members,
            bytes as f64 / (1 << 20) as f64,
            mib(before),
            mib(peak),
            mib(peak.saturating_sub(before))
        );
    }
    events_throughput(&http);
}

/// The read token the daemon is configured with.
const TOKEN: &str = "bench-read-token-0123456789";

/// Pages through every event with `GET /v1/events`, as one consumer catching up would.
fn events_throughput(http: &str) {
    let mut since = 0;
    let (mut events, mut pages) = (0, 0);
    let started = Instant::now();
    loop {
        let (head, body) = get(http, &format!("/v1/events?since={since}&limit=10000"));
        let next: i64 = header(&head, "x-orgsync-next-since").parse().unwrap();
        let count = body.lines().count();
        if count == 0 {
            break;
        }
        events += count;
        pages += 1;
        since = next;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "events over http: {events} in {pages} pages of up to 10,000, {seconds:.2} s, {:.0} events/s",
        events as f64 / seconds
    );
}

/// `http listening addr=...` from the daemon's log.
fn http_address(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("http listening")) {
            let addr = line.split("addr=").nth(1).unwrap();
            return addr.split_whitespace().next().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no `http listening` line:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A whole snapshot over HTTP (chunked); returns its lines and bytes.
fn http_snapshot(http: &str) -> (usize, usize) {
    let (_, body) = get(http, "/v1/snapshot");
    let last = body.lines().last().unwrap();
    assert!(
        last.starts_with("{\"ok\":true,\"op\":\"snapshot\""),
        "{last}"
    );
    (body.lines().count(), body.len())
}

/// One GET over a fresh connection, HTTP/1.1 with a chunked or sized body: the header block
/// and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = Vec::new();
    if header(&head, "transfer-encoding") == "chunked" {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            std::io::Read::read_exact(&mut reader, &mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        std::io::Read::read_to_end(&mut reader, &mut body).unwrap();
    }
    (head, String::from_utf8(body).unwrap())
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
        .unwrap_or("")
}

/// Reads a whole snapshot; returns its lines and bytes.
fn snapshot(socket: &Path) -> (usize, usize) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(b"{\"op\":\"snapshot\"}\n").unwrap();
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let (mut lines, mut bytes) = (0, 0);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).unwrap();
        assert!(read > 0, "the daemon closed the snapshot early");
        lines += 1;
        bytes += read;
        if line.starts_with("{\"ok\"") {
            assert!(line.contains("\"op\":\"snapshot\""), "{line}");
            return (lines, bytes);
        }
    }
}
