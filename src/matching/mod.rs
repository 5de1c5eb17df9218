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

pub mod name;
pub mod phone;
