//! The keyspace of one node: entries, expiry (lazy on access, active by sampling), memory
//! accounting per entry, `maxmemory` eviction by sampled approximate LFU, and the bookkeeping
//! that follows every write (WATCH invalidation, waking blocked list poppers).
//!
//! Architecture invariant: every code path that changes a key's value calls
//! [`Db::modified`] before the lock is released; that keeps memory accounting, WATCH and
//! blocking pops consistent. Deleting through [`Db::remove`] does the same. Changes Redis does
//! not signal as modifications (a stream's consumer group state) call [`Db::resized`] instead,
//! which keeps the memory accounting only.
//!
//! The map is an `IndexMap` because eviction, active expiry and `RANDOMKEY` need uniform random
//! sampling (O(1) by index) and `SCAN` needs a cursor that survives deletions: scanning from the
//! highest index down means `swap_remove` only ever moves an already-visited entry, so every key
//! present for the whole scan is returned (Redis's guarantee), possibly twice.

use std::sync::Arc;

use hashbrown::{HashMap, HashSet};
use tokio::sync::Notify;

use crate::keymap::KeyMap;
use crate::tombstone::{Tombstones, expiry_version};
use crate::value::{Bytes, Value};

/// Bookkeeping bytes per key beyond the heap payload of key and value: the map's entry (a
/// 24-byte key and a 48-byte [`Entry`]) and its slot in the hash table (a 4-byte position and
/// a control byte, at a load between 7/16 and 7/8). Keys and strings of up to 23 bytes are
/// inline, so for them this is the whole cost.
pub const ENTRY_OVERHEAD: usize = 80;
/// Initial LFU counter of a new key (Redis's `LFU_INIT_VAL`).
const LFU_INIT: u8 = 5;
/// Keys sampled per eviction round (`maxmemory-samples`).
pub const DEFAULT_SAMPLES: usize = 5;

/// How long a deleted key's tombstone is kept by default: 10 minutes, twice the longest
/// `remove_down_after` (5 min on the WAN). A cut members ride out ends within that (past it,
/// each side forgets the other), so a copy that missed the delete meets its tombstone.
pub const DEFAULT_TOMBSTONE_TTL_MS: u64 = 10 * 60 * 1000;

/// What to do when `maxmemory` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse writes with `-OOM`.
    NoEviction,
    /// Evict the least frequently used of a sample of all keys.
    AllKeys,
    /// Evict the least frequently used of a sample of keys with a TTL.
    Volatile,
}

impl Policy {
    /// Parses a Redis policy name. The LRU, random and TTL variants map to sampled LFU over the
    /// same key population (documented in ARCHITECTURE.md).
    pub fn parse(name: &str) -> Option<(Self, &'static str)> {
        Some(match name.to_ascii_lowercase().as_str() {
            "noeviction" => (Policy::NoEviction, "noeviction"),
            "allkeys-lfu" => (Policy::AllKeys, "allkeys-lfu"),
            "allkeys-lru" => (Policy::AllKeys, "allkeys-lru"),
            "allkeys-random" => (Policy::AllKeys, "allkeys-random"),
            "volatile-lfu" => (Policy::Volatile, "volatile-lfu"),
            "volatile-lru" => (Policy::Volatile, "volatile-lru"),
            "volatile-random" => (Policy::Volatile, "volatile-random"),
            "volatile-ttl" => (Policy::Volatile, "volatile-ttl"),
            _ => return None,
        })
    }
}

/// One key's entry (48 bytes; with its 24-byte key, 72 per key in the map).
#[derive(Debug)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 = none.
    pub expire_at: u64,
    /// Version of the write that left this state (a hybrid clock; 0: none), so copies of a key
    /// from several nodes merge to the newest (cluster mode).
    ver: u64,
    /// Bytes accounted for this entry in [`Db::used_memory`].
    mem: u32,
    /// Last access and access frequency, as Redis keeps them in 24 bits plus 8: the low 24
    /// bits of the Unix second of the last access (`OBJECT IDLETIME`, wrapping every 194
    /// days as Redis's LRU clock does) above the logarithmic access counter (Redis's LFU
    /// counter, `OBJECT FREQ`). The counter decays from the last access, as in Redis.
    access: u32,
}

/// Bits of the access clock (Unix seconds mod 2^24).
const CLOCK_MASK: u32 = 0xFF_FFFF;

/// The access clock of Unix ms `now`.
fn clock(now: u64) -> u32 {
    ((now / 1000) as u32) & CLOCK_MASK
}

impl Entry {
    fn new(value: Value, expire_at: u64, mem: u32, now: u64) -> Self {
        Self {
            value,
            expire_at,
            ver: 0,
            mem,
            access: clock(now) << 8 | u32::from(LFU_INIT),
        }
    }

    /// The LFU counter (what `OBJECT FREQ` shows).
    pub fn freq(&self) -> u8 {
        (self.access & 0xFF) as u8
    }

    /// Milliseconds since the last access (whole seconds).
    pub fn idle_ms(&self, now: u64) -> u64 {
        u64::from(clock(now).wrapping_sub(self.access >> 8) & CLOCK_MASK) * 1000
    }

    /// Records an access at `now` with the counter `freq`.
    fn set_access(&mut self, now: u64, freq: u8) {
        self.access = clock(now) << 8 | u32::from(freq);
    }

    /// The counter after the decay since the last access: one step per `decay_time`
    /// minutes (Redis's `LFUDecrAndReturn`).
    fn decayed_freq(&self, now: u64, decay_time: u32) -> u8 {
        let freq = self.freq();
        if decay_time == 0 {
            return freq;
        }
        let periods = self.idle_ms(now) / 60_000 / u64::from(decay_time);
        freq.saturating_sub(periods.min(255) as u8)
    }
}

/// Counters `INFO stats` shows.
#[derive(Debug, Default, Clone)]
pub struct DbStats {
    /// Reads that found a key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Keys removed because their TTL passed.
    pub expired: u64,
    /// Keys removed to stay under `maxmemory`.
    pub evicted: u64,
}

/// The keyspace.
#[derive(Debug)]
pub struct Db {
    map: KeyMap<Entry>,
    volatile: usize,
    used: usize,
    /// Memory bound in bytes; 0 = none.
    pub maxmemory: usize,
    /// Eviction policy.
    pub policy: Policy,
    /// Keys sampled per eviction.
    pub samples: usize,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time` in minutes.
    pub lfu_decay_time: u32,
    /// Counters.
    pub stats: DbStats,
    /// Changes to the keyspace since start (`rdb_changes_since_last_save`: nothing is saved).
    pub changes: u64,
    /// Unix ms until which expired keys are only hidden, not deleted (`CLIENT PAUSE` holds
    /// writes, and an expiry is one); 0: none.
    pub expiry_paused_until: u64,
    /// Memory the node holds that no eviction frees (the scripting VMs), counted against
    /// `maxmemory` beside the keys.
    pub reserved: usize,
    watches: HashMap<Bytes, Vec<u64>>,
    dirty: HashSet<u64>,
    blocked: HashMap<Bytes, Vec<Arc<Notify>>>,
    /// What the running command changed, for keyspace notifications and tracking.
    pub log: crate::notify::ChangeLog,
    /// Versions of deleted keys (cluster mode only: nothing else versions keys).
    tombstones: Tombstones,
    /// How long a tombstone is kept, in ms (`tombstone_ttl`).
    pub tombstone_ttl_ms: u64,
}

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

/// The reply of a write when memory is full under `noeviction`.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

impl Db {
    /// An empty keyspace without a memory bound.
    pub fn new() -> Self {
        Self {
            map: KeyMap::default(),
            volatile: 0,
            used: 0,
            maxmemory: 0,
            policy: Policy::AllKeys,
            samples: DEFAULT_SAMPLES,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            stats: DbStats::default(),
            changes: 0,
            expiry_paused_until: 0,
            reserved: 0,
            watches: HashMap::default(),
            dirty: HashSet::default(),
            blocked: HashMap::default(),
            log: Default::default(),
            tombstones: Tombstones::default(),
            tombstone_ttl_ms: DEFAULT_TOMBSTONE_TTL_MS,
        }
    }

    /// Number of keys (including expired ones not yet collected).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Connections waiting in a blocking command.
    pub fn blocked_clients(&self) -> usize {
        let mut seen: HashSet<*const Notify> = HashSet::default();
        for ws in self.blocked.values() {
            seen.extend(ws.iter().map(Arc::as_ptr));
        }
        seen.len()
    }

    /// Keys with a TTL.
    pub fn volatile_count(&self) -> usize {
        self.volatile
    }

    /// Accounted bytes of all entries.
    pub fn used_memory(&self) -> usize {
        self.used
    }

    /// Bytes accounted for a key holding `value` (`MEMORY USAGE`).
    pub fn entry_mem(key: &[u8], value: &Value) -> u32 {
        (crate::compact::heap_size_for(key.len()) + value.mem() + ENTRY_OVERHEAD)
            .min(u32::MAX as usize) as u32
    }

    fn lfu_touch(&mut self, idx: usize, now: u64) {
        let factor = self.lfu_log_factor;
        let decay = self.lfu_decay_time;
        if let Some((_, e)) = self.map.get_index_mut(idx) {
            let mut freq = e.decayed_freq(now, decay);
            if freq < 255 {
                let base = f64::from(freq.saturating_sub(LFU_INIT));
                let p = 1.0 / (base * f64::from(factor) + 1.0);
                if fastrand::f64() < p {
                    freq += 1;
                }
            }
            e.set_access(now, freq);
        }
    }

    /// Index of a live key, deleting it first if it has expired.
    #[inline]
    fn live_index(&mut self, key: &[u8], now: u64) -> Option<usize> {
        let (idx, _, e) = self.map.get_full(key)?;
        if e.expire_at != 0 && e.expire_at <= now {
            if now < self.expiry_paused_until {
                return None;
            }
            self.remove_expired(idx);
            self.stats.expired += 1;
            self.log
                .record(|| crate::notify::Change::Expired(key.into()));
            return None;
        }
        Some(idx)
    }

    /// Reads a key (counts a hit or miss and bumps its frequency).
    #[inline]
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        match self.live_index(key, now) {
            Some(idx) => {
                self.stats.hits += 1;
                self.lfu_touch(idx, now);
                self.map.get_index(idx).map(|(_, e)| e)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Looks a key up without counting a read (for writes, `EXISTS`, `TYPE`...).
    #[inline]
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let idx = self.live_index(key, now)?;
        self.map.get_index(idx).map(|(_, e)| e)
    }

    /// Looks a key up without side effects (an expired key is reported missing, not deleted).
    #[inline]
    pub fn peek_ref(&self, key: &[u8], now: u64) -> Option<&Entry> {
        let e = self.map.get(key)?;
        if e.expire_at != 0 && e.expire_at <= now {
            None
        } else {
            Some(e)
        }
    }

    /// Mutable access for a write; the caller must call [`Db::modified`] afterwards.
    #[inline]
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        let idx = self.live_index(key, now)?;
        self.lfu_touch(idx, now);
        self.map.get_index_mut(idx).map(|(_, e)| e)
    }

    /// Inserts or replaces a key (the old TTL is dropped unless `expire_at` keeps it).
    pub fn insert(&mut self, key: &[u8], value: Value, expire_at: u64, now: u64) {
        let mem = Self::entry_mem(key, &value);
        if let Some(e) = self.map.get_mut(key) {
            self.used = self.used - e.mem as usize + mem as usize;
            if e.expire_at != 0 {
                self.volatile -= 1;
            }
            e.value = value;
            e.expire_at = expire_at;
            e.mem = mem;
        } else {
            self.used += mem as usize;
            self.log
                .record(|| crate::notify::Change::Created(key.into()));
            self.map
                .insert_new(key.into(), Entry::new(value, expire_at, mem, now));
        }
        if expire_at != 0 {
            self.volatile += 1;
        }
        self.after_write(key);
    }

    /// Sets or clears (0) the expiry of an existing key.
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64) {
        if let Some(e) = self.map.get_mut(key) {
            match (e.expire_at != 0, expire_at != 0) {
                (false, true) => self.volatile += 1,
                (true, false) => self.volatile -= 1,
                _ => {}
            }
            e.expire_at = expire_at;
            self.after_write(key);
        }
    }

    /// Sets a key's access frequency counter (`RESTORE ... FREQ`).
    pub fn set_freq(&mut self, key: &[u8], freq: u8, now: u64) {
        if let Some(e) = self.map.get_mut(key) {
            e.set_access(now, freq);
        }
    }

    /// Sets a key's idle time (`RESTORE ... IDLETIME`): its last access goes back `idle_ms`
    /// (so does the start of its counter's decay).
    pub fn set_idle(&mut self, key: &[u8], idle_ms: u64, now: u64) {
        if let Some(e) = self.map.get_mut(key) {
            let freq = e.freq();
            e.set_access(now.saturating_sub(idle_ms), freq);
        }
    }

    /// Marks a key accessed now without counting a read (`TOUCH`).
    pub fn touch(&mut self, key: &[u8], now: u64) -> bool {
        match self.live_index(key, now) {
            Some(idx) => {
                self.lfu_touch(idx, now);
                true
            }
            None => false,
        }
    }

    /// The version of a key's state: a live key's, or the tombstone's of a deleted or expired
    /// one (0: never versioned, or forgotten).
    pub fn version(&self, key: &[u8], now: u64) -> u64 {
        match self.map.get(key) {
            Some(e) if e.expire_at == 0 || e.expire_at > now => e.ver,
            Some(e) if e.ver != 0 => expiry_version(e.ver, e.expire_at),
            _ => self.tombstones.get(key).unwrap_or(0),
        }
    }

    /// Sets the version of a key's state: a live key's, or, for a key that is absent (the
    /// write deleted it), a tombstone's.
    pub fn set_version(&mut self, key: &[u8], ver: u64, now: u64) {
        match self.map.get_mut(key) {
            Some(e) if e.expire_at == 0 || e.expire_at > now => {
                e.ver = ver;
                self.tombstones.lift(key);
            }
            _ => self.tombstones.bury(key, ver),
        }
    }

    /// Every deleted or expired key whose version is known, with that version (cluster mode
    /// dumps them with the keys, so deletes reach the copies that missed them).
    pub fn for_each_tombstone(&self, now: u64, mut f: impl FnMut(&[u8], u64)) {
        for (k, ver) in self.tombstones.iter() {
            if !self.map.contains_key(k) {
                f(k, ver);
            }
        }
        for (k, e) in self.map.iter() {
            if e.ver != 0 && e.expire_at != 0 && e.expire_at <= now {
                f(k, expiry_version(e.ver, e.expire_at));
            }
        }
    }

    /// Tombstones remembered, and their approximate bytes (`INFO cluster`).
    pub fn tombstones(&self) -> (usize, usize) {
        (self.tombstones.len(), self.tombstones.memory())
    }

    /// Drops tombstones older than `tombstone_ttl_ms` (bounded work per call).
    pub fn collect_tombstones(&mut self, now: u64) -> usize {
        let before = now
            .saturating_sub(self.tombstone_ttl_ms)
            .saturating_mul(1 << 16);
        self.tombstones.collect(before, 10_000)
    }

    /// Removes an expired entry; a versioned one leaves a tombstone of its expiry version.
    fn remove_expired(&mut self, idx: usize) -> Option<Entry> {
        let (k, e) = self.map.get_index(idx)?;
        if e.ver != 0 {
            let (k, ver) = (k.clone(), expiry_version(e.ver, e.expire_at));
            self.tombstones.bury(&k, ver);
        }
        self.remove_index(idx)
    }

    /// Deletes a key; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let idx = self.map.get_index_of(key)?;
        self.log
            .record(|| crate::notify::Change::Deleted(key.into()));
        self.remove_index(idx)
    }

    fn remove_index(&mut self, idx: usize) -> Option<Entry> {
        let (k, e) = self.map.swap_remove_index(idx)?;
        self.used -= e.mem as usize;
        if e.expire_at != 0 {
            self.volatile -= 1;
        }
        self.changes += 1;
        self.touch_watchers(&k);
        // A blocked XREADGROUP must learn that its stream is gone (it answers with an error);
        // other blocked commands run again, find nothing and wait on.
        self.wake(&k);
        Some(e)
    }

    /// Records that `key` changed: re-accounts its memory, deletes it if it is an empty
    /// collection, invalidates WATCHes and wakes blocked poppers of a non-empty list.
    pub fn modified(&mut self, key: &[u8]) {
        let Some(idx) = self.map.get_index_of(key) else {
            self.log
                .record(|| crate::notify::Change::Written(key.into()));
            self.touch_watchers(key);
            return;
        };
        let empty = {
            let (k, e) = self
                .map
                .get_index_mut(idx)
                .expect("index from get_index_of");
            if e.value.is_empty_collection() {
                true
            } else {
                let mem = Self::entry_mem(k, &e.value);
                self.used = self.used - e.mem as usize + mem as usize;
                e.mem = mem;
                false
            }
        };
        if empty {
            self.log
                .record(|| crate::notify::Change::Written(key.into()));
            self.log
                .record(|| crate::notify::Change::Deleted(key.into()));
            self.remove_index(idx);
        } else {
            self.after_write(key);
        }
    }

    /// Re-accounts the memory of `key` after a change Redis does not count as a modification
    /// of the key (a stream's consumer groups: XREADGROUP, XACK, XCLAIM, XSETID...): WATCH is
    /// not invalidated and blocked clients are not woken.
    pub fn resized(&mut self, key: &[u8]) {
        if let Some((_, k, e)) = self.map.get_full_mut(key) {
            let mem = Self::entry_mem(k, &e.value);
            self.used = self.used - e.mem as usize + mem as usize;
            e.mem = mem;
        }
    }

    /// Wakes the clients blocked on `key` without invalidating WATCH (Redis's
    /// `signalKeyAsReady` alone, as XGROUP DESTROY does).
    pub fn signal_ready(&mut self, key: &[u8]) {
        self.wake(key);
    }

    fn after_write(&mut self, key: &[u8]) {
        self.changes += 1;
        self.log
            .record(|| crate::notify::Change::Written(key.into()));
        self.touch_watchers(key);
        self.wake(key);
    }

    /// Wakes the first connection blocked on `key`. Redis serves blocked clients in the order
    /// they blocked: the woken one runs its command again and then hands the turn to the next
    /// in line ([`Db::pass_on`]), so the first to block gets the first element and every
    /// waiter still gets its chance (a stream reader that needs a later ID re-blocks and
    /// passes on).
    fn wake(&mut self, key: &[u8]) {
        if !self.blocked.is_empty()
            && let Some(first) = self.blocked.get(key).and_then(|ws| ws.first())
        {
            first.notify_one();
        }
    }

    /// After `waiter` ran its blocking command again (served or blocked anew): wakes the
    /// waiter after it on each of `keys`, so every waiter runs in the order it blocked.
    pub fn pass_on(&mut self, keys: &[Bytes], waiter: &Arc<Notify>) {
        for k in keys {
            if let Some(ws) = self.blocked.get(k)
                && let Some(pos) = ws.iter().position(|w| Arc::ptr_eq(w, waiter))
                && let Some(next) = ws.get(pos + 1)
            {
                next.notify_one();
            }
        }
    }

    fn touch_watchers(&mut self, key: &[u8]) {
        if !self.watches.is_empty()
            && let Some(ids) = self.watches.get(key)
        {
            self.dirty.extend(ids.iter().copied());
        }
    }

    /// Registers `client` as watching `key` (WATCH).
    pub fn watch(&mut self, client: u64, key: &[u8]) {
        let ids = self.watches.entry(key.into()).or_default();
        if !ids.contains(&client) {
            ids.push(client);
        }
    }

    /// Drops every WATCH of `client`; returns whether one of its keys changed meanwhile.
    pub fn unwatch(&mut self, client: u64, keys: &[Bytes]) -> bool {
        for k in keys {
            if let Some(ids) = self.watches.get_mut(k) {
                ids.retain(|&c| c != client);
                if ids.is_empty() {
                    self.watches.remove(k);
                }
            }
        }
        self.dirty.remove(&client)
    }

    /// Registers a waiter for a push to any of `keys` (BLPOP and friends). A waiter already
    /// in a key's line (it ran again after a wake-up and found nothing) keeps its place.
    pub fn block_on(&mut self, keys: &[Bytes], waiter: &Arc<Notify>) {
        for k in keys {
            let ws = self.blocked.entry(k.clone()).or_default();
            if !ws.iter().any(|w| Arc::ptr_eq(w, waiter)) {
                ws.push(waiter.clone());
            }
        }
    }

    /// Removes a waiter that gave up (timeout, disconnect).
    pub fn unblock(&mut self, keys: &[Bytes], waiter: &Arc<Notify>) {
        for k in keys {
            if let Some(ws) = self.blocked.get_mut(k) {
                ws.retain(|w| !Arc::ptr_eq(w, waiter));
                if ws.is_empty() {
                    self.blocked.remove(k);
                }
            }
        }
    }

    /// Deletes every key (FLUSHDB/FLUSHALL); returns how many there were.
    pub fn flush(&mut self) -> usize {
        let n = self.map.len();
        self.changes += n as u64;
        self.log.record(|| crate::notify::Change::Flushed);
        // Only watches of keys that exist are touched (Redis's `touchAllWatchedKeysInDb`).
        let watched: Vec<u64> = self
            .watches
            .iter()
            .filter(|(k, _)| self.map.contains_key(k.as_ref()))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        self.dirty.extend(watched);
        // Blocked commands run again against the empty keyspace (XREADGROUP answers that its
        // stream is gone).
        // Everyone is woken at once (each finds its key gone); the lines stay, so a waiter
        // that blocks again keeps its place.
        for waiters in self.blocked.values() {
            for w in waiters {
                w.notify_one();
            }
        }
        self.map = KeyMap::default();
        self.used = 0;
        self.volatile = 0;
        n
    }

    /// A random live key.
    pub fn random_key(&mut self, now: u64) -> Option<Bytes> {
        for _ in 0..100 {
            if self.map.is_empty() {
                return None;
            }
            let idx = fastrand::usize(..self.map.len());
            let (k, e) = self.map.get_index(idx)?;
            if e.expire_at != 0 && e.expire_at <= now {
                if now >= self.expiry_paused_until {
                    self.remove_expired(idx);
                    self.stats.expired += 1;
                }
                continue;
            }
            return Some(k.as_slice().into());
        }
        None
    }

    /// One `SCAN` step: visits up to `count` slots from `cursor` (0 = start) downwards and calls
    /// `f` with each live key; returns the next cursor (0 = done).
    pub fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        now: u64,
        mut f: impl FnMut(&[u8], &Entry),
    ) -> u64 {
        let len = self.map.len();
        // Cursors count slots left to visit; 0 starts from the top.
        let mut next = if cursor == 0 {
            len
        } else {
            (cursor as usize).min(len)
        };
        let mut visited = 0;
        while next > 0 && visited < count {
            next -= 1;
            visited += 1;
            let expired = match self.map.get_index(next) {
                Some((k, e)) => {
                    if e.expire_at != 0 && e.expire_at <= now {
                        true
                    } else {
                        f(k, e);
                        false
                    }
                }
                None => false,
            };
            if expired {
                // Removing at `next` moves the last (already visited) entry here: still safe.
                self.remove_expired(next);
                self.stats.expired += 1;
            }
        }
        next as u64
    }

    /// Every live key (KEYS); calls `f` for each.
    pub fn for_each_key(&mut self, now: u64, mut f: impl FnMut(&[u8])) {
        for (k, e) in self.map.iter() {
            if e.expire_at == 0 || e.expire_at > now {
                f(k);
            }
        }
    }

    /// Every live key with its version.
    pub fn for_each_live(&self, now: u64, mut f: impl FnMut(&[u8], u64)) {
        for (k, e) in self.map.iter() {
            if e.expire_at == 0 || e.expire_at > now {
                f(k, e.ver);
            }
        }
    }

    /// Evicts until under `maxmemory`. `Err(OOM)` under `noeviction`, or when nothing is left
    /// to evict.
    pub fn ensure_memory(&mut self, now: u64) -> Result<(), &'static str> {
        if self.maxmemory == 0 || self.used + self.reserved <= self.maxmemory {
            return Ok(());
        }
        if self.policy == Policy::NoEviction {
            return Err(OOM);
        }
        // Bounded: each round evicts one key or gives up.
        let mut rounds = self.map.len() + 1;
        while self.used + self.reserved > self.maxmemory && rounds > 0 {
            rounds -= 1;
            match self.pick_victim(now) {
                Some(idx) => {
                    if self.log.enabled
                        && let Some((k, _)) = self.map.get_index(idx)
                    {
                        self.log
                            .changes
                            .push(crate::notify::Change::Evicted(k.into()));
                    }
                    self.remove_index(idx);
                    self.stats.evicted += 1;
                }
                None => return Err(OOM),
            }
        }
        Ok(())
    }

    fn pick_victim(&mut self, now: u64) -> Option<usize> {
        let len = self.map.len();
        if len == 0 {
            return None;
        }
        if self.policy == Policy::Volatile && self.volatile == 0 {
            return None;
        }
        let decay = self.lfu_decay_time;
        let mut best: Option<(u8, usize)> = None;
        let tries = self.samples.max(1)
            * if self.policy == Policy::Volatile {
                20
            } else {
                1
            };
        let mut found = 0;
        for _ in 0..tries {
            let idx = fastrand::usize(..len);
            let e = &self.map[idx];
            if self.policy == Policy::Volatile && e.expire_at == 0 {
                continue;
            }
            if e.expire_at != 0 && e.expire_at <= now {
                return Some(idx);
            }
            let freq = e.decayed_freq(now, decay);
            if best.is_none_or(|(c, _)| freq < c) {
                best = Some((freq, idx));
            }
            found += 1;
            if found >= self.samples {
                break;
            }
        }
        best.map(|(_, i)| i)
    }

    /// One active-expiry cycle: samples keys and deletes expired ones, repeating while more
    /// than a quarter of the sampled keys with a TTL had expired, within `max_rounds`.
    /// Returns how many keys were deleted.
    pub fn active_expire(&mut self, now: u64, max_rounds: usize) -> usize {
        let mut deleted = 0;
        if now < self.expiry_paused_until {
            return 0;
        }
        for _ in 0..max_rounds {
            if self.volatile == 0 || self.map.is_empty() {
                break;
            }
            // Sample enough keys to see about 20 with a TTL, bounded.
            let per = (20 * self.map.len() / self.volatile).clamp(20, 400);
            let (mut seen, mut expired) = (0, 0);
            for _ in 0..per {
                if self.map.is_empty() {
                    break;
                }
                let idx = fastrand::usize(..self.map.len());
                let e = &self.map[idx];
                if e.expire_at == 0 {
                    continue;
                }
                seen += 1;
                if e.expire_at <= now {
                    if self.log.enabled {
                        let k = self.map.get_index(idx).map(|(k, _)| Bytes::from(k));
                        self.log
                            .changes
                            .extend(k.map(crate::notify::Change::Expired));
                    }
                    self.remove_expired(idx);
                    self.stats.expired += 1;
                    expired += 1;
                }
            }
            deleted += expired;
            if seen == 0 || expired * 4 <= seen {
                break;
            }
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.as_bytes().into())
    }

    #[test]
    fn blocked_waiters_are_woken_in_the_order_they_blocked() {
        use futures::FutureExt;
        let woken = |w: &Arc<Notify>| w.notified().now_or_never().is_some();
        let mut db = Db::new();
        let (a, b, c) = (
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
        );
        let keys: Vec<Bytes> = vec![b"k".as_slice().into()];
        for w in [&a, &b, &c] {
            db.block_on(&keys, w);
        }
        db.insert(b"k", s("x"), 0, 0);
        // Only the first in line runs; the others wait for their turn.
        assert!(woken(&a));
        assert!(!woken(&b) && !woken(&c));
        // The first found nothing it wanted and blocks again: it keeps its place, and hands
        // the turn to the next.
        db.block_on(&keys, &a);
        db.pass_on(&keys, &a);
        assert!(woken(&b));
        assert!(!woken(&c));
        // The second is served and leaves; the third gets the turn.
        db.pass_on(&keys, &b);
        db.unblock(&keys, &b);
        assert!(woken(&c));
        assert_eq!(db.blocked_clients(), 2);
        // The next write wakes the first in line again.
        db.insert(b"k", s("y"), 0, 0);
        assert!(woken(&a));
        assert!(!woken(&c));
    }

    #[test]
    fn entry_layout_and_access_clock() {
        assert_eq!(std::mem::size_of::<Entry>(), 48);
        // Idle time in whole seconds, across the 24-bit clock's wrap (every 2^24 s).
        let wrap = (1u64 << 24) * 1000;
        let mut e = Entry::new(s("v"), 0, 0, wrap - 5_000);
        assert_eq!(e.idle_ms(wrap - 5_000), 0);
        assert_eq!(e.idle_ms(wrap + 7_500), 12_000);
        assert_eq!(e.freq(), LFU_INIT);
        // The counter decays one step per `decay_time` minutes since the last access.
        e.set_access(wrap - 5_000, 20);
        assert_eq!(e.decayed_freq(wrap - 5_000 + 59_000, 1), 20);
        assert_eq!(e.decayed_freq(wrap - 5_000 + 3 * 60_000, 1), 17);
        assert_eq!(e.decayed_freq(wrap - 5_000 + 3 * 60_000, 2), 19);
        assert_eq!(e.decayed_freq(wrap - 5_000 + 3 * 60_000, 0), 20);
        // RESTORE ... IDLETIME / FREQ.
        let mut db = Db::new();
        db.insert(b"k", s("v"), 0, 1_000_000);
        db.set_idle(b"k", 30_000, 1_000_000);
        assert_eq!(
            db.peek_ref(b"k", 1_000_000).unwrap().idle_ms(1_000_000),
            30_000
        );
        db.set_freq(b"k", 200, 1_000_000);
        let e = db.peek_ref(b"k", 1_000_000).unwrap();
        assert_eq!((e.freq(), e.idle_ms(1_000_000)), (200, 0));
        // A read within the minute touches: idle back to 0, counter kept or bumped.
        assert!(db.get(b"k", 1_030_000).unwrap().freq() >= 200);
        assert_eq!(db.peek_ref(b"k", 1_030_000).unwrap().idle_ms(1_030_000), 0);
        // Sixteen minutes later the read first decays the counter by sixteen.
        assert!(db.get(b"k", 1_030_000 + 16 * 60_000).unwrap().freq() <= 201 - 16 + 1);
    }

    #[test]
    fn long_keys_and_values_are_accounted_with_their_allocation() {
        let mut db = Db::new();
        let long = [b'k'; 40];
        db.insert(&long, Value::Str(vec![b'v'; 100].into()), 0, 0);
        let want =
            ENTRY_OVERHEAD + crate::compact::heap_size_for(40) + crate::compact::heap_size_for(100);
        assert_eq!(db.used_memory(), want);
        // APPEND-style growth of an inline value past 23 bytes moves it to the heap.
        db.insert(b"s", s("0123456789"), 0, 0);
        if let Some(Value::Str(v)) = db.get_mut(b"s", 0).map(|e| &mut e.value) {
            v.extend_from_slice(&[b'x'; 20]);
        }
        db.modified(b"s");
        assert_eq!(
            db.used_memory(),
            want + ENTRY_OVERHEAD + crate::compact::heap_size_for(30)
        );
        db.remove(&long);
        db.remove(b"s");
        assert_eq!(db.used_memory(), 0);
    }

    #[test]
    fn lazy_expiry_and_accounting() {
        let mut db = Db::new();
        db.insert(b"a", s("1"), 1000, 0);
        db.insert(b"b", s("22"), 0, 0);
        assert_eq!(db.volatile_count(), 1);
        assert!(db.get(b"a", 999).is_some());
        assert!(db.get(b"a", 1000).is_none());
        assert_eq!(db.volatile_count(), 0);
        assert_eq!(db.used_memory(), ENTRY_OVERHEAD);
        db.remove(b"b");
        assert_eq!(db.used_memory(), 0);
    }

    #[test]
    fn scan_returns_every_key_despite_deletions() {
        let mut db = Db::new();
        for i in 0..1000 {
            db.insert(format!("k{i}").as_bytes(), s("v"), 0, 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut steps = 0;
        loop {
            let mut batch = Vec::new();
            cursor = db.scan(cursor, 10, 0, |k, _| batch.push(k.to_vec()));
            // Delete some keys we have already seen and some we have not, mid-scan.
            for k in &batch {
                if k.ends_with(b"7") {
                    db.remove(k);
                }
            }
            db.remove(format!("k{}", steps * 3).as_bytes());
            seen.extend(batch);
            steps += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            let k = format!("k{i}");
            let deleted_midway = i % 3 == 0 && i / 3 < steps;
            if !deleted_midway {
                assert!(seen.contains(k.as_bytes()), "{k} missing");
            }
        }
    }

    #[test]
    fn eviction_keeps_memory_bounded() {
        let mut db = Db::new();
        db.maxmemory = 100_000;
        for i in 0..10_000 {
            db.ensure_memory(0).unwrap();
            db.insert(format!("key{i}").as_bytes(), s("0123456789"), 0, 0);
        }
        assert!(db.used_memory() <= 100_000 + 200);
        assert!(db.stats.evicted > 0);
        db.policy = Policy::NoEviction;
        db.insert(b"big", Value::Str(vec![0; 200_000].into()), 0, 0);
        assert_eq!(db.ensure_memory(0), Err(OOM));
    }

    #[test]
    fn waiters_are_woken_in_blocking_order() {
        use futures::FutureExt;
        let mut db = Db::new();
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let keys: Vec<Bytes> = vec![b"l".as_slice().into()];
        db.block_on(&keys, &a);
        db.block_on(&keys, &b);
        assert_eq!(db.blocked_clients(), 2);
        let mut l = crate::value::ListObj::default();
        l.push(b"x", false);
        l.push(b"y", false);
        db.insert(b"l", Value::List(Box::new(l)), 0, 0);
        // Only the first to block is woken; the second waits for its turn.
        assert!(a.notified().now_or_never().is_some());
        assert!(b.notified().now_or_never().is_none());
        // The first runs again and pops one element; the second is woken once it is done.
        if let Some(Value::List(l)) = db.get_mut(b"l", 0).map(|e| &mut e.value) {
            l.pop(true);
        }
        db.modified(b"l");
        assert!(b.notified().now_or_never().is_none());
        db.pass_on(&keys, &a);
        db.unblock(&keys, &a);
        assert!(b.notified().now_or_never().is_some());
        assert_eq!(db.blocked_clients(), 1);
        db.unblock(&keys, &b);
        assert_eq!(db.blocked_clients(), 0);
    }

    #[test]
    fn active_expiry_collects() {
        let mut db = Db::new();
        for i in 0..1000 {
            db.insert(format!("k{i}").as_bytes(), s("v"), 10, 0);
        }
        let mut total = 0;
        for _ in 0..200 {
            total += db.active_expire(11, 16);
            if db.is_empty() {
                break;
            }
        }
        assert_eq!(total, 1000);
    }
}
