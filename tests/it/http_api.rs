//! The HTTP API through the real daemon on 127.0.0.1: bearer tokens, every endpoint, the
//! long-poll woken by a sync, the SSE tail resumed from Last-Event-ID, a snapshot equal to the
//! socket's, health after a failed run, TLS, and the config rules.

use std::path::Path;
use std::time::{Duration, Instant};

use orgsync::events::{EventSource, EventType};
use orgsync::store::Store;
use orgsync_simulator::{Directory, Endpoint, Fault};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{
    assert_contains_all, commit_dated, describe, error_line, self_signed, trusting, Client, Daemon,
    Env, Python, WAIT,
};

const READ_TOKEN: &str = "read-token-0123456789abcdef";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// `[http]` on a port the kernel picks, with a read and an admin token.
fn http_config(extra_http: &str) -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n{extra_http}\n\
         [[http.tokens]]\nname = \"reader\"\nscope = \"read\"\ntoken_file = \"read.token\"\n\n\
         [[http.tokens]]\nname = \"ops\"\nscope = \"admin\"\ntoken_file = \"admin.token\"\n"
    )
}

fn write_tokens(env: &Env) {
    std::fs::write(env.path("read.token"), format!("{READ_TOKEN}\n")).unwrap();
    std::fs::write(env.path("admin.token"), ADMIN_TOKEN).unwrap();
}

async fn http_env(directory: Directory) -> Env {
    let env = Env::with_config(directory, &http_config("")).await;
    write_tokens(&env);
    env
}

/// A daemon serving HTTP for `directory`, a subscriber past its start-up sync (kept open, as
/// the tests always have), and a client of the API.
async fn serve(directory: Directory) -> (Env, Daemon, Client, Api) {
    let env = http_env(directory).await;
    let (daemon, subscriber) = env.start_synced_daemon().await;
    let api = Api::new(&daemon);
    (env, daemon, subscriber, api)
}

/// A daemon serving HTTP for the sample tenant, started on a store `orgsync sync` has filled,
/// and a client of the API.
async fn serve_synced_store() -> (Env, Daemon, Api) {
    let env = http_env(Directory::sample()).await;
    env.sync().await;
    let daemon = env.start_daemon().await;
    let api = Api::new(&daemon);
    (env, daemon, api)
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(daemon: &Daemon) -> Api {
        Api {
            base: format!("http://{}", daemon.listening_addr("http")),
            client: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `GET path` with the read token, in a task of its own: the body of a 200, once it ends.
    fn long_poll(&self, path: &str) -> tokio::task::JoinHandle<String> {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(READ_TOKEN);
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        })
    }

    async fn json(&self, path: &str) -> Value {
        let response = self.get(path, Some(READ_TOKEN)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }

    /// `POST /v1/consumers/{consumer}/ack` with `body`.
    async fn ack(&self, consumer: &str, token: &str, body: Value) -> reqwest::Response {
        let path = format!("/v1/consumers/{consumer}/ack");
        self.post(&path, token, body).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Commits `count` events into the daemon's store, as another process (`orgsync sync`) would.
fn commit_events(env: &Env, count: usize) {
    let mut store = Store::open(&env.store_path()).unwrap();
    let source = EventSource::new(&env.sim.directory().corp_id);
    let about = (EventType::MemberUpdated, "member/zhangsan");
    commit_dated(&mut store, &source, about, count, chrono::Utc::now());
}

/// Has the daemon sync now (SIGUSR1) and waits for the run to end; its `orgsync.sync.*`
/// events.
async fn sync_now(env: &Env, daemon: &Daemon) -> Vec<Value> {
    let mut runs = env
        .subscribe(json!({"op": "subscribe", "types": ["orgsync.sync.*"]}))
        .await;
    daemon.signal(libc::SIGUSR1);
    runs.run_events().await
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Checks an error answer: its status, and the body `{"ok": false, "error": {"code", "message"}}`;
/// returns the message.
async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) -> String {
    let url = response.url().clone();
    assert_eq!(response.status(), status, "{url}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ok"], false, "{url}: {body}");
    assert_eq!(body["error"]["code"], code, "{url}: {body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: no message in {body}"))
        .to_owned()
}

#[tokio::test]
async fn every_endpoint_answers_a_good_token() {
    let (env, daemon, _subscriber, api) = serve(Directory::sample()).await;

    let health = api.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap()["ok"], true);

    let status = api.json("/v1/status").await;
    assert_eq!(status["op"], "status");
    let socket_status = env.daemon_status().await;
    assert_eq!(status["status"]["events"], socket_status["events"]);
    assert_eq!(status["status"]["mirror"], socket_status["mirror"]);

    let metrics = api.get("/metrics", Some(READ_TOKEN)).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.unwrap();
    let head = socket_status["events"]["head"].as_i64().unwrap();
    assert_contains_all(
        &metrics,
        &[
            format!("orgsync_event_head {head}"),
            format!(
                "orgsync_mirror_members {}",
                socket_status["mirror"]["members"]
            ),
            "orgsync_runs_total{trigger=\"startup\",outcome=\"completed\"} 1".to_owned(),
            "orgsync_last_success_timestamp_seconds ".to_owned(),
            "orgsync_last_run_duration_seconds ".to_owned(),
            "orgsync_last_run_changes{kind=".to_owned(),
            "orgsync_guard_held 0".to_owned(),
        ],
    );

    // Members and departments, as member.get and department.get answer them.
    let mut socket = Client::connect(&env.socket_path()).await;
    let any = env.state().mirror.members.values().next().cloned().unwrap();
    let userid = any.userid.clone();
    let member = api
        .json(&format!("/v1/members/{}", userid.to_uppercase()))
        .await;
    let by_socket = socket
        .request(json!({"op": "member.get", "userid": userid}))
        .await;
    assert_eq!(member, by_socket);
    let department = api.json("/v1/departments/1").await;
    let by_socket = socket
        .request(json!({"op": "department.get", "id": 1}))
        .await;
    assert_eq!(department, by_socket);
    let missing = api.get("/v1/members/nobody-at-all", Some(READ_TOKEN)).await;
    assert_error(missing, StatusCode::NOT_FOUND, "not_found").await;
    let missing = api.get("/v1/departments/999999", Some(READ_TOKEN)).await;
    assert_error(missing, StatusCode::NOT_FOUND, "not_found").await;

    // A page of events: all of them from 0, as `orgsync events` prints them.
    let page = api
        .get("/v1/events?since=0&limit=10000", Some(READ_TOKEN))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "application/x-ndjson");
    assert_eq!(
        page.headers()["x-orgsync-next-since"],
        head.to_string().as_str()
    );
    let events = ndjson(&page.text().await.unwrap());
    assert_eq!(events, env.events_since(0).await);
    let page = api
        .get("/v1/events?since=0&limit=2", Some(READ_TOKEN))
        .await;
    assert_eq!(page.headers()["x-orgsync-next-since"], "2");
    assert_eq!(ndjson(&page.text().await.unwrap()).len(), 2);
    let members_only = api
        .get(
            "/v1/events?since=0&types=orgsync.member.*",
            Some(READ_TOKEN),
        )
        .await;
    let members_only = ndjson(&members_only.text().await.unwrap());
    assert!(!members_only.is_empty());
    assert!(members_only
        .iter()
        .all(|e| e["type"].as_str().unwrap().starts_with("orgsync.member.")));
    let bad = api.get("/v1/events?sinse=3", Some(READ_TOKEN)).await;
    assert_error(bad, StatusCode::BAD_REQUEST, "bad_request").await;

    // An ack stores the cursor, owned by the token; a consumer then reads from it.
    let acked = api.ack("crm", READ_TOKEN, json!({"seq": 2})).await;
    assert_eq!(acked.status(), StatusCode::OK);
    assert_eq!(acked.json::<Value>().await.unwrap()["ok"], true);
    let stored = env.daemon_status().await["consumers"].clone();
    assert_eq!(stored[0]["name"], "crm", "{stored}");
    assert_eq!(stored[0]["acked_seq"], 2, "{stored}");
    let resumed = api.get("/v1/events?consumer=crm", Some(READ_TOKEN)).await;
    let resumed = ndjson(&resumed.text().await.unwrap());
    assert_eq!(resumed[0]["seq"], 3);
    let above = api.ack("crm", READ_TOKEN, json!({"seq": head + 100})).await;
    assert_error(above, StatusCode::BAD_REQUEST, "bad_request").await;
    let bad_body = api.ack("crm", READ_TOKEN, json!({"sequence": 1})).await;
    assert_error(bad_body, StatusCode::BAD_REQUEST, "bad_request").await;
    let huge = api
        .ack(
            "crm",
            READ_TOKEN,
            json!({"seq": 1, "pad": "x".repeat(100_000)}),
        )
        .await;
    assert_error(huge, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    // A socket peer's consumer is not the token's.
    socket.ack("socket-app", 1).await;
    let foreign = api.ack("socket-app", READ_TOKEN, json!({"seq": 2})).await;
    assert_error(foreign, StatusCode::FORBIDDEN, "forbidden").await;
    let admin = api.ack("socket-app", ADMIN_TOKEN, json!({"seq": 2})).await;
    assert_eq!(admin.status(), StatusCode::OK);

    // Resync, with the admin token.
    let mut runs = env
        .subscribe(json!({"op": "subscribe", "types": ["orgsync.sync.*"]}))
        .await;
    let resync = api.post("/v1/resync", ADMIN_TOKEN, json!({})).await;
    assert_eq!(resync.status(), StatusCode::OK);
    let resync: Value = resync.json().await.unwrap();
    assert_eq!(resync["queued"], true, "{resync}");
    let run = runs.run_events().await;
    assert_eq!(run.last().unwrap()["data"]["trigger"], "socket");

    let unknown = api.get("/v2/nothing", Some(READ_TOKEN)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    daemon.stop().await;
}

#[tokio::test]
async fn tokens_are_checked() {
    let (_env, daemon, _subscriber, api) = serve(Directory::sample()).await;
    for path in ["/v1/status", "/metrics", "/v1/snapshot", "/v1/events"] {
        let none = api.get(path, None).await;
        assert_error(none, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let garbage = api.get(path, Some("not-a-token-of-ours-at-all")).await;
        assert_error(garbage, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let read = api.post("/v1/resync", READ_TOKEN, json!({})).await;
    assert_error(read, StatusCode::FORBIDDEN, "forbidden").await;
    let garbage = api
        .post("/v1/resync", "garbage-garbage-garbage", json!({}))
        .await;
    assert_error(garbage, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(
        !daemon.output().contains(READ_TOKEN) && !daemon.output().contains(ADMIN_TOKEN),
        "a token was logged"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_negative_since_is_a_bad_request_not_a_gap() {
    let (_env, daemon, api) = serve_synced_store().await;
    for path in ["/v1/events?since=-1", "/v1/events/stream?since=-1"] {
        let response = api.get(path, Some(READ_TOKEN)).await;
        let message = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(
            message.contains("\"since\" must be a non-negative integer (an event seq)"),
            "{path}: {message}"
        );
    }
    let resumed = api
        .client
        .get(format!("{}/v1/events/stream", api.base))
        .bearer_auth(READ_TOKEN)
        .header("Last-Event-ID", "-1")
        .send()
        .await
        .unwrap();
    let message = assert_error(resumed, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(message.contains("non-negative integer"), "{message}");
    daemon.stop().await;
}

#[tokio::test]
async fn only_a_caller_with_a_token_learns_which_paths_and_methods_exist() {
    let (_env, daemon, api) = serve_synced_store().await;
    let requests = [
        (Method::GET, "/v2/nothing"),
        (Method::GET, "/v1/members/"),
        (Method::DELETE, "/v1/snapshot"),
        (Method::POST, "/v1/status"),
        (Method::GET, "/v1/resync"),
        (Method::POST, "/healthz"),
    ];
    for token in [None, Some("not-a-token-of-ours-at-all")] {
        for (method, path) in &requests {
            let mut request = api
                .client
                .request(method.clone(), format!("{}{path}", api.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer realm=\"orgsync\""),
                "{method} {path}"
            );
            assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    let unknown = api.get("/v2/nothing", Some(READ_TOKEN)).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let wrong = api
        .client
        .delete(format!("{}/v1/snapshot", api.base))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(wrong, StatusCode::METHOD_NOT_ALLOWED, "bad_request").await;
    assert_eq!(api.get("/healthz", None).await.status(), StatusCode::OK);
    daemon.stop().await;
}

#[tokio::test]
async fn a_limit_or_wait_above_the_maximum_is_clamped_to_it() {
    let env = http_env(Directory::sample()).await;
    env.sync().await;
    let head = env.state().head();
    commit_events(&env, 10_050);
    let daemon = env.start_daemon().await;
    let api = Api::new(&daemon);

    let page = api
        .get(
            &format!("/v1/events?since={head}&limit=50000"),
            Some(READ_TOKEN),
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let next = head + 10_000;
    assert_eq!(
        page.headers()["x-orgsync-next-since"],
        next.to_string().as_str()
    );
    let events = ndjson(&page.text().await.unwrap());
    assert_eq!(events.len(), 10_000);
    assert_eq!(events[0]["seq"], head + 1);
    let rest = api
        .get(
            &format!("/v1/events?since={next}&limit=50000"),
            Some(READ_TOKEN),
        )
        .await;
    assert_eq!(ndjson(&rest.text().await.unwrap()).len(), 50);

    // A long-poll asking for longer than the maximum waits, and the next commit wakes it.
    let last = next + 50;
    let poll = api.long_poll(&format!("/v1/events?since={last}&wait=120"));
    commit_events(&env, 1);
    let events = ndjson(&tokio::time::timeout(WAIT, poll).await.unwrap().unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["seq"], last + 1);

    for bad in ["limit=0", "limit=ten", "wait=-1", "wait=soon"] {
        let response = api
            .get(&format!("/v1/events?{bad}"), Some(READ_TOKEN))
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_long_poll_returns_the_events_of_a_sync_that_commits_while_it_waits() {
    let (env, daemon, _subscriber, api) = serve(Directory::sample()).await;
    let head = env.daemon_status().await["events"]["head"]
        .as_i64()
        .unwrap();

    let started = Instant::now();
    let poll = api.long_poll(&format!("/v1/events?since={head}&wait=50"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the long-poll returned without events");
    env.sim
        .edit(|d| d.users[0].position = "Chief Long-Poll Officer".into());
    daemon.signal(libc::SIGUSR1);
    let events = ndjson(&tokio::time::timeout(WAIT, poll).await.unwrap().unwrap());
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["seq"].as_i64().unwrap() > head));
    assert_eq!(events[0]["seq"], head + 1);

    // Nothing new: the wait expires with an empty page.
    let head = env.daemon_status().await["events"]["head"]
        .as_i64()
        .unwrap();
    let started = Instant::now();
    let empty = api
        .get(&format!("/v1/events?since={head}&wait=1"), Some(READ_TOKEN))
        .await;
    assert_eq!(empty.status(), StatusCode::OK);
    assert_eq!(empty.text().await.unwrap(), "");
    assert!(started.elapsed() >= Duration::from_millis(900));
    daemon.stop().await;
}

/// Reads SSE frames until `n` events arrived: `(id, event, data)`.
async fn sse_events(response: &mut reqwest::Response, n: usize) -> Vec<(i64, String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("an SSE frame in time")
            .unwrap()
            .expect("the stream goes on");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            };
            if let (Some(id), Some(event), Some(data)) =
                (field("id"), field("event"), field("data"))
            {
                events.push((
                    id.parse().unwrap(),
                    event,
                    serde_json::from_str(&data).unwrap(),
                ));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_event_stream_resumes_after_a_dropped_connection_from_last_event_id() {
    let (env, daemon, _subscriber, api) = serve(Directory::sample()).await;
    let all = env.events_since(0).await;

    let mut stream = api.get("/v1/events/stream?since=0", Some(READ_TOKEN)).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let first = sse_events(&mut stream, 3).await;
    assert_eq!(
        first.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(first[0].1, all[0]["type"].as_str().unwrap());
    assert_eq!(first[0].2, all[0]);
    drop(stream);

    // More events are committed while the client is away.
    env.sim
        .edit(|d| d.users[0].position = "Returning Reader".into());
    sync_now(&env, &daemon).await;
    let all = env.events_since(0).await;

    let mut resumed = api
        .client
        .get(format!("{}/v1/events/stream?since=0", api.base))
        .bearer_auth(READ_TOKEN)
        .header("Last-Event-ID", "3")
        .send()
        .await
        .unwrap();
    let rest = sse_events(&mut resumed, all.len() - 3).await;
    assert_eq!(
        rest.iter()
            .map(|(_, _, data)| data.clone())
            .collect::<Vec<_>>(),
        all[3..].to_vec()
    );

    // And live events follow.
    env.sim.edit(|d| d.users[0].position = "Live Reader".into());
    daemon.signal(libc::SIGUSR1);
    let live = sse_events(&mut resumed, 1).await;
    assert_eq!(live[0].0, all.len() as i64 + 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_snapshot_over_http_equals_the_socket_one() {
    let (env, daemon, _subscriber, api) = serve(Directory::generate(7, 40, 600)).await;

    let response = api.get("/v1/snapshot", Some(READ_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let seq = response.headers()["x-orgsync-seq"]
        .to_str()
        .unwrap()
        .to_owned();
    let store = response.headers()["x-orgsync-store"]
        .to_str()
        .unwrap()
        .to_owned();
    let lines = ndjson(&response.text().await.unwrap());

    let mut socket = Client::connect(&env.socket_path()).await;
    socket.send(&json!({"op": "snapshot"})).await;
    let mut by_socket = Vec::new();
    loop {
        let line = socket.next().await;
        let last = line.get("ok").is_some();
        by_socket.push(line);
        if last {
            break;
        }
    }
    assert_eq!(lines, by_socket);
    let end = lines.last().unwrap();
    assert_eq!(end["op"], "snapshot");
    assert_eq!(end["seq"].to_string(), seq);
    assert_eq!(end["store"], store.as_str());
    assert!(end["members"].as_i64().unwrap() > 500);

    let members = api
        .get("/v1/snapshot?types=member&department=1", Some(READ_TOKEN))
        .await;
    let members = ndjson(&members.text().await.unwrap());
    assert!(members[..members.len() - 1]
        .iter()
        .all(|line| line.get("member").is_some()));
    let bad = api.get("/v1/snapshot?types=person", Some(READ_TOKEN)).await;
    assert_error(bad, StatusCode::BAD_REQUEST, "bad_request").await;
    let missing = api
        .get("/v1/snapshot?department=424242", Some(READ_TOKEN))
        .await;
    assert_error(missing, StatusCode::NOT_FOUND, "not_found").await;
    daemon.stop().await;
}

#[tokio::test]
async fn healthz_is_200_then_503_after_a_failed_run() {
    let (env, daemon, _subscriber, api) = serve(Directory::sample()).await;
    assert_eq!(api.get("/healthz", None).await.status(), StatusCode::OK);

    env.sim.inject(Fault::Errcode(60020).on(Endpoint::UserList));
    let run = sync_now(&env, &daemon).await;
    assert_eq!(run.last().unwrap()["type"], "orgsync.sync.failed");
    let health = api.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    let (code, _, _) = env.status().await;
    assert_eq!(code, Some(1));
    let metrics = api
        .get("/metrics", Some(READ_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("orgsync_healthy 0"), "{metrics}");
    assert!(
        metrics.contains("orgsync_runs_total{trigger=\"signal\",outcome=\"failed\"} 1"),
        "{metrics}"
    );
    daemon.stop().await;
}

async fn status_over_tls(client: &reqwest::Client, addr: &str) -> Result<StatusCode, String> {
    client
        .get(format!("https://{addr}/v1/status"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .map(|response| response.status())
        .map_err(|e| e.to_string())
}

/// A synced daemon serving the HTTP API over TLS with a fresh self-signed certificate, in
/// `cert.pem` and `key.pem`; its address.
async fn tls_daemon() -> (Env, Daemon, String) {
    let env = Env::with_config(
        Directory::sample(),
        &http_config("tls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n"),
    )
    .await;
    write_tokens(&env);
    self_signed(env.dir.path());
    let (daemon, _) = env.start_synced_daemon().await;
    let addr = daemon.listening_addr("http");
    (env, daemon, addr)
}

#[tokio::test]
async fn tls_is_served_and_plain_http_off_loopback_is_refused() {
    let (env, daemon, addr) = tls_daemon().await;
    assert_eq!(
        status_over_tls(&trusting(env.dir.path()), &addr).await,
        Ok(StatusCode::OK)
    );
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    daemon.stop().await;

    // Plain HTTP on an address others reach is a config error.
    env.write_config("", &http_config("").replace("127.0.0.1:0", "0.0.0.0:8787"));
    let output = env.run(&["check-config"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let line = error_line(&output);
    assert!(line.contains("http.listen"), "{line}");
    assert!(line.contains("loopback"), "{line}");
}

#[tokio::test]
async fn a_reload_swaps_in_a_renewed_certificate_and_refuses_an_unusable_one() {
    let (env, daemon, addr) = tls_daemon().await;
    let first = env.path("first");
    std::fs::create_dir(&first).unwrap();
    std::fs::copy(env.path("cert.pem"), first.join("cert.pem")).unwrap();
    assert_eq!(
        status_over_tls(&trusting(&first), &addr).await,
        Ok(StatusCode::OK)
    );

    // The renewal lands at the same paths, as certbot and its kind do it.
    let renewed = env.path("renewed");
    std::fs::create_dir(&renewed).unwrap();
    self_signed(&renewed);
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(renewed.join(file), env.path(file)).unwrap();
    }
    daemon.signal(libc::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while status_over_tls(&trusting(&renewed), &addr).await != Ok(StatusCode::OK) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        status_over_tls(&trusting(&first), &addr).await.is_err(),
        "the old certificate is still served"
    );

    // A certificate file that holds no certificate rejects the reload; the one in use stays.
    std::fs::write(env.path("cert.pem"), "not a certificate\n").unwrap();
    daemon.signal(libc::SIGHUP);
    let rejected = env.reload_rejected().await;
    assert!(rejected.contains("http.tls_cert_file"), "{rejected}");
    assert_eq!(
        status_over_tls(&trusting(&renewed), &addr).await,
        Ok(StatusCode::OK)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn bad_http_configs_are_refused_with_the_key_named() {
    let env = http_env(Directory::sample()).await;
    std::fs::write(env.path("short.token"), "too-short").unwrap();
    let cases = [
        (
            http_config("").replace("read.token", "short.token"),
            "at least 16",
        ),
        (
            http_config("").replace("name = \"ops\"", "name = \"reader\""),
            "two tokens are named",
        ),
        (
            http_config("").replace("scope = \"admin\"", "scope = \"root\""),
            "`root` is not one of",
        ),
        (http_config("colour = \"blue\"\n"), "colour"),
        (
            http_config("").replace(
                "token_file = \"admin.token\"",
                "token_file = \"admin.token\"\nvalue = \"x\"",
            ),
            "value",
        ),
        (
            http_config("").replace("admin.token", "missing.token"),
            "missing.token",
        ),
        (
            http_config("tls_cert_file = \"cert.pem\"\n"),
            "http.tls_key_file",
        ),
    ];
    for (config, expected) in cases {
        env.write_config("", &config);
        let output = env.run(&["check-config"]).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{config}\n{}",
            describe(&output)
        );
        let line = error_line(&output);
        assert!(line.contains(expected), "{expected:?} in {line}");
        assert!(line.contains("http"), "{line}");
    }
    // A reload with a bad [http] keeps the old config: the tokens in force still work.
    env.write_config("", &http_config(""));
    let (daemon, _subscriber) = env.start_synced_daemon().await;
    let api = Api::new(&daemon);
    env.write_config("", &http_config("").replace("read.token", "short.token"));
    daemon.signal(libc::SIGHUP);
    env.reload_rejected().await;
    assert_eq!(
        api.get("/v1/status", Some(READ_TOKEN)).await.status(),
        StatusCode::OK
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_python_http_client_takes_a_snapshot_then_follows_and_acks() {
    let env = http_env(Directory::sample()).await;
    let (daemon, _subscriber) = env.start_synced_daemon().await;
    let base = format!("http://{}", daemon.listening_addr("http"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/http_client.py");
    let mut client = Python::spawn(
        &script,
        [
            "--url",
            &base,
            "--token-file",
            env.path("read.token").to_str().unwrap(),
            "--consumer",
            "py-http",
        ],
    );
    let snapshot = client.line().await;
    assert!(snapshot.starts_with("snapshot "), "{snapshot}");
    let head = env.daemon_status().await["events"]["head"]
        .as_i64()
        .unwrap();
    assert!(snapshot.contains(&format!("seq={head}")), "{snapshot}");

    env.sim
        .edit(|d| d.users[0].position = "Python Follower".into());
    sync_now(&env, &daemon).await;
    let new = env.events_since(head).await;
    let mut printed = Vec::new();
    while printed.len() < new.len() {
        let line = client.line().await;
        if line.starts_with("event ") {
            printed.push(line);
        }
    }
    assert!(
        printed[0].starts_with(&format!("event {} ", head + 1)),
        "{printed:?}"
    );
    // Its acks reach the daemon.
    let consumers = env
        .status_when("the client's acks", |status| {
            let consumers = &status["consumers"];
            (consumers[0]["acked_seq"].as_i64() == Some(head + new.len() as i64))
                .then(|| consumers.clone())
        })
        .await;
    assert_eq!(consumers[0]["name"], "py-http");
    client.kill().await;
    daemon.stop().await;
}

#[tokio::test]
async fn login_resolve_over_http_answers_a_read_token() {
    let (env, daemon, api) = serve_synced_store().await;
    let member = env.sim.directory().users[0].userid.clone();
    let code = env.sim.login_code(&member);
    let response = api
        .post("/v1/login/resolve", READ_TOKEN, json!({"code": code}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["userid"], member.as_str(), "{reply}");
    let again = api
        .post("/v1/login/resolve", READ_TOKEN, json!({"code": code}))
        .await;
    assert_error(again, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code").await;
    assert!(!daemon.output().contains(&code), "a code was logged");
}

#[tokio::test]
async fn host_users_and_login_links_are_written_with_an_admin_token() {
    let (env, _daemon, api) = serve_synced_store().await;
    let users = env.sim.directory().users;
    let body = json!({"users": [{"id": "h-1", "name": users[0].name}]});
    let refused = api.post("/v1/host_users", READ_TOKEN, body.clone()).await;
    assert_error(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let put: Value = api
        .post("/v1/host_users", ADMIN_TOKEN, body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(put["linked"], 1, "{put}");

    let link = json!({"host_user_id": "h-1", "userid": users[1].userid, "method": "login"});
    let response = api.post("/v1/links", ADMIN_TOKEN, link).await;
    assert_eq!(response.status(), StatusCode::OK);
    let member: Value = api.json(&format!("/v1/members/{}", users[1].userid)).await;
    assert_eq!(member["member"]["userid"], users[1].userid.as_str());
    let bad = api
        .post(
            "/v1/host_users",
            ADMIN_TOKEN,
            json!({"users": [{"name": "no id"}]}),
        )
        .await;
    assert_error(bad, StatusCode::BAD_REQUEST, "bad_request").await;
}
