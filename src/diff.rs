//! The diff: a pure function from (mirror, pull) to the ordered changes of one run.
//!
//! Merging follows the rule of [`crate::model`]: an attribute the pull does not carry keeps its
//! mirrored value and is never reported as a change; an attribute that becomes known after being
//! unknown is a change from `null`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::model::{userid_key, Department, DepartmentId, Member, Snapshot};

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
    /// Keys of the members in `members_left` whom WeCom confirmed deleted (`user/get` answered
    /// that the userid does not exist); the others left for a reason not asked.
    pub confirmed_deleted: BTreeSet<String>,
    /// Keys of the members in `members_left` that still exist in WeCom but are outside the
    /// app's visible range.
    pub out_of_scope: BTreeSet<String>,
    /// Members who kept their place under a new userid (a callback announced the rename).
    pub members_renamed: Vec<MemberRename>,
    /// Children before parents; the last known state of each.
    pub departments_deleted: Vec<Department>,
}

/// A member under a new userid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberRename {
    /// As WeCom spelled it before.
    pub previous_userid: String,
    /// As it is now, under the new userid.
    pub member: Member,
}

impl Changeset {
    pub fn is_empty(&self) -> bool {
        self.departments_created.is_empty()
            && self.departments_updated.is_empty()
            && self.members_joined.is_empty()
            && self.members_updated.is_empty()
            && self.members_left.is_empty()
            && self.members_renamed.is_empty()
            && self.departments_deleted.is_empty()
    }

    /// Turns each announced rename (old userid, new userid) whose old member left and whose
    /// new member joined into one renamed member: the person kept their place.
    pub fn pair_renames<'a>(&mut self, renames: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (old, new) in renames {
            let (old, new) = (userid_key(old), userid_key(new));
            let left = self.members_left.iter().position(|m| m.key() == old);
            let joined = self.members_joined.iter().position(|m| m.key() == new);
            let (Some(left), Some(joined)) = (left, joined) else {
                continue;
            };
            let previous = self.members_left.remove(left);
            self.confirmed_deleted.remove(&old);
            let member = self.members_joined.remove(joined);
            self.members_renamed.push(MemberRename {
                previous_userid: previous.userid,
                member,
            });
        }
    }
}

/// Computes what must change for the mirror to reflect the pull. The pull is consumed: its
/// new members and departments move into the changes.
pub fn diff(mirror: &Snapshot, pull: Snapshot) -> Changeset {
    let mut comparison = Comparison::new(pull);
    for (key, member) in &mirror.members {
        comparison.mirrored(key, Cow::Borrowed(member));
    }
    comparison.finish(&mirror.departments)
}

/// [`diff`] fed the mirror's members one at a time, so that a run never holds the whole mirror
/// beside the pull: at 100,000 members that copy was a third of a resync's peak memory. Feed
/// every mirrored member once, in key order (the order of [`Snapshot::members`]), then
/// [`Comparison::finish`] with the mirror's departments.
pub struct Comparison {
    /// What is left of the pull: each pulled member is taken out when its mirrored self is
    /// compared, so those left at the end are the ones who joined.
    pull: Snapshot,
    updated: Vec<MemberUpdate>,
    left: Vec<Member>,
    mirrored: usize,
}

impl Comparison {
    pub fn new(pull: Snapshot) -> Comparison {
        Comparison {
            pull,
            updated: Vec::new(),
            left: Vec::new(),
            mirrored: 0,
        }
    }

    /// One mirrored member, under its [`crate::model::userid_key`]. An owned member who left
    /// is kept without a copy.
    pub fn mirrored(&mut self, key: &str, member: Cow<'_, Member>) {
        self.mirrored += 1;
        match self.pull.members.remove(key) {
            None => self.left.push(member.into_owned()),
            Some(pulled) => self.updated.extend(merge_member(&member, &pulled)),
        }
    }

    /// How many members the mirror had: the deletion guard weighs the leavers against it.
    pub fn mirrored_members(&self) -> usize {
        self.mirrored
    }

    /// The changeset, given the mirror's departments.
    pub fn finish(self, mirrored: &BTreeMap<DepartmentId, Department>) -> Changeset {
        let pull = self.pull;
        let new_depths = depths(&pull.departments);
        let old_depths = depths(mirrored);
        let mut changes = Changeset {
            members_joined: pull.members.into_values().collect(),
            members_updated: self.updated,
            members_left: self.left,
            departments_deleted: mirrored
                .iter()
                .filter(|(id, _)| !pull.departments.contains_key(*id))
                .map(|(_, department)| department.clone())
                .collect(),
            ..Changeset::default()
        };
        for (id, pulled) in pull.departments {
            match mirrored.get(&id) {
                None => changes.departments_created.push(pulled),
                Some(old) => changes
                    .departments_updated
                    .extend(merge_department(old, &pulled)),
            }
        }
        changes
            .departments_created
            .sort_by_key(|d| (new_depths.get(&d.id).copied().unwrap_or(0), d.id));
        changes.departments_deleted.sort_by_key(|d| {
            (
                std::cmp::Reverse(old_depths.get(&d.id).copied().unwrap_or(0)),
                d.id,
            )
        });
        changes
    }
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

/// Records a change when the pull carries a value that differs from the mirror's.
fn note<T: PartialEq + Serialize>(
    name: &'static str,
    old: &Option<T>,
    pulled: &Option<T>,
    changes: &mut FieldChanges,
) {
    if let Some(new) = pulled {
        if old.as_ref() != Some(new) {
            changes.insert(
                name,
                FieldChange {
                    old: to_value(old),
                    new: to_value(new),
                },
            );
        }
    }
}

/// The pulled value when there is one, else the mirror's.
fn merged<T: Clone>(old: &Option<T>, pulled: &Option<T>) -> Option<T> {
    pulled.as_ref().or(old.as_ref()).cloned()
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Serializing the model's plain data types cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

// The merges compare first and copy only when something changed: in a nightly run nearly every
// member is unchanged, and copying each one made the diff of 100,000 members twice as slow.

/// `merge!(old, pulled, changes, Type { kept.. } [fields..])` notes in `changes` each listed
/// field the pull changed and, only when one did, builds `Type` from the kept values and the
/// merged fields. The fields are listed once for both, and the struct literal must name every
/// field of `Type`: a field added to the model is compared as soon as it compiles.
macro_rules! merge {
    ($old:expr, $pulled:expr, $changes:ident,
     $type:ident { $($kept:ident: $kept_value:expr),* $(,)? } [$($field:ident),+ $(,)?]) => {{
        $(note(stringify!($field), &$old.$field, &$pulled.$field, &mut $changes);)+
        (!$changes.is_empty()).then(|| $type {
            $($kept: $kept_value,)*
            $($field: merged(&$old.$field, &$pulled.$field),)+
        })
    }};
}

/// The department after the pull and what changed, or `None` when nothing did.
pub fn merge_department(old: &Department, pulled: &Department) -> Option<DepartmentUpdate> {
    let mut changes = FieldChanges::new();
    let department = merge!(
        old,
        pulled,
        changes,
        Department { id: old.id } [name, name_en, parent_id, order, leaders]
    )?;
    Some(DepartmentUpdate {
        department,
        changes,
    })
}

/// The member after the pull and what changed, or `None` when nothing did.
pub fn merge_member(old: &Member, pulled: &Member) -> Option<MemberUpdate> {
    let mut changes = FieldChanges::new();
    // The key is case-insensitive, but the spelling WeCom uses is part of the record.
    note(
        "userid",
        &Some(&old.userid),
        &Some(&pulled.userid),
        &mut changes,
    );
    let member = merge!(
        old,
        pulled,
        changes,
        Member { userid: pulled.userid.clone() } [
            name,
            alias,
            position,
            mobile,
            email,
            biz_mail,
            gender,
            status,
            telephone,
            departments,
            main_department,
            direct_leaders,
            extattr,
        ]
    )?;
    Some(MemberUpdate { member, changes })
}
