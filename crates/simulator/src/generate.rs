//! Seeded directories of any size, and seeded changes to them, for tests and benchmarks.
//!
//! Everything here is linear in the directory's size: the benchmark directory has 100,000
//! members in 5,000 departments, and a quadratic step would dominate every run.

use std::collections::{HashMap, HashSet};

use super::directory::{Directory, ExtAttrItem, Gender, SimDepartment, SimUser};
use super::names::{
    DIVISIONS, ENGLISH_NAMES, GIVEN_EITHER, GIVEN_FEMALE, GIVEN_MALE, POSITIONS, SITES, STREETS,
    SURNAMES, TEAMS,
};
use super::rng::{Rng, ALNUM};

const MAX_DEPTH: usize = 6;
const ROOT: u32 = 1;

/// What one `Directory::mutate` did. Knock-on changes are not counted separately: a leaver also
/// disappears from colleagues' `direct_leader` and from `department_leader`, and the members of
/// a deleted department are moved to its parent first (they are counted in `moved`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MutationSummary {
    /// Members with one or two attributes changed.
    pub updated: usize,
    /// Members with one department replaced by another.
    pub moved: usize,
    pub left: usize,
    pub joined: usize,
    pub departments_renamed: usize,
    pub departments_created: usize,
    pub departments_deleted: usize,
}

impl Directory {
    /// A company of `departments` departments (root included, at most 6 levels) and `members`
    /// members, the same for the same arguments on every machine.
    pub fn generate(seed: u64, departments: usize, members: usize) -> Directory {
        let mut rng = Rng::new(seed);
        let company = format!(
            "{}{}",
            rng.pick(&[
                "恒远", "星河", "华信", "博雅", "云帆", "启明", "致远", "瀚海"
            ]),
            rng.pick(&["科技", "集团", "信息技术有限公司", "网络科技有限公司"])
        );
        let mut directory = Directory::new(format!("ww{:016x}", rng.next_u64()), secret(&mut rng));
        directory.contact_sync_secret = Some(secret(&mut rng));
        // A corp's headcount limit is never below its headcount.
        directory.headcount_limit = directory.headcount_limit.max(members as u64);
        directory.departments[0].name = company;
        directory.departments[0].name_en = Some("Example Corp".into());
        directory.departments[0].order = 100_000_000;

        let mut tree = Tree::of(&directory.departments);
        for id in 2..=departments.max(1) as u32 {
            let Some(parent) = tree.random_parent(&mut rng) else {
                break;
            };
            let department = tree.add(&mut rng, id, parent);
            directory.departments.push(department);
        }

        let mut people = People::new(&directory, rng.next_u64());
        let choices: Vec<u32> = directory.departments.iter().map(|d| d.id).collect();
        directory.users = (0..members)
            .map(|_| {
                let wanted = match people.rng.below(100) {
                    0..=79 => 1,
                    80..=94 => 2,
                    _ => 3,
                };
                let departments = distinct(&mut people.rng, &choices, wanted);
                people.person(&departments)
            })
            .collect();
        appoint_leaders(&mut directory, &mut rng);
        directory
    }

    /// Changes about `fraction` of the members (half updated, a fifth moved, the rest split
    /// between leavers and joiners) and a few departments (renamed, created, deleted), the same
    /// way for the same seed and directory.
    pub fn mutate(&mut self, seed: u64, fraction: f64) -> MutationSummary {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        let mut rng = Rng::new(seed);
        let mut summary = MutationSummary::default();
        if fraction <= 0.0 {
            return summary;
        }

        let department_changes = (self.departments.len() as f64 * fraction / 4.0).ceil() as usize;
        let rehomed = self.change_departments(&mut rng, department_changes, &mut summary);
        summary.moved += rehomed.len();

        let department_ids: Vec<u32> = self.departments.iter().map(|d| d.id).collect();
        let changes =
            ((self.users.len() as f64 * fraction).round() as usize).saturating_sub(rehomed.len());
        let pool: Vec<usize> = (0..self.users.len())
            .filter(|at| !rehomed.contains(at))
            .collect();
        let picked = distinct(&mut rng, &pool, changes);
        let (updates, rest) = picked.split_at(picked.len() / 2);
        let (moves, leaves) = rest.split_at(rest.len() * 2 / 5);
        let leaves = &leaves[..leaves.len() / 2];

        let mut people = People::new(self, rng.next_u64());
        for &at in updates {
            people.update(&mut self.users[at]);
            summary.updated += 1;
        }
        for &at in moves {
            if self.move_member(&mut rng, at, &department_ids) {
                summary.moved += 1;
            }
        }
        summary.left = self.remove_members(leaves);
        let joining = changes.saturating_sub(updates.len() + moves.len() + leaves.len());
        let choices: Vec<u32> = department_ids
            .iter()
            .copied()
            .filter(|&id| id != ROOT)
            .collect();
        let choices = if choices.is_empty() {
            vec![ROOT]
        } else {
            choices
        };
        for _ in 0..joining {
            let departments = distinct(&mut people.rng, &choices, 1);
            self.users.push(people.person(&departments));
            summary.joined += 1;
        }
        summary
    }

    /// Renames, creates and deletes `count` departments each. Returns the positions of the
    /// members moved out of deleted departments.
    fn change_departments(
        &mut self,
        rng: &mut Rng,
        count: usize,
        summary: &mut MutationSummary,
    ) -> HashSet<usize> {
        let mut tree = Tree::of(&self.departments);
        let first_new_id = self.departments.iter().map(|d| d.id).max().unwrap_or(0) + 1;
        let mut next_id = first_new_id;
        let renamable: Vec<u32> = self
            .departments
            .iter()
            .map(|d| d.id)
            .filter(|&id| id != ROOT)
            .collect();
        let renamed: HashSet<u32> = distinct(rng, &renamable, count).into_iter().collect();
        for department in self
            .departments
            .iter_mut()
            .filter(|d| renamed.contains(&d.id))
        {
            department.name =
                tree.rename(rng, department.id, department.parentid, &department.name);
        }
        summary.departments_renamed = renamed.len();
        for _ in 0..count {
            let Some(parent) = tree.random_parent(rng) else {
                break;
            };
            let department = tree.add(rng, next_id, parent);
            self.departments.push(department);
            next_id += 1;
            summary.departments_created += 1;
        }
        let untouched = |id: u32| id < first_new_id && !renamed.contains(&id);
        self.delete_leaf_departments(rng, count, &tree, untouched, summary)
    }

    /// Deletes up to `count` leaf departments among those `eligible` and outside the visible-range
    /// roots, moving their members to the parent first (WeCom refuses to delete a department
    /// that has members). Returns the positions of the members it moved.
    fn delete_leaf_departments(
        &mut self,
        rng: &mut Rng,
        count: usize,
        tree: &Tree,
        eligible: impl Fn(u32) -> bool,
        summary: &mut MutationSummary,
    ) -> HashSet<usize> {
        let mut headcount: HashMap<u32, usize> = HashMap::new();
        for user in &self.users {
            for &department in &user.department {
                *headcount.entry(department).or_default() += 1;
            }
        }
        let mut candidates: Vec<(usize, u32)> = self
            .departments
            .iter()
            .map(|d| d.id)
            .filter(|&id| {
                id != ROOT
                    && eligible(id)
                    && !tree.has_children(id)
                    && !self.visible_departments.contains(&id)
            })
            .map(|id| (headcount.get(&id).copied().unwrap_or(0), id))
            .collect();
        // Departments are emptied before they are deleted, so the small ones go.
        candidates.sort_unstable();
        candidates.truncate(count * 2);
        let candidates: Vec<u32> = candidates.into_iter().map(|(_, id)| id).collect();
        let doomed: HashMap<u32, u32> = distinct(rng, &candidates, count)
            .into_iter()
            .filter_map(|id| Some((id, tree.parent(id)?)))
            .collect();
        let mut rehomed = HashSet::new();
        for (at, user) in self.users.iter_mut().enumerate() {
            // A member may sit in two of the doomed departments.
            while let Some((slot, parent)) = user
                .department
                .iter()
                .enumerate()
                .find_map(|(slot, d)| Some((slot, *doomed.get(d)?)))
            {
                let old = user.department[slot];
                if user.department.contains(&parent) {
                    user.department.remove(slot);
                    remove_at(&mut user.order, slot);
                    remove_at(&mut user.is_leader_in_dept, slot);
                } else {
                    user.department[slot] = parent;
                    set_at(&mut user.is_leader_in_dept, slot, 0);
                }
                if user.main_department == old {
                    user.main_department = parent;
                }
                rehomed.insert(at);
            }
        }
        self.departments.retain(|d| !doomed.contains_key(&d.id));
        summary.departments_deleted = doomed.len();
        rehomed
    }

    /// Replaces one of the member's departments with another; false when there is none to go to.
    fn move_member(&mut self, rng: &mut Rng, at: usize, department_ids: &[u32]) -> bool {
        let user = &mut self.users[at];
        if user.department.is_empty() || department_ids.is_empty() {
            return false;
        }
        let Some(target) = (0..8)
            .map(|_| *rng.pick(department_ids))
            .find(|d| !user.department.contains(d))
        else {
            return false;
        };
        let slot = rng.below(user.department.len());
        let old = user.department[slot];
        user.department[slot] = target;
        set_at(&mut user.order, slot, 0);
        let was_leader = user.is_leader_in_dept.get(slot) == Some(&1);
        set_at(&mut user.is_leader_in_dept, slot, 0);
        if user.main_department == old {
            user.main_department = target;
        }
        if was_leader {
            let userid = user.userid.clone();
            if let Some(department) = self.departments.iter_mut().find(|d| d.id == old) {
                department.department_leader.retain(|l| *l != userid);
            }
        }
        true
    }

    /// Removes the members at `positions`, and their names from leader lists. Returns how many.
    fn remove_members(&mut self, positions: &[usize]) -> usize {
        let leaving: HashSet<usize> = positions.iter().copied().collect();
        let gone: HashSet<String> = positions
            .iter()
            .filter_map(|&at| self.users.get(at))
            .map(|u| u.userid.to_lowercase())
            .collect();
        let mut at = 0;
        self.users.retain(|_| {
            at += 1;
            !leaving.contains(&(at - 1))
        });
        for user in &mut self.users {
            user.direct_leader
                .retain(|l| !gone.contains(&l.to_lowercase()));
        }
        for department in &mut self.departments {
            department
                .department_leader
                .retain(|l| !gone.contains(&l.to_lowercase()));
        }
        gone.len()
    }
}

/// Picks `count` distinct items (all of them if there are fewer).
fn distinct<T: Copy>(rng: &mut Rng, items: &[T], count: usize) -> Vec<T> {
    let count = count.min(items.len());
    if count <= 8 {
        // Few picks (a member's departments): retrying on a duplicate beats allocating a
        // position per department, which would make generation quadratic.
        let mut chosen: Vec<usize> = Vec::with_capacity(count);
        while chosen.len() < count {
            let position = rng.below(items.len());
            if !chosen.contains(&position) {
                chosen.push(position);
            }
        }
        return chosen.into_iter().map(|p| items[p]).collect();
    }
    // Many picks: a partial Fisher–Yates over positions, linear in the input.
    let mut positions: Vec<usize> = (0..items.len()).collect();
    for i in 0..count {
        let j = i + rng.below(items.len() - i);
        positions.swap(i, j);
    }
    positions[..count].iter().map(|&p| items[p]).collect()
}

fn remove_at<T>(values: &mut Vec<T>, at: usize) {
    if at < values.len() {
        values.remove(at);
    }
}

fn set_at<T>(values: &mut [T], at: usize, value: T) {
    if let Some(slot) = values.get_mut(at) {
        *slot = value;
    }
}

/// A 43-character secret, like the ones the admin console shows.
fn secret(rng: &mut Rng) -> String {
    rng.string(ALNUM, 43)
}

/// Gives most departments a head and most members a direct leader, consistently on both sides
/// (`department_leader` and `is_leader_in_dept`).
fn appoint_leaders(directory: &mut Directory, rng: &mut Rng) {
    let mut members_of: HashMap<u32, Vec<usize>> = HashMap::new();
    for (at, user) in directory.users.iter().enumerate() {
        for &department in &user.department {
            members_of.entry(department).or_default().push(at);
        }
    }
    let mut head_of: HashMap<u32, usize> = HashMap::new();
    for department in &mut directory.departments {
        let Some(members) = members_of.get(&department.id) else {
            continue;
        };
        let heads = match rng.below(10) {
            0..=5 => 1,
            6 => 2,
            _ => 0,
        };
        for at in distinct(rng, members, heads) {
            let user = &mut directory.users[at];
            if let Some(slot) = user.department.iter().position(|&d| d == department.id) {
                set_at(&mut user.is_leader_in_dept, slot, 1);
                department.department_leader.push(user.userid.clone());
                head_of.entry(department.id).or_insert(at);
            }
        }
    }
    let parent_of: HashMap<u32, u32> = directory
        .departments
        .iter()
        .map(|d| (d.id, d.parentid))
        .collect();
    for at in 0..directory.users.len() {
        let user = &directory.users[at];
        let own = head_of.get(&user.main_department).copied();
        let above = parent_of
            .get(&user.main_department)
            .and_then(|parent| head_of.get(parent).copied());
        let leader = own
            .filter(|&head| head != at)
            .or(above.filter(|&head| head != at));
        if let Some(head) = leader.filter(|_| rng.chance(0.85)) {
            let leader = directory.users[head].userid.clone();
            directory.users[at].direct_leader.push(leader);
        }
    }
}

/// The department tree while it grows: depth, children and names per parent (siblings must
/// have distinct names, as WeCom insists).
struct Tree {
    parent: HashMap<u32, u32>,
    depth: HashMap<u32, usize>,
    /// Departments that may still take a child (depth below the maximum).
    open: Vec<u32>,
    names: HashMap<u32, HashSet<String>>,
    order: u32,
}

impl Tree {
    fn of(departments: &[SimDepartment]) -> Tree {
        let parent: HashMap<u32, u32> = departments.iter().map(|d| (d.id, d.parentid)).collect();
        let mut depth = HashMap::with_capacity(departments.len());
        for department in departments {
            // Walk up at most 16 levels (WeCom allows 15), so a cycle cannot loop.
            let mut levels = 1;
            let mut current = department.id;
            while let Some(&above) = parent.get(&current) {
                if above == 0 || levels > 16 {
                    break;
                }
                levels += 1;
                current = above;
            }
            depth.insert(department.id, levels);
        }
        let mut names: HashMap<u32, HashSet<String>> = HashMap::new();
        for department in departments {
            names
                .entry(department.parentid)
                .or_default()
                .insert(department.name.clone());
        }
        let open = departments
            .iter()
            .map(|d| d.id)
            .filter(|id| depth.get(id).is_some_and(|&d| d < MAX_DEPTH))
            .collect();
        Tree {
            parent,
            depth,
            open,
            names,
            order: 100_000_000,
        }
    }

    fn random_parent(&self, rng: &mut Rng) -> Option<u32> {
        (!self.open.is_empty()).then(|| *rng.pick(&self.open))
    }

    fn parent(&self, id: u32) -> Option<u32> {
        self.parent.get(&id).copied()
    }

    fn has_children(&self, id: u32) -> bool {
        self.names.get(&id).is_some_and(|names| !names.is_empty())
    }

    fn add(&mut self, rng: &mut Rng, id: u32, parentid: u32) -> SimDepartment {
        let depth = self.depth.get(&parentid).copied().unwrap_or(1) + 1;
        let name = self.fresh_name(rng, parentid, depth, None);
        self.parent.insert(id, parentid);
        self.depth.insert(id, depth);
        if depth < MAX_DEPTH {
            self.open.push(id);
        }
        // Mostly WeCom's own descending defaults, sometimes anything in [0, 2^32).
        self.order = self.order.saturating_sub(1000);
        let order = if rng.chance(0.3) {
            rng.u32()
        } else {
            self.order
        };
        SimDepartment {
            order,
            ..SimDepartment::new(id, name, parentid)
        }
    }

    fn rename(&mut self, rng: &mut Rng, id: u32, parentid: u32, old: &str) -> String {
        let depth = self.depth.get(&id).copied().unwrap_or(2);
        let name = self.fresh_name(rng, parentid, depth, Some(old));
        if let Some(siblings) = self.names.get_mut(&parentid) {
            siblings.remove(old);
        }
        name
    }

    /// A name for a department at `depth`, unused among the parent's children.
    fn fresh_name(
        &mut self,
        rng: &mut Rng,
        parentid: u32,
        depth: usize,
        old: Option<&str>,
    ) -> String {
        let table = match depth {
            0..=2 => DIVISIONS,
            3 => SITES,
            _ => TEAMS,
        };
        let base = *rng.pick(table);
        let siblings = self.names.entry(parentid).or_default();
        let mut name = base.to_string();
        let mut number = 2;
        while siblings.contains(&name) || old == Some(name.as_str()) {
            name = format!("{base}{number}");
            number += 1;
        }
        siblings.insert(name.clone());
        name
    }
}

/// Makes members: unique userids (case-insensitively) and mobiles, across the whole directory.
struct People {
    rng: Rng,
    userids: HashSet<String>,
    /// Next numeric suffix to try per pinyin base, so common names stay O(1).
    suffixes: HashMap<String, u32>,
    mobiles: HashSet<String>,
    serial: usize,
}

impl People {
    fn new(directory: &Directory, seed: u64) -> People {
        People {
            rng: Rng::new(seed),
            userids: directory
                .users
                .iter()
                .map(|u| u.userid.to_lowercase())
                .collect(),
            suffixes: HashMap::new(),
            mobiles: directory.users.iter().map(|u| u.mobile.clone()).collect(),
            serial: directory.users.len(),
        }
    }

    fn person(&mut self, departments: &[u32]) -> SimUser {
        self.serial += 1;
        let rng = &mut self.rng;
        let gender = match rng.below(100) {
            0..=47 => Gender::Male,
            48..=95 => Gender::Female,
            _ => Gender::Undefined,
        };
        // Skewed towards the front of the table, as real surnames are.
        let popular = rng.below(SURNAMES.len()) + 1;
        let (surname, surname_py) = SURNAMES[rng.below(popular)];
        let given_table = match gender {
            Gender::Male => GIVEN_MALE,
            Gender::Female => GIVEN_FEMALE,
            Gender::Undefined => GIVEN_EITHER,
        };
        let mut name = surname.to_string();
        let mut given_py = String::new();
        let characters = if rng.chance(0.3) { 1 } else { 2 };
        for i in 0..characters {
            let (character, pinyin) = if i == 0 && rng.chance(0.3) {
                *rng.pick(GIVEN_EITHER)
            } else {
                *rng.pick(given_table)
            };
            name.push_str(character);
            given_py.push_str(pinyin);
        }
        let camel_case = rng.chance(0.03);
        let userid = self.userid(surname_py, &given_py, camel_case);
        let key = userid.to_lowercase();
        let mobile = self.mobile();

        let rng = &mut self.rng;
        let position = *rng.pick(POSITIONS);
        let mut user = SimUser::new(userid, name, departments);
        user.order = departments
            .iter()
            .map(|_| if rng.chance(0.2) { rng.u32() } else { 0 })
            .collect();
        user.gender = gender;
        user.position = position.into();
        user.mobile = mobile;
        user.email = format!("{key}@corp.example.com");
        user.biz_mail = format!("{key}@corp.exmail.example.com");
        let avatar = format!(
            "https://wework.qpic.cn/wwhead/{:016x}{:08x}",
            rng.next_u64(),
            rng.u32()
        );
        user.thumb_avatar = format!("{avatar}/100");
        user.avatar = format!("{avatar}/0");
        user.qr_code = format!(
            "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=vc{:016x}",
            rng.next_u64()
        );
        if rng.chance(0.3) {
            user.telephone = format!(
                "0{}-{}",
                rng.pick(&["10", "21", "755", "20", "571", "28"]),
                20_000_000 + rng.below(70_000_000)
            );
        }
        if rng.chance(0.1) {
            user.alias = (*rng.pick(ENGLISH_NAMES)).into();
        }
        if rng.chance(0.4) {
            user.address = format!("{}{}号", rng.pick(STREETS), rng.below(200) + 1);
        }
        user.status = match rng.below(100) {
            0..=92 => 1,
            93..=97 => 4,
            _ => 2,
        };
        if rng.chance(0.3) {
            user.external_position = position.into();
        }
        if rng.chance(0.6) {
            user.extattr
                .attrs
                .push(ExtAttrItem::text("工号", format!("E{:06}", self.serial)));
        }
        if rng.chance(0.1) {
            user.extattr.attrs.push(ExtAttrItem::web(
                "个人主页",
                "主页",
                format!("https://corp.example.com/~{key}"),
            ));
        }
        user
    }

    fn userid(&mut self, surname: &str, given: &str, camel_case: bool) -> String {
        let base = format!("{surname}{given}");
        let mut candidate = base.clone();
        if self.userids.contains(&candidate) {
            let suffix = self.suffixes.entry(base.clone()).or_insert(2);
            while self.userids.contains(&format!("{base}{suffix}")) {
                *suffix += 1;
            }
            candidate = format!("{base}{suffix}");
            *suffix += 1;
        }
        self.userids.insert(candidate.clone());
        if camel_case {
            // Same letters, so still unique case-insensitively.
            capitalize(&candidate[..surname.len()]) + &capitalize(&candidate[surname.len()..])
        } else {
            candidate
        }
    }

    /// An 11-digit mainland mobile on a real carrier prefix, unused in the directory.
    fn mobile(&mut self) -> String {
        const PREFIXES: &[&str] = &[
            "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
            "153", "155", "156", "157", "158", "159", "166", "173", "176", "177", "180", "181",
            "182", "185", "186", "187", "188", "189", "191", "198", "199",
        ];
        loop {
            let mobile = format!(
                "{}{:08}",
                self.rng.pick(PREFIXES),
                self.rng.below(100_000_000)
            );
            if self.mobiles.insert(mobile.clone()) {
                return mobile;
            }
        }
    }

    /// Changes one or two attributes to a value different from the current one.
    fn update(&mut self, user: &mut SimUser) {
        for _ in 0..1 + self.rng.below(2) {
            match self.rng.below(8) {
                0 => {
                    let position = *self.rng.pick(POSITIONS);
                    user.position = if user.position == position {
                        format!("高级{position}")
                    } else {
                        position.into()
                    };
                }
                1 => user.mobile = self.mobile(),
                2 => {
                    user.telephone = format!("010-{}", 20_000_000 + self.rng.below(70_000_000));
                }
                3 => {
                    user.alias = if user.alias.is_empty() {
                        (*self.rng.pick(ENGLISH_NAMES)).into()
                    } else {
                        String::new()
                    };
                }
                4 => user.status = if user.status == 1 { 2 } else { 1 },
                5 => {
                    user.address =
                        format!("{}{}号", self.rng.pick(STREETS), self.rng.below(200) + 201)
                }
                6 => {
                    user.external_position = if user.external_position.is_empty() {
                        user.position.clone()
                    } else {
                        String::new()
                    };
                }
                _ => {
                    let employee_no = format!("E{:06}", self.rng.below(1_000_000));
                    match user.extattr.attrs.iter_mut().find(|a| a.name == "工号") {
                        Some(attr) => *attr = ExtAttrItem::text("工号", format!("{employee_no}X")),
                        None => user
                            .extattr
                            .attrs
                            .push(ExtAttrItem::text("工号", employee_no)),
                    }
                }
            }
        }
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_same_seed_gives_the_same_directory() {
        assert_eq!(
            Directory::generate(7, 40, 300),
            Directory::generate(7, 40, 300)
        );
        assert_ne!(
            Directory::generate(7, 40, 300),
            Directory::generate(8, 40, 300)
        );
        let mut a = Directory::generate(7, 40, 300);
        let mut b = a.clone();
        assert_eq!(a.mutate(3, 0.1), b.mutate(3, 0.1));
        assert_eq!(a, b);
    }

    #[test]
    fn a_generated_directory_is_well_formed() {
        let directory = Directory::generate(42, 200, 3000);
        directory.validate().unwrap();
        assert_eq!(directory.departments.len(), 200);
        assert_eq!(directory.users.len(), 3000);
        let tree = Tree::of(&directory.departments);
        assert!(tree.depth.values().all(|&d| d <= MAX_DEPTH));
        assert!(tree.depth.values().any(|&d| d >= 4));
        for user in &directory.users {
            assert!((1..=3).contains(&user.department.len()), "{user:?}");
            assert_eq!(user.mobile.len(), 11);
            assert!(user.mobile.starts_with('1'));
            assert!(user.userid.is_ascii());
            for leader in &user.direct_leader {
                assert!(directory.users.iter().any(|u| &u.userid == leader));
            }
        }
        let mobiles: HashSet<_> = directory.users.iter().map(|u| &u.mobile).collect();
        assert_eq!(mobiles.len(), directory.users.len());
        assert!(directory.users.iter().any(|u| u.department.len() > 1));
        assert!(directory
            .users
            .iter()
            .any(|u| u.userid.chars().any(|c| c.is_ascii_uppercase())));
        assert!(directory.departments.iter().any(|d| d.order > 1 << 31));
        // Leaders agree on both sides.
        for department in &directory.departments {
            for leader in &department.department_leader {
                let user = directory
                    .users
                    .iter()
                    .find(|u| &u.userid == leader)
                    .unwrap();
                let slot = user
                    .department
                    .iter()
                    .position(|&d| d == department.id)
                    .unwrap();
                assert_eq!(user.is_leader_in_dept[slot], 1);
            }
        }
    }

    #[test]
    fn mutate_changes_about_the_fraction_and_stays_well_formed() {
        let mut directory = Directory::generate(1, 100, 2000);
        let before = directory.clone();
        let summary = directory.mutate(9, 0.1);
        directory.validate().unwrap();
        let members = summary.updated + summary.moved + summary.left + summary.joined;
        assert!((180..=260).contains(&members), "{summary:?}");
        assert!(summary.updated > 0 && summary.moved > 0 && summary.left > 0 && summary.joined > 0);
        assert!(summary.departments_renamed > 0 && summary.departments_created > 0);
        assert!(summary.departments_deleted > 0, "{summary:?}");
        assert_eq!(
            directory.users.len(),
            before.users.len() - summary.left + summary.joined
        );
        assert_eq!(
            directory.departments.len(),
            before.departments.len() + summary.departments_created - summary.departments_deleted
        );
        let changed = before
            .users
            .iter()
            .filter(|old| {
                directory
                    .users
                    .iter()
                    .any(|new| new.userid == old.userid && new != *old)
            })
            .count();
        assert!(changed >= summary.updated, "{changed} < {summary:?}");
        assert_eq!(directory.clone().mutate(5, 0.0), MutationSummary::default());
    }

    /// The benchmark size in release builds; a tenth of it in debug builds, where the bound
    /// only catches accidental quadratic behaviour.
    #[test]
    fn generation_scales_linearly() {
        let (departments, members, bound) = if cfg!(debug_assertions) {
            (500, 10_000, Duration::from_secs(20))
        } else {
            (5_000, 100_000, Duration::from_secs(5))
        };
        let started = Instant::now();
        let mut directory = Directory::generate(2024, departments, members);
        directory.mutate(2025, 0.01);
        let elapsed = started.elapsed();
        assert!(elapsed < bound, "{members} members took {elapsed:?}");
        directory.validate().unwrap();
    }
}
