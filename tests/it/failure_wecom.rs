//! WeCom's failure modes (issue #3, items 1 and 4), each reproduced by the simulator and run
//! through the real `orgsync sync`: what fails the run (and changes nothing), what is retried,
//! and how often WeCom is called meanwhile.

use std::time::{Duration, Instant};

use crate::harness::{
    self, assert_failed, assert_sync_fails, describe, types, user, Env, StoreState, FAST_WECOM,
};
use orgsync_simulator::{Directory, Endpoint, Fault};

/// The sample company, synced once, with `wecom` added to the fast retry settings.
async fn synced(wecom: &str) -> (Env, StoreState) {
    let env = Env::with_wecom(Directory::sample(), &format!("{FAST_WECOM}{wecom}"), "").await;
    env.sync().await;
    let state = env.state();
    (env, state)
}

/// [`synced`], then changed for the next run to apply: one promotion, one departure.
async fn synced_and_changed(wecom: &str) -> (Env, StoreState) {
    let (env, state) = synced(wecom).await;
    env.sim.edit(|directory| {
        user(directory, "lina").position = "技术总监".into();
        directory.users.retain(|u| u.userid != "gaopeng");
    });
    (env, state)
}

fn calls(env: &Env, endpoint: Endpoint) -> u64 {
    env.sim.calls().get(endpoint)
}

/// With concurrency 1 the pull lists departments in `department/list` order, which for the
/// whole visible tree (no `id`) is the directory's: 1, 2, then 3, the one the faults below hit.
const BEFORE_DEPARTMENT_3: u64 = 2;

#[tokio::test]
async fn a_department_that_keeps_failing_fails_the_whole_run_and_changes_nothing() {
    // Two-second requests, so that a hung call fails in seconds.
    let (env, _) = synced_and_changed("concurrency = 1\nrequest_timeout_secs = 2\n").await;
    for (fault, code, says) in [
        (
            Fault::Errcode(-1),
            "wecom_errcode",
            "WeCom errcode -1 (WeCom system busy)",
        ),
        (
            Fault::HttpStatus(502),
            "transport",
            "HTTP status 502 Bad Gateway",
        ),
        (Fault::Reset, "transport", "Connection reset by peer"),
        (
            Fault::NotJson,
            "transport",
            "response body is not JSON or is truncated",
        ),
        (
            Fault::Truncated,
            "transport",
            "response body is not JSON or is truncated",
        ),
        (Fault::Hang, "transport", "operation timed out"),
    ] {
        let before = env.state();
        let user_lists = calls(&env, Endpoint::UserList);
        // One attempt and the two retries of FAST_WECOM.
        env.sim
            .inject(fault.clone().on(Endpoint::UserList).department(3).times(3));
        let (line, _) = assert_sync_fails(&before, &env, code).await;
        assert!(line.contains(says), "{fault:?}: {line}");
        assert!(line.contains("user/list (department 3)"), "{line}");
        assert!(line.contains("(gave up after 3 attempts)"), "{line}");
        assert_eq!(
            calls(&env, Endpoint::UserList) - user_lists,
            BEFORE_DEPARTMENT_3 + 3,
            "{fault:?}: departments before 3 once, then 3 attempts at department 3"
        );
    }

    // The faults are used up: the next run applies exactly what changed.
    let events = env.sync_events().await;
    assert_eq!(
        types(&events),
        [
            "orgsync.member.updated",
            "orgsync.member.left",
            "orgsync.sync.completed"
        ]
    );
    assert_eq!(events[0]["subject"], "member/lina");
    assert_eq!(events[1]["subject"], "member/gaopeng");
}

#[tokio::test]
async fn transient_failures_are_retried_and_the_run_completes() {
    let (env, _) = synced("request_timeout_secs = 2\n").await;
    for (round, fault) in [
        Fault::Errcode(-1),
        Fault::HttpStatus(500),
        Fault::HttpStatus(503),
        Fault::Reset,
        Fault::NotJson,
        Fault::Truncated,
        Fault::Hang,
    ]
    .into_iter()
    .enumerate()
    {
        let head = env.state().head();
        let (user_lists, tokens) = (
            calls(&env, Endpoint::UserList),
            calls(&env, Endpoint::GetToken),
        );
        env.sim
            .edit(|d| user(d, "lina").position = format!("架构师 {round}"));
        // Two failures, within the two retries FAST_WECOM allows.
        env.sim
            .inject(fault.clone().on(Endpoint::UserList).department(3).times(2));
        let output = env.sync().await;
        harness::assert_no_panic(&String::from_utf8_lossy(&output.stderr));
        let events = env.events_since(head).await;
        assert_eq!(
            types(&events),
            ["orgsync.member.updated", "orgsync.sync.completed"],
            "{fault:?}"
        );
        assert_eq!(
            calls(&env, Endpoint::UserList) - user_lists,
            6 + 2,
            "{fault:?}: six departments, two of the calls repeated"
        );
        assert_eq!(
            calls(&env, Endpoint::GetToken) - tokens,
            0,
            "{fault:?}: the token an earlier run left in the store is used"
        );
    }
}

/// Runs `orgsync sync` and applies `invalidate` to every token issued so far while the pull's
/// last `user/list` (department 6, last in `department/list` order) is held for two seconds
/// before WeCom checks its token.
async fn sync_invalidating_tokens_mid_run(
    env: &Env,
    invalidate: impl FnOnce(&Env),
) -> std::process::Output {
    env.sim.inject(
        Fault::Delay(Duration::from_secs(2))
            .on(Endpoint::UserList)
            .department(6),
    );
    let all = calls(env, Endpoint::UserList) + 6;
    let child = env.spawn(&["sync"]);
    tokio::time::timeout(
        harness::WAIT,
        env.sim.wait_for_calls(Endpoint::UserList, all),
    )
    .await
    .expect("the pull reaches its last department");
    invalidate(env);
    tokio::time::timeout(harness::WAIT, child.wait_with_output())
        .await
        .expect("sync finishes")
        .expect("wait for sync")
}

#[tokio::test]
async fn a_token_expired_or_revoked_mid_run_is_refreshed_once() {
    for (errcode, invalidate, concurrency) in [
        (42001, Env::expire as fn(&Env), 1),
        (40014, Env::revoke as fn(&Env), 1),
        // Several calls in flight are rejected together; one `gettoken` serves them all.
        (42001, Env::expire as fn(&Env), 4),
    ] {
        let env = Env::with_wecom(
            Directory::sample(),
            &format!("{FAST_WECOM}concurrency = {concurrency}\n"),
            "",
        )
        .await;
        let output = sync_invalidating_tokens_mid_run(&env, invalidate).await;
        assert!(output.status.success(), "{errcode}: {}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("errcode={errcode}"))
                && stderr.contains("fetching a new one and retrying once"),
            "{errcode}: {stderr}"
        );
        assert_eq!(calls(&env, Endpoint::GetToken), 2, "{errcode}: one refresh");
        let repeated = calls(&env, Endpoint::UserList) - 6;
        assert!(
            (1..=concurrency).contains(&repeated),
            "{errcode}: only the rejected calls in flight are repeated: {repeated}"
        );
        let state = env.state();
        assert_eq!(state.mirror.members.len(), 15);
        assert_eq!(state.replayed(), state.mirror);
    }
}

impl Env {
    fn expire(&self) {
        self.sim.expire_tokens();
    }

    fn revoke(&self) {
        self.sim.revoke_tokens();
    }
}

#[tokio::test]
async fn a_token_that_cannot_be_refreshed_fails_the_run() {
    let (env, before) = synced_and_changed("").await;
    let output = sync_invalidating_tokens_mid_run(&env, |env| {
        env.sim.expire_tokens();
        // The app's secret was reset in the admin console meanwhile.
        env.sim
            .edit(|d| d.corp_secret = "rotated by an admin".into());
    })
    .await;
    let (line, _) = assert_failed(&before, &env, &output, "token");
    assert!(line.contains("WeCom errcode 40001"), "{line}");
    assert!(line.contains("copy the app's Secret again"), "{line}");
    assert_eq!(
        calls(&env, Endpoint::GetToken),
        2,
        "one for the first run, whose token the second used until it expired, one refresh"
    );
}

#[tokio::test]
async fn an_answer_without_its_data_fails_at_once_and_is_not_read_as_empty() {
    let (env, before) = synced_and_changed("").await;
    let user_lists = calls(&env, Endpoint::UserList);
    // `{"errcode":0,"errmsg":"ok"}`: success, but no `userlist` at all.
    env.sim
        .inject(Fault::Errcode(0).on(Endpoint::UserList).department(3));
    let (line, _) = assert_sync_fails(&before, &env, "malformed_response").await;
    assert!(
        line.contains(
            "user/list (department 3): unexpected response from WeCom: errcode 0 but no `userlist`"
        ),
        "{line}"
    );
    assert!(
        calls(&env, Endpoint::UserList) - user_lists <= 6,
        "not retried"
    );
}

#[tokio::test]
async fn transient_retries_back_off_exponentially() {
    let env = Env::with_wecom(
        Directory::sample(),
        "retry_attempts = 2\nretry_base_delay_ms = 200\nconcurrency = 1\n",
        "",
    )
    .await;
    env.sim
        .inject(Fault::Errcode(-1).on(Endpoint::UserList).times(2));
    let child = env.spawn(&["sync"]);
    let mut arrived = Vec::new();
    for call in 1..=3 {
        tokio::time::timeout(
            harness::WAIT,
            env.sim.wait_for_calls(Endpoint::UserList, call),
        )
        .await
        .expect("the call arrives");
        arrived.push(Instant::now());
    }
    let output = tokio::time::timeout(harness::WAIT, child.wait_with_output())
        .await
        .expect("sync finishes")
        .expect("wait");
    assert!(output.status.success(), "{}", describe(&output));
    // The first retry waits at least the base delay, the second at least twice that (each
    // plus up to as much again of jitter).
    assert!(arrived[1] - arrived[0] >= Duration::from_millis(200));
    assert!(arrived[2] - arrived[1] >= Duration::from_millis(400));
}

#[tokio::test]
async fn a_department_deleted_during_the_pull_fails_the_run_and_the_rerun_applies_the_move() {
    let (env, before) = synced("").await;
    // Department 4 is deleted between department/list and its user/list: WeCom says 60003.
    env.sim
        .inject(Fault::Errcode(60003).on(Endpoint::UserList).department(4));
    let (line, _) = assert_sync_fails(&before, &env, "wecom_errcode").await;
    assert!(
        line.contains("user/list (department 4): WeCom errcode 60003 (department not found)"),
        "{line}"
    );
    assert!(line.contains("rerun the sync"), "{line}");

    // The deletion done: its members were moved to the parent first, as WeCom requires.
    env.sim.edit(|d| {
        d.departments.retain(|department| department.id != 4);
        for user in &mut d.users {
            if let Some(at) = user.department.iter().position(|&id| id == 4) {
                user.department.remove(at);
                user.order.remove(at);
                user.is_leader_in_dept.remove(at);
                if user.department.is_empty() {
                    user.department = vec![2];
                    user.order = vec![0];
                    user.is_leader_in_dept = vec![0];
                }
                user.main_department = user.department[0];
            }
        }
    });
    let events = env.sync_events().await;
    assert_eq!(
        types(&events),
        [
            "orgsync.member.updated",
            "orgsync.member.updated",
            "orgsync.member.updated",
            "orgsync.department.deleted",
            "orgsync.sync.completed"
        ],
        "the three members of department 4 move; nobody leaves"
    );
}

/// A fresh store, WeCom refusing with `errcode`: the run fails at once, says what the errcode
/// means and what to do, and calls nothing twice.
async fn refused(env: &Env, errcode: i64, says: &[&str]) -> String {
    let before = env.state();
    let output = env.run(&["sync"]).await;
    let code = if calls(env, Endpoint::DepartmentList) == 0 {
        "token"
    } else {
        "wecom_errcode"
    };
    let (line, _) = assert_failed(&before, env, &output, code);
    assert!(line.contains(&format!("WeCom errcode {errcode}")), "{line}");
    for text in says {
        assert!(line.contains(text), "{errcode}: no {text:?} in {line}");
    }
    let counts = env.sim.calls();
    assert_eq!(counts.get(Endpoint::GetToken), 1, "{errcode}: {counts:?}");
    assert!(
        counts.get(Endpoint::DepartmentList) <= 1,
        "{errcode}: {counts:?}"
    );
    assert_eq!(counts.get(Endpoint::UserList), 0, "{errcode}: {counts:?}");
    line
}

/// [`refused`], with a fresh store and WeCom answering `errcode` on `endpoint`.
async fn refused_on(endpoint: Endpoint, errcode: i64, says: &[&str]) {
    let env = Env::with_wecom(Directory::sample(), FAST_WECOM, "").await;
    env.sim.inject(Fault::Errcode(errcode).on(endpoint));
    refused(&env, errcode, says).await;
}

#[tokio::test]
async fn a_bad_secret_fails_at_once_with_40001_its_meaning_and_the_fix() {
    let env = Env::with_wecom(Directory::sample(), FAST_WECOM, "").await;
    std::fs::write(env.dir.path().join("secret"), "not-the-apps-secret").expect("write");
    refused(
        &env,
        40001,
        &[
            "gettoken: could not obtain an access token",
            "invalid corp secret",
            "copy the app's Secret again from the admin console",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_wrong_corp_id_fails_at_once_with_40013_its_meaning_and_the_fix() {
    let env = Env::with_wecom(Directory::sample(), FAST_WECOM, "").await;
    let config = std::fs::read_to_string(&env.config_path).expect("read config");
    let corp_id = env.sim.directory().corp_id;
    std::fs::write(
        &env.config_path,
        config.replace(&corp_id, "ww00000000deadbeef"),
    )
    .expect("write config");
    refused(&env, 40013, &["invalid corpid", "set wecom.corp_id"]).await;
}

#[tokio::test]
async fn an_untrusted_ip_fails_at_once_with_60020_naming_the_ip() {
    refused_on(
        Endpoint::GetToken,
        60020,
        &[
            "this server's IP 127.0.0.1 is not in the app's trusted IPs (企业可信IP)",
            "WeCom hint: ",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_contact_sync_secret_from_a_new_ip_fails_at_once_with_48009() {
    let mut directory = Directory::sample();
    directory.contact_sync_detail_forbidden = true;
    let env = Env::with_wecom(directory, FAST_WECOM, "").await;
    let secret = env
        .sim
        .directory()
        .contact_sync_secret
        .expect("the sample has one");
    std::fs::write(env.dir.path().join("secret"), secret).expect("write");
    refused(
        &env,
        48009,
        &[
            "department/list: WeCom errcode 48009",
            "contact-sync secret",
            "use the secret of a self-built app",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_api_not_permitted_for_the_secret_fails_at_once_with_48002() {
    refused_on(
        Endpoint::DepartmentList,
        48002,
        &[
            "API not permitted for this kind of secret",
            "self-built app",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_errcode_orgsync_does_not_know_fails_at_once_and_is_not_retried() {
    refused_on(
        Endpoint::DepartmentList,
        99_999,
        &["which orgsync does not know and does not retry"],
    )
    .await;
}

#[tokio::test]
async fn after_a_bad_secret_gettoken_is_not_called_again_by_later_runs_or_retries() {
    let env = Env::with_wecom(
        Directory::sample(),
        FAST_WECOM,
        "[schedule]\nretry_attempts = 2\nretry_delay_secs = 1\n",
    )
    .await;
    let secret = env.dir.path().join("secret");
    std::fs::write(&secret, "not-the-apps-secret").expect("write");

    // Three runs in a row, as a cron job or an impatient operator would start them.
    for run in 1..=3 {
        let before = env.state();
        let (line, _) = assert_sync_fails(&before, &env, "token").await;
        assert!(line.contains("40001"), "run {run}: {line}");
        assert_eq!(calls(&env, Endpoint::GetToken), 1, "run {run}: {line}");
    }

    // The daemon's start-up run and its two retries are refused without asking WeCom either.
    // The head is read before the daemon starts: its start-up run may fail before a subscriber
    // gets in.
    let head = env.state().head();
    let daemon = env.start_daemon().await;
    let mut subscriber = env
        .subscribe(serde_json::json!({"op": "subscribe", "since": head}))
        .await;
    for attempt in 0..3 {
        let run = subscriber.run_events().await;
        assert_eq!(types(&run), ["orgsync.sync.failed"], "attempt {attempt}");
        assert_eq!(run[0]["data"]["error"]["code"], "token");
    }
    assert_eq!(calls(&env, Endpoint::GetToken), 1);

    // Once the secret is fixed, the next run asks again and succeeds.
    std::fs::write(&secret, env.sim.directory().corp_secret).expect("write");
    daemon.signal(libc::SIGHUP);
    let run = subscriber.run_events().await;
    assert_eq!(
        run.last().expect("events")["type"],
        "orgsync.sync.completed"
    );
    assert_eq!(calls(&env, Endpoint::GetToken), 2);
    let stderr = daemon.stop().await;
    harness::assert_no_panic(&stderr);
}

#[tokio::test]
async fn a_frequency_limit_pauses_every_call_for_the_window_then_the_run_completes() {
    let mut directory = Directory::sample();
    // Four calls per API per two seconds: the pull's six `user/list` calls overrun it.
    directory.rate_limit_per_minute = Some(4);
    directory.rate_limit_window_ms = 2000;
    let env = Env::with_wecom(
        directory,
        &format!("{FAST_WECOM}rate_limit_pause_secs = 2\n"),
        "",
    )
    .await;
    let started = Instant::now();
    let output = env.sync().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WeCom frequency limit; pausing every call"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("pausing every call").count(),
        1,
        "the calls in flight join one pause: {stderr}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited out the window"
    );
    let user_lists = calls(&env, Endpoint::UserList);
    assert!(
        (7..=6 + 4).contains(&user_lists),
        "six departments, at most the four calls in flight repeated: {user_lists}"
    );
    let state = env.state();
    assert_eq!(state.mirror.members.len(), 15);
    assert_eq!(state.replayed(), state.mirror);
}

#[tokio::test]
async fn a_frequency_limit_that_persists_fails_the_run_without_a_retry_storm() {
    let (env, before) = synced_and_changed("rate_limit_pause_secs = 1\n").await;
    let user_lists = calls(&env, Endpoint::UserList);
    env.sim
        .inject(Fault::Errcode(45009).on(Endpoint::UserList).times(1000));
    let started = Instant::now();
    let (line, _) = assert_sync_fails(&before, &env, "rate_limited").await;
    assert!(line.contains("WeCom errcode 45009"), "{line}");
    // Each call sits out at most three one-second windows; the four calls in flight share
    // them. So at most 4 calls per window, 4 windows: never a storm.
    let made = calls(&env, Endpoint::UserList) - user_lists;
    assert!(made <= 4 * 4, "{made} user/list calls");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "three windows waited out"
    );
}

#[tokio::test]
async fn a_concurrency_limit_lowers_concurrency_and_the_run_completes() {
    let mut directory = Directory::generate(11, 40, 400);
    // WeCom lets two calls per API run at once; orgsync starts with four.
    directory.max_concurrent_per_api = Some(2);
    directory.latency_ms = 30;
    let env = Env::with_wecom(directory, &format!("{FAST_WECOM}concurrency = 4\n"), "").await;
    let output = env.sync().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WeCom concurrency limit (45033); lowering user/list concurrency"),
        "{stderr}"
    );
    let state = env.state();
    assert_eq!(state.mirror.members.len(), 400);
    assert_eq!(state.mirror.departments.len(), 40);
    assert_eq!(state.replayed(), state.mirror);
    assert_eq!(
        types(&state.event_values()).last(),
        Some(&"orgsync.sync.completed")
    );
}

/// WeCom no longer promises that a second `gettoken` returns the token already issued rather
/// than a new one invalidating it, so the processes of one corp share one token beside the
/// store: an `orgsync sync` beside the daemon, and the daemon after a restart, ask for none. A
/// token WeCom revoked is replaced once, by whichever process meets the refusal first, and the
/// others take the new one.
#[tokio::test]
async fn processes_of_one_corp_share_one_access_token() {
    let env = Env::with_wecom(Directory::sample(), FAST_WECOM, "").await;
    let (daemon, _) = env.start_synced_daemon().await;
    assert_eq!(calls(&env, Endpoint::GetToken), 1);

    let output = env.sync().await;
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        calls(&env, Endpoint::GetToken),
        1,
        "orgsync sync used the daemon's"
    );

    env.sim.revoke_tokens();
    let output = env.sync().await;
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        calls(&env, Endpoint::GetToken),
        2,
        "one refresh of the revoked token"
    );
    // The daemon still holds the revoked one: refused, it takes the one orgsync sync fetched.
    resync(&env).await;
    assert_eq!(
        calls(&env, Endpoint::GetToken),
        2,
        "the daemon took the new one"
    );
    daemon.stop().await;

    let daemon = env.start_daemon().await;
    resync(&env).await;
    assert_eq!(
        calls(&env, Endpoint::GetToken),
        2,
        "the restarted daemon used it too"
    );
    daemon.stop().await;
}

/// `orgsync resync --wait` against the running daemon, which completes a run.
async fn resync(env: &Env) {
    let output = env.run(&["resync", "--wait"]).await;
    assert!(output.status.success(), "{}", describe(&output));
}
