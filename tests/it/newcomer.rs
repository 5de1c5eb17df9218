//! What a new user tripped over, each through the real binary: admin commands without the
//! secret, a log level that would log nothing, a restart during a pull, type patterns that
//! match nothing, read-only users, a second daemon on one store, a rejected reload, and the
//! small things (`--since` past the head, a dry run on a fresh config, a busy simulator port).

use std::os::unix::fs::PermissionsExt;

use orgsync_simulator::Directory;
use serde_json::json;

use crate::harness::{assert_contains_all, assert_fails, describe, error_line, output, Env};

#[tokio::test]
async fn admin_commands_that_do_not_call_wecom_work_without_the_secret() {
    let env = Env::synced_sample().await;
    // A service install keeps the secret only as a systemd credential the shell does not have.
    std::fs::remove_file(env.path("secret")).unwrap();
    let users = env.path("users.csv");
    std::fs::write(&users, "id,name\n42,nobody here\n").unwrap();
    let member = env.sim.directory().users[0].userid.clone();
    for args in [
        vec!["host-users", "import", users.to_str().unwrap()],
        vec!["link", "42", &member],
        vec!["unlink", "42"],
        vec!["match", "report"],
    ] {
        let out = env.run(&args).await;
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
    }
}

#[tokio::test]
async fn a_log_level_that_would_log_nothing_is_rejected() {
    let env = Env::with_config(Directory::sample(), "[log]\nlevel = \"verbose\"\n").await;
    let out = env.run(&["check-config"]).await;
    assert_fails(&out, 2, "log.level");
}

#[tokio::test]
async fn a_restart_during_a_pull_syncs_again_at_start_up() {
    let mut directory = Directory::sample();
    directory.latency_ms = 200;
    let env = Env::new(directory).await;
    env.sync().await;
    let head = env.state().head();
    let daemon = env.start_daemon().await;
    daemon.signal(libc::SIGUSR1);
    // Stop the daemon while its run is pulling.
    env.status_when("the run starting", |status| {
        (!status["daemon"]["running"].is_null()).then_some(())
    })
    .await;
    daemon.stop().await;
    let failed = env.events_since(head).await;
    assert_eq!(
        failed.last().unwrap()["data"]["error"]["code"],
        "shutdown",
        "{failed:?}"
    );

    let head = env.state().head();
    let _daemon = env.start_daemon().await;
    let mut subscriber = env
        .subscribe(json!({"op": "subscribe", "since": head}))
        .await;
    let run = subscriber.run_events().await;
    let last = run.last().unwrap();
    assert_eq!(last["type"], "orgsync.sync.completed", "{run:?}");
    assert_eq!(last["data"]["trigger"], "startup");
    let (code, text, _) = env.status().await;
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn type_patterns_that_match_no_event_type_are_refused() {
    let env = Env::synced_sample().await;
    let _daemon = env.start_daemon().await;
    for pattern in ["orgsync.members.joined", "member.*"] {
        let client = env
            .subscribe(json!({"op": "subscribe", "types": [pattern]}))
            .await;
        assert_eq!(client.reply["error"]["code"], "bad_request", "{pattern}");
        let out = env.run(&["events", "--type", pattern]).await;
        assert_eq!(out.status.code(), Some(2), "{pattern}: {}", describe(&out));
    }
    let out = env
        .run(&["events", "--since", "0", "--type", "orgsync.sync.*"])
        .await;
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, 1, "{}", describe(&out));
}

#[tokio::test]
async fn status_and_events_work_for_a_user_who_may_only_read_the_store() {
    if !crate::harness::running_as_root() {
        return;
    }
    let env = Env::synced_sample().await;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(env.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e != "sock") && path.is_file() {
            let mode = if path.ends_with("secret") {
                0o600
            } else {
                0o644
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    for args in [vec!["status"], vec!["events", "--since", "0"]] {
        let mut command = env.command(&args);
        command.uid(65534).gid(65534);
        let out = output(command).await;
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn a_second_daemon_on_the_same_store_is_refused_with_the_first_ones_pid() {
    let env = Env::new(Directory::sample()).await;
    let _first = env.start_daemon().await;
    let pid = env.daemon_status().await["daemon"]["pid"].clone();
    let second = env.spawn_daemon(|command| {
        command.env("ORGSYNC_SOCKET__PATH", env.path("other.sock"));
    });
    let (code, log) = second.wait().await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("another orgsync daemon"), "{log}");
    assert!(log.contains(&format!("pid {pid}")), "{log}");
}

#[tokio::test]
async fn a_rejected_reload_shows_in_status_until_a_good_one() {
    let env = Env::new(Directory::sample()).await;
    let daemon = env.start_daemon().await;
    env.write_config("", "[safety]\nmax_delete_ratio = 5\n");
    daemon.signal(libc::SIGHUP);
    env.reload_rejected().await;
    // The file is fixed but not yet reloaded: the daemon still runs the old config, and says so.
    env.write_config("", "");
    let (_, text, _) = env.status().await;
    assert!(text.contains("RELOAD REJECTED"), "{text}");
    assert!(text.contains("safety.max_delete_ratio"), "{text}");

    daemon.signal(libc::SIGHUP);
    env.status_when("the rejected reload clearing", |status| {
        status["daemon"]["reload_rejected"].is_null().then_some(())
    })
    .await;
}

#[tokio::test]
async fn events_since_past_the_head_is_an_error_as_on_the_socket() {
    let env = Env::synced_sample().await;
    let head = env.state().head();
    let out = env
        .run(&["events", "--since", &(head + 5).to_string()])
        .await;
    assert_fails(&out, 1, "ahead of the event head");
}

#[tokio::test]
async fn a_dry_run_on_a_fresh_config_writes_nothing() {
    let env = Env::new(Directory::sample()).await;
    let out = env.run(&["sync", "--dry-run"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!env.store_path().exists(), "the dry run created the store");
}

#[tokio::test]
async fn the_config_path_can_come_from_orgsync_config() {
    let env = Env::synced_sample().await;
    let mut command = crate::harness::orgsync(&["status"]);
    command.env("ORGSYNC_CONFIG", &env.config_path);
    let out = output(command).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let out = output(crate::harness::orgsync(&[
        "status",
        "--config",
        "/nonexistent/orgsync.toml",
    ]))
    .await;
    assert_fails(&out, 2, "does not exist");
}

#[tokio::test]
async fn the_simulator_on_a_busy_port_names_the_address_and_suggests_port_0() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = output(crate::harness::orgsync(&[
        "simulator",
        "--listen",
        &address,
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let line = error_line(&out);
    assert!(line.contains(&address) && line.contains("port 0"), "{line}");
}

#[tokio::test]
async fn help_lists_exit_statuses_signals_and_the_environment() {
    let out = output(crate::harness::orgsync(&["--help"])).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert_contains_all(
        &help,
        &[
            "Exit status:",
            "SIGUSR1",
            "SIGHUP",
            "ORGSYNC_CONFIG",
            "3  a sync held",
        ],
    );
}

#[tokio::test]
async fn a_default_level_run_logs_a_few_lines_and_a_failure_once() {
    let env = Env::new(Directory::sample()).await;
    let daemon = env.start_daemon().await;
    let mut subscriber = env.subscribe(json!({"op": "subscribe", "since": 0})).await;
    let run = subscriber.run_events().await;
    assert_eq!(run.last().unwrap()["type"], "orgsync.sync.completed");
    daemon.signal(libc::SIGUSR1);
    subscriber.run_events().await;
    let log = daemon.stop().await;
    assert!(!log.contains("tokio_cron_scheduler"), "{log}");
    // Per run: started, pulled, completed.
    let of_runs = log
        .lines()
        .filter(|line| line.contains("orgsync::sync") || line.contains("orgsync::wecom"))
        .count();
    assert_eq!(of_runs, 6, "{log}");

    // A failed `orgsync sync` says why once, not once in the log and again on its last line.
    std::fs::write(env.path("secret"), "not-the-apps-secret").unwrap();
    let out = env.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("copy the app's Secret again").count(),
        1,
        "{stderr}"
    );

    // The next run, within the minute, does not ask WeCom and says so.
    let out = env.run(&["sync"]).await;
    let line = error_line(&out);
    assert!(line.contains("not asked again"), "{line}");
}

#[tokio::test]
async fn resync_wait_exits_with_the_outcome_of_the_run_it_asked_for() {
    let env = Env::synced_sample().await;
    let _daemon = env.start_daemon().await;
    let out = env.run(&["resync", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("completed"),
        "{}",
        describe(&out)
    );

    env.sim
        .inject(orgsync_simulator::Fault::Errcode(48002).on(orgsync_simulator::Endpoint::UserList));
    let out = env.run(&["resync", "--wait"]).await;
    assert_fails(&out, 1, "48002");
}

#[tokio::test]
async fn backup_writes_a_private_consistent_copy_and_never_overwrites() {
    let env = Env::synced_sample().await;
    let _daemon = env.start_daemon().await;
    let copy = env.path("backup.db");
    let out = env.run(&["backup", copy.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let copied = crate::harness::StoreState::read(&copy);
    assert_eq!(copied.head(), env.state().head());
    assert_eq!(crate::harness::integrity(&copy), "ok");
    // A restored backup is another store, so that followers of this one are told so.
    let id = |path: &std::path::Path| -> String {
        crate::harness::read_only(path)
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_ne!(id(&copy), id(&env.store_path()));
    // The WeCom access token the runs share is not in the store but beside it, private: not a
    // byte of it in the copy.
    let token_file = orgsync::token_file::path(&env.store_path());
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&token_file).unwrap()).unwrap();
    let token = token["token"].as_str().unwrap();
    for file in [&copy, &env.store_path()] {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{} holds the access token",
            file.display()
        );
    }

    let out = env.run(&["backup", copy.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
