//! Reading the mirrored directory: a consistent snapshot to list-then-watch from, and lookups.
//!
//! A snapshot is read in one SQLite read transaction: a sync committing meanwhile neither tears
//! it nor waits for it (WAL), and the event head read in the same transaction is the `seq` a
//! client subscribes from to miss nothing and see nothing twice. Objects are handed out one
//! line at a time, never held all at once.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rusqlite::Connection;
use serde::Serialize;
use serde_json::json;

use super::ServiceError;
use crate::model::{self, userid_key, Department, DepartmentId, Member};
use crate::store::links::{self, LinkKey, LinkView};
use crate::store::{event_log, mirror, Store};

/// Which objects a snapshot lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectTypes {
    pub departments: bool,
    pub members: bool,
    pub links: bool,
}

impl ObjectTypes {
    pub const ALL: ObjectTypes = ObjectTypes {
        departments: true,
        members: true,
        links: true,
    };

    /// From the names `department`, `member` and `link`.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<ObjectTypes, String> {
        let mut types = ObjectTypes::default();
        for name in names {
            match name {
                "department" => types.departments = true,
                "member" => types.members = true,
                "link" => types.links = true,
                other => {
                    return Err(format!(
                        "{:?} is not an object type; use \"department\", \"member\" or \"link\"",
                        other.chars().take(64).collect::<String>()
                    ))
                }
            }
        }
        Ok(types)
    }
}

/// What a snapshot lists: everything, or a department's subtree, of some object types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotFilter {
    pub department: Option<DepartmentId>,
    pub types: ObjectTypes,
}

impl Default for SnapshotFilter {
    fn default() -> SnapshotFilter {
        SnapshotFilter {
            department: None,
            types: ObjectTypes::ALL,
        }
    }
}

/// The last line of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotEnd {
    /// The event head the snapshot is consistent with: subscribe with `since: seq`.
    pub seq: i64,
    pub store: String,
    pub departments: usize,
    pub members: usize,
    pub links: usize,
}

/// Writes every object the filter selects as one JSON line each (departments parents first,
/// then members, then links) to `emit`, which returns false when the reader is gone.
pub fn snapshot(
    store: &Store,
    filter: SnapshotFilter,
    emit: impl FnMut(String) -> bool,
) -> Result<Option<SnapshotEnd>, ServiceError> {
    snapshot_with(store, filter, |_, _| true, emit)
}

/// [`snapshot`], telling `started` the seq and the store id before the first line, once the
/// read transaction has begun and the filter was found valid (a transport that sends them
/// ahead of the lines, as HTTP headers, learns them here); `started` returns false when the
/// reader is gone.
pub fn snapshot_with(
    store: &Store,
    filter: SnapshotFilter,
    started: impl FnOnce(i64, &str) -> bool,
    mut emit: impl FnMut(String) -> bool,
) -> Result<Option<SnapshotEnd>, ServiceError> {
    let tx = store.conn().unchecked_transaction()?;
    let mut end = SnapshotEnd {
        seq: event_log::head(&tx)?,
        store: store.id()?,
        departments: 0,
        members: 0,
        links: 0,
    };
    let departments = mirror::load_departments(&tx)?;
    let selected: Option<BTreeSet<DepartmentId>> = match filter.department {
        None => None,
        Some(top) => Some(subtree(&departments, top).ok_or_else(|| no_department(top))?),
    };
    if !started(end.seq, &end.store) {
        return Ok(None);
    }
    if filter.types.departments {
        for department in parents_first(&departments) {
            if selected
                .as_ref()
                .is_some_and(|s| !s.contains(&department.id))
            {
                continue;
            }
            end.departments += 1;
            if !emit(line(&json!({ "department": department }))) {
                return Ok(None);
            }
        }
    }
    // The members of the selection, for the links: every member when nothing is selected.
    let mut keys: HashSet<String> = HashSet::new();
    if filter.types.members || (filter.types.links && selected.is_some()) {
        let mut gone = false;
        mirror::for_each_member(&tx, |key, member| {
            if gone || !in_selection(&member, selected.as_ref()) {
                return;
            }
            if filter.types.members {
                end.members += 1;
                gone = !emit(line(&json!({ "member": member })));
            }
            if selected.is_some() {
                keys.insert(key);
            }
        })?;
        if gone {
            return Ok(None);
        }
    }
    if filter.types.links {
        let mut gone = false;
        links::for_each(&tx, |link| {
            if gone || (selected.is_some() && !keys.contains(&userid_key(&link.userid))) {
                return;
            }
            end.links += 1;
            gone = !emit(line(&json!({ "link": link })));
        })?;
        if gone {
            return Ok(None);
        }
    }
    Ok(Some(end))
}

/// `member.get`: a member by userid, case-insensitively.
pub fn member(conn: &Connection, userid: &str) -> Result<Member, ServiceError> {
    mirror::member(conn, &userid_key(userid))?.ok_or_else(|| {
        ServiceError::NotFound(format!(
            "no member with userid {:?} in the mirror (userids compare case-insensitively)",
            echo(userid)
        ))
    })
}

/// `department.get`: a department, and the ids on its path to the top, itself first.
pub fn department(
    conn: &Connection,
    id: DepartmentId,
) -> Result<(Department, Vec<DepartmentId>), ServiceError> {
    let departments = mirror::load_departments(conn)?;
    let department = departments
        .get(&id)
        .cloned()
        .ok_or_else(|| no_department(id))?;
    let mut path = vec![id];
    let mut current = department.parent_id;
    while let Some(parent) = current.filter(|p| departments.contains_key(p)) {
        // A mirrored tree has no cycles (a pull with one fails); the check keeps a damaged
        // store from looping.
        if path.contains(&parent) {
            break;
        }
        path.push(parent);
        current = departments.get(&parent).and_then(|d| d.parent_id);
    }
    Ok((department, path))
}

/// `members.list`: the members of a department (with `descendants`, of its whole subtree), in
/// userid order, to `emit`; returns how many, or `None` when the reader went away.
pub fn members_in(
    conn: &Connection,
    id: DepartmentId,
    descendants: bool,
    mut emit: impl FnMut(String) -> bool,
) -> Result<Option<usize>, ServiceError> {
    let tx = conn.unchecked_transaction()?;
    let departments = mirror::load_departments(&tx)?;
    let ids: Vec<DepartmentId> = match (descendants, departments.contains_key(&id)) {
        (_, false) => return Err(no_department(id)),
        (false, true) => vec![id],
        (true, true) => subtree(&departments, id)
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
    let mut count = 0;
    for key in mirror::member_keys_in(&tx, &ids)? {
        if let Some(member) = mirror::member(&tx, &key)? {
            count += 1;
            if !emit(line(&json!({ "member": member }))) {
                return Ok(None);
            }
        }
    }
    Ok(Some(count))
}

/// `link.get`: the link of a host user, or of a member.
pub fn link(conn: &Connection, by: LinkLookup<'_>) -> Result<LinkView, ServiceError> {
    let (found, what) = match by {
        LinkLookup::HostUser(id) => (
            links::find(conn, LinkKey::HostUser(id))?,
            format!("host user {:?}", echo(id)),
        ),
        LinkLookup::Member(userid) => (
            links::find(conn, LinkKey::Member(&userid_key(userid)))?,
            format!("member {:?}", echo(userid)),
        ),
    };
    found.ok_or_else(|| ServiceError::NotFound(format!("{what} has no link")))
}

/// How `link.get` finds a link.
#[derive(Debug, Clone, Copy)]
pub enum LinkLookup<'a> {
    HostUser(&'a str),
    Member(&'a str),
}

/// `top` and every department under it; `None` when `top` is not mirrored.
fn subtree(
    departments: &BTreeMap<DepartmentId, Department>,
    top: DepartmentId,
) -> Option<BTreeSet<DepartmentId>> {
    let parents = departments
        .values()
        .filter_map(|d| d.parent_id.map(|parent| (d.id, parent)));
    departments
        .contains_key(&top)
        .then(|| model::subtree(parents, top))
}

/// Every department after its parent: the tops (whose parent is not mirrored) first, then
/// breadth first below them, each level in id order.
fn parents_first(departments: &BTreeMap<DepartmentId, Department>) -> Vec<&Department> {
    let mut children: BTreeMap<DepartmentId, Vec<&Department>> = BTreeMap::new();
    let mut order: Vec<&Department> = Vec::with_capacity(departments.len());
    for department in departments.values() {
        match department.parent_id.filter(|p| departments.contains_key(p)) {
            Some(parent) if parent != department.id => {
                children.entry(parent).or_default().push(department)
            }
            _ => order.push(department),
        }
    }
    let mut seen: HashSet<DepartmentId> = order.iter().map(|d| d.id).collect();
    let mut next = 0;
    while let Some(&department) = order.get(next) {
        next += 1;
        for &child in children.get(&department.id).into_iter().flatten() {
            if seen.insert(child.id) {
                order.push(child);
            }
        }
    }
    order
}

fn in_selection(member: &Member, selected: Option<&BTreeSet<DepartmentId>>) -> bool {
    match selected {
        None => true,
        Some(selected) => member
            .departments
            .iter()
            .flatten()
            .any(|membership| selected.contains(&membership.id)),
    }
}

fn no_department(id: DepartmentId) -> ServiceError {
    ServiceError::NotFound(format!("no department {id} in the mirror"))
}

fn echo(text: &str) -> String {
    text.chars().take(64).collect()
}

/// One JSON line without its newline. Plain data always serializes.
fn line(value: &serde_json::Value) -> String {
    value.to_string()
}
