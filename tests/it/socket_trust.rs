//! The socket cannot be impersonated: the command line talks only to a socket served by root,
//! itself or the owner of the socket's directory, and the daemon will not create its socket
//! where another user could replace it.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use orgsync_simulator::Directory;

use crate::harness::{describe, error_line, Env};

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn the_command_line_refuses_an_impostor_listening_on_the_socket_path() {
    if !crate::harness::running_as_root() {
        return;
    }
    let env = Env::synced_sample().await;
    // A shared directory (sticky, like /tmp) where uid 65534 gets to the socket path first.
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(env.dir.path(), 0o755);
    chmod(&shared, 0o1777);
    let socket = shared.join("orgsync.sock");
    let script = "import socket, sys, time\n\
                  s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)\n\
                  print('listening', flush=True); time.sleep(120)\n";
    let mut impostor = tokio::process::Command::new("python3")
        .args(["-c", script])
        .arg(&socket)
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut line = String::new();
    let stdout = impostor.stdout.take().unwrap();
    tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stdout), &mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), "listening");

    for args in [vec!["status"], vec!["resync"]] {
        let mut command = env.command(&args);
        command.env("ORGSYNC_SOCKET__PATH", &socket);
        let out = crate::harness::output(command).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        let line = error_line(&out);
        assert!(
            line.contains("uid 65534") && line.contains("refusing"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn the_daemon_will_not_create_its_socket_where_others_could_replace_it() {
    let env = Env::new(Directory::sample()).await;
    let open = env.path("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let daemon = env.spawn_daemon(|command| {
        command.env("ORGSYNC_SOCKET__PATH", open.join("orgsync.sock"));
    });
    let (code, log) = daemon.wait().await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("writable by everyone"), "{log}");

    let mut daemon = env.spawn_daemon(|command| {
        command.env("ORGSYNC_SOCKET__PATH", open.join("orgsync.sock"));
        command.env("ORGSYNC_SOCKET__ALLOW_INSECURE_DIRECTORY", "true");
    });
    daemon.ready().await;
}
