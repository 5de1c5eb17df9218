//! Matching inside the write transaction of the change that caused it: a sync run's apply, a
//! `host_users.put`, an import, `orgsync link` and `orgsync unlink`.
//!
//! Each pass loads the whole state and plans over it (a hash-map pass, fast at 100,000 a side:
//! see `benches/matching.rs`), then writes only the link rows that change and drafts only
//! their events. A sync run appends the drafts to its own events (docs/protocol.md, event order: after the
//! member and department events, before `sync.completed`); the other changes commit theirs on
//! their own, without a `syncrun`.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::{
    facts_of, plan, Assessment, Created, Link, MemberFacts, Method, Plan, Reason, Removed, State,
};
use crate::diff::Changeset;
use crate::events::{EventDraft, EventSource, EventType, LinkData};
use crate::hashing::FastMap;
use crate::model::host_user::{HostUser, LookupKind};
use crate::model::userid_key;
use crate::store::host_users::{self, Batch, BatchSummary};
use crate::store::{event_log, link_audit, links, lookups, mirror, StoreError};

/// The links one change removed and created, and where matching stands after it.
#[derive(Debug, Clone, Default)]
pub struct LinkChanges {
    pub removed: Vec<Removed>,
    pub created: Vec<Created>,
    pub assessment: Assessment,
}

/// A plan's link changes; its respellings are written but not announced.
impl From<Plan> for LinkChanges {
    fn from(plan: Plan) -> LinkChanges {
        LinkChanges {
            removed: plan.removed,
            created: plan.created,
            assessment: plan.assessment,
        }
    }
}

impl LinkChanges {
    /// `orgsync.link.removed` for each removal, then `orgsync.link.created` for each new link:
    /// a consumer never holds two links for one member or one host user at once. Drafted as
    /// they are appended, borrowing from the changes: a first import creates one per host user.
    pub fn drafts(&self) -> impl Iterator<Item = EventDraft<LinkData<'_>>> + '_ {
        let removed = self.removed.iter().map(|r| {
            link_draft(
                EventType::LinkRemoved,
                &r.host_user_id,
                &r.link,
                Some(r.reason.as_str()),
            )
        });
        let created = self
            .created
            .iter()
            .map(|c| link_draft(EventType::LinkCreated, &c.host_user_id, &c.link, None));
        removed.chain(created)
    }

    /// Appends this change's events as a commit of their own (no sync run), and its audit
    /// entries.
    fn announce(
        &self,
        conn: &Connection,
        source: &EventSource,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if !(self.removed.is_empty() && self.created.is_empty()) {
            event_log::append_each(conn, source, None, self.drafts(), now)?;
            self.audit(conn, by, now)?;
        }
        Ok(())
    }

    /// Records every link this change removed and created in the audit trail, each created
    /// link with the links the change took from its host user or member.
    pub fn audit(&self, conn: &Connection, by: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let at = now.to_rfc3339();
        for r in &self.removed {
            link_audit::record(
                conn,
                &link_audit::Entry {
                    at: at.clone(),
                    action: "removed".into(),
                    host_user_id: r.host_user_id.clone(),
                    userid: r.link.userid.clone(),
                    method: r.link.method.as_str().into(),
                    reason: Some(r.reason.as_str().into()),
                    by: by.into(),
                    replaced: None,
                },
            )?;
        }
        // The removed links by host user and by member: a run can remove and create a hundred
        // thousand links, too many to scan the removed ones for each created one.
        let mut by_host: FastMap<&str, Vec<usize>> = FastMap::default();
        let mut by_member: FastMap<&str, Vec<usize>> = FastMap::default();
        for (index, r) in self.removed.iter().enumerate() {
            by_host.entry(&r.host_user_id).or_default().push(index);
            by_member.entry(&r.link.userid_key).or_default().push(index);
        }
        for c in &self.created {
            let mut taken: Vec<usize> = by_host
                .get(c.host_user_id.as_str())
                .into_iter()
                .chain(by_member.get(c.link.userid_key.as_str()))
                .flatten()
                .copied()
                .collect();
            taken.sort_unstable();
            taken.dedup();
            let replaced: Vec<String> = taken
                .into_iter()
                .map(|index| &self.removed[index])
                .map(|r| {
                    format!(
                        "{} -> {} ({})",
                        r.host_user_id,
                        r.link.userid,
                        r.link.method.as_str()
                    )
                })
                .collect();
            link_audit::record(
                conn,
                &link_audit::Entry {
                    at: at.clone(),
                    action: "created".into(),
                    host_user_id: c.host_user_id.clone(),
                    userid: c.link.userid.clone(),
                    method: c.link.method.as_str().into(),
                    reason: None,
                    by: by.into(),
                    replaced: (!replaced.is_empty()).then(|| replaced.join(", ")),
                },
            )?;
        }
        Ok(())
    }
}

/// Everything matching decides from, as the store holds it now: the mirror, the host users,
/// the links and holds, and what WeCom's userid lookups answered.
pub fn load_state(conn: &Connection) -> Result<State, StoreError> {
    let mut members: FastMap<String, MemberFacts> = mirror::identities(conn)?
        .into_iter()
        .map(|identity| {
            let facts = MemberFacts::new(
                &identity.userid,
                identity.name.as_deref(),
                identity.mobile.as_deref(),
            );
            (identity.userid_key, facts)
        })
        .collect();
    add_lookup_answers(&mut members, lookups::hits(conn)?);
    Ok(State {
        members,
        host_users: host_users::facts(conn)?,
        links: links::load(conn)?,
        held: links::holds(conn)?
            .into_iter()
            .map(|hold| hold.host_user_id)
            .collect(),
    })
}

/// Gives members the mobiles and emails WeCom's lookups found them by. A mirrored mobile wins
/// over a lookup's; a member found by two different values of one kind (an answer gone stale)
/// gets neither, since only one can be right.
fn add_lookup_answers(
    members: &mut FastMap<String, MemberFacts>,
    hits: Vec<(LookupKind, String, String)>,
) {
    let mut found: FastMap<(String, LookupKind), Option<String>> = FastMap::default();
    for (kind, value, userid) in hits {
        let key = userid_key(&userid);
        if !members.contains_key(&key) {
            continue;
        }
        found
            .entry((key, kind))
            .and_modify(|seen| {
                if seen.as_deref() != Some(value.as_str()) {
                    *seen = None;
                }
            })
            .or_insert(Some(value));
    }
    for ((key, kind), value) in found {
        let Some(member) = members.get_mut(&key) else {
            continue;
        };
        match kind {
            LookupKind::Mobile if member.mobile.is_none() => member.mobile = value,
            LookupKind::Mobile => {}
            LookupKind::Email => member.email = value,
        }
    }
}

/// Re-matches after a change to the mirror or the host users and writes the link changes; the
/// caller announces them.
pub fn rematch(conn: &Connection, now: DateTime<Utc>) -> Result<LinkChanges, StoreError> {
    if !in_use(conn)? {
        return Ok(LinkChanges::default());
    }
    let state = load_state(conn)?;
    let plan = plan(&state);
    write(conn, &plan, now)?;
    Ok(plan.into())
}

/// Whether the corp uses matching at all: one that does not pays nothing for it on every sync.
fn in_use(conn: &Connection) -> Result<bool, StoreError> {
    Ok(!host_users::is_empty(conn)? || !links::load(conn)?.is_empty())
}

/// The links a run applying `changes` would create and remove, writing nothing (`orgsync sync
/// --dry-run`): the state as the store holds it, with the changed members' identities as the
/// run would write them. The same plan a run's [`rematch`] makes after its mirror changes.
pub fn preview(conn: &Connection, changes: &Changeset) -> Result<LinkChanges, StoreError> {
    if !in_use(conn)? {
        return Ok(LinkChanges::default());
    }
    let mut state = load_state(conn)?;
    let written = changes
        .members_joined
        .iter()
        .chain(changes.members_updated.iter().map(|update| &update.member));
    for member in written {
        let facts = MemberFacts::new(
            &member.userid,
            member.name.as_deref(),
            member.mobile.as_deref(),
        );
        state.members.insert(member.key(), facts);
    }
    for member in &changes.members_left {
        state.members.remove(&member.key());
    }
    add_lookup_answers(&mut state.members, lookups::hits(conn)?);
    Ok(plan(&state).into())
}

fn write(conn: &Connection, plan: &Plan, now: DateTime<Utc>) -> Result<(), StoreError> {
    for removed in &plan.removed {
        links::delete(conn, &removed.host_user_id)?;
        if removed.reason == Reason::MemberLeft {
            links::hold(
                conn,
                &removed.host_user_id,
                Reason::MemberLeft,
                &removed.link.userid,
                now,
            )?;
        }
    }
    for (host_user_id, userid) in &plan.respelled {
        links::respell(conn, host_user_id, userid)?;
    }
    for created in &plan.created {
        links::insert(conn, &created.host_user_id, &created.link, now)?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("users[{index}] has the same id {id:?} as users[{first}]; give each host user once")]
    Duplicate { index: u64, first: u64, id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `host_users.put`: writes the users (with `replace`, they become the whole set), re-matches,
/// and commits the link events with them. Nothing is written if an id repeats.
pub fn put_host_users(
    conn: &Connection,
    source: &EventSource,
    by: &str,
    users: &[HostUser],
    replace: bool,
    now: DateTime<Utc>,
) -> Result<(BatchSummary, LinkChanges), PutError> {
    let mut batch = Batch::begin(conn, now)?;
    for (index, user) in (0u64..).zip(users) {
        if let Some(duplicate) = batch.put(user, &facts_of(user), index)? {
            return Err(PutError::Duplicate {
                index,
                first: duplicate.first,
                id: user.id.clone(),
            });
        }
    }
    let summary = batch.finish(replace)?;
    let changes = rematch(conn, now)?;
    changes.announce(conn, source, by, now)?;
    Ok((summary, changes))
}

/// Re-matches and announces the link changes, as [`put_host_users`] does: the end of an import
/// or of a batch of userid lookups.
pub fn rematch_and_announce(
    conn: &Connection,
    source: &EventSource,
    by: &str,
    now: DateTime<Utc>,
) -> Result<LinkChanges, StoreError> {
    let changes = rematch(conn, now)?;
    changes.announce(conn, source, by, now)?;
    Ok(changes)
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("host user {0:?} is not in the host-user set; check the id, or import it first with `orgsync host-users import FILE`")]
    UnknownHostUser(String),
    #[error("no member with userid {0:?} in the mirror; check the userid (they compare case-insensitively), or run `orgsync sync` if they joined recently")]
    UnknownMember(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `orgsync link` (method `manual`) and `link.put` (method `login`): links the host user to the
/// member as decided, replacing whatever link either had, releases the host user's hold,
/// re-matches whoever that freed, and commits the events. Linking a pair that is already linked
/// the same way changes nothing.
pub fn link(
    conn: &Connection,
    source: &EventSource,
    by: &str,
    host_user_id: &str,
    userid: &str,
    method: Method,
    now: DateTime<Utc>,
) -> Result<LinkChanges, LinkError> {
    if !host_users::exists(conn, host_user_id)? {
        return Err(LinkError::UnknownHostUser(host_user_id.to_owned()));
    }
    let key = userid_key(userid);
    let mut state = load_state(conn)?;
    let Some(member) = state.members.get(&key) else {
        return Err(LinkError::UnknownMember(userid.to_owned()));
    };
    let manual = Link {
        userid_key: key.clone(),
        userid: member.userid.clone(),
        method,
    };
    let already = state.links.get(host_user_id);
    if already.is_some_and(|link| link.method == method && link.userid_key == key) {
        return Ok(LinkChanges {
            assessment: plan(&state).assessment,
            ..LinkChanges::default()
        });
    }

    let mut displaced: Vec<Removed> = Vec::new();
    let mut displaced_hosts: Vec<String> = state
        .links
        .iter()
        .filter(|(_, link)| link.userid_key == key)
        .map(|(host, _)| host.clone())
        .collect();
    if state.links.contains_key(host_user_id) && !displaced_hosts.iter().any(|h| h == host_user_id)
    {
        displaced_hosts.push(host_user_id.to_owned());
    }
    displaced_hosts.sort();
    for host in displaced_hosts {
        if let Some(link) = state.links.remove(&host) {
            links::delete(conn, &host)?;
            displaced.push(Removed {
                host_user_id: host,
                link,
                reason: match method {
                    Method::Login => Reason::ReplacedByLogin,
                    _ => Reason::ReplacedByManual,
                },
            });
        }
    }
    links::release(conn, host_user_id)?;
    state.held.remove(host_user_id);
    links::insert(conn, host_user_id, &manual, now)?;
    state.links.insert(host_user_id.to_owned(), manual.clone());

    let plan = plan(&state);
    write(conn, &plan, now)?;
    let mut created = vec![Created {
        host_user_id: host_user_id.to_owned(),
        link: manual,
    }];
    created.extend(plan.created);
    displaced.extend(plan.removed);
    let changes = LinkChanges {
        removed: displaced,
        created,
        assessment: plan.assessment,
    };
    changes.announce(conn, source, by, now)?;
    Ok(changes)
}

/// `orgsync unlink`: removes the host user's link, holds the host user from automatic
/// matching (or the same link would come straight back), re-matches whoever that freed, and
/// commits the events. `None` when the host user had no link.
pub fn unlink(
    conn: &Connection,
    source: &EventSource,
    by: &str,
    host_user_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<LinkChanges>, LinkError> {
    let mut state = load_state(conn)?;
    let Some(link) = state.links.remove(host_user_id) else {
        if state.host_users.contains_key(host_user_id) {
            return Ok(None);
        }
        return Err(LinkError::UnknownHostUser(host_user_id.to_owned()));
    };
    links::delete(conn, host_user_id)?;
    links::hold(conn, host_user_id, Reason::ManualUnlink, &link.userid, now)?;
    state.held.insert(host_user_id.to_owned());

    let plan = plan(&state);
    write(conn, &plan, now)?;
    let mut removed = vec![Removed {
        host_user_id: host_user_id.to_owned(),
        link,
        reason: Reason::ManualUnlink,
    }];
    removed.extend(plan.removed);
    let changes = LinkChanges {
        removed,
        created: plan.created,
        assessment: plan.assessment,
    };
    changes.announce(conn, source, by, now)?;
    Ok(Some(changes))
}

/// The event of a link created or removed (with its reason).
fn link_draft<'a>(
    kind: EventType,
    host_user_id: &'a str,
    link: &'a Link,
    reason: Option<&'static str>,
) -> EventDraft<LinkData<'a>> {
    EventDraft {
        kind,
        subject: format!("member/{}", link.userid),
        data: LinkData {
            userid: &link.userid,
            host_user_id,
            reason,
            method: link.method.as_str(),
        },
    }
}
