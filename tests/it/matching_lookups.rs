//! Matching when WeCom withholds mobiles: the daemon asks WeCom whose each unlinked host user's
//! mobile or email is (`user/getuserid`, `user/get_userid_by_email`), links by the answers under
//! the usual ambiguity rules, and stops at its daily failure budget or at WeCom's block.

use std::time::Duration;

use crate::harness::{describe, success_stdout, user, Env, WAIT};
use orgsync::socket;
use orgsync_simulator::{Directory, Endpoint, Fault};
use serde_json::{json, Value};

/// Sample mobiles: 徐浩 (xuhao), 张伟 (zhangwei).
const XUHAO: &str = "13801012345";
const ZHANGWEI: &str = "13911220876";

fn withheld() -> Directory {
    let mut directory = Directory::sample();
    directory.withhold_sensitive = true;
    directory
}

async fn report(env: &Env) -> Value {
    let output = env.run(&["match", "report", "--json"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

/// Host users with mobiles nobody in WeCom has: every lookup of theirs fails.
fn strangers(n: usize) -> String {
    let mut csv = "id,mobile\n".to_owned();
    for i in 0..n {
        csv.push_str(&format!("s{i:02},1300000{i:04}\n"));
    }
    csv
}

/// Imports `n` [`strangers`] with `orgsync host-users import`.
async fn import_strangers(env: &Env, n: usize) {
    let file = env.path("strangers.csv");
    std::fs::write(&file, strangers(n)).expect("write the import file");
    let output = env
        .run(&["host-users", "import", &file.to_string_lossy()])
        .await;
    assert!(output.status.success(), "{}", describe(&output));
}

#[tokio::test]
async fn lookups_link_by_mobile_and_email_and_a_shared_mobile_links_nobody() {
    let mut directory = withheld();
    let mail = user(&mut directory, "lina").biz_mail.clone();
    assert!(!mail.is_empty(), "the sample gives lina a business mail");
    // 15 members: the default budget (5%, at least 1) would stop after the first miss.
    let env = Env::with_config(directory, "[matching]\nlookup_failure_budget = 3\n").await;
    let (daemon, mut subscriber) = env.start_synced_daemon().await;

    let reply = socket::request(
        &env.socket_path(),
        &json!({"op": "host_users.put", "users": [
            {"id": "h-xuhao", "mobile": XUHAO},
            {"id": "h-zw-1", "mobile": ZHANGWEI},
            {"id": "h-zw-2", "mobile": format!("+86 {ZHANGWEI}")},
            {"id": "h-lina", "email": mail.to_uppercase()},
            {"id": "h-nobody", "mobile": "13000000000"},
        ]}),
    )
    .await
    .expect("host_users.put");
    assert_eq!(
        reply["links_created"], 0,
        "nothing links before WeCom is asked"
    );

    // The lookups start on their own, soon after the put.
    let mut links = Vec::new();
    while links.len() < 2 {
        let event = subscriber.next().await;
        if event["type"] == "orgsync.link.created" {
            links.push((
                event["data"]["host_user_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                event["data"]["userid"].as_str().unwrap_or("").to_owned(),
                event["data"]["method"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    links.sort();
    assert_eq!(
        links,
        [
            ("h-lina".into(), "lina".into(), "email".into()),
            ("h-xuhao".into(), "xuhao".into(), "phone".into()),
        ]
    );

    // Until the backlog is empty: then nothing else was linked, the shared mobile included.
    let report = loop {
        let report = report(&env).await;
        if report["lookups"]["pending"] == 0 {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report["links"]["phone"], 1);
    assert_eq!(report["links"]["email"], 1);
    assert_eq!(report["lookups"]["failures"], 1, "{report:#}");
    assert_eq!(
        report["ambiguous_phones"][0]["value"],
        format!("+86{ZHANGWEI}")
    );
    assert_eq!(
        report["ambiguous_phones"][0]["host_users"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let calls = env.sim.calls();
    assert_eq!(
        calls.get(Endpoint::UserGetUserId),
        3,
        "one call per distinct mobile"
    );
    assert_eq!(calls.get(Endpoint::UserGetUserIdByEmail), 1);

    // A resync asks nothing again: every answer is cached.
    env.run(&["resync", "--wait"]).await;
    let report = self::report(&env).await;
    assert_eq!(report["lookups"]["pending"], 0);
    assert_eq!(env.sim.calls().get(Endpoint::UserGetUserId), 3);
    drop(subscriber);
    daemon.stop().await;
}

#[tokio::test]
async fn a_sync_stops_looking_up_at_the_days_failure_budget() {
    let env = Env::with_config(withheld(), "[matching]\nlookup_failure_budget = 3\n").await;
    env.sync().await;
    import_strangers(&env, 10).await;

    let output = env.run(&["sync"]).await;
    let text = success_stdout(&output);
    assert!(
        text.contains("userid lookups: 3 asked, 0 found, 3 not found")
            && text.contains("budget is spent"),
        "{text}"
    );
    assert_eq!(env.sim.calls().get(Endpoint::UserGetUserId), 3);

    let report = report(&env).await;
    assert_eq!(report["lookups"]["failures"], 3);
    assert_eq!(report["lookups"]["budget"], 3);
    assert_eq!(report["lookups"]["pending"], 7);
    let text = env.run(&["match", "report"]).await;
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("budget spent, resuming tomorrow"),
        "{}",
        describe(&text)
    );

    // The budget is the day's, not the run's: the next sync asks nothing.
    let output = env.run(&["sync"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(env.sim.calls().get(Endpoint::UserGetUserId), 3);
}

#[tokio::test]
async fn wecoms_daily_block_pauses_the_lookups() {
    let mut directory = withheld();
    // WeCom blocks lookups once the day's failures exceed 20% of this (2): from the fourth.
    directory.headcount_limit = 10;
    let env = Env::with_config(
        directory,
        "[matching]\nlookup_failure_budget = 100\nlookup_concurrency = 1\n",
    )
    .await;
    env.sync().await;
    import_strangers(&env, 10).await;

    let output = env.run(&["sync"]).await;
    let text = success_stdout(&output);
    assert!(text.contains("WeCom refused lookups (45009)"), "{text}");
    // Three failures, then the call that WeCom refused; none after it.
    assert_eq!(env.sim.calls().get(Endpoint::UserGetUserId), 4);
    let report = report(&env).await;
    assert!(report["lookups"]["blocked_at"].is_string(), "{report:#}");

    env.run(&["sync"]).await;
    assert_eq!(env.sim.calls().get(Endpoint::UserGetUserId), 4);
}

/// 45011 is WeChat's code for a frequency limit; the fact sheet says to treat it as 45009.
#[tokio::test]
async fn a_45011_pauses_the_lookups_as_a_45009_does() {
    let env = Env::with_config(
        withheld(),
        "[matching]\nlookup_failure_budget = 100\nlookup_concurrency = 1\n",
    )
    .await;
    env.sync().await;
    import_strangers(&env, 10).await;
    env.sim
        .inject(Fault::Errcode(45011).on(Endpoint::UserGetUserId));

    let output = env.run(&["sync"]).await;
    let text = success_stdout(&output);
    assert!(text.contains("WeCom refused lookups (45009)"), "{text}");
    assert_eq!(env.sim.calls().get(Endpoint::UserGetUserId), 1);
    let report = report(&env).await;
    assert!(report["lookups"]["blocked_at"].is_string(), "{report:#}");
}

#[tokio::test]
async fn the_daemon_and_orgsync_sync_asking_at_once_share_one_budget() {
    let env = Env::with_config(
        withheld(),
        "[matching]\nlookup_failure_budget = 4\nlookup_concurrency = 2\n",
    )
    .await;
    env.sync().await;
    // The daemon's pass starts after the import; its first two calls wait at WeCom's door.
    env.sim.hold(Endpoint::UserGetUserId);
    let daemon = env.start_daemon().await;
    import_strangers(&env, 10).await;
    env.sim.wait_for_calls(Endpoint::UserGetUserId, 2).await;

    // The daemon holds the whole budget for the batch it is asking: `orgsync sync` asks nothing.
    success_stdout(&env.run(&["sync"]).await);
    assert_eq!(env.sim.calls().get(Endpoint::UserGetUserId), 2);
    assert_eq!(
        report(&env).await["lookups"]["failures"],
        4,
        "reserved, in flight"
    );

    env.sim.release(Endpoint::UserGetUserId);
    env.sim.wait_for_calls(Endpoint::UserGetUserId, 4).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while report(&env).await["lookups"]["failures"] != 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pass did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.sim.calls().get(Endpoint::UserGetUserId), 4);
    daemon.stop().await;
}
