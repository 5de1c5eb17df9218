//! The operations host applications call, implemented once for every transport: the socket
//! (and the HTTP API) parse a request, call these, and write what they return, so an operation
//! has the same answers, errors and limits wherever it is called from (docs/protocol.md).

pub mod directory;

use crate::store::StoreError;

/// Why an operation could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ServiceError {
    fn from(error: rusqlite::Error) -> ServiceError {
        ServiceError::Store(StoreError::from(error))
    }
}
