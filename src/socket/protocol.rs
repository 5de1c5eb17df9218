//! The request side of the socket protocol (docs/protocol.md) as a pure function of one line: no
//! I/O, no store, and no panic on any input, so that a fuzzer can be pointed at
//! [`parse_request`].

use serde_json::{json, Map, Value};

use crate::events::TypeFilter;
use crate::model::host_user::HostUser;
use crate::model::DepartmentId;
use crate::service::directory::{ObjectTypes, SnapshotFilter};
pub use crate::service::events::ConsumerName;
use crate::service::host_users;
pub use crate::service::ErrorCode;
use crate::strict_json;

/// The longest request line accepted, without its newline.
pub const MAX_LINE: usize = 1 << 20;

pub use crate::service::events::MAX_CONSUMER_CHARS;

/// A subscription lists at most this many type patterns. There are a dozen event types; the cap
/// keeps one client from making its own filtering arbitrarily expensive.
pub const MAX_TYPE_PATTERNS: usize = 64;

const KNOWN_OPS: &str = "subscribe, ack, status, resync, host_users.put, snapshot, member.get, department.get, members.list, link.get, link.put, login.resolve";

/// How much of a client's unknown op is echoed back in the error message.
const ECHO_CHARS: usize = 64;

/// A well-formed request.
///
/// This enum is the extension point for new ops: add a variant, parse it in [`parse_request`],
/// and the exhaustive match in the connection's dispatch then asks for its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Subscribe(Subscribe),
    Ack {
        consumer: ConsumerName,
        seq: i64,
    },
    Status,
    Resync,
    /// Every user already validated; ids repeated across users are caught when applied.
    HostUsersPut {
        users: Vec<HostUser>,
        replace: bool,
    },
    Snapshot(SnapshotFilter),
    MemberGet {
        userid: String,
    },
    DepartmentGet {
        id: DepartmentId,
    },
    MembersList {
        department: DepartmentId,
        descendants: bool,
    },
    LinkGet(LinkBy),
    /// A WeCom login code to the member and the host user linked to them.
    LoginResolve {
        code: String,
    },
    /// Admin: the host application records that one of its users proved both identities.
    LinkPut {
        host_user_id: String,
        userid: String,
    },
}

/// What `link.get` looks a link up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkBy {
    HostUser(String),
    Member(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub since: Option<i64>,
    pub consumer: Option<ConsumerName>,
    pub types: Option<TypeFilter>,
    /// The store the client's position belongs to, from an earlier reply.
    pub store: Option<String>,
}

/// `{"ok":false,"error":{"code":CODE,"message":MESSAGE}}`.
pub fn error_reply(code: ErrorCode, message: &str) -> Value {
    error_reply_with(code, message, Map::new())
}

/// An error reply whose error object carries more fields (the `oldest` of a `gap`).
pub fn error_reply_with(code: ErrorCode, message: &str, extra: Map<String, Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), code.as_str().into());
    error.insert("message".into(), message.into());
    error.extend(extra);
    json!({ "ok": false, "error": error })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the request is not valid UTF-8; send one UTF-8 JSON object per line")]
    NotUtf8,
    #[error("the request is not valid JSON ({0}); send one JSON object per line")]
    NotJson(String),
    #[error("a request must be a JSON object with an \"op\", like {{\"op\":\"status\"}}")]
    NotAnObject,
    #[error("the request has no \"op\"; known ops: {KNOWN_OPS}")]
    MissingOp,
    #[error("unknown op {0:?}; known ops: {KNOWN_OPS}")]
    UnknownOp(String),
    #[error("\"{field}\" {problem}")]
    BadField {
        field: &'static str,
        problem: String,
    },
    #[error("users[{index}]: {problem}; nothing was applied")]
    BadUser { index: usize, problem: String },
}

impl ProtocolError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::UnknownOp(_) => ErrorCode::UnknownOp,
            _ => ErrorCode::BadRequest,
        }
    }

    fn field(field: &'static str, problem: impl Into<String>) -> ProtocolError {
        ProtocolError::BadField {
            field,
            problem: problem.into(),
        }
    }
}

/// Parses one request line (without its newline). Unknown fields are ignored, so that a client
/// written for a newer daemon still works where it can.
pub fn parse_request(line: &[u8]) -> Result<Request, ProtocolError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::NotUtf8)?;
    let value = strict_json::parse(text).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(ProtocolError::NotAnObject);
    };
    let op = match fields.get("op") {
        None | Some(Value::Null) => return Err(ProtocolError::MissingOp),
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err(ProtocolError::field("op", "must be a string")),
    };
    match op {
        "subscribe" => Ok(Request::Subscribe(Subscribe {
            since: optional_seq(&fields, "since")?,
            consumer: optional_consumer(&fields)?,
            types: match optional(&fields, "types") {
                None => None,
                Some(value) => Some(type_filter(value)?),
            },
            store: optional_string(&fields, "store")?,
        })),
        "ack" => Ok(Request::Ack {
            consumer: optional_consumer(&fields)?
                .ok_or_else(|| ProtocolError::field("consumer", "is required for ack"))?,
            seq: optional_seq(&fields, "seq")?
                .ok_or_else(|| ProtocolError::field("seq", "is required for ack"))?,
        }),
        "status" => Ok(Request::Status),
        "resync" => Ok(Request::Resync),
        "host_users.put" => host_users_put(&fields),
        "snapshot" => Ok(Request::Snapshot(SnapshotFilter {
            department: optional_department(&fields, "department")?,
            types: match optional(&fields, "types") {
                None => ObjectTypes::ALL,
                Some(Value::Array(items)) if !items.is_empty() => {
                    let names = items
                        .iter()
                        .map(|item| item.as_str().ok_or("must contain only strings"))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|problem| ProtocolError::field("types", problem))?;
                    ObjectTypes::parse(names)
                        .map_err(|problem| ProtocolError::field("types", problem))?
                }
                Some(_) => {
                    return Err(ProtocolError::field(
                        "types",
                        "must be a non-empty array of \"department\", \"member\", \"link\"",
                    ))
                }
            },
        })),
        "member.get" => Ok(Request::MemberGet {
            userid: optional_string(&fields, "userid")?
                .ok_or_else(|| ProtocolError::field("userid", "is required"))?,
        }),
        "department.get" => Ok(Request::DepartmentGet {
            id: optional_department(&fields, "id")?
                .ok_or_else(|| ProtocolError::field("id", "is required"))?,
        }),
        "members.list" => Ok(Request::MembersList {
            department: optional_department(&fields, "department")?
                .ok_or_else(|| ProtocolError::field("department", "is required"))?,
            descendants: match optional(&fields, "descendants") {
                None => false,
                Some(Value::Bool(descendants)) => *descendants,
                Some(_) => {
                    return Err(ProtocolError::field("descendants", "must be true or false"))
                }
            },
        }),
        // Whether the code can be one is for the service to say (`invalid_code`), as over HTTP.
        "login.resolve" => match optional(&fields, "code") {
            Some(Value::String(code)) => Ok(Request::LoginResolve { code: code.clone() }),
            _ => Err(ProtocolError::field(
                "code",
                "is required: the code WeCom passed to the login redirect, a string",
            )),
        },
        "link.put" => {
            let host_user_id = match optional(&fields, "host_user_id") {
                None => return Err(ProtocolError::field("host_user_id", "is required")),
                Some(value) => {
                    HostUser::from_json(&serde_json::json!({ "id": value }))
                        .map_err(|e| ProtocolError::field("host_user_id", e.to_string()))?
                        .id
                }
            };
            let userid = optional_string(&fields, "userid")?
                .ok_or_else(|| ProtocolError::field("userid", "is required"))?;
            match optional_string(&fields, "method")?.as_deref() {
                Some("login") => Ok(Request::LinkPut {
                    host_user_id,
                    userid,
                }),
                _ => Err(ProtocolError::field(
                    "method",
                    "must be \"login\": the host application saw the user prove both identities",
                )),
            }
        }
        "link.get" => {
            let host_user = match optional(&fields, "host_user_id") {
                None => None,
                Some(value) => Some(
                    HostUser::from_json(&serde_json::json!({ "id": value }))
                        .map_err(|e| ProtocolError::field("host_user_id", e.to_string()))?
                        .id,
                ),
            };
            match (host_user, optional_string(&fields, "userid")?) {
                (Some(id), None) => Ok(Request::LinkGet(LinkBy::HostUser(id))),
                (None, Some(userid)) => Ok(Request::LinkGet(LinkBy::Member(userid))),
                _ => Err(ProtocolError::field(
                    "host_user_id",
                    "or \"userid\": give exactly one of the two",
                )),
            }
        }
        other => Err(ProtocolError::UnknownOp(
            other.chars().take(ECHO_CHARS).collect(),
        )),
    }
}

fn host_users_put(fields: &Map<String, Value>) -> Result<Request, ProtocolError> {
    let items = match optional(fields, "users") {
        None => {
            return Err(ProtocolError::field(
                "users",
                "is required: an array of host users like {\"id\":\"42\",\"name\":\"王芳\",\"mobile\":\"13800138000\"}",
            ))
        }
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ProtocolError::field("users", "must be an array of host users")),
    };
    let users = host_users::parse_users(items)
        .map_err(|(index, problem)| ProtocolError::BadUser { index, problem })?;
    let replace = match optional(fields, "replace") {
        None => false,
        Some(Value::Bool(replace)) => *replace,
        Some(_) => return Err(ProtocolError::field("replace", "must be true or false")),
    };
    Ok(Request::HostUsersPut { users, replace })
}

/// A field that is absent or `null` is not given.
fn optional<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn optional_seq(
    fields: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, ProtocolError> {
    optional_non_negative(
        fields,
        name,
        "must be a non-negative integer (an event seq)",
    )
}

/// A string field, at most 256 characters.
fn optional_string(
    fields: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, ProtocolError> {
    match optional(fields, name) {
        None => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= 256 => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(ProtocolError::field(name, "is longer than 256 characters")),
        Some(_) => Err(ProtocolError::field(name, "must be a string")),
    }
}

/// A department id: a non-negative integer.
fn optional_department(
    fields: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<DepartmentId>, ProtocolError> {
    optional_non_negative(fields, name, "must be a department id (an integer)")
}

/// A non-negative integer field; `expected` says what it must be otherwise.
fn optional_non_negative(
    fields: &Map<String, Value>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<i64>, ProtocolError> {
    optional(fields, name)
        .map(|value| {
            value
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ProtocolError::field(name, expected))
        })
        .transpose()
}

fn optional_consumer(fields: &Map<String, Value>) -> Result<Option<ConsumerName>, ProtocolError> {
    match optional(fields, "consumer") {
        None => Ok(None),
        Some(Value::String(name)) => ConsumerName::new(name)
            .map(Some)
            .map_err(|problem| ProtocolError::field("consumer", problem)),
        Some(_) => Err(ProtocolError::field("consumer", "must be a string")),
    }
}

fn type_filter(value: &Value) -> Result<TypeFilter, ProtocolError> {
    let bad = |problem: &str| ProtocolError::field("types", problem);
    let Value::Array(items) = value else {
        return Err(bad("must be an array of type patterns"));
    };
    if items.is_empty() {
        return Err(bad(
            "must list at least one pattern; leave it out to receive every type",
        ));
    }
    if items.len() > MAX_TYPE_PATTERNS {
        return Err(bad(&format!(
            "lists more than {MAX_TYPE_PATTERNS} patterns; use prefixes like \"orgsync.member.*\""
        )));
    }
    let mut filter = TypeFilter::default();
    for item in items {
        let Value::String(pattern) = item else {
            return Err(bad("must contain only strings"));
        };
        filter
            .add(pattern)
            .map_err(|problem| bad(&problem.to_string()))?;
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Request, ProtocolError> {
        parse_request(line.as_bytes())
    }

    fn code(line: &[u8]) -> &'static str {
        parse_request(line)
            .expect_err("should be rejected")
            .code()
            .as_str()
    }

    #[test]
    fn parses_each_op() {
        assert_eq!(parse(r#"{"op":"status"}"#), Ok(Request::Status));
        assert_eq!(parse(r#"{"op":"resync","extra":1}"#), Ok(Request::Resync));
        assert_eq!(
            parse(r#"{"op":"ack","consumer":"hr-app","seq":42}"#),
            Ok(Request::Ack {
                consumer: ConsumerName("hr-app".into()),
                seq: 42
            })
        );
        let Ok(Request::Subscribe(subscribe)) = parse(
            r#"{"op":"subscribe","since":7,"consumer":"hr-app","types":["orgsync.member.*","orgsync.sync.completed"]}"#,
        ) else {
            panic!("not a subscribe");
        };
        assert_eq!(subscribe.since, Some(7));
        assert_eq!(subscribe.consumer, Some(ConsumerName("hr-app".into())));
        let types = subscribe.types.expect("types");
        assert!(types.matches("orgsync.member.joined"));
        assert!(types.matches("orgsync.sync.completed"));
        assert!(!types.matches("orgsync.sync.failed"));
        assert!(!types.matches("orgsync.membership"));
    }

    #[test]
    fn null_optional_fields_count_as_absent() {
        assert_eq!(
            parse(r#"{"op":"subscribe","since":null,"consumer":null,"types":null}"#),
            Ok(Request::Subscribe(Subscribe {
                since: None,
                consumer: None,
                types: None,
                store: None,
            }))
        );
    }

    #[test]
    fn rejects_what_is_not_a_request() {
        assert_eq!(code(b"\xff\xfe"), "bad_request");
        assert_eq!(code(b""), "bad_request");
        assert_eq!(code(b"{\"op\":"), "bad_request");
        assert_eq!(code(b"[1,2]"), "bad_request");
        assert_eq!(code(b"\"status\""), "bad_request");
        assert_eq!(code(b"{}"), "bad_request");
        assert_eq!(code(b"{\"op\":5}"), "bad_request");
        assert_eq!(code(b"{\"op\":\"explode\"}"), "unknown_op");
    }

    #[test]
    fn parses_host_users_put() {
        assert_eq!(
            parse(
                r#"{"op":"host_users.put","users":[{"id":42,"name":"王芳","mobile":"13800138000"},{"id":"u-7","email":"a@b.cn"}],"replace":true}"#
            ),
            Ok(Request::HostUsersPut {
                users: vec![
                    HostUser {
                        id: "42".into(),
                        name: Some("王芳".into()),
                        mobile: Some("13800138000".into()),
                        email: None,
                    },
                    HostUser {
                        id: "u-7".into(),
                        name: None,
                        mobile: None,
                        email: Some("a@b.cn".into()),
                    },
                ],
                replace: true,
            })
        );
        assert_eq!(
            parse(r#"{"op":"host_users.put","users":[]}"#),
            Ok(Request::HostUsersPut {
                users: vec![],
                replace: false
            })
        );
    }

    #[test]
    fn a_bad_host_user_is_named_by_its_index() {
        for (line, expected) in [
            (
                r#"{"op":"host_users.put","users":[{"id":"1"},{"id":""}]}"#,
                "users[1]: \"id\" is empty; nothing was applied",
            ),
            (
                r#"{"op":"host_users.put","users":[{"name":"x"}]}"#,
                "users[0]: \"id\" is missing",
            ),
            (
                r#"{"op":"host_users.put","users":[{"id":1,"mobile":13800138000}]}"#,
                "users[0]: \"mobile\" must be a string or null",
            ),
            (r#"{"op":"host_users.put"}"#, "\"users\" is required"),
            (
                r#"{"op":"host_users.put","users":{}}"#,
                "\"users\" must be an array",
            ),
            (
                r#"{"op":"host_users.put","users":[],"replace":"yes"}"#,
                "\"replace\" must be true or false",
            ),
        ] {
            let error = parse(line).expect_err(line);
            assert_eq!(error.code(), ErrorCode::BadRequest, "{line}");
            assert!(error.to_string().starts_with(expected), "{line}: {error}");
        }
    }

    #[test]
    fn validates_fields() {
        for line in [
            r#"{"op":"subscribe","since":-1}"#,
            r#"{"op":"subscribe","since":1.5}"#,
            r#"{"op":"subscribe","since":"3"}"#,
            r#"{"op":"subscribe","since":18446744073709551615}"#,
            r#"{"op":"subscribe","consumer":""}"#,
            r#"{"op":"subscribe","consumer":"a\u0007b"}"#,
            r#"{"op":"subscribe","consumer":7}"#,
            r#"{"op":"subscribe","types":"orgsync.*"}"#,
            r#"{"op":"subscribe","types":[]}"#,
            r#"{"op":"subscribe","types":[""]}"#,
            r#"{"op":"subscribe","types":["*"]}"#,
            r#"{"op":"subscribe","types":[".*"]}"#,
            r#"{"op":"subscribe","types":["orgsync*"]}"#,
            r#"{"op":"subscribe","types":["orgsync.*.joined"]}"#,
            r#"{"op":"subscribe","types":[3]}"#,
            r#"{"op":"subscribe","types":["orgsync.members.joined"]}"#,
            r#"{"op":"status","op":"resync"}"#,
            r#"{"op":"ack","consumer":"a","seq":1,"seq":2}"#,
            r#"{"op":"subscribe","types":["member.*"]}"#,
            r#"{"op":"subscribe","types":["orgsync.nothing.*"]}"#,
            r#"{"op":"ack","seq":3}"#,
            r#"{"op":"ack","consumer":"a"}"#,
        ] {
            assert_eq!(code(line.as_bytes()), "bad_request", "{line}");
        }
    }

    #[test]
    fn consumer_names_are_counted_in_characters() {
        assert!(ConsumerName::new(&"名".repeat(MAX_CONSUMER_CHARS)).is_ok());
        assert!(ConsumerName::new(&"a".repeat(MAX_CONSUMER_CHARS + 1)).is_err());
        assert!(ConsumerName::new("host app 1").is_ok());
        assert!(ConsumerName::new("tab\there").is_err());
        for sneaky in [
            "crm\u{202E}ppa",
            "c\u{200B}rm",
            "crm\u{3000}",
            " crm",
            "\u{FEFF}crm",
        ] {
            assert!(ConsumerName::new(sneaky).is_err(), "{sneaky:?}");
        }
        assert!(ConsumerName::new("crm-01.prod@host:1").is_ok());
    }

    #[test]
    fn unknown_ops_are_echoed_briefly() {
        let long = format!(r#"{{"op":"{}"}}"#, "x".repeat(10_000));
        let message = parse(&long).expect_err("unknown").to_string();
        assert!(message.len() < 150 + KNOWN_OPS.len(), "{message}");
    }

    #[test]
    fn error_replies_have_the_contract_shape() {
        assert_eq!(
            error_reply(ErrorCode::TooLarge, "too long"),
            json!({"ok": false, "error": {"code": "too_large", "message": "too long"}})
        );
    }
}
