//! Shared harness for the integration tests: a simulated WeCom tenant in the test process,
//! a config in a temp dir pointing at it, and the real `orgsync` binary run against both.
//!
//! Every wait is bounded: a test that would hang fails with a message instead.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use orgsync::simulator::{Directory, Simulator};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// Generous: CI runs on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

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
        let sim = Simulator::start(directory).await.expect("start simulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, sim.directory().corp_secret).expect("write secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .expect("chmod secret");
        let config = format!(
            "[wecom]\ncorp_id = \"{}\"\ncorp_secret_file = \"secret\"\napi_base = \"{}\"\n\n\
             [store]\npath = \"orgsync.db\"\n\n[socket]\npath = \"orgsync.sock\"\n\n{extra}",
            sim.directory().corp_id,
            sim.api_base()
        );
        let config_path = dir.path().join("orgsync.toml");
        std::fs::write(&config_path, config).expect("write config");
        Env {
            dir,
            sim,
            config_path,
        }
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
