//! The directory pull: `department/list` for the subtree, then `user/list` for every department
//! in it, merged into one [`Snapshot`]. With `wecom.agent_id`, also the members the app's
//! visible range names individually, which no `user/list` returns: `agent/get` names them and
//! `user/get` reads those not already pulled. All or nothing: any failed call fails the pull.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use super::call::ClientStats;
use super::client::{NamedInRange, WecomClient};
use super::error::WecomError;
use super::in_flight::{InFlightLimit, MemberReads};
use super::tree::{belongs, select, Inconsistency, Reach, ALL_VISIBLE};
use super::wire;
use crate::model::{userid_key, Department, DepartmentId, Member, Membership, Snapshot};

/// A complete pull of the subtree.
#[derive(Debug, Clone)]
pub struct Pull {
    pub snapshot: Snapshot,
    pub stats: PullStats,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PullStats {
    /// The client's counters over this pull (calls per endpoint, retries, 45009/45033 answers).
    /// Other users of the same client during the pull would be counted too; orgsync has none.
    pub calls: ClientStats,
    pub departments: usize,
    pub members: usize,
    /// Members whose `departments` is `None`: WeCom sent no `department` array, or `order` /
    /// `is_leader_in_dept` were missing or not aligned with it.
    pub members_with_unknown_departments: usize,
    /// Departments listed outside `wecom.root_department`'s subtree, not mirrored.
    pub ignored_departments: usize,
    /// Memberships in departments that are not mirrored (outside the root's subtree or the
    /// app's visible range), left out of the members' `departments`.
    pub ignored_memberships: usize,
    /// Members the visible range names individually (`agent/get`) that no `user/list` returned,
    /// read with `user/get`. 0 without `wecom.agent_id`.
    pub named_members: usize,
    /// Of those, the ones not mirrored: with another `wecom.root_department`, members without a
    /// membership in its subtree; and members WeCom answered are gone or out of the app's
    /// visible range.
    pub ignored_members: usize,
    /// `user/list` concurrency at the end, lower than asked for after 45033 answers.
    pub final_concurrency: usize,
    pub department_list_time: Duration,
    pub user_list_time: Duration,
    pub total_time: Duration,
}

/// Where a running pull is; passed to the `progress` callback after each department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub departments_done: usize,
    pub departments_total: usize,
    /// Distinct members so far.
    pub members: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Wecom(#[from] WecomError),

    #[error(
        "department/list returned no departments for root {root}: the app's visible range \
         (可见范围) is empty or lists only members; add wecom.root_department to it in the admin console"
    )]
    NoDepartments { root: DepartmentId },

    #[error(
        "root department {root} is not in department/list's answer: it is outside the app's \
         visible range (可见范围); add it there in the admin console, or set \
         wecom.root_department to a department inside the range"
    )]
    RootNotVisible { root: DepartmentId },

    #[error("a user/list worker stopped unexpectedly: {0}")]
    Worker(String),

    #[error("WeCom's answers do not add up, so nothing was mirrored: {0}")]
    Inconsistent(#[from] Inconsistency),
}

impl PullError {
    /// Stable machine-readable code for the `orgsync.sync.failed` event.
    pub fn code(&self) -> &'static str {
        match self {
            PullError::Wecom(err) => err.code(),
            PullError::NoDepartments { .. } => "no_departments",
            PullError::RootNotVisible { .. } => "root_not_visible",
            PullError::Worker(_) => "internal",
            PullError::Inconsistent(_) => "inconsistent_pull",
        }
    }
}

/// Pulls the subtree under `root` with at most `concurrency` (at least 1) `user/list` calls in
/// flight, one fewer after each 45033. `progress` is called after each department. With
/// `agent_id` (`wecom.agent_id`), the members the app's visible range names individually are
/// read too (see [`named_members`]).
pub async fn pull(
    client: &WecomClient,
    root: DepartmentId,
    agent_id: Option<i64>,
    concurrency: usize,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Pull, PullError> {
    let started = Instant::now();
    let before = client.stats();

    let (departments, ignored_departments) = listed_departments(client, root).await?;
    let department_list_time = started.elapsed();
    let ids: Vec<DepartmentId> = departments.iter().map(|d| d.id).collect();
    let mirrored: Arc<HashSet<DepartmentId>> = Arc::new(ids.iter().copied().collect());
    tracing::debug!(
        root,
        departments = ids.len(),
        ms = department_list_time.as_millis() as u64,
        "pulled WeCom departments; listing their members"
    );

    let users_started = Instant::now();
    let listed = members(client, &ids, &mirrored, concurrency, &mut progress).await?;
    let (mut members, final_concurrency) = (listed.members, listed.final_concurrency);
    let user_list_time = users_started.elapsed();

    let named = match agent_id {
        Some(agent_id) => {
            named_members(client, agent_id, root, &mirrored, &mut members, concurrency).await?
        }
        None => Named::default(),
    };

    let snapshot = Snapshot {
        departments: departments.into_iter().map(department).collect(),
        members,
    };
    let members_with_unknown_departments = snapshot
        .members
        .values()
        .filter(|m| m.departments.is_none())
        .count();
    if members_with_unknown_departments > 0 {
        warn!(
            members = members_with_unknown_departments,
            "WeCom sent no usable department/order/is_leader_in_dept arrays for some members; \
             their departments are left unknown"
        );
    }
    let stats = PullStats {
        calls: client.stats().since(&before),
        departments: snapshot.departments.len(),
        members: snapshot.members.len(),
        members_with_unknown_departments,
        ignored_departments,
        ignored_memberships: listed.ignored_memberships + named.ignored_memberships,
        named_members: named.read,
        ignored_members: named.ignored,
        final_concurrency,
        department_list_time,
        user_list_time,
        total_time: started.elapsed(),
    };
    info!(
        departments = stats.departments,
        members = stats.members,
        calls = stats.calls.total_calls(),
        ms = stats.total_time.as_millis() as u64,
        "pulled WeCom directory"
    );
    Ok(Pull { snapshot, stats })
}

/// The departments under `root` as the app sees them now (`department/list`), checked as a pull
/// checks them, with how many outside the subtree were left out.
pub async fn departments(
    client: &WecomClient,
    root: DepartmentId,
) -> Result<(BTreeMap<DepartmentId, Department>, usize), PullError> {
    let (departments, ignored) = listed_departments(client, root).await?;
    Ok((departments.into_iter().map(department).collect(), ignored))
}

async fn listed_departments(
    client: &WecomClient,
    root: DepartmentId,
) -> Result<(Vec<wire::Department>, usize), PullError> {
    // Everything visible is asked for without an id: an app whose visible range is several
    // departments may not see department 1 itself.
    let listed = client
        .department_list((root != ALL_VISIBLE).then_some(root))
        .await?;
    if listed.is_empty() {
        return Err(PullError::NoDepartments { root });
    }
    let tree = select(root, listed)?.ok_or(PullError::RootNotVisible { root })?;
    if tree.ignored > 0 {
        warn!(
            root,
            ignored = tree.ignored,
            "department/list returned departments outside the root's subtree; they are not mirrored"
        );
    }
    Ok((tree.departments, tree.ignored))
}

fn department(d: wire::Department) -> (DepartmentId, Department) {
    (
        d.id,
        Department {
            id: d.id,
            name: d.name,
            name_en: d.name_en,
            parent_id: d.parentid,
            order: d.order,
            leaders: d.department_leader,
        },
    )
}

/// What `user/list` over every department gave.
struct Listed {
    members: BTreeMap<String, Member>,
    ignored_memberships: usize,
    /// The concurrency the pull ended with.
    final_concurrency: usize,
}

/// `user/list` for every department, merged by [`userid_key`](crate::model::userid_key). A
/// member with an empty userid, or two whose userids differ only in case, fail the pull.
async fn members(
    client: &WecomClient,
    ids: &[DepartmentId],
    mirrored: &Arc<HashSet<DepartmentId>>,
    concurrency: usize,
    progress: &mut (impl FnMut(Progress) + Send),
) -> Result<Listed, PullError> {
    // Dropping the set aborts the calls still in flight: the first failure ends the pull.
    let mut tasks = JoinSet::new();
    // Key → (index of the department it was first listed under, member). A member appears under
    // each of its departments; keeping the copy from the earliest department in WeCom's order
    // makes the result independent of which call finished first.
    let mut merged: HashMap<String, (usize, Member)> = HashMap::new();
    let mut limit = InFlightLimit::new(client, concurrency, "user/list");
    let mut next = 0;
    let mut done = 0;
    let mut ignored_memberships = 0;
    loop {
        while tasks.len() < limit.allowed() && next < ids.len() {
            let (index, id) = (next, ids[next]);
            let client = client.clone();
            let mirrored = Arc::clone(mirrored);
            // Parsing and conversion run in the task, so they spread over the runtime's threads.
            tasks.spawn(async move {
                let users = client.user_list(id).await?;
                let members: Vec<(Member, usize)> =
                    users.into_iter().map(|u| member(u, &mirrored)).collect();
                Ok::<_, WecomError>((index, id, members))
            });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (index, department, members) =
            joined.map_err(|err| PullError::Worker(err.to_string()))??;
        for (member, ignored) in members {
            if member.userid.is_empty() {
                return Err(Inconsistency::EmptyUserid { department }.into());
            }
            match merged.entry(member.key()) {
                Entry::Vacant(slot) => {
                    ignored_memberships += ignored;
                    slot.insert((index, member));
                }
                Entry::Occupied(mut slot) => {
                    let first = &slot.get().1.userid;
                    if *first != member.userid {
                        return Err(Inconsistency::CaseDuplicate {
                            first: first.clone(),
                            second: member.userid,
                        }
                        .into());
                    }
                    if index < slot.get().0 {
                        slot.insert((index, member));
                    }
                }
            }
        }
        done += 1;
        let now = Progress {
            departments_done: done,
            departments_total: ids.len(),
            members: merged.len(),
        };
        progress(now);
    }
    let members = merged
        .into_iter()
        .map(|(key, (_, member))| (key, member))
        .collect();
    Ok(Listed {
        members,
        ignored_memberships,
        final_concurrency: limit.allowed(),
    })
}

/// What [`named_members`] added to a pull.
#[derive(Default)]
struct Named {
    /// Members read with `user/get`.
    read: usize,
    /// Named members not mirrored.
    ignored: usize,
    /// Memberships of the mirrored ones in departments that are not mirrored.
    ignored_memberships: usize,
}

/// Adds to `members` those the app's visible range names individually (`agent/get` for
/// `agent_id`) that `user/list` did not return, each read with `user/get` with its memberships
/// in the `mirrored` departments, at most `concurrency` in flight (one fewer after each 45033).
///
/// With the default root (everything visible) each is mirrored, with its memberships in
/// mirrored departments only (it may have none: the app sees them, not their departments).
/// With another root, only those with a membership in its subtree (or whose departments WeCom
/// did not say, kept as a listed member with unknown departments is); the others are counted
/// as ignored. So is a member whose `user/get` says it is gone or out of the range (WeCom changed
/// between the two calls): the mirror then learns what became of them when the run asks about
/// the members missing from the pull. Any other failure fails the pull.
async fn named_members(
    client: &WecomClient,
    agent_id: i64,
    root: DepartmentId,
    mirrored: &Arc<HashSet<DepartmentId>>,
    members: &mut BTreeMap<String, Member>,
    concurrency: usize,
) -> Result<Named, PullError> {
    let NamedInRange { userids, tags } = client.named_in_range(agent_id).await?;
    let reach = Reach {
        root,
        named_members: true,
    };
    if tags > 0 {
        warn!(
            tags,
            "the app's visible range names tags; orgsync does not read tags, so members the app \
             sees only through a tag are not mirrored: name their departments or the members \
             themselves in the visible range instead"
        );
    }
    let mut asked = HashSet::new();
    // Chosen before any is read: `members` grows as the answers come in.
    let queue: Vec<String> = userids
        .into_iter()
        .filter(|userid| {
            let key = userid_key(userid);
            !members.contains_key(&key) && asked.insert(key)
        })
        .collect();
    let mut named = Named::default();
    // Returning drops the reads still in flight: the first failure ends the pull.
    let mut reads = MemberReads::start(client, queue, Arc::clone(mirrored), concurrency);
    while let Some(joined) = reads.next().await {
        let (userid, answer) = joined.map_err(|err| PullError::Worker(err.to_string()))?;
        let (member, outside) = match answer {
            Ok(read) => read,
            Err(error) => match error.member_refusal() {
                Some(refusal) => {
                    info!(
                        %userid,
                        ?refusal,
                        "a member the app's visible range names is not mirrored: user/get says \
                         they are gone or out of the range"
                    );
                    named.ignored += 1;
                    continue;
                }
                None => return Err(error.into()),
            },
        };
        named.read += 1;
        if member.key() != userid_key(&userid) {
            return Err(Inconsistency::WrongMember {
                asked: userid,
                answered: member.userid,
            }
            .into());
        }
        if belongs(reach, &member) {
            named.ignored_memberships += outside;
            members.insert(member.key(), member);
        } else {
            named.ignored += 1;
        }
    }
    if named.read > 0 || named.ignored > 0 {
        info!(
            read = named.read,
            not_mirrored = named.ignored,
            "read the members the app's visible range names individually"
        );
    }
    Ok(named)
}

/// Converts one `user/list` entry, with how many of its memberships were outside the mirrored
/// departments and left out; `main_department` stays as WeCom sent it.
///
/// `departments` is `None` (unknown) unless `department`, `order` and `is_leader_in_dept` are
/// all present and of equal length: made-up orders or leader flags would show up as changes
/// in the diff, while `None` keeps the last known memberships.
pub(super) fn member(user: wire::User, mirrored: &HashSet<DepartmentId>) -> (Member, usize) {
    let mut ignored = 0;
    let departments = match (user.department, user.order, user.is_leader_in_dept) {
        (Some(ids), Some(orders), Some(leaders))
            if ids.len() == orders.len() && ids.len() == leaders.len() =>
        {
            ignored = ids.iter().filter(|id| !mirrored.contains(id)).count();
            Some(
                ids.into_iter()
                    .zip(orders)
                    .zip(leaders)
                    .filter(|((id, _), _)| mirrored.contains(id))
                    .map(|((id, order), leader)| Membership {
                        id,
                        order,
                        is_leader: leader != 0,
                    })
                    .collect(),
            )
        }
        _ => None,
    };
    let member = Member {
        userid: user.userid,
        name: user.name,
        alias: user.alias,
        position: user.position,
        mobile: user.mobile,
        email: user.email,
        biz_mail: user.biz_mail,
        gender: user.gender,
        status: user.status,
        telephone: user.telephone,
        departments,
        main_department: user.main_department,
        direct_leaders: user.direct_leader,
        extattr: user.extattr,
    };
    (member, ignored)
}
