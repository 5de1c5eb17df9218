//! Stub WeCom servers: canned answers and faults, and a record of every request they saw.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Query;
use axum::http::{header, StatusCode, Uri};
use axum::Router;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::wecom::{ClientSettings, RetryPolicy, Secret, WecomClient};

/// Long and distinctive, so a leak anywhere is found by a plain substring search.
pub const SECRET: &str = "SECRETx9Qm2Lw7Vt4Rz1Kp8Hn3Jd6Fc5Gb0Sa2Ye7Uw4Io";
pub const TOKEN: &str = "TOKENa1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0";

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The path under `/cgi-bin/`.
    pub path: String,
    pub query: HashMap<String, String>,
    pub at: Instant,
    /// Requests being handled when this one arrived, itself included.
    pub in_flight: usize,
}

impl Hit {
    pub fn id(&self, key: &str) -> i64 {
        self.query[key].parse().unwrap()
    }
}

pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// `{"errcode":0,"errmsg":"ok", ...fields}`.
    pub fn ok(fields: Value) -> Reply {
        let mut body = json!({"errcode": 0, "errmsg": "ok"});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        Reply::raw(200, body.to_string())
    }

    pub fn errcode(errcode: i64, errmsg: &str) -> Reply {
        Reply::raw(
            200,
            json!({"errcode": errcode, "errmsg": errmsg}).to_string(),
        )
    }

    pub fn raw(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
        }
    }

    pub fn token() -> Reply {
        Reply::ok(json!({"access_token": TOKEN, "expires_in": 7200}))
    }
}

type Handler = Arc<dyn Fn(Hit) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

pub struct Stub {
    pub base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Stub {
    /// Serves `handler`'s answers until the test's runtime ends.
    pub async fn start<F, Fut>(handler: F) -> Stub
    where
        F: Fn(Hit) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |hit| Box::pin(handler(hit)));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let record = Arc::clone(&hits);
        let app = Router::new().fallback(
            move |uri: Uri, Query(query): Query<HashMap<String, String>>| {
                let (handler, hits, in_flight) = (
                    Arc::clone(&handler),
                    Arc::clone(&record),
                    Arc::clone(&in_flight),
                );
                async move {
                    let hit = Hit {
                        path: uri.path().trim_start_matches("/cgi-bin/").to_owned(),
                        query,
                        at: Instant::now(),
                        in_flight: in_flight.fetch_add(1, Ordering::SeqCst) + 1,
                    };
                    hits.lock().unwrap().push(hit.clone());
                    let reply = handler(hit).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    (
                        StatusCode::from_u16(reply.status).unwrap(),
                        [(header::CONTENT_TYPE, "application/json")],
                        reply.body,
                    )
                }
            },
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Stub { base, hits }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn count(&self, path: &str) -> usize {
        self.hits().iter().filter(|h| h.path == path).count()
    }
}

/// A raw HTTP/1.1 server, for faults axum will not produce: it reads each request and then
/// either hangs up without answering (while `hang_ups` lasts) or sends `answer(path)`.
pub async fn hang_up_stub(
    hang_ups: usize,
    answer: fn(&str) -> String,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        let mut left = hang_ups;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request).into_owned();
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            let path = path.trim_start_matches("/cgi-bin/");
            let path = path.split('?').next().unwrap_or("").to_owned();
            seen.fetch_add(1, Ordering::SeqCst);
            if path == "user/list" && left > 0 {
                left -= 1;
                drop(socket);
                continue;
            }
            let body = answer(&path);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (base, requests)
}

/// Settings with delays shrunk to milliseconds.
pub fn settings(base: &str) -> ClientSettings {
    ClientSettings {
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            rate_limit_wait: Duration::from_millis(20),
            max_rate_limit_waits: 3,
            concurrency_wait: Duration::from_millis(1),
            max_concurrency_retries: 5,
        },
        ..ClientSettings::new(base, "ww0123456789abcdef", Secret::new(SECRET))
    }
}

pub fn client(base: &str) -> WecomClient {
    WecomClient::new(settings(base)).unwrap()
}

/// A tenant: `department/list` answers `departments`, `user/list` answers `users[id]` (or
/// 60003 for a department it does not know).
pub fn tenant(
    departments: Value,
    users: HashMap<i64, Value>,
) -> impl Fn(Hit) -> std::future::Ready<Reply> + Send + Sync + 'static {
    move |hit| {
        std::future::ready(match hit.path.as_str() {
            "gettoken" => Reply::token(),
            "department/list" => Reply::ok(json!({ "department": departments })),
            "user/list" => match users.get(&hit.id("department_id")) {
                Some(list) => Reply::ok(json!({ "userlist": list })),
                None => Reply::errcode(60003, "department not found"),
            },
            other => panic!("unexpected call {other}"),
        })
    }
}
