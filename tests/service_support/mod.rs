//! What the service tests share: the real `orgsync` binary, run against the simulator in a
//! temporary directory, and the systemd notify socket a test can stand in for. Every wait is
//! for an event (a notification, a process exit), bounded by [`WAIT`].

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use orgsync_simulator::Simulator;
use tokio::net::UnixDatagram;

pub const BIN: &str = env!("CARGO_BIN_EXE_orgsync");

/// Generous: the CI machine is a loaded 2-core box. Nothing waits this long when all is well.
pub const WAIT: Duration = Duration::from_secs(60);

/// A directory holding a config for the simulator, its secret (mode 0600), the store and the
/// socket.
pub struct Instance {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Instance {
    /// `extra` is TOML with dotted keys (`safety.max_deletes = 0`).
    pub fn new(sim: &Simulator, extra: &str) -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let directory = sim.directory();
        let secret = dir.path().join("secret");
        fs::write(&secret, format!("{}\n", directory.corp_secret)).expect("write the secret");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = dir.path().join("orgsync.toml");
        fs::write(
            &config,
            format!(
                "wecom.corp_id = \"{}\"\nwecom.corp_secret_file = \"secret\"\n\
                 wecom.api_base = \"{}\"\nstore.path = \"orgsync.db\"\n\
                 socket.path = \"orgsync.sock\"\n{extra}\n",
                directory.corp_id,
                sim.api_base()
            ),
        )
        .expect("write the config");
        Instance { dir, config }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `orgsync ARGS --config CONFIG` with an empty environment, so that the test's own
    /// (RUST_LOG, ORGSYNC_*, NOTIFY_SOCKET, JOURNAL_STREAM) cannot change what it does.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_clear()
            .stdin(Stdio::null());
        command
    }
}

/// Runs a command to its end without blocking the runtime the simulator serves on.
pub async fn output(mut command: Command) -> Output {
    let output = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || command.output()))
        .await
        .expect("the command ends in time")
        .expect("the blocking task runs")
        .expect("the command starts");
    output
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A daemon started by the test. Dropping it kills it, so a failed test leaves nothing behind.
pub struct Daemon {
    child: Option<Child>,
    pub pid: u32,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `command` with its output going to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> Daemon {
        let file = fs::File::create(log).expect("create the log file");
        let child = command
            .stdout(file.try_clone().expect("dup the log file"))
            .stderr(file)
            .spawn()
            .expect("the daemon starts");
        Daemon {
            pid: child.id(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal; the pid is our child, not yet reaped.
        let sent = unsafe { libc::kill(self.pid as libc::pid_t, signal) };
        assert_eq!(sent, 0, "cannot signal the daemon");
    }

    /// Waits for the daemon to exit by itself.
    pub async fn exit(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("not yet waited for");
        let waited =
            tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || child.wait())).await;
        match waited {
            Ok(status) => status
                .expect("the blocking task runs")
                .expect("wait for the daemon"),
            Err(_) => {
                self.signal(libc::SIGKILL);
                panic!(
                    "the daemon did not exit within {WAIT:?}:\n{}",
                    self.output()
                );
            }
        }
    }

    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The test's stand-in for systemd's notify socket.
pub struct NotifySocket {
    socket: UnixDatagram,
    pub path: PathBuf,
    /// Every datagram received so far, in order.
    pub received: Vec<String>,
}

impl NotifySocket {
    pub fn bind(path: PathBuf) -> NotifySocket {
        NotifySocket {
            socket: UnixDatagram::bind(&path).expect("bind the notify socket"),
            path,
            received: Vec::new(),
        }
    }

    /// The next datagram that `matches`; the ones before it are kept in `received`.
    pub async fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buffer = vec![0; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.socket.recv(&mut buffer)).await {
                Ok(Ok(length)) => {
                    let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
                    self.received.push(message.clone());
                    if matches(&message) {
                        return message;
                    }
                }
                Ok(Err(error)) => panic!("cannot read the notify socket: {error}"),
                Err(_) => panic!(
                    "no notification {what} within {WAIT:?}; received {:#?}",
                    self.received
                ),
            }
        }
    }
}

/// The lines of a notification (`READY=1\nSTATUS=...\n`).
pub fn has_line(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

pub fn status_line(message: &str) -> Option<&str> {
    message.lines().find_map(|l| l.strip_prefix("STATUS="))
}
