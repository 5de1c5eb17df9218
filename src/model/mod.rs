//! The directory as orgsync mirrors it: departments and members, with every attribute optional.
//!
//! `None` has two meanings that never mix: in a *pull* it means "WeCom did not send this key"
//! (unknown, e.g. a sensitive field withheld from apps created after 2022-06-20); in the *mirror*
//! it means "never known". Merging a pull into the mirror therefore keeps the old value wherever
//! the pull has `None`, and a withheld field is never reported as cleared.

pub mod host_user;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

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
    pub extattr: Option<JsonText>,
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

/// A JSON value held as its compact text: what orgsync keeps of WeCom's free-form `extattr`,
/// which it only compares, stores and passes on. As a `serde_json::Value` it took about ten
/// allocations and a kilobyte per member, two thirds of the memory of a 100,000-member
/// snapshot; as text it takes one allocation.
///
/// It serializes as the JSON value itself, and deserializes from any JSON value.
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// Text that a `JsonText` produced before (the store's copy), taken as it is after checking
    /// that it is JSON: it is already compact.
    pub fn from_compact(text: String) -> Result<JsonText, serde_json::Error> {
        RawValue::from_string(text).map(JsonText)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn to_value(&self) -> Value {
        // The text was checked to be JSON when this was made.
        serde_json::from_str(self.as_str()).unwrap_or(Value::Null)
    }
}

impl From<&Value> for JsonText {
    fn from(value: &Value) -> JsonText {
        // Compact text with no line breaks: it is copied verbatim into event lines, and the
        // same value gives the same text, so that comparing texts is usually enough. Writing
        // a `Value` cannot fail; the default is `null`.
        JsonText(serde_json::value::to_raw_value(value).unwrap_or_default())
    }
}

impl From<Value> for JsonText {
    fn from(value: Value) -> JsonText {
        JsonText::from(&value)
    }
}

/// Equal as JSON values, as the `Value`s were: the same text, or texts that parse to equal
/// values (WeCom listing the same attributes in another key order is no change).
impl PartialEq for JsonText {
    fn eq(&self, other: &JsonText) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl Eq for JsonText {}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonText, D::Error> {
        // WeCom's bodies are compact, so its text is kept as it came: one copy, no tree. Text
        // with whitespace (a pretty-printed file) is made compact first, because the text is
        // copied verbatim into event lines, which must not break.
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        if !raw.get().bytes().any(|b| b.is_ascii_whitespace()) {
            return Ok(JsonText(raw));
        }
        serde_json::from_str::<Value>(raw.get())
            .map(JsonText::from)
            .map_err(serde::de::Error::custom)
    }
}

/// WeCom userids are case-insensitive: this is the form they are compared and stored under.
pub fn userid_key(userid: &str) -> String {
    userid.to_lowercase()
}

/// `top` and every department below it, from each department's `(id, parent)`. A department
/// that is its own parent, or a cycle, adds nothing twice.
pub fn subtree(
    parents: impl IntoIterator<Item = (DepartmentId, DepartmentId)>,
    top: DepartmentId,
) -> std::collections::BTreeSet<DepartmentId> {
    let mut children: BTreeMap<DepartmentId, Vec<DepartmentId>> = BTreeMap::new();
    for (id, parent) in parents {
        children.entry(parent).or_default().push(id);
    }
    let mut selected = std::collections::BTreeSet::from([top]);
    let mut queue = vec![top];
    while let Some(id) = queue.pop() {
        for &child in children.get(&id).into_iter().flatten() {
            if selected.insert(child) {
                queue.push(child);
            }
        }
    }
    selected
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_text_is_compact_whatever_the_input_looked_like() {
        let text: JsonText = serde_json::from_str(
            "{ \"attrs\" :\n [ {\"name\": \"工号\", \"text\": {\"value\": \"E 1\"}} ] }",
        )
        .unwrap();
        assert_eq!(
            text.as_str(),
            r#"{"attrs":[{"name":"工号","text":{"value":"E 1"}}]}"#
        );
        // It serializes as the value itself, not as a string.
        let line = serde_json::to_string(&json!({"extattr": text.to_value()})).unwrap();
        let mut member = Member::new("a");
        member.extattr = Some(text);
        assert!(serde_json::to_string(&member)
            .unwrap()
            .contains(&line[1..line.len() - 1]));
    }

    #[test]
    fn json_text_compares_as_json_values() {
        let a = JsonText::from(json!({"type": 0, "name": "工号"}));
        let b = JsonText::from(json!({"name": "工号", "type": 0}));
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a, b);
        assert_ne!(a, JsonText::from(json!({"name": "工号", "type": 1})));
    }

    #[test]
    fn json_text_deserializes_from_a_value_too() {
        let text: JsonText = serde_json::from_value(json!({"attrs": []})).unwrap();
        assert_eq!(text.as_str(), r#"{"attrs":[]}"#);
    }

    #[test]
    fn stored_text_must_be_json() {
        assert!(JsonText::from_compact("{\"attrs\":[]}".into()).is_ok());
        assert!(JsonText::from_compact("{attrs".into()).is_err());
    }
}
