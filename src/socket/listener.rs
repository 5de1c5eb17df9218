//! Creating the socket file: permissions, group, and the stale file of a dead daemon.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::UnixListener;

use super::SocketSettings;

/// Owner and group may connect; others may not even see who listens.
const SOCKET_MODE: u32 = 0o660;

/// The umask while binding: the file is born 0600, and only widened to 0660 once its group is
/// right, so that no one outside the group can connect at any moment.
const BIND_UMASK: libc::mode_t = 0o177;

/// Group database entries larger than this are not worth growing the buffer for.
const MAX_GROUP_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("socket directory {} does not exist; create it or set socket.path (systemd: RuntimeDirectory=)", dir.display())]
    DirectoryMissing { dir: PathBuf },
    #[error("{} is not a directory; set socket.path to a file in a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("cannot create the socket in {}: {source}; make the directory writable by the daemon's user or set socket.path (systemd: RuntimeDirectory=)", dir.display())]
    DirectoryNotWritable { dir: PathBuf, source: io::Error },
    #[error("socket.path {} cannot be a Unix socket address (longer than 107 bytes or contains a NUL byte); choose a shorter path", path.display())]
    BadPath { path: PathBuf },
    #[error("another orgsync is already listening on {}; stop it, or give this instance its own socket.path", path.display())]
    AlreadyListening { path: PathBuf },
    #[error("{} exists and is not a socket; orgsync never deletes it: move it away or set socket.path", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot check whether a daemon listens on {}: {source}; remove the file if no orgsync is running", path.display())]
    Probe { path: PathBuf, source: io::Error },
    #[error("cannot remove the stale socket {} left by a stopped daemon: {source}; remove it by hand", path.display())]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("socket.group {name:?} does not exist; create it (e.g. with sysusers.d) or fix socket.group")]
    UnknownGroup { name: String },
    #[error("cannot look up socket.group {name:?}: {source}")]
    GroupLookup { name: String, source: io::Error },
    #[error("cannot give {} to group {group:?}: {source}; the daemon's user must be a member of it (systemd: SupplementaryGroups=)", path.display())]
    SetGroup {
        path: PathBuf,
        group: String,
        source: io::Error,
    },
    #[error("cannot set the mode of {}: {source}", path.display())]
    SetMode { path: PathBuf, source: io::Error },
    #[error("cannot listen on {}: {source}; check socket.path", path.display())]
    Bind { path: PathBuf, source: io::Error },
    #[error("socket directory {} {why}, so another user could put a socket of their own in orgsync's place; use a directory of the daemon's (systemd: RuntimeDirectory=), or set socket.allow_insecure_directory = true", dir.display())]
    InsecureDirectory { dir: PathBuf, why: String },
}

/// Creates the listening socket at `settings.path`, mode 0660, in `settings.group` if set.
/// Must be called within the Tokio runtime.
///
/// While it binds, the process umask is narrowed: files other threads create at that moment
/// get at most mode 0600, never a wider one.
pub fn bind(settings: &SocketSettings) -> Result<UnixListener, SocketError> {
    let path = settings.path.as_path();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if !settings.allow_insecure_directory {
                check_directory(dir, &meta)?;
            }
        }
        Ok(_) => return Err(SocketError::NotADirectory { dir: dir.into() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SocketError::DirectoryMissing { dir: dir.into() })
        }
        Err(source) => {
            return Err(SocketError::DirectoryNotWritable {
                dir: dir.into(),
                source,
            })
        }
    }
    // Resolved before touching the file system, so that a typo leaves nothing behind.
    let group = match &settings.group {
        Some(name) => Some((name.as_str(), group_id(name)?)),
        None => None,
    };
    remove_stale(path)?;

    // SAFETY: umask only swaps the process's file-creation mask and cannot fail.
    let previous = unsafe { libc::umask(BIND_UMASK) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the mask found before.
    unsafe { libc::umask(previous) };
    let listener = bound.map_err(|source| match source.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            SocketError::DirectoryNotWritable {
                dir: dir.into(),
                source,
            }
        }
        io::ErrorKind::NotFound => SocketError::DirectoryMissing { dir: dir.into() },
        io::ErrorKind::AddrInUse => SocketError::AlreadyListening { path: path.into() },
        io::ErrorKind::InvalidInput => SocketError::BadPath { path: path.into() },
        _ => SocketError::Bind {
            path: path.into(),
            source,
        },
    })?;

    let ready = set_access(path, group).and_then(|()| {
        listener
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(listener))
            .map_err(|source| SocketError::Bind {
                path: path.into(),
                source,
            })
    });
    if ready.is_err() {
        // Ours, just created: leave no half-configured socket behind.
        let _ = fs::remove_file(path);
    }
    ready
}

/// Refuses a directory in which someone else could replace the socket: writable by everyone
/// without the sticky bit, or owned by a user other than root and this process's.
fn check_directory(dir: &Path, meta: &fs::Metadata) -> Result<(), SocketError> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let why = if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        Some("is writable by everyone and has no sticky bit".to_owned())
    } else if meta.uid() != 0 && meta.uid() != me {
        Some(format!(
            "belongs to uid {}, neither root nor the daemon's uid {me}",
            meta.uid()
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(SocketError::InsecureDirectory {
            dir: dir.into(),
            why,
        }),
        None => Ok(()),
    }
}

fn set_access(path: &Path, group: Option<(&str, u32)>) -> Result<(), SocketError> {
    if let Some((name, gid)) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| {
            SocketError::SetGroup {
                path: path.into(),
                group: name.into(),
                source,
            }
        })?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE)).map_err(|source| {
        SocketError::SetMode {
            path: path.into(),
            source,
        }
    })
}

/// Removes a socket file nobody listens on. A file that is not a socket is never touched.
fn remove_stale(path: &Path) -> Result<(), SocketError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Probe {
                path: path.into(),
                source,
            })
        }
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(SocketError::NotASocket { path: path.into() })
        }
        Ok(_) => {}
    }
    if is_listening(path)? {
        return Err(SocketError::AlreadyListening { path: path.into() });
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SocketError::RemoveStale {
            path: path.into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Whether something accepts connections on `path`. The probe does not block: a listener with
/// a full backlog answers "try again", which also means alive.
fn is_listening(path: &Path) -> Result<bool, SocketError> {
    let probe_error = |source| SocketError::Probe {
        path: path.into(),
        source,
    };
    let address = SockAddr::unix(path).map_err(|_| SocketError::BadPath { path: path.into() })?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(probe_error)?;
    socket.set_nonblocking(true).map_err(probe_error)?;
    match socket.connect(&address) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(probe_error(source)),
    }
}

/// Removes the socket file at shutdown, if it is still a socket.
pub(super) fn remove(path: &Path) {
    let is_socket = fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket());
    if is_socket {
        if let Err(error) = fs::remove_file(path) {
            tracing::warn!(path = %path.display(), %error, "cannot remove the socket file");
        }
    }
}

/// The id of a group, by name, from the system's group database (files, LDAP, ...).
fn group_id(name: &str) -> Result<u32, SocketError> {
    let unknown = || SocketError::UnknownGroup { name: name.into() };
    let c_name = CString::new(name).map_err(|_| unknown())?;
    let mut buffer: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: `group` is plain old data that getgrnam_r fills in; all-zero is a valid
        // value for it (null pointers, zero gid).
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call, and the buffer length
        // passed is the buffer's own; the strings in `group` point into `buffer`, which is not
        // read after the gid is copied out.
        let status = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut group,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        };
        match status {
            // POSIX lets "no such group" come back as any of these errors as well.
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM if found.is_null() => {
                return Err(unknown())
            }
            0 => return Ok(group.gr_gid),
            libc::ERANGE if buffer.len() < MAX_GROUP_BUFFER => buffer.resize(buffer.len() * 2, 0),
            code => {
                return Err(SocketError::GroupLookup {
                    name: name.into(),
                    source: io::Error::from_raw_os_error(code),
                })
            }
        }
    }
}
