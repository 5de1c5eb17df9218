//! Who may hold the socket's connection slots: at most `socket.max_connections` in all, at most
//! `socket.max_connections_per_uid` for any one peer uid, and the last [`ADMIN_SLOTS`] of the
//! total only for admins, so that one misbehaving host application cannot take every slot and
//! `orgsync status` and `resync` always get in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Slots kept for admins (root, the daemon's user, `socket.admin_uids`/`admin_gids`).
pub const ADMIN_SLOTS: usize = 4;

/// Why a connection was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot open to this peer is taken.
    Full { max: usize },
    /// This peer uid holds its share.
    PerUid { uid: u32, max: usize },
}

#[derive(Debug)]
struct Counts {
    active: usize,
    by_uid: HashMap<u32, usize>,
}

#[derive(Debug, Clone)]
pub struct Slots {
    max: usize,
    per_uid: usize,
    counts: Arc<Mutex<Counts>>,
}

/// A taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    uid: u32,
    counts: Arc<Mutex<Counts>>,
}

impl Slots {
    pub fn new(max: usize, per_uid: usize) -> Slots {
        Slots {
            max,
            per_uid,
            counts: Arc::new(Mutex::new(Counts {
                active: 0,
                by_uid: HashMap::new(),
            })),
        }
    }

    /// Admits a connection of `uid` (an admin or not), or says why not.
    pub fn admit(&self, uid: u32, admin: bool) -> Result<Slot, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let open_to_peer = if admin {
            self.max
        } else {
            self.max.saturating_sub(ADMIN_SLOTS).max(1)
        };
        if counts.active >= open_to_peer {
            return Err(Refusal::Full { max: self.max });
        }
        let mine = counts.by_uid.entry(uid).or_insert(0);
        if *mine >= self.per_uid {
            return Err(Refusal::PerUid {
                uid,
                max: self.per_uid,
            });
        }
        *mine += 1;
        counts.active += 1;
        Ok(Slot {
            uid,
            counts: Arc::clone(&self.counts),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.active = counts.active.saturating_sub(1);
        if let Some(mine) = counts.by_uid.get_mut(&self.uid) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                counts.by_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_uid_cannot_take_every_slot_and_admins_always_get_in() {
        let slots = Slots::new(10, 4);
        let flood: Vec<Slot> = (0..4).map(|_| slots.admit(1000, false).unwrap()).collect();
        assert_eq!(
            slots.admit(1000, false).unwrap_err(),
            Refusal::PerUid { uid: 1000, max: 4 }
        );
        let others: Vec<Slot> = (0..2).map(|_| slots.admit(1001, false).unwrap()).collect();
        // Six of the ten slots are open to non-admins; the rest are the admins'.
        assert_eq!(
            slots.admit(1002, false).unwrap_err(),
            Refusal::Full { max: 10 }
        );
        let admins: Vec<Slot> = (0..4).map(|_| slots.admit(0, true).unwrap()).collect();
        assert_eq!(slots.admit(0, true).unwrap_err(), Refusal::Full { max: 10 });
        drop((flood, others, admins));
        let again: Vec<Slot> = (0..4).map(|_| slots.admit(1000, false).unwrap()).collect();
        assert_eq!(again.len(), 4, "every slot came back");
    }
}
