//! Org-change events: what each change becomes, and its CloudEvents 1.0 JSON line.
//!
//! Events are drafted from a [`Changeset`] in the contract's order and get their `seq` only when
//! the store appends them, inside the transaction that applies the changes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::diff::Changeset;
use crate::model::{Department, Member};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    DepartmentCreated,
    DepartmentUpdated,
    DepartmentDeleted,
    MemberJoined,
    MemberUpdated,
    MemberLeft,
    LinkCreated,
    LinkRemoved,
    SyncCompleted,
    SyncFailed,
    SyncHeld,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        EventType::DepartmentCreated,
        EventType::DepartmentUpdated,
        EventType::DepartmentDeleted,
        EventType::MemberJoined,
        EventType::MemberUpdated,
        EventType::MemberLeft,
        EventType::LinkCreated,
        EventType::LinkRemoved,
        EventType::SyncCompleted,
        EventType::SyncFailed,
        EventType::SyncHeld,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DepartmentCreated => "orgsync.department.created",
            EventType::DepartmentUpdated => "orgsync.department.updated",
            EventType::DepartmentDeleted => "orgsync.department.deleted",
            EventType::MemberJoined => "orgsync.member.joined",
            EventType::MemberUpdated => "orgsync.member.updated",
            EventType::MemberLeft => "orgsync.member.left",
            EventType::LinkCreated => "orgsync.link.created",
            EventType::LinkRemoved => "orgsync.link.removed",
            EventType::SyncCompleted => "orgsync.sync.completed",
            EventType::SyncFailed => "orgsync.sync.failed",
            EventType::SyncHeld => "orgsync.sync.held",
        }
    }
}

/// An event before it has a sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub kind: EventType,
    pub subject: String,
    pub data: Value,
}

fn department_subject(department: &Department) -> String {
    format!("department/{}", department.id)
}

fn member_subject(member: &Member) -> String {
    format!("member/{}", member.userid)
}

/// The events of a changeset, in the order of interfaces §5 (links and the closing
/// `sync.completed` are appended by the caller).
pub fn changeset_events(changes: &Changeset) -> Vec<EventDraft> {
    let mut events = Vec::with_capacity(
        changes.departments_created.len()
            + changes.departments_updated.len()
            + changes.members_joined.len()
            + changes.members_updated.len()
            + changes.members_left.len()
            + changes.departments_deleted.len()
            + 1,
    );
    for department in &changes.departments_created {
        events.push(EventDraft {
            kind: EventType::DepartmentCreated,
            subject: department_subject(department),
            data: json!({ "department": department }),
        });
    }
    for update in &changes.departments_updated {
        events.push(EventDraft {
            kind: EventType::DepartmentUpdated,
            subject: department_subject(&update.department),
            data: json!({ "department": update.department, "changes": update.changes }),
        });
    }
    for member in &changes.members_joined {
        events.push(EventDraft {
            kind: EventType::MemberJoined,
            subject: member_subject(member),
            data: json!({ "userid": member.userid, "member": member }),
        });
    }
    for update in &changes.members_updated {
        events.push(EventDraft {
            kind: EventType::MemberUpdated,
            subject: member_subject(&update.member),
            data: json!({
                "userid": update.member.userid,
                "member": update.member,
                "changes": update.changes,
            }),
        });
    }
    for member in &changes.members_left {
        events.push(EventDraft {
            kind: EventType::MemberLeft,
            subject: member_subject(member),
            data: json!({ "userid": member.userid, "member": member }),
        });
    }
    for department in &changes.departments_deleted {
        events.push(EventDraft {
            kind: EventType::DepartmentDeleted,
            subject: department_subject(department),
            data: json!({ "department": department }),
        });
    }
    events
}

/// Where the events come from: fixed per corp, so that ids are unique across instances.
#[derive(Debug, Clone)]
pub struct EventSource {
    corp_id: String,
    source: String,
}

impl EventSource {
    pub fn new(corp_id: &str) -> EventSource {
        EventSource {
            corp_id: corp_id.to_owned(),
            source: format!("orgsync/wecom/{corp_id}"),
        }
    }

    /// The CloudEvents 1.0 structured-mode JSON object of an event, as one line without the
    /// trailing newline.
    pub fn encode(
        &self,
        draft: &EventDraft,
        seq: i64,
        run: Option<&str>,
        time: DateTime<Utc>,
    ) -> String {
        #[derive(Serialize)]
        struct CloudEvent<'a> {
            specversion: &'static str,
            id: String,
            source: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            subject: &'a str,
            time: String,
            datacontenttype: &'static str,
            seq: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            syncrun: Option<&'a str>,
            data: &'a Value,
        }
        let event = CloudEvent {
            specversion: "1.0",
            id: format!("{}:{seq}", self.corp_id),
            source: &self.source,
            kind: draft.kind.as_str(),
            subject: &draft.subject,
            time: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            datacontenttype: "application/json",
            seq,
            syncrun: run,
            data: &draft.data,
        };
        // A struct of strings, integers and a JSON value always serializes.
        serde_json::to_string(&event).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_cloudevent_with_the_contract_attributes() {
        let source = EventSource::new("ww0123456789abcdef");
        let draft = EventDraft {
            kind: EventType::MemberLeft,
            subject: "member/ZhangSan".into(),
            data: json!({"userid": "ZhangSan"}),
        };
        let time = DateTime::parse_from_rfc3339("2026-11-23T02:00:04.512Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid time");
        let line = source.encode(&draft, 1042, Some("118"), time);
        let value: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(
            value,
            json!({
                "specversion": "1.0",
                "id": "ww0123456789abcdef:1042",
                "source": "orgsync/wecom/ww0123456789abcdef",
                "type": "orgsync.member.left",
                "subject": "member/ZhangSan",
                "time": "2026-11-23T02:00:04.512Z",
                "datacontenttype": "application/json",
                "seq": 1042,
                "syncrun": "118",
                "data": {"userid": "ZhangSan"},
            })
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn events_without_a_run_carry_no_syncrun() {
        let source = EventSource::new("ww1");
        let draft = EventDraft {
            kind: EventType::LinkCreated,
            subject: "member/a".into(),
            data: json!({}),
        };
        let line = source.encode(&draft, 1, None, Utc::now());
        assert!(!line.contains("syncrun"));
    }
}
