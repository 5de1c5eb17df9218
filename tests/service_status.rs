//! `orgsync status` through the binary: what it reports, in both forms, and its exit status,
//! which makes it a health check (0 healthy, 1 the last run failed, 3 the last run is held).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod service_support;

use chrono::DateTime;
use orgsync::store::{consumers, event_log, Store};
use orgsync_simulator::{Directory, Endpoint, Fault, Simulator};
use serde_json::Value;
use service_support::{output, status_line, text, Daemon, Instance, NotifySocket};

async fn status(instance: &Instance) -> (Option<i32>, String, Value) {
    let human = output(instance.command(&["status"])).await;
    let json = output(instance.command(&["status", "--json"])).await;
    assert_eq!(human.status.code(), json.status.code(), "{}", text(&json));
    let report = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", text(&json)));
    (
        human.status.code(),
        String::from_utf8_lossy(&human.stdout).into_owned(),
        report,
    )
}

async fn sync(instance: &Instance) -> Option<i32> {
    output(instance.command(&["sync"])).await.status.code()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_the_last_run_and_exits_by_its_outcome() {
    let sim = Simulator::start(Directory::sample())
        .await
        .expect("simulator");
    let members = sim.directory().users.len() as i64;
    // Any member leaving holds the run, so that one departure is enough to hold one.
    let instance = Instance::new(&sim, "safety.max_deletes = 0");

    assert_eq!(sync(&instance).await, Some(0));
    {
        let store = Store::open(&instance.path("orgsync.db")).expect("store");
        let head = event_log::head(store.conn()).expect("head");
        consumers::ack(store.conn(), "crm", head - 5).expect("ack");
    }
    // Status needs no secret: under systemd the secret is a credential that a shell lacks.
    std::fs::remove_file(instance.path("secret")).expect("remove the secret");

    let (code, human, report) = status(&instance).await;
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
    let (code, human, report) = status(&instance).await;
    assert_eq!(code, Some(1), "{human}");
    assert_eq!(report["last_run"]["outcome"], "failed");
    assert!(human.contains("#2 FAILED (cli)"), "{human}");
    assert!(human.contains("error: "), "{human}");

    // A run the deletion guard holds: exit 3, with what it would change.
    sim.edit(|directory| directory.users.pop());
    assert_eq!(sync(&instance).await, Some(3));
    let (code, human, report) = status(&instance).await;
    assert_eq!(code, Some(3), "{human}");
    assert_eq!(report["last_run"]["outcome"], "held");
    assert_eq!(report["held"]["pending"]["members_left"], 1);
    assert!(human.contains("HELD:"), "{human}");
    assert!(
        human.contains("pending: members 0 joined, 0 updated, 1 left"),
        "{human}"
    );

    // Applied by force: healthy again.
    let forced = output(instance.command(&["sync", "--force"])).await;
    assert!(forced.status.success(), "{}", text(&forced));
    let (code, human, _) = status(&instance).await;
    assert_eq!(code, Some(0), "{human}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_asks_the_running_daemon_what_it_is_doing() {
    let sim = Simulator::start(Directory::sample())
        .await
        .expect("simulator");
    let instance = Instance::new(&sim, "");
    let mut notify = NotifySocket::bind(instance.path("notify.sock"));
    let mut command = instance.command(&["run"]);
    command.env("NOTIFY_SOCKET", &notify.path);
    let daemon = Daemon::spawn(command, &instance.path("daemon.log"));
    notify
        .wait_for("the start-up sync's STATUS=", |m| {
            status_line(m).is_some_and(|s| s.contains("run 1 completed"))
        })
        .await;

    let (code, human, report) = status(&instance).await;
    assert_eq!(code, Some(0), "{human}\n{}", daemon.output());
    assert_eq!(report["daemon"]["pid"], daemon.pid);
    assert_eq!(report["daemon"]["running"], Value::Null);
    assert_eq!(report["last_run"]["trigger"], "startup");
    assert!(
        human.contains(&format!("daemon:     running, pid {}; idle", daemon.pid)),
        "{human}"
    );

    daemon.signal(libc::SIGTERM);
    assert!(daemon.exit().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn status_without_a_store_fails_and_creates_none() {
    let sim = Simulator::start(Directory::sample())
        .await
        .expect("simulator");
    let instance = Instance::new(&sim, "");
    let out = output(instance.command(&["status"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no store this user can read at"),
        "{}",
        text(&out)
    );
    assert!(!instance.path("orgsync.db").exists());
}
