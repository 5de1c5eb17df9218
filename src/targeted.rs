//! The pull of a run started by WeCom contact-change callbacks: the mirror as it is, with the
//! members the callbacks named read again with `user/get`.
//!
//! A callback's attributes are never taken as the new state: it may be ID-only (sync-tool URLs
//! configured after 2022-08-15), partial (an `update_user` carries only what changed), late or
//! out of order. It only says whom to read again. The patched snapshot then goes through the
//! same diff, guard, apply and events as a full pull, so a callback run obeys every rule a run
//! does. A department change re-reads the department tree (`department/list`, one call); if a
//! mirrored department is gone from it, or a change type is unknown, or the burst names more
//! than [`MAX_MEMBERS`] members, the run is a full pull instead: a department move can touch
//! thousands of members, which `user/list` per department reads in far fewer calls.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use crate::model::{userid_key, DepartmentId, Snapshot};
use crate::store::callbacks::Callback;
use crate::wecom::{belongs, MemberReads, MemberRefusal, Reach, WecomClient, WecomError};

/// More members than this in one callback run are read with a full pull.
pub const MAX_MEMBERS: usize = 500;

/// What a callback run has to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Nothing pending: every callback was covered by an earlier run.
    Nothing,
    /// These userids, as the callbacks spelled them (a rename names the old and the new), and
    /// whether a department changed (the department tree is read again).
    Targeted {
        userids: BTreeSet<String>,
        departments: bool,
    },
    /// A full pull: a department or tag changed, an event orgsync cannot target, or too many
    /// members.
    Full,
}

/// A renamed member, as a callback announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub old: String,
    pub new: String,
}

pub fn scope(pending: &[Callback]) -> Scope {
    if pending.is_empty() {
        return Scope::Nothing;
    }
    let mut userids = BTreeSet::new();
    let mut departments = false;
    for callback in pending {
        match callback.change_type.as_str() {
            "create_user" | "update_user" | "delete_user" => {
                userids.extend(callback.userid.iter().cloned());
                userids.extend(callback.new_userid.iter().cloned());
            }
            "create_party" | "update_party" | "delete_party" => departments = true,
            _ => return Scope::Full,
        }
    }
    if userids.len() > MAX_MEMBERS {
        return Scope::Full;
    }
    Scope::Targeted {
        userids,
        departments,
    }
}

/// The renames the callbacks announced, oldest first, a chain (`a` to `b`, then `b` to `c`)
/// folded into one (`a` to `c`).
pub fn renames(pending: &[Callback]) -> Vec<Rename> {
    let mut renames: Vec<Rename> = Vec::new();
    for callback in pending.iter().filter(|c| c.change_type == "update_user") {
        let (Some(old), Some(new)) = (&callback.userid, &callback.new_userid) else {
            continue;
        };
        if userid_key(old) == userid_key(new) {
            continue;
        }
        match renames
            .iter_mut()
            .find(|r| userid_key(&r.new) == userid_key(old))
        {
            Some(chain) => chain.new.clone_from(new),
            None => renames.push(Rename {
                old: old.clone(),
                new: new.clone(),
            }),
        }
    }
    renames
}

/// How a callback run's reads went, beside the patched snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reread {
    pub members_read: usize,
    /// Keys of the userids WeCom does not have ([`MemberRefusal::Gone`]): confirmed deleted.
    pub deleted: BTreeSet<String>,
    /// Keys of the members outside the app's visible range ([`MemberRefusal::OutOfRange`]):
    /// kept as they are; a full pull decides (`safety.out_of_scope`).
    pub out_of_range: BTreeSet<String>,
    /// Members read with memberships in departments the run does not know: outside the
    /// mirrored subtree, or new ones whose callback has not come (or was lost).
    pub unknown_departments: usize,
}

/// `mirror` (of what `reach` covers) with every member in `userids` read
/// again: replaced by what `user/get` answers, removed when WeCom has no such userid or the
/// member is no longer in a mirrored department, kept as it is when the app may not see them.
/// At most `concurrency` calls are in flight, one fewer after each 45033. Any other failure
/// fails the run, and the callbacks stay pending.
///
/// A member the app sees is kept or removed as a full pull would mirror them ([`belongs`]).
pub async fn reread(
    client: &WecomClient,
    mut mirror: Snapshot,
    userids: &BTreeSet<String>,
    reach: Reach,
    concurrency: usize,
) -> Result<(Snapshot, Reread), WecomError> {
    let mirrored: HashSet<DepartmentId> = mirror.departments.keys().copied().collect();
    let mut report = Reread::default();
    // Returning drops the reads still in flight.
    let mut reads = MemberReads::start(
        client,
        userids.iter().cloned().collect(),
        Arc::new(mirrored),
        concurrency,
    );
    while let Some(joined) = reads.next().await {
        let (userid, answer) = joined.map_err(|e| WecomError::Settings(e.to_string()))?;
        let key = userid_key(&userid);
        match answer {
            Ok((member, outside)) => {
                report.members_read += 1;
                report.unknown_departments += usize::from(outside > 0);
                if belongs(reach, &member) {
                    mirror.insert_member(member);
                } else {
                    mirror.members.remove(&key);
                }
            }
            Err(error) => match error.member_refusal() {
                Some(MemberRefusal::Gone) => {
                    mirror.members.remove(&key);
                    report.deleted.insert(key);
                }
                Some(MemberRefusal::OutOfRange) => {
                    report.out_of_range.insert(key);
                }
                None => return Err(error),
            },
        }
    }
    Ok((mirror, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(change_type: &str, userid: Option<&str>, new_userid: Option<&str>) -> Callback {
        Callback {
            id: 1,
            change_type: change_type.into(),
            userid: userid.map(Into::into),
            new_userid: new_userid.map(Into::into),
            department_id: None,
        }
    }

    #[test]
    fn member_and_department_callbacks_are_targeted_and_unknown_ones_a_full_pull() {
        assert_eq!(scope(&[]), Scope::Nothing);
        let pending = [
            callback("create_user", Some("a"), None),
            callback("update_user", Some("b"), Some("c")),
            callback("delete_user", Some("a"), None),
        ];
        let userids: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        assert_eq!(
            scope(&pending),
            Scope::Targeted {
                userids: userids.clone(),
                departments: false
            }
        );
        assert_eq!(
            renames(&pending),
            [Rename {
                old: "b".into(),
                new: "c".into()
            }]
        );
        let mut with_party = pending.to_vec();
        with_party.push(callback("update_party", None, None));
        assert_eq!(
            scope(&with_party),
            Scope::Targeted {
                userids,
                departments: true
            }
        );
        with_party.push(callback("a_new_kind_of_change", None, None));
        assert_eq!(scope(&with_party), Scope::Full);
        let burst: Vec<Callback> = (0..=MAX_MEMBERS)
            .map(|n| callback("update_user", Some(&format!("u{n}")), None))
            .collect();
        assert_eq!(scope(&burst), Scope::Full);
    }

    #[test]
    fn a_chain_of_renames_is_one() {
        let pending = [
            callback("update_user", Some("a"), Some("b")),
            callback("update_user", Some("B"), Some("c")),
        ];
        assert_eq!(
            renames(&pending),
            [Rename {
                old: "a".into(),
                new: "c".into()
            }]
        );
    }

    #[test]
    fn a_new_userid_that_differs_only_in_case_is_no_rename() {
        let pending = [callback("update_user", Some("Ann"), Some("ann"))];
        assert!(renames(&pending).is_empty());
    }
}
