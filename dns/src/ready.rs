//! Ready answers: authoritative responses kept in wire format, keyed by the fast path's
//! [`cache_key`](crate::wire::cache_key), so that a repeated question costs a hash lookup and a
//! copy. Entries are dropped when their zone changes (by anchor, see
//! [`Answer::anchor`](crate::authority::Answer)), when they reach their maximum age, and all at
//! once if the table would outgrow its bound.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Instant;

use hickory_proto::rr::LowerName;

/// Entries kept at most (about 150 bytes each for typical answers).
pub const MAX_READY: usize = 2_000_000;

#[derive(Debug)]
struct Ready {
    wire: Box<[u8]>,
    anchor: LowerName,
    expires: Instant,
}

/// The table of ready answers.
#[derive(Debug, Default)]
pub struct ReadyAnswers {
    map: RwLock<HashMap<Box<[u8]>, Ready>>,
}

impl ReadyAnswers {
    /// Copies the ready answer for `key` into `out` (via `patch`) if there is a fresh one no
    /// longer than `limit`; returns whether it did.
    pub fn with<F: FnOnce(&[u8])>(&self, key: &[u8], limit: usize, now: Instant, patch: F) -> bool {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(r) if r.expires > now && r.wire.len() <= limit => {
                patch(&r.wire);
                true
            }
            _ => false,
        }
    }

    /// Stores a ready answer.
    pub fn insert(&self, key: &[u8], wire: &[u8], anchor: LowerName, expires: Instant) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_READY {
            map.clear();
        }
        map.insert(
            key.into(),
            Ready {
                wire: wire.into(),
                anchor,
                expires,
            },
        );
    }

    /// Drops every answer that depends on the zone of `apex`: its own answers and negative
    /// answers for names at or below it.
    pub fn invalidate(&self, apex: &LowerName) -> usize {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|_, r| !apex.zone_of(&r.anchor));
        before - map.len()
    }

    /// Drops every expired answer.
    pub fn purge_expired(&self, now: Instant) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, r| r.expires > now);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
