//! The Unix socket (docs/protocol.md): host applications read the directory, subscribe to the
//! event stream, ack what they have processed and put their users; admins ask for a resync.
//!
//! - [`bind`] creates the socket file (mode 0660, optionally owned by `socket.group`), replacing
//!   a stale one left by a dead daemon.
//! - [`serve`] accepts clients, each in its own task, up to `max_connections`.
//! - [`request`] is the client side of one request/reply, for `orgsync status` and `resync`.
//!
//! Subscribers read the event log straight from SQLite in batches and are woken through the
//! `head` watch, so the sync never waits for a subscriber and a slow one holds one batch.
//!
//! Where the contract is silent, the server does this:
//! - Closing the connection ends a subscription; closing only its sending direction does not
//!   (the daemon asks the kernel for a hang-up once a second while no events flow).
//! - A last request line that the end of input ends instead of a newline is answered like any
//!   other (`printf '{"op":"status"}' | socat - UNIX:...`), then the connection closes; unless
//!   the client closed its whole connection, not only its sending side: then no one is left to
//!   read the reply, and a request cut off by a disconnect is never executed.
//! - One subscription per connection; a second `subscribe` is a `bad_request`.
//! - A start before the oldest kept event is a `gap` whose `oldest` is the oldest event still
//!   available (the next one to be committed, when none is kept). Events pruned under a live
//!   subscription end it with the same `gap` line, and the connection closes.
//! - A `since` above the head (a store replaced under the client) is `store_changed`, and an
//!   `ack` above the head a `bad_request`: both would otherwise skip events silently.
//! - `resync` replies `"queued": true` whether the request queued a run or merged into one
//!   already pending (either way one run follows); `"merged"` tells which.
//! - `host_users.put` is open to every peer that may connect, as the contract has it: the host
//!   application pushes its own users, and `socket.group` decides who may connect. It decides
//!   which host account a WeCom identity signs in to, so that group must hold only host
//!   applications trusted with sign-in. Its reply adds `links_created` and `links_removed`. A bad user is
//!   a `bad_request` naming its index (`users[3]: ...`), as is an id given twice, and nothing
//!   is applied. An empty `users` with `replace` empties the host-user set.
//! - A consumer name is 1 to 128 printable characters: no control, bidirectional or
//!   zero-width characters, no whitespace but the plain space, none at either end.
//! - A client must send its first request within `first_request_timeout` (30 s in the daemon)
//!   of connecting; one that does not is told `timeout` and closed. After that, silence is
//!   normal: a subscriber may never send another line.
//! - Failures of the daemon itself (the store, the status) are replied as `internal`.

mod client;
mod connection;
mod lines;
mod listener;
pub mod protocol;
mod server;
mod slots;

use crate::service::login::Login;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::events::EventSource;
use crate::queue::SyncQueue;

pub use client::{request, send, ClientError, Lines};
pub use listener::{bind, SocketError};
pub use server::serve;

/// How long a streamed answer (`snapshot`, `members.list`, and the HTTP API's snapshot) waits
/// for a client that stopped reading before it ends the answer: the answer's read transaction
/// would otherwise keep the WAL from being checkpointed while syncs commit.
pub const STREAM_STALL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSettings {
    pub path: PathBuf,
    /// The group given the socket file, so that its members may connect.
    pub group: Option<String>,
    /// Peers allowed admin ops (`resync`) besides root and the daemon's own user.
    pub admin_uids: Vec<u32>,
    /// Peers whose primary group is one of these are admins too.
    pub admin_gids: Vec<u32>,
    /// Clients served at once; one more is told `too_many_connections` and closed.
    pub max_connections: usize,
    /// Clients served at once for one peer uid.
    pub max_connections_per_uid: usize,
    /// How long a new client may take to send its first request before it is told `timeout`
    /// and closed, so that connections that never speak do not hold slots forever.
    pub first_request_timeout: Duration,
    /// Create the socket even in a directory another user could replace it in.
    pub allow_insecure_directory: bool,
}

/// What the server needs from the daemon.
pub struct ServerContext {
    /// Each connection that needs the store opens its own connection to it.
    pub store_path: PathBuf,
    /// The event head, published by the daemon after every commit; subscribers wait on it.
    pub head: watch::Receiver<i64>,
    /// Publishes the head after a commit made on a connection (`host_users.put`), so that
    /// subscribers wake at once rather than at the daemon's next poll.
    pub head_publisher: watch::Sender<i64>,
    /// The source of the events committed on a connection.
    pub source: EventSource,
    pub queue: Arc<SyncQueue>,
    /// The content of the `status` reply, computed on demand; it may block, so it is called on
    /// a blocking thread.
    pub status: Arc<dyn Fn() -> Result<Value, String> + Send + Sync>,
    pub settings: SocketSettings,
    pub daemon_uid: u32,
    /// Resolves login codes (`login.resolve`).
    pub login: Login,
}
