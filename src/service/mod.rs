//! The operations host applications call, implemented once for every transport: the socket
//! (and the HTTP API) parse a request, call these, and write what they return, so an operation
//! has the same answers, errors and limits wherever it is called from (docs/protocol.md).

pub mod directory;
pub mod events;
pub mod host_users;
pub mod login;

use std::fmt;

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

/// The `code` of an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    UnknownOp,
    TooLarge,
    Forbidden,
    Gap,
    /// The object asked for is not in the mirror.
    NotFound,
    /// The client's position belongs to another store (replaced, or restored from a backup).
    StoreChanged,
    TooManyConnections,
    /// A peer asked for one more consumer than its share.
    TooManyConsumers,
    /// The client sent no request in time after connecting.
    Timeout,
    /// The daemon failed (the store, the status source); the request itself was fine.
    Internal,
    /// The HTTP API: no bearer token, or one that is not configured.
    Unauthorized,
    /// `login.resolve`: the code is invalid, expired or used.
    InvalidCode,
    /// `login.resolve`: the code is someone who is not a member.
    NotAMember,
    /// `login.resolve`: WeCom cannot be asked now.
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Gap => "gap",
            ErrorCode::NotFound => "not_found",
            ErrorCode::StoreChanged => "store_changed",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::TooManyConsumers => "too_many_consumers",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidCode => "invalid_code",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
