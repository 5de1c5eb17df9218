//! Store connections for requests: opened on demand, a few kept idle for the next requests,
//! and every SQLite call made on a blocking thread, so that a sync holding the write lock
//! stalls the requests that wait for it, never the runtime.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::error::ApiError;
use crate::store::Store;

/// Connections kept open between requests.
const IDLE: usize = 4;

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
            None => Ok(Store::open_for_requests(&self.path)?),
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
