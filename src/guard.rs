//! The deletion guard: a run that would make too many members leave is held, not applied.
//!
//! Mass departures are far more often a misconfiguration (the app's visible range was
//! narrowed, a secret now belongs to another app) than a real event, and applying them would
//! make every host application deprovision those users.

use serde::Serialize;

use crate::diff::Changeset;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_deletes: u64,
    pub max_delete_ratio: f64,
    pub out_of_scope: OutOfScope,
}

/// What a run does with members that fell out of the app's visible range but still exist in
/// WeCom (`safety.out_of_scope`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutOfScope {
    /// The run is held: a narrowed visible range is far more often a mistake than a decision.
    #[default]
    Hold,
    /// They leave, with `"reason":"out_of_scope"`.
    Leave,
}

/// Why a run was held.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Hold {
    /// WeCom returned no members at all while the mirror has some.
    EmptyPull {
        mirrored: u64,
    },
    TooManyDeletes {
        leaving: u64,
        max_deletes: u64,
    },
    TooLargeFraction {
        leaving: u64,
        mirrored: u64,
        max_delete_ratio: f64,
    },
    /// Members fell out of the app's visible range but still exist in WeCom.
    OutOfScope {
        members: u64,
    },
}

impl Hold {
    pub fn message(&self) -> String {
        match self {
            Hold::EmptyPull { mirrored } => format!(
                "WeCom returned no members while the mirror has {mirrored}; check the app's visible range, then run `orgsync sync --force` if this is intended"
            ),
            Hold::TooManyDeletes {
                leaving,
                max_deletes,
            } => format!(
                "{leaving} members would leave, more than safety.max_deletes = {max_deletes}; review with `orgsync sync --dry-run`, then run `orgsync sync --force` to apply"
            ),
            Hold::TooLargeFraction {
                leaving,
                mirrored,
                max_delete_ratio,
            } => format!(
                "{leaving} of {mirrored} members would leave, more than safety.max_delete_ratio = {max_delete_ratio}; review with `orgsync sync --dry-run`, then run `orgsync sync --force` to apply"
            ),
            Hold::OutOfScope { members } => format!(
                "{members} members are no longer in the app's visible range but still exist in WeCom; widen the visible range in the WeCom console if that was a mistake, or set safety.out_of_scope = \"leave\" (or run `orgsync sync --force`) to let them leave"
            ),
        }
    }
}

/// Decides whether applying `changes` to a mirror of `mirrored` members must be held.
pub fn check(limits: Limits, mirrored: usize, pulled: usize, changes: &Changeset) -> Option<Hold> {
    let mirrored = mirrored as u64;
    let leaving = changes.members_left.len() as u64;
    if pulled == 0 && mirrored > 0 {
        return Some(Hold::EmptyPull { mirrored });
    }
    let out_of_scope = changes.out_of_scope.len() as u64;
    if out_of_scope > 0 && limits.out_of_scope == OutOfScope::Hold {
        return Some(Hold::OutOfScope {
            members: out_of_scope,
        });
    }
    if leaving > limits.max_deletes {
        return Some(Hold::TooManyDeletes {
            leaving,
            max_deletes: limits.max_deletes,
        });
    }
    if mirrored > 0 && leaving as f64 > limits.max_delete_ratio * mirrored as f64 {
        return Some(Hold::TooLargeFraction {
            leaving,
            mirrored,
            max_delete_ratio: limits.max_delete_ratio,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Member;

    fn leaving(n: usize) -> Changeset {
        Changeset {
            members_left: (0..n).map(|i| Member::new(format!("u{i}"))).collect(),
            ..Changeset::default()
        }
    }

    const LIMITS: Limits = Limits {
        max_deletes: 500,
        max_delete_ratio: 0.2,
        out_of_scope: OutOfScope::Hold,
    };

    #[test]
    fn holds_at_the_limits_and_not_below() {
        assert_eq!(check(LIMITS, 10_000, 9_500, &leaving(500)), None);
        assert!(matches!(
            check(LIMITS, 10_000, 9_499, &leaving(501)),
            Some(Hold::TooManyDeletes { leaving: 501, .. })
        ));
        assert_eq!(check(LIMITS, 100, 80, &leaving(20)), None);
        assert!(matches!(
            check(LIMITS, 100, 79, &leaving(21)),
            Some(Hold::TooLargeFraction { leaving: 21, .. })
        ));
    }

    #[test]
    fn an_empty_pull_is_held_even_for_a_tiny_mirror() {
        let limits = Limits {
            max_deletes: 1000,
            max_delete_ratio: 1.0,
            out_of_scope: OutOfScope::Hold,
        };
        assert_eq!(
            check(limits, 1, 0, &leaving(1)),
            Some(Hold::EmptyPull { mirrored: 1 })
        );
        assert_eq!(check(limits, 0, 0, &leaving(0)), None);
    }

    #[test]
    fn members_out_of_scope_hold_the_run_unless_told_to_let_them_leave() {
        let mut changes = leaving(2);
        changes.out_of_scope.insert("u1".into());
        assert_eq!(
            check(LIMITS, 100, 98, &changes),
            Some(Hold::OutOfScope { members: 1 })
        );
        let leave = Limits {
            out_of_scope: OutOfScope::Leave,
            ..LIMITS
        };
        assert_eq!(check(leave, 100, 98, &changes), None);
    }
}
