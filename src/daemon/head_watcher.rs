//! Watches the store: publishes its event head to subscribers (after each of the daemon's own
//! runs, and every half second for events another process committed, a manual `orgsync sync`
//! on the same store), and stops the daemon when the store is replaced or removed under it.
//! Going on would serve another store's events under this one's seqs, or start an empty store
//! that reuses them; systemd restarts the daemon on whatever store is there then.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::shared::{stopped, Shared};
use crate::store::{event_log, Store, BUSY_TIMEOUT};

/// How often the daemon looks for events committed by another process.
const HEAD_POLL: Duration = Duration::from_millis(500);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tokio::time::sleep(HEAD_POLL) => {
                if let Err(problem) = check_identity(&shared).await {
                    shared.fail(problem);
                    return;
                }
                refresh(&shared).await;
            }
        }
    }
}

/// What tells the store the daemon started with from another file at the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    device: u64,
    inode: u64,
    id: String,
}

impl Identity {
    pub fn read(path: &Path) -> Result<Identity, String> {
        let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("the store {} was removed", path.display()),
            _ => format!("the store {} cannot be examined: {e}", path.display()),
        })?;
        let id = Store::open_read_only(path)
            .and_then(|store| store.id())
            .map_err(|e| e.to_string())?;
        Ok(Identity {
            device: metadata.dev(),
            inode: metadata.ino(),
            id,
        })
    }
}

async fn check_identity(shared: &Shared) -> Result<(), String> {
    let path = shared.store_path();
    let started = shared.identity.clone();
    let now = tokio::task::spawn_blocking(move || Identity::read(&path))
        .await
        .map_err(|e| e.to_string())?;
    let path = shared.store_path();
    match now {
        Ok(now) if now == started => Ok(()),
        Ok(_) => Err(format!(
            "the store {} was replaced by another file while the daemon ran; stop the daemon \
             before moving, restoring or replacing its store",
            path.display()
        )),
        Err(problem) if problem.contains("was removed") => Err(format!(
            "{problem} while the daemon ran; stop the daemon before moving its store"
        )),
        // Busy or briefly unreadable: the next poll looks again.
        Err(_) => Ok(()),
    }
}

/// Publishes the store's event head to subscribers if it moved.
pub async fn refresh(shared: &Shared) {
    let path = shared.store_path();
    let head = tokio::task::spawn_blocking(move || {
        Store::open_existing(&path, BUSY_TIMEOUT).and_then(|store| event_log::head(store.conn()))
    })
    .await;
    match head {
        Ok(Ok(head)) => {
            shared.head.send_if_modified(|current| {
                let moved = head > *current;
                if moved {
                    *current = head;
                }
                moved
            });
        }
        Ok(Err(error)) => tracing::warn!(%error, "cannot read the event head"),
        Err(error) => tracing::warn!(%error, "cannot read the event head"),
    }
}
