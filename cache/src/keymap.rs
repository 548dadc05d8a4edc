//! [`KeyMap`]: the keyspace's insertion-indexed hash map, a compact `IndexMap`. Entries live in
//! one vector (uniform random sampling and SCAN's cursor are O(1) by index); a hash table of
//! `u32` positions finds a key's entry. Unlike `indexmap`, an entry does not store its key's
//! hash (8 bytes per key) and positions are 4 bytes instead of 8: a key's hash is recomputed
//! when the table grows or an entry moves, which for keys this short costs little. At most
//! `u32::MAX` keys.
//!
//! Removal is `swap_remove` only (the last entry moves into the hole), which is what keeps
//! SCAN's guarantee (see [`crate::db`]).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::compact::CompactBytes;

type Hasher = hashbrown::DefaultHashBuilder;

/// Keys in insertion order (until a removal moves the last one), each with a `V`.
#[derive(Debug)]
pub struct KeyMap<V> {
    entries: Vec<(CompactBytes, V)>,
    index: HashTable<u32>,
    hasher: Hasher,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: Hasher::default(),
        }
    }
}

impl<V> KeyMap<V> {
    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Position of `key`.
    #[inline]
    pub fn get_index_of(&self, key: &[u8]) -> Option<usize> {
        let h = self.hasher.hash_one(key);
        let entries = &self.entries;
        self.index
            .find(h, |&i| entries[i as usize].0.as_slice() == key)
            .map(|&i| i as usize)
    }

    /// Position, key and value of `key`.
    #[inline]
    pub fn get_full(&self, key: &[u8]) -> Option<(usize, &CompactBytes, &V)> {
        let i = self.get_index_of(key)?;
        let (k, v) = &self.entries[i];
        Some((i, k, v))
    }

    /// Position, key and mutable value of `key`.
    #[inline]
    pub fn get_full_mut(&mut self, key: &[u8]) -> Option<(usize, &CompactBytes, &mut V)> {
        let i = self.get_index_of(key)?;
        let (k, v) = &mut self.entries[i];
        Some((i, k, v))
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_full(key).map(|(_, _, v)| v)
    }

    /// The value of `key`, mutable.
    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.get_full_mut(key).map(|(_, _, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get_index_of(key).is_some()
    }

    /// The entry at `idx`.
    #[inline]
    pub fn get_index(&self, idx: usize) -> Option<(&CompactBytes, &V)> {
        self.entries.get(idx).map(|(k, v)| (k, v))
    }

    /// The entry at `idx`, its value mutable.
    #[inline]
    pub fn get_index_mut(&mut self, idx: usize) -> Option<(&CompactBytes, &mut V)> {
        self.entries.get_mut(idx).map(|(k, v)| (&*k, v))
    }

    /// Adds `key`, which must not be present (checked in debug builds); returns its position.
    pub fn insert_new(&mut self, key: CompactBytes, value: V) -> usize {
        debug_assert!(!self.contains_key(&key));
        let i = self.entries.len();
        let pos = u32::try_from(i).expect("more than u32::MAX keys");
        let h = self.hasher.hash_one(key.as_slice());
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.insert_unique(h, pos, |&j| {
            hasher.hash_one(entries[j as usize].0.as_slice())
        });
        self.entries.push((key, value));
        i
    }

    /// Removes the entry at `idx`; the last entry takes its place.
    pub fn swap_remove_index(&mut self, idx: usize) -> Option<(CompactBytes, V)> {
        let h = self.hasher.hash_one(self.entries.get(idx)?.0.as_slice());
        if let Ok(slot) = self.index.find_entry(h, |&i| i as usize == idx) {
            slot.remove();
        }
        let last = self.entries.len() - 1;
        if idx != last {
            let h = self.hasher.hash_one(self.entries[last].0.as_slice());
            if let Some(slot) = self.index.find_mut(h, |&i| i as usize == last) {
                *slot = idx as u32;
            }
        }
        Some(self.entries.swap_remove(idx))
    }

    /// Every entry, by position.
    pub fn iter(&self) -> impl Iterator<Item = (&CompactBytes, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<V> std::ops::Index<usize> for KeyMap<V> {
    type Output = V;
    fn index(&self, idx: usize) -> &V {
        &self.entries[idx].1
    }
}

impl<V> std::ops::IndexMut<usize> for KeyMap<V> {
    fn index_mut(&mut self, idx: usize) -> &mut V {
        &mut self.entries[idx].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_keep_positions_consistent() {
        let mut m: KeyMap<usize> = KeyMap::default();
        let mut model: Vec<(Vec<u8>, usize)> = Vec::new();
        fastrand::seed(7);
        for step in 0..20_000 {
            let k = format!("key:{}", fastrand::usize(..3000)).into_bytes();
            if fastrand::u8(..3) == 0 {
                if let Some(i) = m.get_index_of(&k) {
                    let (rk, rv) = m.swap_remove_index(i).unwrap();
                    assert_eq!(&rk[..], &k[..]);
                    let (mk, mv) = model.swap_remove(i);
                    assert_eq!((mk, mv), (k.clone(), rv));
                }
            } else if let Some(v) = m.get_mut(&k) {
                *v = step;
                let i = model.iter().position(|(mk, _)| *mk == k).unwrap();
                model[i].1 = step;
            } else {
                let i = m.insert_new(k.as_slice().into(), step);
                assert_eq!(i, model.len());
                model.push((k, step));
            }
        }
        assert_eq!(m.len(), model.len());
        for (i, (k, v)) in model.iter().enumerate() {
            assert_eq!(m.get_full(k).map(|(j, _, v)| (j, *v)), Some((i, *v)));
            let (ik, iv) = m.get_index(i).unwrap();
            assert_eq!((&ik[..], iv), (&k[..], v));
        }
        assert!(m.get(b"absent").is_none());
        // Long (heap) keys too.
        let long = vec![b'l'; 100];
        m.insert_new(long.as_slice().into(), 1);
        assert_eq!(m.get(&long), Some(&1));
        while !m.is_empty() {
            m.swap_remove_index(fastrand::usize(..m.len()));
        }
        assert!(m.get(&long).is_none());
    }
}
