//! A Python client of the socket as a host application runs it: `python3 SCRIPT ARGS`, its
//! stdout read line by line as it prints (unbuffered), its stderr kept for the end. Every wait
//! is for a line or the process's exit, bounded by [`WAIT`]; dropping it kills it.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use super::WAIT;

pub struct Python {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Option<JoinHandle<String>>,
}

impl Python {
    pub fn spawn<S: AsRef<OsStr>>(script: &Path, args: impl IntoIterator<Item = S>) -> Python {
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "python3 is needed to run {}: {e}; install it (CI does)",
                    script.display()
                )
            });
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut pipe = child.stderr.take().expect("stderr");
        // Read as it comes, so that the script never blocks on a full pipe.
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            text
        });
        Python {
            child,
            stdout,
            stderr: Some(stderr),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id().expect("python3 is still running")
    }

    /// The next line it prints.
    pub async fn line(&mut self) -> String {
        let line = tokio::time::timeout(WAIT, self.stdout.next_line())
            .await
            .expect("the script prints a line in time")
            .expect("read the script's stdout");
        match line {
            Some(line) => line,
            None => {
                let status = self.wait().await;
                panic!(
                    "the script ended its output and exited with {status}; stderr:\n{}",
                    self.stderr().await
                )
            }
        }
    }

    /// The next line it prints within `time`, if any (`None` as well once it has ended its
    /// output).
    pub async fn line_within(&mut self, time: Duration) -> Option<String> {
        match tokio::time::timeout(time, self.stdout.next_line()).await {
            Ok(line) => line.expect("read the script's stdout"),
            Err(_) => None,
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("the script's status")
            .is_none()
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal; the pid is our child's, not yet reaped.
        let sent = unsafe { libc::kill(self.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({}, {signal})", self.id());
    }

    /// Waits for it to exit.
    pub async fn wait(&mut self) -> ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the script exits in time")
            .expect("wait for the script")
    }

    /// Everything it wrote on stderr, once it has exited.
    pub async fn stderr(&mut self) -> String {
        let reading = self.stderr.take().expect("stderr is read once");
        tokio::time::timeout(WAIT, reading)
            .await
            .expect("the script's stderr closes")
            .expect("read the script's stderr")
    }

    /// Kills it (it must still be running) and returns what it wrote on stderr.
    pub async fn kill(&mut self) -> String {
        assert!(self.running(), "the script had exited already");
        self.child.start_kill().expect("SIGKILL");
        self.wait().await;
        self.stderr().await
    }
}
