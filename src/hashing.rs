//! Hash maps for the hot paths.

use std::collections::{HashMap, HashSet};

/// Matching hashes short strings by the hundred thousand on every pass: foldhash (seeded per
/// process) does that several times faster than the standard SipHash.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;
