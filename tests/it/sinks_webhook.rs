//! Webhook sinks through the real daemon, delivering to a real HTTP receiver in the test
//! process: order and signatures, retries of 500s and timeouts, a receiver down and back, 410
//! pausing until `orgsync sinks resume`, replay, restarts (SIGKILL too) resuming at the
//! confirmed cursor, a refused TLS certificate, the Python verifier, and the config rules.
//! Every wait is for the receiver getting requests or the daemon reporting a state.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use orgsync::store::{consumers, Store};
use orgsync_simulator::{Directory, SimUser};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::harness::{describe, self_signed, success_stdout, Client, Daemon, Env, Python, WAIT};

/// Two secrets, as during a rotation: both sign every delivery.
const SECRET_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// How the receiver answers one request.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    /// Answers 200 only after this long: longer than the sink's timeout.
    Hang(Duration),
    /// The status with this `Retry-After` header.
    RetryAfter(u16, String),
    /// The status with a `Retry-After` HTTP-date this long after the request came.
    RetryAt(u16, Duration),
}

#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    /// When it came by the wall clock, which an HTTP-date in `Retry-After` is measured on.
    wall: SystemTime,
    /// The `Retry-After` header of the answer.
    retry_after: Option<String>,
    headers: HeaderMap,
    body: String,
    status: u16,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The events of the request (one, or a batch).
    fn events(&self) -> Vec<Value> {
        let value: Value = serde_json::from_str(&self.body).unwrap();
        match value {
            Value::Array(events) => events,
            event => vec![event],
        }
    }
}

#[derive(Default)]
struct Script {
    /// Replies for the next requests, in order.
    next: VecDeque<Reply>,
    /// The reply once `next` is empty; 200 when unset.
    otherwise: Option<Reply>,
}

struct ReceiverState {
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
    /// Bumped on every request, to wait on.
    count: watch::Sender<usize>,
}

/// An HTTP receiver on 127.0.0.1 (TLS with a given acceptor), whose replies a test scripts.
/// [`Receiver::down`] closes the listener and every connection; [`Receiver::up`] listens on
/// the same port again.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    tls: Option<TlsAcceptor>,
    server: Option<JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Receiver {
        Receiver::start_with(None).await
    }

    async fn start_with(tls: Option<TlsAcceptor>) -> Receiver {
        let mut receiver = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            state: Arc::new(ReceiverState {
                script: Mutex::new(Script::default()),
                received: Mutex::new(Vec::new()),
                count: watch::Sender::new(0),
            }),
            tls,
            server: None,
        };
        receiver.up();
        receiver
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/hook", self.addr.port())
    }

    fn up(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        self.addr = socket.local_addr().unwrap();
        let listener = socket.listen(64).unwrap();
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(self.state.clone());
        let tls = self.tls.clone();
        self.server = Some(tokio::spawn(async move {
            // Dropped with the task: every connection closes when the receiver goes down.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = TowerToHyperService::new(router.clone());
                let tls = tls.clone();
                connections.spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        }));
    }

    fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Replies for the next requests, then `otherwise` (200 when `None`).
    fn script(&self, next: &[Reply], otherwise: Option<Reply>) {
        let mut script = self.state.script.lock().unwrap();
        script.next = next.iter().cloned().collect();
        script.otherwise = otherwise;
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The requests it answered with a 2xx.
    fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// The seqs of the events it accepted, in the order they came.
    fn accepted_seqs(&self) -> Vec<i64> {
        self.accepted()
            .iter()
            .flat_map(Received::events)
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    }

    /// Waits until `done` holds for what it received.
    async fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) {
        let mut count = self.state.count.subscribe();
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                if done(&self.received()) {
                    return;
                }
                count.changed().await.unwrap();
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{what} did not happen; received {} requests: {:?}",
            self.received().len(),
            self.received()
                .iter()
                .map(|r| (r.status, r.body.chars().take(80).collect::<String>()))
                .collect::<Vec<_>>()
        );
    }

    /// Waits until it accepted the event `head`, then asserts that it accepted every event up
    /// to it exactly once, in seq order.
    async fn wait_all_accepted(&self, head: i64) {
        self.wait_accepted(head).await;
        assert_eq!(self.accepted_seqs(), (1..=head).collect::<Vec<_>>());
    }

    /// Waits until it accepted the event `seq`.
    async fn wait_accepted(&self, seq: i64) {
        self.wait_until(&format!("event {seq} accepted"), |received| {
            received
                .iter()
                .filter(|r| (200..300).contains(&r.status))
                .flat_map(Received::events)
                .any(|e| e["seq"] == seq)
        })
        .await;
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let reply = {
        let mut script = state.script.lock().unwrap();
        let next = script.next.pop_front();
        next.or_else(|| script.otherwise.clone())
            .unwrap_or(Reply::Status(200))
    };
    let wall = SystemTime::now();
    let (status, retry_after) = match &reply {
        Reply::Status(status) => (*status, None),
        Reply::Hang(_) => (200, None),
        Reply::RetryAfter(status, value) => (*status, Some(value.clone())),
        Reply::RetryAt(status, after) => (*status, Some(httpdate::fmt_http_date(wall + *after))),
    };
    state.received.lock().unwrap().push(Received {
        at: Instant::now(),
        wall,
        retry_after: retry_after.clone(),
        headers,
        body,
        status: if matches!(reply, Reply::Hang(_)) {
            // The sink gave up waiting: it was not accepted.
            0
        } else {
            status
        },
    });
    state.count.send_modify(|n| *n += 1);
    if let Reply::Hang(time) = reply {
        tokio::time::sleep(time).await;
    }
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(value) => (status, [(RETRY_AFTER, value)]).into_response(),
        None => status.into_response(),
    }
}

/// A `[[sinks.webhook]]` named `crm` to `url`, with fast retries and `extra` keys.
fn sink_config(url: &str, extra: &str) -> String {
    format!(
        "[[sinks.webhook]]\nname = \"crm\"\nurl = \"{url}\"\nsecret_file = \"crm.whsec\"\n\
         timeout_secs = 1\nretry_first_delay_ms = 10\nretry_max_delay_secs = 1\n{extra}\n"
    )
}

async fn sink_env(url: &str, extra: &str) -> Env {
    let env = Env::with_config(Directory::sample(), &sink_config(url, extra)).await;
    std::fs::write(
        env.path("crm.whsec"),
        format!("{SECRET_OLD}\n{SECRET_NEW}\n"),
    )
    .unwrap();
    env
}

/// A daemon with the sink `crm` delivering to `receiver` (`extra` in its config), and a
/// subscriber past the start-up sync.
async fn deliver_to(receiver: &Receiver, extra: &str) -> (Env, Daemon, Client) {
    let env = sink_env(&receiver.url(), extra).await;
    let (daemon, subscriber) = env.start_synced_daemon().await;
    (env, daemon, subscriber)
}

fn key(secret: &str) -> Vec<u8> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap()
}

/// Checks the request's Standard Webhooks headers: a recent timestamp, and one `v1,`
/// signature per secret.
fn assert_signed(request: &Received) {
    let timestamp = request.header("webhook-timestamp");
    let sent: i64 = timestamp.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - sent).abs() < 60,
        "{timestamp}"
    );
    let signatures: Vec<&str> = request.header("webhook-signature").split(' ').collect();
    let expected: Vec<String> = [SECRET_OLD, SECRET_NEW]
        .iter()
        .map(|secret| signature(secret, request))
        .collect();
    assert_eq!(signatures, expected);
}

/// The `v1,` signature of a request with `secret`: the HMAC-SHA256 of `id.timestamp.body`.
fn signature(secret: &str, request: &Received) -> String {
    let id = request.header("webhook-id");
    let timestamp = request.header("webhook-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", request.body).as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The sink `crm` in the daemon's status, once `found` finds something in it.
async fn sink_status_when<T>(env: &Env, what: &str, found: impl Fn(&Value) -> Option<T>) -> T {
    env.status_when(what, |status| {
        status["sinks"]
            .as_array()?
            .iter()
            .find(|sink| sink["name"] == "crm")
            .and_then(&found)
    })
    .await
}

/// The sink `crm` once it is in `state` (as the daemon reports it): `what`, for the message
/// if it never is.
async fn sink_in_state(env: &Env, state: &str, what: &str) -> Value {
    sink_status_when(env, what, |sink| {
        (sink["state"] == state).then(|| sink.clone())
    })
    .await
}

/// Waits until the sink `crm`'s cursor is at `seq`: `what`, for the message if it never is.
async fn sink_at_cursor(env: &Env, seq: i64, what: &str) {
    sink_status_when(env, what, |sink| (sink["cursor"] == seq).then_some(())).await;
}

fn hire(env: &Env, userid: &str) {
    env.sim
        .edit(|directory| directory.users.push(SimUser::new(userid, "新同事", &[1])));
}

/// Asks the running daemon to sync (SIGUSR1) and waits for the run's completion event.
async fn resync(env: &Env) -> i64 {
    let mut watcher = env
        .subscribe(serde_json::json!({"op": "subscribe", "types": ["orgsync.sync.completed"]}))
        .await;
    assert_eq!(watcher.reply["ok"], true, "{}", watcher.reply);
    let output = env.run(&["resync"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    watcher.next().await["seq"].as_i64().unwrap()
}

fn cursor(env: &Env) -> Option<i64> {
    let store = Store::open(&env.store_path()).unwrap();
    consumers::cursor(store.conn(), "sink:crm").unwrap()
}

#[tokio::test]
async fn events_arrive_in_seq_order_signed_with_both_secrets() {
    let receiver = Receiver::start().await;
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    let head = env.state().head();
    assert!(head > 5, "the start-up sync made events");
    receiver.wait_all_accepted(head).await;

    let stored = env.events_since(0).await;
    for (request, event) in receiver.accepted().iter().zip(&stored) {
        assert_eq!(
            request.header("content-type"),
            "application/cloudevents+json"
        );
        assert_eq!(request.header("webhook-id"), event["id"].as_str().unwrap());
        // The body is the stored line itself.
        assert_eq!(
            serde_json::from_str::<Value>(&request.body).unwrap(),
            *event
        );
        assert_signed(request);
    }
    assert_eq!(cursor(&env), Some(head));

    let sink = sink_in_state(&env, "idle", "the sink idle").await;
    assert_eq!(sink["lag"], 0, "{sink}");
    assert_eq!(sink["cursor"], head, "{sink}");
    assert_eq!(sink["kind"], "webhook", "{sink}");

    // Live events follow.
    hire(&env, "xinren1");
    let completed = resync(&env).await;
    receiver.wait_all_accepted(completed).await;

    let listed = env.run(&["sinks"]).await;
    let text = success_stdout(&listed);
    assert!(
        text.lines()
            .any(|l| l.starts_with("crm ") && l.contains("idle")),
        "{text}"
    );
    // No peer may move a sink's cursor, not even an admin: the name is reserved.
    let mut peer = crate::harness::Client::connect(&env.socket_path()).await;
    let refused = peer.ack("sink:crm", 1).await;
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");
    assert_eq!(cursor(&env), Some(completed));

    // The sink's cursor is a consumer like the others: listed, and holding retention.
    let consumers = env.run(&["consumers"]).await;
    let text = String::from_utf8_lossy(&consumers.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("sink:crm") && l.contains("holds events back")),
        "{text}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn batches_carry_arrays_of_events_in_order() {
    let receiver = Receiver::start().await;
    let (env, daemon, _subscriber) = deliver_to(&receiver, "batch_size = 4").await;
    let head = env.state().head();
    receiver.wait_all_accepted(head).await;
    for request in receiver.accepted() {
        assert_eq!(
            request.header("content-type"),
            "application/cloudevents-batch+json"
        );
        let events = request.events();
        assert!((1..=4).contains(&events.len()));
        let last = events.last().unwrap()["seq"].as_i64().unwrap();
        assert_eq!(
            request.header("webhook-id"),
            format!("{}-{last}", events[0]["id"].as_str().unwrap())
        );
        assert_signed(&request);
    }
    assert!(receiver.accepted().len() < head as usize);
    daemon.stop().await;
}

#[tokio::test]
async fn errors_and_timeouts_are_retried_with_backoff_and_nothing_is_skipped() {
    let receiver = Receiver::start().await;
    // Every request fails until the test says otherwise.
    receiver.script(&[], Some(Reply::Status(500)));
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    let head = env.state().head();

    let sink = sink_status_when(&env, "the sink failing", |sink| {
        (sink["state"] == "failing" && sink["attempts"].as_i64()? >= 3).then(|| sink.clone())
    })
    .await;
    assert!(
        sink["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{sink}"
    );
    assert!(sink["next_attempt"].is_string(), "{sink}");
    assert_eq!(sink["lag"], head, "{sink}");
    assert_eq!(cursor(&env), Some(0));

    // Each attempt is the first event again, never a later one; the delays grow.
    receiver
        .wait_until("six attempts", |received| received.len() >= 6)
        .await;
    let attempts = receiver.received();
    assert!(attempts.iter().all(|r| r.events()[0]["seq"] == 1));
    assert!(
        attempts[5].at - attempts[0].at >= Duration::from_millis(10 + 20 + 40 + 80 + 160),
        "exponential backoff from 10 ms"
    );

    // A receiver too slow to answer in timeout_secs, then a 503, then all is well.
    receiver.script(
        &[Reply::Hang(Duration::from_secs(3)), Reply::Status(503)],
        None,
    );
    receiver.wait_all_accepted(head).await;
    let sink = sink_in_state(&env, "idle", "the sink idle").await;
    assert_eq!(sink["attempts"], 0, "{sink}");
    let log = daemon.output();
    assert!(log.contains("no answer within 1 s"), "{log}");
    assert!(!log.contains(SECRET_OLD) && !log.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    daemon.stop().await;
}

#[tokio::test]
async fn retry_after_on_429_and_503_is_honoured_up_to_the_maximum_delay() {
    let receiver = Receiver::start().await;
    receiver.script(
        &[
            Reply::RetryAfter(429, "2".into()),
            Reply::RetryAt(503, Duration::from_secs(3)),
            // An hour: held to retry_max_delay_secs, 3 s.
            Reply::RetryAfter(503, "3600".into()),
            // Not a delay: the ordinary backoff.
            Reply::RetryAfter(503, "soon".into()),
        ],
        None,
    );
    let config = sink_config(&receiver.url(), "")
        .replace("retry_max_delay_secs = 1\n", "retry_max_delay_secs = 3\n");
    let env = Env::with_config(Directory::sample(), &config).await;
    std::fs::write(env.path("crm.whsec"), format!("{SECRET_OLD}\n")).unwrap();
    let (daemon, _subscriber) = env.start_synced_daemon().await;
    let head = env.state().head();
    receiver.wait_all_accepted(head).await;

    let received = receiver.received();
    assert!(received[..5].iter().all(|r| r.events()[0]["seq"] == 1));
    // Each retry comes no sooner than the receiver asked: 2 s after a delta-seconds of 2; at
    // or after an HTTP-date (by the wall clock it is given in); and after the maximum, 3 s,
    // for an hour.
    assert!(received[1].at - received[0].at >= Duration::from_secs(2));
    let asked = httpdate::parse_http_date(received[1].retry_after.as_deref().unwrap()).unwrap();
    assert!(
        received[2].wall >= asked,
        "{:?} < {asked:?}",
        received[2].wall
    );
    assert!(received[3].at - received[2].at >= Duration::from_secs(3));
    let log = daemon.output();
    assert!(
        log.contains("the receiver asked to wait 2 s (Retry-After)"),
        "{log}"
    );
    assert!(
        log.contains("is not delta-seconds or an HTTP-date"),
        "{log}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_receiver_down_then_back_gets_everything_in_order() {
    let mut receiver = Receiver::start().await;
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    let first = env.state().head();
    receiver.wait_accepted(first).await;

    receiver.down();
    hire(&env, "xinren1");
    resync(&env).await;
    hire(&env, "xinren2");
    let head = resync(&env).await;
    let sink = sink_in_state(&env, "failing", "the sink failing to connect").await;
    assert_eq!(sink["cursor"], first, "{sink}");

    receiver.up();
    receiver.wait_all_accepted(head).await;
    daemon.stop().await;
}

#[tokio::test]
async fn gone_pauses_the_sink_until_an_admin_resumes_it() {
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Status(410)], None);
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    let head = env.state().head();

    let sink = sink_in_state(&env, "paused", "the sink paused").await;
    assert!(
        sink["paused_reason"].as_str().unwrap().contains("410"),
        "{sink}"
    );
    assert_eq!(receiver.received().len(), 1, "nothing after the 410");
    let (_, text, _) = env.status().await;
    assert!(
        text.contains("PAUSED") && text.contains("orgsync sinks resume crm"),
        "{text}"
    );

    let resumed = env.run(&["sinks", "resume", "crm"]).await;
    assert!(resumed.status.success(), "{}", describe(&resumed));
    receiver.wait_all_accepted(head).await;
    assert_eq!(receiver.received().len() as i64, head + 1);

    let unknown = env.run(&["sinks", "resume", "nosuch"]).await;
    assert_eq!(unknown.status.code(), Some(1), "{}", describe(&unknown));
    daemon.stop().await;
}

#[tokio::test]
async fn replay_moves_the_cursor_back_and_delivers_again() {
    let receiver = Receiver::start().await;
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    let head = env.state().head();
    receiver.wait_accepted(head).await;

    let replayed = env.run(&["sinks", "replay", "crm", "--from", "3"]).await;
    assert!(replayed.status.success(), "{}", describe(&replayed));
    receiver
        .wait_until("the replay", |received| {
            received.len() as i64 == head + head - 2
        })
        .await;
    let mut expected: Vec<i64> = (1..=head).collect();
    expected.extend(3..=head);
    assert_eq!(receiver.accepted_seqs(), expected);

    let outside = env
        .run(&["sinks", "replay", "crm", "--from", &(head + 2).to_string()])
        .await;
    assert_eq!(outside.status.code(), Some(2), "{}", describe(&outside));
    daemon.stop().await;
}

#[tokio::test]
async fn replay_never_moves_a_cursor_past_events_not_delivered() {
    let receiver = Receiver::start().await;
    receiver.script(&[], Some(Reply::Status(500)));
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    let head = env.state().head();
    sink_in_state(&env, "failing", "the sink failing on the first event").await;

    // Forward past the cursor would skip events 1 and 2, never delivered: refused, unchanged.
    let forward = env.run(&["sinks", "replay", "crm", "--from", "3"]).await;
    crate::harness::assert_fails(
        &forward,
        2,
        "--from 3 is past the cursor of sink \"crm\", 0: replay only moves a cursor back",
    );
    assert!(
        crate::harness::error_line(&forward).contains("give a seq from 1 to 1"),
        "{}",
        describe(&forward)
    );
    assert_eq!(cursor(&env), Some(0));

    // cursor + 1 is allowed and changes nothing.
    let same = env.run(&["sinks", "replay", "crm", "--from", "1"]).await;
    assert!(success_stdout(&same).contains("nothing changed"));
    assert_eq!(cursor(&env), Some(0));

    // Events 1 and 2 gone under the cursor (a store edited by hand): the oldest kept is the
    // one start past the gap, and it skips nothing that could still be delivered.
    let store = Store::open(&env.store_path()).unwrap();
    store
        .conn()
        .execute("DELETE FROM events WHERE seq <= 2", [])
        .unwrap();
    let past = env.run(&["sinks", "replay", "crm", "--from", "4"]).await;
    crate::harness::assert_fails(&past, 2, "give a seq from 3 to 3");
    let gap = env.run(&["sinks", "replay", "crm", "--from", "3"]).await;
    assert!(success_stdout(&gap).contains("past events no longer kept"));
    // Accepted only once the runner picked up the move: a retry of event 1 already under way
    // still fails.
    receiver
        .wait_until("an attempt from seq 3", |received| {
            received.iter().any(|r| r.events()[0]["seq"] == 3)
        })
        .await;
    receiver.script(&[], None);
    receiver.wait_accepted(head).await;
    assert_eq!(receiver.accepted_seqs(), (3..=head).collect::<Vec<_>>());
    daemon.stop().await;
}

#[tokio::test]
async fn a_restart_resumes_at_the_confirmed_cursor_with_nothing_lost() {
    let receiver = Receiver::start().await;
    // Three deliveries, then failures.
    receiver.script(
        &[Reply::Status(200), Reply::Status(204), Reply::Status(202)],
        Some(Reply::Status(500)),
    );
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    receiver
        .wait_until("a failure after three", |received| received.len() >= 4)
        .await;
    assert_eq!(receiver.accepted_seqs(), vec![1, 2, 3]);
    // Killed outright: nothing is written on the way out.
    daemon.signal(libc::SIGKILL);
    let _ = daemon.wait().await;
    assert_eq!(cursor(&env), Some(3));

    // Events committed while it is down are delivered after the restart, in order.
    hire(&env, "xinren1");
    env.sync().await;
    let head = env.state().head();
    receiver.script(&[], None);
    let daemon = env.start_daemon().await;
    receiver.wait_all_accepted(head).await;

    // Stopped mid-stream with SIGTERM and restarted: again nothing lost, nothing out of order.
    daemon.stop().await;
    let daemon = env.start_daemon().await;
    hire(&env, "xinren2");
    let head = resync(&env).await;
    receiver.wait_all_accepted(head).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_sink_started_now_skips_what_came_before() {
    let receiver = Receiver::start().await;
    let env = sink_env(&receiver.url(), "start = \"now\"").await;
    env.sync().await;
    let before = env.state().head();
    let daemon = env.start_daemon().await;
    sink_at_cursor(&env, before, "the sink registered").await;
    hire(&env, "xinren1");
    let head = resync(&env).await;
    receiver.wait_accepted(head).await;
    assert_eq!(
        receiver.accepted_seqs(),
        ((before + 1)..=head).collect::<Vec<_>>()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn types_filter_what_a_sink_gets() {
    let receiver = Receiver::start().await;
    let (env, daemon, _subscriber) = deliver_to(&receiver, "types = [\"orgsync.sync.*\"]").await;
    let head = env.state().head();
    sink_at_cursor(&env, head, "the sink caught up").await;
    let types: Vec<String> = receiver
        .accepted()
        .iter()
        .flat_map(Received::events)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["orgsync.sync.completed"]);
    daemon.stop().await;
}

/// A self-signed certificate for 127.0.0.1 in `dir`, and a TLS acceptor serving it.
fn self_signed_acceptor(dir: &Path) -> TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    self_signed(dir);
    let certs = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn a_certificate_no_one_vouches_for_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start_with(Some(self_signed_acceptor(dir.path()))).await;
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    let sink = sink_in_state(&env, "failing", "the sink failing on TLS").await;
    let error = sink["last_error"].as_str().unwrap();
    assert!(error.contains("invalid peer certificate"), "{sink}");
    assert!(receiver.received().is_empty(), "no request got through");
    assert_eq!(cursor(&env), Some(0));
    daemon.stop().await;
}

#[tokio::test]
async fn the_python_example_verifies_real_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("crm.whsec");
    std::fs::write(&secrets, format!("{SECRET_OLD}\n{SECRET_NEW}\n")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/webhook_verify.py");
    let mut verifier = Python::spawn(
        &script,
        [std::ffi::OsStr::new("--secret-file"), secrets.as_os_str()],
    );
    let listening = verifier.line().await;
    let port = listening.strip_prefix("listening on ").unwrap();
    let url = format!("http://127.0.0.1:{port}/hook");

    // A forged delivery is refused.
    let forged = reqwest::Client::new()
        .post(&url)
        .header("webhook-id", "x")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,AAAA")
        .body("{\"id\":\"x\",\"seq\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), reqwest::StatusCode::UNAUTHORIZED);

    // Only the new secret in orgsync's file: the verifier, which knows both, accepts.
    let env = Env::with_config(Directory::sample(), &sink_config(&url, "")).await;
    std::fs::write(env.path("crm.whsec"), format!("{SECRET_NEW}\n")).unwrap();
    let (daemon, _subscriber) = env.start_synced_daemon().await;
    let head = env.state().head();
    let mut seqs = Vec::new();
    while seqs.len() < head as usize {
        let event: Value = serde_json::from_str(&verifier.line().await).unwrap();
        seqs.push(event["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    sink_at_cursor(&env, head, "the sink caught up").await;
    daemon.stop().await;
    verifier.kill().await;
}

#[tokio::test]
async fn bad_sinks_are_config_errors_that_name_the_key() {
    let env = Env::new(Directory::sample()).await;
    std::fs::write(env.path("good.whsec"), SECRET_OLD).unwrap();
    std::fs::write(env.path("bad.whsec"), "not-a-secret\n").unwrap();
    std::fs::write(
        env.path("three.whsec"),
        format!("{SECRET_OLD}\n{SECRET_NEW}\n{SECRET_OLD}\n"),
    )
    .unwrap();
    for (sink, says) in [
        (
            "name = \"crm\"\nurl = \"http://crm.example.com/hook\"\nsecret_file = \"good.whsec\"",
            "plain http to a host that is not loopback",
        ),
        (
            "name = \"crm\"\nurl = \"https://crm.example.com/hook\"\nsecret_file = \"bad.whsec\"",
            "must start with `whsec_`",
        ),
        (
            "name = \"crm\"\nurl = \"https://crm.example.com/hook\"\nsecret_file = \"three.whsec\"",
            "holds 3 secrets",
        ),
        (
            "name = \"crm\"\nurl = \"https://crm.example.com/hook\"",
            "no secret_file, and there is no systemd credential sink_secret_crm",
        ),
        (
            "name = \"c r m\"\nurl = \"https://crm.example.com/hook\"\nsecret_file = \"good.whsec\"",
            "webhook[0].name",
        ),
        (
            "name = \"crm\"\nurl = \"https://crm.example.com/hook\"\nsecret_file = \"good.whsec\"\nbatch_size = 0",
            "webhook[0].batch_size",
        ),
        (
            "name = \"crm\"\nurl = \"https://crm.example.com/hook\"\nsecret_file = \"good.whsec\"\ntypes = [\"orgsync.nothing\"]",
            "matches no event type",
        ),
        (
            "name = \"crm\"\nurl = \"https://crm.example.com/hook\"\nsecret_file = \"good.whsec\"\nretries = 3",
            "unknown key `sinks.webhook[0].retries` in ",
        ),
    ] {
        env.write_config("", &format!("[[sinks.webhook]]\n{sink}\n"));
        let output = env.run(&["check-config"]).await;
        crate::harness::assert_fails(&output, 2, says);
        assert!(!String::from_utf8_lossy(&output.stderr).contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    }
    // A bad sink in a reload is refused and the old config stays in force.
    env.write_config(
        "",
        "[[sinks.webhook]]\nname = \"crm\"\nurl = \"https://crm.example.com/hook\"\nsecret_file = \"good.whsec\"\n",
    );
    let daemon = env.start_daemon().await;
    env.write_config(
        "",
        "[[sinks.webhook]]\nname = \"crm\"\nurl = \"https://crm.example.com/hook\"\nsecret_file = \"bad.whsec\"\n",
    );
    daemon.signal(libc::SIGHUP);
    let rejected = env.reload_rejected().await;
    assert!(rejected.contains("sinks.webhook"), "{rejected}");
    daemon.stop().await;
}

#[tokio::test]
async fn check_config_redacts_the_urls_password_and_query_values() {
    let env = Env::new(Directory::sample()).await;
    std::fs::write(env.path("crm.whsec"), SECRET_OLD).unwrap();
    env.write_config(
        "",
        "[[sinks.webhook]]\nname = \"crm\"\n\
         url = \"https://crm:pa55word@crm.example.com/hook?token=SECRET&v=2\"\n\
         secret_file = \"crm.whsec\"\n",
    );
    let shown = success_stdout(&env.run(&["check-config"]).await);
    assert!(
        shown.contains(
            "url = \"https://crm:<redacted>@crm.example.com/hook?token=<redacted>&v=<redacted>\""
        ),
        "{shown}"
    );
    assert!(
        !shown.contains("pa55word") && !shown.contains("SECRET"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_reload_puts_a_rotated_secret_in_force_and_resumes_at_the_cursor() {
    let receiver = Receiver::start().await;
    let (env, daemon, _subscriber) = deliver_to(&receiver, "").await;
    let first = env.state().head();
    receiver.wait_accepted(first).await;

    // Rotation done: only the new secret is left in the file.
    std::fs::write(env.path("crm.whsec"), format!("{SECRET_NEW}\n")).unwrap();
    daemon.signal(libc::SIGHUP);
    // SIGHUP also syncs: wait for that run's events, then one more.
    env.status_when("the reload's run", |status| {
        (status["events"]["head"].as_i64()? > first).then_some(())
    })
    .await;
    hire(&env, "xinren1");
    let head = resync(&env).await;
    receiver.wait_all_accepted(head).await;
    let last = receiver.accepted().pop().unwrap();
    assert_eq!(
        last.header("webhook-signature"),
        signature(SECRET_NEW, &last)
    );
    daemon.stop().await;
}
