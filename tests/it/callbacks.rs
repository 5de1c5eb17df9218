//! WeCom contact-change callbacks through the real daemon: the simulator sends them encrypted
//! and signed to `[callback]` the way WeCom does, and the changes arrive on the socket within
//! seconds, without a resync; duplicates make one change, a lost callback is repaired by the
//! next full sync, a rename keeps the person and their link, and requests that fail
//! verification are refused.

use orgsync_simulator::{
    envelope_xml, CallbackEncryptor, CallbackFaults, CallbackTarget, Directory, Payload, SimUser,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{describe, self_signed, trusting, Client, Daemon, Env, WAIT};

const TOKEN: &str = "QDG6eK";
/// A 43-character EncodingAESKey (what the WeCom console generates).
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

async fn callback_env(directory: Directory) -> Env {
    callback_env_with(directory, "").await
}

/// [`callback_env`] with more `[callback]` lines.
async fn callback_env_with(directory: Directory, callback: &str) -> Env {
    let env = Env::with_config(
        directory,
        &format!(
            "[callback]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"callback.token\"\n\
             encoding_aes_key_file = \"callback.key\"\n{callback}"
        ),
    )
    .await;
    std::fs::write(env.path("callback.token"), TOKEN).unwrap();
    std::fs::write(env.path("callback.key"), format!("{KEY}\n")).unwrap();
    env
}

/// The URL the daemon logged as `callback listening addr=...`.
fn callback_url(daemon: &Daemon) -> String {
    let log = daemon.output();
    let line = log
        .lines()
        .find(|line| line.contains("callback listening"))
        .unwrap_or_else(|| panic!("no `callback listening` line in the log:\n{log}"));
    let start = line.find("addr=").expect("addr=") + "addr=".len();
    let addr = line[start..]
        .split(|c: char| c.is_whitespace() || c == '\u{1b}')
        .next()
        .unwrap();
    format!("http://{addr}/wecom/callback")
}

/// A synced daemon with the simulator sending it callbacks, and a subscriber past the first
/// sync.
async fn start(env: &Env, payload: Payload) -> (Daemon, Client, String) {
    let (daemon, subscriber) = env.start_synced_daemon().await;
    let url = callback_url(&daemon);
    env.sim
        .send_callbacks(Some(CallbackTarget {
            url: url.clone(),
            token: TOKEN.into(),
            encoding_aes_key: KEY.into(),
            payload,
        }))
        .unwrap();
    (daemon, subscriber, url)
}

/// The member and link events of the next run, and its `sync.completed`.
async fn next_run(subscriber: &mut Client) -> (Vec<Value>, Value) {
    let mut events = Vec::new();
    loop {
        let event = subscriber.next().await;
        match event["type"].as_str() {
            Some("orgsync.sync.completed") => return (events, event),
            Some(_) => events.push(event),
            None => panic!("not an event: {event}"),
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

#[tokio::test]
async fn a_hire_a_move_a_rename_and_a_departure_arrive_without_a_resync() {
    let env = callback_env(Directory::sample()).await;
    let (daemon, mut subscriber, _) = start(&env, Payload::Full).await;
    // wangfang is linked to host user 42 by her unique name.
    let put = orgsync::socket::request(
        &env.socket_path(),
        &json!({"op": "host_users.put", "users": [{"id": "42", "name": "王芳"}]}),
    )
    .await
    .unwrap();
    assert_eq!(put["links_created"], 1);
    let link = next_link(&mut subscriber).await;
    assert_eq!(link["data"]["userid"], "wangfang");

    env.sim
        .edit(|d| d.users.push(SimUser::new("newhire", "新同事", &[3])));
    let (events, completed) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.joined"]);
    assert_eq!(events[0]["data"]["userid"], "newhire");
    assert_eq!(completed["data"]["trigger"], "callback");

    env.sim.edit(|d| {
        let user = d.users.iter_mut().find(|u| u.userid == "chenjing").unwrap();
        user.department = vec![3];
        user.order = vec![5];
        user.is_leader_in_dept = vec![0];
        user.main_department = 3;
    });
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.updated"]);
    assert!(
        events[0]["data"]["changes"]["departments"].is_object(),
        "{}",
        events[0]
    );

    assert!(env.sim.rename_user("wangfang", "fang.wang"));
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.renamed"], "{events:?}");
    let data = &events[0]["data"];
    assert_eq!(data["userid"], "fang.wang");
    assert_eq!(data["previous_userid"], "wangfang");
    assert_eq!(events[0]["subject"], "member/fang.wang");
    let link = orgsync::socket::request(
        &env.socket_path(),
        &json!({"op": "link.get", "host_user_id": "42"}),
    )
    .await
    .unwrap();
    assert_eq!(link["link"]["userid"], "fang.wang", "{link}");

    env.sim.edit(|d| d.users.retain(|u| u.userid != "newhire"));
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.left"]);
    assert_eq!(events[0]["data"]["reason"], "deleted");

    let status = env.daemon_status().await;
    let callbacks = &status["daemon"]["callbacks"];
    assert_eq!(callbacks["recorded"], 4, "{status:#}");
    assert_eq!(callbacks["pending"], 0, "{status:#}");
    daemon.stop().await;
}

/// Base64 as WeCom puts it in a query: `+`, `/` and `=` percent-encoded.
fn percent_encoded(base64: &str) -> String {
    base64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// The next `orgsync.link.*` event.
async fn next_link(subscriber: &mut Client) -> Value {
    loop {
        let event = subscriber.next().await;
        if event["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("orgsync.link."))
        {
            return event;
        }
    }
}

#[tokio::test]
async fn duplicated_id_only_callbacks_make_one_change() {
    let env = callback_env(Directory::sample()).await;
    let (daemon, mut subscriber, _) = start(&env, Payload::IdsOnly).await;
    env.sim.callback_faults(CallbackFaults {
        duplicate: true,
        ..CallbackFaults::default()
    });
    env.sim.edit(|d| {
        let user = d.users.iter_mut().find(|u| u.userid == "lina").unwrap();
        user.position = "技术专家".into();
    });
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.updated"]);
    assert_eq!(events[0]["data"]["changes"]["position"]["new"], "技术专家");
    // Both copies were answered; the second was a duplicate.
    let status = env
        .status_when("the duplicate", |status| {
            let callbacks = &status["daemon"]["callbacks"];
            (callbacks["duplicates"] == 1).then(|| callbacks.clone())
        })
        .await;
    assert_eq!(status["recorded"], 1);
    drop(subscriber);
    daemon.stop().await;
}

#[tokio::test]
async fn a_lost_callback_is_repaired_by_the_next_full_sync_and_nothing_comes_twice() {
    let env = callback_env(Directory::sample()).await;
    let (daemon, mut subscriber, _) = start(&env, Payload::Full).await;
    env.sim.callback_faults(CallbackFaults {
        drop_next: 1,
        ..CallbackFaults::default()
    });
    env.sim.edit(|d| {
        let user = d.users.iter_mut().find(|u| u.userid == "lina").unwrap();
        user.position = "lost".into();
    });
    env.sim.edit(|d| {
        let user = d.users.iter_mut().find(|u| u.userid == "liuyang").unwrap();
        user.position = "delivered".into();
    });
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.updated"]);
    assert_eq!(events[0]["data"]["userid"], "liuyang");

    let output = env.run(&["resync", "--wait"]).await;
    assert!(output.status.success());
    let (events, completed) = next_run(&mut subscriber).await;
    assert_eq!(completed["data"]["trigger"], "socket");
    assert_eq!(types(&events), ["orgsync.member.updated"], "{events:?}");
    assert_eq!(events[0]["data"]["userid"], "lina");
    assert_eq!(
        env.sim
            .callbacks_sent()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    daemon.stop().await;
}

#[tokio::test]
async fn requests_that_fail_verification_are_refused_and_change_nothing() {
    let env = callback_env(Directory::sample()).await;
    let (daemon, _subscriber, url) = start(&env, Payload::Full).await;
    let corp_id = env.sim.directory().corp_id;
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let now = chrono::Utc::now().timestamp().to_string();
    let event = "<xml><ToUserName><![CDATA[x]]></ToUserName><MsgType><![CDATA[event]]></MsgType>\
                 <Event><![CDATA[change_contact]]></Event><ChangeType>delete_user</ChangeType>\
                 <UserID><![CDATA[lina]]></UserID></xml>";
    let ours = CallbackEncryptor::new(TOKEN, KEY, &corp_id).unwrap();
    let post = |query: String, body: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(format!("{url}?{query}"))
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let query = |sealed: &orgsync_simulator::SealedCallback| {
        format!(
            "msg_signature={}&timestamp={}&nonce={}",
            sealed.msg_signature, sealed.timestamp, sealed.nonce
        )
    };

    // URL verification answers the echo.
    let echo = ours.seal(b"echo-1234", &now, "n1");
    let answer = client
        .get(format!(
            "{url}?{}&echostr={}",
            query(&echo),
            percent_encoded(&echo.encrypt)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "echo-1234");

    let sealed = ours.seal(event.as_bytes(), &now, "n2");
    let body = envelope_xml(&corp_id, &sealed.encrypt, "1000002");
    // A wrong signature.
    let forged = query(&sealed).replace(&sealed.msg_signature[..6], "000000");
    assert_eq!(post(forged, body.clone()).await, StatusCode::FORBIDDEN);
    // A body cut short.
    assert_eq!(
        post(query(&sealed), body[..body.len() / 2].to_owned()).await,
        StatusCode::BAD_REQUEST
    );
    // Another corp's callback, signed with the right token.
    let theirs = CallbackEncryptor::new(TOKEN, KEY, "wwanothercorp").unwrap();
    let sealed_other = theirs.seal(event.as_bytes(), &now, "n3");
    let other_body = envelope_xml("wwanothercorp", &sealed_other.encrypt, "1000002");
    assert_eq!(
        post(query(&sealed_other), other_body).await,
        StatusCode::FORBIDDEN
    );
    // A replay of an old one.
    let old = ours.seal(event.as_bytes(), "1600000000", "n4");
    let old_body = envelope_xml(&corp_id, &old.encrypt, "1000002");
    assert_eq!(post(query(&old), old_body).await, StatusCode::FORBIDDEN);

    let status = env.daemon_status().await;
    let callbacks = &status["daemon"]["callbacks"];
    assert_eq!(callbacks["refused"], 4, "{status:#}");
    assert_eq!(callbacks["recorded"], 0, "{status:#}");
    assert_eq!(callbacks["pending"], 0, "{status:#}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_standalone_simulator_sends_callbacks_when_told_over_its_control_api() {
    let env = callback_env(Directory::sample()).await;
    let (daemon, mut subscriber) = env.start_synced_daemon().await;
    let url = callback_url(&daemon);
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let control = |path: &str| format!("{}/_sim/{path}", env.sim.api_base());
    let put = client
        .put(control("callback"))
        .json(&json!({"url": url, "token": TOKEN, "encoding_aes_key": KEY, "payload": "ids_only"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let renamed = client
        .post(control("rename"))
        .json(&json!({"old": "lina", "new": "li.na"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::NO_CONTENT);
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.renamed"], "{events:?}");
    assert_eq!(events[0]["data"]["previous_userid"], "lina");
    // The references to lina moved with her: a full sync finds nothing to change.
    env.run(&["resync", "--wait"]).await;
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), Vec::<&str>::new(), "{events:?}");
    let missing = client
        .post(control("rename"))
        .json(&json!({"old": "nobody", "new": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    daemon.stop().await;
}

#[tokio::test]
async fn the_receiver_serves_https_itself_when_given_a_certificate() {
    let env = callback_env_with(
        Directory::sample(),
        "tls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n",
    )
    .await;
    self_signed(env.dir.path());
    let (daemon, _subscriber) = env.start_synced_daemon().await;
    let url = callback_url(&daemon).replace("http://", "https://");
    let corp_id = env.sim.directory().corp_id;
    let now = chrono::Utc::now().timestamp().to_string();
    let echo = CallbackEncryptor::new(TOKEN, KEY, &corp_id)
        .unwrap()
        .seal(b"4711", &now, "n1");
    let answer = trusting(env.dir.path())
        .get(format!(
            "{url}?msg_signature={}&timestamp={}&nonce={}&echostr={}",
            echo.msg_signature,
            echo.timestamp,
            echo.nonce,
            percent_encoded(&echo.encrypt)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "4711");
    daemon.stop().await;

    // Without TLS, only a loopback address.
    env.write_config(
        "",
        "[callback]\nlisten = \"0.0.0.0:8788\"\ntoken_file = \"callback.token\"\n\
         encoding_aes_key_file = \"callback.key\"\n",
    );
    let output = env.run(&["check-config"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("callback.listen"),
        "{}",
        describe(&output)
    );
}

#[tokio::test]
async fn department_changes_out_of_order_arrive_with_their_members() {
    let env = callback_env(Directory::sample()).await;
    let (daemon, mut subscriber, _) = start(&env, Payload::Full).await;
    env.sim.callback_faults(CallbackFaults {
        reverse: true,
        ..CallbackFaults::default()
    });
    // One change: a new team with its first member, and a renamed department. Reversed, the
    // member's callback comes before its department's.
    env.sim.edit(|d| {
        d.departments
            .push(orgsync_simulator::SimDepartment::new(9, "测试组", 2));
        d.users.push(SimUser::new("tester", "测试员", &[9]));
        let hr = d.departments.iter_mut().find(|dep| dep.id == 6).unwrap();
        hr.name = "人力资源部".into();
    });
    let (events, completed) = next_run(&mut subscriber).await;
    assert_eq!(completed["data"]["trigger"], "callback");
    assert_eq!(
        types(&events),
        [
            "orgsync.department.created",
            "orgsync.department.updated",
            "orgsync.member.joined"
        ],
        "{events:?}"
    );
    assert_eq!(events[2]["data"]["member"]["departments"][0]["id"], 9);
    daemon.stop().await;
}

#[tokio::test]
async fn a_member_in_a_department_whose_callback_was_lost_is_not_dropped() {
    let env = callback_env(Directory::sample()).await;
    let (daemon, mut subscriber, _) = start(&env, Payload::Full).await;
    // The department's callback comes first and is lost; the member's arrives.
    env.sim.callback_faults(CallbackFaults {
        drop_next: 1,
        ..CallbackFaults::default()
    });
    env.sim.edit(|d| {
        d.departments
            .push(orgsync_simulator::SimDepartment::new(9, "测试组", 2));
        d.users.push(SimUser::new("tester", "测试员", &[9]));
    });
    let (events, completed) = next_run(&mut subscriber).await;
    assert_eq!(completed["data"]["trigger"], "callback");
    assert_eq!(
        types(&events),
        ["orgsync.department.created", "orgsync.member.joined"],
        "{events:?}"
    );
    assert_eq!(events[1]["data"]["member"]["departments"][0]["id"], 9);
    daemon.stop().await;
}
