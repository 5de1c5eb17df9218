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

use super::shared::Shared;
use crate::shutdown::{publish_head, stopped};
use crate::store::{event_log, Store, StoreError, BUSY_TIMEOUT};

/// How often the daemon looks for events committed by another process.
const HEAD_POLL: Duration = Duration::from_millis(500);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tokio::time::sleep(HEAD_POLL) => {
                if let Err(problem) = look(&shared).await {
                    shared.fail(problem);
                    return;
                }
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
    /// The file at `path` and the id in it.
    pub fn read(path: &Path) -> Result<Identity, StoreChange> {
        let (device, inode) = file_of(path)?;
        let id = Store::open_read_only(path)
            .and_then(|store| store.id())
            .map_err(|e| StoreChange::Unreadable(e.to_string()))?;
        Ok(Identity { device, inode, id })
    }
}

/// What became of the store since the daemon started.
#[derive(Debug)]
pub enum StoreChange {
    Removed,
    /// Another file, or another store, is at the path.
    Replaced,
    /// It cannot be read just now (busy, or briefly unreadable): looked at again next time.
    Unreadable(String),
}

impl std::fmt::Display for StoreChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChange::Removed => f.write_str("the store was removed"),
            StoreChange::Replaced => f.write_str("the store was replaced by another file"),
            StoreChange::Unreadable(why) => write!(f, "the store cannot be read: {why}"),
        }
    }
}

fn file_of(path: &Path) -> Result<(u64, u64), StoreChange> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok((metadata.dev(), metadata.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreChange::Removed),
        Err(e) => Err(StoreChange::Unreadable(e.to_string())),
    }
}

/// Checks that the store is still the one the daemon started with, and publishes its head,
/// through one read-only connection. The file first: a replacement that cannot even be opened
/// (foreign, corrupt, an old schema) is still another file, and must stop the daemon before
/// anything writes into it.
async fn look(shared: &Shared) -> Result<(), String> {
    let path = shared.store_path();
    let started = shared.identity.clone();
    let looked = tokio::task::spawn_blocking(move || -> Result<i64, StoreChange> {
        if file_of(&path)? != (started.device, started.inode) {
            return Err(StoreChange::Replaced);
        }
        let unreadable = |e: StoreError| StoreChange::Unreadable(e.to_string());
        let store = Store::open_read_only(&path).map_err(unreadable)?;
        if store.id().map_err(unreadable)? != started.id {
            return Err(StoreChange::Replaced);
        }
        event_log::head(store.conn()).map_err(unreadable)
    })
    .await
    .map_err(|e| e.to_string())?;
    let path = shared.store_path();
    match looked {
        Ok(head) => {
            publish_head(&shared.head, head);
            Ok(())
        }
        Err(StoreChange::Unreadable(error)) => {
            tracing::warn!(%error, "cannot read the event head");
            Ok(())
        }
        Err(change) => Err(format!(
            "{change} ({}) while the daemon ran; stop the daemon before moving, restoring or \
             replacing its store",
            path.display()
        )),
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
            publish_head(&shared.head, head);
        }
        Ok(Err(error)) => tracing::warn!(%error, "cannot read the event head"),
        Err(error) => tracing::warn!(%error, "cannot read the event head"),
    }
}
