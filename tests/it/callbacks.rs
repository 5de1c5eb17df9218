//! WeCom contact-change callbacks through the real daemon: the simulator sends them encrypted
//! and signed to `[callback]` the way WeCom does, and the changes arrive on the socket within
//! seconds, without a resync; duplicates make one change, a lost callback is repaired by the
//! next full sync, a rename keeps the person and their link, and requests that fail
//! verification are refused.

use orgsync_simulator::{
    envelope_xml, CallbackEncryptor, CallbackFaults, CallbackTarget, Directory, Endpoint, Payload,
    SealedCallback, SimUser,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{
    assert_exits_saying, describe, move_to, self_signed, trusting, types, user, Client, Daemon,
    Env, WAIT,
};

const TOKEN: &str = "QDG6eK";
/// A 43-character EncodingAESKey (what the WeCom console generates).
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

async fn callback_env(directory: Directory) -> Env {
    callback_env_with(directory, "").await
}

/// [`callback_env`] with more `[callback]` lines.
async fn callback_env_with(directory: Directory, callback: &str) -> Env {
    callback_env_wecom(directory, "", callback).await
}

/// [`callback_env_with`] with `wecom` lines too.
async fn callback_env_wecom(directory: Directory, wecom: &str, callback: &str) -> Env {
    let env = Env::with_wecom(
        directory,
        wecom,
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
    format!(
        "http://{}/wecom/callback",
        daemon.listening_addr("callback")
    )
}

/// The sample tenant, a synced daemon with the simulator sending it callbacks, and a
/// subscriber past the first sync.
async fn start(payload: Payload) -> (Env, Daemon, Client) {
    start_with(callback_env(Directory::sample()).await, payload).await
}

/// [`start`] in `env`.
async fn start_with(env: Env, payload: Payload) -> (Env, Daemon, Client) {
    let (daemon, subscriber) = env.start_synced_daemon().await;
    env.sim
        .send_callbacks(Some(CallbackTarget {
            url: callback_url(&daemon),
            token: TOKEN.into(),
            encoding_aes_key: KEY.into(),
            payload,
        }))
        .unwrap();
    (env, daemon, subscriber)
}

/// The simulator's callback faults that `set` turns on, the others off: e.g.
/// `faults(|f| f.reverse = true)`.
fn faults(set: impl FnOnce(&mut CallbackFaults)) -> CallbackFaults {
    let mut faults = CallbackFaults::default();
    set(&mut faults);
    faults
}

/// A new team, 9 测试组 under 2, with its first member, tester: the member's callback needs
/// the department's.
fn add_test_team(directory: &mut Directory) {
    directory
        .departments
        .push(orgsync_simulator::SimDepartment::new(9, "测试组", 2));
    directory.users.push(SimUser::new("tester", "测试员", &[9]));
}

/// Asserts the daemon's callback counters named in `expected`, as `orgsync status` reports
/// them.
async fn assert_callback_counts(env: &Env, expected: &[(&str, u64)]) {
    let status = env.daemon_status().await;
    let callbacks = &status["daemon"]["callbacks"];
    for (counter, count) in expected {
        assert_eq!(callbacks[counter], *count, "{counter}: {status:#}");
    }
}

/// The query WeCom signs a sealed callback with.
fn signed_query(sealed: &SealedCallback) -> String {
    format!(
        "msg_signature={}&timestamp={}&nonce={}",
        sealed.msg_signature, sealed.timestamp, sealed.nonce
    )
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

#[tokio::test]
async fn a_hire_a_move_a_rename_and_a_departure_arrive_without_a_resync() {
    let (env, daemon, mut subscriber) = start(Payload::Full).await;
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

    env.sim.edit(|d| move_to(user(d, "chenjing"), 3, 5));
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

    assert_callback_counts(&env, &[("recorded", 4), ("pending", 0)]).await;
    daemon.stop().await;
}

/// A member the app's visible range names individually, mirrored with `wecom.agent_id`: a
/// callback about them reads them again with `user/get`, which answers with the member (in no
/// department the app sees), and they are updated, never taken for gone.
#[tokio::test]
async fn a_member_named_individually_in_the_visible_range_is_updated_by_a_callback() {
    let mut directory = Directory::sample();
    directory.visible_departments = vec![2];
    directory.visible_users = vec!["ZhaoLei".into()];
    let env = callback_env_wecom(directory, "agent_id = 1000002\n", "").await;
    let (env, daemon, mut subscriber) = start_with(env, Payload::Full).await;
    assert!(env.state().mirror.members.contains_key("zhaolei"));

    env.sim
        .edit(|d| user(d, "ZhaoLei").position = "市场副总裁".into());
    let (events, completed) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.updated"], "{events:?}");
    assert_eq!(events[0]["data"]["userid"], "ZhaoLei");
    assert_eq!(
        events[0]["data"]["changes"],
        json!({"position": {"old": "市场总监", "new": "市场副总裁"}})
    );
    assert_eq!(completed["data"]["trigger"], "callback");
    daemon.stop().await;
}

/// Asserts that the receiver at `url` passes WeCom's URL verification: a GET carrying an
/// echo sealed by `sealer` is answered with the echo in plain text.
async fn assert_echoes(
    client: &reqwest::Client,
    url: &str,
    sealer: &CallbackEncryptor,
    echo: &str,
) {
    let now = chrono::Utc::now().timestamp().to_string();
    let sealed = sealer.seal(echo.as_bytes(), &now, "n1");
    let answer = client
        .get(format!(
            "{url}?{}&echostr={}",
            signed_query(&sealed),
            percent_encoded(&sealed.encrypt)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), echo);
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
    let (env, daemon, mut subscriber) = start(Payload::IdsOnly).await;
    env.sim.callback_faults(faults(|f| f.duplicate = true));
    env.sim
        .edit(|d| user(d, "lina").position = "技术专家".into());
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
    let (env, daemon, mut subscriber) = start(Payload::Full).await;
    // lina's callback is lost; liuyang's arrives.
    env.sim.callback_faults(faults(|f| f.drop_next = 1));
    env.sim.edit(|d| user(d, "lina").position = "lost".into());
    env.sim
        .edit(|d| user(d, "liuyang").position = "delivered".into());
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
    let (env, daemon, _subscriber) = start(Payload::Full).await;
    let url = callback_url(&daemon);
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

    assert_echoes(&client, &url, &ours, "echo-1234").await;

    let sealed = ours.seal(event.as_bytes(), &now, "n2");
    let body = envelope_xml(&corp_id, &sealed.encrypt, "1000002");
    // A wrong signature.
    let forged = signed_query(&sealed).replace(&sealed.msg_signature[..6], "000000");
    assert_eq!(post(forged, body.clone()).await, StatusCode::FORBIDDEN);
    // A body cut short.
    assert_eq!(
        post(signed_query(&sealed), body[..body.len() / 2].to_owned()).await,
        StatusCode::BAD_REQUEST
    );
    // Another corp's callback, signed with the right token.
    let theirs = CallbackEncryptor::new(TOKEN, KEY, "wwanothercorp").unwrap();
    let sealed_other = theirs.seal(event.as_bytes(), &now, "n3");
    let other_body = envelope_xml("wwanothercorp", &sealed_other.encrypt, "1000002");
    assert_eq!(
        post(signed_query(&sealed_other), other_body).await,
        StatusCode::FORBIDDEN
    );
    // A timestamp that is no number.
    let query = signed_query(&sealed).replace(&format!("timestamp={now}"), "timestamp=soon");
    assert_eq!(post(query, body.clone()).await, StatusCode::BAD_REQUEST);

    assert_callback_counts(&env, &[("refused", 4), ("recorded", 0), ("pending", 0)]).await;
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
    // What a standalone simulator's driver sends to rename a member; the answer's status.
    let rename = |old: &str, new: &str| {
        let request = client.post(control("rename"));
        let sent = request.json(&json!({"old": old, "new": new})).send();
        async move { sent.await.unwrap().status() }
    };
    assert_eq!(rename("lina", "li.na").await, StatusCode::NO_CONTENT);
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), ["orgsync.member.renamed"], "{events:?}");
    assert_eq!(events[0]["data"]["previous_userid"], "lina");
    // The references to lina moved with her: a full sync finds nothing to change.
    env.run(&["resync", "--wait"]).await;
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(types(&events), Vec::<&str>::new(), "{events:?}");
    assert_eq!(rename("nobody", "x").await, StatusCode::NOT_FOUND);
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
    let ours = CallbackEncryptor::new(TOKEN, KEY, &env.sim.directory().corp_id).unwrap();
    assert_echoes(&trusting(env.dir.path()), &url, &ours, "4711").await;
    daemon.stop().await;

    // Without TLS, only a loopback address.
    env.write_config(
        "",
        "[callback]\nlisten = \"0.0.0.0:8788\"\ntoken_file = \"callback.token\"\n\
         encoding_aes_key_file = \"callback.key\"\n",
    );
    let output = env.run(&["check-config"]).await;
    assert_exits_saying(&output, 2, "callback.listen");
}

#[tokio::test]
async fn department_changes_out_of_order_arrive_with_their_members() {
    let (env, daemon, mut subscriber) = start(Payload::Full).await;
    env.sim.callback_faults(faults(|f| f.reverse = true));
    // One change: a new team with its first member, and a renamed department. Reversed, the
    // member's callback comes before its department's.
    env.sim.edit(|d| {
        add_test_team(d);
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
    let (env, daemon, mut subscriber) = start(Payload::Full).await;
    // The department's callback comes first and is lost; the member's arrives.
    env.sim.callback_faults(faults(|f| f.drop_next = 1));
    env.sim.edit(add_test_team);
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

#[tokio::test]
async fn a_reload_names_the_socket_and_callback_settings_that_wait_for_a_restart() {
    let env = callback_env(Directory::sample()).await;
    let daemon = env.start_daemon().await;
    // `admin_uids` lands in the generated `[socket]` section, which the extra lines follow.
    env.write_config(
        "",
        "admin_uids = [4242]\n\n[callback]\nlisten = \"127.0.0.1:0\"\n\
         token_file = \"callback.token\"\nencoding_aes_key_file = \"callback.key\"\n\
         path = \"/wecom/elsewhere\"\n",
    );
    daemon.signal(libc::SIGHUP);
    let needed = env
        .status_when("the settings waiting for a restart", |status| {
            let needed = status["daemon"]["restart_needed"].as_array()?;
            (needed.len() == 2).then(|| needed.clone())
        })
        .await;
    assert_eq!(
        needed,
        [
            "socket.group, admin_uids, admin_gids, max_connections, max_connections_per_uid or \
             allow_insecure_directory changed in the file; the socket keeps the ones in use \
             until a restart",
            "the [callback] settings changed in the file; the callback receiver keeps the ones \
             in use (and its token and key) until a restart",
        ]
    );
    let (_, text, _) = env.status().await;
    assert!(text.contains("RESTART NEEDED"), "{text}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_department_added_by_a_sync_during_a_callback_run_is_not_deleted_by_it() {
    let (env, daemon, mut subscriber) = start(Payload::Full).await;
    // The callback run reads the member it names with user/get; that call waits at the door.
    env.sim.hold(Endpoint::UserGet);
    env.sim.edit(|d| user(d, "lina").position = "held".into());
    env.sim.wait_for_calls(Endpoint::UserGet, 1).await;
    // Meanwhile `orgsync sync` beside the daemon adds a department that sent no callback.
    env.sim.send_callbacks(None).unwrap();
    env.sim.edit(|d| {
        d.departments
            .push(orgsync_simulator::SimDepartment::new(9, "测试组", 2));
    });
    let output = env.run(&["sync"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let (events, _) = next_run(&mut subscriber).await;
    assert_eq!(
        types(&events),
        ["orgsync.department.created", "orgsync.member.updated"]
    );

    env.sim.release(Endpoint::UserGet);
    // The callback run finds the member as the sync left it, and the department stays.
    let (events, completed) = next_run(&mut subscriber).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(completed["data"]["trigger"], "callback");
    let departments = env.run(&["departments"]).await;
    assert!(
        String::from_utf8_lossy(&departments.stdout).contains("测试组"),
        "{}",
        describe(&departments)
    );
    daemon.stop().await;
}

/// The fact sheet's vectors, byte for byte: the official sample's URL verification (A1) and
/// the change_contact round trip (E), both signed years ago. A timestamp far from the server's
/// clock is logged, not refused; but such a callback, once covered, is not taken again.
#[tokio::test]
async fn the_fact_sheets_vectors_verify_and_deliver_whatever_their_timestamps() {
    let corp_id = "wx5823bf96d3bd56c7";
    let env = callback_env(Directory::new(corp_id, "s3cretOfTheVectorCorp")).await;
    let daemon = env.start_daemon().await;
    let url = callback_url(&daemon);
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();

    let answer = client
        .get(format!(
            "{url}?msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589\
             &nonce=263014780&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zN\
             dtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "1616140317555161061");

    let encrypt = "sKqRbbiSUnDhFHOvPjtUMYdqMO6GllkxSGHm+RQAY4DPiRYQcLTWylF5SrFmX/489dn+IA2OpdboVzGe6\
        xum/GH+n1FY3i9LecDMl12jag8VdCZp8lmkGJZl+gGT4XKVF+lzkAhYsTaxvI8lF/npCjasI5RRwqb9lY55J+d+2oj2\
        DRpwkHvipZBHmnHKieL4P7MSR3xIfPE3c9NaMsVyo/QIyU4P0xRiGSaqq/YHc4afTzdOKQjxvzN4g00W23yL7sBdeMdP\
        JMsn5/SWk1jLe98stvSo3/f2KtTfwf3JVG+p690+Q1OWvHL9btu8iBK1g9iNXUHC+JXCSY3LId4+ol/Qxc11nge5uYds\
        TRtgMZqK4JzUuwVsqTe/R0C1WBCfHRstGrpgsdBtqFatovd2EoyeODgiGFYqrB468wNXjxySpDonSuZ5KmG+5KFeMmgE\
        2DfQfeeD92kMJRN2fsU7sPWpD34pkakrQacmOOEoybu2JZXzYM0ZfA8P8tSN3FgLGlFLmUYXDVlleJ1SGPjBscDaSQ/n\
        syQCiC25AcZ7JM/izW7+E1hTzx4vw6vzHFnkBkenig0jaE9Qz/X4stm5FeWYfu1E1maInGi7YiFb3hc4M6KKTUOf8toc\
        XeBSKABX";
    let send_e = || async {
        let answer = client
            .post(format!(
                "{url}?msg_signature=22eb179b930f844e24e8d0c4cbb97714c9e5f316\
                 &timestamp=1700000000&nonce=1234567890"
            ))
            .body(envelope_xml(corp_id, encrypt, ""))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    };
    send_e().await;
    assert_callback_counts(&env, &[("refused", 0), ("recorded", 1)]).await;

    // Once a run has covered it, the same callback sent again, signed long ago, is a replay:
    // a duplicate that starts no run, however often it comes.
    env.status_when("the callback run", |status| {
        (status["daemon"]["callbacks"]["pending"] == 0).then_some(())
    })
    .await;
    send_e().await;
    assert_callback_counts(&env, &[("recorded", 1), ("duplicates", 1), ("pending", 0)]).await;

    let log = daemon.stop().await;
    assert!(
        log.contains("a verified callback's timestamp is far from this server's clock"),
        "{log}"
    );
}
