//! Creating the socket file: its mode and group, and what is found at its path beforehand.

use std::ffi::CStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use orgsync::socket::{bind, SocketError, SocketSettings};

fn settings(path: &Path) -> SocketSettings {
    SocketSettings {
        path: path.to_owned(),
        group: None,
        admin_uids: vec![],
        admin_gids: vec![],
        max_connections: 4,
        max_connections_per_uid: 4,
        first_request_timeout: std::time::Duration::from_secs(30),
        allow_insecure_directory: false,
    }
}

/// The name of this process's group, to configure as `socket.group`.
fn own_group() -> (String, u32) {
    // SAFETY: getgid cannot fail; getgrgid returns a pointer to static storage (or null),
    // read at once on this thread.
    unsafe {
        let gid = libc::getgid();
        let group = libc::getgrgid(gid);
        assert!(!group.is_null(), "this process's group has no name");
        let name = CStr::from_ptr((*group).gr_name)
            .to_string_lossy()
            .into_owned();
        (name, gid)
    }
}

#[tokio::test]
async fn the_socket_is_mode_0660_in_the_configured_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orgsync.sock");
    let (name, gid) = own_group();
    let mut settings = settings(&path);
    settings.group = Some(name);
    let _listener = bind(&settings).expect("bind");
    let meta = std::fs::metadata(&path).expect("socket file");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), gid);
}

#[tokio::test]
async fn an_unknown_group_is_refused_and_leaves_no_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orgsync.sock");
    let mut settings = settings(&path);
    settings.group = Some("orgsync-no-such-group".into());
    let error = bind(&settings).expect_err("unknown group");
    assert!(matches!(error, SocketError::UnknownGroup { .. }), "{error}");
    assert!(error.to_string().contains("orgsync-no-such-group"));
    assert!(!path.exists());
}

#[tokio::test]
async fn a_missing_directory_is_named_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing").join("orgsync.sock");
    let error = bind(&settings(&path)).expect_err("no directory");
    let message = error.to_string();
    assert!(
        matches!(error, SocketError::DirectoryMissing { .. }),
        "{message}"
    );
    assert!(message.contains(&dir.path().join("missing").display().to_string()));
    assert!(message.contains("socket.path"), "{message}");
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orgsync.sock");
    // A daemon that died leaves its socket file; nobody listens on it any more.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale bind"));
    assert!(path.exists());
    let listener = bind(&settings(&path)).expect("bind over a stale socket");
    let connect = tokio::net::UnixStream::connect(&path);
    let (accepted, connected) = tokio::join!(listener.accept(), connect);
    accepted.expect("accept");
    connected.expect("connect");
}

#[tokio::test]
async fn a_live_socket_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orgsync.sock");
    let _first = bind(&settings(&path)).expect("first bind");
    let error = bind(&settings(&path)).expect_err("second bind");
    assert!(
        matches!(error, SocketError::AlreadyListening { .. }),
        "{error}"
    );
    assert!(error
        .to_string()
        .starts_with("another orgsync is already listening on"));
    assert!(path.exists());
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_never_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orgsync.sock");
    std::fs::write(&path, "precious").expect("write");
    let error = bind(&settings(&path)).expect_err("not a socket");
    assert!(matches!(error, SocketError::NotASocket { .. }), "{error}");
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        "precious"
    );
}
