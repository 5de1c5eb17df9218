//! One daemon per store: a second `orgsync run` on the same store (with another socket path,
//! say) would run every schedule twice and fight over the event head. The daemon holds an
//! exclusive lock on `<store.path>.lock` for its lifetime; the file names the holder's pid for
//! the refusal message. The kernel drops the lock when the process dies, so a crash leaves
//! nothing to clean up. A manual `orgsync sync` does not take it: it serializes with the
//! daemon through SQLite's write lock, as the contract allows.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another orgsync daemon{} is already running on the store {store}; stop it first, or give this one its own `store.path`", holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default())]
    Held { store: PathBuf, holder: Option<u32> },
    #[error("cannot create the lock file {path}: {source}; check that the store's directory is writable by this user")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the daemon runs; dropping it releases the lock.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub fn acquire(store: &Path) -> Result<StoreLock, LockError> {
        let mut path = store.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor this function owns; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(LockError::Held {
                store: store.to_owned(),
                holder,
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StoreLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("orgsync.db");
        let first = StoreLock::acquire(&store).unwrap();
        match StoreLock::acquire(&store) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        StoreLock::acquire(&store).unwrap();
    }
}
