//! WeCom's JSON answers, as typed as serde can make them.
//!
//! An absent key is `None` ("WeCom did not say"), never an empty value: apps created after
//! 2022-06-20 simply do not receive mobile, email, gender and the like, and a diff must not read
//! that as "cleared". Unknown keys are ignored. Numbers that WeCom documents as `[0, 2^32)`
//! (`order`) are `i64`, never `i32`.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use super::secret::Secret;
use crate::model::JsonText;

/// The `errcode`/`errmsg` pair every answer carries. Each answer type repeats the two fields
/// rather than using `#[serde(flatten)]`, which would buffer the whole body a second time.
pub(crate) trait Reply: DeserializeOwned {
    fn errcode(&self) -> Option<i64>;
    fn errmsg(&self) -> &str;
}

macro_rules! reply {
    ($t:ty) => {
        impl Reply for $t {
            fn errcode(&self) -> Option<i64> {
                self.errcode
            }
            fn errmsg(&self) -> &str {
                self.errmsg.as_deref().unwrap_or("")
            }
        }
    };
}

/// `gettoken`. No `Debug`: it holds the token.
#[derive(Deserialize)]
pub(crate) struct GetToken {
    errcode: Option<i64>,
    errmsg: Option<String>,
    pub access_token: Option<Secret>,
    pub expires_in: Option<i64>,
}
reply!(GetToken);

/// `department/list`.
#[derive(Debug, Deserialize)]
pub(crate) struct DepartmentList {
    errcode: Option<i64>,
    errmsg: Option<String>,
    pub department: Option<Vec<Department>>,
}
reply!(DepartmentList);

#[derive(Debug, Deserialize)]
pub(crate) struct Department {
    pub id: i64,
    pub name: Option<String>,
    pub name_en: Option<String>,
    pub department_leader: Option<Vec<String>>,
    pub parentid: Option<i64>,
    pub order: Option<i64>,
}

/// `auth/getuserinfo`: a member's `userid`, or an outsider's `openid` / `external_userid`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserInfo {
    errcode: Option<i64>,
    errmsg: Option<String>,
    pub userid: Option<String>,
    pub openid: Option<String>,
    pub external_userid: Option<String>,
}

/// WeCom says every answer carries an errcode, but the fact sheet's example of a successful
/// `auth/getuserinfo` has none. Only here is an absent errcode a success: the answer still
/// needs a `userid`, `openid` or `external_userid`. Elsewhere it stays malformed, so that a
/// foreign `{"userlist":[]}` can never pass for an empty department.
impl Reply for UserInfo {
    fn errcode(&self) -> Option<i64> {
        Some(self.errcode.unwrap_or(0))
    }
    fn errmsg(&self) -> &str {
        self.errmsg.as_deref().unwrap_or("")
    }
}

/// `user/getuserid`, `user/get_userid_by_email`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserId {
    errcode: Option<i64>,
    errmsg: Option<String>,
    pub userid: Option<String>,
}
reply!(UserId);

/// `user/get`: one member's fields beside the errcode, read as two views of the one body
/// (`#[serde(flatten)]` cannot carry the raw `extattr` text).
#[derive(Debug)]
pub(crate) struct UserGet {
    errcode: Option<i64>,
    errmsg: Option<String>,
    /// `None` when the body is an error.
    pub user: Option<User>,
}
reply!(UserGet);

impl<'de> Deserialize<'de> for UserGet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<UserGet, D::Error> {
        #[derive(Deserialize)]
        struct Status {
            errcode: Option<i64>,
            errmsg: Option<String>,
        }
        let body = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let status: Status = serde_json::from_str(body.get()).map_err(serde::de::Error::custom)?;
        let user = match status.errcode {
            Some(0) | None => {
                Some(serde_json::from_str(body.get()).map_err(serde::de::Error::custom)?)
            }
            Some(_) => None,
        };
        Ok(UserGet {
            errcode: status.errcode,
            errmsg: status.errmsg,
            user,
        })
    }
}

/// `agent/get`: the app, with its visible range (可见范围). Only the parts the pull reads.
#[derive(Debug, Deserialize)]
pub(crate) struct AgentGet {
    errcode: Option<i64>,
    errmsg: Option<String>,
    /// Always in WeCom's answer: its absence tells an answer without data from an app whose
    /// range names no members.
    pub agentid: Option<i64>,
    /// The members the range names individually; absent when it names none.
    pub allow_userinfos: Option<AllowUsers>,
    /// The tags the range names; absent when it names none.
    pub allow_tags: Option<AllowTags>,
}
reply!(AgentGet);

#[derive(Debug, Deserialize)]
pub(crate) struct AllowUsers {
    #[serde(default)]
    pub user: Vec<AllowedUser>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AllowedUser {
    pub userid: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AllowTags {
    #[serde(default)]
    pub tagid: Vec<i64>,
}

/// `user/list`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserList {
    errcode: Option<i64>,
    errmsg: Option<String>,
    pub userlist: Option<Vec<User>>,
}
reply!(UserList);

/// A member as `user/list` returns it; only the fields the model keeps.
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub userid: String,
    pub name: Option<String>,
    pub alias: Option<String>,
    pub position: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
    #[serde(default, deserialize_with = "gender")]
    pub gender: Option<String>,
    pub status: Option<i64>,
    pub telephone: Option<String>,
    pub department: Option<Vec<i64>>,
    /// Aligned with `department`.
    pub order: Option<Vec<i64>>,
    /// Aligned with `department`; 0 or 1.
    pub is_leader_in_dept: Option<Vec<i64>>,
    pub direct_leader: Option<Vec<String>>,
    pub main_department: Option<i64>,
    /// Kept as compact text, not as a JSON tree: see [`JsonText`].
    pub extattr: Option<JsonText>,
}

/// WeCom documents `gender` as a string ("0", "1", "2"); its callbacks carry a number. Accept a
/// number too, as its string, rather than fail a whole pull over one field's type.
fn gender<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct Gender;

    impl<'de> Visitor<'de> for Gender {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a gender string or number")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Gender)
        }
    }

    deserializer.deserialize_option(Gender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(json: &str) -> Vec<User> {
        serde_json::from_str::<UserList>(json)
            .unwrap()
            .userlist
            .unwrap()
    }

    #[test]
    fn withheld_fields_are_none_not_empty() {
        let [user] = users(r#"{"errcode":0,"errmsg":"ok","userlist":[{"userid":"zhangsan"}]}"#)
            .try_into()
            .unwrap();
        assert_eq!(user.userid, "zhangsan");
        assert!(user.name.is_none() && user.mobile.is_none() && user.email.is_none());
        assert!(user.gender.is_none() && user.biz_mail.is_none() && user.extattr.is_none());
        assert!(user.department.is_none() && user.order.is_none());
        assert!(user.is_leader_in_dept.is_none() && user.direct_leader.is_none());
        assert!(user.main_department.is_none() && user.status.is_none());
    }

    #[test]
    fn empty_values_stay_empty() {
        let [user] = users(r#"{"userlist":[{"userid":"a","mobile":"","department":[]}]}"#)
            .try_into()
            .unwrap();
        assert_eq!(user.mobile.as_deref(), Some(""));
        assert_eq!(user.department, Some(vec![]));
    }

    #[test]
    fn gender_string_number_or_null() {
        let list = users(
            r#"{"userlist":[{"userid":"a","gender":"1"},{"userid":"b","gender":2},
                {"userid":"c","gender":null},{"userid":"d","gender":"0"}]}"#,
        );
        let genders: Vec<_> = list.iter().map(|u| u.gender.as_deref()).collect();
        assert_eq!(genders, [Some("1"), Some("2"), None, Some("0")]);
    }

    #[test]
    fn order_beyond_i32() {
        let [user] = users(
            r#"{"userlist":[{"userid":"a","department":[1,2],"order":[4294967295,2147483648]}]}"#,
        )
        .try_into()
        .unwrap();
        assert_eq!(user.order, Some(vec![4_294_967_295, 2_147_483_648]));
        let list: DepartmentList =
            serde_json::from_str(r#"{"department":[{"id":1,"order":4294967295}]}"#).unwrap();
        assert_eq!(list.department.unwrap()[0].order, Some(4_294_967_295));
    }

    #[test]
    fn unknown_keys_ignored_and_extattr_kept_verbatim() {
        let [user] = users(
            r#"{"userlist":[{"userid":"a","avatar":"http://x","isleader":1,"open_userid":"o",
                "extattr":{"attrs":[{"type":0,"name":"工号","text":{"value":"007"}}]}}]}"#,
        )
        .try_into()
        .unwrap();
        assert_eq!(
            user.extattr.unwrap().to_value()["attrs"][0]["text"]["value"],
            serde_json::json!("007")
        );
    }

    #[test]
    fn agent_get_reads_the_named_members_and_tags() {
        let agent: AgentGet = serde_json::from_str(
            r#"{"errcode":0,"errmsg":"ok","agentid":1000002,"name":"HR","close":0,
                "allow_userinfos":{"user":[{"userid":"zhangsan"},{"userid":"LiSi"}]},
                "allow_partys":{"partyid":[1]},"allow_tags":{"tagid":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(agent.agentid, Some(1_000_002));
        let users: Vec<String> = agent
            .allow_userinfos
            .unwrap()
            .user
            .into_iter()
            .map(|u| u.userid)
            .collect();
        assert_eq!(users, ["zhangsan", "LiSi"]);
        assert_eq!(agent.allow_tags.unwrap().tagid, [1, 2]);

        let bare: AgentGet =
            serde_json::from_str(r#"{"errcode":0,"errmsg":"ok","agentid":1000002}"#).unwrap();
        assert!(bare.allow_userinfos.is_none() && bare.allow_tags.is_none());
    }

    #[test]
    fn error_answers_parse_without_data() {
        let list: UserList =
            serde_json::from_str(r#"{"errcode":60011,"errmsg":"no privilege"}"#).unwrap();
        assert_eq!(list.errcode(), Some(60011));
        assert_eq!(list.errmsg(), "no privilege");
        assert!(list.userlist.is_none());
    }
}
