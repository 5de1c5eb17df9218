//! The simulator's WeCom API over HTTP: tokens, the visible range, withheld fields, the wire
//! types, `list_id`, and the `/_sim/` control API.

use std::time::Duration;

use orgsync_simulator::{Directory, Endpoint, SimUser};
use serde_json::Value;

use crate::harness::paths::{AGENT_GET, DEPARTMENT_LIST, GETUSERID, LIST_ID, USER_GET, USER_LIST};
use crate::harness::{assert_wecom_error, errcode, ids, sample_with, userids, SimClient};

// ---- gettoken and token checks ----

#[tokio::test]
async fn gettoken_returns_the_same_token_while_it_is_valid() {
    let h = SimClient::start(Directory::sample()).await;
    let corp_id = h.sim.directory().corp_id;
    let secret = h.sim.directory().corp_secret;
    let query = [
        ("corpid", corp_id.as_str()),
        ("corpsecret", secret.as_str()),
    ];
    let first = h.get("/cgi-bin/gettoken", &query).await;
    assert_eq!(first["errmsg"], "ok");
    assert_eq!(first["expires_in"], 7200);
    let second = h.get("/cgi-bin/gettoken", &query).await;
    assert_eq!(second["access_token"], first["access_token"]);
    assert!(second["expires_in"].as_u64().unwrap() <= 7200);
    assert_eq!(h.sim.calls().get(Endpoint::GetToken), 2);
}

#[tokio::test]
async fn gettoken_can_issue_a_new_token_every_time() {
    let h = SimClient::start(sample_with(|d| d.reuse_valid_token = false)).await;
    let first = h.token().await;
    let second = h.token().await;
    assert_ne!(first, second);
    for token in [&first, &second] {
        let answer = h.call(DEPARTMENT_LIST, token, &[]).await;
        assert_eq!(errcode(&answer), 0, "{answer}");
    }
}

#[tokio::test]
async fn gettoken_refuses_wrong_or_missing_credentials() {
    let h = SimClient::start(Directory::sample()).await;
    let d = h.sim.directory();
    let cases: [(&[(&str, &str)], i64); 5] = [
        (
            &[("corpid", "wwnope"), ("corpsecret", &d.corp_secret)],
            40013,
        ),
        (&[("corpid", &d.corp_id), ("corpsecret", "wrong")], 40001),
        (&[("corpsecret", &d.corp_secret)], 41002),
        (&[("corpid", &d.corp_id)], 41004),
        (&[("corpid", &d.corp_id), ("corpsecret", "")], 41004),
    ];
    for (query, expected) in cases {
        let answer = h.get("/cgi-bin/gettoken", query).await;
        assert_eq!(errcode(&answer), expected, "{answer}");
        assert!(answer.get("access_token").is_none());
        let errmsg = answer["errmsg"].as_str().unwrap();
        assert!(errmsg.contains(", from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e="), "{errmsg}");
    }
}

#[tokio::test]
async fn business_calls_check_the_token() {
    let h = SimClient::start(Directory::sample()).await;
    let missing = h.get(DEPARTMENT_LIST, &[]).await;
    assert_eq!(errcode(&missing), 41001);
    let empty = h.call(DEPARTMENT_LIST, "", &[]).await;
    assert_eq!(errcode(&empty), 41001);
    let unknown = h.call(DEPARTMENT_LIST, "not-a-token", &[]).await;
    assert_wecom_error(&unknown, 40014, "invalid access_token");
}

#[tokio::test]
async fn a_token_expires_after_its_ttl() {
    let h = SimClient::start(sample_with(|d| d.token_ttl_secs = 1)).await;
    let token = h.token().await;
    let issued_by = tokio::time::Instant::now();
    assert_eq!(errcode(&h.call(DEPARTMENT_LIST, &token, &[]).await), 0);
    // The token was issued before `issued_by`, so it is certainly expired a second later.
    tokio::time::sleep_until(issued_by + Duration::from_millis(1_050)).await;
    let expired = h.call(DEPARTMENT_LIST, &token, &[]).await;
    assert_eq!(errcode(&expired), 42001, "{expired}");
    assert!(expired["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("access_token expired"));
    let renewed = h.token().await;
    assert_ne!(renewed, token);
}

#[tokio::test]
async fn expire_tokens_gives_42001_at_once() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.sim.expire_tokens();
    assert_eq!(
        errcode(&h.call(USER_GET, &token, &[("userid", "lina")]).await),
        42001
    );
    assert_ne!(h.token().await, token);
}

#[tokio::test]
async fn revoked_tokens_get_40014_and_a_new_one_is_issued() {
    let h = SimClient::start(Directory::sample()).await;
    let app = h.token().await;
    let sync = h.sync_token().await;
    h.sim.revoke_tokens();
    for token in [&app, &sync] {
        let answer = h.call(DEPARTMENT_LIST, token, &[]).await;
        assert_eq!(errcode(&answer), 40014, "{answer}");
    }
    let fresh = h.token().await;
    assert_ne!(fresh, app);
    assert_eq!(errcode(&h.call(DEPARTMENT_LIST, &fresh, &[]).await), 0);
}

// ---- the visible range ----

#[tokio::test]
async fn department_lists_are_cut_to_the_visible_range() {
    let h = SimClient::start(sample_with(|d| d.visible_departments = vec![2])).await;
    let token = h.token().await;
    let all = h.call(DEPARTMENT_LIST, &token, &[]).await;
    assert_eq!(ids(&all, "department"), [2, 3, 4]);
    let subtree = h.call(DEPARTMENT_LIST, &token, &[("id", "2")]).await;
    assert_eq!(ids(&subtree, "department"), [2, 3, 4]);
    let leaf = h.call(DEPARTMENT_LIST, &token, &[("id", "4")]).await;
    assert_eq!(ids(&leaf, "department"), [4]);
    let simple = h.call("/cgi-bin/department/simplelist", &token, &[]).await;
    assert_eq!(ids(&simple, "department_id"), [2, 3, 4]);
    assert_eq!(
        simple["department_id"][0],
        serde_json::json!({"id": 2, "parentid": 1, "order": 3_000_000_000u32})
    );

    for (path, query, expected) in [
        (DEPARTMENT_LIST, ("id", "1"), 60011),
        (DEPARTMENT_LIST, ("id", "99"), 60003),
        ("/cgi-bin/department/get", ("id", "5"), 60011),
        ("/cgi-bin/department/get", ("id", "99"), 60003),
        (USER_LIST, ("department_id", "5"), 60011),
        (USER_LIST, ("department_id", "99"), 60003),
        ("/cgi-bin/user/simplelist", ("department_id", "1"), 60011),
        (USER_GET, ("userid", "xuhao"), 60011),
        (USER_GET, ("userid", "nobody"), 60111),
    ] {
        let answer = h.call(path, &token, &[query]).await;
        assert_eq!(errcode(&answer), expected, "{path} {query:?}: {answer}");
    }

    let sync = h.sync_token().await;
    let everything = h.call(DEPARTMENT_LIST, &sync, &[]).await;
    assert_eq!(ids(&everything, "department"), [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_members_arrays_show_only_visible_departments_and_stay_aligned() {
    let h = SimClient::start(sample_with(|d| d.visible_departments = vec![4])).await;
    let token = h.token().await;
    // yangjie is in 3 (order 4e9, main) and 4 (order 0); only 4 is visible.
    let yangjie = h.call(USER_GET, &token, &[("userid", "yangjie")]).await;
    assert_eq!(yangjie["department"], serde_json::json!([4]));
    assert_eq!(yangjie["order"], serde_json::json!([0]));
    assert_eq!(yangjie["is_leader_in_dept"], serde_json::json!([0]));
    assert!(yangjie.get("main_department").is_none(), "{yangjie}");
    // lina (his direct leader) is in 3 only: not visible.
    assert_eq!(yangjie["direct_leader"], serde_json::json!([]));

    let liuyang = h.call(USER_GET, &token, &[("userid", "liuyang")]).await;
    assert_eq!(liuyang["is_leader_in_dept"], serde_json::json!([1]));
    assert_eq!(liuyang["main_department"], 4);
    let department = h
        .call("/cgi-bin/department/get", &token, &[("id", "4")])
        .await;
    assert_eq!(
        department["department"]["department_leader"],
        serde_json::json!(["liuyang"])
    );

    let h = SimClient::start(sample_with(|d| d.visible_departments = vec![3])).await;
    let token = h.token().await;
    let yangjie = h.call(USER_GET, &token, &[("userid", "yangjie")]).await;
    assert_eq!(yangjie["department"], serde_json::json!([3]));
    assert_eq!(yangjie["order"], serde_json::json!([4_000_000_000u32]));
    assert_eq!(yangjie["main_department"], 3);
    assert_eq!(yangjie["direct_leader"], serde_json::json!(["lina"]));
}

/// The visible range names department 4 and, individually, zhangwei (head of 2) and zhuxin (in
/// 5 and 6), and a userid the directory does not have.
fn named_individually(d: &mut Directory) {
    d.visible_departments = vec![4];
    d.visible_users = vec!["ZHANGWEI".into(), "zhuxin".into(), "nobody".into()];
}

#[tokio::test]
async fn members_named_in_the_visible_range_are_seen_but_not_listed() {
    let h = SimClient::start(sample_with(named_individually)).await;
    let token = h.token().await;

    // user/get answers for them, with none of their departments (none is visible).
    let zhangwei = h.call(USER_GET, &token, &[("userid", "zhangwei")]).await;
    assert_eq!(errcode(&zhangwei), 0, "{zhangwei}");
    assert_eq!(zhangwei["department"], serde_json::json!([]));
    assert_eq!(zhangwei["order"], serde_json::json!([]));
    assert!(zhangwei.get("main_department").is_none(), "{zhangwei}");
    assert_eq!(
        errcode(&h.call(USER_GET, &token, &[("userid", "Zhuxin")]).await),
        0
    );
    assert_eq!(
        errcode(&h.call(USER_GET, &token, &[("userid", "huangmin")]).await),
        60011
    );

    // user/list lists the members of visible departments only.
    let frontend = h.call(USER_LIST, &token, &[("department_id", "4")]).await;
    assert_eq!(userids(&frontend), ["liuyang", "chenjing", "yangjie"]);
    let rd = h.call(USER_LIST, &token, &[("department_id", "2")]).await;
    assert_eq!(errcode(&rd), 60011, "{rd}");

    // Seen wherever the app looks at members: as a direct leader, and by a lookup.
    let liuyang = h.call(USER_GET, &token, &[("userid", "liuyang")]).await;
    assert_eq!(liuyang["direct_leader"], serde_json::json!(["zhangwei"]));
    let found = h
        .post(GETUSERID, &token, r#"{"mobile":"13911220876"}"#)
        .await;
    assert_eq!(found["userid"], "zhangwei", "{found}");
}

#[tokio::test]
async fn agent_get_lists_the_visible_range_for_the_apps_own_agentid_only() {
    let h = SimClient::start(sample_with(named_individually)).await;
    let token = h.token().await;
    let agent = h.call(AGENT_GET, &token, &[("agentid", "1000002")]).await;
    assert_eq!(errcode(&agent), 0, "{agent}");
    assert_eq!(agent["agentid"], 1_000_002);
    // Members as the directory spells them, those it has; departments as named, not their
    // descendants.
    assert_eq!(
        agent["allow_userinfos"],
        serde_json::json!({"user": [{"userid": "zhangwei"}, {"userid": "zhuxin"}]})
    );
    assert_eq!(agent["allow_partys"], serde_json::json!({"partyid": [4]}));
    assert_eq!(agent["allow_tags"], serde_json::json!({"tagid": []}));

    for agentid in ["1000003", "abc", "-1"] {
        let answer = h.call(AGENT_GET, &token, &[("agentid", agentid)]).await;
        assert_wecom_error(&answer, 40056, "invalid agentid");
    }
    assert_eq!(errcode(&h.call(AGENT_GET, &token, &[]).await), 41011);
    let sync = h.sync_token().await;
    let refused = h.call(AGENT_GET, &sync, &[("agentid", "1000002")]).await;
    assert_eq!(errcode(&refused), 48002, "{refused}");

    // A renamed member stays in the range under the new userid.
    assert!(h.sim.rename_user("zhuxin", "zhu.xin"));
    let agent = h.call(AGENT_GET, &token, &[("agentid", "1000002")]).await;
    assert_eq!(agent["allow_userinfos"]["user"][1]["userid"], "zhu.xin");

    h.sim.edit(|d| {
        d.agent_id = 1_000_017;
        d.visible_users.clear();
    });
    let agent = h.call(AGENT_GET, &token, &[("agentid", "1000017")]).await;
    assert_eq!(agent["allow_userinfos"], serde_json::json!({"user": []}));
    assert_eq!(h.sim.calls().get(Endpoint::AgentGet), 8);
}

#[tokio::test]
async fn user_list_returns_direct_members_only_unless_fetch_child_is_honoured() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let query = [("department_id", "2"), ("fetch_child", "1")];
    let direct = h.call(USER_LIST, &token, &query).await;
    assert_eq!(userids(&direct), ["zhangwei", "sunting"]);
    let simple = h.call("/cgi-bin/user/simplelist", &token, &query).await;
    assert_eq!(userids(&simple), ["zhangwei", "sunting"]);
    assert_eq!(
        simple["userlist"][0],
        serde_json::json!({"userid": "zhangwei", "name": "张伟", "department": [2]})
    );

    h.sim.edit(|d| d.honour_fetch_child = true);
    let recursive = h.call(USER_LIST, &token, &query).await;
    let mut found = userids(&recursive);
    assert_eq!(
        found.len(),
        9,
        "yangjie, in 3 and 4, is listed once: {found:?}"
    );
    found.sort();
    found.dedup();
    assert_eq!(found.len(), 9);
    let without = h.call(USER_LIST, &token, &[("department_id", "2")]).await;
    assert_eq!(userids(&without), ["zhangwei", "sunting"]);
}

#[tokio::test]
async fn a_member_in_two_departments_is_listed_in_both() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    for department in ["3", "4"] {
        let list = h
            .call(USER_LIST, &token, &[("department_id", department)])
            .await;
        assert!(userids(&list).contains(&"yangjie".to_owned()), "{list}");
    }
}

// ---- fields and wire types ----

const WITHHELD: [&str; 7] = [
    "avatar", "gender", "mobile", "email", "biz_mail", "qr_code", "address",
];

fn has_key(raw: &str, key: &str) -> bool {
    raw.contains(&format!("\"{key}\":"))
}

#[tokio::test]
async fn new_apps_get_no_sensitive_keys_at_all() {
    let h = SimClient::start(sample_with(|d| d.withhold_sensitive = true)).await;
    let token = h.token().await;
    let get = h.call_raw(USER_GET, &token, &[("userid", "lina")]).await;
    let list = h
        .call_raw(USER_LIST, &token, &[("department_id", "3")])
        .await;
    for raw in [&get.text, &list.text] {
        for key in WITHHELD {
            assert!(!has_key(raw, key), "{key} in {raw}");
        }
        for key in [
            "thumb_avatar",
            "telephone",
            "alias",
            "position",
            "status",
            "extattr",
            "external_position",
        ] {
            assert!(has_key(raw, key), "{key} missing from {raw}");
        }
    }

    h.sim.edit(|d| d.withhold_thumb_avatar = true);
    let get = h.call_raw(USER_GET, &token, &[("userid", "lina")]).await;
    assert!(!has_key(&get.text, "thumb_avatar"), "{}", get.text);

    // The contact-sync tool is exempt from the 2022-06-20 change.
    let sync = h.sync_token().await;
    let get = h.call_raw(USER_GET, &sync, &[("userid", "lina")]).await;
    for key in WITHHELD.iter().chain(&["thumb_avatar"]) {
        assert!(has_key(&get.text, key), "{key} missing from {}", get.text);
    }
}

#[tokio::test]
async fn old_apps_get_every_field_with_wecoms_types() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    let raw = h.call_raw(USER_GET, &token, &[("userid", "yangjie")]).await;
    assert!(raw.text.contains(r#""gender":"1""#), "{}", raw.text);
    assert!(
        raw.text.contains(r#""order":[4000000000,0]"#),
        "{}",
        raw.text
    );
    let user = raw.json();
    assert_eq!(user["errcode"], 0);
    assert_eq!(user["mobile"], "17722345019");
    assert_eq!(user["status"], 1);
    assert_eq!(user["extattr"]["attrs"][0]["type"], 0);
    assert_eq!(user["extattr"]["attrs"][0]["text"]["value"], "XH0007");
    assert!(user.get("open_userid").is_none());

    let departments = h.call_raw(DEPARTMENT_LIST, &token, &[]).await;
    assert!(
        departments.text.contains(r#""order":3000000000"#),
        "{}",
        departments.text
    );
    let list = departments.json();
    let rd = &list["department"][1];
    assert_eq!(rd["name"], "研发中心");
    assert_eq!(rd["name_en"], "R&D Center");
    assert_eq!(rd["department_leader"], serde_json::json!(["zhangwei"]));
    assert!(list["department"][2].get("name_en").is_none());
    assert_eq!(list["department"][0]["parentid"], 0);
}

#[tokio::test]
async fn userids_are_case_insensitive() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    for spelling in ["ZhaoLei", "zhaolei", "ZHAOLEI"] {
        let user = h.call(USER_GET, &token, &[("userid", spelling)]).await;
        assert_eq!(user["userid"], "ZhaoLei", "{user}");
    }
    let missing = h.call(USER_GET, &token, &[]).await;
    assert_eq!(errcode(&missing), 41009);
}

#[tokio::test]
async fn bad_parameters_get_40058_not_a_crash() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    for (path, query) in [
        (USER_LIST, vec![]),
        (USER_LIST, vec![("department_id", "abc")]),
        (USER_LIST, vec![("department_id", "-1")]),
        (USER_LIST, vec![("department_id", "99999999999")]),
        (USER_LIST, vec![("department_id", "\u{fffd}")]),
        (DEPARTMENT_LIST, vec![("id", "1.5")]),
        ("/cgi-bin/department/get", vec![]),
    ] {
        let answer = h.call(path, &token, &query).await;
        assert_eq!(errcode(&answer), 40058, "{path} {query:?}: {answer}");
    }
    // Hand-made query strings with broken escapes.
    for query in ["department_id=%ZZ", "department_id=%FF%FE&&=&x", "%"] {
        let url = format!("{}?access_token={token}&{query}", h.url(USER_LIST));
        let answer: Value = h.http.get(url).send().await.unwrap().json().await.unwrap();
        assert_eq!(errcode(&answer), 40058, "{query}: {answer}");
    }
    let unknown = h.raw("/cgi-bin/user/delete", &[]).await;
    assert_eq!(unknown.status, 404);
}

// ---- user/list_id ----

#[tokio::test]
async fn list_id_needs_the_contact_sync_token() {
    let h = SimClient::start(Directory::sample()).await;
    let app = h.token().await;
    let refused = h.post(LIST_ID, &app, r#"{"limit":10}"#).await;
    assert_eq!(errcode(&refused), 48002, "{refused}");
}

#[tokio::test]
async fn list_id_pages_through_every_membership() {
    let h = SimClient::start(Directory::sample()).await;
    let sync = h.sync_token().await;
    let mut pairs = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let body = serde_json::json!({"cursor": cursor, "limit": 4}).to_string();
        let page = h.post(LIST_ID, &sync, &body).await;
        assert_eq!(errcode(&page), 0, "{page}");
        pages += 1;
        for pair in page["dept_user"].as_array().unwrap() {
            pairs.push((
                pair["userid"].as_str().unwrap().to_owned(),
                pair["department"].as_u64().unwrap(),
            ));
        }
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    // 15 members, two of them in two departments.
    assert_eq!(pairs.len(), 17);
    assert_eq!(pages, 5);
    assert!(pairs.contains(&("yangjie".into(), 3)) && pairs.contains(&("yangjie".into(), 4)));
    assert!(pairs.contains(&("ZhaoLei".into(), 5)));

    let first = h.post(LIST_ID, &sync, "").await;
    assert_eq!(first["dept_user"].as_array().unwrap().len(), 17);
    assert_eq!(first["next_cursor"], "");
}

#[tokio::test]
async fn list_id_refuses_bad_cursors_and_parameters() {
    let h = SimClient::start(Directory::sample()).await;
    let sync = h.sync_token().await;
    let page = h.post(LIST_ID, &sync, r#"{"limit":2}"#).await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    assert!(!cursor.is_empty());

    for bad in ["garbage", "0000000000000000", "FFFFFFFFFFFFFFFF"] {
        let answer = h
            .post(LIST_ID, &sync, &format!(r#"{{"cursor":"{bad}"}}"#))
            .await;
        assert_eq!(errcode(&answer), 50100, "{bad}: {answer}");
    }
    h.sim
        .edit(|d| d.users.push(SimUser::new("newbie", "新人", &[3])));
    let stale = h
        .post(LIST_ID, &sync, &format!(r#"{{"cursor":"{cursor}"}}"#))
        .await;
    assert_eq!(errcode(&stale), 50100, "{stale}");

    for body in [
        r#"{"limit":0}"#,
        r#"{"limit":10001}"#,
        "{not json",
        r#"{"limit":"ten"}"#,
    ] {
        let answer = h.post(LIST_ID, &sync, body).await;
        assert_eq!(errcode(&answer), 40058, "{body}: {answer}");
    }
    let wrong_json = h.post(LIST_ID, &sync, "{not json").await;
    assert!(wrong_json["errmsg"]
        .as_str()
        .unwrap()
        .contains("wrong json format"));
    let by_get = h.call(LIST_ID, &sync, &[]).await;
    assert_eq!(errcode(&by_get), 40058, "{by_get}");
}

#[tokio::test]
async fn a_contact_sync_secret_on_a_new_ip_gets_ids_only() {
    let h = SimClient::start(sample_with(|d| d.contact_sync_detail_forbidden = true)).await;
    let sync = h.sync_token().await;
    for (path, query) in [
        (USER_GET, ("userid", "lina")),
        (USER_LIST, ("department_id", "3")),
        (DEPARTMENT_LIST, ("id", "1")),
        ("/cgi-bin/department/get", ("id", "1")),
    ] {
        let answer = h.call(path, &sync, &[query]).await;
        assert_eq!(errcode(&answer), 48009, "{path}: {answer}");
        assert!(answer["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("api forbidden for contact assistant"));
    }
    assert_eq!(
        errcode(&h.call("/cgi-bin/department/simplelist", &sync, &[]).await),
        0
    );
    assert_eq!(errcode(&h.post(LIST_ID, &sync, "{}").await), 0);
    // The app's own token is not affected.
    let app = h.token().await;
    assert_eq!(
        errcode(&h.call(USER_GET, &app, &[("userid", "lina")]).await),
        0
    );
}

// ---- edits and the control API ----

#[tokio::test]
async fn edits_show_up_in_the_next_call() {
    let h = SimClient::start(Directory::sample()).await;
    let token = h.token().await;
    h.sim.edit(|d| {
        d.users.retain(|u| u.userid != "sunting");
        d.users.push(SimUser::new("Qianduo", "钱多", &[2]));
    });
    let list = h.call(USER_LIST, &token, &[("department_id", "2")]).await;
    assert_eq!(userids(&list), ["zhangwei", "Qianduo"]);
    assert_eq!(
        errcode(&h.call(USER_GET, &token, &[("userid", "sunting")]).await),
        60111
    );
}

#[tokio::test]
async fn the_control_api_drives_a_standalone_simulator() {
    let h = SimClient::start(Directory::sample()).await;
    let directory: Directory = h.control_get("/_sim/directory").await.json().await.unwrap();
    assert_eq!(directory, Directory::sample());

    let mut changed = directory.clone();
    changed.users[1].position = "首席技术官".into();
    let put = h.control_put("/_sim/directory", &changed).await;
    assert_eq!(put.status(), 204);
    let token = h.token().await;
    let user = h.call(USER_GET, &token, &[("userid", "zhangwei")]).await;
    assert_eq!(user["position"], "首席技术官");

    changed.users.push(changed.users[0].clone());
    let invalid = h.control_put("/_sim/directory", &changed).await;
    assert_eq!(invalid.status(), 400);
    let reason: Value = invalid.json().await.unwrap();
    assert!(
        reason["error"].as_str().unwrap().contains("xuhao"),
        "{reason}"
    );

    let fault = r#"{"endpoint":"/cgi-bin/user/get","fault":{"errcode":-1}}"#;
    let posted = h.control_post("/_sim/faults", fault).await;
    assert_eq!(posted.status(), 204);
    let busy = h.call(USER_GET, &token, &[("userid", "zhangwei")]).await;
    assert_eq!(errcode(&busy), -1);
    assert!(busy["errmsg"].as_str().unwrap().starts_with("system busy"));
    for bad in [
        r#"{"fault":{"http_status":42}}"#,
        r#"{"fault":{"raw":{"status":42,"body":""}}}"#,
        r#"{"fault":"explode"}"#,
    ] {
        let refused = h.control_post("/_sim/faults", bad).await;
        assert_eq!(refused.status(), 400, "{bad}");
    }

    let calls: Value = h.control_get("/_sim/calls").await.json().await.unwrap();
    assert_eq!(calls["/cgi-bin/gettoken"], 1);
    assert_eq!(calls["/cgi-bin/user/get"], 2);
    assert_eq!(calls["/cgi-bin/user/list_id"], 0);
}
