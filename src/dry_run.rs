//! The member-by-member report of `orgsync sync --dry-run`.

use std::fmt::Write;

use serde_json::Value;

use crate::diff::{Changeset, FieldChanges};
use crate::guard::Hold;
use crate::matching::apply::LinkChanges;
use crate::model::{Department, Member};

pub fn render(changes: &Changeset, links: &LinkChanges, hold: Option<&Hold>) -> String {
    let mut out = String::new();
    if changes.is_empty() {
        out.push_str("No changes: the mirror matches WeCom.\n");
    }
    for department in &changes.departments_created {
        let _ = writeln!(
            out,
            "+ department {} {} (parent {})",
            department.id,
            name_of(department),
            department.parent_id.map_or("?".into(), |p| p.to_string())
        );
    }
    for update in &changes.departments_updated {
        let _ = writeln!(
            out,
            "~ department {} {}: {}",
            update.department.id,
            name_of(&update.department),
            describe(&update.changes)
        );
    }
    for member in &changes.members_joined {
        let _ = writeln!(
            out,
            "+ join   {} {} (departments {})",
            member.userid,
            member.name.as_deref().unwrap_or(""),
            department_ids(member)
        );
    }
    let mut moves = 0;
    for update in &changes.members_updated {
        let moved = update
            .changes
            .get("departments")
            .is_some_and(|change| ids(&change.old) != ids(&change.new));
        moves += usize::from(moved);
        let _ = writeln!(
            out,
            "{} {} {}: {}",
            if moved { "> move  " } else { "~ change" },
            update.member.userid,
            update.member.name.as_deref().unwrap_or(""),
            describe(&update.changes)
        );
    }
    for member in &changes.members_left {
        let _ = writeln!(
            out,
            "- leave  {} {}",
            member.userid,
            member.name.as_deref().unwrap_or("")
        );
    }
    for department in &changes.departments_deleted {
        let _ = writeln!(
            out,
            "- department {} {}",
            department.id,
            name_of(department)
        );
    }
    // In the order the run's link events would come: removals first.
    for removed in &links.removed {
        let _ = writeln!(
            out,
            "- unlink host user {} from {} ({})",
            removed.host_user_id,
            removed.link.userid,
            removed.reason.as_str()
        );
    }
    for created in &links.created {
        let _ = writeln!(
            out,
            "+ link   host user {} to {} (by {})",
            created.host_user_id,
            created.link.userid,
            created.link.method.as_str()
        );
    }
    let _ = writeln!(
        out,
        "\nWould apply: {} join, {} change (of which {} move), {} leave; departments: {} created, {} updated, {} deleted; links: {} created, {} removed. Nothing was written.",
        changes.members_joined.len(),
        changes.members_updated.len(),
        moves,
        changes.members_left.len(),
        changes.departments_created.len(),
        changes.departments_updated.len(),
        changes.departments_deleted.len(),
        links.created.len(),
        links.removed.len(),
    );
    if let Some(hold) = hold {
        let _ = writeln!(
            out,
            "The deletion guard would HOLD this run: {}",
            hold.message()
        );
    }
    out
}

fn name_of(department: &Department) -> &str {
    department.name.as_deref().unwrap_or("")
}

fn department_ids(member: &Member) -> String {
    member.departments.as_ref().map_or("?".into(), |list| {
        list.iter()
            .map(|m| m.id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The department ids of a `departments` value, ignoring order and leader flags.
fn ids(value: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = value
        .as_array()
        .map(|list| list.iter().filter_map(|m| m["id"].as_i64()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

fn describe(changes: &FieldChanges) -> String {
    changes
        .iter()
        .map(|(field, change)| format!("{field} {} -> {}", change.old, change.new))
        .collect::<Vec<_>>()
        .join("; ")
}
