//! Matching WeCom members to the host application's own users, so that a WeCom login or message
//! lands on the right account.
//!
//! A wrong link hands one person's account to another; an unmatched user only has to be linked
//! by hand. Every rule below chooses "unmatched" whenever the evidence is less than certain.
//!
//! # The rules, in order
//!
//! 1. **Manual links** (`orgsync link HOST_ID USERID`) always win. Automatic matching never
//!    removes or replaces one, and never links either of its ends to anyone else. A manual link
//!    ends only by `orgsync unlink`, by another manual link taking one of its ends, or when its
//!    member leaves WeCom; it survives its host user being removed from the host-user set (an
//!    admin's decision is not undone by a partial re-import).
//! 2. **Phone**: both sides' mobiles normalized by [`phone::normalize`]; exact and one-to-one
//!    over the *whole* set: a mobile that two members share, or two host users share, links
//!    nobody, whether or not the others are linked already.
//! 3. **Name**: [`name::normalize`] (NFKC + trim), only when the name belongs to exactly one
//!    unlinked member and exactly one unlinked host user (after the phone links of the same
//!    pass). Even then the pair is refused when the phones disagree: both mobiles known and
//!    different, or either side's mobile belonging to someone else on the other side.
//! 4. Everyone else stays unmatched. **Email is not used**, not even as a tie-breaker: WeCom
//!    withholds it from apps created after 2022-06-20 just as it withholds mobiles, and
//!    mailboxes are recycled when people leave, so an equal email is no proof of the same
//!    person; it could only ever turn an unmatched pair into a wrong one.
//!
//! # Held host users
//!
//! A host user whose link was removed by `orgsync unlink`, or whose member left WeCom, is
//! *held*: automatic matching no longer links it, until a manual link releases it. Without the
//! first, an unlinked automatic link would come straight back; without the second, the account
//! of someone who left would be handed to the next hire with the same name. A held host user
//! still counts when deciding whether a phone or a name is unique.
//!
//! # Stability
//!
//! An automatic link stays as long as its own basis holds: the two mobiles still equal (phone),
//! the two names still equal and the two mobiles not contradicting (name). What happens to other
//! people never removes it: a newcomer with the same name or mobile does not undo a link made
//! when the match was unique. The newcomer is then the one left unmatched (there is nobody
//! unlinked to pair it with, or the mobile is no longer one-to-one), and the report lists the
//! duplicate. Links therefore do not flap when someone is imported twice by mistake.
//!
//! Matching is a pure function ([`plan`]) from the members, the host users, the existing links
//! and the holds to the link changes; [`apply`] runs it inside the write transaction of the
//! change that caused it, and writes and announces only the links that change.

pub mod apply;
pub mod commands;
pub mod csv;
pub mod host_user;
pub mod import;
pub mod name;
pub mod phone;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// How a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Phone,
    Name,
    Manual,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Phone => "phone",
            Method::Name => "name",
            Method::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Method> {
        [Method::Phone, Method::Name, Method::Manual]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// Why a link went, as `reason` in `orgsync.link.removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The member is no longer in the mirror.
    MemberLeft,
    /// The host user of an automatic link is no longer in the host-user set.
    HostUserRemoved,
    /// A phone link whose two mobiles are no longer equal.
    PhoneChanged,
    /// A name link whose two names are no longer equal.
    NameChanged,
    /// A name link whose two mobiles became known and differ.
    PhoneConflict,
    /// `orgsync unlink`.
    ManualUnlink,
    /// A manual link took the link's host user or member.
    ReplacedByManual,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MemberLeft => "member_left",
            Reason::HostUserRemoved => "host_user_removed",
            Reason::PhoneChanged => "phone_changed",
            Reason::NameChanged => "name_changed",
            Reason::PhoneConflict => "phone_conflict",
            Reason::ManualUnlink => "manual_unlink",
            Reason::ReplacedByManual => "replaced_by_manual",
        }
    }
}

/// What matching knows of a member: the userid as WeCom spells it, and the normalized name and
/// mobile (`None` when unknown or unusable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFacts {
    pub userid: String,
    pub name: Option<String>,
    pub mobile: Option<String>,
}

impl MemberFacts {
    pub fn new(userid: &str, name: Option<&str>, mobile: Option<&str>) -> MemberFacts {
        MemberFacts {
            userid: userid.to_owned(),
            name: name.and_then(name::normalize),
            mobile: mobile.and_then(phone::normalize),
        }
    }
}

/// What matching knows of a host user: its normalized name and mobile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub name: Option<String>,
    pub mobile: Option<String>,
}

impl HostFacts {
    pub fn new(name: Option<&str>, mobile: Option<&str>) -> HostFacts {
        HostFacts {
            name: name.and_then(name::normalize),
            mobile: mobile.and_then(phone::normalize),
        }
    }
}

/// One link, as stored under its host user's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub userid_key: String,
    /// The member's userid as WeCom spelled it last; names the member after it has left.
    pub userid: String,
    pub method: Method,
}

/// Everything matching decides from.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// By [`crate::model::userid_key`].
    pub members: HashMap<String, MemberFacts>,
    /// By host user id.
    pub host_users: HashMap<String, HostFacts>,
    /// By host user id; a manual link's host user may be absent from `host_users`.
    pub links: HashMap<String, Link>,
    /// Host user ids that automatic matching must not link.
    pub held: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub host_user_id: String,
    pub link: Link,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub host_user_id: String,
    pub link: Link,
}

/// The members and host users that share one mobile or one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The normalized mobile or name.
    pub value: String,
    /// Userid keys, sorted.
    pub members: Vec<String>,
    /// Host user ids, sorted.
    pub host_users: Vec<String>,
}

/// A name match refused because the phones disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub host_user_id: String,
    pub userid_key: String,
}

/// How many are linked, ambiguous (have candidates, but not exactly one), or unmatched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub linked: usize,
    pub ambiguous: usize,
    pub unmatched: usize,
}

/// The state after the plan: the links, and why the rest are not linked.
#[derive(Debug, Clone, Default)]
pub struct Assessment {
    /// By host user id.
    pub links: BTreeMap<String, Link>,
    /// Mobiles that block phone matching because more than one member or host user has them,
    /// where at least one of them is unlinked; sorted by mobile.
    pub ambiguous_phones: Vec<Group>,
    /// Names of more than one unlinked member or host user, with candidates on both sides;
    /// sorted by name.
    pub ambiguous_names: Vec<Group>,
    /// Sorted by host user id.
    pub conflicts: Vec<Conflict>,
    /// Unlinked host users that appear in an ambiguous group.
    pub ambiguous_host_users: HashSet<String>,
    /// Unlinked members that appear in an ambiguous group.
    pub ambiguous_members: HashSet<String>,
    /// Over the host users present in the set.
    pub host_users: Counts,
    pub members: Counts,
}

/// The link changes one matching pass makes, and the state they lead to.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Sorted by host user id; written before `created`.
    pub removed: Vec<Removed>,
    /// Sorted by host user id.
    pub created: Vec<Created>,
    /// Host user ids to hold from now on (their member left).
    pub held: Vec<String>,
    /// Kept links whose member WeCom now spells differently: (host user id, new spelling).
    pub respelled: Vec<(String, String)>,
    pub assessment: Assessment,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
            && self.created.is_empty()
            && self.held.is_empty()
            && self.respelled.is_empty()
    }
}

/// Mobiles and names, each with who has them.
type Index<'a> = HashMap<&'a str, Vec<&'a str>>;

fn index<'a>(entries: impl Iterator<Item = (&'a str, Option<&'a String>)>) -> Index<'a> {
    let mut index: Index<'a> = HashMap::new();
    for (who, value) in entries {
        if let Some(value) = value {
            index.entry(value.as_str()).or_default().push(who);
        }
    }
    index
}

/// Decides the link changes for `state`; see the module documentation for the rules.
pub fn plan(state: &State) -> Plan {
    let mut plan = Plan::default();
    let mut links: BTreeMap<String, Link> = BTreeMap::new();

    for (host_id, link) in &state.links {
        match broken(state, host_id, link) {
            Some(reason) => {
                if reason == Reason::MemberLeft {
                    plan.held.push(host_id.clone());
                }
                let mut link = link.clone();
                if let Some(member) = state.members.get(&link.userid_key) {
                    link.userid = member.userid.clone();
                }
                plan.removed.push(Removed {
                    host_user_id: host_id.clone(),
                    link,
                    reason,
                });
            }
            None => {
                let mut link = link.clone();
                if let Some(member) = state.members.get(&link.userid_key) {
                    if member.userid != link.userid {
                        plan.respelled
                            .push((host_id.clone(), member.userid.clone()));
                        link.userid = member.userid.clone();
                    }
                }
                links.insert(host_id.clone(), link);
            }
        }
    }

    let members_by_phone = index(
        state
            .members
            .iter()
            .map(|(key, m)| (key.as_str(), m.mobile.as_ref())),
    );
    let hosts_by_phone = index(
        state
            .host_users
            .iter()
            .map(|(id, h)| (id.as_str(), h.mobile.as_ref())),
    );

    let kept_members: HashSet<&str> = links.values().map(|l| l.userid_key.as_str()).collect();
    // Held already, or from this pass on because their member left.
    let held: HashSet<&str> = state
        .held
        .iter()
        .chain(&plan.held)
        .map(String::as_str)
        .collect();

    // Phone: one-to-one over the whole set.
    let mut phone_links: Vec<(&str, &str)> = Vec::new();
    for (mobile, hosts) in &hosts_by_phone {
        let (&[host_id], Some(&[member_key])) = (
            hosts.as_slice(),
            members_by_phone.get(mobile).map(Vec::as_slice),
        ) else {
            continue;
        };
        if !links.contains_key(host_id)
            && !held.contains(host_id)
            && !kept_members.contains(member_key)
        {
            phone_links.push((host_id, member_key));
        }
    }
    let phone_hosts: HashSet<&str> = phone_links.iter().map(|(h, _)| *h).collect();
    let phone_members: HashSet<&str> = phone_links.iter().map(|(_, m)| *m).collect();

    // Name: unique among the unlinked on both sides, phones not disagreeing.
    let members_by_name = index(
        state
            .members
            .iter()
            .filter(|(key, _)| {
                !kept_members.contains(key.as_str()) && !phone_members.contains(key.as_str())
            })
            .map(|(key, m)| (key.as_str(), m.name.as_ref())),
    );
    let hosts_by_name = index(
        state
            .host_users
            .iter()
            .filter(|(id, _)| !links.contains_key(*id) && !phone_hosts.contains(id.as_str()))
            .map(|(id, h)| (id.as_str(), h.name.as_ref())),
    );
    let phones_disagree =
        |host: &HostFacts, member: &MemberFacts| match (&host.mobile, &member.mobile) {
            (Some(a), Some(b)) => a != b,
            (Some(a), None) => members_by_phone.contains_key(a.as_str()),
            (None, Some(b)) => hosts_by_phone.contains_key(b.as_str()),
            (None, None) => false,
        };
    let mut name_links: Vec<(&str, &str)> = Vec::new();
    let mut conflicts = Vec::new();
    let mut name_groups = Vec::new();
    for (name, hosts) in &hosts_by_name {
        let Some(members) = members_by_name.get(name) else {
            continue;
        };
        let (&[host_id], &[member_key]) = (hosts.as_slice(), members.as_slice()) else {
            name_groups.push(group(name, members, hosts));
            continue;
        };
        let (Some(host), Some(member)) =
            (state.host_users.get(host_id), state.members.get(member_key))
        else {
            continue;
        };
        if held.contains(host_id) {
            continue;
        }
        if phones_disagree(host, member) {
            conflicts.push(Conflict {
                host_user_id: host_id.to_owned(),
                userid_key: member_key.to_owned(),
            });
        } else {
            name_links.push((host_id, member_key));
        }
    }

    let new_links = phone_links
        .iter()
        .map(|&(h, m)| (h, m, Method::Phone))
        .chain(name_links.iter().map(|&(h, m)| (h, m, Method::Name)));
    for (host_id, member_key, method) in new_links {
        let Some(member) = state.members.get(member_key) else {
            continue;
        };
        plan.created.push(Created {
            host_user_id: host_id.to_owned(),
            link: Link {
                userid_key: member_key.to_owned(),
                userid: member.userid.clone(),
                method,
            },
        });
    }
    for created in &plan.created {
        links.insert(created.host_user_id.clone(), created.link.clone());
    }

    plan.removed
        .sort_by(|a, b| a.host_user_id.cmp(&b.host_user_id));
    plan.created
        .sort_by(|a, b| a.host_user_id.cmp(&b.host_user_id));
    plan.held.sort();
    plan.respelled.sort();
    conflicts.sort_by(|a, b| a.host_user_id.cmp(&b.host_user_id));

    let linked_members: HashSet<&str> = links.values().map(|l| l.userid_key.as_str()).collect();
    let mut phone_groups = Vec::new();
    for (mobile, hosts) in &hosts_by_phone {
        let Some(members) = members_by_phone.get(mobile) else {
            continue;
        };
        let shared = hosts.len() > 1 || members.len() > 1;
        let open = hosts.iter().any(|h| !links.contains_key(*h))
            || members.iter().any(|m| !linked_members.contains(m));
        if shared && open {
            phone_groups.push(group(mobile, members, hosts));
        }
    }
    phone_groups.sort_by(|a, b| a.value.cmp(&b.value));
    name_groups.sort_by(|a, b| a.value.cmp(&b.value));

    let mut assessment = Assessment {
        conflicts,
        ..Assessment::default()
    };
    for group in phone_groups.iter().chain(&name_groups) {
        for host_id in &group.host_users {
            if !links.contains_key(host_id) {
                assessment.ambiguous_host_users.insert(host_id.clone());
            }
        }
        for member_key in &group.members {
            if !linked_members.contains(member_key.as_str()) {
                assessment.ambiguous_members.insert(member_key.clone());
            }
        }
    }
    let linked_hosts = state
        .host_users
        .keys()
        .filter(|id| links.contains_key(*id))
        .count();
    assessment.host_users = counts(
        state.host_users.len(),
        linked_hosts,
        assessment.ambiguous_host_users.len(),
    );
    assessment.members = counts(
        state.members.len(),
        linked_members.len(),
        assessment.ambiguous_members.len(),
    );
    assessment.ambiguous_phones = phone_groups;
    assessment.ambiguous_names = name_groups;
    assessment.links = links;
    plan.assessment = assessment;
    plan
}

/// Why an existing link no longer holds, if it does not. Only the link's own two ends count.
fn broken(state: &State, host_id: &str, link: &Link) -> Option<Reason> {
    let Some(member) = state.members.get(&link.userid_key) else {
        return Some(Reason::MemberLeft);
    };
    if link.method == Method::Manual {
        return None;
    }
    let Some(host) = state.host_users.get(host_id) else {
        return Some(Reason::HostUserRemoved);
    };
    match link.method {
        Method::Phone if host.mobile.is_none() || host.mobile != member.mobile => {
            Some(Reason::PhoneChanged)
        }
        Method::Name if host.name.is_none() || host.name != member.name => {
            Some(Reason::NameChanged)
        }
        Method::Name => match (&host.mobile, &member.mobile) {
            (Some(a), Some(b)) if a != b => Some(Reason::PhoneConflict),
            _ => None,
        },
        Method::Phone | Method::Manual => None,
    }
}

fn group(value: &str, members: &[&str], hosts: &[&str]) -> Group {
    let mut members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
    let mut host_users: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
    members.sort();
    host_users.sort();
    Group {
        value: value.to_owned(),
        members,
        host_users,
    }
}

fn counts(total: usize, linked: usize, ambiguous: usize) -> Counts {
    Counts {
        linked,
        ambiguous,
        unmatched: total.saturating_sub(linked + ambiguous),
    }
}

#[cfg(test)]
mod tests;
