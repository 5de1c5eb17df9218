//! A Python client of the socket as a host application runs it: `python3 SCRIPT ARGS`, its
//! stdout read line by line as it prints. Every wait is for a line or the process's exit,
//! bounded by [`WAIT`]; dropping it kills it.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::WAIT;

pub struct Python {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Python {
    pub fn spawn<S: AsRef<OsStr>>(script: &Path, args: impl IntoIterator<Item = S>) -> Python {
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "python3 is needed to run {}: {e}; install it (CI does)",
                    script.display()
                )
            });
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Python { child, stdout }
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
        line.unwrap_or_else(|| {
            panic!(
                "the script ended its output; exit {:?}",
                self.child.try_wait()
            )
        })
    }

    /// The next line it prints within `time`, if any (`None` as well once it has ended its
    /// output).
    pub async fn line_within(&mut self, time: Duration) -> Option<String> {
        match tokio::time::timeout(time, self.stdout.next_line()).await {
            Ok(line) => line.expect("read the script's stdout"),
            Err(_) => None,
        }
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
}
