//! The directory as orgsync mirrors it: departments and members, with every attribute optional.
//!
//! `None` has two meanings that never mix: in a *pull* it means "WeCom did not send this key"
//! (unknown, e.g. a sensitive field withheld from apps created after 2022-06-20); in the *mirror*
//! it means "never known". Merging a pull into the mirror therefore keeps the old value wherever
//! the pull has `None`, and a withheld field is never reported as cleared.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// WeCom department id (32-bit in practice; i64 so SQLite and JSON need no conversions).
pub type DepartmentId = i64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub id: DepartmentId,
    pub name: Option<String>,
    pub name_en: Option<String>,
    /// `0` for the top of the tree.
    pub parent_id: Option<DepartmentId>,
    /// Sort key inside the parent, larger first; WeCom's range is `[0, 2^32)`.
    pub order: Option<i64>,
    pub leaders: Option<Vec<String>>,
}

/// One department a member belongs to, as WeCom lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub id: DepartmentId,
    pub order: i64,
    pub is_leader: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// As WeCom spells it; compare through [`userid_key`].
    pub userid: String,
    pub name: Option<String>,
    pub alias: Option<String>,
    pub position: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
    /// WeCom sends gender as a string: "0" undefined, "1" male, "2" female.
    pub gender: Option<String>,
    /// 1 active, 2 disabled, 4 not activated, 5 left the company.
    pub status: Option<i64>,
    pub telephone: Option<String>,
    /// In the order WeCom lists them; a move between departments changes this one field.
    pub departments: Option<Vec<Membership>>,
    pub main_department: Option<DepartmentId>,
    pub direct_leaders: Option<Vec<String>>,
    pub extattr: Option<serde_json::Value>,
}

impl Member {
    /// A member known only by userid: every attribute unknown.
    pub fn new(userid: impl Into<String>) -> Member {
        Member {
            userid: userid.into(),
            name: None,
            alias: None,
            position: None,
            mobile: None,
            email: None,
            biz_mail: None,
            gender: None,
            status: None,
            telephone: None,
            departments: None,
            main_department: None,
            direct_leaders: None,
            extattr: None,
        }
    }

    pub fn key(&self) -> String {
        userid_key(&self.userid)
    }
}

impl Department {
    /// A department known only by id: every attribute unknown.
    pub fn new(id: DepartmentId) -> Department {
        Department {
            id,
            name: None,
            name_en: None,
            parent_id: None,
            order: None,
            leaders: None,
        }
    }
}

/// WeCom userids are case-insensitive: this is the form they are compared and stored under.
pub fn userid_key(userid: &str) -> String {
    userid.to_lowercase()
}

/// A whole directory: what the mirror holds, or what one pull returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub departments: BTreeMap<DepartmentId, Department>,
    /// Keyed by [`userid_key`].
    pub members: BTreeMap<String, Member>,
}

impl Snapshot {
    pub fn insert_member(&mut self, member: Member) {
        self.members.insert(member.key(), member);
    }

    pub fn insert_department(&mut self, department: Department) {
        self.departments.insert(department.id, department);
    }
}
