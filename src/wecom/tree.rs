//! The department tree of a pull, checked before anything of it is mirrored. A tree that does
//! not add up (a department listed twice, one without a parent, a cycle) makes the pull fail:
//! mirroring what is left of it would turn the departments that fell out, and their members,
//! into departures.
//!
//! Which departments are mirrored depends on `wecom.root_department`:
//! - [`ALL_VISIBLE`] (1, the default): everything the app can see. An app's visible range
//!   (可见范围) may be several separate departments; WeCom then lists departments whose
//!   parent the app cannot see, and each of them is the top of a subtree of its own, mirrored
//!   with the `parent_id` WeCom gave it.
//! - any other id: that department and its descendants only. Departments outside it (a server
//!   that ignored `id` would send them) are left out and counted.

use std::collections::{HashMap, HashSet};

use super::wire;
use crate::model::{subtree, DepartmentId, Member};

/// `wecom.root_department` meaning "every department the app can see".
pub const ALL_VISIBLE: DepartmentId = 1;

/// The id of a corp's top department (its parent is 0).
const TOP: DepartmentId = 1;

/// What a mirror holds: the subtree of `root` (`wecom.root_department`), and, when
/// `named_members` (`wecom.agent_id` is set), the members the app's visible range names
/// individually.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    pub root: DepartmentId,
    pub named_members: bool,
}

/// Whether a member the app sees belongs in a mirror of `reach`, their memberships already cut
/// to the mirrored departments. One with a mirrored membership does, and one whose memberships
/// are unknown (the last known ones stand). One with none is a member the visible range names
/// individually (whether WeCom then lists their departments outside the range or leaves them
/// out is not documented): mirrored only when everything visible is and named members are read.
pub fn belongs(reach: Reach, member: &Member) -> bool {
    match member.departments.as_deref() {
        None => true,
        Some([]) => reach.root == ALL_VISIBLE && reach.named_members,
        Some(_) => true,
    }
}

/// Why a pull cannot be mirrored as it came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    #[error("department {0} is listed twice by department/list")]
    DuplicateDepartment(DepartmentId),
    #[error("department {0} came without a parentid")]
    MissingParent(DepartmentId),
    #[error("departments form a cycle through their parentids: {}", chain(.0))]
    Cycle(Vec<DepartmentId>),
    #[error("user/list of department {department} returned a member with an empty userid")]
    EmptyUserid { department: DepartmentId },
    #[error("userids {first:?} and {second:?} differ only in case; WeCom userids are unique regardless of case")]
    CaseDuplicate { first: String, second: String },
    #[error("user/get for {asked:?} answered the member {answered:?}")]
    WrongMember { asked: String, answered: String },
}

fn chain(ids: &[DepartmentId]) -> String {
    let mut text: Vec<String> = ids.iter().map(ToString::to_string).collect();
    if let Some(first) = ids.first() {
        text.push(first.to_string());
    }
    text.join(" → ")
}

/// The departments to mirror, in WeCom's order, and how many of those listed were left out.
#[derive(Debug)]
pub struct Tree {
    pub departments: Vec<wire::Department>,
    pub ignored: usize,
}

/// Checks `all` (as `department/list` returned it) and keeps what `root` selects. `Ok(None)`
/// when `root` is a single department the app cannot see.
pub fn select(
    root: DepartmentId,
    mut all: Vec<wire::Department>,
) -> Result<Option<Tree>, Inconsistency> {
    let mut parents: HashMap<DepartmentId, DepartmentId> = HashMap::with_capacity(all.len());
    for department in &mut all {
        // The corp's top department has no parent. WeCom's examples give it `parentid` 0, but
        // no documented rule says so: an absent or null one is that 0, not a broken tree.
        if department.id == TOP && department.parentid.is_none() {
            department.parentid = Some(0);
        }
        let parent = department
            .parentid
            .ok_or(Inconsistency::MissingParent(department.id))?;
        if parents.insert(department.id, parent).is_some() {
            return Err(Inconsistency::DuplicateDepartment(department.id));
        }
    }
    check_cycles(&all, &parents)?;
    if root == ALL_VISIBLE {
        return Ok(Some(Tree {
            departments: all,
            ignored: 0,
        }));
    }
    if !parents.contains_key(&root) {
        return Ok(None);
    }
    let keep = subtree(parents.iter().map(|(&id, &parent)| (id, parent)), root);
    let total = all.len();
    let departments: Vec<_> = all.into_iter().filter(|d| keep.contains(&d.id)).collect();
    Ok(Some(Tree {
        ignored: total - departments.len(),
        departments,
    }))
}

/// Follows every department's parents within the list; a chain that comes back to itself is a
/// cycle (a department that is its own parent is one of length 1).
fn check_cycles(
    all: &[wire::Department],
    parents: &HashMap<DepartmentId, DepartmentId>,
) -> Result<(), Inconsistency> {
    let mut done: HashSet<DepartmentId> = HashSet::with_capacity(all.len());
    for department in all {
        let mut path: Vec<DepartmentId> = Vec::new();
        let mut on_path: HashSet<DepartmentId> = HashSet::new();
        let mut current = department.id;
        while parents.contains_key(&current) && !done.contains(&current) {
            if !on_path.insert(current) {
                let start = path.iter().position(|&id| id == current).unwrap_or(0);
                return Err(Inconsistency::Cycle(path[start..].to_vec()));
            }
            path.push(current);
            current = parents[&current];
        }
        done.extend(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn department(id: DepartmentId, parentid: Option<DepartmentId>) -> wire::Department {
        serde_json::from_value(serde_json::json!({"id": id, "parentid": parentid})).unwrap()
    }

    /// Departments from `(id, parentid)` pairs.
    fn listed(edges: &[(DepartmentId, DepartmentId)]) -> Vec<wire::Department> {
        edges
            .iter()
            .map(|&(id, parent)| department(id, Some(parent)))
            .collect()
    }

    fn ids(tree: &Tree) -> Vec<DepartmentId> {
        tree.departments.iter().map(|d| d.id).collect()
    }

    #[test]
    fn the_top_department_without_a_parentid_has_parent_0_and_no_other_does() {
        for root in [ALL_VISIBLE, 2] {
            let all = vec![department(1, None), department(2, Some(1))];
            let tree = select(root, all).unwrap().unwrap();
            let top = tree.departments.iter().find(|d| d.id == 1);
            assert_eq!(top.map(|d| d.parentid), (root == 1).then_some(Some(0)));
        }
        let absent: wire::Department =
            serde_json::from_value(serde_json::json!({"id": 1})).unwrap();
        let tree = select(ALL_VISIBLE, vec![absent]).unwrap().unwrap();
        assert_eq!(tree.departments[0].parentid, Some(0));
        assert_eq!(
            select(
                ALL_VISIBLE,
                vec![department(1, Some(0)), department(2, None)]
            )
            .unwrap_err(),
            Inconsistency::MissingParent(2)
        );
    }

    #[test]
    fn several_visible_subtrees_are_all_mirrored_under_the_default_root() {
        let all = listed(&[(5, 1), (6, 5), (9, 2)]);
        let tree = select(ALL_VISIBLE, all).unwrap().unwrap();
        assert_eq!(ids(&tree), [5, 6, 9]);
        assert_eq!(tree.ignored, 0);
    }

    #[test]
    fn another_root_keeps_its_subtree_and_counts_the_rest() {
        let all = listed(&[(1, 0), (2, 1), (3, 2), (90, 80)]);
        let tree = select(2, all).unwrap().unwrap();
        assert_eq!(ids(&tree), [2, 3]);
        assert_eq!(tree.ignored, 2);
        assert!(select(7, listed(&[(1, 0)])).unwrap().is_none());
    }

    #[test]
    fn trees_that_do_not_add_up_are_refused() {
        let refused = |all| select(ALL_VISIBLE, all).unwrap_err();
        assert_eq!(
            refused(listed(&[(1, 0), (7, 7)])),
            Inconsistency::Cycle(vec![7])
        );
        assert_eq!(
            refused(listed(&[(1, 0), (3, 5), (4, 3), (5, 4)])),
            Inconsistency::Cycle(vec![3, 5, 4])
        );
        assert_eq!(
            refused(listed(&[(1, 0), (1, 0)])),
            Inconsistency::DuplicateDepartment(1)
        );
        assert_eq!(
            refused(vec![department(1, Some(0)), department(2, None)]),
            Inconsistency::MissingParent(2)
        );
    }
}
