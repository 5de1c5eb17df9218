//! The store is one identity: private files whatever the umask, a foreign database left
//! untouched, one corp per store across reloads, and a daemon that stops when its store is
//! replaced or removed under it rather than serving another store's events or starting over.

use std::os::unix::fs::PermissionsExt;

use orgsync_simulator::Directory;
use serde_json::json;

use crate::harness::{describe, error_line, output, Env};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn store_files_are_private_whatever_the_umask() {
    let env = Env::new(Directory::sample()).await;
    let mut command = env.command(&["sync"]);
    // SAFETY: umask in the child between fork and exec; it touches no shared state.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let out = output(command).await;
    assert!(out.status.success(), "{}", describe(&out));
    for name in ["orgsync.db", "orgsync.db-wal", "orgsync.db-shm"] {
        let path = env.path(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
}

#[tokio::test]
async fn a_foreign_sqlite_file_is_refused_and_left_untouched() {
    let env = Env::new(Directory::sample()).await;
    {
        let conn = rusqlite::Connection::open(env.store_path()).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER); INSERT INTO invoices VALUES (7);")
            .unwrap();
    }
    let before = std::fs::read(env.store_path()).unwrap();
    for args in [vec!["sync"], vec!["status"], vec!["events"]] {
        let out = env.run(&args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert!(
            error_line(&out).contains("orgsync did not make"),
            "{args:?}: {}",
            describe(&out)
        );
    }
    assert_eq!(
        std::fs::read(env.store_path()).unwrap(),
        before,
        "the file was modified"
    );
    assert!(!env.path("orgsync.db-wal").exists(), "switched to WAL");
}

#[tokio::test]
async fn a_reload_with_another_corp_id_is_rejected() {
    let env = Env::new(Directory::sample()).await;
    let daemon = env.start_daemon().await;
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let corp = env.sim.directory().corp_id;
    std::fs::write(&env.config_path, config.replace(&corp, "wwanothercorp0000")).unwrap();
    daemon.signal(libc::SIGHUP);
    let error = env.reload_rejected().await;
    assert!(error.contains("wecom.corp_id"), "{error}");
}

#[tokio::test]
async fn a_store_removed_under_the_daemon_stops_it_and_is_not_recreated() {
    let env = Env::synced_sample().await;
    let daemon = env.start_daemon().await;
    let mut subscriber = env.subscribe(json!({"op": "subscribe", "since": 0})).await;
    subscriber.run_events().await;
    let aside = env.path("aside");
    std::fs::create_dir(&aside).unwrap();
    for name in ["orgsync.db", "orgsync.db-wal", "orgsync.db-shm"] {
        if env.path(name).exists() {
            std::fs::rename(env.path(name), aside.join(name)).unwrap();
        }
    }
    let (code, log) = daemon.wait().await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("was removed"), "{log}");
    assert!(
        !env.store_path().exists(),
        "an empty store was made in its place"
    );
    subscriber.expect_closed().await;
}

#[tokio::test]
async fn a_store_replaced_under_the_daemon_stops_it() {
    let env = Env::synced_sample().await;
    let other = env.beside("", "");
    other.sync().await;
    let daemon = env.start_daemon().await;
    std::fs::rename(other.store_path(), env.store_path()).unwrap();
    let _ = std::fs::remove_file(env.path("orgsync.db-wal"));
    let _ = std::fs::remove_file(env.path("orgsync.db-shm"));
    let (code, log) = daemon.wait().await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("replaced"), "{log}");
}

#[tokio::test]
async fn a_damaged_event_log_is_reported_by_sync_and_status_instead_of_exit_0() {
    for damage in [
        "UPDATE sqlite_sequence SET seq = seq - 5 WHERE name = 'events'",
        "UPDATE events SET body = '{\"seq\":' WHERE seq = (SELECT max(seq) FROM events)",
    ] {
        let env = Env::synced_sample().await;
        rusqlite::Connection::open(env.store_path())
            .unwrap()
            .execute_batch(damage)
            .unwrap();
        for args in [vec!["sync"], vec!["status"]] {
            let out = env.run(&args).await;
            assert_eq!(
                out.status.code(),
                Some(1),
                "{damage}: {args:?}: {}",
                describe(&out)
            );
            assert!(
                error_line(&out).contains("event log is damaged"),
                "{damage}: {}",
                describe(&out)
            );
        }
    }
}
