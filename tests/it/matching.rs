//! Matching through the real `orgsync` binary against the simulated WeCom: host users over the
//! socket and from files, manual links across syncs and re-imports, link events as a host
//! application receives them, and the match report.

use crate::harness::{
    assert_contains_all, assert_exits_saying, current_uid, describe, kinds, success_stdout, user,
    Client, Env, Server,
};
use orgsync::diff::diff;
use orgsync::model::{Member, Snapshot};
use orgsync::socket::{self, ClientError};
use orgsync::store::mirror;
use orgsync_simulator::{Directory, SimUser};
use serde_json::{json, Value};

/// Sample mobiles: 徐浩 (xuhao), 张伟 (zhangwei), 李娜 (lina).
const XUHAO: &str = "13801012345";
const ZHANGWEI: &str = "13911220876";
const LINA: &str = "15010873321";

async fn put(env: &Env, users: Value, replace: bool) -> Result<Value, ClientError> {
    socket::request(
        &env.socket_path(),
        &json!({"op": "host_users.put", "users": users, "replace": replace}),
    )
    .await
}

fn write(env: &Env, name: &str, content: &str) -> String {
    let path = env.dir.path().join(name);
    std::fs::write(&path, content).expect("write the import file");
    path.to_string_lossy().into_owned()
}

async fn import(env: &Env, file: &str, flags: &[&str]) -> std::process::Output {
    let mut args = vec!["host-users", "import", file];
    args.extend_from_slice(flags);
    env.run(&args).await
}

async fn report(env: &Env) -> Value {
    let output = env.run(&["match", "report", "--json"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

async fn head(env: &Env) -> i64 {
    env.events_since(0)
        .await
        .last()
        .and_then(|e| e["seq"].as_i64())
        .unwrap_or(0)
}

fn link_events(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("orgsync.link."))
        })
        .cloned()
        .collect()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `(type, subject)` of the event `orgsync.link.{change}` of the member `userid`, as
/// [`kinds`] lists events.
fn link(change: &str, userid: &str) -> (String, String) {
    (format!("orgsync.link.{change}"), format!("member/{userid}"))
}

fn pairs(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item[key].as_str().expect("a string").to_owned())
        .collect()
}

#[tokio::test]
async fn link_events_reach_a_subscriber_from_a_put_at_once_and_from_a_sync_in_run_order() {
    let env = Env::new(Directory::sample()).await;
    let (daemon, mut subscriber) = env.start_synced_daemon().await;

    let reply = put(
        &env,
        json!([
            {"id": 1, "name": "徐浩", "mobile": "+86 138-0101-2345"},
            {"id": "2", "name": "王芳"},
            {"id": "3", "name": "Nobody", "email": "nobody@example.com"},
        ]),
        false,
    )
    .await
    .expect("put accepted");
    assert_eq!(
        reply,
        json!({"ok": true, "op": "host_users.put", "linked": 2, "ambiguous": 0, "unmatched": 1,
               "links_created": 2, "links_removed": 0})
    );
    let created = [subscriber.next().await, subscriber.next().await];
    assert_eq!(
        kinds(&created),
        [link("created", "xuhao"), link("created", "wangfang")]
    );
    assert_eq!(
        created[0]["data"],
        json!({"userid": "xuhao", "host_user_id": "1", "method": "phone"})
    );
    assert_eq!(created[1]["data"]["method"], "name");
    assert!(created.iter().all(|e| e.get("syncrun").is_none()));

    // 徐浩 leaves and 王芳 is renamed: both links go in the run, after the member events.
    env.sim.edit(|d| {
        d.users.retain(|u| u.userid != "xuhao");
        user(d, "wangfang").name = "王芳芳".into();
    });
    daemon.signal(libc::SIGUSR1);
    let run = subscriber.run_events().await;
    let n = run.len();
    assert_eq!(
        kinds(&run[n - 3..]),
        [
            link("removed", "xuhao"),
            link("removed", "wangfang"),
            (
                "orgsync.sync.completed".to_owned(),
                format!("run/{}", run[n - 1]["data"]["run"].as_str().expect("run"))
            ),
        ]
    );
    assert!(link_events(&run[..n - 3]).is_empty());
    assert!(run[..n - 3]
        .iter()
        .any(|e| e["type"] == "orgsync.member.left"));
    assert_eq!(
        run[n - 3]["data"],
        json!({"userid": "xuhao", "host_user_id": "1", "reason": "member_left", "method": "phone"})
    );
    assert_eq!(run[n - 2]["data"]["reason"], "name_changed");
    for event in &run {
        assert_eq!(event["syncrun"], run[n - 1]["syncrun"]);
    }
    let counts = &run[n - 1]["data"]["counts"];
    assert_eq!(
        (
            counts["links_created"].as_u64(),
            counts["links_removed"].as_u64()
        ),
        (Some(0), Some(2))
    );

    // The host user whose member left is held, not handed to anyone else.
    let report = report(&env).await;
    assert_eq!(pairs(&report["held"], "host_user_id"), ["1"]);
    assert_eq!(report["held"][0]["reason"], "member_left");

    daemon.stop().await;
}

/// The socket server alone, with no daemon polling the store: a subscriber hears of a put's
/// link events only because the connection that committed them publishes the new head.
#[tokio::test]
async fn a_put_publishes_its_link_events_without_waiting_for_a_poll() {
    // The test's user is the admin.
    let mut server = Server::start_with(
        |settings| {
            settings.max_connections = 4;
            settings.first_request_timeout = std::time::Duration::from_secs(60);
        },
        current_uid(),
    )
    .await;
    let mut mirrored = Snapshot::default();
    let mut member = Member::new("WangFang");
    member.name = Some("王芳".into());
    mirrored.insert_member(member);
    let changes = diff(&Snapshot::default(), mirrored);
    server
        .store
        .write(|tx| mirror::apply(tx, &changes))
        .expect("mirror a member");

    let mut subscriber = Client::open(&server.path, json!({"op": "subscribe"})).await;
    assert_eq!(subscriber.reply["head"], 0);
    let reply = socket::request(
        &server.path,
        &json!({"op": "host_users.put", "users": [{"id": 7, "name": "王芳"}]}),
    )
    .await
    .expect("put accepted");
    assert_eq!(reply["linked"], 1);
    let event = subscriber.next().await;
    assert_eq!(event["type"], "orgsync.link.created");
    assert_eq!(event["subject"], "member/WangFang");
    assert_eq!(
        event["data"],
        json!({"userid": "WangFang", "host_user_id": "7", "method": "name"})
    );
}

#[tokio::test]
async fn host_users_put_replace_makes_the_given_set_the_whole_set_and_bad_users_change_nothing() {
    let env = Env::new(Directory::sample()).await;
    let (daemon, mut subscriber) = env.start_synced_daemon().await;

    let first = json!([{"id": "1", "mobile": XUHAO}, {"id": "2", "mobile": ZHANGWEI}]);
    assert_eq!(put(&env, first, false).await.expect("put")["linked"], 2);
    let added = put(&env, json!([{"id": "3", "name": "王芳"}]), false)
        .await
        .expect("put");
    assert_eq!(
        (added["linked"].as_u64(), added["links_created"].as_u64()),
        (Some(3), Some(1))
    );
    for _ in 0..3 {
        assert_eq!(subscriber.next().await["type"], "orgsync.link.created");
    }

    let replaced = put(&env, json!([{"id": "2", "mobile": ZHANGWEI}]), true)
        .await
        .expect("put");
    assert_eq!(
        replaced,
        json!({"ok": true, "op": "host_users.put", "linked": 1, "ambiguous": 0, "unmatched": 0,
               "links_created": 0, "links_removed": 2})
    );
    let removed = [subscriber.next().await, subscriber.next().await];
    assert_eq!(
        kinds(&removed),
        [link("removed", "xuhao"), link("removed", "wangfang")]
    );
    assert!(removed
        .iter()
        .all(|e| e["data"]["reason"] == "host_user_removed"));

    for (users, expected) in [
        (
            json!([{"id": "4"}, {"id": ""}]),
            "users[1]: \"id\" is empty",
        ),
        (
            json!([{"id": "5"}, {"id": 5}]),
            "users[1] has the same id \"5\" as users[0]",
        ),
        (
            json!([{"id": "6", "name": ["x"]}]),
            "users[0]: \"name\" must be a string",
        ),
    ] {
        match put(&env, users, true).await {
            Err(ClientError::Refused { code, message }) => {
                assert_eq!(code, "bad_request");
                assert!(message.starts_with(expected), "{message}");
                assert!(message.contains("nothing was applied"), "{message}");
            }
            other => panic!("expected bad_request, got {other:?}"),
        }
    }
    let report = report(&env).await;
    assert_eq!(report["host_users"]["total"], 1);
    assert_eq!(report["links"]["phone"], 1);

    daemon.stop().await;
}

#[tokio::test]
async fn manual_links_survive_resyncs_and_reimports_and_go_when_the_member_leaves() {
    let env = Env::synced_sample().await;
    let users = write(
        &env,
        "users.csv",
        &format!("id,name,mobile\n1,徐浩,{XUHAO}\n2,Zhang Wei,{ZHANGWEI}\n"),
    );
    let output = import(&env, &users, &[]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let before = head(&env).await;

    // By hand: host user 1 is 张伟 after all. Both automatic links give way, once the admin
    // says so: a manual link does not undo automatic ones silently.
    let output = env.run(&["link", "1", "ZhangWei"]).await;
    assert_exits_saying(&output, 2, "--replace");
    assert_eq!(head(&env).await, before, "nothing changed");
    let output = env.run(&["link", "1", "ZhangWei", "--replace"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    // The audit trail says when, how, by whom and what the manual link replaced.
    let history = env.run(&["link", "history", "1"]).await;
    let history = String::from_utf8_lossy(&history.stdout);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[0].contains("created 1 -> xuhao (phone)") && lines[0].contains("by cli uid"),
        "{history}"
    );
    assert!(
        lines[1].contains("removed 1 -> xuhao (phone), replaced_by_manual"),
        "{history}"
    );
    assert!(
        lines[2].contains("created 1 -> zhangwei (manual)")
            && lines[2].contains("replaced 1 -> xuhao (phone), 2 -> zhangwei (phone)"),
        "{history}"
    );
    let events = env.events_since(before).await;
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let data = &e["data"];
            let why = data["reason"]
                .as_str()
                .or(data["method"].as_str())
                .unwrap_or("");
            (
                e["type"].as_str().unwrap_or("").to_owned(),
                data["host_user_id"].as_str().unwrap_or("").to_owned(),
                why.to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "orgsync.link.removed".into(),
                "1".into(),
                "replaced_by_manual".into()
            ),
            (
                "orgsync.link.removed".into(),
                "2".into(),
                "replaced_by_manual".into()
            ),
            ("orgsync.link.created".into(), "1".into(), "manual".into()),
        ]
    );
    assert_eq!(events[2]["data"]["userid"], "zhangwei");

    // A re-sync with a change to 张伟 leaves the link alone.
    env.sim
        .edit(|d| user(d, "zhangwei").position = "CTO".into());
    let before = head(&env).await;
    env.sync().await;
    let events = env.events_since(before).await;
    assert!(link_events(&events).is_empty(), "{events:?}");
    assert_eq!(
        events.last().expect("completed")["data"]["counts"]["links_removed"],
        0
    );

    // Re-imports, with host user 1 missing and then back with 徐浩's mobile: still manual.
    let only_two = write(&env, "two.csv", &format!("id,mobile\n2,{ZHANGWEI}\n"));
    let output = import(&env, &only_two, &["--replace"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let report1 = report(&env).await;
    assert_eq!(
        report1["links"],
        json!({"phone": 0, "name": 0, "manual": 1, "login": 0, "email": 0})
    );
    assert_eq!(
        pairs(&report1["manual_links_without_host_user"], "userid"),
        ["zhangwei"]
    );
    let output = import(&env, &users, &["--replace"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let report2 = report(&env).await;
    assert_eq!(
        report2["links"],
        json!({"phone": 0, "name": 0, "manual": 1, "login": 0, "email": 0})
    );
    assert!(link_events(&env.events_since(before).await).is_empty());

    // 张伟 leaves: the manual link goes in that run, and host user 1 is held, so 徐浩's
    // mobile on it does not link it to 徐浩.
    env.sim.edit(|d| d.users.retain(|u| u.userid != "zhangwei"));
    let before = head(&env).await;
    env.sync().await;
    let links = link_events(&env.events_since(before).await);
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(
        links[0]["data"],
        json!({"userid": "zhangwei", "host_user_id": "1", "reason": "member_left", "method": "manual"})
    );
    assert!(links[0]["syncrun"].is_string());
    let report3 = report(&env).await;
    assert_eq!(pairs(&report3["held"], "host_user_id"), ["1"]);
    assert_eq!(report3["host_users"]["linked"], 0);
}

#[tokio::test]
async fn an_import_names_bad_rows_by_line_and_is_all_or_nothing_unless_told_to_skip_them() {
    let env = Env::synced_sample().await;
    let before = head(&env).await;
    let file = write(
        &env,
        "users.csv",
        &format!(
            "id,name,mobile,email\n\
             1,徐浩,{XUHAO},\n\
             \n\
             2,\"Zhang, Wei\",{ZHANGWEI},zw@example.com\n\
             ,no id,,\n\
             3,\"two\nlines\",,\n\
             4,王芳,,\n\
             1,again,,\n"
        ),
    );

    let output = import(&env, &file, &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let errors = stderr(&output);
    assert_contains_all(
        &errors,
        &[
            format!("{file}:5: \"id\" is empty"),
            format!("{file}:6: \"name\" contains a control character"),
            format!("{file}:9: id \"1\" already appeared on line 2"),
            "3 bad rows; nothing was imported".to_owned(),
        ],
    );
    assert_eq!(report(&env).await["host_users"]["total"], 0);
    assert_eq!(head(&env).await, before);

    let output = import(&env, &file, &["--skip-bad"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert!(stderr(&output).contains(&format!("{file}:5: ")));
    assert!(stderr(&output).contains("skipped 3 bad rows"));
    assert!(
        stdout(&output).contains("3 added, 0 updated, 0 unchanged, 0 removed"),
        "{}",
        stdout(&output)
    );
    let report = report(&env).await;
    assert_eq!(report["host_users"]["total"], 3);
    assert_eq!(
        report["links"],
        json!({"phone": 2, "name": 1, "manual": 0, "login": 0, "email": 0})
    );

    let jsonl = write(
        &env,
        "users.jsonl",
        "{\"id\": 10, \"name\": \"李娜\"}\nnot json\n{\"id\": 11, \"mobile\": 1}\n",
    );
    let output = import(&env, &jsonl, &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(stderr(&output).contains(&format!("{jsonl}:2: is not valid JSON")));
    assert!(stderr(&output).contains(&format!("{jsonl}:3: \"mobile\" must be a string")));

    let missing = import(&env, "no-such-file.csv", &[]).await;
    assert_eq!(missing.status.code(), Some(2), "{}", describe(&missing));
}

#[tokio::test]
async fn the_report_lists_ambiguous_names_with_both_sides_and_says_why_mobiles_are_missing() {
    let mut directory = Directory::sample();
    directory.withhold_sensitive = true;
    directory
        .users
        .push(SimUser::new("wangfang2", "王芳", &[5]));
    let env = Env::new(directory).await;
    env.sync().await;
    let file = write(
        &env,
        "users.csv",
        "id,name,mobile\n1,王芳,13800138000\n2,李娜,15010873321\n3,Zhang,\n",
    );
    let output = import(&env, &file, &[]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stdout(&output).contains("1 linked, 1 ambiguous, 1 unmatched"),
        "{}",
        stdout(&output)
    );

    let output = env.run(&["match", "report"]).await;
    let text = success_stdout(&output);
    assert_contains_all(
        &text,
        &[
            "host users: 3 (1 linked, 1 ambiguous, 1 unmatched)",
            "links:      0 by phone, 0 by email, 1 by name, 0 manual",
            "Note: WeCom withheld members' mobiles: this app was created on or after 2022-06-20",
            "orgsync asks WeCom whose each unlinked host user's mobile or email is instead",
            "Ambiguous names (link the right pairs with `orgsync link`): 1\n  王芳\n    member    wangfang 王芳\n    member    wangfang2 王芳\n    host user 1 王芳 13800138000\n",
            "Unmatched host users: 1\n  3 Zhang\n",
        ],
    );

    let json = report(&env).await;
    assert_eq!(json["mobiles_withheld"], true);
    let names = &json["ambiguous_names"];
    assert_eq!(names.as_array().map(Vec::len), Some(1));
    assert_eq!(names[0]["value"], "王芳");
    assert_eq!(
        pairs(&names[0]["members"], "userid"),
        ["wangfang", "wangfang2"]
    );
    assert_eq!(pairs(&names[0]["host_users"], "id"), ["1"]);
    let links = link_events(&env.events_since(0).await);
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["subject"], "member/lina");
}

#[tokio::test]
async fn a_shared_mobile_is_never_linked_on_either_side() {
    let env = Env::new(Directory::sample()).await;
    env.sim.edit(|d| user(d, "wangfang").mobile = LINA.into());
    env.sync().await;
    let file = write(
        &env,
        "users.jsonl",
        &format!(
            "{{\"id\": \"1\", \"name\": \"X1\", \"mobile\": \"{XUHAO}\"}}\n\
             {{\"id\": \"2\", \"name\": \"X2\", \"mobile\": \"+86 {XUHAO}\"}}\n\
             {{\"id\": \"3\", \"name\": \"Someone\", \"mobile\": \"{LINA}\"}}\n"
        ),
    );
    let output = import(&env, &file, &[]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stdout(&output).contains("0 linked, 3 ambiguous, 0 unmatched"),
        "{}",
        stdout(&output)
    );
    assert!(link_events(&env.events_since(0).await).is_empty());

    let report = report(&env).await;
    let phones = report["ambiguous_phones"].as_array().expect("a list");
    assert_eq!(phones.len(), 2);
    assert_eq!(phones[0]["value"], format!("+86{XUHAO}"));
    assert_eq!(pairs(&phones[0]["members"], "userid"), ["xuhao"]);
    assert_eq!(pairs(&phones[0]["host_users"], "id"), ["1", "2"]);
    assert_eq!(phones[1]["value"], format!("+86{LINA}"));
    assert_eq!(pairs(&phones[1]["members"], "userid"), ["lina", "wangfang"]);
    assert_eq!(pairs(&phones[1]["host_users"], "id"), ["3"]);
}

/// `sync --dry-run` names the links the run would remove and create, writes nothing, and the
/// run then does exactly that.
#[tokio::test]
async fn a_dry_run_predicts_the_link_changes_the_run_then_makes() {
    let env = Env::synced_sample().await;
    const NEWCOMER: &str = "13722223333";
    let users = write(
        &env,
        "users.csv",
        &format!("id,name,mobile\n1,徐浩,{XUHAO}\n2,李娜,{LINA}\n3,Someone,{NEWCOMER}\n"),
    );
    let output = import(&env, &users, &[]).await;
    assert!(output.status.success(), "{}", describe(&output));

    // 徐浩 leaves; a newcomer with host user 3's mobile joins.
    env.sim.edit(|d| {
        let departments = d.users[0].department.clone();
        d.users.retain(|u| u.userid != "xuhao");
        let mut newcomer = SimUser::new("Newcomer", "新人", &departments);
        newcomer.mobile = NEWCOMER.into();
        d.users.push(newcomer);
    });
    let before = env.state();
    let head_before = head(&env).await;
    let output = env.run(&["sync", "--dry-run"]).await;
    let text = success_stdout(&output);
    assert_contains_all(
        &text,
        &[
            "- unlink host user 1 from xuhao (member_left)",
            "+ link   host user 3 to Newcomer (by phone)",
            "links: 1 created, 1 removed. Nothing was written.",
        ],
    );
    assert_eq!(env.state(), before, "--dry-run wrote to the store");

    env.sync().await;
    let made: Vec<(String, String, String)> = link_events(&env.events_since(head_before).await)
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_owned(),
                e["data"]["host_user_id"].as_str().unwrap_or("").to_owned(),
                e["data"]["userid"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        made,
        [
            ("orgsync.link.removed".into(), "1".into(), "xuhao".into()),
            ("orgsync.link.created".into(), "3".into(), "Newcomer".into()),
        ]
    );
}
