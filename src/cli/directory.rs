//! `orgsync members`, `orgsync member USERID` and `orgsync departments`: the mirrored directory
//! for people, read from the store read-only (no secret, no daemon, no write access needed).

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::CliError;
use crate::config::Config;
use crate::model::{DepartmentId, Member};
use crate::service::directory;
use crate::service::ServiceError;
use crate::store::{mirror, Store};

fn failed(error: ServiceError) -> CliError {
    match error {
        ServiceError::NotFound(message) => CliError::Failed(message),
        ServiceError::Store(error) => CliError::Store(error),
    }
}

/// `orgsync members [--department ID] [--json]`: every member (or a department's subtree), one
/// per line: `userid  name  position  departments`, or the member objects events carry.
pub fn members(
    config: &Config,
    department: Option<DepartmentId>,
    json: bool,
) -> Result<u8, CliError> {
    let store = Store::open_read_only(&config.store.path)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut print = |member: &Member| -> bool {
        let line = if json {
            serde_json::to_string(member).unwrap_or_default()
        } else {
            describe(member)
        };
        writeln!(out, "{line}").is_ok()
    };
    match department {
        None => {
            let mut open = true;
            mirror::for_each_member(store.conn(), |_, member| {
                open = open && print(&member);
            })
            .map_err(|e| store.explain(e))?;
        }
        Some(id) => {
            directory::members_in(store.conn(), id, true, |line| {
                let member = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| serde_json::from_value::<Member>(v["member"].clone()).ok());
                member.is_some_and(|m| print(&m))
            })
            .map_err(failed)?;
        }
    }
    Ok(0)
}

/// `orgsync member USERID`: one member's every field, as JSON.
pub fn member(config: &Config, userid: &str) -> Result<u8, CliError> {
    let store = Store::open_read_only(&config.store.path)?;
    let member = directory::member(store.conn(), userid).map_err(failed)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&member).unwrap_or_default()
    );
    Ok(0)
}

/// `orgsync departments`: the tree, indented, with how many members each department has
/// directly and in its whole subtree.
pub fn departments(config: &Config) -> Result<u8, CliError> {
    let store = Store::open_read_only(&config.store.path)?;
    let departments = mirror::load_departments(store.conn()).map_err(|e| store.explain(e))?;
    // Direct members, and distinct members anywhere below: one in two departments of a
    // subtree counts once there.
    let mut direct: BTreeMap<DepartmentId, usize> = BTreeMap::new();
    let mut below: BTreeMap<DepartmentId, usize> = BTreeMap::new();
    mirror::for_each_member(store.conn(), |_, member| {
        let mut reached = std::collections::HashSet::new();
        for membership in member.departments.iter().flatten() {
            *direct.entry(membership.id).or_default() += 1;
            let mut current = Some(membership.id);
            while let Some(id) = current.filter(|id| departments.contains_key(id)) {
                if !reached.insert(id) {
                    break;
                }
                current = departments[&id].parent_id;
            }
        }
        for id in reached {
            *below.entry(id).or_default() += 1;
        }
    })
    .map_err(|e| store.explain(e))?;
    let mut children: BTreeMap<DepartmentId, Vec<DepartmentId>> = BTreeMap::new();
    let mut tops = Vec::new();
    for department in departments.values() {
        match department
            .parent_id
            .filter(|p| departments.contains_key(p) && *p != department.id)
        {
            Some(parent) => children.entry(parent).or_default().push(department.id),
            None => tops.push(department.id),
        }
    }
    // Within a parent, WeCom's order: larger `order` first.
    let order = |id: &DepartmentId| std::cmp::Reverse(departments[id].order.unwrap_or(0));
    for list in children.values_mut() {
        list.sort_by_key(order);
    }
    tops.sort_by_key(order);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut stack: Vec<(DepartmentId, usize)> = tops.iter().rev().map(|&id| (id, 0)).collect();
    while let Some((id, depth)) = stack.pop() {
        let department = &departments[&id];
        let line = format!(
            "{}{} {} ({} members, {} with subdepartments)",
            "  ".repeat(depth),
            id,
            department.name.as_deref().unwrap_or("?"),
            direct.get(&id).copied().unwrap_or(0),
            below.get(&id).copied().unwrap_or(0)
        );
        if writeln!(out, "{line}").is_err() {
            return Ok(0);
        }
        for &child in children.get(&id).into_iter().flatten().rev() {
            stack.push((child, depth + 1));
        }
    }
    Ok(0)
}

fn describe(member: &Member) -> String {
    let departments: Vec<String> = member
        .departments
        .iter()
        .flatten()
        .map(|d| d.id.to_string())
        .collect();
    format!(
        "{:<24} {:<12} {:<20} departments {}",
        member.userid,
        member.name.as_deref().unwrap_or("-"),
        member.position.as_deref().unwrap_or("-"),
        if departments.is_empty() {
            "-".to_owned()
        } else {
            departments.join(",")
        }
    )
}
