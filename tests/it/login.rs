//! Password-free login: the URLs an admin pastes into the WeCom console, parsed back field by
//! field.

use std::collections::HashMap;

use orgsync_simulator::{Directory, SimUser};
use reqwest::Url;

use crate::harness::{assert_fails, describe, success_stdout, Daemon, Env};

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn login_url_prints_both_urls_with_every_field_encoded() {
    let env = Env::with_wecom(Directory::sample(), "agent_id = 1000002\n", "").await;
    let redirect = "https://bi.example.com:8443/sso/wecom?next=/home&lang=zh CN";
    let out = env
        .run(&["login-url", "--redirect", redirect, "--state", "abc-1"])
        .await;
    let stdout = success_stdout(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let corp = env.sim.directory().corp_id;

    let in_app = Url::parse(lines[0]).unwrap();
    assert_eq!(in_app.host_str(), Some("open.weixin.qq.com"));
    assert_eq!(in_app.path(), "/connect/oauth2/authorize");
    assert_eq!(in_app.fragment(), Some("wechat_redirect"));
    let fields = query(&in_app);
    assert_eq!(fields["appid"], corp);
    assert_eq!(fields["redirect_uri"], redirect);
    assert_eq!(fields["response_type"], "code");
    assert_eq!(fields["scope"], "snsapi_base");
    assert_eq!(fields["state"], "abc-1");
    assert_eq!(fields["agentid"], "1000002");
    assert!(!lines[0].contains(' '), "encoded: {}", lines[0]);

    let web = Url::parse(lines[1]).unwrap();
    assert_eq!(web.host_str(), Some("login.work.weixin.qq.com"));
    assert_eq!(web.path(), "/wwlogin/sso/login");
    let fields = query(&web);
    assert_eq!(fields["login_type"], "CorpApp");
    assert_eq!(fields["appid"], corp);
    assert_eq!(fields["agentid"], "1000002");
    assert_eq!(fields["redirect_uri"], redirect);
    assert_eq!(fields["state"], "abc-1");

    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(notes.contains("bi.example.com:8443"), "{notes}");
}

#[tokio::test]
async fn login_url_checks_what_it_can() {
    let env = Env::new(Directory::sample()).await;
    let out = env
        .run(&["login-url", "--redirect", "https://bi.example.com/sso"])
        .await;
    assert_fails(&out, 2, "wecom.agent_id");

    let env = Env::with_wecom(Directory::sample(), "agent_id = 1000002\n", "").await;
    for bad in ["http://bi.example.com/sso", "not a url"] {
        let out = env.run(&["login-url", "--redirect", bad]).await;
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", describe(&out));
    }
    let out = env
        .run(&[
            "login-url",
            "--redirect",
            "https://bi.example.com/sso",
            "--state",
            "a b",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// The sample tenant synced, one host user, h-1, with the first member's name (so that it is
/// linked to that member by name), and the daemon running; the members, in order.
async fn start_with_host_user() -> (Env, Daemon, Vec<SimUser>) {
    let env = Env::synced_sample().await;
    let users = env.sim.directory().users;
    let csv = env.path("users.csv");
    std::fs::write(&csv, format!("id,name\nh-1,{}\n", users[0].name)).unwrap();
    let out = env
        .run(&["host-users", "import", csv.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", describe(&out));
    let daemon = env.start_daemon().await;
    (env, daemon, users)
}

#[tokio::test]
async fn a_login_link_replaces_an_automatic_one_and_survives_rematching() {
    let (env, _daemon, users) = start_with_host_user().await;
    let second = &users[1];
    let head = env.state().head();
    let mut events = env
        .subscribe(serde_json::json!({"op": "subscribe", "since": head}))
        .await;

    // The host application saw h-1 sign in as the second member: that link wins.
    let mut admin = crate::harness::Client::connect(&env.socket_path()).await;
    let reply = admin
        .request(serde_json::json!({"op": "link.put", "host_user_id": "h-1",
                                     "userid": second.userid, "method": "login"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let removed = events.next().await;
    assert_eq!(removed["type"], "orgsync.link.removed", "{removed}");
    assert_eq!(removed["data"]["reason"], "replaced_by_login");
    let created = events.next().await;
    assert_eq!(created["data"]["method"], "login", "{created}");
    assert_eq!(created["data"]["userid"], second.userid.as_str());

    // A sync re-matches everyone: the login link stays.
    let out = env.run(&["sync"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let reply = admin
        .request(serde_json::json!({"op": "link.get", "host_user_id": "h-1"}))
        .await;
    assert_eq!(reply["link"]["method"], "login", "{reply}");
    assert_eq!(reply["link"]["userid"], second.userid.as_str());

    let reply = admin
        .request(serde_json::json!({"op": "link.put", "host_user_id": "h-9",
                                     "userid": second.userid, "method": "login"}))
        .await;
    assert_eq!(crate::harness::error_code(&reply), "not_found", "{reply}");
}

#[tokio::test]
async fn login_resolve_turns_a_code_into_the_member_and_its_host_user() {
    let (env, _daemon, users) = start_with_host_user().await;
    let (linked, unlinked) = (&users[0], &users[1]);
    let mut client = crate::harness::Client::connect(&env.socket_path()).await;
    let resolve = |code: String| serde_json::json!({"op": "login.resolve", "code": code});

    // A member whose host user is linked.
    let code = env.sim.login_code(&linked.userid);
    let reply = client.request(resolve(code.clone())).await;
    assert_eq!(reply["userid"], linked.userid.as_str(), "{reply}");
    assert_eq!(reply["host_user_id"], "h-1");
    assert_eq!(reply["method"], "name");
    assert_eq!(reply["member"]["name"], linked.name.as_str());
    assert_eq!(reply["fetched"], false);

    // The same code again: codes work once.
    let reply = client.request(resolve(code)).await;
    assert_eq!(
        crate::harness::error_code(&reply),
        "invalid_code",
        "{reply}"
    );

    // A member without a host user.
    let reply = client
        .request(resolve(env.sim.login_code(&unlinked.userid)))
        .await;
    assert_eq!(reply["userid"], unlinked.userid.as_str(), "{reply}");
    assert!(reply["host_user_id"].is_null());

    // Someone who is not a member.
    let reply = client.request(resolve(env.sim.outsider_login_code())).await;
    assert_eq!(
        crate::harness::error_code(&reply),
        "not_a_member",
        "{reply}"
    );

    // A code older than five minutes.
    let code = env.sim.login_code(&unlinked.userid);
    env.sim.expire_login_codes();
    let reply = client.request(resolve(code)).await;
    assert_eq!(
        crate::harness::error_code(&reply),
        "invalid_code",
        "{reply}"
    );

    // A member who joined after the last sync is fetched from WeCom on the spot.
    env.sim
        .edit(|d| d.users.push(SimUser::new("newhire", "新同事", &[3])));
    let reply = client.request(resolve(env.sim.login_code("newhire"))).await;
    assert_eq!(reply["userid"], "newhire", "{reply}");
    assert_eq!(reply["fetched"], true);
    assert_eq!(reply["member"]["name"], "新同事");

    // One whom WeCom will not show the app (user/get: 50002, outside its permission scope).
    env.sim
        .edit(|d| d.users.push(SimUser::new("hidden", "隐藏", &[3])));
    env.sim
        .inject(orgsync_simulator::Fault::Errcode(50002).on(orgsync_simulator::Endpoint::UserGet));
    let reply = client.request(resolve(env.sim.login_code("hidden"))).await;
    assert_eq!(
        crate::harness::error_code(&reply),
        "not_a_member",
        "{reply}"
    );

    // No code appears in the daemon's log.
    drop(client);
}

#[tokio::test]
async fn login_resolve_says_unavailable_when_wecom_cannot_be_asked() {
    let env = Env::synced_sample().await;
    let _daemon = env.start_daemon().await;
    let code = env.sim.login_code(&env.sim.directory().users[0].userid);
    env.sim.inject(
        orgsync_simulator::Fault::HttpStatus(503).on(orgsync_simulator::Endpoint::AuthGetUserInfo),
    );
    let mut client = crate::harness::Client::connect(&env.socket_path()).await;
    let reply = client
        .request(serde_json::json!({"op": "login.resolve", "code": code}))
        .await;
    assert_eq!(crate::harness::error_code(&reply), "unavailable", "{reply}");
    assert!(
        !reply["error"]["message"].as_str().unwrap().contains(&code),
        "the code leaked: {reply}"
    );
}

/// The fact sheet's example of a successful `auth/getuserinfo` carries no errcode, though WeCom
/// says every answer does: both forms resolve; a body with neither errcode nor identity does
/// not.
#[tokio::test]
async fn login_resolve_takes_a_getuserinfo_answer_without_an_errcode() {
    use orgsync_simulator::{Endpoint, Fault};
    let env = Env::synced_sample().await;
    let _daemon = env.start_daemon().await;
    let userid = env.sim.directory().users[0].userid.clone();
    let mut client = crate::harness::Client::connect(&env.socket_path()).await;
    let answer = |body: String| Fault::Raw { status: 200, body }.on(Endpoint::AuthGetUserInfo);
    let resolve = serde_json::json!({"op": "login.resolve", "code": "CODE"});

    env.sim.inject(answer(
        serde_json::json!({"userid": userid, "user_ticket": "TICKET"}).to_string(),
    ));
    let reply = client.request(resolve.clone()).await;
    assert_eq!(reply["userid"], userid.as_str(), "{reply}");

    env.sim.inject(answer("{}".to_owned()));
    let reply = client.request(resolve).await;
    assert_eq!(crate::harness::error_code(&reply), "unavailable", "{reply}");
}

/// A member the app sees only because its visible range names them (their department, 5, is
/// outside it) signs in as the pull would mirror them: with `agent_id` under the default root,
/// yes; without `agent_id`, or under `root_department = 2`, which mirrors only members of that
/// subtree, they are not a member.
#[tokio::test]
async fn a_member_named_in_the_visible_range_signs_in_as_the_pull_would_mirror_them() {
    let mut directory = Directory::sample();
    directory.visible_departments = vec![2];
    let named = directory
        .users
        .iter()
        .find(|u| u.department == [5])
        .expect("a member of department 5")
        .userid
        .clone();
    directory.visible_users = vec![named.clone()];
    for (wecom, expected) in [
        ("agent_id = 1000002\n", Ok(())),
        ("", Err("not_a_member")),
        (
            "agent_id = 1000002\nroot_department = 2\n",
            Err("not_a_member"),
        ),
    ] {
        let env = Env::with_wecom(directory.clone(), wecom, "").await;
        env.sync().await;
        let _daemon = env.start_daemon().await;
        let mut client = crate::harness::Client::connect(&env.socket_path()).await;
        let reply = client
            .request(serde_json::json!({"op": "login.resolve", "code": env.sim.login_code(&named)}))
            .await;
        match expected {
            Ok(()) => assert_eq!(reply["userid"], named.as_str(), "{wecom}: {reply}"),
            Err(code) => assert_eq!(crate::harness::error_code(&reply), code, "{wecom}: {reply}"),
        }
    }
}
