//! The simulated tenant: the corp's credentials, its contact directory in WeCom's own field
//! layout, and the settings of the app that reads it.
//!
//! Users keep WeCom's parallel arrays (`department`, `order`, `is_leader_in_dept`) so a captured
//! `user/get` response pastes straight into a directory file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    pub corp_id: String,
    /// Secret of the self-built app: its tokens see the visible range only.
    pub corp_secret: String,
    /// Secret of the contact-sync tool: its tokens see everything and may call `user/list_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_sync_secret: Option<String>,
    pub departments: Vec<SimDepartment>,
    pub users: Vec<SimUser>,

    /// The app's visible range (可见范围): these departments and all their descendants.
    #[serde(default = "root_only")]
    pub visible_departments: Vec<u32>,
    /// Members the visible range names individually (userids, case-insensitive): the app sees
    /// them wherever their departments are, but `user/list` lists only the members of visible
    /// departments, so only `agent/get` tells a client about them.
    #[serde(default)]
    pub visible_users: Vec<String>,
    /// The app's AgentId: `agent/get` answers for it, and 40056 for any other.
    #[serde(default = "default_agent_id")]
    pub agent_id: u32,
    /// App created on or after 2022-06-20: avatar, gender, mobile, email, biz_mail, qr_code and
    /// address are left out of `user/get` and `user/list` (absent keys, not empty strings).
    #[serde(default)]
    pub withhold_sensitive: bool,
    /// Also leave out `thumb_avatar`. WeCom's documentation does not say either way, so tests can
    /// run the client against both.
    #[serde(default)]
    pub withhold_thumb_avatar: bool,
    /// The contact-sync secret is used from an IP added after 2022-08-15: its token gets 48009
    /// from the detail APIs and only the id APIs work.
    #[serde(default)]
    pub contact_sync_detail_forbidden: bool,
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
    /// `gettoken` again while the token is valid returns the same token (the 2020 doc says so,
    /// the 2024 doc no longer does). When false every call issues a new token and the old
    /// ones stay valid until they expire.
    #[serde(default = "yes")]
    pub reuse_valid_token: bool,
    /// Added to every `/cgi-bin` call, so parallelism pays off as it does against the real API.
    #[serde(default)]
    pub latency_ms: u64,
    /// Calls in flight per API above this get 45033.
    #[serde(default)]
    pub max_concurrent_per_api: Option<usize>,
    /// Calls per API per window above this get 45009, and the API stays blocked until the
    /// window ends.
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// The rate-limit window: WeCom's is a minute; tests shorten it.
    #[serde(default = "default_rate_window")]
    pub rate_limit_window_ms: u64,
    /// Whether `user/list` and `user/simplelist` honour `fetch_child=1`. The parameter is gone
    /// from the current docs and whether the server still honours it is unconfirmed.
    #[serde(default)]
    pub honour_fetch_child: bool,
    /// The corp's headcount limit (人数上限): once the failed `user/getuserid` and
    /// `user/get_userid_by_email` lookups of a day exceed 20% of it, both answer 45009 until
    /// the day ends.
    #[serde(default = "default_headcount_limit")]
    pub headcount_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDepartment {
    pub id: u32,
    pub name: String,
    /// Only set when the corp enabled multi-language names; the key is absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    /// `0` for the root.
    pub parentid: u32,
    /// Sort key inside the parent, larger first, anywhere in `[0, 2^32)`.
    #[serde(default)]
    pub order: u32,
    #[serde(default)]
    pub department_leader: Vec<String>,
}

/// A member with every field of `user/get`. `order` and `is_leader_in_dept` run parallel to
/// `department`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimUser {
    pub userid: String,
    pub name: String,
    pub department: Vec<u32>,
    pub order: Vec<u32>,
    pub is_leader_in_dept: Vec<u8>,
    pub position: String,
    pub mobile: String,
    pub gender: Gender,
    pub email: String,
    pub biz_mail: String,
    pub direct_leader: Vec<String>,
    pub avatar: String,
    pub thumb_avatar: String,
    pub telephone: String,
    pub alias: String,
    pub address: String,
    pub main_department: u32,
    pub extattr: ExtAttr,
    /// 1 active, 2 disabled, 4 not activated, 5 left the company.
    pub status: u8,
    pub qr_code: String,
    pub external_position: String,
}

/// WeCom sends gender as a JSON string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gender {
    #[default]
    #[serde(rename = "0")]
    Undefined,
    #[serde(rename = "1")]
    Male,
    #[serde(rename = "2")]
    Female,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtAttr {
    #[serde(default)]
    pub attrs: Vec<ExtAttrItem>,
}

/// One custom attribute as WeCom spells it: `type` 0 carries `text`, `type` 1 carries `web`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtAttrItem {
    #[serde(rename = "type")]
    pub kind: u8,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<ExtText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<ExtWeb>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtText {
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtWeb {
    pub url: String,
    pub title: String,
}

impl ExtAttrItem {
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> ExtAttrItem {
        ExtAttrItem {
            kind: 0,
            name: name.into(),
            text: Some(ExtText {
                value: value.into(),
            }),
            web: None,
        }
    }

    pub fn web(
        name: impl Into<String>,
        title: impl Into<String>,
        url: impl Into<String>,
    ) -> ExtAttrItem {
        ExtAttrItem {
            kind: 1,
            name: name.into(),
            text: None,
            web: Some(ExtWeb {
                url: url.into(),
                title: title.into(),
            }),
        }
    }
}

impl Default for SimUser {
    fn default() -> SimUser {
        SimUser {
            userid: String::new(),
            name: String::new(),
            department: Vec::new(),
            order: Vec::new(),
            is_leader_in_dept: Vec::new(),
            position: String::new(),
            mobile: String::new(),
            gender: Gender::Undefined,
            email: String::new(),
            biz_mail: String::new(),
            direct_leader: Vec::new(),
            avatar: String::new(),
            thumb_avatar: String::new(),
            telephone: String::new(),
            alias: String::new(),
            address: String::new(),
            main_department: 0,
            extattr: ExtAttr::default(),
            status: 1,
            qr_code: String::new(),
            external_position: String::new(),
        }
    }
}

impl SimUser {
    /// An active member of `departments` (the first is the main one), every other field empty.
    pub fn new(userid: impl Into<String>, name: impl Into<String>, departments: &[u32]) -> SimUser {
        SimUser {
            userid: userid.into(),
            name: name.into(),
            department: departments.to_vec(),
            order: vec![0; departments.len()],
            is_leader_in_dept: vec![0; departments.len()],
            main_department: departments.first().copied().unwrap_or(0),
            ..SimUser::default()
        }
    }
}

impl SimDepartment {
    pub fn new(id: u32, name: impl Into<String>, parentid: u32) -> SimDepartment {
        SimDepartment {
            id,
            name: name.into(),
            name_en: None,
            parentid,
            order: 0,
            department_leader: Vec::new(),
        }
    }
}

fn root_only() -> Vec<u32> {
    vec![1]
}

/// The AgentId WeCom's documentation uses in its examples.
fn default_agent_id() -> u32 {
    1_000_002
}

fn default_token_ttl() -> u64 {
    7200
}

fn default_headcount_limit() -> u64 {
    1000
}

fn default_rate_window() -> u64 {
    60_000
}

fn yes() -> bool {
    true
}

/// Why a directory file or a `PUT /_sim/directory` body was refused.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read directory file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("directory file {path} is not a valid directory: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("department id {0} appears more than once")]
    DuplicateDepartment(u32),
    #[error("department {id} has parent {parentid}, which does not exist")]
    UnknownParent { id: u32, parentid: u32 },
    #[error("userid {0:?} appears more than once (userids are case-insensitive)")]
    DuplicateUser(String),
    #[error("user {userid:?} is in department {department}, which does not exist")]
    UnknownDepartment { userid: String, department: u32 },
    #[error("user {0:?}: `order` and `is_leader_in_dept` must have one entry per department")]
    Misaligned(String),
    #[error("a user has an empty userid")]
    EmptyUserid,
}

impl Directory {
    /// A directory with only the root department: the starting point for hand-built tests.
    pub fn new(corp_id: impl Into<String>, corp_secret: impl Into<String>) -> Directory {
        let corp_id = corp_id.into();
        Directory {
            departments: vec![SimDepartment::new(1, corp_id.clone(), 0)],
            corp_id,
            corp_secret: corp_secret.into(),
            contact_sync_secret: None,
            users: Vec::new(),
            visible_departments: root_only(),
            visible_users: Vec::new(),
            agent_id: default_agent_id(),
            withhold_sensitive: false,
            withhold_thumb_avatar: false,
            contact_sync_detail_forbidden: false,
            token_ttl_secs: default_token_ttl(),
            reuse_valid_token: true,
            latency_ms: 0,
            max_concurrent_per_api: None,
            rate_limit_per_minute: None,
            rate_limit_window_ms: default_rate_window(),
            honour_fetch_child: false,
            headcount_limit: default_headcount_limit(),
        }
    }

    /// Reads and checks a directory file (the standalone simulator's `--directory`).
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
            path: path.to_owned(),
            source,
        })?;
        let directory: Directory =
            serde_json::from_str(&text).map_err(|source| DirectoryError::Parse {
                path: path.to_owned(),
                source,
            })?;
        directory.validate()?;
        Ok(directory)
    }

    /// Catches the mistakes a hand-written file makes. Tests that build odd directories on
    /// purpose through `Simulator::edit` are not checked.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        let mut ids = HashSet::with_capacity(self.departments.len());
        for department in &self.departments {
            if !ids.insert(department.id) {
                return Err(DirectoryError::DuplicateDepartment(department.id));
            }
        }
        for department in &self.departments {
            if department.parentid != 0 && !ids.contains(&department.parentid) {
                return Err(DirectoryError::UnknownParent {
                    id: department.id,
                    parentid: department.parentid,
                });
            }
        }
        let mut userids = HashSet::with_capacity(self.users.len());
        for user in &self.users {
            if user.userid.is_empty() {
                return Err(DirectoryError::EmptyUserid);
            }
            if !userids.insert(user.userid.to_lowercase()) {
                return Err(DirectoryError::DuplicateUser(user.userid.clone()));
            }
            if user.order.len() != user.department.len()
                || user.is_leader_in_dept.len() != user.department.len()
            {
                return Err(DirectoryError::Misaligned(user.userid.clone()));
            }
            if let Some(&department) = user.department.iter().find(|d| !ids.contains(d)) {
                return Err(DirectoryError::UnknownDepartment {
                    userid: user.userid.clone(),
                    department,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gender_is_a_json_string() {
        let mut user = SimUser::new("lisi", "李四", &[1]);
        user.gender = Gender::Female;
        let json = serde_json::to_string(&user).unwrap();
        assert!(json.contains(r#""gender":"2""#), "{json}");
        let back: SimUser = serde_json::from_str(&json).unwrap();
        assert_eq!(back.gender, Gender::Female);
    }

    #[test]
    fn orders_above_2_pow_31_round_trip() {
        let mut directory = Directory::new("wwcorp", "secret");
        directory.departments[0].order = u32::MAX;
        let json = serde_json::to_string(&directory).unwrap();
        assert!(json.contains("4294967295"));
        let back: Directory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, directory);
    }

    #[test]
    fn a_minimal_file_gets_the_default_settings() {
        let directory: Directory = serde_json::from_str(
            r#"{"corp_id":"ww1","corp_secret":"s","departments":[{"id":1,"name":"Root","parentid":0}],
                "users":[{"userid":"a","name":"A","department":[1],"order":[0],"is_leader_in_dept":[0]}]}"#,
        )
        .unwrap();
        assert_eq!(directory.visible_departments, vec![1]);
        assert!(directory.visible_users.is_empty());
        assert_eq!(directory.agent_id, 1_000_002);
        assert_eq!(directory.token_ttl_secs, 7200);
        assert!(directory.reuse_valid_token);
        assert_eq!(directory.users[0].status, 1);
        directory.validate().unwrap();
    }

    #[test]
    fn validate_rejects_what_a_hand_written_file_gets_wrong() {
        let mut directory = Directory::new("ww1", "s");
        directory.users.push(SimUser::new("ZhangSan", "张三", &[1]));
        directory.users.push(SimUser::new("zhangsan", "张三", &[1]));
        assert!(matches!(
            directory.validate(),
            Err(DirectoryError::DuplicateUser(_))
        ));

        directory.users.pop();
        directory.users[0].department.push(9);
        assert!(matches!(
            directory.validate(),
            Err(DirectoryError::Misaligned(_))
        ));
        directory.users[0] = SimUser::new("zhangsan", "张三", &[9]);
        assert!(matches!(
            directory.validate(),
            Err(DirectoryError::UnknownDepartment { department: 9, .. })
        ));

        directory.users.clear();
        directory.departments.push(SimDepartment::new(2, "研发", 7));
        assert!(matches!(
            directory.validate(),
            Err(DirectoryError::UnknownParent { id: 2, parentid: 7 })
        ));
    }
}
