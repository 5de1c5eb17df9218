//! `orgsync status` through the binary: what it reports, in both forms, and its exit status,
//! which makes it a health check (0 healthy, 1 the last run failed, 3 the last run is held).

use chrono::DateTime;
use orgsync::store::{consumers, event_log, Store};
use orgsync_simulator::{Directory, Endpoint, Fault};
use serde_json::Value;

use crate::harness::{assert_exits_saying, describe, Env};

async fn sync(instance: &Env) -> Option<i32> {
    instance.run(&["sync"]).await.status.code()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_the_last_run_and_exits_by_its_outcome() {
    // Any member leaving holds the run, so that one departure is enough to hold one.
    let instance = Env::with_config(Directory::sample(), "[safety]\nmax_deletes = 0\n").await;
    let sim = &instance.sim;
    let members = sim.directory().users.len() as i64;

    assert_eq!(sync(&instance).await, Some(0));
    {
        let store = Store::open(&instance.path("orgsync.db")).expect("store");
        let head = event_log::head(store.conn()).expect("head");
        consumers::ack(store.conn(), "crm", head - 5, "uid:0").expect("ack");
    }
    // Status needs no secret: under systemd the secret is a credential that a shell lacks.
    std::fs::remove_file(instance.path("secret")).expect("remove the secret");

    let (code, human, report) = instance.status().await;
    assert_eq!(code, Some(0), "{human}");
    let last = &report["last_run"];
    assert_eq!(last["outcome"], "completed");
    assert_eq!(last["trigger"], "cli");
    assert!(
        last["duration_ms"].as_i64().is_some_and(|ms| ms >= 0),
        "{last}"
    );
    assert_eq!(last["detail"]["counts"]["members_joined"], members);
    assert_eq!(report["mirror"]["members"], members);
    assert_eq!(report["timezone"], "Asia/Shanghai");
    let next = report["next_run"].as_str().expect("a next run");
    let next = DateTime::parse_from_rfc3339(next).expect("RFC 3339");
    assert_eq!(
        next.offset().local_minus_utc(),
        8 * 3600,
        "in the schedule's zone"
    );
    assert_eq!(next.format("%H:%M:%S").to_string(), "02:00:00");
    let head = report["events"]["head"].as_i64().expect("head");
    assert_eq!(report["consumers"][0]["name"], "crm");
    assert_eq!(report["consumers"][0]["lag"], 5);
    assert!(head > 5);
    assert!(report.get("daemon").is_none(), "no daemon runs: {report}");

    assert!(human.contains("last run:   #1 completed (cli)"), "{human}");
    assert!(human.contains("took "), "{human}");
    assert!(
        human.contains(&format!("members {members} joined")),
        "{human}"
    );
    assert!(human.contains("02:00:00 CST (Asia/Shanghai)"), "{human}");
    assert!(human.contains("consumer:   crm acked"), "{human}");
    assert!(human.contains("(lag 5,"), "{human}");
    assert!(human.contains("daemon:     not answering"), "{human}");

    // A run that fails: exit 1.
    let instance_secret = sim.directory().corp_secret;
    std::fs::write(instance.path("secret"), instance_secret).expect("restore the secret");
    sim.inject(Fault::Errcode(60020).on(Endpoint::UserList));
    assert_eq!(sync(&instance).await, Some(1));
    let (code, human, report) = instance.status().await;
    assert_eq!(code, Some(1), "{human}");
    assert_eq!(report["last_run"]["outcome"], "failed");
    assert!(human.contains("#2 FAILED (cli)"), "{human}");
    assert!(human.contains("error: "), "{human}");

    // A run the deletion guard holds: exit 3, with what it would change.
    sim.edit(|directory| directory.users.pop());
    assert_eq!(sync(&instance).await, Some(3));
    let (code, human, report) = instance.status().await;
    assert_eq!(code, Some(3), "{human}");
    assert_eq!(report["last_run"]["outcome"], "held");
    assert_eq!(report["held"]["pending"]["members_left"], 1);
    assert!(human.contains("HELD:"), "{human}");
    assert!(
        human.contains("pending: members 0 joined, 0 updated, 1 left"),
        "{human}"
    );

    // Applied by force: healthy again.
    let forced = instance.run(&["sync", "--force"]).await;
    assert!(forced.status.success(), "{}", describe(&forced));
    let (code, human, _) = instance.status().await;
    assert_eq!(code, Some(0), "{human}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_asks_the_running_daemon_what_it_is_doing() {
    let instance = Env::new(Directory::sample()).await;
    let mut daemon = instance.start_daemon().await;
    daemon.notify.wait_for_status("run 1 completed").await;

    let (code, human, report) = instance.status().await;
    assert_eq!(code, Some(0), "{human}\n{}", daemon.output());
    assert_eq!(report["daemon"]["pid"], daemon.pid);
    assert_eq!(report["daemon"]["running"], Value::Null);
    assert_eq!(report["last_run"]["trigger"], "startup");
    assert!(
        human.contains(&format!("daemon:     running, pid {}; idle", daemon.pid)),
        "{human}"
    );

    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_without_a_store_fails_and_creates_none() {
    let instance = Env::new(Directory::sample()).await;
    let out = instance.run(&["status"]).await;
    assert_exits_saying(&out, 1, "there is no store this user can read at");
    assert!(!instance.path("orgsync.db").exists());
}
