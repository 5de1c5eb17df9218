//! The mirrored directory: reading it (whole, or a member at a time for a run's diff), and
//! applying a changeset to it.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rusqlite::{params, Connection, Row};

use super::rows::{self, from_row};
use super::{decode, encode, StoreError};
use crate::diff::Changeset;
use crate::model::{userid_key, Department, DepartmentId, JsonText, Member, Membership, Snapshot};

/// The columns [`member_row`] reads, in its order.
const MEMBER_COLUMNS: &str = "userid_key, userid, name, alias, position, mobile, email, biz_mail,
    gender, status, telephone, departments_known, main_department, direct_leaders, extattr";

/// The whole mirror. A sync run streams it instead ([`for_each_member`]).
pub fn load(conn: &Connection) -> Result<Snapshot, StoreError> {
    let mut snapshot = Snapshot {
        departments: load_departments(conn)?,
        ..Snapshot::default()
    };
    for_each_member(conn, |key, member| {
        snapshot.members.insert(key, member);
    })?;
    Ok(snapshot)
}

pub fn load_departments(
    conn: &Connection,
) -> Result<BTreeMap<DepartmentId, Department>, StoreError> {
    let mut departments = BTreeMap::new();
    let sql = "SELECT id, name, name_en, parent_id, sort_order, leaders FROM departments";
    rows::for_each(conn, sql, [], |row| {
        let leaders: Option<String> = row.get(5)?;
        let department = Department {
            id: row.get(0)?,
            name: row.get(1)?,
            name_en: row.get(2)?,
            parent_id: row.get(3)?,
            order: row.get(4)?,
            leaders: leaders
                .map(|text| decode("department leaders", &text))
                .transpose()?,
        };
        departments.insert(department.id, department);
        Ok(())
    })?;
    Ok(departments)
}

/// Hands every mirrored member to `each`, with its key, in key order, one at a time: the
/// members and their memberships are read side by side, both in key order.
pub fn for_each_member(
    conn: &Connection,
    mut each: impl FnMut(String, Member),
) -> Result<(), StoreError> {
    let mut members = conn.prepare_cached(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members ORDER BY userid_key"
    ))?;
    let mut memberships = conn.prepare_cached(
        "SELECT userid_key, department_id, sort_order, is_leader FROM memberships
         ORDER BY userid_key, idx",
    )?;
    let mut member_rows = members.query([])?;
    let mut membership_rows = memberships.query([])?;
    let mut next_membership = membership(membership_rows.next()?)?;
    while let Some(row) = member_rows.next()? {
        let (key, mut member) = member_row(row)?;
        // Memberships sort with their member; any of a key before this one has no member row
        // (the foreign key prevents that) and is skipped, as loading it whole did.
        while let Some((membership_key, found)) = next_membership.take() {
            match membership_key.as_str().cmp(&key) {
                Ordering::Greater => {
                    next_membership = Some((membership_key, found));
                    break;
                }
                Ordering::Equal => {
                    if let Some(list) = member.departments.as_mut() {
                        list.push(found);
                    }
                }
                Ordering::Less => {}
            }
            next_membership = membership(membership_rows.next()?)?;
        }
        each(key, member);
    }
    Ok(())
}

/// One member by [`crate::model::userid_key`], with its memberships.
pub fn member(conn: &Connection, key: &str) -> Result<Option<Member>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members WHERE userid_key = ?1"
    ))?;
    let mut rows = stmt.query([key])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let (_, mut member) = self::member_row(row)?;
    if let Some(list) = member.departments.as_mut() {
        let mut stmt = conn.prepare_cached(
            "SELECT userid_key, department_id, sort_order, is_leader FROM memberships
             WHERE userid_key = ?1 ORDER BY idx",
        )?;
        let mut rows = stmt.query([key])?;
        while let Some((_, found)) = membership(rows.next()?)? {
            list.push(found);
        }
    }
    Ok(Some(member))
}

/// The keys of the members with a membership in any of `departments`, in key order.
pub fn member_keys_in(
    conn: &Connection,
    departments: &[DepartmentId],
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT userid_key FROM memberships WHERE department_id = ?1")?;
    let mut keys = std::collections::BTreeSet::new();
    for department in departments {
        let rows = stmt.query_map([department], |r| r.get::<_, String>(0))?;
        for key in rows {
            keys.insert(key?);
        }
    }
    Ok(keys.into_iter().collect())
}

fn member_row(row: &Row<'_>) -> Result<(String, Member), StoreError> {
    let departments_known: bool = row.get(11)?;
    let direct_leaders: Option<String> = row.get(13)?;
    let extattr: Option<String> = row.get(14)?;
    let member = Member {
        userid: row.get(1)?,
        name: row.get(2)?,
        alias: row.get(3)?,
        position: row.get(4)?,
        mobile: row.get(5)?,
        email: row.get(6)?,
        biz_mail: row.get(7)?,
        gender: row.get(8)?,
        status: row.get(9)?,
        telephone: row.get(10)?,
        departments: departments_known.then(Vec::new),
        main_department: row.get(12)?,
        direct_leaders: direct_leaders
            .map(|text| decode("direct leaders", &text))
            .transpose()?,
        extattr: extattr
            .map(JsonText::from_compact)
            .transpose()
            .map_err(|source| StoreError::Decode {
                what: "extattr",
                source,
            })?,
    };
    Ok((row.get(0)?, member))
}

fn membership(row: Option<&Row<'_>>) -> Result<Option<(String, Membership)>, StoreError> {
    let Some(row) = row else {
        return Ok(None);
    };
    let membership = Membership {
        id: row.get(1)?,
        order: row.get(2)?,
        is_leader: row.get(3)?,
    };
    Ok(Some((row.get(0)?, membership)))
}

/// Writes a changeset into the mirror. Only changed rows are touched, so a run with few
/// changes costs little however large the directory.
pub fn apply(conn: &Connection, changes: &Changeset) -> Result<(), StoreError> {
    for department in &changes.departments_created {
        upsert_department(conn, department)?;
    }
    for update in &changes.departments_updated {
        upsert_department(conn, &update.department)?;
    }
    for member in &changes.members_joined {
        upsert_member(conn, member)?;
    }
    for update in &changes.members_updated {
        upsert_member(conn, &update.member)?;
    }
    let mut delete_member = conn.prepare_cached("DELETE FROM members WHERE userid_key = ?1")?;
    for member in &changes.members_left {
        delete_member.execute([member.key()])?;
    }
    for rename in &changes.members_renamed {
        rename_member(conn, &rename.previous_userid, &rename.member)?;
    }
    let mut delete_department = conn.prepare_cached("DELETE FROM departments WHERE id = ?1")?;
    for department in &changes.departments_deleted {
        delete_department.execute([department.id])?;
    }
    Ok(())
}

/// Moves a member to a new userid: the row and memberships, the leaders' references to it in
/// departments and in other members, and its host-user link, hold and lookup answers. The
/// person keeps their place, so nothing that pointed at them is lost.
fn rename_member(conn: &Connection, previous: &str, member: &Member) -> Result<(), StoreError> {
    let (old_key, new_key) = (userid_key(previous), member.key());
    conn.prepare_cached("DELETE FROM members WHERE userid_key = ?1")?
        .execute([&old_key])?;
    upsert_member(conn, member)?;
    // Leaders are JSON arrays of userids; an element equal to the old userid (compared
    // case-insensitively) becomes the new one.
    for (table, column) in [("departments", "leaders"), ("members", "direct_leaders")] {
        conn.execute(
            &format!(
                "UPDATE {table} SET {column} = (
                     SELECT json_group_array(CASE WHEN lower(value) = ?1 THEN ?2 ELSE value END)
                     FROM json_each({table}.{column}))
                 WHERE EXISTS (SELECT 1 FROM json_each({table}.{column}) WHERE lower(value) = ?1)"
            ),
            params![old_key, member.userid],
        )?;
    }
    conn.prepare_cached("UPDATE links SET userid_key = ?2, userid = ?3 WHERE userid_key = ?1")?
        .execute(params![old_key, new_key, member.userid])?;
    conn.prepare_cached("UPDATE match_holds SET userid = ?2 WHERE lower(userid) = ?1")?
        .execute(params![old_key, member.userid])?;
    conn.prepare_cached("UPDATE lookups SET userid = ?2 WHERE lower(userid) = ?1")?
        .execute(params![old_key, member.userid])?;
    Ok(())
}

fn upsert_department(conn: &Connection, department: &Department) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO departments (id, name, name_en, parent_id, sort_order, leaders)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        department.id,
        department.name,
        department.name_en,
        department.parent_id,
        department.order,
        department.leaders.as_ref().map(encode),
    ])?;
    Ok(())
}

fn upsert_member(conn: &Connection, member: &Member) -> Result<(), StoreError> {
    let key = member.key();
    // Deleting first drops the old memberships through the cascade; REPLACE alone would
    // too, but only with recursive triggers on, which is easy to break by accident.
    conn.prepare_cached("DELETE FROM members WHERE userid_key = ?1")?
        .execute([&key])?;
    conn.prepare_cached(
        "INSERT INTO members (userid_key, userid, name, alias, position, mobile, email, biz_mail,
                              gender, status, telephone, departments_known, main_department,
                              direct_leaders, extattr)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        key,
        member.userid,
        member.name,
        member.alias,
        member.position,
        member.mobile,
        member.email,
        member.biz_mail,
        member.gender,
        member.status,
        member.telephone,
        member.departments.is_some(),
        member.main_department,
        member.direct_leaders.as_ref().map(encode),
        member.extattr.as_ref().map(encode),
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO memberships (userid_key, idx, department_id, sort_order, is_leader)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (idx, membership) in member.departments.iter().flatten().enumerate() {
        insert.execute(params![
            key,
            idx as i64,
            membership.id,
            membership.order,
            membership.is_leader
        ])?;
    }
    Ok(())
}

/// How many departments and members the mirror holds.
pub fn counts(conn: &Connection) -> Result<MirrorCounts, StoreError> {
    Ok(MirrorCounts {
        departments: conn.query_row("SELECT count(*) FROM departments", [], |r| r.get(0))?,
        members: conn.query_row("SELECT count(*) FROM members", [], |r| r.get(0))?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MirrorCounts {
    pub departments: i64,
    pub members: i64,
}

/// What matching reads of a member, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub userid_key: String,
    pub userid: String,
    pub name: Option<String>,
    pub mobile: Option<String>,
}
from_row!(Identity {
    userid_key,
    userid,
    name,
    mobile
});

/// The identity of every member; cheaper than [`load`] when only these fields are needed.
pub fn identities(conn: &Connection) -> Result<Vec<Identity>, StoreError> {
    rows::all(
        conn,
        "SELECT userid_key, userid, name, mobile FROM members",
        [],
    )
}
