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
//!    nobody, whether or not the others are linked already. A member's mobile is the mirror's,
//!    or, when WeCom withholds it, the one a `user/getuserid` lookup found this member by
//!    ([`lookup`]); a mirrored mobile always wins over a lookup.
//! 3. **Email**: only what WeCom said through `user/get_userid_by_email` lookups, never the
//!    mirror's email field (mailboxes are recycled when people leave, so an equal address is no
//!    proof of the same person, while the lookup says who holds it now). One-to-one over the
//!    whole set as for phones, and refused when the phones disagree.
//! 4. **Name**: [`name::normalize`] (NFKC + trim), only when the name belongs to exactly one
//!    unlinked member and exactly one unlinked host user (after the phone and email links of
//!    the same pass). Even then the pair is refused when the phones disagree: both mobiles
//!    known and different, or either side's mobile belonging to someone else on the other side.
//! 5. Everyone else stays unmatched.

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
//! the two names still equal and the two mobiles not contradicting (name), the host user's
//! email still the one WeCom gave this member (email). What happens to other
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
pub mod import;
pub mod lookup;
pub mod name;
pub mod phone;
pub mod report;

use std::collections::HashSet;

pub use crate::hashing::{FastMap, FastSet};
pub use crate::model::host_user::{email_key, HostFacts, HostUser, Link, Method, Reason};

use serde::Serialize;

/// What matching knows of a member: the userid as WeCom spells it, and the normalized name and
/// mobile (`None` when unknown or unusable). The mobile comes from the mirror or, when WeCom
/// withholds it, from a lookup that answered with this member; the email only from a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFacts {
    pub userid: String,
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
}

impl MemberFacts {
    pub fn new(userid: &str, name: Option<&str>, mobile: Option<&str>) -> MemberFacts {
        MemberFacts {
            userid: userid.to_owned(),
            name: name.and_then(name::normalize),
            mobile: mobile.and_then(phone::normalize),
            email: None,
        }
    }
}

/// What matching knows of a host user, normalized for comparing.
pub fn host_facts(name: Option<&str>, mobile: Option<&str>) -> HostFacts {
    HostFacts {
        name: name.and_then(name::normalize),
        mobile: mobile.and_then(phone::normalize),
        email: None,
    }
}

/// What matching compares of a host user as given.
pub fn facts_of(user: &HostUser) -> HostFacts {
    HostFacts {
        email: user.email.as_deref().and_then(email_key),
        ..host_facts(user.name.as_deref(), user.mobile.as_deref())
    }
}

/// Everything matching decides from.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// By [`crate::model::userid_key`].
    pub members: FastMap<String, MemberFacts>,
    /// By host user id.
    pub host_users: FastMap<String, HostFacts>,
    /// By host user id; a manual link's host user may be absent from `host_users`.
    pub links: FastMap<String, Link>,
    /// Host user ids that automatic matching must not link.
    pub held: FastSet<String>,
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

/// A name or email match refused because the phones disagree.
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

/// Why those who are not linked after the plan are not.
#[derive(Debug, Clone, Default)]
pub struct Assessment {
    /// Mobiles that block phone matching because more than one member or host user has them,
    /// where at least one of them is unlinked; sorted by mobile.
    pub ambiguous_phones: Vec<Group>,
    /// Emails that block email matching the same way; sorted by email.
    pub ambiguous_emails: Vec<Group>,
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

/// The link changes one matching pass makes, and where that leaves everyone else.
///
/// The host user of a link removed for [`Reason::MemberLeft`] is held from then on.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Sorted by host user id; written before `created`.
    pub removed: Vec<Removed>,
    /// Sorted by host user id.
    pub created: Vec<Created>,
    /// Kept links whose member WeCom now spells differently: (host user id, new spelling).
    pub respelled: Vec<(String, String)>,
    pub assessment: Assessment,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.created.is_empty() && self.respelled.is_empty()
    }

    /// The links after the plan, by host user id.
    pub fn links_after<'a>(&'a self, state: &'a State) -> FastMap<&'a str, &'a Link> {
        let mut links: FastMap<&str, &Link> = state
            .links
            .iter()
            .map(|(host, link)| (host.as_str(), link))
            .collect();
        for removed in &self.removed {
            links.remove(removed.host_user_id.as_str());
        }
        for created in &self.created {
            links.insert(&created.host_user_id, &created.link);
        }
        links
    }
}

/// Who has one mobile or one name. Almost every value has exactly one holder, so that case
/// allocates nothing: at 100,000 a side this is most of the plan's cost.
enum Holders<'a> {
    One(&'a str),
    Many(Vec<&'a str>),
}

impl<'a> Holders<'a> {
    fn all(&self) -> &[&'a str] {
        match self {
            Holders::One(one) => std::slice::from_ref(one),
            Holders::Many(many) => many,
        }
    }
}

type Index<'a> = FastMap<&'a str, Holders<'a>>;

fn index<'a>(entries: impl Iterator<Item = (&'a str, Option<&'a String>)>) -> Index<'a> {
    let mut index: Index<'a> = FastMap::default();
    for (who, value) in entries {
        let Some(value) = value else { continue };
        match index.get_mut(value.as_str()) {
            None => {
                index.insert(value, Holders::One(who));
            }
            Some(holders) => match holders {
                Holders::One(first) => *holders = Holders::Many(vec![first, who]),
                Holders::Many(many) => many.push(who),
            },
        }
    }
    index
}

/// The host user and the member that alone hold a value on their side, for every value both
/// sides hold.
fn sole_holders<'i, 'a>(
    hosts: &'i Index<'a>,
    members: &'i Index<'a>,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'i {
    hosts
        .iter()
        .filter_map(|(value, hosts)| match (hosts, members.get(value)?) {
            (Holders::One(host_id), Holders::One(member_key)) => Some((*host_id, *member_key)),
            _ => None,
        })
}

/// Decides the link changes for `state`; see the module documentation for the rules.
pub fn plan(state: &State) -> Plan {
    let mut plan = Plan::default();
    let mut linked_hosts: FastSet<&str> =
        FastSet::with_capacity_and_hasher(state.host_users.len(), Default::default());
    let mut linked_members: FastSet<&str> =
        FastSet::with_capacity_and_hasher(state.members.len(), Default::default());
    // Held already, or from this pass on because their member left.
    let mut held: FastSet<&str> = state.held.iter().map(String::as_str).collect();

    for (host_id, link) in &state.links {
        let member = state.members.get(&link.userid_key);
        if let Some(reason) = broken(state, host_id, link) {
            if reason == Reason::MemberLeft {
                held.insert(host_id);
            }
            let mut link = link.clone();
            if let Some(member) = member {
                link.userid.clone_from(&member.userid);
            }
            plan.removed.push(Removed {
                host_user_id: host_id.clone(),
                link,
                reason,
            });
            continue;
        }
        linked_hosts.insert(host_id);
        linked_members.insert(&link.userid_key);
        if let Some(member) = member.filter(|m| m.userid != link.userid) {
            plan.respelled
                .push((host_id.clone(), member.userid.clone()));
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

    // Phone: one-to-one over the whole set.
    let mut created: Vec<(&str, &str, Method)> = Vec::new();
    for (host_id, member_key) in sole_holders(&hosts_by_phone, &members_by_phone) {
        if !linked_hosts.contains(host_id)
            && !held.contains(host_id)
            && !linked_members.contains(member_key)
        {
            created.push((host_id, member_key, Method::Phone));
        }
    }
    for &(host_id, member_key, _) in &created {
        linked_hosts.insert(host_id);
        linked_members.insert(member_key);
    }
    let phones_disagree =
        |host: &HostFacts, member: &MemberFacts| match (&host.mobile, &member.mobile) {
            (Some(a), Some(b)) => a != b,
            (Some(a), None) => members_by_phone.contains_key(a.as_str()),
            (None, Some(b)) => hosts_by_phone.contains_key(b.as_str()),
            (None, None) => false,
        };
    let mut conflicts = Vec::new();

    // Email: whose WeCom said the address is, one-to-one over the whole set as for phones,
    // phones not disagreeing.
    let members_by_email = index(
        state
            .members
            .iter()
            .map(|(key, m)| (key.as_str(), m.email.as_ref())),
    );
    let hosts_by_email = index(
        state
            .host_users
            .iter()
            .map(|(id, h)| (id.as_str(), h.email.as_ref())),
    );
    let mut by_email = Vec::new();
    for (host_id, member_key) in sole_holders(&hosts_by_email, &members_by_email) {
        if linked_hosts.contains(host_id)
            || held.contains(host_id)
            || linked_members.contains(member_key)
        {
            continue;
        }
        let (Some(host), Some(member)) =
            (state.host_users.get(host_id), state.members.get(member_key))
        else {
            continue;
        };
        if phones_disagree(host, member) {
            conflicts.push(Conflict {
                host_user_id: host_id.to_owned(),
                userid_key: member_key.to_owned(),
            });
        } else {
            by_email.push((host_id, member_key, Method::Email));
        }
    }
    for &(host_id, member_key, _) in &by_email {
        linked_hosts.insert(host_id);
        linked_members.insert(member_key);
    }
    created.extend(by_email);

    // Name: unique among the unlinked on both sides, phones not disagreeing.
    let members_by_name = index(
        state
            .members
            .iter()
            .filter(|(key, _)| !linked_members.contains(key.as_str()))
            .map(|(key, m)| (key.as_str(), m.name.as_ref())),
    );
    let hosts_by_name = index(
        state
            .host_users
            .iter()
            .filter(|(id, _)| !linked_hosts.contains(id.as_str()))
            .map(|(id, h)| (id.as_str(), h.name.as_ref())),
    );
    let mut name_groups = Vec::new();
    for (name, hosts) in &hosts_by_name {
        let Some(members) = members_by_name.get(name) else {
            continue;
        };
        let (Holders::One(host_id), Holders::One(member_key)) = (hosts, members) else {
            name_groups.push(group(name, members.all(), hosts.all()));
            continue;
        };
        let (Some(host), Some(member)) = (
            state.host_users.get(*host_id),
            state.members.get(*member_key),
        ) else {
            continue;
        };
        if held.contains(host_id) {
            continue;
        }
        if phones_disagree(host, member) {
            conflicts.push(Conflict {
                host_user_id: (*host_id).to_owned(),
                userid_key: (*member_key).to_owned(),
            });
        } else {
            created.push((host_id, member_key, Method::Name));
        }
    }
    for &(host_id, member_key, method) in &created {
        linked_hosts.insert(host_id);
        linked_members.insert(member_key);
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

    let phone_groups = shared_groups(
        &hosts_by_phone,
        &members_by_phone,
        &linked_hosts,
        &linked_members,
    );
    let email_groups = shared_groups(
        &hosts_by_email,
        &members_by_email,
        &linked_hosts,
        &linked_members,
    );

    plan.removed
        .sort_by(|a, b| a.host_user_id.cmp(&b.host_user_id));
    plan.created
        .sort_by(|a, b| a.host_user_id.cmp(&b.host_user_id));
    plan.respelled.sort();
    conflicts.sort_by(|a, b| a.host_user_id.cmp(&b.host_user_id));
    name_groups.sort_by(|a, b| a.value.cmp(&b.value));

    let mut assessment = Assessment {
        conflicts,
        ..Assessment::default()
    };
    for group in phone_groups.iter().chain(&email_groups).chain(&name_groups) {
        for host_id in &group.host_users {
            if !linked_hosts.contains(host_id.as_str()) {
                assessment.ambiguous_host_users.insert(host_id.clone());
            }
        }
        for member_key in &group.members {
            if !linked_members.contains(member_key.as_str()) {
                assessment.ambiguous_members.insert(member_key.clone());
            }
        }
    }
    let present_linked_hosts = state
        .host_users
        .keys()
        .filter(|id| linked_hosts.contains(id.as_str()))
        .count();
    assessment.host_users = counts(
        state.host_users.len(),
        present_linked_hosts,
        assessment.ambiguous_host_users.len(),
    );
    assessment.members = counts(
        state.members.len(),
        linked_members.len(),
        assessment.ambiguous_members.len(),
    );
    assessment.ambiguous_phones = phone_groups;
    assessment.ambiguous_emails = email_groups;
    assessment.ambiguous_names = name_groups;
    plan.assessment = assessment;
    plan
}

/// The values (mobiles, emails) that more than one member or more than one host user has, where
/// at least one of them is unlinked: they block matching by that value. Sorted by value.
fn shared_groups(
    hosts_by: &Index<'_>,
    members_by: &Index<'_>,
    linked_hosts: &FastSet<&str>,
    linked_members: &FastSet<&str>,
) -> Vec<Group> {
    let mut groups = Vec::new();
    for (value, hosts) in hosts_by {
        let Some(members) = members_by.get(value) else {
            continue;
        };
        let (hosts, members) = (hosts.all(), members.all());
        let shared = hosts.len() > 1 || members.len() > 1;
        let open = hosts.iter().any(|h| !linked_hosts.contains(h))
            || members.iter().any(|m| !linked_members.contains(m));
        if shared && open {
            groups.push(group(value, members, hosts));
        }
    }
    groups.sort_by(|a, b| a.value.cmp(&b.value));
    groups
}

/// Why an existing link no longer holds, if it does not. Only the link's own two ends count.
fn broken(state: &State, host_id: &str, link: &Link) -> Option<Reason> {
    let Some(member) = state.members.get(&link.userid_key) else {
        return Some(Reason::MemberLeft);
    };
    if link.method.is_decided() {
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
        Method::Email if host.email.is_none() || host.email != member.email => {
            Some(Reason::EmailChanged)
        }
        Method::Name | Method::Email => match (&host.mobile, &member.mobile) {
            (Some(a), Some(b)) if a != b => Some(Reason::PhoneConflict),
            _ => None,
        },
        Method::Phone | Method::Manual | Method::Login => None,
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
