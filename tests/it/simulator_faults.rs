//! Injected faults and WeCom's throttles, seen from an HTTP client. Nothing here waits on a
//! timer for something to happen: a test either waits for an event (a call reaching the
//! simulator) or only relies on lower bounds (a delay lasts at least its length).

use std::time::{Duration, Instant};

use orgsync_simulator::{Directory, Endpoint, Fault, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::paths::{DEPARTMENT_LIST, USER_GET, USER_LIST};
use crate::harness::{assert_wecom_error, errcode, SimClient, WAIT};

#[tokio::test]
async fn an_errcode_fault_hits_the_matching_department_the_given_number_of_times() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.sim.inject(
        Fault::Errcode(45033)
            .on(Endpoint::UserList)
            .department(3)
            .times(2),
    );
    h.sim.inject(Fault::Errcode(48009).on(Endpoint::UserList));

    let other = h.call(USER_LIST, &token, &[("department_id", "2")]).await;
    assert_eq!(
        errcode(&other),
        48009,
        "the department-less rule matches any department"
    );
    for _ in 0..2 {
        let answer = h.call(USER_LIST, &token, &[("department_id", "3")]).await;
        assert_wecom_error(&answer, 45033, "api concurrent out of limit");
    }
    let recovered = h.call(USER_LIST, &token, &[("department_id", "3")]).await;
    assert_eq!(errcode(&recovered), 0);
    assert_eq!(h.sim.calls().get(Endpoint::UserList), 4);
}

#[tokio::test]
async fn a_bare_fault_hits_the_next_call_even_gettoken() {
    let h = SimClient::start(Directory::sample()).await;
    h.sim.inject(Fault::Errcode(-1));
    let d = h.sim.directory();
    let answer = h
        .get(
            "/cgi-bin/gettoken",
            &[("corpid", &d.corp_id), ("corpsecret", &d.corp_secret)],
        )
        .await;
    assert_eq!(errcode(&answer), -1);
    assert!(answer.get("access_token").is_none());
    h.token().await;
}

#[tokio::test]
async fn an_http_status_fault_sends_the_gateways_html_page() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    for status in [500, 502, 503] {
        h.sim
            .inject(Fault::HttpStatus(status).on(Endpoint::DepartmentList));
        let raw = h.call_raw(DEPARTMENT_LIST, &token, &[]).await;
        assert_eq!(raw.status, status);
        assert!(
            raw.text.contains(&format!("<title>{status} ")),
            "{}",
            raw.text
        );
        assert!(serde_json::from_str::<serde_json::Value>(&raw.text).is_err());
    }
}

#[tokio::test]
async fn a_not_json_fault_is_a_200_with_html() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.sim.inject(Fault::NotJson.on(Endpoint::UserGet));
    let raw = h.call_raw(USER_GET, &token, &[("userid", "lina")]).await;
    assert_eq!(raw.status, 200);
    assert!(raw.text.starts_with("<!DOCTYPE html>"));
    assert!(serde_json::from_str::<serde_json::Value>(&raw.text).is_err());
}

#[tokio::test]
async fn a_raw_fault_sends_the_hand_written_answer_as_it_is() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let body = r#"{"errcode":0,"errmsg":"ok","userlist":"surprise"}"#;
    h.sim.inject(
        Fault::Raw {
            status: 200,
            body: body.into(),
        }
        .on(Endpoint::UserList)
        .department(3)
        .times(2),
    );
    h.sim.inject(
        Fault::Raw {
            status: 503,
            body: String::new(),
        }
        .on(Endpoint::UserGet),
    );
    for _ in 0..2 {
        let raw = h
            .call_raw(USER_LIST, &token, &[("department_id", "3")])
            .await;
        assert_eq!((raw.status, raw.text.as_str()), (200, body));
    }
    let unavailable = h.call_raw(USER_GET, &token, &[("userid", "lina")]).await;
    assert_eq!((unavailable.status, unavailable.bytes.len()), (503, 0));

    let normal = h.call(USER_LIST, &token, &[("department_id", "3")]).await;
    assert_eq!(errcode(&normal), 0);
    assert!(normal["userlist"].is_array());
}

#[tokio::test]
async fn a_truncated_body_has_a_matching_content_length() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.sim.inject(Fault::Truncated.on(Endpoint::DepartmentList));
    let cut = h.call_raw(DEPARTMENT_LIST, &token, &[]).await;
    let full = h.call_raw(DEPARTMENT_LIST, &token, &[]).await;
    assert_eq!(cut.status, 200);
    assert_eq!(cut.content_length, Some(cut.bytes.len()));
    assert_eq!(cut.bytes.len(), full.bytes.len() / 2);
    assert!(full.bytes.starts_with(&cut.bytes));
    assert!(serde_json::from_slice::<serde_json::Value>(&cut.bytes).is_err());
    assert_eq!(full.json()["errcode"], 0);
}

#[tokio::test]
async fn a_reset_aborts_the_connection_without_a_response() {
    let (read, received) = a_connection_fault(Fault::Reset).await;
    // No byte, then a RST.
    assert_eq!(
        read.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionReset
    );
    assert!(received.is_empty());
}

/// `fault` on `user/get`, seen twice. Through an HTTP client (checked here): an error, after
/// which the next call works. On a raw TCP connection, to see exactly what arrives: the
/// result of reading it to its end and the bytes received, returned for the caller to check.
async fn a_connection_fault(fault: Fault) -> (std::io::Result<usize>, Vec<u8>) {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.sim.inject(fault.clone().on(Endpoint::UserGet));
    let mut stream = raw_user_get(&h, &token).await;
    let mut received = Vec::new();
    let read = stream.read_to_end(&mut received).await;

    h.sim.inject(fault.on(Endpoint::UserGet));
    fails_then_recovers(&h, &token).await;
    (read, received)
}

/// A `user/get` written by hand on a raw connection, to see exactly what comes back.
async fn raw_user_get(h: &SimClient, token: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(h.sim.addr()).await.unwrap();
    let request = format!(
        "GET /cgi-bin/user/get?access_token={token}&userid=lina HTTP/1.1\r\nHost: {}\r\n\r\n",
        h.sim.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Through an HTTP client: the injected fault is an error, after which the next call works.
async fn fails_then_recovers(h: &SimClient, token: &str) {
    let url = h.url(USER_GET);
    let query = [("access_token", token), ("userid", "lina")];
    let failed = h.http.get(&url).query(&query).send().await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        errcode(&h.call(USER_GET, token, &[("userid", "lina")]).await),
        0
    );
}

#[tokio::test]
async fn a_close_ends_the_connection_cleanly_without_a_response() {
    let (read, received) = a_connection_fault(Fault::Close).await;
    // No byte, then a clean end of stream (a FIN).
    read.unwrap();
    assert!(received.is_empty());
}

#[tokio::test]
async fn a_delay_answers_normally_afterwards() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let delay = Duration::from_millis(300);
    h.sim.inject(Fault::Delay(delay).on(Endpoint::UserGet));
    let started = Instant::now();
    let answer = h.call(USER_GET, &token, &[("userid", "lina")]).await;
    assert!(started.elapsed() >= delay);
    assert_eq!(answer["userid"], "lina");
}

#[tokio::test]
async fn a_hang_runs_into_the_clients_timeout() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.sim.inject(Fault::Hang.on(Endpoint::UserGet));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let query = [("access_token", token.as_str()), ("userid", "lina")];
    let error = client
        .get(h.url(USER_GET))
        .query(&query)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(
        errcode(&h.call(USER_GET, &token, &[("userid", "lina")]).await),
        0
    );
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_hung_call() {
    let sim = Simulator::start(Directory::sample()).await.unwrap();
    let addr = sim.addr();
    sim.inject(Fault::Hang);
    let url = format!("{}/cgi-bin/department/list", sim.api_base());
    let hung = tokio::spawn(async move { reqwest::get(url).await });
    sim.wait_for_calls(Endpoint::DepartmentList, 1).await;
    // A connection of this test's own: once the port is free, another test may take it, so
    // connecting to it afterwards proves nothing.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    sim.shutdown().await;
    assert!(hung.await.unwrap().is_err());
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, idle.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the open connection is closed: {read:?}"
    );
}

#[tokio::test]
async fn calls_over_the_concurrency_cap_get_45033() {
    let mut directory = Directory::sample();
    directory.max_concurrent_per_api = Some(1);
    let h = SimClient::start(directory).await;
    let token = h.token().await;
    // Sequential calls never overlap, so the cap never bites.
    for _ in 0..3 {
        assert_eq!(
            errcode(&h.call(USER_GET, &token, &[("userid", "lina")]).await),
            0
        );
    }

    // Hold the only user/get slot with a call that never returns.
    h.sim.inject(Fault::Hang.on(Endpoint::UserGet));
    let url = h.url(USER_GET);
    let query = [
        ("access_token", token.clone()),
        ("userid", "lina".to_owned()),
    ];
    let http = h.http.clone();
    let holder = tokio::spawn(async move { http.get(url).query(&query).send().await });
    h.sim.wait_for_calls(Endpoint::UserGet, 4).await;

    let refused = h.call(USER_GET, &token, &[("userid", "lina")]).await;
    assert_eq!(errcode(&refused), 45033, "{refused}");
    // The cap is per API.
    assert_eq!(
        errcode(&h.call(USER_LIST, &token, &[("department_id", "3")]).await),
        0
    );
    holder.abort();
}

#[tokio::test]
async fn a_spent_rate_window_blocks_the_api_until_it_ends() {
    let mut directory = Directory::sample();
    directory.rate_limit_per_minute = Some(3);
    directory.rate_limit_window_ms = 60_000;
    let h = SimClient::start(directory).await;
    let token = h.token().await;
    for _ in 0..3 {
        assert_eq!(
            errcode(&h.call(USER_GET, &token, &[("userid", "lina")]).await),
            0
        );
    }
    for _ in 0..2 {
        let blocked = h.call(USER_GET, &token, &[("userid", "lina")]).await;
        assert_eq!(errcode(&blocked), 45009, "{blocked}");
        assert!(blocked["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("api freq out of limit"));
    }
    // Other APIs have their own budget.
    assert_eq!(
        errcode(&h.call(USER_LIST, &token, &[("department_id", "3")]).await),
        0
    );

    // Shrink the window: the one that started with the first call is now over.
    h.sim.edit(|d| d.rate_limit_window_ms = 1);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(
        errcode(&h.call(USER_GET, &token, &[("userid", "lina")]).await),
        0
    );
}

#[tokio::test]
async fn latency_makes_every_call_take_at_least_that_long() {
    let mut directory = Directory::sample();
    directory.latency_ms = 50;
    let h = SimClient::start(directory).await;
    let started = Instant::now();
    let token = h.token().await;
    h.call(USER_GET, &token, &[("userid", "lina")]).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_calls_are_in_flight_together_and_answered_once_released() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.sim.hold(Endpoint::UserList);
    let calls: Vec<_> = ["3", "4"]
        .into_iter()
        .map(|department| {
            let (http, url) = (h.http.clone(), h.url(USER_LIST));
            let query = [
                ("access_token", token.clone()),
                ("department_id", department.into()),
            ];
            tokio::spawn(async move { http.get(url).query(&query).send().await?.text().await })
        })
        .collect();
    h.sim.wait_for_calls(Endpoint::UserList, 2).await;
    // Neither was answered, so the second arrived while the first was still in flight.
    let in_flight: Vec<_> = h.sim.requests().iter().map(|r| r.in_flight).collect();
    assert_eq!(
        in_flight,
        [1, 1, 2],
        "gettoken, then the two user/list calls"
    );
    // Other APIs are not held.
    assert_eq!(
        errcode(&h.call(USER_GET, &token, &[("userid", "lina")]).await),
        0
    );

    // Faults apply when the held calls go on, not when they arrived.
    h.sim
        .inject(Fault::Errcode(45009).on(Endpoint::UserList).times(2));
    h.sim.release(Endpoint::UserList);
    for call in calls {
        let answer: serde_json::Value =
            serde_json::from_str(&call.await.unwrap().unwrap()).unwrap();
        assert_eq!(errcode(&answer), 45009);
    }
    let next = h.call(USER_LIST, &token, &[("department_id", "3")]).await;
    assert_eq!(errcode(&next), 0);
}

#[tokio::test]
async fn the_request_log_has_each_calls_query_and_arrival() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.call(
        USER_LIST,
        &token,
        &[("department_id", "3"), ("fetch_child", "1")],
    )
    .await;
    h.raw("/cgi-bin/user/delete", &[("userid", "lina")]).await;
    h.call(USER_GET, &token, &[("userid", "lina")]).await;

    let log = h.sim.requests();
    let endpoints: Vec<_> = log.iter().map(|r| r.endpoint).collect();
    assert_eq!(
        endpoints,
        [Endpoint::GetToken, Endpoint::UserList, Endpoint::UserGet],
        "an unknown API is not logged"
    );
    let directory = h.sim.directory();
    assert_eq!(log[0].query["corpid"], directory.corp_id);
    assert_eq!(log[0].query["corpsecret"], directory.corp_secret);
    let list = &log[1];
    assert_eq!(list.query.len(), 3);
    assert_eq!(list.query["access_token"], token);
    assert_eq!(list.query["fetch_child"], "1");
    assert_eq!(list.department(), Some(3));
    assert_eq!(list.in_flight, 1);
    assert!(log[0].at <= list.at && list.at <= log[2].at);
    assert_eq!(log[2].department(), None, "user/get names no department");
}
