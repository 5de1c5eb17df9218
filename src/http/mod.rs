//! The HTTP API (docs/http.md): the socket's read operations, the event log as pages
//! (long-poll) and as a Server-Sent Events tail, consumer acks and resync, for host
//! applications that cannot reach the Unix socket; plus `/healthz` and `/metrics` for
//! operators. Every operation is the service layer's, as on the socket.
//!
//! - [`server`] accepts connections (TLS with rustls when configured), caps them and bounds
//!   how long a client may take to send its request;
//! - [`auth`] checks bearer tokens in constant time;
//! - [`routes`] maps paths to operations, [`error`] errors to JSON replies;
//! - [`metrics`] renders the status as Prometheus text.

mod auth;
mod error;
mod metrics;
mod routes;
mod server;
mod stores;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::queue::SyncQueue;

pub use auth::Tokens;
pub use server::{
    bind, bind_endpoint, serve, serve_router, EndpointKeys, HttpError, Limits, Listener,
    TlsReloader,
};

/// What a token may do: `read` everything but admin operations; `admin` everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// A bearer token: its name (in logs and consumer owners, `token:NAME`) and its scope.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub scope: Scope,
    pub value: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// The certificate chain and private key files, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Connections served at once; one more is refused.
    pub max_connections: usize,
    /// How long a client may take for its TLS handshake and for a request's headers.
    pub header_timeout: Duration,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// The largest request body accepted.
    pub max_body: usize,
    /// How long a streamed snapshot waits for a client that stopped reading before it ends
    /// the snapshot: its read transaction would otherwise keep the WAL from being
    /// checkpointed. The daemon uses the socket's limit, [`crate::socket::STREAM_STALL`].
    pub stream_stall: Duration,
}

/// What the HTTP API needs from the daemon.
pub struct HttpContext {
    pub store_path: PathBuf,
    /// The event head, published after every commit: long-polls and streams wait on it.
    pub head: watch::Receiver<i64>,
    /// Publishes the head after a write made here, so that followers wake at once.
    pub head_publisher: watch::Sender<i64>,
    /// The source of the events committed here (host-user writes).
    pub source: crate::events::EventSource,
    pub queue: Arc<SyncQueue>,
    /// Resolves login codes (`POST /v1/login/resolve`).
    pub login: crate::service::login::Login,
    /// The status report, as the socket's `status` reply; it may block.
    pub status: Arc<dyn Fn() -> Result<Value, String> + Send + Sync>,
    /// The tokens in force; replaced when the config is reloaded.
    pub tokens: watch::Receiver<Arc<Tokens>>,
    pub settings: HttpSettings,
    /// Turns true when the daemon stops: streams and long-polls end.
    pub shutdown: watch::Receiver<bool>,
}
