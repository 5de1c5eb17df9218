//! Who can reach the socket of a daemon laid out as orgsync@.service lays it out: the daemon
//! runs as its own user and group, its runtime directory is mode 0750 in that group, the
//! socket 0660. A member of the group connects; anyone else is refused by the file system.
//!
//! Switching users needs root (CI runs as root); as anyone else the test says so and passes.
//! Plain numeric ids are used, so nothing is added to the machine's user database.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use orgsync_simulator::{Directory, Simulator};
use serde_json::Value;
use tokio::process::Command;

use crate::harness::{assert_exits_saying, describe, output, Daemon, NotifySocket, BIN};

const DAEMON_ID: u32 = 61_234;
const CLIENT_ID: u32 = 61_235;

fn mkdir(path: &Path, mode: u32, owner: u32) {
    fs::create_dir_all(path).expect("mkdir");
    chown(path, Some(owner), Some(owner)).expect("chown");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `orgsync ARGS` as `uid`/`gid` with exactly `groups` as supplementary groups.
fn as_user(uid: u32, groups: &[u32], args: &[&str]) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"));
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
        command.arg(format!("--groups={}", groups.join(",")));
    }
    command.arg(BIN).args(args).env_clear().kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_of_the_daemons_group_connects_and_others_cannot() {
    if !crate::harness::running_as_root() {
        return;
    }
    let sim = Simulator::start(Directory::sample())
        .await
        .expect("simulator");
    let directory = sim.directory();
    let root = tempfile::tempdir().expect("tempdir");
    // What systemd creates: /run/orgsync (root, 0755), /run/orgsync/acme (0750) and
    // /var/lib/orgsync/acme (0700), the last two owned by the daemon's user and group,
    // and the credential directory holding the secret.
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let runtime = root.path().join("run/acme");
    let state = root.path().join("state/acme");
    let credentials = root.path().join("credentials");
    mkdir(&runtime, 0o750, DAEMON_ID);
    mkdir(&state, 0o700, DAEMON_ID);
    mkdir(&credentials, 0o500, DAEMON_ID);
    let secret = credentials.join("corp_secret");
    fs::write(&secret, &directory.corp_secret).expect("write the secret");
    chown(&secret, Some(DAEMON_ID), Some(DAEMON_ID)).expect("chown");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o400)).expect("chmod");
    let socket = runtime.join("orgsync.sock");
    let config = root.path().join("acme.toml");
    fs::write(
        &config,
        format!(
            "[wecom]\ncorp_id = \"{}\"\napi_base = \"{}\"\n[store]\npath = \"{}\"\n\
             [socket]\npath = \"{}\"\n",
            directory.corp_id,
            sim.api_base(),
            state.join("orgsync.db").display(),
            socket.display()
        ),
    )
    .expect("write the config");
    let config = config.to_str().expect("a UTF-8 path");

    let notify_dir = root.path().join("notify");
    mkdir(&notify_dir, 0o700, DAEMON_ID);
    let notify = NotifySocket::bind(notify_dir.join("notify.sock"));
    chown(&notify.path, Some(DAEMON_ID), Some(DAEMON_ID)).expect("chown");
    let mut command = as_user(DAEMON_ID, &[], &["run", "--config", config]);
    command.env("CREDENTIALS_DIRECTORY", &credentials);
    let mut daemon = Daemon::spawn(command, notify, &root.path().join("daemon.log"));
    daemon.notify.wait_for_status("run 1 completed").await;
    let mode = fs::metadata(&socket)
        .expect("the socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);

    // A host application in the daemon's group: status comes from the daemon, over the socket.
    let member = output(as_user(
        CLIENT_ID,
        &[DAEMON_ID],
        &["status", "--json", "--config", config],
    ))
    .await;
    assert!(member.status.success(), "{}", describe(&member));
    let report: Value = serde_json::from_slice(&member.stdout).expect("JSON");
    assert_eq!(report["daemon"]["pid"], daemon.pid, "{report}");

    // It may read events but not ask for a sync: that is for root and the daemon's user.
    let resync = output(as_user(
        CLIENT_ID,
        &[DAEMON_ID],
        &["resync", "--config", config],
    ))
    .await;
    assert_exits_saying(&resync, 1, "(forbidden)");

    // Anyone else cannot even reach the socket.
    let outsider = output(as_user(CLIENT_ID, &[], &["resync", "--config", config])).await;
    assert_exits_saying(&outsider, 1, "ermission denied");

    daemon.stop().await;
}
