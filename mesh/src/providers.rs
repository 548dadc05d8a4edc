//! The provider table: one record, per node, of who holds a key (a blob, a site's manifest).
//!
//! Holders are learned from two sources: the DHT's provider records (looked up in the
//! background for watched keys, or on demand) and what members say they hold (a service feeds
//! those in with [`ProviderTable::note`], e.g. the CDN's `have` gossip). Every reader, the
//! fetcher choosing where to fetch a blob and DNS steering choosing where to send a site's
//! visitors, reads this one table, so they cannot disagree about who holds what; each ranks
//! the holders with the directory ([`crate::Mesh::rank`]).
//!
//! - A DHT lookup replaces what the previous lookup found (a holder that stopped announcing
//!   drops out); a noted holder stays for [`NOTED_TTL`] after it was last noted (holders
//!   re-announce every 10 minutes).
//! - [`crate::Mesh::holders`] never waits: it reads the table and marks the key *watched*; the
//!   background task looks watched keys up every [`LOOKUP_EVERY`] (every
//!   [`LOOKUP_EVERY_EMPTY`] while no holder is known) until nobody asked for [`IDLE`].
//! - [`crate::Mesh::find_holders`] (a fetch) looks the key up now (briefly when holders are
//!   known) and does not make the key watched: a blob fetched once is not looked up again and
//!   again in the background.
//! - At most [`MAX_KEYS`] keys are kept (the least recently used go first) and [`MAX_PEERS`]
//!   holders per key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::Notify;

/// Watched keys with known holders are looked up again this often.
pub const LOOKUP_EVERY: Duration = Duration::from_secs(15);
/// Watched keys without any known holder (just published, probably) are looked up this often.
pub const LOOKUP_EVERY_EMPTY: Duration = Duration::from_secs(3);
/// A DHT lookup taking longer is abandoned (what the table holds stays).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A key nobody read for this long is forgotten, and stops being looked up.
pub const IDLE: Duration = Duration::from_secs(600);
/// A holder noted (gossip) and not noted again for this long is dropped.
pub const NOTED_TTL: Duration = Duration::from_secs(1200);
/// Most keys kept.
pub const MAX_KEYS: usize = 65_536;
/// Most holders kept per key.
pub const MAX_PEERS: usize = 32;
/// Background lookups running at once.
pub const MAX_LOOKUPS: usize = 16;

/// How a holder is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The last DHT lookup found its provider record.
    Dht,
    /// It said so (gossip), at this time.
    Noted(Instant),
}

#[derive(Debug)]
struct Entry {
    holders: Vec<(PeerId, Source)>,
    /// When the last DHT lookup of the key finished.
    looked_up: Option<Instant>,
    /// A lookup is running.
    in_flight: bool,
    /// When a reader last asked to keep the key fresh ([`ProviderTable::watched`]).
    watched: Option<Instant>,
    /// Last read or write: eviction order.
    used: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            holders: Vec::new(),
            looked_up: None,
            in_flight: false,
            watched: None,
            used: now,
        }
    }

    fn peers(&self, now: Instant) -> Vec<PeerId> {
        let mut out: Vec<PeerId> = Vec::with_capacity(self.holders.len());
        for (p, s) in &self.holders {
            let fresh = match s {
                Source::Dht => true,
                Source::Noted(at) => now.duration_since(*at) < NOTED_TTL,
            };
            if fresh && !out.contains(p) {
                out.push(*p);
            }
        }
        out
    }
}

/// Who holds what, as this node knows it. Cheap to clone.
#[derive(Clone, Default)]
pub struct ProviderTable {
    keys: Arc<Mutex<HashMap<Vec<u8>, Entry>>>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for ProviderTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderTable")
            .field("keys", &self.len())
            .finish()
    }
}

impl ProviderTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Entry>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of keys in the table.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that `peer` says it holds `key` (a service's gossip). Ignored for a new key
    /// when the table is full.
    pub fn note(&self, key: &[u8], peer: PeerId) {
        let now = Instant::now();
        let mut keys = self.lock();
        if !keys.contains_key(key) && keys.len() >= MAX_KEYS {
            evict(&mut keys);
            if keys.len() >= MAX_KEYS {
                return;
            }
        }
        let e = keys.entry(key.to_vec()).or_insert_with(|| Entry::new(now));
        e.used = now;
        e.holders.retain(|(p, s)| *p != peer || *s == Source::Dht);
        if e.holders.len() >= MAX_PEERS
            && let Some(i) = e
                .holders
                .iter()
                .position(|(_, s)| matches!(s, Source::Noted(_)))
        {
            e.holders.remove(i);
        }
        if e.holders.len() < MAX_PEERS {
            e.holders.push((peer, Source::Noted(now)));
        }
    }

    /// The holders of `key` known now. `watch`: keep the key fresh in the background (a DNS
    /// answer depends on it); wakes the lookup task when the key was never looked up.
    pub(crate) fn read(&self, key: &[u8], watch: bool) -> Vec<PeerId> {
        let now = Instant::now();
        let mut keys = self.lock();
        let full = keys.len() >= MAX_KEYS;
        let e = match keys.get_mut(key) {
            Some(e) => e,
            None if watch && !full => keys.entry(key.to_vec()).or_insert_with(|| Entry::new(now)),
            None => return Vec::new(),
        };
        e.used = now;
        let never = e.looked_up.is_none() && !e.in_flight;
        if watch {
            e.watched = Some(now);
        }
        let peers = e.peers(now);
        drop(keys);
        if watch && never {
            self.wake.notify_one();
        }
        peers
    }

    /// Stores what a DHT lookup of `key` found (`None`: it failed; the holders stay).
    pub(crate) fn looked_up(&self, key: &[u8], found: Option<Vec<PeerId>>) {
        let now = Instant::now();
        let mut keys = self.lock();
        if !keys.contains_key(key) && keys.len() >= MAX_KEYS {
            return;
        }
        let e = keys.entry(key.to_vec()).or_insert_with(|| Entry::new(now));
        e.in_flight = false;
        e.used = now;
        if let Some(found) = found {
            e.looked_up = Some(now);
            e.holders.retain(|(_, s)| *s != Source::Dht);
            for p in found {
                if e.holders.len() >= MAX_PEERS {
                    break;
                }
                e.holders.retain(|(q, _)| *q != p);
                e.holders.push((p, Source::Dht));
            }
        }
    }

    /// Watched keys due for a lookup (marked in flight), at most `room` of them; forgets idle
    /// keys and trims the table.
    pub(crate) fn due(&self, room: usize) -> Vec<Vec<u8>> {
        let now = Instant::now();
        let mut keys = self.lock();
        keys.retain(|_, e| now.duration_since(e.used) < IDLE || e.in_flight);
        evict(&mut keys);
        let mut due = Vec::new();
        for (k, e) in keys.iter_mut() {
            if due.len() >= room {
                break;
            }
            let watched = e.watched.is_some_and(|w| now.duration_since(w) < IDLE);
            if !watched || e.in_flight {
                continue;
            }
            let every = if e.peers(now).is_empty() {
                LOOKUP_EVERY_EMPTY
            } else {
                LOOKUP_EVERY
            };
            if e.looked_up.is_none_or(|t| now.duration_since(t) >= every) {
                e.in_flight = true;
                due.push(k.clone());
            }
        }
        due
    }

    /// Marks a lookup of `key` as started (an on-demand lookup).
    pub(crate) fn start_lookup(&self, key: &[u8]) {
        if let Some(e) = self.lock().get_mut(key) {
            e.in_flight = true;
        }
    }

    /// Waits until a watched key needs its first lookup, or `timeout`.
    pub(crate) async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }
}

/// Drops the least recently used keys beyond [`MAX_KEYS`] (keeps lookups in flight).
fn evict(keys: &mut HashMap<Vec<u8>, Entry>) {
    if keys.len() < MAX_KEYS {
        return;
    }
    let mut order: Vec<(Instant, Vec<u8>)> = keys
        .iter()
        .filter(|(_, e)| !e.in_flight)
        .map(|(k, e)| (e.used, k.clone()))
        .collect();
    order.sort();
    // Down to 7/8 of the bound, so that eviction does not run at every insert.
    let excess = keys.len() - MAX_KEYS * 7 / 8;
    for (_, k) in order.into_iter().take(excess) {
        keys.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    #[test]
    fn a_lookup_replaces_the_dht_holders_and_keeps_the_noted_ones() {
        let t = ProviderTable::default();
        let (a, b, c) = (peer(), peer(), peer());
        t.note(b"k", a);
        t.looked_up(b"k", Some(vec![b]));
        assert_eq!(t.read(b"k", false), vec![a, b]);
        t.looked_up(b"k", Some(vec![c]));
        assert_eq!(t.read(b"k", false), vec![a, c]);
        // A failed lookup keeps what was known.
        t.looked_up(b"k", None);
        assert_eq!(t.read(b"k", false), vec![a, c]);
    }

    #[test]
    fn only_watched_keys_are_looked_up_in_the_background() {
        let t = ProviderTable::default();
        t.note(b"gossiped", peer());
        assert!(t.read(b"fetched", false).is_empty());
        assert!(t.due(16).is_empty(), "nothing watched yet");
        assert!(t.read(b"site", true).is_empty());
        assert_eq!(t.due(16), vec![b"site".to_vec()]);
        assert!(t.due(16).is_empty(), "already in flight");
        t.looked_up(b"site", Some(vec![]));
        // No holder found: looked up again after LOOKUP_EVERY_EMPTY, not at once.
        assert!(t.due(16).is_empty());
    }

    #[test]
    fn holders_per_key_and_keys_are_bounded() {
        let t = ProviderTable::default();
        for _ in 0..(MAX_PEERS + 10) {
            t.note(b"k", peer());
        }
        assert_eq!(t.read(b"k", false).len(), MAX_PEERS);
        for i in 0..(MAX_KEYS + 100) {
            t.note(&(i as u64).to_be_bytes(), peer());
        }
        assert!(t.len() <= MAX_KEYS, "{}", t.len());
    }
}
