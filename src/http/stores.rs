//! Store connections for requests: opened on demand, a few kept idle for the next requests,
//! and every SQLite call made on a blocking thread, so that a sync holding the write lock
//! stalls the requests that wait for it, never the runtime.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::error::ApiError;
use crate::store::{Store, BUSY_TIMEOUT};

/// Connections kept open between requests.
const IDLE: usize = 4;

/// A connection's SQLite page cache, in KiB (negative: SQLite's unit for KiB), small as the
/// socket's: requests read straight through.
const CACHE_KIB: i64 = -256;

#[derive(Clone)]
pub struct Stores {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Store>>>,
}

impl Stores {
    pub fn new(path: PathBuf) -> Stores {
        Stores {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A connection of the pool's, or a new one. Blocks.
    pub fn take(&self) -> Result<Store, ApiError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(store) => Ok(store),
            None => {
                let store = Store::open_existing(&self.path, BUSY_TIMEOUT)?;
                store
                    .conn()
                    .pragma_update(None, "cache_size", CACHE_KIB)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(store)
            }
        }
    }

    /// Gives a connection back for the next request.
    pub fn give_back(&self, store: Store) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE {
            idle.push(store);
        }
    }

    /// Runs `f` on a connection, on a blocking thread.
    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let stores = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = stores.take()?;
            let result = f(&mut store);
            stores.give_back(store);
            result
        })
        .await
        .map_err(|_| {
            ApiError::internal("the daemon failed while handling the request; see its log")
        })?
    }
}
