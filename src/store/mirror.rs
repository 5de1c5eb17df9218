//! The mirrored directory: loading it whole for the diff, applying a changeset to it.

use rusqlite::{params, Connection};

use super::{decode, encode, StoreError};
use crate::diff::Changeset;
use crate::model::{Department, JsonText, Member, Membership, Snapshot};

pub fn load(conn: &Connection) -> Result<Snapshot, StoreError> {
    let mut snapshot = Snapshot::default();

    let mut departments = conn.prepare_cached(
        "SELECT id, name, name_en, parent_id, sort_order, leaders FROM departments",
    )?;
    let mut rows = departments.query([])?;
    while let Some(row) = rows.next()? {
        let leaders: Option<String> = row.get(5)?;
        snapshot.insert_department(Department {
            id: row.get(0)?,
            name: row.get(1)?,
            name_en: row.get(2)?,
            parent_id: row.get(3)?,
            order: row.get(4)?,
            leaders: leaders
                .map(|text| decode("department leaders", &text))
                .transpose()?,
        });
    }

    let mut members = conn.prepare_cached(
        "SELECT userid_key, userid, name, alias, position, mobile, email, biz_mail, gender,
                status, telephone, departments_known, main_department, direct_leaders, extattr
         FROM members",
    )?;
    let mut rows = members.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
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
        snapshot.members.insert(key, member);
    }

    let mut memberships = conn.prepare_cached(
        "SELECT userid_key, department_id, sort_order, is_leader FROM memberships
         ORDER BY userid_key, idx",
    )?;
    let mut rows = memberships.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let membership = Membership {
            id: row.get(1)?,
            order: row.get(2)?,
            is_leader: row.get(3)?,
        };
        if let Some(list) = snapshot
            .members
            .get_mut(&key)
            .and_then(|m| m.departments.as_mut())
        {
            list.push(membership);
        }
    }
    Ok(snapshot)
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
    let mut delete_department = conn.prepare_cached("DELETE FROM departments WHERE id = ?1")?;
    for department in &changes.departments_deleted {
        delete_department.execute([department.id])?;
    }
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

/// The identity of every member; cheaper than [`load`] when only these fields are needed.
pub fn identities(conn: &Connection) -> Result<Vec<Identity>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT userid_key, userid, name, mobile FROM members")?;
    let rows = stmt.query_map([], |r| {
        Ok(Identity {
            userid_key: r.get(0)?,
            userid: r.get(1)?,
            name: r.get(2)?,
            mobile: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
