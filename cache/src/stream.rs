//! The stream value type: entries ordered by ID, the counters Redis keeps beside them (last
//! ID, entries added, max deleted ID, recorded first ID) and consumer groups with their
//! pending entries lists (PEL) and consumers.
//!
//! Entries live in a `BTreeMap` keyed by ID. Redis stores them in listpack "nodes" of a radix
//! tree, and `~` trimming removes whole nodes only, so the node layout is observable (`XTRIM
//! MAXLEN ~ 444` leaves 500 entries with 100-entry nodes). [`Stream`] therefore keeps a model
//! of that layout beside the entries ([`Node`]: where each node starts, how many live and
//! deleted entries it holds, its approximate listpack size), built by the same rules as
//! `streamAppendItem`, `streamTrim` and `streamIteratorRemoveEntry`.

use std::collections::{BTreeMap, BTreeSet};

use crate::value::{Bytes, ELEM_OVERHEAD};

/// A stream entry ID (`ms-seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// The next ID; `None` after [`StreamId::MAX`].
    pub fn incr(self) -> Option<Self> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(Self::new(self.ms + 1, 0))
            }
        } else {
            Some(Self::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID; `None` before `0-0`.
    pub fn decr(self) -> Option<Self> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(Self::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(Self::new(self.ms, self.seq - 1))
        }
    }

    /// Whether this is `0-0`.
    pub fn is_zero(self) -> bool {
        self == Self::MIN
    }

    /// Parses `ms-seq`, `ms` (sequence `missing_seq`), and unless `strict`, `-` and `+`.
    /// With `allow_star`, `ms-*` parses and the second value says the sequence was not given.
    pub fn parse(
        a: &[u8],
        missing_seq: u64,
        strict: bool,
        allow_star: bool,
    ) -> Option<(Self, bool)> {
        // Redis copies into a 128-byte buffer first: longer input is invalid.
        if a.len() > 127 {
            return None;
        }
        match a {
            b"-" if !strict => return Some((Self::MIN, true)),
            b"+" if !strict => return Some((Self::MAX, true)),
            _ => {}
        }
        let (ms, seq) = match a.iter().position(|&c| c == b'-') {
            Some(p) => (&a[..p], Some(&a[p + 1..])),
            None => (a, None),
        };
        let ms = parse_u64(ms)?;
        match seq {
            None => Some((Self::new(ms, missing_seq), true)),
            Some(b"*") if allow_star => Some((Self::new(ms, 0), false)),
            Some(s) => Some((Self::new(ms, parse_u64(s)?), true)),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Parses an unsigned 64-bit decimal as Redis's `string2ull` does (digits only, no sign, no
/// spaces, no leading `+`).
fn parse_u64(a: &[u8]) -> Option<u64> {
    if a.is_empty() || a.len() > 20 || !a.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(a).ok()?.parse().ok()
}

/// One node of Redis's radix tree of listpacks, modelled (see the module comment).
#[derive(Debug, Clone)]
pub struct Node {
    /// The last ID ever appended to the node (deleted or not), as `lpGetEdgeStreamID` reads.
    pub last: StreamId,
    /// Entries not deleted.
    pub live: u64,
    /// Entries flagged deleted but still in the listpack.
    pub deleted: u64,
    /// Approximate listpack size in bytes.
    pub bytes: usize,
}

/// A pending entry: delivered to a consumer, not acknowledged yet.
#[derive(Debug, Clone)]
pub struct Nack {
    /// Unix ms of the last delivery.
    pub time: u64,
    /// Number of deliveries.
    pub count: u64,
    /// The consumer owning it.
    pub consumer: Bytes,
}

/// A consumer of a group.
#[derive(Debug, Clone, Default)]
pub struct Consumer {
    /// Unix ms the consumer was last seen (created, read, claimed).
    pub seen: u64,
    /// IDs of its pending entries (their details are in the group's PEL).
    pub pel: BTreeSet<StreamId>,
}

/// `entries_read` of a group whose read counter is unknown.
pub const INVALID_ENTRIES_READ: i64 = -1;

/// A consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Last delivered ID.
    pub last_id: StreamId,
    /// Logical read counter ([`INVALID_ENTRIES_READ`] when unknown).
    pub entries_read: i64,
    /// The group's pending entries list.
    pub pel: BTreeMap<StreamId, Nack>,
    /// Consumers by name (ordered, as Redis's radix tree lists them). Add and remove them
    /// through [`Group::touch_consumer`] and [`Group::remove_consumer`], which account their
    /// names.
    pub consumers: BTreeMap<Bytes, Consumer>,
    /// Bytes of the consumers' names.
    name_bytes: usize,
}

impl Group {
    /// A group starting after `last_id`.
    pub fn new(last_id: StreamId, entries_read: i64) -> Self {
        Self {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
            name_bytes: 0,
        }
    }

    /// Deletes a consumer and its pending entries; returns how many it had.
    pub fn remove_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        self.name_bytes -= name.len();
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Looks up a consumer, creating it if missing (seen now either way); true if created.
    pub fn touch_consumer(&mut self, name: &[u8], now: u64) -> bool {
        match self.consumers.get_mut(name) {
            Some(c) => {
                c.seen = now;
                false
            }
            None => {
                self.name_bytes += name.len();
                self.consumers.insert(
                    name.into(),
                    Consumer {
                        seen: now,
                        pel: BTreeSet::new(),
                    },
                );
                true
            }
        }
    }

    /// Removes `id` from the PEL and from its consumer; true if it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(n) => {
                if let Some(c) = self.consumers.get_mut(&n.consumer) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Makes `id` pending for `consumer` (which must exist), moving it from its previous
    /// owner if any; returns the NACK.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], now: u64) -> &mut Nack {
        let prev = self.pel.get(&id).map(|n| n.consumer.clone());
        if let Some(p) = prev
            && &*p != consumer
            && let Some(c) = self.consumers.get_mut(&p)
        {
            c.pel.remove(&id);
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        let nack = self.pel.entry(id).or_insert_with(|| Nack {
            time: now,
            count: 0,
            consumer: consumer.into(),
        });
        if &*nack.consumer != consumer {
            nack.consumer = consumer.into();
        }
        nack
    }

    /// Approximate bytes held by the group beyond its name, in O(1): every pending entry is
    /// in the group's PEL and in one consumer's.
    fn mem(&self) -> usize {
        96 + self.pel.len() * (64 + ELEM_OVERHEAD)
            + self.consumers.len() * (48 + ELEM_OVERHEAD)
            + self.name_bytes
    }
}

/// How to trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop entries with an ID below this one.
    MinId(StreamId),
}

/// Why an append failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// The ID is not greater than the last one (or a sequence would overflow).
    NotGreater,
    /// The fields and values exceed what one listpack node can hold.
    TooLarge,
}

/// Node limits (`stream-node-max-entries`, `stream-node-max-bytes`).
#[derive(Debug, Clone, Copy)]
pub struct NodeLimits {
    /// Entries per node (0: no bound).
    pub entries: u64,
    /// Bytes per node (0: the listpack maximum).
    pub bytes: usize,
}

impl Default for NodeLimits {
    fn default() -> Self {
        Self {
            entries: 100,
            bytes: 4096,
        }
    }
}

/// The largest listpack Redis lets a stream node grow to.
const LISTPACK_MAX: usize = 1 << 30;

/// A stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Entries: ID -> field, value, field, value...
    pub entries: BTreeMap<StreamId, Box<[Bytes]>>,
    /// The node layout model, keyed by each node's master (first) ID.
    pub nodes: BTreeMap<StreamId, Node>,
    /// The last ID ever added (or set by XSETID).
    pub last_id: StreamId,
    /// The first live entry's ID as Redis records it (`0-0` when empty).
    pub first_id: StreamId,
    /// The largest ID removed by XDEL.
    pub max_deleted: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// Consumer groups by name (ordered, as Redis lists them).
    pub groups: BTreeMap<Bytes, Group>,
    bytes: usize,
}

fn entry_mem(fields: &[Bytes]) -> usize {
    fields.iter().map(|f| f.len() + 16).sum::<usize>() + 16 + ELEM_OVERHEAD
}

impl Stream {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries (an empty stream still exists as a key).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Approximate bytes held; O(number of groups).
    pub fn mem(&self) -> usize {
        let groups: usize = self.groups.iter().map(|(n, g)| n.len() + g.mem()).sum();
        self.bytes + self.nodes.len() * 48 + groups + 128
    }

    /// The ID the next `*` would get at `now`; `None` if the stream is exhausted.
    fn next_auto_id(&self, now: u64) -> Option<StreamId> {
        if now > self.last_id.ms {
            Some(StreamId::new(now, 0))
        } else {
            self.last_id.incr()
        }
    }

    /// Appends an entry. `id`: `None` for `*`, else the ID and whether its sequence was given
    /// (`ms-*` leaves it to be generated). `fields` holds field, value pairs.
    pub fn append(
        &mut self,
        id: Option<(StreamId, bool)>,
        fields: &[&[u8]],
        now: u64,
        limits: NodeLimits,
    ) -> Result<StreamId, AppendError> {
        let id = match id {
            None => self.next_auto_id(now).ok_or(AppendError::NotGreater)?,
            Some((id, true)) => id,
            Some((id, false)) => {
                if self.last_id.ms == id.ms {
                    let seq = self
                        .last_id
                        .seq
                        .checked_add(1)
                        .ok_or(AppendError::NotGreater)?;
                    StreamId::new(id.ms, seq)
                } else {
                    id
                }
            }
        };
        if id <= self.last_id {
            return Err(AppendError::NotGreater);
        }
        let totelelen: usize = fields.iter().map(|f| f.len()).sum();
        if totelelen > LISTPACK_MAX {
            return Err(AppendError::TooLarge);
        }
        let values: Box<[Bytes]> = fields.iter().map(|f| Bytes::from(*f)).collect();
        // An entry in a listpack: flags, ID deltas, the fields and values (each with a small
        // header and back-length), the field count and the lp-count.
        let entry_lp = totelelen + 3 * fields.len() + 8;
        let max_bytes = if limits.bytes == 0 || limits.bytes > LISTPACK_MAX {
            LISTPACK_MAX
        } else {
            limits.bytes
        };
        let append_to = self.nodes.last_key_value().and_then(|(k, n)| {
            let full = n.bytes + totelelen >= max_bytes
                || (limits.entries != 0 && n.live + n.deleted >= limits.entries);
            (!full).then_some(*k)
        });
        match append_to {
            Some(k) => {
                let n = self.nodes.get_mut(&k).expect("key from last_key_value");
                n.live += 1;
                n.last = id;
                n.bytes += entry_lp;
            }
            None => {
                // A new node's header: counters, the master fields, terminators.
                let master: usize = fields.iter().step_by(2).map(|f| f.len() + 2).sum();
                self.nodes.insert(
                    id,
                    Node {
                        last: id,
                        live: 1,
                        deleted: 0,
                        bytes: 16 + master + entry_lp,
                    },
                );
            }
        }
        self.bytes += entry_mem(&values);
        self.entries.insert(id, values);
        self.entries_added += 1;
        self.last_id = id;
        if self.entries.len() == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    fn node_of(&self, id: StreamId) -> Option<StreamId> {
        self.nodes.range(..=id).next_back().map(|(k, _)| *k)
    }

    /// Deletes one entry (XDEL); true if it existed. Updates the node model, but not the
    /// recorded first ID or the max deleted ID (the caller does, once per command).
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(v) = self.entries.remove(&id) else {
            return false;
        };
        self.bytes -= entry_mem(&v);
        if let Some(k) = self.node_of(id) {
            let n = self.nodes.get_mut(&k).expect("key from node_of");
            if n.live <= 1 {
                // The node's last live entry: Redis frees the whole node.
                self.nodes.remove(&k);
            } else {
                n.live -= 1;
                n.deleted += 1;
            }
        }
        true
    }

    /// Re-reads the recorded first ID from the entries (after deletions).
    pub fn refresh_first_id(&mut self) {
        self.first_id = self.entries.keys().next().copied().unwrap_or(StreamId::MIN);
    }

    /// Trims as `streamTrim` does; `limit` 0 = unbounded. Returns the entries removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        loop {
            if let Trim::MaxLen(max) = how
                && self.entries.len() as u64 <= max
            {
                break;
            }
            let Some((&key, node)) = self.nodes.first_key_value() else {
                break;
            };
            let live = node.live;
            if limit != 0 && deleted + live > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(max) => (self.entries.len() as u64).saturating_sub(live) >= max,
                Trim::MinId(min) => node.last < min,
            };
            let next = self.nodes.range(key..).nth(1).map(|(k, _)| *k);
            if remove_node {
                self.nodes.remove(&key);
                let kept = match next {
                    Some(n) => self.entries.split_off(&n),
                    None => BTreeMap::new(),
                };
                let gone = std::mem::replace(&mut self.entries, kept);
                for v in gone.values() {
                    self.bytes -= entry_mem(v);
                }
                deleted += gone.len() as u64;
                continue;
            }
            if approx {
                break;
            }
            // Delete entries from within the head node, oldest first.
            let mut from_node = 0u64;
            while let Some((&id, _)) = self.entries.first_key_value() {
                if next.is_some_and(|n| id >= n) {
                    break;
                }
                let stop = match how {
                    Trim::MaxLen(max) => self.entries.len() as u64 <= max,
                    Trim::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                if let Some(v) = self.entries.remove(&id) {
                    self.bytes -= entry_mem(&v);
                }
                from_node += 1;
            }
            if let Some(n) = self.nodes.get_mut(&key) {
                n.live -= from_node;
                n.deleted += from_node;
            }
            deleted += from_node;
            break;
        }
        if self.entries.is_empty() {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.refresh_first_id();
        }
        deleted
    }

    /// The last live entry's ID.
    pub fn last_valid_id(&self) -> Option<StreamId> {
        self.entries.keys().next_back().copied()
    }

    /// Whether `start..=end` may contain a deleted entry (`streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.entries.is_empty() || self.max_deleted.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted && self.max_deleted <= end
    }

    /// An ID's logical read counter, if it can be known
    /// (`streamEstimateDistanceFromFirstEverEntry`).
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.entries.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        } else if id > self.last_id {
            return None;
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            let len = self.entries.len() as u64;
            if id < self.first_id {
                return Some(self.entries_added - len);
            } else if id == self.first_id {
                return Some(self.entries_added - len + 1);
            }
        }
        None
    }

    /// A group's lag, if it can be known (`streamReplyWithCGLag`).
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ
            && !self.range_has_tombstones(g.last_id, StreamId::MAX)
        {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        self.estimate_distance(g.last_id)
            .map(|read| self.entries_added as i64 - read as i64)
    }

    /// Advances a group past `id` as delivering it does (read counter, last ID).
    pub fn advance_group(&mut self, group: &[u8], id: StreamId) {
        let tomb = self.range_has_tombstones(id, StreamId::MAX);
        let est = self.estimate_distance(id);
        let added = self.entries_added;
        if let Some(g) = self.groups.get_mut(group)
            && id > g.last_id
        {
            if g.entries_read != INVALID_ENTRIES_READ && !tomb {
                g.entries_read += 1;
            } else if added != 0 {
                g.entries_read = est.map_or(INVALID_ENTRIES_READ, |v| v as i64);
            }
            g.last_id = id;
        }
    }
}

impl Stream {
    /// Calls `emit` with each command of a sequence that recreates this stream's whole state
    /// under `key` (after a `DEL`): entries, last ID, entries added, max deleted ID, groups
    /// with their last delivered ID and read counter, consumers, and every pending entry with
    /// its owner, delivery time and count. Consumers' seen times become the replay's time.
    ///
    /// A pending entry whose stream entry is gone cannot be claimed back (XCLAIM drops it), so
    /// such IDs are added as placeholder entries, claimed, then removed again: by `XTRIM
    /// MINID` when they precede every live entry (they were trimmed, which leaves the max
    /// deleted ID alone), else by `XDEL` (they were deleted, so the max deleted ID, restored
    /// last by `XSETID`, is at least theirs).
    pub fn replay_commands(&self, key: &[u8], mut emit: impl FnMut(&[&[u8]])) {
        let mut ghosts: BTreeSet<StreamId> = BTreeSet::new();
        for g in self.groups.values() {
            ghosts.extend(g.pel.keys().filter(|id| !self.entries.contains_key(id)));
        }
        let placeholder: Box<[Bytes]> = Box::new([Bytes::from(&b"_"[..]), Bytes::from(&b"_"[..])]);
        let mut ids = self.entries.iter().peekable();
        let mut gs = ghosts.iter().peekable();
        let mut any = false;
        loop {
            let (id, fields) = match (ids.peek(), gs.peek()) {
                (Some((a, _)), Some(b)) if *b < *a => (*gs.next().expect("peeked"), &placeholder),
                (Some(_), _) => {
                    let (a, f) = ids.next().expect("peeked");
                    (*a, f)
                }
                (None, Some(_)) => (*gs.next().expect("peeked"), &placeholder),
                (None, None) => break,
            };
            let id = id.to_string();
            let mut args: Vec<&[u8]> = vec![b"XADD", key, id.as_bytes()];
            args.extend(fields.iter().map(|f| &**f));
            emit(&args);
            any = true;
        }
        if !any {
            // An empty stream: create it with a trimmed-away entry (XSETID fixes the IDs).
            emit(&[b"XADD", key, b"MAXLEN", b"0", b"1-0", b"_", b"_"]);
        }
        for (name, g) in &self.groups {
            let last = g.last_id.to_string();
            let read = g.entries_read.to_string();
            emit(&[
                b"XGROUP",
                b"CREATE",
                key,
                name,
                last.as_bytes(),
                b"ENTRIESREAD",
                read.as_bytes(),
            ]);
            for cname in g.consumers.keys() {
                emit(&[b"XGROUP", b"CREATECONSUMER", key, name, cname]);
            }
            for (id, n) in &g.pel {
                let (id, time, count) = (id.to_string(), n.time.to_string(), n.count.to_string());
                emit(&[
                    b"XCLAIM",
                    key,
                    name,
                    &n.consumer,
                    b"0",
                    id.as_bytes(),
                    b"FORCE",
                    b"TIME",
                    time.as_bytes(),
                    b"RETRYCOUNT",
                    count.as_bytes(),
                    b"JUSTID",
                ]);
            }
        }
        match self.entries.keys().next() {
            None if !ghosts.is_empty() => emit(&[b"XTRIM", key, b"MAXLEN", b"0"]),
            None => {}
            Some(first) => {
                if ghosts.first().is_some_and(|g| g < first) {
                    let f = first.to_string();
                    emit(&[b"XTRIM", key, b"MINID", f.as_bytes()]);
                }
                let later: Vec<String> = ghosts.range(first..).map(|g| g.to_string()).collect();
                if !later.is_empty() {
                    let mut args: Vec<&[u8]> = vec![b"XDEL", key];
                    args.extend(later.iter().map(|g| g.as_bytes()));
                    emit(&args);
                }
            }
        }
        let (last, added) = (self.last_id.to_string(), self.entries_added.to_string());
        let maxdel = self.max_deleted.to_string();
        // XSETID refuses a max deleted ID above the last ID it sets, but a later XSETID (without
        // MAXDELETEDID) may have lowered the last ID below it: then set both at the max deleted
        // ID first and lower the last ID after.
        let split = self.max_deleted > self.last_id;
        let first = if split { &maxdel } else { &last };
        let mut args: Vec<&[u8]> = vec![
            b"XSETID",
            key,
            first.as_bytes(),
            b"ENTRIESADDED",
            added.as_bytes(),
        ];
        if !self.max_deleted.is_zero() {
            args.extend_from_slice(&[b"MAXDELETEDID", maxdel.as_bytes()]);
        }
        emit(&args);
        if split {
            emit(&[b"XSETID", key, last.as_bytes()]);
        }
    }
}

/// Whether a command is one [`Stream::replay_commands`] emits (for checking a peer's state;
/// the caller checks the key it names).
pub fn is_replay_command(c: &[&[u8]]) -> bool {
    let is = |i: usize, name: &str| {
        c.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
    };
    if is(0, "XGROUP") {
        return (is(1, "CREATE") && c.len() == 7 && is(5, "ENTRIESREAD"))
            || (is(1, "CREATECONSUMER") && c.len() == 5);
    }
    (is(0, "XADD") && c.len() >= 5)
        || (is(0, "XCLAIM") && c.len() == 12 && is(6, "FORCE"))
        || (is(0, "XTRIM") && c.len() == 4)
        || (is(0, "XDEL") && c.len() >= 3)
        || (is(0, "XSETID") && matches!(c.len(), 3 | 5 | 7))
}

/// Where a replayed command names its key (XGROUP puts it after the subcommand).
pub fn replay_key_index(c: &[&[u8]]) -> usize {
    if c.first().is_some_and(|a| a.eq_ignore_ascii_case(b"XGROUP")) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(entries: u64) -> NodeLimits {
        NodeLimits {
            entries,
            bytes: 4096,
        }
    }

    #[test]
    fn ids_parse_like_redis() {
        assert_eq!(
            StreamId::parse(b"1-2", 0, true, false),
            Some((StreamId::new(1, 2), true))
        );
        assert_eq!(
            StreamId::parse(b"5", u64::MAX, false, false),
            Some((StreamId::new(5, u64::MAX), true))
        );
        assert_eq!(
            StreamId::parse(b"5-*", 0, true, true),
            Some((StreamId::new(5, 0), false))
        );
        assert_eq!(StreamId::parse(b"5-*", 0, true, false), None);
        assert_eq!(StreamId::parse(b"-", 0, true, false), None);
        assert_eq!(
            StreamId::parse(b"+", 0, false, false),
            Some((StreamId::MAX, true))
        );
        assert_eq!(StreamId::parse(b"1-x", 0, false, false), None);
        assert_eq!(
            StreamId::parse(b"18446744073709551616", 0, false, false),
            None
        );
    }

    #[test]
    fn approximate_trim_removes_whole_nodes_only() {
        let mut s = Stream::default();
        for i in 1..=1000 {
            s.append(
                Some((StreamId::new(i, 0), true)),
                &[b"f", b"v"],
                0,
                limits(100),
            )
            .unwrap();
        }
        assert_eq!(s.nodes.len(), 10);
        assert_eq!(s.trim(Trim::MaxLen(444), true, 0), 500);
        assert_eq!(s.len(), 500);
        // Exact: one whole node, then half of the next one.
        assert_eq!(s.trim(Trim::MaxLen(350), false, 0), 150);
        assert_eq!(s.len(), 350);
        assert_eq!(s.first_id, StreamId::new(651, 0));
        // The head node keeps its deleted entries.
        assert_eq!(s.nodes.len(), 4);
        assert_eq!(s.nodes.first_key_value().map(|(_, n)| n.deleted), Some(50));
    }

    #[test]
    fn memory_follows_entries_and_groups() {
        let mut s = Stream::default();
        let empty = s.mem();
        for i in 1..=10 {
            s.append(
                Some((StreamId::new(i, 0), true)),
                &[b"field", b"value"],
                0,
                limits(4),
            )
            .unwrap();
        }
        let full = s.mem();
        assert!(full > empty + 10 * 10);
        let mut g = Group::new(StreamId::MIN, INVALID_ENTRIES_READ);
        g.touch_consumer(b"alice", 0);
        g.assign(StreamId::new(1, 0), b"alice", 0);
        s.groups.insert(Bytes::from(&b"g"[..]), g);
        assert!(s.mem() > full);
        if let Some(g) = s.groups.get_mut(&b"g"[..]) {
            assert_eq!(g.remove_consumer(b"alice"), Some(1));
            assert!(g.pel.is_empty());
        }
        s.groups.clear();
        assert_eq!(s.mem(), full);
        s.trim(Trim::MaxLen(0), false, 0);
        assert_eq!(s.len(), 0);
        // Only the node model (heads with deleted entries) may remain.
        assert_eq!(s.mem() - s.nodes.len() * 48, empty);
    }

    #[test]
    fn deleting_a_nodes_last_entry_frees_it() {
        let mut s = Stream::default();
        for i in 1..=4 {
            s.append(
                Some((StreamId::new(i, 0), true)),
                &[b"f", b"v"],
                0,
                limits(2),
            )
            .unwrap();
        }
        assert_eq!(s.nodes.len(), 2);
        assert!(s.delete(StreamId::new(1, 0)));
        assert!(s.delete(StreamId::new(2, 0)));
        assert_eq!(s.nodes.len(), 1);
        assert!(!s.delete(StreamId::new(2, 0)));
    }
}
