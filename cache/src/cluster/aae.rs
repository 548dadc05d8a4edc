//! Anti-entropy between two copies of ranges (Cassandra's repair, Riak's active anti-entropy):
//! each side hashes its copy of a range into a fixed tree, the two compare it from the root
//! down, and only the key states under leaves that differ travel.
//!
//! The tree of a range has [`FANOUT`] inner nodes under its root and [`FANOUT`] leaves under
//! each. A key falls in the leaf its key hash names and adds the hash of (key, version) to it,
//! its tombstone's version for a deleted key; a node's hash is the XOR of the hashes under it,
//! so both sides build the whole tree in one walk of the keyspace. Comparing costs a round trip
//! per level and 8 bytes per hash compared: with 1 % of the keys changed, a range of 400 keys
//! differs in about 4 leaves and moves about 300 bytes of hashes, not its 400 states.
//!
//! The exchange ([`super::proto::KIND_SYNC`]) pulls into the node that asks: it learns which
//! leaves differ and receives the answering node's states under them, applied if newer
//! ([`super::apply::apply_state`]). The other direction is the other node's own sync.

use std::collections::{BTreeMap, HashSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::group_of;
use super::proto::ProtoError;
use crate::db::Db;
use crate::slot::key_slot;

/// Inner nodes under a range's root, and leaves under each inner node.
pub const FANOUT: usize = 16;
/// Leaves per range.
pub const LEAVES: usize = FANOUT * FANOUT;

/// The 64-bit hash of a key: which leaf it falls in, and with its version what it adds there.
/// BLAKE3, not the process's randomly seeded hasher: both sides must agree.
fn key_hash(key: &[u8]) -> u64 {
    let h = blake3::hash(key);
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// SplitMix64's finaliser: spreads a version's bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The leaf a key falls in (its key hash's top byte).
pub fn leaf_of(key: &[u8]) -> usize {
    (key_hash(key) >> 56) as usize
}

/// A copy holding at most this many keys (and tombstones) of a range is sent whole rather than
/// compared: its states cost less than the hashes of a descent through a tree that differs
/// almost everywhere (a copy made of the few writes of a cut, say).
pub const SEND_WHOLE_MAX: u32 = 16;

/// The hash trees of some ranges of one copy.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trees {
    leaves: BTreeMap<u16, Box<[u64; LEAVES]>>,
    counts: BTreeMap<u16, u32>,
}

/// What an answering node says of its copy of a range first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    /// The range.
    pub group: u16,
    /// Its tree's root hash.
    pub hash: u64,
    /// Keys and tombstones in it.
    pub count: u32,
}

impl Trees {
    /// The trees of `groups` in `db`: live keys at their versions, deleted and expired keys at
    /// their tombstones'. Ranges without any key have all-zero trees.
    pub fn of(db: &Db, groups: &[u16], now: u64) -> Self {
        let mut want = [false; super::view::GROUPS];
        let mut leaves = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for g in groups {
            want[usize::from(*g)] = true;
            leaves.insert(*g, Box::new([0u64; LEAVES]));
            counts.insert(*g, 0u32);
        }
        let mut add = |key: &[u8], ver: u64| {
            let g = group_of(key_slot(key));
            if want[usize::from(g)] {
                let kh = key_hash(key);
                if let Some(l) = leaves.get_mut(&g) {
                    l[(kh >> 56) as usize] ^= mix(kh ^ mix(ver));
                }
                if let Some(c) = counts.get_mut(&g) {
                    *c = c.saturating_add(1);
                }
            }
        };
        db.for_each_live(now, |k, ver| add(k, ver));
        db.for_each_tombstone(now, |k, ver| add(k, ver));
        Self { leaves, counts }
    }

    /// Range `g`'s root: its hash and how many keys and tombstones it holds.
    pub fn root_of(&self, g: u16) -> Root {
        Root {
            group: g,
            hash: self.root(g),
            count: self.counts.get(&g).copied().unwrap_or(0),
        }
    }

    /// The ranges held.
    pub fn groups(&self) -> impl Iterator<Item = u16> + '_ {
        self.leaves.keys().copied()
    }

    /// Range `g`'s root hash (0 if not held).
    pub fn root(&self, g: u16) -> u64 {
        self.leaves
            .get(&g)
            .map_or(0, |l| l.iter().fold(0, |a, h| a ^ h))
    }

    /// The hashes of range `g`'s inner nodes.
    pub fn inner(&self, g: u16) -> [u64; FANOUT] {
        let mut out = [0u64; FANOUT];
        if let Some(l) = self.leaves.get(&g) {
            for (i, o) in out.iter_mut().enumerate() {
                *o = l[i * FANOUT..(i + 1) * FANOUT].iter().fold(0, |a, h| a ^ h);
            }
        }
        out
    }

    /// The hashes of the leaves under inner node `i` of range `g`.
    pub fn leaves_under(&self, g: u16, i: usize) -> [u64; FANOUT] {
        let mut out = [0u64; FANOUT];
        if let Some(l) = self.leaves.get(&g) {
            out.copy_from_slice(&l[i * FANOUT..(i + 1) * FANOUT]);
        }
        out
    }
}

/// Ids a mask list may name: ranges ([`GROUP_IDS`]) or inner nodes ([`NODE_IDS`]).
pub const GROUP_IDS: u16 = super::view::GROUPS as u16;
/// Inner nodes of every range, numbered by [`node_id`].
pub const NODE_IDS: u16 = (super::view::GROUPS * FANOUT) as u16;

/// The id of inner node `i` of range `g` in a mask list.
pub fn node_id(g: u16, i: usize) -> u16 {
    g * FANOUT as u16 + i as u16
}

/// The range and inner node an id names.
pub fn node_of(id: u16) -> (u16, usize) {
    (id / FANOUT as u16, usize::from(id) % FANOUT)
}

/// Bit `i` set for each `i` where `a[i] != b[i]`.
pub fn differing(a: &[u64; FANOUT], b: &[u64; FANOUT]) -> u16 {
    let mut m = 0u16;
    for i in 0..FANOUT {
        if a[i] != b[i] {
            m |= 1 << i;
        }
    }
    m
}

/// Leaves of ranges, as the set the answering node dumps the keys of.
pub type LeafSet = HashSet<(u16, u8)>;

/// Bytes of one [`Root`] on the wire.
const ROOT_LEN: usize = 14;

/// `[u16 range][u64 hash][u32 count]...`
pub fn encode_roots(roots: &[Root]) -> Vec<u8> {
    let mut b = Vec::with_capacity(roots.len() * ROOT_LEN);
    for r in roots {
        b.put_u16(r.group);
        b.put_u64(r.hash);
        b.put_u32(r.count);
    }
    b
}

/// Decodes [`encode_roots`]: at most as many entries as ranges, each a range that exists.
pub fn decode_roots(mut b: &[u8]) -> Result<Vec<Root>, ProtoError> {
    if !b.len().is_multiple_of(ROOT_LEN) || b.len() / ROOT_LEN > super::view::GROUPS {
        return Err(ProtoError("bad root list"));
    }
    let mut out = Vec::with_capacity(b.len() / ROOT_LEN);
    while b.has_remaining() {
        let group = b.get_u16();
        if usize::from(group) >= super::view::GROUPS {
            return Err(ProtoError("range out of bounds"));
        }
        let (hash, count) = (b.get_u64(), b.get_u32());
        out.push(Root { group, hash, count });
    }
    Ok(out)
}

/// `[u16 range][u16 mask]...`: which inner nodes (or leaves under one inner node) of each
/// range to go into.
pub fn encode_masks(masks: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(masks.len() * 4);
    for (g, m) in masks {
        b.put_u16(*g);
        b.put_u16(*m);
    }
    b
}

/// Decodes [`encode_masks`]: at most `max` entries, ids below `ids`, masks not empty.
pub fn decode_masks(mut b: &[u8], max: usize, ids: u16) -> Result<Vec<(u16, u16)>, ProtoError> {
    if !b.len().is_multiple_of(4) || b.len() / 4 > max {
        return Err(ProtoError("bad mask list"));
    }
    let mut out = Vec::with_capacity(b.len() / 4);
    while b.has_remaining() {
        let (g, m) = (b.get_u16(), b.get_u16());
        if g >= ids || m == 0 {
            return Err(ProtoError("bad mask entry"));
        }
        out.push((g, m));
    }
    Ok(out)
}

/// Hashes, 8 bytes each.
pub fn encode_hashes(hashes: &[u64]) -> Bytes {
    let mut b = BytesMut::with_capacity(hashes.len() * 8);
    for h in hashes {
        b.put_u64(*h);
    }
    b.freeze()
}

/// Decodes exactly `n` hashes.
pub fn decode_hashes(mut b: &[u8], n: usize) -> Result<Vec<u64>, ProtoError> {
    if b.len() != n.saturating_mul(8) {
        return Err(ProtoError("wrong number of hashes"));
    }
    let mut out = Vec::with_capacity(n);
    while b.has_remaining() {
        out.push(b.get_u64());
    }
    Ok(out)
}

/// The inner nodes `(range, node)` that masks of inner nodes per range name, in order: the
/// order both sides send and read their leaves in.
pub fn nodes_under(masks: &[(u16, u16)]) -> Vec<(u16, usize)> {
    masks
        .iter()
        .flat_map(|(g, m)| bits(*m).map(move |i| (*g, i)))
        .collect()
}

/// Iterates the set bits of a mask, lowest first.
pub fn bits(m: u16) -> impl Iterator<Item = usize> {
    (0..FANOUT).filter(move |i| m & (1 << i) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Session, now_ms};

    fn trees(s: &Session, groups: &[u16]) -> Trees {
        Trees::of(&s.shared().db.lock(), groups, now_ms())
    }

    #[test]
    fn equal_copies_have_equal_trees_and_one_change_differs_in_one_leaf() {
        let all: Vec<u16> = (0..super::super::view::GROUPS as u16).collect();
        let (mut a, mut b) = (Session::new(), Session::new());
        for s in [&mut a, &mut b] {
            for i in 0..2000 {
                s.cmd(&["SET", &format!("k{i}"), "v"]);
            }
            // Versions as a cluster would give them.
            let mut db = s.shared().db.lock();
            for i in 0..2000 {
                db.set_version(format!("k{i}").as_bytes(), 100 + i as u64, now_ms());
            }
        }
        assert_eq!(trees(&a, &all), trees(&b, &all));
        // A newer version of one key, then a delete of another: one leaf each.
        b.shared().db.lock().set_version(b"k7", 5000, now_ms());
        b.cmd(&["DEL", "k8"]);
        b.shared().db.lock().set_version(b"k8", 5001, now_ms());
        let (ta, tb) = (trees(&a, &all), trees(&b, &all));
        let mut leaves = Vec::new();
        for g in ta.groups() {
            if ta.root(g) == tb.root(g) {
                continue;
            }
            let m = differing(&ta.inner(g), &tb.inner(g));
            for i in bits(m) {
                for j in bits(differing(&ta.leaves_under(g, i), &tb.leaves_under(g, i))) {
                    leaves.push((g, i * FANOUT + j));
                }
            }
        }
        let mut want: Vec<(u16, usize)> = ["k7", "k8"]
            .iter()
            .map(|k| (group_of(key_slot(k.as_bytes())), leaf_of(k.as_bytes())))
            .collect();
        want.sort_unstable();
        leaves.sort_unstable();
        assert_eq!(leaves, want);
    }

    #[test]
    fn decoders_refuse_what_they_cannot_hold() {
        let root = |group, hash| Root {
            group,
            hash,
            count: 3,
        };
        assert_eq!(
            decode_roots(&encode_roots(&[root(3, 7), root(255, 9)])).unwrap(),
            vec![root(3, 7), root(255, 9)]
        );
        assert!(decode_roots(&[0; 13]).is_err());
        assert!(decode_roots(&encode_roots(&[root(256, 1)])).is_err());
        assert!(decode_roots(&vec![0; ROOT_LEN * 257]).is_err());
        assert_eq!(
            decode_masks(&encode_masks(&[(1, 2)]), 4, GROUP_IDS).unwrap(),
            vec![(1, 2)]
        );
        assert!(decode_masks(&encode_masks(&[(1, 0)]), 4, GROUP_IDS).is_err());
        assert!(decode_masks(&encode_masks(&[(1, 1), (2, 1)]), 1, GROUP_IDS).is_err());
        assert!(decode_masks(&encode_masks(&[(256, 1)]), 1, GROUP_IDS).is_err());
        assert!(decode_masks(&encode_masks(&[(4095, 1)]), 1, NODE_IDS).is_ok());
        assert_eq!(node_of(node_id(255, 15)), (255, 15));
        assert_eq!(
            decode_hashes(&encode_hashes(&[1, 2]), 2).unwrap(),
            vec![1, 2]
        );
        assert!(decode_hashes(&encode_hashes(&[1, 2]), 3).is_err());
    }
}
