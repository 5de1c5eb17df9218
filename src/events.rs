//! Org-change events: what each change becomes, and its CloudEvents 1.0 JSON line. Every
//! event's `data` is a type in this file, so the public event contract (docs/protocol.md) is
//! this one file to read.
//!
//! Events are drafted from a [`Changeset`] in the contract's order and get their `seq` only when
//! the store appends them, inside the transaction that applies the changes. A run's drafts are
//! made one at a time as the store appends them and borrow their data from the changeset: a first
//! sync of 100,000 members never holds 100,000 JSON trees.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::diff::{Changeset, FieldChanges};
use crate::guard::Hold;
use crate::model::{Department, Member};
use crate::queue::Trigger;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    DepartmentCreated,
    DepartmentUpdated,
    DepartmentDeleted,
    MemberJoined,
    MemberUpdated,
    MemberLeft,
    MemberRenamed,
    LinkCreated,
    LinkRemoved,
    SyncCompleted,
    SyncFailed,
    SyncHeld,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        EventType::DepartmentCreated,
        EventType::DepartmentUpdated,
        EventType::DepartmentDeleted,
        EventType::MemberJoined,
        EventType::MemberUpdated,
        EventType::MemberLeft,
        EventType::MemberRenamed,
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
            EventType::MemberRenamed => "orgsync.member.renamed",
            EventType::LinkCreated => "orgsync.link.created",
            EventType::LinkRemoved => "orgsync.link.removed",
            EventType::SyncCompleted => "orgsync.sync.completed",
            EventType::SyncFailed => "orgsync.sync.failed",
            EventType::SyncHeld => "orgsync.sync.held",
        }
    }
}

/// Which event types a subscriber wants: exact types, and prefixes ending in `.*`
/// (`orgsync.member.*`). Every pattern must match at least one event type, so that a typo is an
/// error rather than a subscription that silently receives nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    exact: Vec<String>,
    /// Each prefix keeps its trailing dot: `orgsync.member.*` is stored as `orgsync.member.`.
    prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern {0:?} is neither an event type nor a prefix ending in \".*\" (like \"orgsync.member.*\")")]
    Malformed(String),
    #[error("pattern {0:?} matches no event type; types look like \"orgsync.member.joined\", prefixes like \"orgsync.member.*\" (docs/protocol.md lists them)")]
    MatchesNothing(String),
}

/// How much of a bad pattern an error repeats.
const ECHO_CHARS: usize = 64;

impl TypeFilter {
    pub fn add(&mut self, pattern: &str) -> Result<(), PatternError> {
        let echo = || pattern.chars().take(ECHO_CHARS).collect::<String>();
        let matches_some =
            |test: &dyn Fn(&str) -> bool| EventType::ALL.iter().any(|kind| test(kind.as_str()));
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.len() > 1 && prefix.ends_with('.') && !prefix.contains('*') => {
                if !matches_some(&|kind| kind.starts_with(prefix)) {
                    return Err(PatternError::MatchesNothing(echo()));
                }
                self.prefixes.push(prefix.to_owned());
            }
            None if !pattern.is_empty() && !pattern.contains('*') => {
                if !matches_some(&|kind| kind == pattern) {
                    return Err(PatternError::MatchesNothing(echo()));
                }
                self.exact.push(pattern.to_owned());
            }
            _ => return Err(PatternError::Malformed(echo())),
        }
        Ok(())
    }

    pub fn matches(&self, kind: &str) -> bool {
        self.exact.iter().any(|exact| exact == kind)
            || self.prefixes.iter().any(|prefix| kind.starts_with(prefix))
    }
}

/// An event before it has a sequence number. `data` is anything that serializes to the JSON
/// object of the event's `data`: a [`Value`] by default, a [`ChangeData`] for a run's changes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft<D = Value> {
    pub kind: EventType,
    pub subject: String,
    pub data: D,
}

/// The `data` of a department or member event, borrowed from the changeset and serialized
/// straight into the event's line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChangeData<'a> {
    Department {
        department: &'a Department,
    },
    DepartmentUpdate {
        department: &'a Department,
        changes: &'a FieldChanges,
    },
    Member {
        userid: &'a str,
        member: &'a Member,
    },
    MemberUpdate {
        userid: &'a str,
        member: &'a Member,
        changes: &'a FieldChanges,
    },
    MemberRenamed {
        userid: &'a str,
        previous_userid: &'a str,
        member: &'a Member,
    },
    MemberLeft {
        userid: &'a str,
        member: &'a Member,
        /// `deleted` (WeCom said the userid does not exist), `out_of_scope` (outside the app's
        /// visible range) or `unknown` (gone from a full pull, not asked).
        reason: &'static str,
    },
}

/// The `data` of `orgsync.sync.completed`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncCompleted<'a> {
    pub run: String,
    pub trigger: Trigger,
    pub counts: &'a RunCounts,
}

/// The `data` of `orgsync.sync.failed`, and the failed run's recorded detail.
#[derive(Debug, Clone, Serialize)]
pub struct SyncFailed {
    pub run: String,
    pub trigger: Trigger,
    pub error: ErrorData,
}

/// What went wrong: a stable code to branch on and a message for people.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorData {
    pub code: &'static str,
    pub message: String,
}

/// The `data` of `orgsync.sync.held`, and the held run's recorded detail.
#[derive(Debug, Clone, Serialize)]
pub struct SyncHeld<'a> {
    pub run: String,
    /// The hold in a sentence.
    pub reason: String,
    pub hold: &'a Hold,
    pub pending: &'a ChangeCounts,
}

/// How many of each change a run made (or would make).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCounts {
    pub departments_created: usize,
    pub departments_updated: usize,
    pub departments_deleted: usize,
    pub members_joined: usize,
    pub members_updated: usize,
    pub members_left: usize,
    pub members_renamed: usize,
    /// Of `members_left`: still in WeCom, outside the app's visible range.
    pub members_out_of_scope: usize,
}

impl ChangeCounts {
    pub fn of(changes: &Changeset) -> ChangeCounts {
        ChangeCounts {
            departments_created: changes.departments_created.len(),
            departments_updated: changes.departments_updated.len(),
            departments_deleted: changes.departments_deleted.len(),
            members_joined: changes.members_joined.len(),
            members_updated: changes.members_updated.len(),
            members_left: changes.members_left.len(),
            members_renamed: changes.members_renamed.len(),
            members_out_of_scope: changes.out_of_scope.len(),
        }
    }
}

/// What a pull returned that is not mirrored: departments outside `wecom.root_department`'s
/// subtree, memberships in departments that are not mirrored, and members named individually
/// in the app's visible range that are not mirrored. Counted, so that nothing is left out
/// silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub ignored_departments: usize,
    pub ignored_memberships: usize,
    /// Members the app's visible range names individually that are not mirrored (outside
    /// `wecom.root_department`'s subtree, or gone by the time orgsync read them).
    pub ignored_members: usize,
}

/// The counts reported in `orgsync.sync.completed`: the changes, the mirror's size, and the
/// links re-matching made and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    #[serde(flatten)]
    pub changes: ChangeCounts,
    pub departments: usize,
    pub members: usize,
    pub links_created: usize,
    pub links_removed: usize,
    #[serde(flatten)]
    pub ignored: Ignored,
}

/// The `data` of a link event; `reason` only on `orgsync.link.removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LinkData<'a> {
    pub userid: &'a str,
    pub host_user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub method: &'static str,
}

impl<D> EventDraft<D> {
    /// An `orgsync.sync.*` event, whose subject is its run.
    pub fn run(kind: EventType, run: i64, data: D) -> EventDraft<D> {
        EventDraft {
            kind,
            subject: format!("run/{run}"),
            data,
        }
    }
}

fn department_subject(department: &Department) -> String {
    format!("department/{}", department.id)
}

fn member_subject(member: &Member) -> String {
    format!("member/{}", member.userid)
}

/// The events of a changeset, in the order docs/protocol.md gives (links and the closing
/// `sync.completed` are appended by the caller), each drafted when the iterator reaches it.
pub fn changeset_drafts(
    changes: &Changeset,
) -> impl Iterator<Item = EventDraft<ChangeData<'_>>> + '_ {
    let department = |kind, department: &Department, data| EventDraft {
        kind,
        subject: department_subject(department),
        data,
    };
    let member = |kind, member: &Member, data| EventDraft {
        kind,
        subject: member_subject(member),
        data,
    };
    let created = changes.departments_created.iter().map(move |d| {
        department(
            EventType::DepartmentCreated,
            d,
            ChangeData::Department { department: d },
        )
    });
    let updated = changes.departments_updated.iter().map(move |update| {
        department(
            EventType::DepartmentUpdated,
            &update.department,
            ChangeData::DepartmentUpdate {
                department: &update.department,
                changes: &update.changes,
            },
        )
    });
    let joined = changes.members_joined.iter().map(move |m| {
        member(
            EventType::MemberJoined,
            m,
            ChangeData::Member {
                userid: &m.userid,
                member: m,
            },
        )
    });
    let members_updated = changes.members_updated.iter().map(move |update| {
        member(
            EventType::MemberUpdated,
            &update.member,
            ChangeData::MemberUpdate {
                userid: &update.member.userid,
                member: &update.member,
                changes: &update.changes,
            },
        )
    });
    let renamed = changes.members_renamed.iter().map(move |rename| {
        member(
            EventType::MemberRenamed,
            &rename.member,
            ChangeData::MemberRenamed {
                userid: &rename.member.userid,
                previous_userid: &rename.previous_userid,
                member: &rename.member,
            },
        )
    });
    let left = changes.members_left.iter().map(move |m| {
        let key = m.key();
        let reason = if changes.confirmed_deleted.contains(&key) {
            "deleted"
        } else if changes.out_of_scope.contains(&key) {
            "out_of_scope"
        } else {
            "unknown"
        };
        member(
            EventType::MemberLeft,
            m,
            ChangeData::MemberLeft {
                userid: &m.userid,
                member: m,
                reason,
            },
        )
    });
    let deleted = changes.departments_deleted.iter().map(move |d| {
        department(
            EventType::DepartmentDeleted,
            d,
            ChangeData::Department { department: d },
        )
    });
    created
        .chain(updated)
        .chain(joined)
        .chain(renamed)
        .chain(members_updated)
        .chain(left)
        .chain(deleted)
}

/// All the events of a changeset at once, with their data as JSON values: for callers that
/// inspect them. A sync appends [`changeset_drafts`] instead.
pub fn changeset_events(changes: &Changeset) -> Vec<EventDraft> {
    changeset_drafts(changes)
        .map(|draft| EventDraft {
            kind: draft.kind,
            subject: draft.subject,
            // Plain data of strings, numbers and JSON values always converts.
            data: serde_json::to_value(draft.data).unwrap_or(Value::Null),
        })
        .collect()
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

    pub fn corp_id(&self) -> &str {
        &self.corp_id
    }

    /// The CloudEvents 1.0 structured-mode JSON object of an event, as one line without the
    /// trailing newline.
    pub fn encode<D: Serialize>(
        &self,
        draft: &EventDraft<D>,
        seq: i64,
        run: Option<&str>,
        time: DateTime<Utc>,
    ) -> String {
        #[derive(Serialize)]
        struct CloudEvent<'a, D> {
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
            data: &'a D,
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
        // A struct of strings, integers and plain data always serializes.
        serde_json::to_string(&event).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// The lines a sync stores come from borrowed drafts; they must be exactly the lines of the
    /// same events drafted as JSON values.
    #[test]
    fn borrowed_drafts_encode_to_the_same_lines_as_json_drafts() {
        use crate::diff::diff;
        use crate::model::{Membership, Snapshot};

        let member = |userid: &str, position: &str, department: i64| Member {
            position: Some(position.into()),
            departments: Some(vec![Membership {
                id: department,
                order: 0,
                is_leader: false,
            }]),
            extattr: Some(
                json!({"attrs": [{"type": 0, "name": "工号", "text": {"value": "7"}}]}).into(),
            ),
            ..Member::new(userid)
        };
        let department = |id: i64, name: &str| Department {
            name: Some(name.into()),
            parent_id: Some(1),
            ..Department::new(id)
        };
        let mut mirror = Snapshot::default();
        mirror.insert_department(department(2, "研发"));
        mirror.insert_department(department(3, "销售"));
        mirror.insert_member(member("ZhangSan", "工程师", 2));
        mirror.insert_member(member("lisi", "销售", 3));
        let mut pull = Snapshot::default();
        pull.insert_department(department(2, "研发中心"));
        pull.insert_department(department(4, "市场"));
        pull.insert_member(member("ZhangSan", "高级工程师", 4));
        pull.insert_member(member("wangwu", "市场", 4));
        let changes = diff(&mirror, pull);

        let source = EventSource::new("ww1");
        let time = Utc::now();
        let borrowed: Vec<String> = changeset_drafts(&changes)
            .zip(1..)
            .map(|(draft, seq)| source.encode(&draft, seq, Some("9"), time))
            .collect();
        let values: Vec<String> = changeset_events(&changes)
            .iter()
            .zip(1..)
            .map(|(draft, seq)| source.encode(draft, seq, Some("9"), time))
            .collect();
        assert_eq!(borrowed.len(), 6, "{borrowed:#?}");
        assert_eq!(borrowed, values);
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
