//! Shared harness for the integration tests: a simulated WeCom tenant in the test process,
//! a config in a temp dir pointing at it, and the real `orgsync` binary run against both.
//!
//! Every wait is bounded: a test that would hang fails with a message instead.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use orgsync::model::{Department, Member, Snapshot};
use orgsync_simulator::{Directory, Simulator};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// Generous: CI runs on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// `[wecom]` keys that keep WeCom retries in milliseconds rather than seconds, for tests that
/// make calls fail: two retries, the first after 20 ms.
pub const FAST_WECOM: &str = "retry_attempts = 2\nretry_base_delay_ms = 20\n";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sim: Simulator,
    pub config_path: PathBuf,
}

impl Env {
    pub async fn new(directory: Directory) -> Env {
        Env::with_config(directory, "").await
    }

    /// `extra` is appended to the generated config (whole sections, e.g. `[safety]\n...`).
    pub async fn with_config(directory: Directory, extra: &str) -> Env {
        Env::with_wecom(directory, "", extra).await
    }

    /// Like [`Env::with_config`], with `wecom` lines added to the `[wecom]` section.
    pub async fn with_wecom(directory: Directory, wecom: &str, extra: &str) -> Env {
        let sim = Simulator::start(directory).await.expect("start simulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, sim.directory().corp_secret).expect("write secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .expect("chmod secret");
        let env = Env {
            config_path: dir.path().join("orgsync.toml"),
            dir,
            sim,
        };
        env.write_config(wecom, extra);
        env
    }

    /// Rewrites the config file: the generated `[wecom]`, `[store]` and `[socket]` sections
    /// with `wecom` lines added to `[wecom]`, then `extra`.
    pub fn write_config(&self, wecom: &str, extra: &str) {
        let config = format!(
            "[wecom]\ncorp_id = \"{}\"\ncorp_secret_file = \"secret\"\napi_base = \"{}\"\n{wecom}\n\
             [store]\npath = \"orgsync.db\"\n\n[socket]\npath = \"orgsync.sock\"\n\n{extra}",
            self.sim.directory().corp_id,
            self.sim.api_base()
        );
        std::fs::write(&self.config_path, config).expect("write config");
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("orgsync.sock")
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("orgsync.db")
    }

    /// `orgsync ARGS --config CONFIG`, in an environment cleaned of anything that would
    /// change its behaviour (ORGSYNC_* overrides, systemd variables).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orgsync"));
        command.args(args).arg("--config").arg(&self.config_path);
        clean_env(&mut command);
        command.kill_on_drop(true);
        command
    }

    /// Runs a command to completion.
    pub async fn run(&self, args: &[&str]) -> Output {
        let output = tokio::time::timeout(WAIT, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("orgsync {args:?} did not finish within {WAIT:?}"))
            .expect("run orgsync");
        output
    }

    /// `orgsync sync`, asserting success.
    pub async fn sync(&self) -> Output {
        let output = self.run(&["sync"]).await;
        assert!(
            output.status.success(),
            "orgsync sync failed: {}",
            describe(&output)
        );
        output
    }

    /// Every stored event with `seq > since`, through `orgsync events`.
    pub async fn events_since(&self, since: i64) -> Vec<Value> {
        let output = self.run(&["events", "--since", &since.to_string()]).await;
        assert!(
            output.status.success(),
            "orgsync events: {}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect()
    }

    /// Starts `orgsync run` and waits until its socket answers.
    pub async fn start_daemon(&self) -> DaemonProcess {
        let child = self
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orgsync run");
        let daemon = DaemonProcess { child };
        let socket = self.socket_path();
        tokio::time::timeout(WAIT, async {
            // The socket appearing and accepting is the daemon's readiness signal.
            loop {
                if UnixStream::connect(&socket).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the daemon's socket did not come up");
        daemon
    }

    pub async fn subscribe(&self, request: Value) -> Subscriber {
        Subscriber::connect(&self.socket_path(), request).await
    }

    /// `orgsync ARGS` as a child with stdout and stderr piped, for tests that signal or kill it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orgsync")
    }

    /// The store as it is on disk, read without orgsync: the mirror, every event and every
    /// run. A store that does not exist yet is empty.
    pub fn state(&self) -> StoreState {
        StoreState::read(&self.store_path())
    }

    /// The daemon's `status` reply over the socket.
    pub async fn daemon_status(&self) -> Value {
        let reply = tokio::time::timeout(
            WAIT,
            orgsync::socket::request(&self.socket_path(), &serde_json::json!({"op": "status"})),
        )
        .await
        .expect("status reply in time")
        .expect("status request");
        assert_eq!(reply["ok"], true, "{reply}");
        reply["status"].clone()
    }
}

/// Everything a run can change, read straight from the SQLite file (read-only), so that a test
/// can say "unchanged" or "exactly what replaying the events gives".
#[derive(Debug, Clone, PartialEq)]
pub struct StoreState {
    pub mirror: Snapshot,
    /// `(seq, type, body)` of every stored event.
    pub events: Vec<(i64, String, String)>,
    /// `(id, outcome)` of every run.
    pub runs: Vec<(i64, String)>,
}

impl StoreState {
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
pub fn replay(events: &[Value]) -> Snapshot {
    let mut snapshot = Snapshot::default();
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

/// The one line `orgsync` prints on stderr when a command fails (logs may precede it).
pub fn error_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_no_panic(&stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("orgsync: "))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one `orgsync: ...` line on stderr:\n{stderr}"
    );
    lines[0].to_owned()
}

pub fn assert_no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked"),
        "orgsync panicked; stderr:\n{stderr}"
    );
}

/// The types of the events, in order.
pub fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect()
}

pub fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORGSYNC_") {
            command.env_remove(&key);
        }
    }
    for key in [
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
        "RUST_LOG",
    ] {
        command.env_remove(key);
    }
}

pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub struct DaemonProcess {
    pub child: Child,
}

impl DaemonProcess {
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("daemon still running") as libc::pid_t;
        // SAFETY: sending a signal to our own child process.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal})");
    }

    /// Waits for the process to exit and returns its status code and stderr.
    pub async fn wait(mut self) -> (Option<i32>, String) {
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = tokio::time::timeout(WAIT, pipe.read_to_string(&mut stderr)).await;
        }
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("daemon did not exit")
            .expect("wait for daemon");
        (status.code(), stderr)
    }
}

/// A host application's connection: the subscribe reply, then events.
pub struct Subscriber {
    lines: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    pub reply: Value,
}

impl Subscriber {
    pub async fn connect(path: &Path, request: Value) -> Subscriber {
        let stream = UnixStream::connect(path).await.expect("connect to socket");
        let (read, write) = stream.into_split();
        let mut subscriber = Subscriber {
            lines: BufReader::new(read),
            write,
            reply: Value::Null,
        };
        subscriber.send(&request).await;
        subscriber.reply = subscriber.next().await;
        subscriber
    }

    pub async fn send(&mut self, request: &Value) {
        self.write
            .write_all(format!("{request}\n").as_bytes())
            .await
            .expect("send request");
    }

    /// The next line, as JSON.
    pub async fn next(&mut self) -> Value {
        let mut line = String::new();
        let read = tokio::time::timeout(WAIT, self.lines.read_line(&mut line))
            .await
            .expect("no line from the daemon in time")
            .expect("read from socket");
        assert!(read > 0, "the daemon closed the connection");
        serde_json::from_str(&line).expect("a JSON line")
    }

    /// Events up to and including the next `orgsync.sync.*` outcome event.
    pub async fn run_events(&mut self) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            let done = event["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("orgsync.sync."));
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

/// `(type, subject)` of each event, for compact assertions.
pub fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["subject"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Asserts what every failed `orgsync sync` must show: exit status 1, one `orgsync:` line on
/// stderr naming the failure's `code`, the mirror exactly as `before`, and exactly one new
/// event, `orgsync.sync.failed` with that code and a message. Returns the stderr line and the
/// event's `data.error`.
pub fn assert_failed(
    before: &StoreState,
    env: &Env,
    output: &Output,
    code: &str,
) -> (String, Value) {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    let line = error_line(output);
    assert!(line.contains(&format!("failed ({code})")), "{line}");
    let after = env.state();
    assert_eq!(
        after.mirror, before.mirror,
        "a failed run changed the mirror"
    );
    assert_eq!(after.events[..before.events.len()], before.events[..]);
    let new = &after.event_values()[before.events.len()..];
    assert_eq!(types(new), ["orgsync.sync.failed"], "{new:?}");
    let error = new[0]["data"]["error"].clone();
    assert_eq!(error["code"], code, "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty() && line.ends_with(message),
        "{line}\n{error}"
    );
    let run = new[0]["data"]["run"].as_str().expect("run id");
    assert_eq!(
        after.outcome(run.parse().expect("numeric run id")),
        Some("failed")
    );
    (line, error)
}
