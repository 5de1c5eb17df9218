//! Runs as a whole (issue #3, item 1) through the real binary: SIGTERM during a pull, for
//! `orgsync sync` and for the daemon, fails the run and changes nothing; the daemon retries a
//! failed run with backoff a bounded number of times, then waits for the next trigger, and
//! never retries a held run.

use crate::harness::{self, assert_failed, describe, types, Env, FAST_WECOM};
use orgsync_simulator::{Directory, Endpoint, Fault};
use serde_json::{json, Value};

fn kill(pid: Option<u32>, signal: libc::c_int) {
    let pid = pid.expect("the child is running") as libc::pid_t;
    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// The sample, synced, then changed; the next pull's last `user/list` (department 4, last in
/// `department/list` order) will take ten seconds.
async fn slow_env(schedule: &str) -> Env {
    let env = Env::with_wecom(Directory::sample(), FAST_WECOM, schedule).await;
    env.sync().await;
    env.sim.edit(|d| d.users.retain(|u| u.userid != "gaopeng"));
    env.sim.inject(
        Fault::Delay(std::time::Duration::from_secs(10))
            .on(Endpoint::UserList)
            .department(4),
    );
    env
}

/// Waits until the pull that follows has made all its `user/list` calls, the last of which
/// hangs for ten seconds.
async fn in_last_call(env: &Env, before: u64) {
    tokio::time::timeout(
        harness::WAIT,
        env.sim.wait_for_calls(Endpoint::UserList, before + 6),
    )
    .await
    .expect("the pull reaches its last department");
}

#[tokio::test]
async fn sigterm_during_the_pull_fails_orgsync_sync_with_shutdown() {
    let env = slow_env("").await;
    let before = env.state();
    let user_lists = env.sim.calls().get(Endpoint::UserList);
    let child = env.spawn(&["sync"]);
    in_last_call(&env, user_lists).await;
    kill(child.id(), libc::SIGTERM);
    let output = tokio::time::timeout(harness::WAIT, child.wait_with_output())
        .await
        .expect("sync stops")
        .expect("wait");
    let (line, _) = assert_failed(&before, &env, &output, "shutdown");
    assert!(line.contains("nothing was applied"), "{line}");
}

#[tokio::test]
async fn sigterm_during_the_pull_stops_the_daemon_with_exit_0_and_a_failed_run() {
    let env = slow_env("").await;
    let before = env.state();
    let daemon = env.start_daemon().await;
    let user_lists = env.sim.calls().get(Endpoint::UserList);
    daemon.signal(libc::SIGUSR1);
    in_last_call(&env, user_lists).await;
    let stderr = daemon.stop().await;
    harness::assert_no_panic(&stderr);

    let after = env.state();
    assert_eq!(after.mirror, before.mirror, "nothing applied");
    let new = &after.event_values()[before.events.len()..];
    assert_eq!(types(new), ["orgsync.sync.failed"]);
    assert_eq!(new[0]["data"]["trigger"], "signal");
    assert_eq!(new[0]["data"]["error"]["code"], "shutdown");
    assert_eq!(after.runs.last().map(|r| r.1.as_str()), Some("failed"));
    assert!(
        !stderr.contains("will retry"),
        "no retry on shutdown:\n{stderr}"
    );
}

/// Milliseconds between two events' `time`.
fn gap_ms(earlier: &Value, later: &Value) -> i64 {
    let time = |event: &Value| {
        chrono::DateTime::parse_from_rfc3339(event["time"].as_str().expect("time"))
            .expect("RFC 3339")
    };
    (time(later) - time(earlier)).num_milliseconds()
}

const RETRIES: &str = "[schedule]\nretry_attempts = 2\nretry_delay_secs = 1\n";

#[tokio::test]
async fn the_daemon_retries_a_failed_run_by_itself_and_the_retry_completes() {
    let env = Env::with_wecom(Directory::sample(), FAST_WECOM, RETRIES).await;
    // Fails the start-up run's department 3 on each of its three attempts, then clears.
    env.sim.inject(
        Fault::Errcode(-1)
            .on(Endpoint::UserList)
            .department(3)
            .times(3),
    );
    let daemon = env.start_daemon().await;
    let mut subscriber = env.subscribe(json!({"op": "subscribe", "since": 0})).await;
    let failed = subscriber.run_events().await;
    assert_eq!(types(&failed), ["orgsync.sync.failed"]);
    assert_eq!(failed[0]["data"]["trigger"], "startup");
    let retried = subscriber.run_events().await;
    let completed = retried.last().expect("events");
    assert_eq!(completed["type"], "orgsync.sync.completed");
    assert_eq!(completed["data"]["trigger"], "startup");
    assert_eq!(completed["data"]["counts"]["members_joined"], 15);
    assert!(gap_ms(&failed[0], completed) >= 800, "the retry waited");

    let stderr = daemon.stop().await;
    assert_eq!(
        stderr.matches("will retry the failed sync").count(),
        1,
        "{stderr}"
    );
    let state = env.state();
    assert_eq!(state.replayed(), state.mirror);
}

#[tokio::test]
async fn a_permanently_failing_wecom_gets_exactly_retry_attempts_retries_then_waits() {
    let env = Env::with_wecom(
        Directory::sample(),
        &format!("{FAST_WECOM}concurrency = 1\n"),
        RETRIES,
    )
    .await;
    env.sim
        .inject(Fault::Errcode(-1).on(Endpoint::UserList).times(1_000));
    let daemon = env.start_daemon().await;
    let mut subscriber = env.subscribe(json!({"op": "subscribe", "since": 0})).await;
    let mut failures = Vec::new();
    for _ in 0..3 {
        let run = subscriber.run_events().await;
        assert_eq!(types(&run), ["orgsync.sync.failed"], "{run:?}");
        assert_eq!(run[0]["data"]["trigger"], "startup");
        failures.push(run[0].clone());
    }
    // Backoff: about 1 s, then about 2 s (±20%).
    assert!(gap_ms(&failures[0], &failures[1]) >= 800);
    assert!(gap_ms(&failures[1], &failures[2]) >= 1600);
    // Three runs of three attempts (one call and two retries) at the first department.
    assert_eq!(env.sim.calls().get(Endpoint::UserList), 9);

    // Nothing is pending: no retry, no queued run.
    let status = env
        .status_when("the daemon going idle", |status| {
            status["daemon"]["running"]
                .is_null()
                .then(|| status.clone())
        })
        .await;
    assert_eq!(status["daemon"]["retry"], Value::Null, "{status}");
    assert_eq!(status["daemon"]["queued"], false, "{status}");
    assert_eq!(status["last_run"]["outcome"], "failed");

    // The next trigger runs again.
    daemon.signal(libc::SIGUSR1);
    let run = subscriber.run_events().await;
    assert_eq!(types(&run), ["orgsync.sync.failed"]);
    assert_eq!(run[0]["data"]["trigger"], "signal");
    // The retry is decided after the failure is published: wait for it before stopping, or
    // the shutdown would (rightly) cancel it.
    let status = env
        .status_when("a retry of the signal's failed run", |status| {
            (!status["daemon"]["retry"].is_null()).then(|| status.clone())
        })
        .await;
    assert_eq!(status["daemon"]["retry"]["attempt"], 1, "{status}");
    let stderr = daemon.stop().await;

    // The log shows each decision: two retries for the start-up run, none after its third
    // failure, and a new budget for the signal's run.
    let decisions: Vec<&str> = stderr
        .lines()
        .filter_map(|line| {
            if line.contains("will retry the failed sync") {
                Some("retry")
            } else if line.contains("sync failed") {
                Some("failed")
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        decisions,
        ["failed", "retry", "failed", "retry", "failed", "failed", "retry"],
        "{stderr}"
    );
}

#[tokio::test]
async fn the_daemon_does_not_retry_a_held_run() {
    let env = Env::with_config(Directory::sample(), RETRIES).await;
    env.sync().await;
    env.sim.edit(|d| d.users.truncate(5));
    let before = env.state();
    let daemon = env.start_daemon().await;
    let mut subscriber = env
        .subscribe(json!({"op": "subscribe", "since": before.head()}))
        .await;
    daemon.signal(libc::SIGUSR1);
    let run = subscriber.run_events().await;
    assert_eq!(types(&run), ["orgsync.sync.held"]);
    assert_eq!(run[0]["data"]["pending"]["members_left"], 10);
    let status = env.daemon_status().await;
    assert_eq!(status["held"]["pending"]["members_left"], 10, "{status}");
    let stderr = daemon.stop().await;
    assert!(!stderr.contains("will retry"), "{stderr}");
    assert_eq!(env.state().mirror, before.mirror);
    let output = env.run(&["status"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
}
