//! The one harness of the integration tests: a simulated WeCom tenant served in the test
//! process, a config in a temporary directory pointing at it, the real `orgsync` binary run
//! against both, and the clients a test talks to them with.
//!
//! Every wait is for an event (a line, a reply, a notification, a call reaching the simulator,
//! a process exit), bounded by [`WAIT`]: a test that would hang fails with a message instead.
//!
//! - [`Env`]: the simulator, the temporary directory and its config; runs `orgsync` commands
//!   and starts the daemon.
//! - [`Daemon`]: a running `orgsync run`, ready once it sends READY=1 to its [`NotifySocket`]
//!   (the test stands in for systemd); killed and reaped when dropped.
//! - [`Client`]: a connection to the daemon's socket.
//! - [`Server`]: the socket server alone, in the test process, over a real store.
//! - [`SimClient`]: an HTTP client of the simulator, for the simulator's own tests.
//! - [`Python`]: a Python client of the socket (the example, the protocol doc's snippet).
//! - [`StoreState`]: the store as it is on disk, read without orgsync.

mod client;
mod daemon;
mod env;
mod event_line;
pub mod host_users;
mod python;
mod server;
mod sim_client;
mod store;
mod tls;

use std::process::{Output, Stdio};
use std::time::Duration;

use orgsync_simulator::{Directory, SimUser};
use serde_json::Value;
use tokio::process::Command;

pub use client::Client;
pub use daemon::{has_line, status_line, Daemon, NotifySocket};
pub use env::Env;
pub use event_line::seq_of;
pub use python::Python;
pub use server::{current_uid, error_code, Server};
pub use sim_client::{assert_wecom_error, errcode, ids, paths, userids, SimClient};
pub use store::{commit_dated, integrity, read_only, replay_onto, StoreState};
pub use tls::{self_signed, trusting};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_orgsync");

/// Generous: CI runs on a loaded 2-core machine. Nothing waits this long when all is well.
pub const WAIT: Duration = Duration::from_secs(60);

/// `[wecom]` keys that keep WeCom retries in milliseconds rather than seconds, for tests that
/// make calls fail: two retries, the first after 20 ms.
pub const FAST_WECOM: &str = "retry_attempts = 2\nretry_base_delay_ms = 20\n";

/// `orgsync ARGS` with an empty environment, so that the test's own (RUST_LOG, ORGSYNC_*,
/// NOTIFY_SOCKET, JOURNAL_STREAM, CREDENTIALS_DIRECTORY) cannot change what it does; killed if
/// dropped before it ends.
pub fn orgsync(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs a command to its end, its output captured.
pub async fn output(mut command: Command) -> Output {
    let shown = format!("{:?}", command.as_std());
    tokio::time::timeout(WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{shown} did not finish within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts that a command succeeded; its stdout.
pub fn success_stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", describe(output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that a command exited with `code` and its one error line says `says`.
pub fn assert_fails(output: &Output, code: i32, says: &str) {
    assert_eq!(output.status.code(), Some(code), "{}", describe(output));
    assert!(error_line(output).contains(says), "{}", describe(output));
}

/// Asserts that a command exited with `code` and that its stderr says `says` somewhere (logs
/// included; [`assert_fails`] wants it on the one error line).
pub fn assert_exits_saying(output: &Output, code: i32, says: &str) {
    assert_eq!(output.status.code(), Some(code), "{}", describe(output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(says),
        "{}",
        describe(output)
    );
}

/// Asserts that `text` contains each of `expected`, naming the one it lacks.
pub fn assert_contains_all<S: AsRef<str>>(text: &str, expected: &[S]) {
    for expected in expected {
        let expected = expected.as_ref();
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// Whether the test runs as root, which tests that act as another uid need; says so when not.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("this test needs root to act as another uid; CI runs as root");
    }
    root
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

/// The sample directory with `change` made to it.
pub fn sample_with(change: impl FnOnce(&mut Directory)) -> Directory {
    let mut directory = Directory::sample();
    change(&mut directory);
    directory
}

/// The member `userid` of a directory, to change it.
pub fn user<'a>(directory: &'a mut Directory, userid: &str) -> &'a mut SimUser {
    directory
        .users
        .iter_mut()
        .find(|u| u.userid == userid)
        .unwrap_or_else(|| panic!("the sample has {userid}"))
}

/// Moves `user` into `department` alone, at `order` and not leading it: the four fields WeCom
/// keeps in step.
pub fn move_to(user: &mut SimUser, department: u32, order: u32) {
    user.department = vec![department];
    user.order = vec![order];
    user.is_leader_in_dept = vec![0];
    user.main_department = department;
}

/// Runs `orgsync sync`, which must fail with `code` as [`assert_failed`] checks; its stderr
/// line and the event's `data.error`.
pub async fn assert_sync_fails(before: &StoreState, env: &Env, code: &str) -> (String, Value) {
    let output = env.run(&["sync"]).await;
    assert_failed(before, env, &output, code)
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
