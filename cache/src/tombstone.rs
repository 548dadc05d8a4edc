//! [`Tombstones`]: the versions of deleted keys, so that a delete is a state that replicates
//! and merges like a write (last writer wins between a value and a delete) instead of an
//! absence that any older copy fills again.
//!
//! Only cluster mode versions keys, so only it leaves tombstones: a key deleted by a versioned
//! write (`DEL`, a pop that empties a list, a replicated `DEL` state) is buried with that
//! write's version; a key that expires is buried with a version derived from its own
//! ([`expiry_version`]), the same on every replica. A tombstone lives while it may still meet
//! an older copy of its key: [`Tombstones::collect`] drops those older than the configured
//! time (`tombstone_ttl`), oldest first, in the keyspace's housekeeping tick.

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::compact::CompactBytes;

/// Bytes accounted per tombstone beyond its key (the map's slot and the queue's entry).
const OVERHEAD: usize = 64;

/// The version of the tombstone a key of version `ver` leaves when it expires at Unix ms
/// `expire_at`: deterministic (every replica holds the same version and expiry), newer than
/// the key's last write, and not before the expiry itself, so a copy written before the key
/// expired (on a replica that missed the `EXPIRE`, say) loses to it.
pub fn expiry_version(ver: u64, expire_at: u64) -> u64 {
    (ver.saturating_add(1)).max(expire_at.saturating_mul(1 << 16))
}

/// Deleted keys' versions, collected oldest first.
#[derive(Debug, Default)]
pub struct Tombstones {
    by_key: HashMap<CompactBytes, u64>,
    /// Burials in order (a key buried again appears twice; the older entry is skipped when
    /// collected). Versions received from peers can be older than the last one buried here,
    /// so the queue is only roughly ordered: collection stops at the first young entry and an
    /// older one behind it waits for it.
    order: VecDeque<(CompactBytes, u64)>,
    bytes: usize,
}

impl Tombstones {
    /// Number of deleted keys remembered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Approximate bytes held.
    pub fn memory(&self) -> usize {
        self.bytes
    }

    /// The version `key` was deleted at, if remembered.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<u64> {
        if self.by_key.is_empty() {
            return None;
        }
        self.by_key.get(key).copied()
    }

    /// Remembers that `key` was deleted at version `ver` (a newer burial is kept).
    pub fn bury(&mut self, key: &[u8], ver: u64) {
        if ver == 0 {
            return;
        }
        match self.by_key.get_mut(key) {
            Some(v) if *v >= ver => return,
            Some(v) => *v = ver,
            None => {
                self.by_key.insert(key.into(), ver);
                self.bytes += Self::cost(key);
            }
        }
        self.order.push_back((key.into(), ver));
    }

    /// Forgets `key`'s tombstone: it holds a value again, whose version supersedes it.
    #[inline]
    pub fn lift(&mut self, key: &[u8]) {
        if self.by_key.is_empty() {
            return;
        }
        if self.by_key.remove(key).is_some() {
            self.bytes -= Self::cost(key);
        }
    }

    /// Every tombstone, with its version.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.by_key.iter().map(|(k, v)| (k.as_slice(), *v))
    }

    /// Drops tombstones of versions below `before`, at most `max` of them (bounded work per
    /// call, under the keyspace lock). Returns how many were dropped.
    pub fn collect(&mut self, before: u64, max: usize) -> usize {
        let mut dropped = 0;
        for _ in 0..max {
            let Some((_, ver)) = self.order.front() else {
                break;
            };
            if *ver >= before {
                break;
            }
            let (key, ver) = self.order.pop_front().expect("front exists");
            // Only the key's latest burial removes it (an older queue entry is stale, and a
            // lifted key has no entry left).
            if self.by_key.get(key.as_slice()) == Some(&ver) {
                self.by_key.remove(key.as_slice());
                self.bytes -= Self::cost(&key);
                dropped += 1;
            }
        }
        // Entries of lifted or re-buried keys are dropped as they reach the front; bound the
        // queue anyway, should a burst of them sit behind a young entry.
        if self.order.len() > 2 * self.by_key.len() + 1024 {
            let by_key = &self.by_key;
            self.order
                .retain(|(k, v)| by_key.get(k.as_slice()) == Some(v));
        }
        dropped
    }

    /// Forgets every tombstone (`FLUSHALL`: local to a node, as in Redis Cluster).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    fn cost(key: &[u8]) -> usize {
        2 * crate::compact::heap_size_for(key.len()) + OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_burial_wins_and_collection_drops_only_the_old() {
        let mut t = Tombstones::default();
        t.bury(b"a", 10);
        t.bury(b"b", 20);
        t.bury(b"a", 5); // older: ignored
        assert_eq!(t.get(b"a"), Some(10));
        t.bury(b"a", 30);
        assert_eq!(t.get(b"a"), Some(30));
        assert_eq!(t.len(), 2);
        // Below 25: "a"@10 is stale (re-buried at 30), "b"@20 goes.
        assert_eq!(t.collect(25, 100), 1);
        assert_eq!((t.get(b"a"), t.get(b"b")), (Some(30), None));
        assert_eq!(t.collect(31, 100), 1);
        assert!(t.is_empty());
        assert_eq!(t.memory(), 0);
    }

    #[test]
    fn a_lifted_key_is_not_collected_later_and_work_is_bounded() {
        let mut t = Tombstones::default();
        for i in 0..100u64 {
            t.bury(format!("k{i}").as_bytes(), i + 1);
        }
        t.lift(b"k0");
        assert_eq!(t.get(b"k0"), None);
        assert_eq!(t.collect(u64::MAX, 10), 9);
        assert_eq!(t.len(), 90);
        // Buried again after being lifted: the new burial counts.
        t.bury(b"k0", 500);
        assert_eq!(t.collect(400, 1000), 90);
        assert_eq!(t.get(b"k0"), Some(500));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn expiry_versions_are_deterministic_and_newer_than_the_key() {
        assert_eq!(expiry_version(7, 1000), 1000 << 16);
        // A key written after its expiry time was set in the past (a replica's clock ahead).
        assert_eq!(expiry_version((2000 << 16) + 3, 1000), (2000 << 16) + 4);
        assert_eq!(expiry_version(u64::MAX, u64::MAX), u64::MAX);
    }
}
