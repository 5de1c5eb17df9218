//! A running `orgsync run`, with the test in systemd's place: its notifications go to a
//! datagram socket of the test's own, and READY=1 there is the one sign that it is ready (the
//! store is open and the socket listens). Every wait is for a notification or the process's
//! exit, bounded by [`WAIT`].

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::thread::JoinHandle;

use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::WAIT;

/// A daemon started by the test. Dropping it kills it and reaps it, so that a failed test
/// leaves nothing behind.
pub struct Daemon {
    pub pid: u32,
    /// Where its notifications arrive.
    pub notify: NotifySocket,
    /// Its stdout and stderr.
    log: PathBuf,
    /// Its exit status, once it has exited.
    exited: watch::Receiver<Option<ExitStatus>>,
    /// Waits for the process, so that its exit is an event.
    reaper: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Starts `command` (an `orgsync run`) with `NOTIFY_SOCKET` set to `notify` and its output
    /// going to `log`. Does not wait: see [`Daemon::ready`].
    pub fn spawn(command: Command, notify: NotifySocket, log: &Path) -> Daemon {
        let mut command = command.into_std();
        let file = fs::File::create(log).expect("create the log file");
        let mut child = command
            .env("NOTIFY_SOCKET", &notify.path)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup the log file"))
            .stderr(file)
            .spawn()
            .expect("the daemon starts");
        let pid = child.id();
        let (exit, exited) = watch::channel(None);
        let reaper = std::thread::spawn(move || {
            let status = child.wait().expect("wait for the daemon");
            exit.send_replace(Some(status));
        });
        Daemon {
            pid,
            notify,
            log: log.to_owned(),
            exited,
            reaper: Some(reaper),
        }
    }

    /// Waits for READY=1 and returns that notification. Fails at once if the daemon exits
    /// first.
    pub async fn ready(&mut self) -> String {
        let exited = self.exited.wait_for(Option::is_some);
        tokio::select! {
            ready = self.notify.wait_for("READY=1", |m| has_line(m, "READY=1")) => ready,
            status = exited => {
                let status = status.map(|s| *s).ok().flatten();
                panic!(
                    "orgsync run exited with {status:?} before it was ready:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                )
            }
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        assert!(
            self.exited.borrow().is_none(),
            "the daemon has exited already:\n{}",
            self.output()
        );
        // SAFETY: kill only sends a signal; the pid is our child's, not yet reaped.
        let sent = unsafe { libc::kill(self.pid as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({}, {signal})", self.pid);
    }

    /// Waits for the daemon to exit by itself; returns its exit code and its output.
    pub async fn wait(mut self) -> (Option<i32>, String) {
        let exit = self.exited.wait_for(Option::is_some);
        let _ = tokio::time::timeout(WAIT, exit).await;
        let status = *self.exited.borrow();
        let status = status.unwrap_or_else(|| {
            panic!(
                "the daemon did not exit within {WAIT:?}:\n{}",
                self.output()
            )
        });
        (status.code(), self.output())
    }

    /// SIGTERM, then asserts a clean exit; returns its output, for the checks on its log.
    pub async fn stop(self) -> String {
        self.signal(libc::SIGTERM);
        let (code, log) = self.wait().await;
        assert_eq!(code, Some(0), "orgsync run did not stop cleanly:\n{log}");
        log
    }

    /// Its stdout and stderr so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address a listener of the daemon logged as `{what} listening addr=...` (it binds
    /// port 0, so the log is the one place that says which port the kernel picked).
    pub fn listening_addr(&self, what: &str) -> String {
        let log = self.output();
        let needle = format!("{what} listening");
        let line = log
            .lines()
            .find(|line| line.contains(&needle))
            .unwrap_or_else(|| panic!("no `{needle}` line in the log:\n{log}"));
        let start = line.find("addr=").expect("addr=") + "addr=".len();
        // The address ends at white space or at the colour code that follows it.
        line[start..]
            .split(|c: char| c.is_whitespace() || c == '\u{1b}')
            .next()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.borrow().is_none() {
            // SAFETY: as in `signal`; the reaper has not reaped it yet.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
        if let Some(reaper) = self.reaper.take() {
            let _ = reaper.join();
        }
    }
}

/// The test's stand-in for systemd's notify socket. A thread of its own reads it as datagrams
/// arrive, so that the daemon never blocks on a full queue (the kernel queues only a few)
/// while the test is busy elsewhere.
pub struct NotifySocket {
    pub path: PathBuf,
    arrived: mpsc::UnboundedReceiver<String>,
    /// Every datagram taken so far, in order.
    pub received: Vec<String>,
    reader: Option<JoinHandle<()>>,
}

/// What the test sends to its own socket to end the reading thread.
const STOP: &[u8] = b"\0stop the test's reader\0";

impl NotifySocket {
    pub fn bind(path: PathBuf) -> NotifySocket {
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let (send, arrived) = mpsc::unbounded_channel();
        let reader = std::thread::spawn(move || {
            let mut buffer = vec![0; 4096];
            while let Ok(length) = socket.recv(&mut buffer) {
                let message = &buffer[..length];
                if message == STOP {
                    return;
                }
                let message = String::from_utf8_lossy(message).into_owned();
                if send.send(message).is_err() {
                    return;
                }
            }
        });
        NotifySocket {
            path,
            arrived,
            received: Vec::new(),
            reader: Some(reader),
        }
    }

    /// The next datagram that `matches`; the ones before it are kept in `received`.
    pub async fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.arrived.recv()).await {
                Ok(Some(message)) => {
                    self.received.push(message.clone());
                    if matches(&message) {
                        return message;
                    }
                }
                Ok(None) => panic!("the notify socket's reader stopped"),
                Err(_) => panic!(
                    "no notification {what} within {WAIT:?}; received {:#?}",
                    self.received
                ),
            }
        }
    }
}

impl NotifySocket {
    /// The next STATUS= that contains `text`: what systemd would show as the daemon's status.
    pub async fn wait_for_status(&mut self, text: &str) -> String {
        let what = format!("with a STATUS= containing {text:?}");
        let message = self
            .wait_for(&what, |m| status_line(m).is_some_and(|s| s.contains(text)))
            .await;
        status_line(&message).unwrap_or_default().to_owned()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let stopped = UnixDatagram::unbound().and_then(|socket| socket.send_to(STOP, &self.path));
        if let Some(reader) = self.reader.take() {
            if stopped.is_ok() {
                let _ = reader.join();
            }
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// The lines of a notification (`READY=1\nSTATUS=...\n`).
pub fn has_line(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

pub fn status_line(message: &str) -> Option<&str> {
    message.lines().find_map(|l| l.strip_prefix("STATUS="))
}
