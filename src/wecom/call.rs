//! The WeCom calls orgsync makes, and how many of each it has made.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::DepartmentId;

/// One WeCom API call. Errors and logs name calls this way: the endpoint path and the id, never
/// the URL, whose query string carries the secret or the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    GetToken,
    /// `None`: everything the app can see.
    DepartmentList {
        id: Option<DepartmentId>,
    },
    UserList {
        department_id: DepartmentId,
    },
    /// `auth/getuserinfo`: a login code for the person. The code is never part of the name.
    AuthGetUserInfo,
    /// `user/get`: one member.
    UserGet,
    /// `user/getuserid`: whose a mobile is. The mobile is never part of the name.
    UserGetUserId,
    /// `user/get_userid_by_email`: whose an email is.
    UserGetUserIdByEmail,
    /// `agent/get`: the app's visible range, asked for by the configured `wecom.agent_id`.
    AgentGet {
        agent_id: i64,
    },
}

impl Call {
    const COUNT: usize = 8;

    /// The path under `/cgi-bin/`.
    pub fn path(self) -> &'static str {
        match self {
            Call::GetToken => "gettoken",
            Call::DepartmentList { .. } => "department/list",
            Call::UserList { .. } => "user/list",
            Call::AuthGetUserInfo => "auth/getuserinfo",
            Call::UserGet => "user/get",
            Call::UserGetUserId => "user/getuserid",
            Call::UserGetUserIdByEmail => "user/get_userid_by_email",
            Call::AgentGet { .. } => "agent/get",
        }
    }

    /// A userid lookup, which WeCom blocks for the rest of the day past a failure limit.
    pub fn is_lookup(self) -> bool {
        matches!(self, Call::UserGetUserId | Call::UserGetUserIdByEmail)
    }

    fn index(self) -> usize {
        match self {
            Call::GetToken => 0,
            Call::DepartmentList { .. } => 1,
            Call::UserList { .. } => 2,
            Call::AuthGetUserInfo => 3,
            Call::UserGet => 4,
            Call::UserGetUserId => 5,
            Call::UserGetUserIdByEmail => 6,
            Call::AgentGet { .. } => 7,
        }
    }

    const ALL: [Call; Call::COUNT] = [
        Call::GetToken,
        Call::DepartmentList { id: None },
        Call::UserList { department_id: 0 },
        Call::AuthGetUserInfo,
        Call::UserGet,
        Call::UserGetUserId,
        Call::UserGetUserIdByEmail,
        Call::AgentGet { agent_id: 0 },
    ];
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Call::GetToken => f.write_str("gettoken"),
            Call::DepartmentList { id: Some(id) } => write!(f, "department/list (id {id})"),
            Call::DepartmentList { id: None } => f.write_str("department/list"),
            Call::UserList { department_id } => {
                write!(f, "user/list (department {department_id})")
            }
            Call::AuthGetUserInfo => f.write_str("auth/getuserinfo"),
            // The agentid names the key to fix (`wecom.agent_id`) when WeCom refuses it.
            Call::AgentGet { agent_id } => write!(f, "agent/get (wecom.agent_id {agent_id})"),
            Call::UserGet | Call::UserGetUserId | Call::UserGetUserIdByEmail => {
                f.write_str(self.path())
            }
        }
    }
}

/// Counts since the client was created; [`ClientStats::since`] gives the counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests per endpoint path, retries and `gettoken` included.
    pub calls: BTreeMap<&'static str, u64>,
    /// Requests that were repeated after a failure (transport, -1, 45009, 45033, stale token).
    pub retries: u64,
    /// 45009/45011 answers.
    pub rate_limited: u64,
    /// 45033 answers.
    pub concurrency_limited: u64,
}

impl ClientStats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &ClientStats) -> ClientStats {
        ClientStats {
            calls: self
                .calls
                .iter()
                .map(|(path, n)| {
                    (
                        *path,
                        n.saturating_sub(earlier.calls.get(path).copied().unwrap_or(0)),
                    )
                })
                .collect(),
            retries: self.retries.saturating_sub(earlier.retries),
            rate_limited: self.rate_limited.saturating_sub(earlier.rate_limited),
            concurrency_limited: self
                .concurrency_limited
                .saturating_sub(earlier.concurrency_limited),
        }
    }

    /// All requests, every endpoint.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// The live counters behind [`ClientStats`], shared by every clone of the client.
#[derive(Default)]
pub(crate) struct Counters {
    calls: [AtomicU64; Call::COUNT],
    retries: AtomicU64,
    rate_limited: AtomicU64,
    concurrency_limited: AtomicU64,
}

impl Counters {
    pub(crate) fn call(&self, call: Call) {
        self.calls[call.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn concurrency_limited(&self) {
        self.concurrency_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn concurrency_limited_count(&self) -> u64 {
        self.concurrency_limited.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        ClientStats {
            calls: Call::ALL
                .iter()
                .map(|call| {
                    (
                        call.path(),
                        self.calls[call.index()].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            concurrency_limited: self.concurrency_limited_count(),
        }
    }
}
