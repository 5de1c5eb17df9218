//! A host application's user as orgsync accepts it, over the socket or from an import file, and
//! the links matching makes between host users and members.
//!
//! The id is whatever the host application knows the user by. It may be sent as a JSON string
//! or a JSON integer and is stored as a string: `42` and `"42"` are the same host user, and
//! events carry `"host_user_id":"42"`. Ids compare exactly (case and all); one that is empty,
//! starts or ends with whitespace, or holds a control character is refused rather than
//! silently changed, since a changed id would be another user. Name, mobile and email are
//! optional; an empty string is the same as absent.

use serde::Serialize;
use serde_json::Value;

/// Longest id, in characters.
pub const MAX_ID_CHARS: usize = 256;
/// Longest name, mobile or email, in characters.
pub const MAX_FIELD_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUser {
    pub id: String,
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
}

/// What matching compares of a host user: its name and mobile, normalized
/// (`crate::matching::host_facts`), as the store keeps them beside what was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub name: Option<String>,
    pub mobile: Option<String>,
    /// Trimmed and lower-cased; only ever compared with what a WeCom email lookup answered.
    pub email: Option<String>,
}

/// One link, as stored under its host user's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub userid_key: String,
    /// The member's userid as WeCom spelled it last; names the member after it has left.
    pub userid: String,
    pub method: Method,
}

/// How a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Phone,
    Name,
    Manual,
    /// The host application saw one of its users prove both identities (signed in with its
    /// own password inside WeCom) and recorded it with `link.put`.
    Login,
    /// WeCom said whose the host user's email is (`user/get_userid_by_email`).
    Email,
}

impl Method {
    /// A link someone decided (an admin by hand, a host application from a login): matching
    /// never undoes one, and never links either of its ends elsewhere.
    pub fn is_decided(self) -> bool {
        matches!(self, Method::Manual | Method::Login)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Phone => "phone",
            Method::Name => "name",
            Method::Manual => "manual",
            Method::Login => "login",
            Method::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Method> {
        [
            Method::Phone,
            Method::Name,
            Method::Manual,
            Method::Login,
            Method::Email,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
    }
}

/// What a WeCom userid lookup asks by: `user/getuserid` (a mobile) or
/// `user/get_userid_by_email`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupKind {
    Mobile,
    Email,
}

impl LookupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LookupKind::Mobile => "mobile",
            LookupKind::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<LookupKind> {
        [LookupKind::Mobile, LookupKind::Email]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// Why a link went, as `reason` in `orgsync.link.removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The member is no longer in the mirror; the host user is held from then on.
    MemberLeft,
    /// The host user of an automatic link is no longer in the host-user set.
    HostUserRemoved,
    /// A phone link whose two mobiles are no longer equal.
    PhoneChanged,
    /// A name link whose two names are no longer equal.
    NameChanged,
    /// An email link whose host user's email changed, or that WeCom now gives to someone else.
    EmailChanged,
    /// A name link whose two mobiles became known and differ.
    PhoneConflict,
    /// `orgsync unlink`.
    ManualUnlink,
    /// A manual link took the link's host user or member.
    ReplacedByManual,
    /// A login link (`link.put`) took the link's host user or member.
    ReplacedByLogin,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MemberLeft => "member_left",
            Reason::HostUserRemoved => "host_user_removed",
            Reason::PhoneChanged => "phone_changed",
            Reason::NameChanged => "name_changed",
            Reason::EmailChanged => "email_changed",
            Reason::PhoneConflict => "phone_conflict",
            Reason::ManualUnlink => "manual_unlink",
            Reason::ReplacedByManual => "replaced_by_manual",
            Reason::ReplacedByLogin => "replaced_by_login",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostUserError {
    #[error("a host user must be a JSON object like {{\"id\":\"42\",\"name\":\"王芳\",\"mobile\":\"13800138000\"}}")]
    NotAnObject,
    #[error("\"id\" is missing; give every host user the id your application knows it by")]
    MissingId,
    #[error("\"id\" must be a string or an integer, not {0}")]
    IdType(&'static str),
    #[error("\"id\" is empty")]
    EmptyId,
    #[error("\"id\" {0:?} starts or ends with whitespace; ids are compared exactly, so remove it")]
    IdWhitespace(String),
    #[error("\"{field}\" is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("\"{0}\" contains a control character")]
    Control(&'static str),
    #[error("\"{0}\" must be a string or null")]
    FieldType(&'static str),
}

/// How much of a bad id an error message repeats.
const ECHO_CHARS: usize = 64;

impl HostUser {
    /// From one element of `host_users.put`'s `users`, or one JSON Lines row. Unknown keys are
    /// ignored, as in every request.
    pub fn from_json(value: &Value) -> Result<HostUser, HostUserError> {
        let Value::Object(fields) = value else {
            return Err(HostUserError::NotAnObject);
        };
        let id = match fields.get("id") {
            None | Some(Value::Null) => return Err(HostUserError::MissingId),
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(number)) => match (number.as_i64(), number.as_u64()) {
                (Some(n), _) => n.to_string(),
                (None, Some(n)) => n.to_string(),
                (None, None) => return Err(HostUserError::IdType("a fractional number")),
            },
            Some(Value::Bool(_)) => return Err(HostUserError::IdType("a boolean")),
            Some(Value::Array(_)) => return Err(HostUserError::IdType("an array")),
            Some(Value::Object(_)) => return Err(HostUserError::IdType("an object")),
        };
        let text = |field: &'static str| match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(HostUserError::FieldType(field)),
        };
        HostUser::from_fields(&id, text("name")?, text("mobile")?, text("email")?)
    }

    /// From one CSV row's cells, or after [`HostUser::from_json`] took the JSON apart.
    pub fn from_fields(
        id: &str,
        name: Option<&str>,
        mobile: Option<&str>,
        email: Option<&str>,
    ) -> Result<HostUser, HostUserError> {
        if id.is_empty() {
            return Err(HostUserError::EmptyId);
        }
        check("id", id, MAX_ID_CHARS)?;
        if id.trim() != id {
            return Err(HostUserError::IdWhitespace(
                id.chars().take(ECHO_CHARS).collect(),
            ));
        }
        let field = |field: &'static str, value: Option<&str>| match value {
            None | Some("") => Ok(None),
            Some(value) => check(field, value, MAX_FIELD_CHARS).map(|()| Some(value.to_owned())),
        };
        Ok(HostUser {
            id: id.to_owned(),
            name: field("name", name)?,
            mobile: field("mobile", mobile)?,
            email: field("email", email)?,
        })
    }
}

/// An email as lookups compare it: trimmed and lower-cased, or `None` when it is not one.
pub fn email_key(raw: &str) -> Option<String> {
    let email = raw.trim();
    let (local, domain) = email.split_once('@')?;
    let usable = !local.is_empty() && !domain.is_empty() && !email.contains(char::is_whitespace);
    usable.then(|| email.to_lowercase())
}

fn check(field: &'static str, value: &str, max: usize) -> Result<(), HostUserError> {
    if value.chars().count() > max {
        return Err(HostUserError::TooLong { field, max });
    }
    if value.chars().any(char::is_control) {
        return Err(HostUserError::Control(field));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// A host user as a test writes it; the import's tests use it too.
    pub(crate) fn user(
        id: &str,
        name: Option<&str>,
        mobile: Option<&str>,
        email: Option<&str>,
    ) -> HostUser {
        HostUser {
            id: id.into(),
            name: name.map(Into::into),
            mobile: mobile.map(Into::into),
            email: email.map(Into::into),
        }
    }

    #[test]
    fn accepts_string_and_integer_ids_and_optional_fields() {
        let cases = [
            (json!({"id": "42"}), user("42", None, None, None)),
            (json!({"id": 42}), user("42", None, None, None)),
            (json!({"id": -7}), user("-7", None, None, None)),
            (
                json!({"id": 18446744073709551615u64}),
                user("18446744073709551615", None, None, None),
            ),
            (
                json!({"id": "u-1", "name": "王芳", "mobile": "138 0013 8000", "email": "f@x.cn"}),
                user("u-1", Some("王芳"), Some("138 0013 8000"), Some("f@x.cn")),
            ),
            (
                json!({"id": "u-1", "name": null, "mobile": "", "extra": [1]}),
                user("u-1", None, None, None),
            ),
            (json!({"id": "用户甲"}), user("用户甲", None, None, None)),
        ];
        for (value, expected) in cases {
            assert_eq!(HostUser::from_json(&value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_usable_host_user() {
        let long = "x".repeat(MAX_FIELD_CHARS + 1);
        let cases = [
            (json!("42"), HostUserError::NotAnObject),
            (json!({}), HostUserError::MissingId),
            (json!({"id": null}), HostUserError::MissingId),
            (json!({"id": ""}), HostUserError::EmptyId),
            (
                json!({"id": 4.5}),
                HostUserError::IdType("a fractional number"),
            ),
            (json!({"id": true}), HostUserError::IdType("a boolean")),
            (json!({"id": [1]}), HostUserError::IdType("an array")),
            (
                json!({"id": " 42"}),
                HostUserError::IdWhitespace(" 42".into()),
            ),
            (json!({"id": "42\n"}), HostUserError::Control("id")),
            (
                json!({"id": "a", "name": 5}),
                HostUserError::FieldType("name"),
            ),
            (
                json!({"id": "a", "mobile": 13800138000u64}),
                HostUserError::FieldType("mobile"),
            ),
            (
                json!({"id": "a", "email": long}),
                HostUserError::TooLong {
                    field: "email",
                    max: MAX_FIELD_CHARS,
                },
            ),
            (
                json!({"id": "x".repeat(MAX_ID_CHARS + 1)}),
                HostUserError::TooLong {
                    field: "id",
                    max: MAX_ID_CHARS,
                },
            ),
            (
                json!({"id": "a", "name": "王\u{0}芳"}),
                HostUserError::Control("name"),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(HostUser::from_json(&value), Err(expected), "{value}");
        }
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        let name = "芳".repeat(MAX_FIELD_CHARS);
        assert!(HostUser::from_fields("1", Some(&name), None, None).is_ok());
    }
}
