//! One client connection: requests in, replies and subscribed events out.
//!
//! A connection is one task running two loops side by side: one answers requests, the other
//! streams the subscription once there is one. Both write whole lines through one locked
//! writer, so replies (an `ack` on a subscribed connection) fall between event lines, never
//! inside one. Neither loop holds anything in memory beyond the current line or batch; a
//! client that stops reading blocks only this task, in its write.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf, UCred};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::lines::{Line, LineReader};
use super::protocol::{
    error_reply, error_reply_with, parse_request, ErrorCode, LinkBy, Request, Subscribe, MAX_LINE,
};
use super::{ServerContext, SocketSettings, STREAM_STALL};
use crate::event_reader::{self, ReadError};
use crate::events::TypeFilter;
use crate::model::host_user::HostUser;
use crate::queue::Trigger;
use crate::service::directory::{self, LinkLookup};
use crate::service::events::{self, AckError, Owner};
use crate::service::host_users::{self, LoginLink, WriteError};
use crate::service::login::LoginError;
use crate::service::ServiceError;
use crate::store::consumers::ClaimError;
use crate::store::{event_log, Store, StoreError};

/// A subscription that passed its checks: deliver the events after `cursor`.
#[derive(Debug)]
struct Subscription {
    cursor: i64,
    types: Option<TypeFilter>,
}

/// Why a request failed; each becomes an error reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("seq {seq} is above the event head {head}; ack only seqs you have received")]
    AckAboveHead { seq: i64, head: i64 },
    #[error(
        "this connection is already subscribed; open another connection for another subscription"
    )]
    AlreadySubscribed,
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Consumer(#[from] ClaimError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("this position belongs to store {theirs}, but the daemon serves store {ours} (replaced, or restored from a backup); take a new snapshot, then subscribe from its seq")]
    StoreChanged { ours: String, theirs: String },
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("this connection is subscribed; ask for {0} on another connection, so that its lines do not mix with events")]
    Subscribed(&'static str),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot compute the status: {0}")]
    Status(String),
    #[error("the daemon failed while handling the request; see its log")]
    TaskFailed,
}

impl From<rusqlite::Error> for RequestError {
    fn from(error: rusqlite::Error) -> RequestError {
        RequestError::Store(StoreError::from(error))
    }
}

impl From<AckError> for RequestError {
    fn from(error: AckError) -> RequestError {
        match error {
            AckError::AboveHead { seq, head } => RequestError::AckAboveHead { seq, head },
            AckError::Consumer(error) => RequestError::Consumer(error),
            AckError::Store(error) => RequestError::Store(error),
        }
    }
}

impl RequestError {
    fn reply(&self) -> Value {
        let message = self.to_string();
        match self {
            RequestError::Read(ReadError::Gap { oldest, .. }) => {
                let mut extra = Map::new();
                extra.insert("oldest".into(), (*oldest).into());
                error_reply_with(ErrorCode::Gap, &message, extra)
            }
            RequestError::Read(ReadError::AheadOfHead { .. })
            | RequestError::StoreChanged { .. } => error_reply(ErrorCode::StoreChanged, &message),
            RequestError::Login(error) => error_reply(error.code(), &message),
            RequestError::Write(WriteError::Bad(_)) => error_reply(ErrorCode::BadRequest, &message),
            RequestError::Write(WriteError::Service(ServiceError::NotFound(_))) => {
                error_reply(ErrorCode::NotFound, &message)
            }
            RequestError::Write(WriteError::Service(ServiceError::Store(_))) => {
                error_reply(ErrorCode::Internal, &message)
            }
            RequestError::Service(ServiceError::NotFound(_)) => {
                error_reply(ErrorCode::NotFound, &message)
            }
            RequestError::Subscribed(_)
            | RequestError::AckAboveHead { .. }
            | RequestError::AlreadySubscribed => error_reply(ErrorCode::BadRequest, &message),
            RequestError::Forbidden(_)
            | RequestError::Consumer(ClaimError::Owned { .. } | ClaimError::Reserved { .. }) => {
                error_reply(ErrorCode::Forbidden, &message)
            }
            RequestError::Consumer(_) => error_reply(ErrorCode::TooManyConsumers, &message),
            RequestError::Store(_)
            | RequestError::Service(ServiceError::Store(_))
            | RequestError::Read(ReadError::Store(_))
            | RequestError::Status(_)
            | RequestError::TaskFailed => error_reply(ErrorCode::Internal, &message),
        }
    }
}

/// Serves one client until it closes the connection (a subscriber that closes only its sending
/// side goes on receiving events) or its subscription ends with an error line.
/// `peer` is the client's credentials, read once when it was accepted.
pub async fn run(stream: UnixStream, peer: Result<UCred, String>, ctx: Arc<ServerContext>) {
    let (read, write) = stream.into_split();
    let connection = Connection {
        peer,
        output: tokio::sync::Mutex::new(BufWriter::new(write)),
        store: StoreSlot::new(ctx.store_path.clone()),
        ctx,
    };
    let (subscribed, subscription) = oneshot::channel();
    tokio::select! {
        () = connection.answer_requests(read, subscribed) => {}
        () = connection.stream_events(subscription) => {}
    }
}

struct Connection {
    ctx: Arc<ServerContext>,
    peer: Result<UCred, String>,
    output: tokio::sync::Mutex<BufWriter<OwnedWriteHalf>>,
    store: StoreSlot,
}

impl Connection {
    async fn answer_requests(
        &self,
        read: OwnedReadHalf,
        subscribed: oneshot::Sender<Subscription>,
    ) {
        let mut lines = LineReader::new(read, MAX_LINE);
        let mut subscribed = Some(subscribed);
        let first_request_timeout = self.ctx.settings.first_request_timeout;
        let Ok(mut next) = tokio::time::timeout(first_request_timeout, lines.next()).await else {
            let _ = self
                .write_reply(&error_reply(
                    ErrorCode::Timeout,
                    &format!(
                        "no request within {}s of connecting; send a request right after connecting",
                        first_request_timeout.as_secs_f64()
                    ),
                ))
                .await;
            return;
        };
        loop {
            let line = match next {
                Ok(Some(line)) => line,
                // A subscriber that closed only its sending side still reads its events
                // (interfaces §4: "until the client closes").
                Ok(None) if subscribed.is_none() => return hang_up(lines.get_ref()).await,
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%error, "socket client read failed");
                    return;
                }
            };
            let (reply, subscription) = match line {
                Line::TooLarge => (
                    error_reply(
                        ErrorCode::TooLarge,
                        &format!("a request line may be at most {MAX_LINE} bytes; this one was discarded"),
                    ),
                    None,
                ),
                // Nobody is left to read its reply: a request cut off by a disconnect is never
                // executed, however whole it looks.
                Line::Unterminated(_) if hung_up(lines.get_ref()) => return,
                Line::Complete(line) | Line::Unterminated(line) => match parse_request(&line) {
                    Err(error) => (error_reply(error.code(), &error.to_string()), None),
                    Ok(request) => match self.handle(request, subscribed.is_some()).await {
                        Ok(answer) => answer,
                        Err(error) => (error.reply(), None),
                    },
                },
            };
            // A streamed answer whose reader went away mid-stream has no last line to send.
            if reply.is_null() || self.write_reply(&reply).await.is_err() {
                return;
            }
            // Only once the subscribe reply is out may events follow it.
            if let Some(subscription) = subscription {
                let started = subscribed.take().map(|sender| sender.send(subscription));
                if !matches!(started, Some(Ok(()))) {
                    return;
                }
            }
            // A connection that has not subscribed is closed when it idles, as before its
            // first request: only subscribers wait long between lines.
            next = match subscribed {
                Some(_) => match tokio::time::timeout(first_request_timeout, lines.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let _ = self
                            .write_reply(&error_reply(
                                ErrorCode::Timeout,
                                &format!(
                                    "no request for {}s; a connection that has not subscribed is closed when idle",
                                    first_request_timeout.as_secs_f64()
                                ),
                            ))
                            .await;
                        return;
                    }
                },
                None => lines.next().await,
            };
        }
    }

    async fn handle(
        &self,
        request: Request,
        may_subscribe: bool,
    ) -> Result<(Value, Option<Subscription>), RequestError> {
        match request {
            Request::Subscribe(subscribe) if may_subscribe => {
                let (reply, subscription) = self.subscribe(subscribe).await?;
                Ok((reply, Some(subscription)))
            }
            Request::Subscribe(_) => Err(RequestError::AlreadySubscribed),
            Request::Ack { consumer, seq } => {
                let owner = self.consumer_owner()?;
                self.store
                    .with(move |store| Ok(events::ack(store, consumer.as_str(), seq, &owner)?))
                    .await?;
                Ok((json!({"ok": true, "op": "ack"}), None))
            }
            Request::Status => {
                let status = Arc::clone(&self.ctx.status);
                let status = tokio::task::spawn_blocking(move || status())
                    .await
                    .map_err(|_| RequestError::TaskFailed)?
                    .map_err(RequestError::Status)?;
                Ok((json!({"ok": true, "op": "status", "status": status}), None))
            }
            Request::Resync => {
                self.check_admin("resync")?;
                let queue = Arc::clone(&self.ctx.queue);
                let resync = self
                    .store
                    .with(move |store| Ok(events::resync(store.conn(), &queue, Trigger::Socket)?))
                    .await?;
                Ok((
                    json!({"ok": true, "op": "resync", "queued": resync.queued, "merged": resync.merged, "after_run": resync.after_run}),
                    None,
                ))
            }
            // Open to every peer that may connect (interfaces §4): the host application pushes
            // its own users; `socket.group` decides who that is.
            Request::HostUsersPut { users, replace } => {
                Ok((self.put_host_users(users, replace).await?, None))
            }
            Request::Snapshot(filter) => {
                let subscribed = !may_subscribe;
                let last =
                    self.stream("a snapshot", subscribed, move |store, emit| {
                        match directory::snapshot(store, filter, emit)? {
                            Some(end) => {
                                let mut last = json!({"ok": true, "op": "snapshot"});
                                if let (Value::Object(last), Ok(Value::Object(end))) =
                                    (&mut last, serde_json::to_value(end))
                                {
                                    last.extend(end);
                                }
                                Ok(last)
                            }
                            None => Ok(Value::Null),
                        }
                    })
                    .await?;
                Ok((last, None))
            }
            Request::MembersList {
                department,
                descendants,
            } => {
                let subscribed = !may_subscribe;
                let last = self
                    .stream("members.list", subscribed, move |store, emit| {
                        match directory::members_in(store.conn(), department, descendants, emit)? {
                            Some(count) => {
                                Ok(json!({"ok": true, "op": "members.list", "count": count}))
                            }
                            None => Ok(Value::Null),
                        }
                    })
                    .await?;
                Ok((last, None))
            }
            Request::MemberGet { userid } => {
                let member = self
                    .store
                    .with(move |store| Ok(directory::member(store.conn(), &userid)?))
                    .await?;
                Ok((
                    json!({"ok": true, "op": "member.get", "member": member}),
                    None,
                ))
            }
            Request::DepartmentGet { id } => {
                let (department, path) = self
                    .store
                    .with(move |store| Ok(directory::department(store.conn(), id)?))
                    .await?;
                Ok((
                    json!({"ok": true, "op": "department.get", "department": department, "path": path}),
                    None,
                ))
            }
            Request::LinkPut {
                host_user_id,
                userid,
            } => {
                // It decides which account a WeCom identity signs in to: an admin op.
                self.check_admin("link.put")?;
                let link = LoginLink {
                    host_user_id,
                    userid,
                };
                let (source, by) = (self.ctx.source.clone(), self.peer_name());
                let head = self
                    .store
                    .with(move |store| Ok(link.record(store, &source, &by)?))
                    .await?;
                self.publish_head(head);
                Ok((json!({"ok": true, "op": "link.put"}), None))
            }
            Request::LoginResolve { code } => {
                let resolved = self.ctx.login.resolve(&code).await?;
                Ok((resolved.reply(), None))
            }
            Request::LinkGet(by) => {
                let link = self
                    .store
                    .with(move |store| {
                        let by = match &by {
                            LinkBy::HostUser(id) => LinkLookup::HostUser(id),
                            LinkBy::Member(userid) => LinkLookup::Member(userid),
                        };
                        Ok(directory::link(store.conn(), by)?)
                    })
                    .await?;
                Ok((json!({"ok": true, "op": "link.get", "link": link}), None))
            }
        }
    }

    /// Publishes a head this connection's own write moved, so that subscribers receive its
    /// events at once.
    fn publish_head(&self, head: i64) {
        crate::shutdown::publish_head(&self.ctx.head_publisher, head);
    }

    /// Writes the host users and re-matches in one transaction with the link events, then
    /// publishes the new head so that subscribers receive those events at once.
    async fn put_host_users(
        &self,
        users: Vec<HostUser>,
        replace: bool,
    ) -> Result<Value, RequestError> {
        let source = self.ctx.source.clone();
        let by = self.peer_name();
        let (summary, head) = self
            .store
            .with(move |store| Ok(host_users::put(store, &source, &by, &users, replace)?))
            .await?;
        self.publish_head(head);
        let mut reply = json!({"ok": true, "op": "host_users.put"});
        if let (Value::Object(reply), Ok(Value::Object(summary))) =
            (&mut reply, serde_json::to_value(summary))
        {
            reply.extend(summary);
        }
        Ok(reply)
    }

    async fn subscribe(&self, request: Subscribe) -> Result<(Value, Subscription), RequestError> {
        let Subscribe {
            since,
            consumer,
            types,
            store: theirs,
        } = request;
        let owner = match consumer {
            Some(_) => Some(self.consumer_owner()?),
            None => None,
        };
        let (cursor, head, ours) = self
            .store
            .with(move |store| {
                let ours = store.id()?;
                if let Some(theirs) = theirs.filter(|theirs| *theirs != ours) {
                    return Err(RequestError::StoreChanged { ours, theirs });
                }
                let consumer = consumer.as_ref().map(|c| c.as_str());
                if let (Some(name), Some(owner)) = (consumer, &owner) {
                    events::check_reader(store.conn(), name, owner)?;
                }
                let (cursor, head) = event_reader::start(store.conn(), since, consumer)?;
                Ok((cursor, head, ours))
            })
            .await?;
        Ok((
            json!({"ok": true, "op": "subscribe", "head": head, "store": ours}),
            Subscription { cursor, types },
        ))
    }

    /// Who owns the consumers this peer creates (`uid:N`), and whether it is an admin, who may
    /// use any consumer.
    fn consumer_owner(&self) -> Result<Owner, RequestError> {
        let peer = self.peer.as_ref().map_err(|error| {
            RequestError::Forbidden(format!(
                "named consumers belong to a peer, and this peer's credentials are unknown ({error})"
            ))
        })?;
        let (uid, gid) = (peer.uid(), peer.gid());
        Ok(Owner {
            name: format!("uid:{uid}"),
            admin: is_admin(uid, gid, &self.ctx.settings, self.ctx.daemon_uid),
        })
    }

    /// Runs `produce` on the store, writing each line it emits to the client as it comes (the
    /// store is read on a blocking thread, the lines written here, at most a few dozen lines in
    /// between), and returns what it returns: the op's last line.
    async fn stream(
        &self,
        op: &'static str,
        subscribed: bool,
        produce: impl FnOnce(&mut Store, &mut dyn FnMut(String) -> bool) -> Result<Value, RequestError>
            + Send
            + 'static,
    ) -> Result<Value, RequestError> {
        if subscribed {
            return Err(RequestError::Subscribed(op));
        }
        let (lines, mut received) = tokio::sync::mpsc::channel::<String>(STREAM_LINES);
        let producing = self.store.with(move |store| {
            let mut emit = |line: String| lines.blocking_send(line).is_ok();
            produce(store, &mut emit)
        });
        let writing = async {
            let mut output = self.output.lock().await;
            while let Some(mut line) = received.recv().await {
                line.push('\n');
                // A client that stops reading would keep the read transaction open, and with it
                // the WAL from being checkpointed: it gets a while, then the stream ends.
                let written =
                    tokio::time::timeout(STREAM_STALL, output.write_all(line.as_bytes())).await;
                if written.is_err() {
                    tracing::warn!(
                        op,
                        peer = %self.peer_name(),
                        stall_s = STREAM_STALL.as_secs(),
                        "a socket client took no line for too long; its answer ends unfinished"
                    );
                }
                if !matches!(written, Ok(Ok(()))) {
                    // Dropping the receiver stops the producer at its next line.
                    return;
                }
            }
        };
        let (last, ()) = tokio::join!(producing, writing);
        last
    }

    /// The peer as the audit trail names it.
    fn peer_name(&self) -> String {
        match &self.peer {
            Ok(peer) => format!("socket uid {}", peer.uid()),
            Err(_) => "socket (unknown uid)".to_owned(),
        }
    }

    fn check_admin(&self, op: &str) -> Result<(), RequestError> {
        let peer = self.peer.as_ref().map_err(|error| {
            RequestError::Forbidden(format!(
                "{op} is for admins, and the peer's credentials are unknown ({error})"
            ))
        })?;
        let (uid, gid) = (peer.uid(), peer.gid());
        if is_admin(uid, gid, &self.ctx.settings, self.ctx.daemon_uid) {
            return Ok(());
        }
        Err(RequestError::Forbidden(format!(
            "{op} is for admins: uid {uid} is neither root nor the daemon's uid {}; list it in socket.admin_uids (or its group {gid} in socket.admin_gids)",
            self.ctx.daemon_uid
        )))
    }

    /// Streams the subscription, once one arrives, until the client goes away, the daemon
    /// stops publishing, or the log can no longer be followed (a gap, a store failure), which
    /// is reported as a last error line.
    async fn stream_events(&self, subscription: oneshot::Receiver<Subscription>) {
        let Ok(Subscription { mut cursor, types }) = subscription.await else {
            return;
        };
        let types = Arc::new(types);
        let mut head = self.ctx.head.clone();
        loop {
            // Marked seen before reading: a commit published from here on wakes the wait
            // below, and one published before is already visible to the read.
            head.borrow_and_update();
            let filter = Arc::clone(&types);
            let batch = self
                .store
                .with(move |store| {
                    Ok(event_reader::next_batch(
                        store.conn(),
                        cursor,
                        filter.as_ref().as_ref(),
                    )?)
                })
                .await;
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, cursor, "socket subscription ended");
                    // The connection closes after this line, whether or not it got through.
                    let _ = self.write_reply(&error.reply()).await;
                    return;
                }
            };
            let Some(last_seq) = batch.last_seq else {
                // Caught up: sleep until the daemon commits again. An error means it is
                // shutting down.
                if head.changed().await.is_err() {
                    return;
                }
                continue;
            };
            if self.write_events(&batch.events).await.is_err() {
                return;
            }
            cursor = last_seq;
        }
    }

    async fn write_events(&self, events: &[event_log::StoredEvent]) -> std::io::Result<()> {
        for event in events {
            // Locked per line, so that a reply can be sent between two events.
            let mut output = self.output.lock().await;
            output.write_all(event.body.as_bytes()).await?;
            output.write_all(b"\n").await?;
        }
        self.output.lock().await.flush().await
    }

    async fn write_reply(&self, reply: &Value) -> std::io::Result<()> {
        let mut line = reply.to_string();
        line.push('\n');
        let mut output = self.output.lock().await;
        output.write_all(line.as_bytes()).await?;
        output.flush().await
    }
}

/// Returns once the peer has closed its whole connection. The kernel tells a hang-up only to a
/// poll, so it is asked once a second: a dead subscriber is noticed within a second even when
/// no event comes to fail a write.
async fn hang_up(read: &OwnedReadHalf) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    while !hung_up(read) {
        every.tick().await;
    }
}

/// Whether the peer closed its whole connection, not only its sending side (which a client
/// waiting for its last reply does): then no one is left to read a reply.
fn hung_up(read: &OwnedReadHalf) -> bool {
    let stream: &UnixStream = read.as_ref();
    let mut poll = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one pollfd, for a descriptor this connection owns and keeps open during the
    // call; a zero timeout returns at once.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    // POLLHUP is reported whatever `events` asks for: the peer shut down both directions.
    ready > 0 && poll.revents & libc::POLLHUP != 0
}

/// Whether a peer may use admin ops: root, the daemon's own user, or a configured admin.
/// SO_PEERCRED carries only the peer's primary group, so `admin_gids` matches that.
pub(super) fn is_admin(uid: u32, gid: u32, settings: &SocketSettings, daemon_uid: u32) -> bool {
    uid == 0
        || uid == daemon_uid
        || settings.admin_uids.contains(&uid)
        || settings.admin_gids.contains(&gid)
}

/// Lines of a streamed answer buffered between the store and the client.
const STREAM_LINES: usize = 64;

/// The connection's own store handle, opened on first use: a client that only asks for the
/// status never opens one.
struct StoreSlot {
    path: PathBuf,
    store: Arc<Mutex<Option<Store>>>,
}

impl StoreSlot {
    fn new(path: PathBuf) -> StoreSlot {
        StoreSlot {
            path,
            store: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `f` on a blocking thread: SQLite calls block, and a sync holding the write lock
    /// must stall only this connection, never the runtime.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, RequestError> + Send + 'static,
    ) -> Result<T, RequestError> {
        let slot = Arc::clone(&self.store);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let store = match &mut *slot {
                Some(store) => store,
                None => slot.insert(Store::open_for_requests(&path)?),
            };
            f(store)
        })
        .await
        .map_err(|_| RequestError::TaskFailed)?
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn admins_are_root_the_daemon_user_and_the_configured_ones() {
        let settings = SocketSettings {
            path: PathBuf::from("/run/orgsync/orgsync.sock"),
            group: None,
            admin_uids: vec![1001],
            admin_gids: vec![2002],
            max_connections: 8,
            max_connections_per_uid: 8,
            first_request_timeout: Duration::from_secs(30),
            allow_insecure_directory: false,
        };
        let daemon = 999;
        assert!(is_admin(0, 5000, &settings, daemon));
        assert!(is_admin(daemon, 5000, &settings, daemon));
        assert!(is_admin(1001, 5000, &settings, daemon));
        assert!(is_admin(5000, 2002, &settings, daemon));
        assert!(!is_admin(5000, 5000, &settings, daemon));
    }
}
