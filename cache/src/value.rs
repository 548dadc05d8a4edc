//! The value types of the keyspace. Each collection keeps a running count of the bytes it holds,
//! so that accounting an entry's memory after a write is O(1) whatever its size.

use std::collections::VecDeque;

use hashbrown::HashSet;

pub use crate::compact::CompactBytes;
pub use crate::zset::ZSet;

/// An owned byte string (keys, values, members, fields).
pub type Bytes = Box<[u8]>;

/// Approximate bookkeeping bytes per element of a collection (table slot, pointer, allocator
/// header); used for `maxmemory` accounting, not exact.
pub const ELEM_OVERHEAD: usize = 32;

/// A value in the keyspace.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string (bytes; up to 23 inline, without a heap allocation).
    Str(CompactBytes),
    /// A hash of field -> value.
    Hash(Box<HashObj>),
    /// A list.
    List(Box<ListObj>),
    /// A set.
    Set(Box<SetObj>),
    /// A sorted set.
    ZSet(Box<ZSet>),
    /// A stream.
    Stream(Box<crate::stream::Stream>),
}

impl Value {
    /// The type name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// Heap bytes held by the value beyond the 24 bytes in its entry (payload plus
    /// per-element overhead; 0 for a string kept inline).
    pub fn mem(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::Hash(h) => h.bytes + 64,
            Value::List(l) => l.bytes + 48,
            Value::Set(s) => s.bytes + 64,
            Value::ZSet(z) => z.bytes() + 96,
            Value::Stream(s) => s.mem(),
        }
    }

    /// Whether a collection became empty (and the key must be deleted, as Redis does).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.map.is_empty(),
            Value::List(l) => l.items.is_empty(),
            Value::Set(s) => s.set.is_empty(),
            Value::ZSet(z) => z.dict.is_empty(),
            // A stream stays when its last entry goes (its IDs and groups remain).
            Value::Stream(_) => false,
        }
    }
}

/// A hash.
#[derive(Debug, Default, Clone)]
pub struct HashObj {
    /// Field -> value, in insertion order while the hash is small: Redis keeps a small hash
    /// in a listpack, and HGETALL, HSCAN and DUMP show that order.
    pub map: indexmap::IndexMap<Bytes, Bytes, hashbrown::DefaultHashBuilder>,
    bytes: usize,
}

/// Up to this many fields a removal keeps the order of the rest (O(n), as in a listpack);
/// beyond it the order is arbitrary anyway (Redis's hashtable) and removal is O(1).
const ORDERED_HASH_MAX: usize = 128;

impl HashObj {
    /// Sets a field; true if it is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Some(v) = self.map.get_mut(field) {
            self.bytes = self.bytes - v.len() + value.len();
            *v = value.into();
            false
        } else {
            self.bytes += field.len() + value.len() + ELEM_OVERHEAD;
            self.map.insert(field.into(), value.into());
            true
        }
    }

    /// Removes a field; true if it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = if self.map.len() <= ORDERED_HASH_MAX {
            self.map.shift_remove_entry(field)
        } else {
            self.map.swap_remove_entry(field)
        };
        if let Some((f, v)) = removed {
            self.bytes -= f.len() + v.len() + ELEM_OVERHEAD;
            true
        } else {
            false
        }
    }
}

/// A list.
#[derive(Debug, Default, Clone)]
pub struct ListObj {
    /// The elements, head first.
    pub items: VecDeque<Bytes>,
    bytes: usize,
}

impl ListObj {
    /// Pushes at the head or the tail.
    pub fn push(&mut self, v: &[u8], left: bool) {
        self.bytes += v.len() + 16;
        if left {
            self.items.push_front(v.into());
        } else {
            self.items.push_back(v.into());
        }
    }

    /// Pushes an owned element.
    pub fn push_owned(&mut self, v: Bytes, left: bool) {
        self.bytes += v.len() + 16;
        if left {
            self.items.push_front(v);
        } else {
            self.items.push_back(v);
        }
    }

    /// Pops from the head or the tail.
    pub fn pop(&mut self, left: bool) -> Option<Bytes> {
        let v = if left {
            self.items.pop_front()
        } else {
            self.items.pop_back()
        }?;
        self.bytes -= v.len() + 16;
        Some(v)
    }

    /// Recomputes the byte count after a bulk edit (LTRIM, LREM, LSET, LINSERT).
    pub fn recount(&mut self) {
        self.bytes = self.items.iter().map(|v| v.len() + 16).sum();
    }
}

/// A set.
#[derive(Debug, Default, Clone)]
pub struct SetObj {
    /// The members.
    pub set: HashSet<Bytes>,
    bytes: usize,
}

impl SetObj {
    /// Adds a member; true if it is new.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.set.contains(m) {
            return false;
        }
        self.bytes += m.len() + ELEM_OVERHEAD;
        self.set.insert(m.into());
        true
    }

    /// Removes a member; true if it existed.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        if self.set.remove(m) {
            self.bytes -= m.len() + ELEM_OVERHEAD;
            true
        } else {
            false
        }
    }

    /// A set built from members.
    pub fn from_members<'a>(members: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut s = Self::default();
        for m in members {
            s.insert(m);
        }
        s
    }
}
