//! The client against the simulator: token handling, retries, limits, and what errors show.

use std::sync::Arc;
use std::time::Duration;

use orgsync_simulator::{Directory, Endpoint, Fault, SimDepartment, SimUser, Simulator};
use serde_json::json;

use super::sim::{self, always, client, errcode, ok, raw, requests, settings, SECRET};
use crate::wecom::{WecomClient, WecomError};

use Endpoint::{GetToken, UserList};

/// Departments 1 to 16, and one member in all of them: `user_list(1..=16)` answers one member.
fn members_everywhere() -> Directory {
    let mut directory = sim::directory();
    directory
        .departments
        .extend((2..=16).map(|id| SimDepartment::new(id, format!("d{id}"), 1)));
    let all: Vec<u32> = (1..=16).collect();
    directory.users.push(SimUser::new("zhangsan", "张三", &all));
    directory
}

async fn simulator() -> Simulator {
    sim::start(members_everywhere()).await
}

async fn simulator_with(change: impl FnOnce(&mut Directory)) -> Simulator {
    let mut directory = members_everywhere();
    change(&mut directory);
    sim::start(directory).await
}

/// `user_list(department)` against a simulator whose `user/list` answers `fault` every time:
/// the error the client gives up with, and how many `user/list` calls reached the simulator.
async fn give_up_on(fault: Fault, department: i64) -> (WecomError, u64) {
    let sim = simulator().await;
    sim.inject(always(fault.on(UserList)));
    let err = client(&sim.api_base())
        .user_list(department)
        .await
        .unwrap_err();
    (err, count(&sim, UserList))
}

/// Answers `fails` user/list calls with `fault`, then the member list.
async fn fail_first(fails: u32, fault: Fault) -> Simulator {
    let sim = simulator().await;
    sim.inject(fault.on(UserList).times(fails));
    sim
}

/// Asserts that the error's message says each of `parts`.
fn assert_shows(err: &WecomError, parts: &[&str]) {
    let shown = err.to_string();
    for part in parts {
        assert!(shown.contains(part), "{part:?} in {shown}");
    }
}

fn count(sim: &Simulator, endpoint: Endpoint) -> u64 {
    sim.calls().get(endpoint)
}

/// Spawns `calls`, waits until all of them have reached `user/list`, where the simulator holds
/// them, runs `meanwhile`, then lets them go on.
async fn while_held<T: Send + 'static>(
    sim: &Simulator,
    calls: u64,
    spawn: impl FnOnce() -> tokio::task::JoinHandle<T>,
    meanwhile: impl FnOnce(&Simulator),
) -> T {
    sim.hold(UserList);
    let task = spawn();
    sim.wait_for_calls(UserList, calls).await;
    meanwhile(sim);
    sim.release(UserList);
    task.await.unwrap()
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
    let sim = simulator().await;
    let client = client(&sim.api_base());
    for id in 1..=5 {
        client.user_list(id).await.unwrap();
    }
    assert!(concurrently(&client, 10).await.iter().all(Result::is_ok));
    assert_eq!(count(&sim, GetToken), 1);
    assert_eq!(count(&sim, UserList), 15);
    let stats = client.stats();
    assert_eq!(stats.calls["gettoken"], 1);
    assert_eq!(stats.calls["user/list"], 15);
    let [token] = <[String; 1]>::try_from(sim.issued_tokens()).unwrap();
    assert!(requests(&sim, UserList)
        .iter()
        .all(|r| r.query["access_token"] == token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_share_one_gettoken() {
    let sim = simulator().await;
    // Long enough that every caller is waiting on the refresh.
    sim.inject(Fault::Delay(Duration::from_millis(100)).on(GetToken));
    let client = client(&sim.api_base());
    assert!(concurrently(&client, 16).await.iter().all(Result::is_ok));
    assert_eq!(count(&sim, GetToken), 1);
}

#[tokio::test]
async fn short_lived_token_is_refreshed_before_use() {
    let sim = simulator_with(|d| d.token_ttl_secs = 1).await;
    let client = client(&sim.api_base());
    for id in 1..=3 {
        client.user_list(id).await.unwrap();
    }
    assert_eq!(count(&sim, GetToken), 3);
}

#[tokio::test]
async fn stale_token_is_refreshed_once_and_the_call_retried() {
    // The token the first call carries goes stale while the call is on its way: the simulator
    // then refuses it, and only that token, with the errcode.
    for (errcode, make_stale) in [
        (42001, Simulator::expire_tokens as fn(&Simulator)),
        (40014, Simulator::revoke_tokens),
    ] {
        let sim = simulator().await;
        let client = client(&sim.api_base());
        let first = {
            let client = client.clone();
            move || tokio::spawn(async move { client.user_list(1).await })
        };
        let listed = while_held(&sim, 1, first, make_stale).await;
        assert_eq!(listed.unwrap().len(), 1);
        assert_eq!(count(&sim, GetToken), 2, "{errcode}");
        assert_eq!(count(&sim, UserList), 2, "{errcode}");
        client.user_list(2).await.unwrap();
        assert_eq!(count(&sim, GetToken), 2, "the new token is kept");
    }
}

#[tokio::test]
async fn a_rejected_fresh_token_ends_the_call() {
    let sim = fail_first(3, Fault::Errcode(42001)).await;
    let err = client(&sim.api_base()).user_list(1).await.unwrap_err();
    assert_eq!(err.code(), "token");
    assert_eq!(err.errcode(), Some(42001));
    assert_eq!(count(&sim, GetToken), 2);
    assert_eq!(count(&sim, UserList), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stale_token_answers_refresh_once() {
    let sim = simulator().await;
    let client = client(&sim.api_base());
    // All eight carry the first token, which expires before any of them is answered.
    let calls = {
        let client = client.clone();
        move || tokio::spawn(async move { concurrently(&client, 8).await })
    };
    let results = while_held(&sim, 8, calls, Simulator::expire_tokens).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(count(&sim, GetToken), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_secret_is_never_retried() {
    // The simulator's corp has another secret: `gettoken` answers 40001.
    let sim = simulator_with(|d| d.corp_secret = "the-real-secret".into()).await;
    let client = client(&sim.api_base());
    let results = concurrently(&client, 4).await;
    let err = client.user_list(9).await.unwrap_err();
    assert_eq!(count(&sim, GetToken), 1);
    assert_eq!(sim.calls().total(), 1, "nothing but the one gettoken");
    for err in results.into_iter().map(Result::unwrap_err).chain([err]) {
        assert_eq!(err.code(), "token");
        assert_eq!(err.errcode(), Some(40001));
        assert_shows(&err, &["40001", "Secret"]);
    }
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let faults = [
        ("system busy", Fault::Errcode(-1)),
        ("HTTP 500", Fault::HttpStatus(500)),
        ("HTTP 404", raw(404, "")),
        ("not JSON", Fault::NotJson),
        ("truncated", Fault::Truncated),
    ];
    for (name, fault) in faults {
        let sim = fail_first(3, fault).await;
        let client = client(&sim.api_base());
        assert_eq!(client.user_list(1).await.unwrap().len(), 1, "{name}");
        assert_eq!(count(&sim, UserList), 4, "{name}");
        assert_eq!(client.stats().retries, 3, "{name}");
    }
}

#[tokio::test]
async fn transient_failures_give_up_after_max_retries() {
    let (err, calls) = give_up_on(Fault::HttpStatus(502), 7).await;
    assert_eq!(err.code(), "transport");
    assert_eq!(calls, 4);
    let shown = err.to_string();
    assert!(
        shown.starts_with("user/list (department 7): HTTP status 502"),
        "{shown}"
    );
    assert!(shown.contains("gave up after 4 attempts"), "{shown}");

    let (err, calls) = give_up_on(Fault::Errcode(-1), 7).await;
    assert_eq!((err.code(), err.errcode()), ("wecom_errcode", Some(-1)));
    assert_eq!(calls, 4);
}

#[tokio::test]
async fn connection_closed_without_answer_is_retried() {
    let sim = fail_first(2, Fault::Close).await;
    let client = client(&sim.api_base());
    assert_eq!(client.user_list(1).await.unwrap().len(), 1);
    assert_eq!(client.stats().calls["user/list"], 3);
    assert_eq!(sim.calls().total(), 4);

    let (err, _) = give_up_on(Fault::Close, 1).await;
    assert_eq!(err.code(), "transport");
}

#[tokio::test]
async fn timeout_is_retried() {
    let sim = fail_first(1, Fault::Hang).await;
    let client = WecomClient::new(crate::wecom::ClientSettings {
        request_timeout: Duration::from_millis(300),
        ..settings(&sim.api_base())
    })
    .unwrap();
    assert_eq!(client.user_list(1).await.unwrap().len(), 1);
    assert_eq!(count(&sim, UserList), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frequency_limit_pauses_every_call_once() {
    const WAIT: Duration = Duration::from_millis(400);
    let sim = fail_first(4, Fault::Errcode(45009)).await;
    let mut settings = settings(&sim.api_base());
    settings.retry.rate_limit_wait = WAIT;
    let client = WecomClient::new(settings).unwrap();
    // All four are in flight when WeCom starts refusing.
    sim.hold(UserList);
    let workers = {
        let client = client.clone();
        tokio::spawn(async move { concurrently(&client, 4).await })
    };
    sim.wait_for_calls(UserList, 4).await;
    sim.release(UserList);
    // Once the client has seen the four 45009s, a new call must wait for the window too.
    while client.stats().rate_limited < 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    client.user_list(5).await.unwrap();
    assert!(workers.await.unwrap().iter().all(Result::is_ok));

    let hits = requests(&sim, UserList);
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
    let (err, calls) = give_up_on(Fault::Errcode(45009), 1).await;
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(err.errcode(), Some(45009));
    assert_eq!(calls, 4);
    assert!(
        err.to_string().contains("gave up after 4 attempts"),
        "{err}"
    );
}

#[tokio::test]
async fn concurrency_limit_is_retried_and_counted() {
    let sim = fail_first(2, Fault::Errcode(45033)).await;
    let client = client(&sim.api_base());
    client.user_list(1).await.unwrap();
    assert_eq!(client.stats().concurrency_limited, 2);
    assert_eq!(count(&sim, UserList), 3);
}

#[tokio::test]
async fn fatal_errcodes_fail_at_once() {
    for errcode in [
        40013, 40091, 48002, 48006, 48009, 50003, 60011, 301002, 88888,
    ] {
        let (err, calls) = give_up_on(self::errcode(errcode, "nope"), 1).await;
        assert_eq!(calls, 1, "{errcode}");
        assert_eq!(
            (err.code(), err.errcode()),
            ("wecom_errcode", Some(errcode))
        );
        assert_shows(&err, &[&errcode.to_string(), "nope"]);
    }
}

#[tokio::test]
async fn untrusted_ip_error_names_the_ip() {
    // Written out rather than the simulator's own 60020, which names 127.0.0.1.
    let (err, calls) = give_up_on(
        errcode(
            60020,
            "not allow to access from your ip, hint: [1658286717354964018506079], from ip: \
             1.2.3.4, more info at https://open.work.weixin.qq.com/devtool/query?e=60020",
        ),
        1,
    )
    .await;
    assert_eq!(calls, 1);
    assert_shows(
        &err,
        &[
            "WeCom errcode 60020: this server's IP 1.2.3.4 is not in the app's trusted IPs (企业可信IP)",
            "1658286717354964018506079",
        ],
    );
}

#[tokio::test]
async fn oversized_and_misshapen_bodies_are_refused_without_retry() {
    let sim = simulator_with(|d| d.users[0].userid = "x".repeat(4096)).await;
    let client = WecomClient::new(crate::wecom::ClientSettings {
        max_response_bytes: 1024,
        ..settings(&sim.api_base())
    })
    .unwrap();
    let err = client.user_list(1).await.unwrap_err();
    assert_eq!(err.code(), "malformed_response");
    assert!(err.to_string().contains("larger than 1024 bytes"), "{err}");
    assert_eq!(count(&sim, UserList), 1);

    let (err, calls) = give_up_on(ok(json!({"userlist": "surprise"})), 1).await;
    assert_eq!(err.code(), "malformed_response");
    assert_eq!(calls, 1);

    let (err, _) = give_up_on(raw(200, r#"{"userlist":[]}"#), 1).await;
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
    // tracing caches once for the whole process whether each log line is wanted, and while at
    // most one subscriber exists it asks only the subscriber of the thread that reaches the
    // line first: another test reaching the client's lines first, with no subscriber, would
    // switch them off for good, and this test would capture nothing. With a second, inert
    // subscriber alive it asks every subscriber, this test's included.
    let _every_subscriber_asked = tracing::Dispatch::new(tracing_subscriber::registry());
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            // The simulator's own debug lines show the faults it injects, echoes included:
            // they are the fake WeCom's logs, not orgsync's.
            .with_env_filter("debug,orgsync_simulator=off")
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );
    // Lines already cached as unwanted are asked again.
    tracing::callsite::rebuild_interest_cache();
    let mut errors = Vec::new();
    let mut tokens = Vec::new();

    // No token exists yet: only the secret can be echoed.
    let sim = simulator().await;
    // A line another thread was caching while the subscriber was set is settled by now.
    tracing::callsite::rebuild_interest_cache();
    sim.inject(errcode(40001, &format!("invalid secret {SECRET}")).on(GetToken));
    errors.push(client(&sim.api_base()).user_list(1).await.unwrap_err());
    assert_eq!(sim.calls().total(), 1, "nothing but the one gettoken");

    let faults: [fn(&str) -> Fault; 6] = [
        |leaky| errcode(60020, leaky),
        |leaky| errcode(-1, leaky),
        |leaky| errcode(42001, leaky),
        |leaky| raw(200, format!(r#"{{"errcode":0,"userlist":"{leaky}"}}"#)),
        |leaky| raw(200, format!("<html>{leaky}")),
        |leaky| raw(500, leaky),
    ];
    for fault in faults {
        // The first call holds the token by the time it reaches user/list; from then on every
        // answer echoes it.
        let sim = simulator().await;
        let client = client(&sim.api_base());
        let call = move || tokio::spawn(async move { client.user_list(1).await });
        let echo = |sim: &Simulator| {
            let leaky = format!("echo {SECRET} {}", sim.issued_tokens().join(" "));
            sim.inject(always(fault(&leaky).on(UserList)));
        };
        errors.push(while_held(&sim, 1, call, echo).await.unwrap_err());
        tokens.extend(sim.issued_tokens());
    }
    assert_eq!(
        tokens.len(),
        6,
        "one token per simulator, and each was echoed"
    );

    // Nothing listens on a port just freed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    errors.push(client(&closed).user_list(1).await.unwrap_err());

    assert_eq!(errors.len(), 8);
    let leaked = |shown: &str| shown.contains(SECRET) || tokens.iter().any(|t| shown.contains(t));
    for err in &errors {
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!leaked(&shown), "{shown}");
            assert!(!shown.contains("access_token="), "{shown}");
        }
    }
    let settings = settings(&closed);
    let shown = format!("{settings:?} {:?}", client(&closed));
    assert!(!shown.contains(SECRET), "{shown}");

    let logs = logs.text();
    assert!(logs.contains("user/list"), "{logs}");
    assert!(!leaked(&logs), "{logs}");
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
