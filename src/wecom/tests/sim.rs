//! The WeCom simulator set up for the client and pull tests: the corp these tests' settings name,
//! and answers written by hand where a test needs a body the directory cannot produce.

use std::collections::HashMap;
use std::time::Duration;

use orgsync_simulator::{
    Directory, Endpoint, Fault, FaultRule, Request, SimDepartment, SimUser, Simulator,
};
use serde_json::{json, Value};

use crate::wecom::{ClientSettings, RetryPolicy, Secret, WecomClient};

/// Long and distinctive, so a leak anywhere is found by a plain substring search.
pub const SECRET: &str = "SECRETx9Qm2Lw7Vt4Rz1Kp8Hn3Jd6Fc5Gb0Sa2Ye7Uw4Io";
pub const CORP_ID: &str = "ww0123456789abcdef";

/// The corp the settings below name, with only its root department (1).
pub fn directory() -> Directory {
    Directory::new(CORP_ID, SECRET)
}

pub async fn start(directory: Directory) -> Simulator {
    Simulator::start(directory).await.unwrap()
}

/// Settings with delays shrunk to milliseconds.
pub fn settings(base: &str) -> ClientSettings {
    ClientSettings {
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            rate_limit_wait: Duration::from_millis(20),
            max_rate_limit_waits: 3,
            concurrency_wait: Duration::from_millis(1),
            max_concurrency_retries: 5,
        },
        ..ClientSettings::new(base, CORP_ID, Secret::new(SECRET))
    }
}

pub fn client(base: &str) -> WecomClient {
    WecomClient::new(settings(base)).unwrap()
}

/// The rule for every matching call from now on.
pub fn always(rule: FaultRule) -> FaultRule {
    rule.times(u32::MAX)
}

/// `status` with `body`, as written.
pub fn raw(status: u16, body: impl Into<String>) -> Fault {
    Fault::Raw {
        status,
        body: body.into(),
    }
}

/// `{"errcode":0,"errmsg":"ok", ...fields}`.
pub fn ok(fields: Value) -> Fault {
    let mut body = json!({"errcode": 0, "errmsg": "ok"});
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    raw(200, body.to_string())
}

/// An errcode with an errmsg of the test's choosing (`Fault::Errcode` takes WeCom's).
pub fn errcode(errcode: i64, errmsg: &str) -> Fault {
    raw(
        200,
        json!({"errcode": errcode, "errmsg": errmsg}).to_string(),
    )
}

/// The calls `sim` received for `endpoint`, oldest first.
pub fn requests(sim: &Simulator, endpoint: Endpoint) -> Vec<Request> {
    let mut requests = sim.requests();
    requests.retain(|r| r.endpoint == endpoint);
    requests
}

/// A query parameter of `request`, as a number.
pub fn id(request: &Request, key: &str) -> i64 {
    request.query[key].parse().unwrap()
}

/// A tenant given as WeCom's answers: `department/list` answers `departments` whatever its `id`,
/// `user/list` answers `users[id]`, each exactly as written, and a department without an entry
/// gets the simulator's own answer, 60003 (its directory has no departments). The pull tests
/// need this: they are about answers the simulator's consistent directory does not produce
/// (absent keys, misaligned arrays, numbers for strings, departments that contradict each
/// other, a server that ignores `id`).
pub async fn tenant(departments: Value, users: HashMap<i64, Value>) -> Simulator {
    let mut directory = directory();
    directory.departments.clear();
    let sim = start(directory).await;
    sim.inject(always(
        ok(json!({ "department": departments })).on(Endpoint::DepartmentList),
    ));
    for (id, list) in users {
        let department = u32::try_from(id).unwrap();
        sim.inject(always(
            ok(json!({ "userlist": list }))
                .on(Endpoint::UserList)
                .department(department),
        ));
    }
    sim
}

/// `n` departments under root 1, each with one member, every answer 5 ms late.
pub async fn flat_tenant(n: u32) -> Simulator {
    let mut directory = directory();
    directory
        .departments
        .extend((2..=n).map(|id| SimDepartment::new(id, format!("d{id}"), 1)));
    directory
        .users
        .extend((1..=n).map(|id| SimUser::new(format!("u{id}"), "", &[id])));
    directory.latency_ms = 5;
    start(directory).await
}

/// A mirror of `root` that holds the members named individually in the visible range, as one
/// with `wecom.agent_id` set does.
pub fn reach(root: i64) -> crate::wecom::Reach {
    crate::wecom::Reach {
        root,
        named_members: true,
    }
}
