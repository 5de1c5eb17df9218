//! The directory with the lookups the endpoints need, rebuilt after every edit so a call costs
//! what it costs at WeCom (a benchmark makes thousands of `user/list` calls on 100k members).
//!
//! Every lookup goes through `get`: the index is only as fresh as the last rebuild, and a stale
//! entry must give a wrong answer in an already-failed test rather than a panic in the server.

use std::collections::{HashMap, HashSet};

use super::directory::{Directory, SimDepartment, SimUser};

/// Whose token made the call: the self-built app sees its visible range, the contact-sync tool
/// sees everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    App,
    ContactSync,
}

pub(crate) struct Tenant {
    pub(crate) directory: Directory,
    /// Bumped by every edit; a `list_id` cursor from an older revision is stale.
    pub(crate) revision: u64,
    department_at: HashMap<u32, usize>,
    children: HashMap<u32, Vec<u32>>,
    members_of: HashMap<u32, Vec<usize>>,
    user_at: HashMap<String, usize>,
    visible: HashSet<u32>,
    /// Positions in `directory.users` of the members the visible range names individually.
    named: Vec<usize>,
}

impl Tenant {
    pub(crate) fn new(directory: Directory) -> Tenant {
        let mut tenant = Tenant {
            directory,
            revision: 0,
            department_at: HashMap::new(),
            children: HashMap::new(),
            members_of: HashMap::new(),
            user_at: HashMap::new(),
            visible: HashSet::new(),
            named: Vec::new(),
        };
        tenant.reindex();
        tenant
    }

    pub(crate) fn reindex(&mut self) {
        self.revision += 1;
        let directory = &self.directory;
        self.department_at = directory
            .departments
            .iter()
            .enumerate()
            .map(|(at, d)| (d.id, at))
            .collect();
        self.children.clear();
        for department in &directory.departments {
            self.children
                .entry(department.parentid)
                .or_default()
                .push(department.id);
        }
        self.members_of.clear();
        self.user_at.clear();
        for (at, user) in directory.users.iter().enumerate() {
            // First spelling wins, as `Directory::validate` would insist on anyway.
            self.user_at.entry(user.userid.to_lowercase()).or_insert(at);
            for &department in &user.department {
                self.members_of.entry(department).or_default().push(at);
            }
        }
        let visible = directory
            .visible_departments
            .iter()
            .filter(|root| self.department_at.contains_key(root))
            .flat_map(|&root| self.subtree(root))
            .collect();
        self.visible = visible;
        // Userids the directory does not have are ignored, as unknown departments are; each
        // member once, however often the list names them.
        let mut named: Vec<usize> = directory
            .visible_users
            .iter()
            .filter_map(|userid| self.user_at.get(&userid.to_lowercase()).copied())
            .collect();
        named.sort_unstable();
        named.dedup();
        self.named = named;
    }

    pub(crate) fn department(&self, id: u32) -> Option<&SimDepartment> {
        self.directory
            .departments
            .get(*self.department_at.get(&id)?)
    }

    /// Userids are case-insensitive.
    pub(crate) fn user(&self, userid: &str) -> Option<&SimUser> {
        self.directory
            .users
            .get(*self.user_at.get(&userid.to_lowercase())?)
    }

    /// `id` and all its descendants, parents before children. A cycle in a hand-edited
    /// directory is walked once.
    pub(crate) fn subtree(&self, id: u32) -> Vec<u32> {
        let mut seen = HashSet::from([id]);
        let mut out = vec![id];
        let mut next = 0;
        while let Some(&current) = out.get(next) {
            next += 1;
            for &child in self.children.get(&current).into_iter().flatten() {
                if seen.insert(child) {
                    out.push(child);
                }
            }
        }
        out
    }

    /// Positions in `directory.users` of the members listed directly in `department`.
    pub(crate) fn member_positions(&self, department: u32) -> impl Iterator<Item = usize> + '_ {
        self.members_of
            .get(&department)
            .into_iter()
            .flatten()
            .copied()
    }

    pub(crate) fn can_see_department(&self, scope: Scope, id: u32) -> bool {
        match scope {
            Scope::ContactSync => true,
            Scope::App => self.visible.contains(&id),
        }
    }

    /// In a visible department, or named individually in the visible range.
    pub(crate) fn can_see_user(&self, scope: Scope, user: &SimUser) -> bool {
        user.department
            .iter()
            .any(|&d| self.can_see_department(scope, d))
            // Every member the endpoints hold is the directory's own: the same place is the
            // same member, whatever the spelling of its userid.
            || self.named_users().any(|named| std::ptr::eq(named, user))
    }

    /// The members the visible range names individually, in the directory's order.
    pub(crate) fn named_users(&self) -> impl Iterator<Item = &SimUser> + '_ {
        self.named
            .iter()
            .filter_map(|&at| self.directory.users.get(at))
    }

    /// The departments the visible range names (not their descendants), those the directory
    /// has.
    pub(crate) fn named_departments(&self) -> impl Iterator<Item = u32> + '_ {
        self.directory
            .visible_departments
            .iter()
            .copied()
            .filter(|id| self.department_at.contains_key(id))
    }

    pub(crate) fn can_see_userid(&self, scope: Scope, userid: &str) -> bool {
        self.user(userid)
            .is_some_and(|user| self.can_see_user(scope, user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::SimUser;

    fn tree() -> Directory {
        let mut directory = Directory::new("ww1", "s");
        for (id, parent) in [(2, 1), (3, 2), (4, 2), (5, 1)] {
            directory
                .departments
                .push(SimDepartment::new(id, format!("d{id}"), parent));
        }
        directory.users.push(SimUser::new("Alice", "A", &[3, 5]));
        directory.visible_departments = vec![2];
        directory
    }

    #[test]
    fn the_visible_range_covers_descendants_only() {
        let tenant = Tenant::new(tree());
        assert_eq!(tenant.subtree(2), vec![2, 3, 4]);
        assert!(tenant.can_see_department(Scope::App, 4));
        assert!(!tenant.can_see_department(Scope::App, 1));
        assert!(!tenant.can_see_department(Scope::App, 5));
        assert!(tenant.can_see_department(Scope::ContactSync, 5));
        assert!(tenant.can_see_userid(Scope::App, "alice"));
    }

    #[test]
    fn a_member_named_in_the_visible_range_is_seen_outside_it() {
        let mut directory = tree();
        directory.users.push(SimUser::new("Bob", "B", &[5]));
        directory.users.push(SimUser::new("carol", "C", &[]));
        directory.visible_users = vec!["BOB".into(), "carol".into(), "nobody".into(), "bob".into()];
        let tenant = Tenant::new(directory);
        assert!(tenant.can_see_userid(Scope::App, "bob"));
        assert!(tenant.can_see_userid(Scope::App, "Carol"));
        assert!(
            !tenant.can_see_department(Scope::App, 5),
            "not their departments"
        );
        let named: Vec<&str> = tenant.named_users().map(|u| u.userid.as_str()).collect();
        assert_eq!(
            named,
            ["Bob", "carol"],
            "the directory's spelling, each once"
        );
        assert_eq!(tenant.named_departments().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_parent_cycle_does_not_loop() {
        let mut directory = tree();
        directory.departments[1].parentid = 3;
        let tenant = Tenant::new(directory);
        assert_eq!(tenant.subtree(2), vec![2, 3, 4]);
    }
}
