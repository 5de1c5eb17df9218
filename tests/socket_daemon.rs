//! The socket of the real `orgsync run` binary, against the simulated WeCom tenant, as host
//! applications meet it: the Python example client, a stalled consumer's cost in memory, and
//! retention at start-up. Every wait is for a line, a reply or a process, bounded by a timeout
//! that fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use orgsync::events::{EventDraft, EventSource, EventType};
use orgsync::store::{consumers, event_log, Store};
use orgsync_simulator::{Directory, SimUser, Simulator};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// A simulated tenant and the config of a daemon against it, in a temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    simulator: Simulator,
    /// Runs the simulator's server; dropped after it.
    _runtime: tokio::runtime::Runtime,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let simulator = runtime
            .block_on(Simulator::start(Directory::sample()))
            .expect("simulator");
        let directory = simulator.directory();
        std::fs::write(dir.path().join("corp_secret"), &directory.corp_secret).expect("secret");
        let config = dir.path().join("orgsync.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[wecom]
corp_id = "{corp_id}"
corp_secret_file = "corp_secret"
api_base = "{api_base}"

[store]
path = "orgsync.db"

[socket]
path = "orgsync.sock"

[log]
level = "warn"
"#,
                corp_id = directory.corp_id,
                api_base = simulator.api_base(),
            ),
        )
        .expect("config");
        Setup {
            dir,
            _runtime: runtime,
            simulator,
            config,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("orgsync.sock")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("orgsync.db")
    }

    /// Starts `orgsync run` and waits until its socket answers.
    fn start_daemon(&self) -> Daemon {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_orgsync"))
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start orgsync run");
        let mut daemon = Daemon {
            child,
            log: self.dir.path().join("daemon.log"),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = daemon.child.try_wait().expect("child status") {
                panic!("orgsync run exited with {status}: {}", daemon.log());
            }
            if let Ok(mut client) = Client::connect(&self.socket()) {
                if client.request(json!({"op": "status"}))["ok"] == true {
                    return daemon;
                }
            }
            assert!(Instant::now() < deadline, "not ready: {}", daemon.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the first sync's events; returns them as (seq, type, data).
    fn first_sync(&self) -> Vec<(i64, String, Value)> {
        let mut client = Client::connect(&self.socket()).expect("connect");
        let reply = client.request(json!({"op": "subscribe", "since": 0}));
        assert_eq!(reply["ok"], true, "{reply}");
        let mut events = Vec::new();
        loop {
            let event = client.line();
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
    fn resync(&self) {
        let mut watcher = Client::connect(&self.socket()).expect("connect");
        let reply = watcher.request(json!({"op": "subscribe", "types": ["orgsync.sync.*"]}));
        assert_eq!(reply["ok"], true, "{reply}");
        let mut admin = Client::connect(&self.socket()).expect("connect");
        assert_eq!(admin.request(json!({"op": "resync"}))["queued"], true);
        assert_eq!(watcher.line()["type"], "orgsync.sync.completed");
    }
}

/// The running binary; stopped with SIGTERM when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("child status") {
                assert!(status.success(), "orgsync run exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("orgsync run did not stop on SIGTERM: {}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.terminate();
        } else {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A blocking client; every read is bounded by [`WAIT`].
struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(path: &Path) -> std::io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(WAIT))?;
        Ok(Client {
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(1 << 16, stream),
        })
    }

    fn send(&mut self, request: Value) {
        self.writer
            .write_all(format!("{request}\n").as_bytes())
            .expect("send");
    }

    fn raw_line(&mut self, line: &mut Vec<u8>) {
        line.clear();
        let read = self.reader.read_until(b'\n', line).expect("a line in time");
        assert!(read > 0, "the daemon closed the connection");
    }

    fn line(&mut self) -> Value {
        let mut line = Vec::new();
        self.raw_line(&mut line);
        serde_json::from_slice(&line).expect("a JSON line")
    }

    fn request(&mut self, request: Value) -> Value {
        self.send(request);
        self.line()
    }
}

/// The `seq` of an event line, found without parsing the whole line: this test measures the
/// daemon, and a debug-build JSON parser would dominate its time.
fn seq_of(line: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"seq\":";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
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

#[test]
fn a_stalled_consumer_costs_the_daemon_no_memory_while_another_reads_100k_events() {
    let setup = Setup::new();
    let daemon = setup.start_daemon();
    let first = setup.first_sync();
    let head = first.last().expect("events").0;
    // Real member objects from the first sync, reused as the data of the updates below.
    let members: Vec<Value> = first
        .iter()
        .filter(|(_, kind, _)| kind == "orgsync.member.joined")
        .map(|(_, _, data)| data.clone())
        .collect();

    let mut stalled = Client::connect(&setup.socket()).expect("connect");
    let reply = stalled.request(json!({"op": "subscribe", "since": head}));
    assert_eq!(reply["ok"], true, "{reply}");

    let read = Arc::new(AtomicI64::new(head));
    let (done, finished) = mpsc::channel();
    let reader = {
        let read = Arc::clone(&read);
        let mut client = Client::connect(&setup.socket()).expect("connect");
        let reply = client.request(json!({"op": "subscribe", "since": head}));
        assert_eq!(reply["ok"], true, "{reply}");
        std::thread::spawn(move || {
            let mut line = Vec::new();
            for expected in head + 1..=head + PRODUCED {
                client.raw_line(&mut line);
                assert_eq!(seq_of(&line), Some(expected));
                read.store(expected, Ordering::Relaxed);
            }
            let _ = done.send(());
        })
    };

    let mut store = Store::open(&setup.store()).expect("open store");
    let source = EventSource::new(&setup.simulator.directory().corp_id);
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
    let wait_read = |upto: i64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while read.load(Ordering::Relaxed) < upto {
            assert!(!reader.is_finished(), "the reader failed");
            assert!(Instant::now() < deadline, "the reader is stuck at {read:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    produce(WARM_UP);
    wait_read(head + WARM_UP);
    let (baseline, _) = memory_kib(daemon.pid());
    let mut peak_sampled = baseline;
    for _ in 0..(PRODUCED - WARM_UP) / PER_COMMIT as i64 {
        produce(PER_COMMIT as i64);
        peak_sampled = peak_sampled.max(memory_kib(daemon.pid()).0);
    }
    finished
        .recv_timeout(Duration::from_secs(120))
        .expect("the reader gets every event");
    reader.join().expect("reader thread");
    let (rss, hwm) = memory_kib(daemon.pid());
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
        stalled.raw_line(&mut line);
        assert_eq!(seq_of(&line), Some(expected));
    }
    daemon.stop();
}

/// Reads the example's stdout on a thread of its own, so that every wait can be bounded.
fn lines_of(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// The seqs of the next `n` summary lines (`SEQ TYPE SUBJECT`) the example prints.
fn printed_seqs(lines: &mpsc::Receiver<String>, n: usize) -> Vec<i64> {
    (0..n)
        .map(|_| {
            let line = lines
                .recv_timeout(WAIT)
                .expect("the example prints an event");
            line.split(' ')
                .next()
                .and_then(|seq| seq.parse().ok())
                .unwrap_or_else(|| panic!("not an event summary: {line}"))
        })
        .collect()
}

fn python_example(setup: &Setup, args: &[&str]) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/subscribe.py");
    Command::new("python3")
        .arg(script)
        .arg("--socket")
        .arg(setup.socket())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed to run examples/subscribe.py; install it (CI does)")
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return status;
        }
        assert!(Instant::now() < deadline, "the example did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cursor(setup: &Setup, consumer: &str) -> Option<i64> {
    let store = Store::open(&setup.store()).expect("open store");
    consumers::cursor(store.conn(), consumer).expect("cursor")
}

/// One more member in the simulated tenant, for the next sync to report.
fn hire(setup: &Setup, userid: &str) {
    setup
        .simulator
        .edit(|directory| directory.users.push(SimUser::new(userid, "新同事", &[1])));
}

#[test]
fn the_python_example_prints_acks_and_resumes_across_restarts() {
    let setup = Setup::new();
    let daemon = setup.start_daemon();
    let head = setup.first_sync().last().expect("events").0;

    // From the start, a given number of events, then exit with them acknowledged.
    let mut first = python_example(
        &setup,
        &[
            "--consumer",
            "py-host",
            "--since",
            "0",
            "--count",
            &head.to_string(),
        ],
    );
    let lines = lines_of(first.stdout.take().expect("stdout"));
    assert_eq!(
        printed_seqs(&lines, head as usize),
        (1..=head).collect::<Vec<_>>()
    );
    assert!(wait_exit(&mut first).success());
    assert_eq!(cursor(&setup, "py-host"), Some(head));

    // Without --since it resumes after its ack: only the next run's events come.
    let mut second = python_example(&setup, &["--consumer", "py-host"]);
    let lines = lines_of(second.stdout.take().expect("stdout"));
    hire(&setup, "xinren1");
    setup.resync();
    assert_eq!(printed_seqs(&lines, 2), vec![head + 1, head + 2]);

    // The daemon restarts under it: it reconnects and carries on, with nothing twice.
    daemon.stop();
    let daemon = setup.start_daemon();
    hire(&setup, "xinren2");
    setup.resync();
    assert_eq!(printed_seqs(&lines, 2), vec![head + 3, head + 4]);

    // Stopped by a service manager, it acknowledges what it printed before exiting.
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(second.id() as libc::pid_t, libc::SIGTERM) };
    assert!(wait_exit(&mut second).success());
    assert_eq!(cursor(&setup, "py-host"), Some(head + 4));
    assert!(
        lines.recv_timeout(Duration::from_millis(100)).is_err(),
        "printed more than the new events"
    );
    daemon.stop();
}

#[test]
fn the_python_example_reports_a_gap_and_exits_3() {
    let setup = Setup::new();
    {
        let mut store = Store::open(&setup.store()).expect("open store");
        let source = EventSource::new("unused");
        let old = vec![
            EventDraft {
                kind: EventType::SyncCompleted,
                subject: "run/0".into(),
                data: json!({}),
            };
            5
        ];
        store
            .write(|tx| {
                event_log::append(tx, &source, None, &old, Utc::now() - TimeDelta::days(40))
            })
            .expect("append");
    }
    let _daemon = setup.start_daemon();
    // Pruned at start-up, as events.retention_days (30 by default) says.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut client = Client::connect(&setup.socket()).expect("connect");
        let status = client.request(json!({"op": "status"}));
        if status["status"]["events"]["oldest"]
            .as_i64()
            .is_none_or(|oldest| oldest > 5)
        {
            break;
        }
        assert!(Instant::now() < deadline, "not pruned: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut example = python_example(&setup, &["--consumer", "late", "--since", "0"]);
    assert_eq!(wait_exit(&mut example).code(), Some(3));
}
