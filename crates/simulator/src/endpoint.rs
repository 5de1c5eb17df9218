//! The WeCom APIs the simulator serves, and how often each was called.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// One API, named on the wire (fault rules, `/_sim/calls`) by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    #[serde(rename = "/cgi-bin/gettoken")]
    GetToken,
    #[serde(rename = "/cgi-bin/department/list")]
    DepartmentList,
    #[serde(rename = "/cgi-bin/department/simplelist")]
    DepartmentSimpleList,
    #[serde(rename = "/cgi-bin/department/get")]
    DepartmentGet,
    #[serde(rename = "/cgi-bin/user/list")]
    UserList,
    #[serde(rename = "/cgi-bin/user/simplelist")]
    UserSimpleList,
    #[serde(rename = "/cgi-bin/user/get")]
    UserGet,
    #[serde(rename = "/cgi-bin/user/list_id")]
    UserListId,
    #[serde(rename = "/cgi-bin/auth/getuserinfo")]
    AuthGetUserInfo,
    #[serde(rename = "/cgi-bin/user/getuserid")]
    UserGetUserId,
    #[serde(rename = "/cgi-bin/user/get_userid_by_email")]
    UserGetUserIdByEmail,
    #[serde(rename = "/cgi-bin/agent/get")]
    AgentGet,
}

impl Endpoint {
    pub const ALL: [Endpoint; 12] = [
        Endpoint::GetToken,
        Endpoint::DepartmentList,
        Endpoint::DepartmentSimpleList,
        Endpoint::DepartmentGet,
        Endpoint::UserList,
        Endpoint::UserSimpleList,
        Endpoint::UserGet,
        Endpoint::UserListId,
        Endpoint::AuthGetUserInfo,
        Endpoint::UserGetUserId,
        Endpoint::UserGetUserIdByEmail,
        Endpoint::AgentGet,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::GetToken => "/cgi-bin/gettoken",
            Endpoint::DepartmentList => "/cgi-bin/department/list",
            Endpoint::DepartmentSimpleList => "/cgi-bin/department/simplelist",
            Endpoint::DepartmentGet => "/cgi-bin/department/get",
            Endpoint::UserList => "/cgi-bin/user/list",
            Endpoint::UserSimpleList => "/cgi-bin/user/simplelist",
            Endpoint::UserGet => "/cgi-bin/user/get",
            Endpoint::UserListId => "/cgi-bin/user/list_id",
            Endpoint::AuthGetUserInfo => "/cgi-bin/auth/getuserinfo",
            Endpoint::UserGetUserId => "/cgi-bin/user/getuserid",
            Endpoint::UserGetUserIdByEmail => "/cgi-bin/user/get_userid_by_email",
            Endpoint::AgentGet => "/cgi-bin/agent/get",
        }
    }

    pub fn from_path(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }

    /// The query parameter naming a department, which a fault rule may match on.
    pub(crate) fn department_param(self) -> Option<&'static str> {
        match self {
            Endpoint::DepartmentList | Endpoint::DepartmentSimpleList | Endpoint::DepartmentGet => {
                Some("id")
            }
            Endpoint::UserList | Endpoint::UserSimpleList => Some("department_id"),
            Endpoint::GetToken
            | Endpoint::UserGet
            | Endpoint::UserListId
            | Endpoint::AuthGetUserInfo
            | Endpoint::UserGetUserId
            | Endpoint::UserGetUserIdByEmail
            | Endpoint::AgentGet => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// Calls received per API since the simulator started, failed ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    counts: [u64; Endpoint::ALL.len()],
}

impl CallCounts {
    pub fn get(&self, endpoint: Endpoint) -> u64 {
        self.counts[endpoint.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn record(&mut self, endpoint: Endpoint) {
        self.counts[endpoint.index()] += 1;
    }
}

/// `{"/cgi-bin/gettoken": 1, …}`, every endpoint listed.
impl Serialize for CallCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Endpoint::ALL.len()))?;
        for endpoint in Endpoint::ALL {
            map.serialize_entry(endpoint.path(), &self.get(endpoint))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_index_the_counts() {
        for (i, endpoint) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(endpoint.index(), i);
            assert_eq!(Endpoint::from_path(endpoint.path()), Some(endpoint));
            let json = serde_json::to_string(&endpoint).unwrap();
            assert_eq!(json, format!("\"{}\"", endpoint.path()));
        }
        assert_eq!(Endpoint::from_path("/cgi-bin/user/delete"), None);
    }
}
