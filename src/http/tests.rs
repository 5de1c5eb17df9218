//! The API's router in the test process, over a real store in a temporary directory, its
//! responses read straight from the router: nothing buffers between the test and the
//! daemon's lines but the daemon's own channel, so a client that stops reading stops the
//! snapshot's producer at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use chrono::Utc;
use http_body_util::BodyExt;
use hyper::service::Service;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{routes, HttpContext, HttpSettings, Scope, Token, Tokens};
use crate::events::{EventDraft, EventSource, EventType};
use crate::queue::SyncQueue;
use crate::service::login::Login;
use crate::store::{event_log, Store};
use crate::wecom::{ClientSettings, Secret, WecomClient};

const TOKEN: &str = "read-token-0123456789abcdef";

/// Bounds every wait: generous, for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// More departments than the lines buffered between the store and the response body, so that
/// a client that reads nothing leaves the producer waiting to hand over a line.
const DEPARTMENTS: i64 = 200;

struct Api {
    _dir: tempfile::TempDir,
    store_path: PathBuf,
    store: Store,
    source: EventSource,
    router: TowerToHyperService<Router>,
}

impl Api {
    /// The API over a store holding [`DEPARTMENTS`] departments, with one read token.
    fn start(stream_stall: Duration) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store_path = dir.path().join("orgsync.db");
        let mut store = Store::open(&store_path).unwrap();
        store
            .write(|tx| {
                let mut insert = tx.prepare(
                    "INSERT INTO departments (id, name, parent_id, sort_order) VALUES (?1, ?2, ?3, ?1)",
                )?;
                insert.execute(rusqlite::params![1, "Root", 0])?;
                for id in 2..=DEPARTMENTS {
                    insert.execute(rusqlite::params![id, format!("Department {id}"), 1])?;
                }
                Ok(())
            })
            .unwrap();
        let head = event_log::head(store.conn()).unwrap();
        let (head_publisher, head) = watch::channel(head);
        // The daemon would stop them; here they live as long as the process.
        let shutdown = watch::Sender::new(false).subscribe();
        let tokens = watch::Sender::new(Arc::new(Tokens::new(vec![Token {
            name: "crm".into(),
            scope: Scope::Read,
            value: TOKEN.into(),
        }])))
        .subscribe();
        let client = WecomClient::new(ClientSettings::new(
            "http://127.0.0.1:9",
            "wwtest",
            Secret::new("unused"),
        ))
        .unwrap();
        let ctx = Arc::new(HttpContext {
            store_path: store_path.clone(),
            head,
            head_publisher,
            source: EventSource::new("wwtest"),
            queue: Arc::new(SyncQueue::default()),
            login: Login::new(
                Arc::new(move || {
                    let reach = crate::wecom::Reach {
                        root: crate::wecom::ALL_VISIBLE,
                        named_members: false,
                    };
                    (client.clone(), reach)
                }),
                store_path.clone(),
            ),
            status: Arc::new(|| Ok(json!({}))),
            tokens,
            settings: HttpSettings {
                listen: "127.0.0.1:0".parse().unwrap(),
                tls: None,
                max_connections: 4,
                header_timeout: WAIT,
                body_timeout: WAIT,
                max_body: 64 * 1024,
                stream_stall,
            },
            shutdown,
        });
        Api {
            _dir: dir,
            store_path,
            store,
            source: EventSource::new("wwtest"),
            router: TowerToHyperService::new(routes::router(ctx)),
        }
    }

    async fn get(&self, path: &str) -> Response<Body> {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        tokio::time::timeout(WAIT, self.router.call(request))
            .await
            .unwrap()
            .unwrap()
    }

    /// Commits an event, as a sync commits its run; the new head.
    fn commit(&mut self) -> i64 {
        let draft = EventDraft {
            kind: EventType::SyncCompleted,
            subject: "run/1".into(),
            data: json!({}),
        };
        let source = self.source.clone();
        self.store
            .write(|tx| event_log::append(tx, &source, None, &[draft], Utc::now()))
            .unwrap();
        event_log::head(self.store.conn()).unwrap()
    }
}

/// Moves every page of the WAL into the database and empties the WAL, waiting up to [`WAIT`]
/// for readers to let go of it; whether it could (no reader held an older snapshot).
async fn checkpoint(store: &Path) -> bool {
    let store = store.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(store).unwrap();
        conn.busy_timeout(WAIT).unwrap();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .unwrap();
        busy == 0
    })
    .await
    .unwrap()
}

/// The lines of a body, until it ends or fails; whether it failed.
async fn lines(body: Body) -> (Vec<Value>, bool) {
    let mut body = body;
    let mut bytes = Vec::new();
    let mut failed = false;
    while let Some(frame) = tokio::time::timeout(WAIT, body.frame()).await.unwrap() {
        match frame {
            Ok(frame) => bytes.extend_from_slice(frame.data_ref().unwrap()),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    let lines = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (lines, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_whose_client_stops_reading_ends_and_releases_its_read_transaction() {
    // Long enough that the test, reading the second snapshot below, never stalls by accident,
    // even on a loaded machine.
    let mut api = Api::start(Duration::from_secs(5));
    let stalled = api.get("/v1/snapshot").await;
    assert_eq!(stalled.status(), StatusCode::OK);
    // The headers came once the read transaction had begun; a sync commits after it.
    let head = api.commit();
    // The WAL can be emptied only once no reader is left on the snapshot before the commit.
    assert!(
        checkpoint(&api.store_path).await,
        "the stalled snapshot still holds its read transaction"
    );

    // The client reads at last: what had been handed over, then a cut-off transfer.
    let (got, failed) = lines(stalled.into_body()).await;
    assert!(failed, "the body ended cleanly");
    assert!(got.len() < DEPARTMENTS as usize, "{} lines", got.len());
    assert!(got.iter().all(|line| line.get("department").is_some()));

    // The daemon goes on serving snapshots, of the mirror as the commit left it.
    let whole = api.get("/v1/snapshot").await;
    let (got, failed) = lines(whole.into_body()).await;
    assert!(!failed);
    let last = got.last().unwrap();
    assert_eq!(last["ok"], true, "{last}");
    assert_eq!(last["seq"], head, "{last}");
    assert_eq!(last["departments"], DEPARTMENTS, "{last}");
}
