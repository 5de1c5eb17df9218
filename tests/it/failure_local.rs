//! Bad local input (issue #3, item 5) through the real binary: a store that is not SQLite or
//! is corrupt, a store locked by another process, a config with wrong types or unknown keys,
//! a socket directory that is missing or unwritable, a missing secret file. Each is one clear
//! line that names the problem and the fix, with the documented exit status, and never a
//! panic.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::harness::{self, describe, error_line, Env, FAST_WECOM};
use orgsync_simulator::{Directory, Endpoint, Fault};

/// Asserts exit status `code` and a stderr line containing every one of `says`.
fn fails_with(output: &Output, code: i32, says: &[&str]) -> String {
    assert_eq!(output.status.code(), Some(code), "{}", describe(output));
    let line = error_line(output);
    for text in says {
        assert!(line.contains(text), "no {text:?} in {line}");
    }
    line
}

/// `orgsync ARGS` with the environment variable `var` set to `value`, run to its end.
async fn run_with(env: &Env, args: &[&str], var: &str, value: &str) -> Output {
    let mut command = env.command(args);
    command.env(var, value);
    harness::output(command).await
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test]
async fn a_store_that_is_not_sqlite_is_named_with_the_fix() {
    let env = Env::new(Directory::sample()).await;
    std::fs::write(
        env.store_path(),
        "mirror: none of your business\n".repeat(200),
    )
    .expect("write");
    let store = path_text(&env.store_path());
    for command in [&["sync"][..], &["run"], &["status"], &["events"]] {
        let output = env.run(command).await;
        fails_with(
            &output,
            1,
            &[
                &store,
                "is not a valid SQLite database",
                "stop the daemon, move it aside and run `orgsync sync`",
            ],
        );
    }
    assert_eq!(env.sim.calls().total(), 0, "WeCom is not asked");
}

#[tokio::test]
async fn a_corrupt_store_is_named_with_the_fix() {
    let env = Env::synced_sample().await;
    // Garbage over every page after the first: the header still says SQLite, the tables
    // are gone.
    let mut bytes = std::fs::read(env.store_path()).expect("read store");
    assert!(bytes.len() > 8192, "the store has more than two pages");
    for byte in &mut bytes[4096..] {
        *byte = 0xA5;
    }
    std::fs::write(env.store_path(), bytes).expect("write store");
    let calls = env.sim.calls().total();
    let store = path_text(&env.store_path());
    for command in [&["sync"][..], &["run"], &["status"], &["events"]] {
        let output = env.run(command).await;
        fails_with(
            &output,
            1,
            &[&store, "is not a valid SQLite database (corrupt"],
        );
    }
    assert_eq!(env.sim.calls().total(), calls, "WeCom is not asked");
}

/// Holds the store's write lock, as another process applying a run would.
fn lock(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open store");
    conn.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    conn
}

/// Whether process `pid` has `path` open.
fn has_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

#[tokio::test]
async fn a_store_locked_briefly_by_another_process_makes_the_sync_wait_then_succeed() {
    let env = Env::synced_sample().await;
    env.sim.edit(|d| d.users.retain(|u| u.userid != "gaopeng"));
    let before = env.state();
    let tokens = env.sim.calls().get(Endpoint::GetToken);

    let held = lock(&env.store_path());
    let child = env.spawn(&["sync"]);
    let pid = child.id().expect("running");
    tokio::time::timeout(harness::WAIT, async {
        while !has_open(pid, &env.store_path()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the sync opens the store");
    // The other process keeps the lock a little longer; the sync must wait for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.sim.calls().get(Endpoint::GetToken),
        tokens,
        "the sync waits for the lock before it pulls"
    );
    held.execute_batch("ROLLBACK").expect("release the lock");
    let output = tokio::time::timeout(harness::WAIT, child.wait_with_output())
        .await
        .expect("sync finishes")
        .expect("wait");
    assert!(output.status.success(), "{}", describe(&output));
    let events = env.events_since(before.head()).await;
    assert_eq!(
        harness::types(&events),
        ["orgsync.member.left", "orgsync.sync.completed"]
    );
}

#[tokio::test]
async fn a_store_locked_for_longer_than_busy_timeout_is_a_clear_error() {
    let env = Env::synced_sample().await;
    let before = env.state();
    let held = lock(&env.store_path());
    // `[store]` is generated by the harness; the timeout comes from the environment.
    let output = run_with(&env, &["sync"], "ORGSYNC_STORE__BUSY_TIMEOUT_SECS", "1").await;
    let store = path_text(&env.store_path());
    fails_with(
        &output,
        1,
        &[
            &store,
            "stayed locked by another process for 1s",
            "raise `store.busy_timeout_secs`",
        ],
    );
    drop(held);
    assert_eq!(env.state(), before);
}

#[tokio::test]
async fn a_store_locked_when_the_pull_is_done_fails_the_run_and_applies_nothing() {
    let env = Env::with_wecom(Directory::sample(), FAST_WECOM, "").await;
    env.sync().await;
    env.sim.edit(|d| d.users.retain(|u| u.userid != "gaopeng"));
    let before = env.state();
    // The pull's last `user/list` (department 4) takes two seconds: time to take the lock.
    env.sim.inject(
        Fault::Delay(Duration::from_secs(2))
            .on(Endpoint::UserList)
            .department(4),
    );
    let all = env.sim.calls().get(Endpoint::UserList) + 6;

    let mut command = env.command(&["sync"]);
    command
        .env("ORGSYNC_STORE__BUSY_TIMEOUT_SECS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("spawn");
    env.sim.wait_for_calls(Endpoint::UserList, all).await;
    let held = lock(&env.store_path());
    let output = tokio::time::timeout(harness::WAIT, child.wait_with_output())
        .await
        .expect("sync finishes")
        .expect("wait");
    fails_with(&output, 1, &["stayed locked by another process for 1s"]);
    drop(held);
    let after = env.state();
    assert_eq!(after.mirror, before.mirror);
    assert_eq!(
        after.events, before.events,
        "not even a failed event could be written"
    );

    // The next run applies the change, once, and records the stranded run as interrupted.
    env.sync().await;
    let after = env.state();
    assert_eq!(
        harness::types(&after.event_values()[before.events.len()..]),
        ["orgsync.member.left", "orgsync.sync.completed"]
    );
    let stranded = before.runs.len() as i64 + 1;
    assert_eq!(after.outcome(stranded), Some("interrupted"));
}

#[tokio::test]
async fn a_config_with_a_wrong_type_is_exit_2_naming_the_key() {
    let env = Env::with_config(Directory::sample(), "[safety]\nmax_deletes = \"many\"\n").await;
    for command in [&["sync"][..], &["run"], &["check-config"], &["status"]] {
        let output = env.run(command).await;
        fails_with(
            &output,
            2,
            &[
                "key `safety.max_deletes` in ",
                "expected a non-negative integer, found string \"many\"",
            ],
        );
    }
    let env = Env::with_wecom(Directory::sample(), "concurrency = 4.5\n", "").await;
    let output = env.run(&["sync"]).await;
    fails_with(
        &output,
        2,
        &["key `wecom.concurrency`", "expected a non-negative integer"],
    );
    assert_eq!(env.sim.calls().total(), 0);
}

#[tokio::test]
async fn a_config_with_an_unknown_key_is_exit_2_naming_the_key() {
    let env = Env::with_config(Directory::sample(), "[safety]\nmax_delete = 5\n").await;
    let output = env.run(&["sync"]).await;
    fails_with(
        &output,
        2,
        &[
            "unknown key `safety.max_delete` in ",
            "(did you mean `safety.max_deletes`?)",
        ],
    );
    let env = Env::with_config(Directory::sample(), "[sefety]\nmax_deletes = 5\n").await;
    let output = env.run(&["run"]).await;
    fails_with(
        &output,
        2,
        &["unknown key `sefety`", "(did you mean `safety`?)"],
    );

    let env = Env::new(Directory::sample()).await;
    let output = run_with(&env, &["sync"], "ORGSYNC_WECOM__RETRY_ATTEMPT", "1").await;
    fails_with(
        &output,
        2,
        &[
            "unknown environment variable ORGSYNC_WECOM__RETRY_ATTEMPT",
            "did you mean ORGSYNC_WECOM__RETRY_ATTEMPTS?",
        ],
    );
    assert_eq!(env.sim.calls().total(), 0);
}

#[tokio::test]
async fn a_missing_socket_directory_stops_the_daemon_naming_the_path_and_the_fix() {
    let env = Env::new(Directory::sample()).await;
    let missing = env.dir.path().join("run/orgsync").display().to_string();
    let secret = env.dir.path().join("secret").display().to_string();
    for (directory, says) in [
        (
            missing.as_str(),
            [
                &format!("socket directory {missing} does not exist"),
                "create it or set socket.path (systemd: RuntimeDirectory=)",
            ],
        ),
        // A path under a regular file.
        (
            secret.as_str(),
            [&format!("{secret} is not a directory"), "set socket.path"],
        ),
        // A directory nobody may create files in, even root: sysfs.
        (
            "/sys",
            [
                "cannot create the socket in /sys",
                "make the directory writable by the daemon's user or set socket.path",
            ],
        ),
    ] {
        let socket = format!("\"{directory}/orgsync.sock\"");
        let output = run_with(&env, &["run"], "ORGSYNC_SOCKET__PATH", &socket).await;
        fails_with(&output, 1, &says);
    }
}

#[tokio::test]
async fn a_missing_secret_file_is_exit_2_naming_the_file_and_the_fix() {
    let env = Env::new(Directory::sample()).await;
    let secret = env.dir.path().join("secret");
    std::fs::remove_file(&secret).expect("remove secret");
    for command in [&["sync"][..], &["run"], &["check-config"]] {
        let output = env.run(command).await;
        fails_with(
            &output,
            2,
            &[
                &format!("cannot read the corp secret from file {}", secret.display()),
                "No such file or directory",
                "write the app's Secret into it (chmod 600), or set `wecom.corp_secret_file`",
            ],
        );
    }
    assert_eq!(env.sim.calls().total(), 0);
}

#[tokio::test]
async fn a_store_in_a_missing_directory_is_named_with_the_fix() {
    let env = Env::new(Directory::sample()).await;
    let output = run_with(
        &env,
        &["sync"],
        "ORGSYNC_STORE__PATH",
        "\"nowhere/orgsync.db\"",
    )
    .await;
    fails_with(
        &output,
        1,
        &[
            &format!(
                "cannot open the store {}",
                env.dir.path().join("nowhere/orgsync.db").display()
            ),
            "check `store.path` and that its directory exists",
        ],
    );
}
