//! The socket server alone, in the test process, over a real store in a temporary directory:
//! the test commits events and publishes the head as the daemon would.

use orgsync::service::login::Login;
use orgsync::wecom::{ClientSettings, Secret, WecomClient};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orgsync::events::{EventDraft, EventSource, EventType};
use orgsync::queue::SyncQueue;
use orgsync::socket::{self, ServerContext, SocketSettings};
use orgsync::store::{consumers, event_log, Store};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::{commit_dated, Client, WAIT};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub store: Store,
    pub source: EventSource,
    pub head: watch::Sender<i64>,
    pub shutdown: watch::Sender<bool>,
    pub queue: Arc<SyncQueue>,
    pub server: JoinHandle<()>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(|_| {}, current_uid()).await
    }

    /// [`Server::start`] with one event of each of `kinds` committed already.
    pub async fn with_events(kinds: &[EventType]) -> Server {
        let mut server = Server::start().await;
        server.append(kinds);
        server
    }

    /// `configure` changes the socket settings; `daemon_uid` is whom the server takes itself
    /// to run as.
    pub async fn start_with(
        configure: impl FnOnce(&mut SocketSettings),
        daemon_uid: u32,
    ) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_path = dir.path().join("orgsync.db");
        let store = Store::open(&store_path).expect("open store");
        let path = dir.path().join("orgsync.sock");
        let mut settings = SocketSettings {
            path: path.clone(),
            group: None,
            admin_uids: vec![],
            admin_gids: vec![],
            max_connections: 16,
            // Out of the way unless a test is about it: every test client has the same uid.
            max_connections_per_uid: 4096,
            first_request_timeout: WAIT,
            allow_insecure_directory: false,
        };
        configure(&mut settings);
        let (head, head_rx) = watch::channel(event_log::head(store.conn()).expect("head"));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let queue = Arc::new(SyncQueue::default());
        let listener = socket::bind(&settings).expect("bind");
        // Nothing here resolves logins: a client of a WeCom nobody serves.
        let client = WecomClient::new(ClientSettings::new(
            "http://127.0.0.1:9",
            "wwtest",
            Secret::new("unused"),
        ))
        .expect("client");
        let reach = orgsync::wecom::Reach {
            root: orgsync::wecom::ALL_VISIBLE,
            named_members: false,
        };
        let login = Login::new(
            Arc::new(move || (client.clone(), reach)),
            store_path.clone(),
        );
        let ctx = Arc::new(ServerContext {
            store_path,
            head: head_rx,
            head_publisher: head.clone(),
            source: EventSource::new("wwtest"),
            queue: Arc::clone(&queue),
            status: Arc::new(|| Ok(json!({"health": "fine"}))),
            settings,
            daemon_uid,
            login,
        });
        let server = tokio::spawn(socket::serve(listener, ctx, shutdown_rx));
        Server {
            dir,
            path,
            store,
            source: EventSource::new("wwtest"),
            head,
            shutdown,
            queue,
            server,
        }
    }

    /// Commits one event per kind, then publishes the new head as the daemon does.
    pub fn append(&mut self, kinds: &[EventType]) -> Vec<i64> {
        self.append_with(kinds, json!({}))
    }

    pub fn append_with(&mut self, kinds: &[EventType], data: Value) -> Vec<i64> {
        let drafts: Vec<EventDraft> = kinds
            .iter()
            .map(|&kind| EventDraft {
                kind,
                subject: "member/zhangsan".into(),
                data: data.clone(),
            })
            .collect();
        let source = self.source.clone();
        let seqs = self
            .store
            .write(|tx| event_log::append(tx, &source, None, &drafts, Utc::now()))
            .expect("append");
        self.head
            .send_replace(event_log::head(self.store.conn()).expect("head"));
        seqs
    }

    /// Commits `count` events dated `time`, as a sync at that time would have.
    pub fn append_dated(&mut self, count: usize, time: DateTime<Utc>) {
        let about = (EventType::MemberUpdated, "member/zhangsan");
        commit_dated(&mut self.store, &self.source, about, count, time);
        self.head
            .send_replace(event_log::head(self.store.conn()).expect("head"));
    }

    /// A client that the server serves: connects until one is not refused for lack of a slot
    /// (the server frees a closed client's slot on its own time), and checks it with a status.
    pub async fn connect_served(&self) -> Client {
        timeout(WAIT, async {
            loop {
                let mut client = self.connect().await;
                // A refused connection may already be closed for writing; its reply is there.
                let _ = client.write.write_all(b"{\"op\":\"status\"}\n").await;
                let reply = client.next().await;
                if reply["ok"] == true {
                    return client;
                }
                assert_eq!(error_code(&reply), "too_many_connections");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a slot frees up in time")
    }

    /// The stored cursor of `consumer`.
    pub fn cursor(&self, consumer: &str) -> Option<i64> {
        consumers::cursor(self.store.conn(), consumer).expect("cursor")
    }

    pub fn prune_through(&self, seq: i64) {
        self.store
            .conn()
            .execute("DELETE FROM events WHERE seq <= ?1", [seq])
            .expect("prune");
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.path).await
    }
}

pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The code of an error reply, asserting it is one.
pub fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["ok"], false, "{reply}");
    reply["error"]["code"].as_str().expect("an error code")
}
