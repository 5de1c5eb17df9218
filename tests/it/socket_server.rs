//! The socket server over real Unix sockets, against a real store in a temporary directory.
//! Every wait is for a reply or an event, bounded by a timeout that fails the test.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use orgsync::events::{EventDraft, EventType};
use orgsync::socket::{self, ClientError};
use orgsync::store::{consumers, event_log, host_users};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::time::timeout;

use crate::harness::{current_uid, error_code, Client, Server, WAIT};
use EventType::{DepartmentCreated, MemberJoined, MemberLeft, MemberUpdated, SyncCompleted};

/// A uid that is not an admin of a server run by `probe_uid() + 1`: this user's, or nobody's
/// when the test runs as root (see [`connect_as_unprivileged`]).
fn probe_uid() -> u32 {
    if current_uid() == 0 {
        65534
    } else {
        current_uid()
    }
}

#[tokio::test]
async fn subscribe_since_delivers_the_backlog_in_order_then_live_events() {
    let mut daemon = Server::with_events(&[MemberJoined, MemberUpdated, SyncCompleted]).await;
    let mut client = daemon.connect().await;
    let head = client
        .subscribe(json!({"op": "subscribe", "since": 1}))
        .await;
    assert_eq!(head, 3);
    assert_eq!(
        client.events(2).await,
        vec![
            (2, "orgsync.member.updated".to_owned()),
            (3, "orgsync.sync.completed".to_owned())
        ]
    );
    daemon.append(&[MemberLeft, SyncCompleted]);
    assert_eq!(client.seqs(2).await, vec![4, 5]);
}

/// `echo '{"op":"subscribe","since":0}' | nc -N -U ...` closes its sending side after the
/// request: the subscription goes on until the client closes the connection.
#[tokio::test]
async fn a_subscriber_that_closes_only_its_sending_side_still_gets_the_events() {
    let mut daemon = Server::with_events(&[MemberJoined, SyncCompleted]).await;
    let mut client = daemon.connect().await;
    client
        .send_raw(b"{\"op\":\"subscribe\",\"since\":0}\n")
        .await;
    client.write.shutdown().await.unwrap();
    assert_eq!(client.next().await["head"], 2);
    assert_eq!(client.seqs(2).await, vec![1, 2]);
    daemon.append(&[MemberLeft]);
    assert_eq!(client.seqs(1).await, vec![3]);
}

#[tokio::test]
async fn without_since_or_a_known_consumer_only_new_events_come() {
    let mut daemon = Server::with_events(&[MemberJoined, MemberJoined]).await;
    let mut anonymous = daemon.connect().await;
    let mut newcomer = daemon.connect().await;
    assert_eq!(anonymous.subscribe(json!({"op": "subscribe"})).await, 2);
    let head = newcomer
        .subscribe(json!({"op": "subscribe", "consumer": "never-acked"}))
        .await;
    assert_eq!(head, 2);
    daemon.append(&[MemberLeft]);
    assert_eq!(anonymous.seqs(1).await, vec![3]);
    assert_eq!(newcomer.seqs(1).await, vec![3]);
}

#[tokio::test]
async fn a_consumer_resumes_after_its_last_ack() {
    let daemon = Server::with_events(&[MemberJoined; 5]).await;
    let mut first = daemon.connect().await;
    first
        .subscribe(json!({"op": "subscribe", "since": 0, "consumer": "hr-app"}))
        .await;
    assert_eq!(first.seqs(5).await, vec![1, 2, 3, 4, 5]);
    // The ack goes over the subscribed connection; its reply comes between event lines.
    let reply = first.ack("hr-app", 3).await;
    assert_eq!(reply, json!({"ok": true, "op": "ack"}));
    // A late, older ack does not move the cursor back.
    let reply = first.ack("hr-app", 1).await;
    assert_eq!(reply["ok"], true);
    drop(first);
    assert_eq!(daemon.cursor("hr-app"), Some(3));

    let mut again = daemon.connect().await;
    let head = again
        .subscribe(json!({"op": "subscribe", "consumer": "hr-app"}))
        .await;
    assert_eq!(head, 5);
    assert_eq!(again.seqs(2).await, vec![4, 5]);
}

#[tokio::test]
async fn since_beats_the_stored_cursor() {
    let daemon = Server::with_events(&[MemberJoined; 5]).await;
    let mut client = daemon.connect().await;
    let reply = client.ack("hr-app", 4).await;
    assert_eq!(reply["ok"], true);
    client
        .subscribe(json!({"op": "subscribe", "consumer": "hr-app", "since": 1}))
        .await;
    assert_eq!(client.seqs(4).await, vec![2, 3, 4, 5]);
}

#[tokio::test]
async fn acks_above_the_head_are_refused() {
    let daemon = Server::with_events(&[MemberJoined]).await;
    let mut client = daemon.connect().await;
    let reply = client.ack("hr-app", 2).await;
    assert_eq!(error_code(&reply), "bad_request");
    assert_eq!(daemon.cursor("hr-app"), None);
}

#[tokio::test]
async fn a_start_before_the_oldest_kept_event_is_a_gap() {
    let mut daemon = Server::with_events(&[MemberJoined; 10]).await;
    daemon.prune_through(5);
    let mut client = daemon.connect().await;
    for since in [0, 4] {
        let reply = client
            .request(json!({"op": "subscribe", "since": since}))
            .await;
        assert_eq!(error_code(&reply), "gap");
        assert_eq!(reply["error"]["oldest"], 6);
    }
    // A consumer whose cursor fell into the pruned range is told too.
    daemon
        .store
        .write(|tx| consumers::ack(tx, "late-app", 2, "uid:0"))
        .expect("ack");
    let reply = client
        .request(json!({"op": "subscribe", "consumer": "late-app"}))
        .await;
    assert_eq!(error_code(&reply), "gap");
    // Right before the oldest kept event is fine, and the connection still serves.
    client
        .subscribe(json!({"op": "subscribe", "since": 5}))
        .await;
    assert_eq!(client.seqs(5).await, vec![6, 7, 8, 9, 10]);
}

#[tokio::test]
async fn with_every_event_pruned_only_the_head_is_a_valid_start() {
    let mut daemon = Server::with_events(&[MemberJoined; 10]).await;
    daemon.prune_through(10);
    let mut client = daemon.connect().await;
    let reply = client.request(json!({"op": "subscribe", "since": 9})).await;
    assert_eq!(error_code(&reply), "gap");
    assert_eq!(reply["error"]["oldest"], 11);
    let reply = client
        .request(json!({"op": "subscribe", "since": 11}))
        .await;
    assert_eq!(error_code(&reply), "store_changed", "ahead of the head");
    client
        .subscribe(json!({"op": "subscribe", "since": 10}))
        .await;
    daemon.append(&[MemberLeft]);
    assert_eq!(client.seqs(1).await, vec![11]);
}

#[tokio::test]
async fn events_pruned_under_a_live_subscription_end_it_with_a_gap() {
    let mut daemon = Server::with_events(&[MemberJoined; 2]).await;
    let mut client = daemon.connect().await;
    client
        .subscribe(json!({"op": "subscribe", "since": 2}))
        .await;
    // 3, 4 and 5 arrive and 3 and 4 are pruned in one commit: the subscription, whenever it
    // reads, sees either nothing new or a log that starts at 5.
    let source = daemon.source.clone();
    let drafts = vec![
        EventDraft {
            kind: MemberLeft,
            subject: "member/a".into(),
            data: json!({}),
        };
        3
    ];
    daemon
        .store
        .write(|tx| {
            event_log::append(tx, &source, None, &drafts, Utc::now())?;
            tx.execute("DELETE FROM events WHERE seq <= 4", [])?;
            Ok(())
        })
        .expect("append and prune");
    daemon.head.send_replace(5);
    let reply = client.next().await;
    assert_eq!(error_code(&reply), "gap");
    assert_eq!(reply["error"]["oldest"], 5);
    client.expect_closed().await;
}

#[tokio::test]
async fn types_filter_by_exact_type_and_by_prefix() {
    let mut daemon = Server::with_events(&[
        DepartmentCreated,
        MemberJoined,
        MemberUpdated,
        SyncCompleted,
    ])
    .await;
    let mut members = daemon.connect().await;
    let mut completions = daemon.connect().await;
    members
        .subscribe(json!({"op": "subscribe", "since": 0, "types": ["orgsync.member.*"]}))
        .await;
    completions
        .subscribe(json!({"op": "subscribe", "since": 0, "types": ["orgsync.sync.completed"]}))
        .await;
    assert_eq!(
        members.events(2).await,
        vec![
            (2, "orgsync.member.joined".to_owned()),
            (3, "orgsync.member.updated".to_owned())
        ]
    );
    assert_eq!(completions.seqs(1).await, vec![4]);
    daemon.append(&[SyncCompleted, MemberLeft, SyncCompleted]);
    // The next line is the next matching event: the others were skipped, not delayed.
    assert_eq!(members.seqs(1).await, vec![6]);
    assert_eq!(completions.seqs(2).await, vec![5, 7]);
}

#[tokio::test]
async fn a_second_subscribe_on_one_connection_is_refused() {
    let daemon = Server::start().await;
    let mut client = daemon.connect().await;
    client.subscribe(json!({"op": "subscribe"})).await;
    let reply = client.request(json!({"op": "subscribe"})).await;
    assert_eq!(error_code(&reply), "bad_request");
}

#[tokio::test]
async fn status_replies_with_the_daemons_status() {
    let daemon = Server::start().await;
    let mut client = daemon.connect().await;
    let reply = client.request(json!({"op": "status"})).await;
    assert_eq!(
        reply,
        json!({"ok": true, "op": "status", "status": {"health": "fine"}})
    );
}

/// Connects as another user, so that SO_PEERCRED shows a non-admin. As root, the credentials
/// are dropped in a thread of its own (per-thread, by raw syscall) for the connect: the peer is
/// then uid 65534 in group 0, which may still use the 0660 socket.
fn connect_as_unprivileged(path: &Path) -> (UnixStream, u32) {
    if current_uid() != 0 {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
        stream.set_nonblocking(true).expect("nonblocking");
        return (
            UnixStream::from_std(stream).expect("tokio stream"),
            current_uid(),
        );
    }
    let nobody = 65534;
    let dir = path.parent().expect("socket dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710)).expect("chmod dir");
    let path = path.to_owned();
    let stream = std::thread::spawn(move || {
        // SAFETY: raw syscalls change only this thread's credentials (glibc's wrappers would
        // change every thread's); the thread ends right after the connect.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setresgid, 0, 0, 0), 0);
            assert_eq!(
                libc::syscall(libc::SYS_setresuid, nobody, nobody, nobody),
                0
            );
        }
        std::os::unix::net::UnixStream::connect(path).expect("connect as nobody")
    })
    .join()
    .expect("connect thread");
    stream.set_nonblocking(true).expect("nonblocking");
    (UnixStream::from_std(stream).expect("tokio stream"), nobody)
}

/// A server that runs as someone else, with no admins configured, and a client connected as a
/// user who is not its admin.
async fn start_with_an_outsider() -> (Server, Client) {
    let daemon = Server::start_with(|_| {}, probe_uid() + 1).await;
    let (stream, _) = connect_as_unprivileged(&daemon.path);
    (daemon, Client::new(stream))
}

#[tokio::test]
async fn resync_is_forbidden_to_a_peer_that_is_not_an_admin() {
    let (daemon, mut client) = start_with_an_outsider().await;
    let reply = client.request(json!({"op": "resync"})).await;
    assert_eq!(error_code(&reply), "forbidden");
    assert!(!daemon.queue.is_pending());
    // Everything else stays open to it.
    let reply = client.request(json!({"op": "status"})).await;
    assert_eq!(reply["ok"], true);
}

/// The contract marks `resync` (and `link.put`) admin only, not `host_users.put`: the host
/// application, in `socket.group`, pushes its own users.
#[tokio::test]
async fn host_users_put_is_open_to_a_peer_that_is_not_an_admin() {
    let (daemon, mut client) = start_with_an_outsider().await;
    let reply = client
        .request(json!({"op": "host_users.put", "users": [{"id": "1", "mobile": "13800138000"}]}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(!host_users::is_empty(daemon.store.conn()).expect("read the store"));
}

#[tokio::test]
async fn resync_is_allowed_to_a_listed_admin_and_merges_into_a_pending_run() {
    let probe_uid = probe_uid();
    let daemon = Server::start_with(|s| s.admin_uids = vec![probe_uid], probe_uid + 1).await;
    let (stream, peer) = connect_as_unprivileged(&daemon.path);
    assert_eq!(peer, probe_uid);
    let mut client = Client::new(stream);
    let reply = client.request(json!({"op": "resync"})).await;
    assert_eq!(
        reply,
        json!({"ok": true, "op": "resync", "queued": true, "merged": false, "after_run": 0})
    );
    assert!(daemon.queue.is_pending());
    let reply = client.request(json!({"op": "resync"})).await;
    assert_eq!(
        reply,
        json!({"ok": true, "op": "resync", "queued": true, "merged": true, "after_run": 0})
    );
}

#[tokio::test]
async fn an_oversized_line_is_too_large_and_the_connection_still_works() {
    let daemon = Server::start().await;
    let mut client = daemon.connect().await;
    let mut huge = vec![b'x'; (1 << 20) + 1];
    huge.push(b'\n');
    client.send_raw(&huge).await;
    assert_eq!(error_code(&client.next().await), "too_large");
    // A request of exactly 1 MiB is still accepted.
    let mut request = br#"{"op":"status","pad":""#.to_vec();
    let closing = br#""}"#;
    request.resize((1 << 20) - closing.len(), b' ');
    request.extend_from_slice(closing);
    request.push(b'\n');
    client.send_raw(&request).await;
    assert_eq!(client.next().await["ok"], true);
}

#[tokio::test]
async fn a_last_request_without_a_newline_is_answered_before_the_connection_closes() {
    let daemon = Server::start().await;
    // As `printf '{"op":"status"}' | socat - UNIX:...` sends it: no newline, then end of input.
    let mut client = daemon.connect().await;
    client.send_raw(br#"{"op":"status"}"#).await;
    client.write.shutdown().await.unwrap();
    let reply = client.next().await;
    assert_eq!(reply["op"], "status", "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    client.expect_closed().await;

    // The size limit holds for it too.
    let mut client = daemon.connect().await;
    client.send_raw(&vec![b'x'; (1 << 20) + 1]).await;
    client.write.shutdown().await.unwrap();
    assert_eq!(error_code(&client.next().await), "too_large");
    client.expect_closed().await;
}

#[tokio::test]
async fn garbage_gets_an_error_reply_and_the_connection_stays_usable() {
    let daemon = Server::start().await;
    let mut client = daemon.connect().await;
    for (line, code) in [
        (&b"not json\n"[..], "bad_request"),
        (b"\xff\xfe{}\n", "bad_request"),
        (b"[1,2,3]\n", "bad_request"),
        (b"{}\n", "bad_request"),
        (b"{\"op\":\"launch\"}\n", "unknown_op"),
        (
            b"{\"op\":\"ack\",\"consumer\":\"\\u0000\",\"seq\":1}\n",
            "bad_request",
        ),
    ] {
        client.send_raw(line).await;
        let reply = client.next().await;
        assert_eq!(
            error_code(&reply),
            code,
            "{}",
            String::from_utf8_lossy(line)
        );
        assert!(reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(client.request(json!({"op": "status"})).await["ok"], true);
}

#[tokio::test]
async fn a_client_over_the_cap_is_told_and_closed_and_a_freed_slot_is_reused() {
    let daemon = Server::start_with(|s| s.max_connections = 1, current_uid()).await;
    let mut first = daemon.connect().await;
    first.subscribe(json!({"op": "subscribe"})).await;
    let mut second = daemon.connect().await;
    assert_eq!(error_code(&second.next().await), "too_many_connections");
    second.expect_closed().await;

    // Closing a subscribed connection frees its slot; the server notices on its own time.
    drop(first);
    daemon.connect_served().await;
}

#[tokio::test]
async fn a_stalled_subscriber_does_not_hold_up_another() {
    let mut daemon = Server::start().await;
    let mut stalled = daemon.connect().await;
    stalled
        .subscribe(json!({"op": "subscribe", "since": 0}))
        .await;
    // Far more than the socket buffers hold: the stalled subscriber's task blocks in a write.
    let padding = "x".repeat(4096);
    let count = 1500;
    for _ in 0..count / 100 {
        daemon.append_with(&[MemberUpdated; 100], json!({"padding": padding}));
    }
    let mut healthy = daemon.connect().await;
    healthy
        .subscribe(json!({"op": "subscribe", "since": 0}))
        .await;
    let seqs = healthy.seqs(count).await;
    assert_eq!(seqs, (1..=count as i64).collect::<Vec<_>>());
    daemon.append(&[SyncCompleted]);
    assert_eq!(healthy.seqs(1).await, vec![count as i64 + 1]);
    let mut other = daemon.connect().await;
    assert_eq!(other.request(json!({"op": "status"})).await["ok"], true);
    // The stalled one, once it reads, gets everything in order.
    assert_eq!(stalled.seqs(3).await, vec![1, 2, 3]);
}

#[tokio::test]
async fn shutdown_ends_subscriptions_and_removes_the_socket() {
    let daemon = Server::start().await;
    let mut client = daemon.connect().await;
    client.subscribe(json!({"op": "subscribe"})).await;
    daemon.shutdown.send_replace(true);
    client.expect_closed().await;
    timeout(WAIT, daemon.server)
        .await
        .expect("the server stops in time")
        .expect("the server task");
    assert!(!daemon.path.exists());
    assert!(daemon.dir.path().join("orgsync.db").exists());
}

#[tokio::test]
async fn the_client_helper_returns_replies_and_explains_failures() {
    let daemon = Server::start().await;
    let reply = socket::request(&daemon.path, &json!({"op": "status"}))
        .await
        .expect("status");
    assert_eq!(reply["status"]["health"], "fine");

    let refused = socket::request(&daemon.path, &json!({"op": "nonsense"})).await;
    assert!(
        matches!(&refused, Err(ClientError::Refused { code, .. }) if code == "unknown_op"),
        "{refused:?}"
    );

    let missing = daemon.dir.path().join("elsewhere.sock");
    let error = socket::request(&missing, &json!({"op": "status"}))
        .await
        .expect_err("no daemon there");
    assert!(matches!(error, ClientError::NotRunning { .. }));
    let message = error.to_string();
    assert!(message.contains("is the daemon running?"), "{message}");
    assert!(message.contains("elsewhere.sock"), "{message}");
}

#[tokio::test]
async fn retention_turns_pruned_events_into_a_gap_but_keeps_an_active_consumers_backlog() {
    let mut daemon = Server::start().await;
    let now = Utc::now();
    daemon.append_dated(6, now - TimeDelta::days(40));
    let mut host = daemon.connect().await;
    host.subscribe(json!({"op": "subscribe", "since": 0, "consumer": "hr-app"}))
        .await;
    assert_eq!(host.seqs(6).await, (1..=6).collect::<Vec<_>>());
    let reply = host.ack("hr-app", 3).await;
    assert_eq!(reply["ok"], true);
    drop(host);

    // Every event is past a 30-day retention, but hr-app acked seq 3 just now.
    let pruned = event_log::prune(&mut daemon.store, now, 30).expect("prune");
    assert_eq!((pruned.deleted, pruned.oldest), (3, Some(4)));
    let mut late = daemon.connect().await;
    let reply = late.request(json!({"op": "subscribe", "since": 0})).await;
    assert_eq!(error_code(&reply), "gap");
    assert_eq!(reply["error"]["oldest"], 4);
    let mut resumed = daemon.connect().await;
    resumed
        .subscribe(json!({"op": "subscribe", "consumer": "hr-app"}))
        .await;
    assert_eq!(resumed.seqs(3).await, vec![4, 5, 6]);
    drop(resumed);

    // A month without an ack: hr-app no longer holds events back, and finds its gap.
    let pruned = event_log::prune(&mut daemon.store, now + TimeDelta::days(31), 30).expect("prune");
    assert_eq!((pruned.deleted, pruned.oldest), (3, None));
    let mut idle = daemon.connect().await;
    let reply = idle
        .request(json!({"op": "subscribe", "consumer": "hr-app"}))
        .await;
    assert_eq!(error_code(&reply), "gap");
    assert_eq!(
        reply["error"]["oldest"], 7,
        "the next event to be committed"
    );
    assert_eq!(event_log::head(daemon.store.conn()).expect("head"), 6);
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_an_error_and_the_connection_survives() {
    let daemon = Server::start().await;
    let mut client = daemon.connect().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        r#"{{"op":"status","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "bad_request"),
        (b"   ".to_vec(), "bad_request"),
        (b"null".to_vec(), "bad_request"),
        (b"42".to_vec(), "bad_request"),
        (b"true".to_vec(), "bad_request"),
        (b"\"status\"".to_vec(), "bad_request"),
        (b"[]".to_vec(), "bad_request"),
        (br#"{"op":null}"#.to_vec(), "bad_request"),
        (br#"{"op":["status"]}"#.to_vec(), "bad_request"),
        (br#"{"op":"status"} trailing"#.to_vec(), "bad_request"),
        (br#"{"op":"status"}{"op":"status"}"#.to_vec(), "bad_request"),
        (br#"{"op":"st\u0000atus"}"#.to_vec(), "unknown_op"),
        (
            br#"{"op":"subscribe","consumer":"\ud800"}"#.to_vec(),
            "bad_request",
        ),
        (b"{\"op\":\"status\"\x00}".to_vec(), "bad_request"),
        (b"\xc3\x28".to_vec(), "bad_request"),
        (deep.into_bytes(), "bad_request"),
        (deep_object.into_bytes(), "bad_request"),
        (br#"{"op":"subscribe","since":1e3}"#.to_vec(), "bad_request"),
        (
            br#"{"op":"ack","consumer":"a","seq":-0.0}"#.to_vec(),
            "bad_request",
        ),
        (br#"{"op":"SUBSCRIBE"}"#.to_vec(), "unknown_op"),
    ];
    for (mut line, code) in cases {
        let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        line.push(b'\n');
        client.send_raw(&line).await;
        let reply = client.next().await;
        assert_eq!(error_code(&reply), code, "{shown}");
        let message = reply["error"]["message"].as_str().expect("a message");
        assert!(!message.is_empty() && message.len() < 300, "{message}");
    }
    // A carriage return before the newline is whitespace, as `nc` from some systems sends.
    client.send_raw(b"{\"op\":\"status\"}\r\n").await;
    assert_eq!(client.next().await["ok"], true);
}

#[tokio::test]
async fn a_request_written_in_pieces_is_answered_once_it_is_whole() {
    let daemon = Server::start().await;
    let mut client = daemon.connect().await;
    for byte in br#"{"op":"status"}"# {
        client.send_raw(&[*byte]).await;
        tokio::task::yield_now().await;
    }
    client.send_raw(b"\n").await;
    assert_eq!(client.next().await["ok"], true);
    // A whole request and the start of the next in one write, the rest in another.
    client.send_raw(b"{\"op\":\"status\"}\n{\"op\":\"sta").await;
    assert_eq!(client.next().await["ok"], true);
    client.send_raw(b"tus\"}\n").await;
    assert_eq!(client.next().await["ok"], true);
}

#[tokio::test]
async fn a_line_cut_off_by_a_disconnect_is_never_executed() {
    let daemon = Server::start_with(|s| s.max_connections = 1, current_uid()).await;
    // Closed at once, as a client that dies closes it: the harness's client would shut down
    // its sending side first, like a client that waits for its last reply.
    let mut client = timeout(WAIT, UnixStream::connect(&daemon.path))
        .await
        .unwrap()
        .unwrap();
    client.write_all(br#"{"op":"resync"}"#).await.unwrap();
    drop(client);
    // Its slot is free once the server has seen the end of that connection.
    let mut next = daemon.connect_served().await;
    assert!(!daemon.queue.is_pending(), "the unfinished resync ran");
    let reply = next.request(json!({"op": "resync"})).await;
    assert_eq!(reply["queued"], true);
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_told_timeout_and_closed_but_a_quiet_subscriber_stays() {
    let first_request = Duration::from_secs(1);
    let mut daemon =
        Server::start_with(|s| s.first_request_timeout = first_request, current_uid()).await;
    let mut subscriber = daemon.connect().await;
    subscriber.subscribe(json!({"op": "subscribe"})).await;
    let mut silent = daemon.connect().await;
    let mut halting = daemon.connect().await;
    halting.send_raw(br#"{"op":"sub"#).await;
    for client in [&mut silent, &mut halting] {
        let reply = client.next().await;
        assert_eq!(error_code(&reply), "timeout");
        client.expect_closed().await;
    }
    // Both were timed out, so the subscriber has been quiet longer than the timeout too.
    daemon.append(&[SyncCompleted]);
    assert_eq!(subscriber.seqs(1).await, vec![1]);
}

#[tokio::test]
async fn idle_clients_do_not_hold_up_others() {
    let mut daemon = Server::start_with(|s| s.max_connections = 64, current_uid()).await;
    let mut idle = Vec::new();
    for n in 0..48 {
        let mut client = daemon.connect().await;
        if n % 2 == 0 {
            client.send_raw(br#"{"op":"subscribe","#).await;
        }
        idle.push(client);
    }
    let mut subscriber = daemon.connect().await;
    subscriber
        .subscribe(json!({"op": "subscribe", "since": 0}))
        .await;
    daemon.append(&[MemberJoined, SyncCompleted]);
    assert_eq!(subscriber.seqs(2).await, vec![1, 2]);
    let mut other = daemon.connect().await;
    assert_eq!(other.request(json!({"op": "status"})).await["ok"], true);
    // The half-sent requests still complete.
    for client in idle.iter_mut().step_by(2) {
        client.send_raw(b"\"since\":1}\n").await;
        let reply = client.next().await;
        assert_eq!(reply["op"], "subscribe", "{reply}");
        assert_eq!(client.seqs(1).await, vec![2]);
    }
}

/// One client of the churn below: connects, misbehaves in one of a few ways, and goes.
async fn connect_and_go(path: &Path, n: usize) {
    let mut stream = timeout(WAIT, UnixStream::connect(path))
        .await
        .expect("connect in time")
        .expect("connect");
    // A refused client (over the cap) may find the connection closed: writes may fail.
    let _ = match n % 5 {
        0 => Ok(()),
        1 => stream.write_all(br#"{"op":"subscr"#).await,
        2 => stream.write_all(b"\x00garbage\n").await,
        3 => stream.write_all(b"{\"op\":\"status\"}\n").await,
        _ => {
            // Subscribes to the whole backlog and leaves in the middle of it.
            let _ = stream
                .write_all(b"{\"op\":\"subscribe\",\"since\":0}\n")
                .await;
            let mut first = [0; 512];
            timeout(WAIT, tokio::io::AsyncReadExt::read(&mut stream, &mut first))
                .await
                .expect("a reply in time")
                .map(|_| ())
        }
    };
}

#[tokio::test]
async fn thousands_of_connects_and_disconnects_leave_the_server_serving_others() {
    let max = 32;
    let mut daemon = Server::start_with(|s| s.max_connections = max, current_uid()).await;
    daemon.append_with(&[MemberUpdated; 200], json!({"padding": "x".repeat(1000)}));
    let mut subscriber = daemon.connect().await;
    subscriber
        .subscribe(json!({"op": "subscribe", "since": 0}))
        .await;
    let path = daemon.path.clone();
    let churn = tokio::spawn(async move {
        for n in 0..2_000 {
            connect_and_go(&path, n).await;
        }
    });
    // Meanwhile events keep coming, and the subscriber gets every one in order.
    assert_eq!(subscriber.seqs(200).await, (1..=200).collect::<Vec<_>>());
    for round in 0..20 {
        daemon.append(&[MemberUpdated; 50]);
        let first = 201 + round * 50;
        assert_eq!(
            subscriber.seqs(50).await,
            (first..first + 50).collect::<Vec<_>>()
        );
    }
    timeout(Duration::from_secs(120), churn)
        .await
        .expect("the churn ends in time")
        .expect("the churn task");
    // Every slot but the subscriber's is free again.
    let mut held = Vec::new();
    for _ in 1..max {
        held.push(daemon.connect_served().await);
    }
    daemon.append(&[SyncCompleted]);
    assert_eq!(subscriber.seqs(1).await, vec![1201]);
}

#[tokio::test]
async fn a_consumer_belongs_to_its_creator_and_a_foreign_uid_cannot_ack_or_follow_it() {
    if !crate::harness::running_as_root() {
        return;
    }
    let mut daemon = Server::start_with(|_| {}, probe_uid() + 1).await;
    daemon.append(&[MemberJoined, MemberUpdated]);
    // Root is an admin; its first ack creates "crm" as uid 0's.
    let mut admin = daemon.connect().await;
    let reply = admin.ack("crm", 1).await;
    assert_eq!(reply["ok"], true, "{reply}");

    let (stream, _) = connect_as_unprivileged(&daemon.path);
    let mut other = Client::new(stream);
    let reply = other.ack("crm", 2).await;
    assert_eq!(error_code(&reply), "forbidden", "{reply}");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("uid:0"));
    let reply = other
        .request(json!({"op": "subscribe", "consumer": "crm"}))
        .await;
    assert_eq!(error_code(&reply), "forbidden", "{reply}");

    // Its own consumers it may create, up to its share; an admin may ack any of them.
    for n in 0..orgsync::store::consumers::MAX_PER_OWNER {
        let reply = other.ack(&format!("mine-{n}"), 1).await;
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let reply = other.ack("one-too-many", 1).await;
    assert_eq!(error_code(&reply), "too_many_consumers", "{reply}");
    let reply = admin.ack("mine-0", 2).await;
    assert_eq!(reply["ok"], true, "{reply}");
}

#[tokio::test]
async fn a_flood_of_idle_connections_from_one_uid_leaves_room_for_root() {
    if !crate::harness::running_as_root() {
        return;
    }
    let daemon = Server::start_with(
        |s| {
            s.max_connections = 16;
            s.max_connections_per_uid = 8;
        },
        probe_uid() + 1,
    )
    .await;
    let flood: Vec<UnixStream> = (0..8)
        .map(|_| connect_as_unprivileged(&daemon.path).0)
        .collect();
    let (stream, uid) = connect_as_unprivileged(&daemon.path);
    let mut ninth = Client::new(stream);
    let reply = ninth.next().await;
    assert_eq!(error_code(&reply), "too_many_connections", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("uid {uid}")),
        "{reply}"
    );
    ninth.expect_closed().await;

    let mut root = daemon.connect().await;
    let reply = root.request(json!({"op": "status"})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    drop(flood);
}

#[tokio::test]
async fn an_unsubscribed_connection_that_idles_after_a_request_is_closed() {
    let daemon = Server::start_with(
        |s| s.first_request_timeout = std::time::Duration::from_millis(300),
        current_uid(),
    )
    .await;
    let mut client = daemon.connect().await;
    let reply = client.request(json!({"op": "status"})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let reply = client.next().await;
    assert_eq!(error_code(&reply), "timeout", "{reply}");
    client.expect_closed().await;
}

#[tokio::test]
async fn link_put_is_forbidden_to_a_peer_that_is_not_an_admin() {
    let (_daemon, mut client) = start_with_an_outsider().await;
    let reply = client
        .request(json!({"op": "link.put", "host_user_id": "h-1", "userid": "zhangsan", "method": "login"}))
        .await;
    assert_eq!(error_code(&reply), "forbidden", "{reply}");
}
