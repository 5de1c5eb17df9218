//! `orgsync run` under `Type=notify`, with the test in systemd's place: a datagram socket of
//! its own in NOTIFY_SOCKET, and a watchdog in WATCHDOG_USEC.

use orgsync_simulator::{Directory, Endpoint, Fault};
use tokio::net::UnixStream;

use crate::harness::{has_line, status_line, Env};

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_tells_systemd_ready_status_watchdog_reload_and_stopping() {
    let instance = Env::new(Directory::sample()).await;
    let sim = &instance.sim;
    let members = sim.directory().users.len();
    let mut daemon = instance.spawn_daemon(|command| {
        // 0.2 s: the daemon should ping every 0.1 s.
        command.env("WATCHDOG_USEC", "200000");
    });

    let ready = daemon.ready().await;
    assert!(
        status_line(&ready).is_some(),
        "READY=1 comes with a STATUS: {ready:?}"
    );
    // Ready means the socket listens.
    UnixStream::connect(instance.socket_path())
        .await
        .expect("the socket accepts connections once READY=1 is sent");

    // The mirror was empty, so a start-up sync runs; its outcome becomes the status.
    let status = daemon.notify.wait_for_status("run 1 completed").await;
    assert!(
        status.contains(&format!("{members} members")),
        "the status names the mirror's size: {status}"
    );
    assert!(status.contains(&format!("{members} joined")), "{status}");

    daemon
        .notify
        .wait_for("WATCHDOG=1", |m| has_line(m, "WATCHDOG=1"))
        .await;

    // SIGHUP (ExecReload): RELOADING=1 with its timestamp, READY=1 again, then the sync it asks for.
    daemon.signal(libc::SIGHUP);
    let reloading = daemon
        .notify
        .wait_for("RELOADING=1", |m| has_line(m, "RELOADING=1"))
        .await;
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    daemon
        .notify
        .wait_for("READY=1 after the reload", |m| has_line(m, "READY=1"))
        .await;
    daemon.notify.wait_for_status("run 2 completed").await;

    daemon.signal(libc::SIGTERM);
    daemon
        .notify
        .wait_for("STOPPING=1", |m| has_line(m, "STOPPING=1"))
        .await;
    let received = std::mem::take(&mut daemon.notify.received);
    let (code, log) = daemon.wait().await;
    assert_eq!(code, Some(0), "{log}");

    // What reached systemd (and so `systemctl status`) carries no secret either.
    let secret = sim.directory().corp_secret;
    let tokens = sim.issued_tokens();
    assert!(!tokens.is_empty());
    for message in received.iter().chain([&log]) {
        assert!(!message.contains(&secret), "the secret leaked: {message}");
        for token in &tokens {
            assert!(!message.contains(token), "a token leaked: {message}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_shows_in_the_status_with_its_retry() {
    let instance =
        Env::with_config(Directory::sample(), "[schedule]\nretry_delay_secs = 3600\n").await;
    // 60020 (IP not allowed) is a configuration error: the run fails at once.
    instance
        .sim
        .inject(Fault::Errcode(60020).on(Endpoint::UserList));
    let mut daemon = instance.start_daemon().await;

    let status = daemon.notify.wait_for_status("run 1 FAILED").await;
    assert!(
        status.contains("60020"),
        "the status names the errcode: {status}"
    );
    assert!(status.contains("retry 1 of 3"), "{status}");

    daemon.stop().await;
}
