//! The client against stub servers: token handling, retries, limits, and what errors show.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Barrier;

use super::stub::{client, hang_up_stub, settings, Hit, Reply, Stub, SECRET, TOKEN};
use crate::wecom::{WecomClient, WecomError};

fn members() -> Reply {
    Reply::ok(json!({"userlist": [{"userid": "zhangsan"}]}))
}

/// Token from the stub, then `user_list` answers from `reply`.
async fn stub_with(reply: impl Fn(Hit) -> Reply + Send + Sync + 'static) -> Stub {
    Stub::start(move |hit| {
        let answer = if hit.path == "gettoken" {
            Reply::token()
        } else {
            reply(hit)
        };
        async move { answer }
    })
    .await
}

/// Answers `fails` times with `fault`, then with a member list.
fn fail_first(fails: usize, fault: fn() -> Reply) -> impl Fn(Hit) -> Reply + Send + Sync {
    let seen = AtomicUsize::new(0);
    move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < fails {
            fault()
        } else {
            members()
        }
    }
}

async fn concurrently(client: &WecomClient, n: usize) -> Vec<Result<usize, WecomError>> {
    let calls = (0..n).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.user_list(i as i64 + 1).await.map(|u| u.len()) })
    });
    let mut results = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        results.push(call.await.unwrap());
    }
    results
}

#[tokio::test]
async fn token_is_fetched_once_and_reused() {
    let stub = stub_with(|_| members()).await;
    let client = client(&stub.base);
    for id in 1..=5 {
        client.user_list(id).await.unwrap();
    }
    assert!(concurrently(&client, 10).await.iter().all(Result::is_ok));
    assert_eq!(stub.count("gettoken"), 1);
    assert_eq!(stub.count("user/list"), 15);
    let stats = client.stats();
    assert_eq!(stats.calls["gettoken"], 1);
    assert_eq!(stats.calls["user/list"], 15);
    assert!(stub
        .hits()
        .iter()
        .filter(|h| h.path == "user/list")
        .all(|h| h.query["access_token"] == TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_share_one_gettoken() {
    let stub = Stub::start(|hit| async move {
        if hit.path == "gettoken" {
            // Long enough that every caller is waiting on the refresh.
            tokio::time::sleep(Duration::from_millis(100)).await;
            Reply::token()
        } else {
            members()
        }
    })
    .await;
    let client = client(&stub.base);
    assert!(concurrently(&client, 16).await.iter().all(Result::is_ok));
    assert_eq!(stub.count("gettoken"), 1);
}

#[tokio::test]
async fn short_lived_token_is_refreshed_before_use() {
    let stub = Stub::start(|hit| async move {
        if hit.path == "gettoken" {
            Reply::ok(json!({"access_token": TOKEN, "expires_in": 1}))
        } else {
            members()
        }
    })
    .await;
    let client = client(&stub.base);
    for id in 1..=3 {
        client.user_list(id).await.unwrap();
    }
    assert_eq!(stub.count("gettoken"), 3);
}

/// `gettoken` hands out "t1", "t2", ...; `user/list` answers `errcode` to the tokens in
/// `rejected` and succeeds otherwise.
async fn token_stub(errcode: i64, rejected: &'static [&'static str]) -> Stub {
    let issued = Arc::new(AtomicUsize::new(0));
    Stub::start(move |hit| {
        let answer = if hit.path == "gettoken" {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::ok(json!({"access_token": format!("t{n}"), "expires_in": 7200}))
        } else if rejected.contains(&hit.query["access_token"].as_str()) {
            Reply::errcode(errcode, "invalid access_token")
        } else {
            members()
        };
        async move { answer }
    })
    .await
}

#[tokio::test]
async fn stale_token_is_refreshed_once_and_the_call_retried() {
    for errcode in [42001, 40014] {
        let stub = token_stub(errcode, &["t1"]).await;
        let client = client(&stub.base);
        assert_eq!(client.user_list(1).await.unwrap().len(), 1);
        assert_eq!(stub.count("gettoken"), 2, "{errcode}");
        assert_eq!(stub.count("user/list"), 2, "{errcode}");
        client.user_list(2).await.unwrap();
        assert_eq!(stub.count("gettoken"), 2, "the new token is kept");
    }
}

#[tokio::test]
async fn a_rejected_fresh_token_ends_the_call() {
    let stub = token_stub(42001, &["t1", "t2", "t3"]).await;
    let err = client(&stub.base).user_list(1).await.unwrap_err();
    assert_eq!(err.code(), "token");
    assert_eq!(err.errcode(), Some(42001));
    assert_eq!(stub.count("gettoken"), 2);
    assert_eq!(stub.count("user/list"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stale_token_answers_refresh_once() {
    let stub = token_stub(42001, &["t1"]).await;
    let client = client(&stub.base);
    assert!(concurrently(&client, 8).await.iter().all(Result::is_ok));
    assert_eq!(stub.count("gettoken"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_secret_is_never_retried() {
    let stub = Stub::start(|hit| async move {
        assert_eq!(hit.path, "gettoken");
        Reply::errcode(40001, "invalid credential, hint: [1700000000_1]")
    })
    .await;
    let client = client(&stub.base);
    let results = concurrently(&client, 4).await;
    let err = client.user_list(9).await.unwrap_err();
    assert_eq!(stub.count("gettoken"), 1);
    for err in results.into_iter().map(Result::unwrap_err).chain([err]) {
        assert_eq!(err.code(), "token");
        assert_eq!(err.errcode(), Some(40001));
        let shown = err.to_string();
        assert!(
            shown.contains("40001") && shown.contains("Secret"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let faults: [(_, fn() -> Reply); 5] = [
        ("system busy", || Reply::errcode(-1, "system busy")),
        ("HTTP 500", || Reply::raw(500, "oops")),
        ("HTTP 404", || Reply::raw(404, "")),
        ("not JSON", || Reply::raw(200, "<html>proxy error</html>")),
        ("truncated", || {
            Reply::raw(200, r#"{"errcode":0,"errmsg":"ok","userlist":[{"use"#)
        }),
    ];
    for (name, fault) in faults {
        let stub = stub_with(fail_first(3, fault)).await;
        let client = client(&stub.base);
        assert_eq!(client.user_list(1).await.unwrap().len(), 1, "{name}");
        assert_eq!(stub.count("user/list"), 4, "{name}");
        assert_eq!(client.stats().retries, 3, "{name}");
    }
}

#[tokio::test]
async fn transient_failures_give_up_after_max_retries() {
    let stub = stub_with(|_| Reply::raw(502, "bad gateway")).await;
    let err = client(&stub.base).user_list(7).await.unwrap_err();
    assert_eq!(err.code(), "transport");
    assert_eq!(stub.count("user/list"), 4);
    let shown = err.to_string();
    assert!(
        shown.starts_with("user/list (department 7): HTTP status 502"),
        "{shown}"
    );
    assert!(shown.contains("gave up after 4 attempts"), "{shown}");

    let stub = stub_with(|_| Reply::errcode(-1, "system busy")).await;
    let err = client(&stub.base).user_list(7).await.unwrap_err();
    assert_eq!((err.code(), err.errcode()), ("wecom_errcode", Some(-1)));
    assert_eq!(stub.count("user/list"), 4);
}

#[tokio::test]
async fn connection_closed_without_answer_is_retried() {
    fn answer(path: &str) -> String {
        match path {
            "gettoken" => json!({"errcode":0,"errmsg":"ok","access_token":TOKEN,"expires_in":7200}),
            _ => json!({"errcode":0,"errmsg":"ok","userlist":[{"userid":"a"}]}),
        }
        .to_string()
    }
    let (base, requests) = hang_up_stub(2, answer).await;
    let client = client(&base);
    assert_eq!(client.user_list(1).await.unwrap().len(), 1);
    assert_eq!(client.stats().calls["user/list"], 3);
    assert_eq!(requests.load(Ordering::SeqCst), 4);

    let (base, _) = hang_up_stub(usize::MAX, answer).await;
    let err = super::stub::client(&base).user_list(1).await.unwrap_err();
    assert_eq!(err.code(), "transport");
}

#[tokio::test]
async fn timeout_is_retried() {
    let slow = Arc::new(AtomicUsize::new(0));
    let stub = Stub::start(move |hit| {
        let first = hit.path == "user/list" && slow.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            match hit.path.as_str() {
                "gettoken" => Reply::token(),
                _ => {
                    if first {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    members()
                }
            }
        }
    })
    .await;
    let client = WecomClient::new(crate::wecom::ClientSettings {
        request_timeout: Duration::from_millis(300),
        ..settings(&stub.base)
    })
    .unwrap();
    assert_eq!(client.user_list(1).await.unwrap().len(), 1);
    assert_eq!(stub.count("user/list"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frequency_limit_pauses_every_call_once() {
    const WAIT: Duration = Duration::from_millis(400);
    let barrier = Arc::new(Barrier::new(4));
    let first_round = Arc::new(AtomicUsize::new(0));
    let stub = Stub::start(move |hit| {
        let (barrier, first_round) = (Arc::clone(&barrier), Arc::clone(&first_round));
        async move {
            match hit.path.as_str() {
                "gettoken" => Reply::token(),
                _ if first_round.fetch_add(1, Ordering::SeqCst) < 4 => {
                    // All four are in flight when WeCom starts refusing.
                    barrier.wait().await;
                    Reply::errcode(45009, "api freq out of limit")
                }
                _ => members(),
            }
        }
    })
    .await;
    let mut settings = settings(&stub.base);
    settings.retry.rate_limit_wait = WAIT;
    let client = WecomClient::new(settings).unwrap();
    let workers = {
        let client = client.clone();
        tokio::spawn(async move { concurrently(&client, 4).await })
    };
    // Once the client has seen the four 45009s, a new call must wait for the window too.
    while client.stats().rate_limited < 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    client.user_list(5).await.unwrap();
    assert!(workers.await.unwrap().iter().all(Result::is_ok));

    let hits: Vec<_> = stub
        .hits()
        .into_iter()
        .filter(|h| h.path == "user/list")
        .collect();
    assert_eq!(
        hits.len(),
        9,
        "each call retried exactly once, the late call not at all"
    );
    let limited_at = hits[..4].iter().map(|h| h.at).max().unwrap();
    for hit in &hits[4..] {
        let after = hit.at - limited_at;
        assert!(after >= WAIT, "a call left during the window ({after:?})");
        assert!(after < 2 * WAIT, "the windows stacked ({after:?})");
    }
    assert_eq!(client.stats().rate_limited, 4);
}

#[tokio::test]
async fn frequency_limit_gives_up_after_bounded_waits() {
    let stub = stub_with(|_| Reply::errcode(45009, "api freq out of limit")).await;
    let err = client(&stub.base).user_list(1).await.unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(err.errcode(), Some(45009));
    assert_eq!(stub.count("user/list"), 4);
    assert!(
        err.to_string().contains("gave up after 4 attempts"),
        "{err}"
    );
}

#[tokio::test]
async fn concurrency_limit_is_retried_and_counted() {
    let stub = stub_with(fail_first(2, || {
        Reply::errcode(45033, "api concurrent out of limit")
    }))
    .await;
    let client = client(&stub.base);
    client.user_list(1).await.unwrap();
    assert_eq!(client.stats().concurrency_limited, 2);
    assert_eq!(stub.count("user/list"), 3);
}

#[tokio::test]
async fn fatal_errcodes_fail_at_once() {
    for errcode in [
        40013, 40091, 48002, 48006, 48009, 50003, 60011, 301002, 88888,
    ] {
        let stub = stub_with(move |_| Reply::errcode(errcode, "nope")).await;
        let err = client(&stub.base).user_list(1).await.unwrap_err();
        assert_eq!(stub.count("user/list"), 1, "{errcode}");
        assert_eq!(
            (err.code(), err.errcode()),
            ("wecom_errcode", Some(errcode))
        );
        let shown = err.to_string();
        assert!(
            shown.contains(&errcode.to_string()) && shown.contains("nope"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn untrusted_ip_error_names_the_ip() {
    let stub = stub_with(|_| {
        Reply::errcode(
            60020,
            "not allow to access from your ip, hint: [1658286717354964018506079], from ip: \
             1.2.3.4, more info at https://open.work.weixin.qq.com/devtool/query?e=60020",
        )
    })
    .await;
    let err = client(&stub.base).user_list(1).await.unwrap_err();
    assert_eq!(stub.count("user/list"), 1);
    let shown = err.to_string();
    assert!(
        shown.contains("WeCom errcode 60020: this server's IP 1.2.3.4 is not in the app's trusted IPs (企业可信IP)"),
        "{shown}"
    );
    assert!(shown.contains("1658286717354964018506079"), "{shown}");
}

#[tokio::test]
async fn oversized_and_misshapen_bodies_are_refused_without_retry() {
    let big = json!({"userlist": [{"userid": "x".repeat(4096)}]});
    let stub = stub_with(move |_| Reply::ok(big.clone())).await;
    let client = WecomClient::new(crate::wecom::ClientSettings {
        max_response_bytes: 1024,
        ..settings(&stub.base)
    })
    .unwrap();
    let err = client.user_list(1).await.unwrap_err();
    assert_eq!(err.code(), "malformed_response");
    assert!(err.to_string().contains("larger than 1024 bytes"), "{err}");
    assert_eq!(stub.count("user/list"), 1);

    let stub = stub_with(|_| Reply::ok(json!({"userlist": "surprise"}))).await;
    let err = super::stub::client(&stub.base)
        .user_list(1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "malformed_response");
    assert_eq!(stub.count("user/list"), 1);

    let stub = stub_with(|_| Reply::raw(200, r#"{"userlist":[]}"#)).await;
    let err = super::stub::client(&stub.base)
        .user_list(1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "malformed_response");
}

#[test]
fn bad_api_base_is_a_settings_error() {
    for base in ["not a url", "ftp://example.com", "https://example.com/?x=1"] {
        let err = WecomClient::new(settings(base)).unwrap_err();
        assert_eq!(err.code(), "config", "{base}");
    }
}

/// Every way an error can be built, with a server that echoes the secret and the token.
#[tokio::test]
async fn secret_and_token_never_appear_in_errors_or_logs() {
    let logs = LogCapture::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );
    let leaky = format!("echo {SECRET} {TOKEN}");
    let mut errors = Vec::new();

    // No token exists yet: only the secret can be echoed.
    let stub = Stub::start(|hit| async move {
        assert_eq!(hit.path, "gettoken");
        Reply::errcode(40001, &format!("invalid secret {SECRET}"))
    })
    .await;
    errors.push(client(&stub.base).user_list(1).await.unwrap_err());

    for fault in [
        Reply::errcode(60020, &leaky),
        Reply::errcode(-1, &leaky),
        Reply::errcode(42001, &leaky),
        Reply::raw(200, format!(r#"{{"errcode":0,"userlist":"{leaky}"}}"#)),
        Reply::raw(200, format!("<html>{leaky}")),
        Reply::raw(500, leaky.clone()),
    ] {
        let Reply { status, body } = fault;
        let stub = stub_with(move |_| Reply::raw(status, body.clone())).await;
        errors.push(client(&stub.base).user_list(1).await.unwrap_err());
    }

    // Nothing listens on a port just freed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    errors.push(client(&closed).user_list(1).await.unwrap_err());

    assert_eq!(errors.len(), 8);
    for err in &errors {
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(SECRET) && !shown.contains(TOKEN), "{shown}");
            assert!(!shown.contains("access_token="), "{shown}");
        }
    }
    let settings = settings(&closed);
    let shown = format!("{settings:?} {:?}", client(&closed));
    assert!(!shown.contains(SECRET), "{shown}");

    let logs = logs.text();
    assert!(logs.contains("user/list"), "{logs}");
    assert!(!logs.contains(SECRET) && !logs.contains(TOKEN), "{logs}");
}

/// A `tracing` writer into memory.
#[derive(Clone, Default)]
struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}
