//! `orgsync match report`: where matching stands, and what an admin can do about the rest.
//!
//! It reads the store only. The counts, groups and lists come from the same [`plan`] that
//! re-matching runs, over the store as it is, so the report says exactly why each one is not
//! linked. The text form lists at most [`TEXT_LIST_LIMIT`] entries per section; `--json` lists
//! everything.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::apply::load_state;
use super::lookup::{budget_view, BudgetView, LookupSettings};
use super::{plan, Group, Method};
use crate::model::host_user::HostUser;
use crate::store::{host_users, links, mirror, Store, StoreError};

pub const TEXT_LIST_LIMIT: usize = 20;

/// Said when members exist but none has a mobile, and lookups are on.
pub const MOBILES_WITHHELD_LOOKING_UP: &str = "WeCom withheld members' mobiles: this app was created on or after 2022-06-20, and WeCom no longer sends such apps mobiles, emails or genders. orgsync asks WeCom whose each unlinked host user's mobile or email is instead (user/getuserid, user/get_userid_by_email), within the daily failure budget shown under lookups.";

/// Said when members exist but none has a mobile, and lookups are off.
pub const MOBILES_WITHHELD: &str = "WeCom withheld members' mobiles: this app was created on or after 2022-06-20, and WeCom no longer sends such apps mobiles, emails or genders, and `matching.lookups` is off, so phone matching cannot work. Options: turn lookups on; link by hand with `orgsync link HOST_ID USERID`; rely on matching by unique name (already active); point orgsync at a self-built app created before 2022-06-20, which still receives mobiles; or let each person sign in to your application once through WeCom OAuth, which tells you their userid, and link that with `orgsync link`.";

/// Said when host users exist but none has a mobile.
pub const HOST_MOBILES_MISSING: &str = "None of the host users has a mobile, so phone matching cannot work; include a mobile for each user in `host_users.put` or in the import file.";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Side {
    pub total: usize,
    pub linked: usize,
    pub ambiguous: usize,
    pub unmatched: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkCounts {
    pub phone: usize,
    pub name: usize,
    pub manual: usize,
    pub login: usize,
    pub email: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub userid: String,
    pub name: Option<String>,
    pub mobile: Option<String>,
    /// The host user it is linked to, if any.
    pub linked_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostUserView {
    pub id: String,
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    /// The userid it is linked to, if any.
    pub linked_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupView {
    /// The normalized mobile or name they share.
    pub value: String,
    pub members: Vec<MemberView>,
    pub host_users: Vec<HostUserView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictView {
    pub host_user: HostUserView,
    pub member: MemberView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldView {
    pub host_user_id: String,
    pub name: Option<String>,
    /// `manual_unlink` or `member_left`.
    pub reason: String,
    /// The member of the link that ended.
    pub userid: String,
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub host_users: Side,
    pub members: Side,
    pub links: LinkCounts,
    /// Link changes the next re-match would make; 0 unless the store was changed by an older
    /// orgsync or by hand.
    pub pending_changes: usize,
    pub mobiles_withheld: bool,
    /// Today's userid lookups: the failure budget, the cache and the backlog.
    pub lookups: BudgetView,
    pub notes: Vec<String>,
    pub ambiguous_phones: Vec<GroupView>,
    pub ambiguous_emails: Vec<GroupView>,
    pub ambiguous_names: Vec<GroupView>,
    /// Unique names or emails refused because the two sides' mobiles disagree.
    pub conflicts: Vec<ConflictView>,
    pub held: Vec<HeldView>,
    /// Manual links whose host user is no longer in the host-user set (they stay until
    /// `orgsync unlink`).
    pub manual_links_without_host_user: Vec<MemberView>,
    pub unmatched_host_users: Vec<HostUserView>,
    pub unmatched_members: Vec<MemberView>,
}

pub fn build(
    store: &Store,
    lookup_settings: &LookupSettings,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let conn = store.conn();
    let state = load_state(conn)?;
    let plan = plan(&state);
    let lookups = budget_view(conn, &state, &plan, lookup_settings, now)?;
    let assessment = &plan.assessment;
    let members: HashMap<String, mirror::Identity> = mirror::identities(conn)?
        .into_iter()
        .map(|identity| (identity.userid_key.clone(), identity))
        .collect();
    let hosts = host_users::load(conn)?;
    let holds = links::holds(conn)?;
    let links_after = plan.links_after(&state);
    let member_links: HashMap<&str, &str> = links_after
        .iter()
        .map(|(host, link)| (link.userid_key.as_str(), *host))
        .collect();

    let member_view = |key: &str| -> MemberView {
        let identity = members.get(key);
        MemberView {
            userid: identity.map_or_else(|| key.to_owned(), |i| i.userid.clone()),
            name: identity.and_then(|i| i.name.clone()),
            mobile: identity.and_then(|i| i.mobile.clone()),
            linked_to: member_links.get(key).map(|h| (*h).to_owned()),
        }
    };
    let host_view = |id: &str| -> HostUserView {
        let user = hosts.get(id);
        HostUserView {
            id: id.to_owned(),
            name: user.and_then(|u| u.name.clone()),
            mobile: user.and_then(|u| u.mobile.clone()),
            email: user.and_then(|u| u.email.clone()),
            linked_to: links_after.get(id).map(|l| l.userid.clone()),
        }
    };
    let group_view = |group: &Group| GroupView {
        value: group.value.clone(),
        members: group.members.iter().map(|m| member_view(m)).collect(),
        host_users: group.host_users.iter().map(|h| host_view(h)).collect(),
    };

    let mut links = LinkCounts::default();
    let mut manual_links_without_host_user = Vec::new();
    for (host, link) in &links_after {
        match link.method {
            Method::Phone => links.phone += 1,
            Method::Name => links.name += 1,
            Method::Manual => links.manual += 1,
            Method::Login => links.login += 1,
            Method::Email => links.email += 1,
        }
        if !hosts.contains_key(*host) {
            manual_links_without_host_user.push(member_view(&link.userid_key));
        }
    }
    manual_links_without_host_user.sort_by(|a, b| a.userid.cmp(&b.userid));

    let mut unmatched_host_users: Vec<HostUserView> = hosts
        .keys()
        .filter(|id| {
            !links_after.contains_key(id.as_str()) && !assessment.ambiguous_host_users.contains(*id)
        })
        .map(|id| host_view(id))
        .collect();
    unmatched_host_users.sort_by(|a, b| a.id.cmp(&b.id));
    let mut unmatched_members: Vec<MemberView> = members
        .keys()
        .filter(|key| {
            !member_links.contains_key(key.as_str()) && !assessment.ambiguous_members.contains(*key)
        })
        .map(|key| member_view(key))
        .collect();
    unmatched_members.sort_by(|a, b| a.userid.cmp(&b.userid));

    let mobiles_withheld = !members.is_empty() && members.values().all(|m| blank(&m.mobile));
    let mut notes = Vec::new();
    if mobiles_withheld {
        notes.push(if lookups.enabled {
            MOBILES_WITHHELD_LOOKING_UP.to_owned()
        } else {
            MOBILES_WITHHELD.to_owned()
        });
    }
    if !hosts.is_empty() && hosts.values().all(|h: &HostUser| blank(&h.mobile)) {
        notes.push(HOST_MOBILES_MISSING.to_owned());
    }
    let pending_changes = plan.removed.len() + plan.created.len();
    if pending_changes > 0 {
        notes.push(format!("{pending_changes} link changes are pending; they are made at the next sync or host-user change."));
    }

    Ok(Report {
        host_users: side(hosts.len(), assessment.host_users),
        members: side(members.len(), assessment.members),
        links,
        pending_changes,
        mobiles_withheld,
        notes,
        lookups,
        ambiguous_phones: assessment.ambiguous_phones.iter().map(group_view).collect(),
        ambiguous_emails: assessment.ambiguous_emails.iter().map(group_view).collect(),
        ambiguous_names: assessment.ambiguous_names.iter().map(group_view).collect(),
        conflicts: assessment
            .conflicts
            .iter()
            .map(|c| ConflictView {
                host_user: host_view(&c.host_user_id),
                member: member_view(&c.userid_key),
            })
            .collect(),
        held: holds
            .into_iter()
            .map(|hold| HeldView {
                name: hosts.get(&hold.host_user_id).and_then(|h| h.name.clone()),
                host_user_id: hold.host_user_id,
                reason: hold.reason,
                userid: hold.userid,
                since: hold.since,
            })
            .collect(),
        manual_links_without_host_user,
        unmatched_host_users,
        unmatched_members,
    })
}

fn blank(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(|v| v.trim().is_empty())
}

fn side(total: usize, counts: super::Counts) -> Side {
    Side {
        total,
        linked: counts.linked,
        ambiguous: counts.ambiguous,
        unmatched: counts.unmatched,
    }
}

impl Report {
    /// The report for a person at a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let h = &self.host_users;
        let m = &self.members;
        let _ = writeln!(
            out,
            "host users: {} ({} linked, {} ambiguous, {} unmatched)",
            h.total, h.linked, h.ambiguous, h.unmatched
        );
        let _ = writeln!(
            out,
            "members:    {} ({} linked, {} ambiguous, {} unmatched)",
            m.total, m.linked, m.ambiguous, m.unmatched
        );
        let _ = writeln!(
            out,
            "links:      {} by phone, {} by email, {} by name, {} manual, {} by login",
            self.links.phone,
            self.links.email,
            self.links.name,
            self.links.manual,
            self.links.login
        );
        let l = &self.lookups;
        if l.enabled {
            let _ = write!(
                out,
                "lookups:    {} failed of {} allowed on {} (China time); {} waiting; cached {} found, {} not found",
                l.failures, l.budget, l.day, l.pending, l.cached_hits, l.cached_misses
            );
            if let Some(at) = &l.blocked_at {
                let _ = write!(
                    out,
                    "; WeCom last refused lookups at {at} (45009), pausing them for an hour"
                );
            } else if l.failures >= l.budget && l.pending > 0 {
                let _ = write!(out, "; budget spent, resuming tomorrow");
            }
            let _ = writeln!(out);
        } else {
            let _ = writeln!(out, "lookups:    off (matching.lookups)");
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nNote: {note}");
        }

        section(
            &mut out,
            "Ambiguous mobiles (nobody is linked by these)",
            &self.ambiguous_phones,
            |out, g| {
                group_lines(out, g);
            },
        );
        section(
            &mut out,
            "Ambiguous emails (nobody is linked by these)",
            &self.ambiguous_emails,
            |out, g| {
                group_lines(out, g);
            },
        );
        section(
            &mut out,
            "Ambiguous names (link the right pairs with `orgsync link`)",
            &self.ambiguous_names,
            |out, g| {
                group_lines(out, g);
            },
        );
        section(
            &mut out,
            "Unique names or emails refused because the mobiles disagree",
            &self.conflicts,
            |out, c| {
                let _ = writeln!(
                    out,
                    "  host user {} and member {}",
                    host_line(&c.host_user),
                    member_line(&c.member)
                );
            },
        );
        section(
            &mut out,
            "Held from automatic matching (release with `orgsync link`)",
            &self.held,
            |out, hold| {
                let why = if hold.reason == "member_left" {
                    "its member left"
                } else {
                    "unlinked by hand"
                };
                let _ = writeln!(
                    out,
                    "  {} {}: {why} ({}, since {})",
                    hold.host_user_id,
                    hold.name.as_deref().unwrap_or("-"),
                    hold.userid,
                    hold.since
                );
            },
        );
        section(
            &mut out,
            "Manual links whose host user is no longer in the set",
            &self.manual_links_without_host_user,
            |out, member| {
                let _ = writeln!(
                    out,
                    "  {} -> {}",
                    member.linked_to.as_deref().unwrap_or("-"),
                    member_line(member)
                );
            },
        );
        section(
            &mut out,
            "Unmatched host users",
            &self.unmatched_host_users,
            |out, host| {
                let _ = writeln!(out, "  {}", host_line(host));
            },
        );
        section(
            &mut out,
            "Unmatched members",
            &self.unmatched_members,
            |out, member| {
                let _ = writeln!(out, "  {}", member_line(member));
            },
        );
        out
    }
}

fn section<T>(out: &mut String, title: &str, items: &[T], mut line: impl FnMut(&mut String, &T)) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}: {}", items.len());
    for item in items.iter().take(TEXT_LIST_LIMIT) {
        line(out, item);
    }
    if items.len() > TEXT_LIST_LIMIT {
        let _ = writeln!(
            out,
            "  ... and {} more (`--json` lists all)",
            items.len() - TEXT_LIST_LIMIT
        );
    }
}

fn group_lines(out: &mut String, group: &GroupView) {
    let _ = writeln!(out, "  {}", group.value);
    for member in &group.members {
        let _ = writeln!(out, "    member    {}", member_line(member));
    }
    for host in &group.host_users {
        let _ = writeln!(out, "    host user {}", host_line(host));
    }
}

fn member_line(member: &MemberView) -> String {
    let mut line = format!(
        "{} {}",
        member.userid,
        member.name.as_deref().unwrap_or("-")
    );
    if let Some(mobile) = &member.mobile {
        let _ = write!(line, " {mobile}");
    }
    if let Some(host) = &member.linked_to {
        let _ = write!(line, " (linked to host user {host})");
    }
    line
}

fn host_line(host: &HostUserView) -> String {
    let mut line = format!("{} {}", host.id, host.name.as_deref().unwrap_or("-"));
    for value in [&host.mobile, &host.email].into_iter().flatten() {
        let _ = write!(line, " {value}");
    }
    if let Some(userid) = &host.linked_to {
        let _ = write!(line, " (linked to {userid})");
    }
    line
}
