//! The diff: a pure function from (mirror, pull) to the ordered changes of one run.
//!
//! Merging follows the rule of [`crate::model`]: an attribute the pull does not carry keeps its
//! mirrored value and is never reported as a change; an attribute that becomes known after being
//! unknown is a change from `null`.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::model::{Department, DepartmentId, Member, Snapshot};

/// One attribute's old and new value, as it appears under `changes` in an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub old: Value,
    pub new: Value,
}

/// Changed attributes by name; only attributes whose value differs are listed.
pub type FieldChanges = BTreeMap<&'static str, FieldChange>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepartmentUpdate {
    /// The department after the change (mirror merged with the pull).
    pub department: Department,
    pub changes: FieldChanges,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberUpdate {
    /// The member after the change (mirror merged with the pull).
    pub member: Member,
    pub changes: FieldChanges,
}

/// The changes of one run, each list already in the order its events are emitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changeset {
    /// Parents before children.
    pub departments_created: Vec<Department>,
    pub departments_updated: Vec<DepartmentUpdate>,
    pub members_joined: Vec<Member>,
    pub members_updated: Vec<MemberUpdate>,
    /// The last known state of each member who left.
    pub members_left: Vec<Member>,
    /// Children before parents; the last known state of each.
    pub departments_deleted: Vec<Department>,
}

impl Changeset {
    pub fn is_empty(&self) -> bool {
        self.departments_created.is_empty()
            && self.departments_updated.is_empty()
            && self.members_joined.is_empty()
            && self.members_updated.is_empty()
            && self.members_left.is_empty()
            && self.departments_deleted.is_empty()
    }
}

/// Computes what must change for the mirror to reflect the pull.
pub fn diff(mirror: &Snapshot, pull: &Snapshot) -> Changeset {
    let mut changes = Changeset::default();

    for (id, pulled) in &pull.departments {
        match mirror.departments.get(id) {
            None => changes.departments_created.push(pulled.clone()),
            Some(old) => {
                let update = merge_department(old, pulled);
                if !update.changes.is_empty() {
                    changes.departments_updated.push(update);
                }
            }
        }
    }
    for (key, pulled) in &pull.members {
        match mirror.members.get(key) {
            None => changes.members_joined.push(pulled.clone()),
            Some(old) => {
                let update = merge_member(old, pulled);
                if !update.changes.is_empty() {
                    changes.members_updated.push(update);
                }
            }
        }
    }
    changes.members_left = mirror
        .members
        .iter()
        .filter(|(key, _)| !pull.members.contains_key(*key))
        .map(|(_, member)| member.clone())
        .collect();
    changes.departments_deleted = mirror
        .departments
        .iter()
        .filter(|(id, _)| !pull.departments.contains_key(*id))
        .map(|(_, department)| department.clone())
        .collect();

    let new_depths = depths(&pull.departments);
    changes
        .departments_created
        .sort_by_key(|d| (new_depths.get(&d.id).copied().unwrap_or(0), d.id));
    let old_depths = depths(&mirror.departments);
    changes.departments_deleted.sort_by_key(|d| {
        (
            std::cmp::Reverse(old_depths.get(&d.id).copied().unwrap_or(0)),
            d.id,
        )
    });
    changes
}

/// Depth of every department in its tree (0 for one whose parent is not in the set).
/// A parent cycle, which WeCom never sends, is cut where it closes instead of looping.
fn depths(departments: &BTreeMap<DepartmentId, Department>) -> BTreeMap<DepartmentId, usize> {
    let mut depths = BTreeMap::new();
    for &start in departments.keys() {
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        let mut current = start;
        let base = loop {
            if let Some(&known) = depths.get(&current) {
                break known + 1;
            }
            if !seen.insert(current) {
                break 0;
            }
            chain.push(current);
            match departments.get(&current).and_then(|d| d.parent_id) {
                Some(parent) if departments.contains_key(&parent) => current = parent,
                _ => break 0,
            }
        };
        for (offset, id) in chain.iter().rev().enumerate() {
            depths.insert(*id, base + offset);
        }
    }
    depths
}

/// Takes the pulled value when there is one, recording a change when it differs.
fn merge_field<T: Clone + PartialEq + Serialize>(
    name: &'static str,
    old: &Option<T>,
    pulled: &Option<T>,
    changes: &mut FieldChanges,
) -> Option<T> {
    match pulled {
        Some(new) if old.as_ref() != Some(new) => {
            changes.insert(
                name,
                FieldChange {
                    old: to_value(old),
                    new: to_value(new),
                },
            );
            Some(new.clone())
        }
        _ => old.clone(),
    }
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Serializing the model's plain data types cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub fn merge_department(old: &Department, pulled: &Department) -> DepartmentUpdate {
    let mut changes = FieldChanges::new();
    let department = Department {
        id: old.id,
        name: merge_field("name", &old.name, &pulled.name, &mut changes),
        name_en: merge_field("name_en", &old.name_en, &pulled.name_en, &mut changes),
        parent_id: merge_field("parent_id", &old.parent_id, &pulled.parent_id, &mut changes),
        order: merge_field("order", &old.order, &pulled.order, &mut changes),
        leaders: merge_field("leaders", &old.leaders, &pulled.leaders, &mut changes),
    };
    DepartmentUpdate {
        department,
        changes,
    }
}

pub fn merge_member(old: &Member, pulled: &Member) -> MemberUpdate {
    let mut changes = FieldChanges::new();
    // The key is case-insensitive, but the spelling WeCom uses is part of the record.
    let userid = merge_field(
        "userid",
        &Some(old.userid.clone()),
        &Some(pulled.userid.clone()),
        &mut changes,
    )
    .unwrap_or_else(|| old.userid.clone());
    let member = Member {
        userid,
        name: merge_field("name", &old.name, &pulled.name, &mut changes),
        alias: merge_field("alias", &old.alias, &pulled.alias, &mut changes),
        position: merge_field("position", &old.position, &pulled.position, &mut changes),
        mobile: merge_field("mobile", &old.mobile, &pulled.mobile, &mut changes),
        email: merge_field("email", &old.email, &pulled.email, &mut changes),
        biz_mail: merge_field("biz_mail", &old.biz_mail, &pulled.biz_mail, &mut changes),
        gender: merge_field("gender", &old.gender, &pulled.gender, &mut changes),
        status: merge_field("status", &old.status, &pulled.status, &mut changes),
        telephone: merge_field("telephone", &old.telephone, &pulled.telephone, &mut changes),
        departments: merge_field(
            "departments",
            &old.departments,
            &pulled.departments,
            &mut changes,
        ),
        main_department: merge_field(
            "main_department",
            &old.main_department,
            &pulled.main_department,
            &mut changes,
        ),
        direct_leaders: merge_field(
            "direct_leaders",
            &old.direct_leaders,
            &pulled.direct_leaders,
            &mut changes,
        ),
        extattr: merge_field("extattr", &old.extattr, &pulled.extattr, &mut changes),
    };
    MemberUpdate { member, changes }
}
