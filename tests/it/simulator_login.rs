//! The simulator's side of password-free login: `auth/getuserinfo` and the login codes a test
//! mints, in process and over the `/_sim/` control API; the userid lookups by mobile and email
//! and their daily block.

use orgsync_simulator::{Directory, Endpoint, Fault};
use serde_json::Value;

use crate::harness::paths::{BY_EMAIL, GETUSERID, GETUSERINFO};
use crate::harness::{assert_wecom_error, errcode, sample_with, SimClient};

async fn exchange(h: &SimClient, token: &str, code: &str) -> Value {
    h.call(GETUSERINFO, token, &[("code", code)]).await
}

#[tokio::test]
async fn a_member_code_answers_the_userid_once() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let code = h.sim.login_code("zhaolei");
    assert!(code.len() <= 512);

    let answer = exchange(&h, &token, &code).await;
    assert_eq!(
        answer,
        serde_json::json!({"errcode": 0, "errmsg": "ok", "userid": "ZhaoLei"})
    );
    let again = exchange(&h, &token, &code).await;
    assert_wecom_error(&again, 40029, "invalid code");
    assert_eq!(h.sim.calls().get(Endpoint::AuthGetUserInfo), 2);
}

#[tokio::test]
async fn an_outsider_code_answers_openid_and_external_userid() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let answer = exchange(&h, &token, &h.sim.outsider_login_code()).await;
    assert_eq!(errcode(&answer), 0, "{answer}");
    assert!(answer.get("userid").is_none(), "{answer}");
    let openid = answer["openid"].as_str().unwrap();
    let external = answer["external_userid"].as_str().unwrap();
    assert!(!openid.is_empty() && !external.is_empty());

    let other = exchange(&h, &token, &h.sim.outsider_login_code()).await;
    assert_ne!(other["openid"], answer["openid"]);
}

#[tokio::test]
async fn unknown_expired_and_missing_codes_are_refused() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let fresh = h.sim.login_code("lina");
    assert_eq!(errcode(&exchange(&h, &token, "not-a-code").await), 40029);
    assert_eq!(
        errcode(&exchange(&h, &token, &"c".repeat(600)).await),
        40029
    );

    let stale = h.sim.login_code("lina");
    h.sim.expire_login_codes();
    assert_eq!(errcode(&exchange(&h, &token, &stale).await), 40029);
    assert_eq!(errcode(&exchange(&h, &token, &fresh).await), 40029);
    // Codes issued after the expiry are not affected.
    let later = h.sim.login_code("lina");
    assert_eq!(exchange(&h, &token, &later).await["userid"], "lina");

    let missing = h.call(GETUSERINFO, &token, &[]).await;
    assert_eq!(errcode(&missing), 41008, "{missing}");
    let no_token = h.get(GETUSERINFO, &[("code", "x")]).await;
    assert_eq!(errcode(&no_token), 41001);
}

#[tokio::test]
async fn only_the_app_token_exchanges_codes() {
    let h = SimClient::start(Directory::sample()).await;
    let code = h.sim.login_code("lina");
    let sync = h.sync_token().await;
    let refused = exchange(&h, &sync, &code).await;
    assert_wecom_error(&refused, 48002, "api forbidden");
    // The refused call did not use the code up.
    let app = h.token().await;
    assert_eq!(exchange(&h, &app, &code).await["userid"], "lina");
}

#[tokio::test]
async fn the_userid_comes_back_outside_the_range_and_after_leaving() {
    // Department 5 (ZhaoLei's) is outside an app that sees only 研发中心.
    let h = SimClient::start(sample_with(|d| d.visible_departments = vec![2])).await;
    let token = h.token().await;
    let outside = h.sim.login_code("ZhaoLei");
    assert_eq!(exchange(&h, &token, &outside).await["userid"], "ZhaoLei");

    let leaving = h.sim.login_code("lina");
    h.sim.edit(|d| d.users.retain(|u| u.userid != "lina"));
    assert_eq!(exchange(&h, &token, &leaving).await["userid"], "lina");
    // The Rust API mints for a userid the directory does not have, as given.
    let gone = h.sim.login_code("Ghost");
    assert_eq!(exchange(&h, &token, &gone).await["userid"], "Ghost");
}

#[tokio::test]
async fn faults_hit_getuserinfo_and_leave_the_code_usable() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let code = h.sim.login_code("lina");
    h.sim
        .inject(Fault::Errcode(-1).on(Endpoint::AuthGetUserInfo));
    assert_eq!(errcode(&exchange(&h, &token, &code).await), -1);
    assert_eq!(exchange(&h, &token, &code).await["userid"], "lina");
}

#[tokio::test]
async fn valid_codes_are_exempt_from_the_rate_limit() {
    let h = SimClient::start(sample_with(|d| d.rate_limit_per_minute = Some(1))).await;
    let token = h.token().await;
    for _ in 0..3 {
        let code = h.sim.login_code("lina");
        assert_eq!(exchange(&h, &token, &code).await["userid"], "lina");
    }
    assert_eq!(errcode(&exchange(&h, &token, "bad").await), 40029);
    assert_eq!(errcode(&exchange(&h, &token, "bad").await), 45009);
}

#[tokio::test]
async fn the_control_api_mints_and_expires_codes() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;

    let minted = h
        .control_post("/_sim/login_code", r#"{"userid":"zhaolei"}"#)
        .await;
    assert_eq!(minted.status(), 200);
    let code: Value = minted.json().await.unwrap();
    let code = code["code"].as_str().unwrap().to_owned();
    assert_eq!(exchange(&h, &token, &code).await["userid"], "ZhaoLei");

    let outsider = h
        .control_post("/_sim/login_code", r#"{"outsider":true}"#)
        .await;
    assert_eq!(outsider.status(), 200);
    let code: Value = outsider.json().await.unwrap();
    let answer = exchange(&h, &token, code["code"].as_str().unwrap()).await;
    assert!(answer["external_userid"].is_string(), "{answer}");

    let unknown = h
        .control_post("/_sim/login_code", r#"{"userid":"ghost"}"#)
        .await;
    assert_eq!(unknown.status(), 404);
    let reason: Value = unknown.json().await.unwrap();
    assert!(
        reason["error"].as_str().unwrap().contains("ghost"),
        "{reason}"
    );
    for bad in [
        "{}",
        r#"{"userid":"lina","outsider":true}"#,
        r#"{"outsider":false}"#,
        "nope",
    ] {
        let refused = h.control_post("/_sim/login_code", bad).await;
        assert_eq!(refused.status(), 400, "{bad}");
    }

    let minted = h
        .control_post("/_sim/login_code", r#"{"userid":"lina"}"#)
        .await;
    let code: Value = minted.json().await.unwrap();
    let expired = h.control_post("/_sim/login_code/expire", "").await;
    assert_eq!(expired.status(), 204);
    let answer = exchange(&h, &token, code["code"].as_str().unwrap()).await;
    assert_eq!(errcode(&answer), 40029);

    let calls: Value = h.control_get("/_sim/calls").await.json().await.unwrap();
    assert_eq!(calls[GETUSERINFO], 3);
}

// ---- user/getuserid and user/get_userid_by_email ----

#[tokio::test]
async fn mobiles_and_emails_map_to_visible_userids() {
    // ZhaoLei (市场部, department 5) is outside an app that sees only 研发中心.
    let h = SimClient::start(sample_with(|d| d.visible_departments = vec![2])).await;
    let token = h.token().await;
    let mobile = |userid: &str| {
        let directory = h.sim.directory();
        let user = directory.users.iter().find(|u| u.userid == userid).unwrap();
        format!(r#"{{"mobile":"{}"}}"#, user.mobile)
    };
    let found = h.post(GETUSERID, &token, &mobile("lina")).await;
    assert_eq!(
        found,
        serde_json::json!({"errcode": 0, "errmsg": "ok", "userid": "lina"})
    );
    let outside = h.post(GETUSERID, &token, &mobile("ZhaoLei")).await;
    assert_wecom_error(&outside, 46004, "user no exist");
    let unknown = h
        .post(GETUSERID, &token, r#"{"mobile":"13000000000"}"#)
        .await;
    assert_eq!(errcode(&unknown), 46004);

    let business = r#"{"email":"LINA@xinghe.exmail.example.com","email_type":1}"#;
    assert_eq!(h.post(BY_EMAIL, &token, business).await["userid"], "lina");
    let default_type = r#"{"email":"lina@xinghe.exmail.example.com"}"#;
    assert_eq!(
        h.post(BY_EMAIL, &token, default_type).await["userid"],
        "lina"
    );
    let personal = r#"{"email":"lina@xinghe.example.com","email_type":2}"#;
    assert_eq!(h.post(BY_EMAIL, &token, personal).await["userid"], "lina");
    let wrong_type = r#"{"email":"lina@xinghe.example.com","email_type":1}"#;
    assert_eq!(errcode(&h.post(BY_EMAIL, &token, wrong_type).await), 46004);
    let outside = r#"{"email":"zhaolei@xinghe.example.com","email_type":2}"#;
    assert_eq!(errcode(&h.post(BY_EMAIL, &token, outside).await), 46004);
    assert_eq!(h.sim.calls().get(Endpoint::UserGetUserIdByEmail), 5);
}

#[tokio::test]
async fn lookups_refuse_the_sync_token_get_and_bad_bodies() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let sync = h.sync_token().await;
    let body = r#"{"mobile":"13800000000"}"#;
    assert_eq!(errcode(&h.post(GETUSERID, &sync, body).await), 48002);
    let by_get = h
        .call(GETUSERID, &token, &[("mobile", "13800000000")])
        .await;
    assert_eq!(errcode(&by_get), 40058);
    for bad in ["nope", r#"{"mobile":"1"}"#, "{}"] {
        assert_eq!(
            errcode(&h.post(GETUSERID, &token, bad).await),
            40058,
            "{bad}"
        );
    }
    for bad in [r#"{"email":"a@b.c","email_type":3}"#, r#"{"email_type":1}"#] {
        assert_eq!(
            errcode(&h.post(BY_EMAIL, &token, bad).await),
            40058,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn too_many_failed_lookups_block_both_apis_for_the_day() {
    // 20% of 10 is 2: the third failure of the day starts the block.
    let h = SimClient::start(sample_with(|d| d.headcount_limit = 10)).await;
    let token = h.token().await;
    let miss = r#"{"mobile":"13000000000"}"#;
    let hit = r#"{"mobile":"15010873321"}"#;
    let email_miss = r#"{"email":"nobody@example.com"}"#;
    assert_eq!(errcode(&h.post(GETUSERID, &token, miss).await), 46004);
    assert_eq!(errcode(&h.post(BY_EMAIL, &token, email_miss).await), 46004);
    assert_eq!(h.post(GETUSERID, &token, hit).await["userid"], "lina");
    assert_eq!(errcode(&h.post(GETUSERID, &token, miss).await), 46004);

    let blocked = h.post(GETUSERID, &token, hit).await;
    assert_eq!(errcode(&blocked), 45009, "{blocked}");
    assert_eq!(errcode(&h.post(BY_EMAIL, &token, email_miss).await), 45009);
    // Other APIs are not affected.
    let user = h
        .call("/cgi-bin/user/get", &token, &[("userid", "lina")])
        .await;
    assert_eq!(errcode(&user), 0);

    h.sim.new_day();
    assert_eq!(h.post(GETUSERID, &token, hit).await["userid"], "lina");
    for _ in 0..3 {
        h.post(GETUSERID, &token, miss).await;
    }
    assert_eq!(errcode(&h.post(GETUSERID, &token, hit).await), 45009);
    let new_day = h.control_post("/_sim/new_day", "").await;
    assert_eq!(new_day.status(), 204);
    assert_eq!(h.post(GETUSERID, &token, hit).await["userid"], "lina");
}
