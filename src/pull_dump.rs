//! `orgsync sync --dry-run --dump-pull FILE`: what WeCom returned, written in the simulator's
//! directory format (docs/simulator.md), so that a pull captured from a real corp becomes a
//! fixture that `orgsync simulator --directory FILE` serves back.
//!
//! The file holds what the pull saw and nothing more: a field WeCom did not send is left out
//! (the simulator then serves its empty default), and when no member came with a mobile the
//! app is marked as one whose sensitive fields WeCom withholds. Departments whose parent the
//! pull did not include become tops (`parentid` 0) and the app's visible range; members in none
//! of the pulled departments (named individually in the range) are named in it too. The
//! corp's secret is never written: the file names a placeholder the simulator accepts.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::model::{Department, Member, Snapshot};

/// The secret the dumped directory's simulator answers `gettoken` for.
pub const PLACEHOLDER_SECRET: &str = "simulated-secret";

/// Writes the dump, readable by its owner only: it holds the members' personal data.
pub fn write(path: &Path, corp_id: &str, pulled: &Snapshot) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only to a new file: an existing one is made private before anything is
    // written into it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, &directory(corp_id, pulled))?;
    out.write_all(b"\n")?;
    out.flush()
}

/// The directory file's JSON.
pub fn directory(corp_id: &str, pulled: &Snapshot) -> Value {
    let ids: BTreeSet<i64> = pulled.departments.keys().copied().collect();
    let is_top = |d: &Department| d.parent_id.is_none_or(|parent| !ids.contains(&parent));
    let tops: Vec<i64> = pulled
        .departments
        .values()
        .filter(|d| is_top(d))
        .map(|d| d.id)
        .collect();
    let departments: Vec<Value> = pulled
        .departments
        .values()
        .map(|d| department(d, is_top(d)))
        .collect();
    let withheld =
        !pulled.members.is_empty() && pulled.members.values().all(|m| m.mobile.is_none());
    // Served back, a member in none of the file's departments is seen only if the range names
    // them: as the pull found them, through `agent/get` (or with departments WeCom did not
    // say, which the file cannot hold either).
    let named: Vec<&str> = pulled
        .members
        .values()
        .filter(|m| m.departments.as_ref().is_none_or(Vec::is_empty))
        .map(|m| m.userid.as_str())
        .collect();
    json!({
        "corp_id": corp_id,
        "corp_secret": PLACEHOLDER_SECRET,
        "visible_departments": tops,
        "visible_users": named,
        "withhold_sensitive": withheld,
        "departments": departments,
        "users": pulled.members.values().map(user).collect::<Vec<_>>(),
    })
}

fn department(d: &Department, top: bool) -> Value {
    let mut fields = Map::new();
    fields.insert("id".into(), d.id.into());
    // The simulator requires a name; WeCom always sends one to a self-built app.
    fields.insert("name".into(), d.name.clone().unwrap_or_default().into());
    put(&mut fields, "name_en", &d.name_en);
    let parent = if top { 0 } else { d.parent_id.unwrap_or(0) };
    fields.insert("parentid".into(), parent.into());
    put(&mut fields, "order", &d.order);
    put(&mut fields, "department_leader", &d.leaders);
    Value::Object(fields)
}

fn user(m: &Member) -> Value {
    let mut fields = Map::new();
    fields.insert("userid".into(), m.userid.clone().into());
    put(&mut fields, "name", &m.name);
    if let Some(memberships) = &m.departments {
        let column = |f: fn(&crate::model::Membership) -> Value| -> Value {
            memberships.iter().map(f).collect()
        };
        fields.insert("department".into(), column(|d| d.id.into()));
        fields.insert("order".into(), column(|d| d.order.into()));
        fields.insert(
            "is_leader_in_dept".into(),
            column(|d| u8::from(d.is_leader).into()),
        );
    }
    put(&mut fields, "alias", &m.alias);
    put(&mut fields, "position", &m.position);
    put(&mut fields, "mobile", &m.mobile);
    put(&mut fields, "email", &m.email);
    put(&mut fields, "biz_mail", &m.biz_mail);
    put(&mut fields, "gender", &m.gender);
    put(&mut fields, "status", &m.status);
    put(&mut fields, "telephone", &m.telephone);
    put(&mut fields, "main_department", &m.main_department);
    put(&mut fields, "direct_leader", &m.direct_leaders);
    if let Some(extattr) = &m.extattr {
        fields.insert("extattr".into(), extattr.to_value());
    }
    Value::Object(fields)
}

/// A field WeCom sent; one it did not is left out.
fn put<T: serde::Serialize>(fields: &mut Map<String, Value>, key: &str, value: &Option<T>) {
    if let Some(value) = value {
        // Strings, numbers and lists of them always convert.
        fields.insert(
            key.into(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Membership;

    #[test]
    fn a_subtree_becomes_its_own_visible_range_and_unknown_fields_stay_out() {
        let mut pulled = Snapshot::default();
        let mut top = Department::new(5);
        top.name = Some("研发".into());
        top.parent_id = Some(1);
        pulled.departments.insert(5, top);
        let mut child = Department::new(6);
        child.parent_id = Some(5);
        pulled.departments.insert(6, child);
        let mut member = Member::new("ZhangSan");
        member.name = Some("张三".into());
        member.departments = Some(vec![Membership {
            id: 6,
            order: 4_294_967_295,
            is_leader: true,
        }]);
        pulled.insert_member(member);
        let mut named = Member::new("wangwu");
        named.departments = Some(vec![]);
        pulled.insert_member(named);

        let dumped = directory("wwcorp", &pulled);
        assert_eq!(dumped["visible_departments"], json!([5]));
        assert_eq!(dumped["visible_users"], json!(["wangwu"]));
        assert_eq!(dumped["withhold_sensitive"], json!(true));
        assert_eq!(dumped["departments"][0]["parentid"], json!(0));
        assert_eq!(dumped["departments"][1]["parentid"], json!(5));
        assert_eq!(
            dumped["users"][1],
            json!({"userid": "ZhangSan", "name": "张三", "department": [6],
                   "order": [4_294_967_295_u32], "is_leader_in_dept": [1]})
        );
        assert_eq!(dumped["corp_secret"], json!(PLACEHOLDER_SECRET));
    }
}
