//! The sorted set: a member -> score table and an indexable skiplist ordered by
//! (score, member), as Redis keeps it (`t_zset.c`). Each forward link carries its span (how
//! many nodes it jumps), so a member's rank and the member at a rank are found in O(log n),
//! and every range read is O(log n + k).
//!
//! Nodes live in an arena (`Vec`) addressed by `u32` indices with a free list: no unsafe code,
//! links of 4-byte indices and 4-byte spans (so at most 2^32 - 1 members, far beyond any
//! memory this process would have). A node is 56 bytes (member pointer, score, back link,
//! level 0 inline, a pointer to its upper levels) plus 8 bytes per upper level, which only one
//! node in four has (p = 1/4, as in Redis); the member's bytes are held twice, by the node
//! and by the member -> score table.

use std::cmp::Ordering;

use hashbrown::HashMap;

use crate::value::{Bytes, ELEM_OVERHEAD};

/// Most levels a node may have (Redis's `ZSKIPLIST_MAXLEVEL`).
const MAX_LEVEL: usize = 32;
/// No node.
const NIL: u32 = u32::MAX;

/// A forward link: the next node at this level and how many nodes it jumps.
#[derive(Debug, Clone, Copy)]
struct Link {
    next: u32,
    span: u32,
}

#[derive(Debug, Clone)]
struct Node {
    member: Bytes,
    score: f64,
    back: u32,
    /// Level 0, inline: three nodes in four have no other level and so no allocation.
    first: Link,
    /// Levels 1 and up.
    upper: Box<[Link]>,
}

impl Node {
    fn level(&self, l: usize) -> Link {
        if l == 0 {
            self.first
        } else {
            self.upper[l - 1]
        }
    }

    fn level_mut(&mut self, l: usize) -> &mut Link {
        if l == 0 {
            &mut self.first
        } else {
            &mut self.upper[l - 1]
        }
    }
}

/// The (score, member) order: scores as C compares them (`-0` equals `0`; scores are never
/// NaN), then members bytewise (Redis's `sdscmp`).
fn cmp(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2)
        .unwrap_or(Ordering::Equal)
        .then_with(|| m1.cmp(m2))
}

/// An indexable skiplist of (score, member), ascending.
#[derive(Debug, Clone)]
pub struct SkipList {
    head: [Link; MAX_LEVEL],
    nodes: Vec<Node>,
    free: Vec<u32>,
    tail: u32,
    level: usize,
    len: usize,
}

impl Default for SkipList {
    fn default() -> Self {
        Self {
            head: [Link { next: NIL, span: 0 }; MAX_LEVEL],
            nodes: Vec::new(),
            free: Vec::new(),
            tail: NIL,
            level: 1,
            len: 0,
        }
    }
}

/// A position in the skiplist, valid until the next write.
pub type Pos = u32;

impl SkipList {
    fn link(&self, x: u32, l: usize) -> Link {
        if x == NIL {
            self.head[l]
        } else {
            self.nodes[x as usize].level(l)
        }
    }

    fn link_mut(&mut self, x: u32, l: usize) -> &mut Link {
        if x == NIL {
            &mut self.head[l]
        } else {
            self.nodes[x as usize].level_mut(l)
        }
    }

    fn random_level() -> usize {
        let mut l = 1;
        // p = 1/4, as Redis's ZSKIPLIST_P.
        while l < MAX_LEVEL && fastrand::u32(..4) == 0 {
            l += 1;
        }
        l
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts (score, member); the caller guarantees the member is not present.
    pub fn insert(&mut self, score: f64, member: Bytes) {
        let mut update = [NIL; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut x = NIL;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.link(x, i);
                if l.next == NIL {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if cmp(n.score, &n.member, score, &member) == Ordering::Less {
                    rank[i] += l.span;
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let level = Self::random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = NIL;
                self.head[i].span = self.len as u32;
            }
            self.level = level;
        }
        let node = Node {
            member,
            score,
            back: NIL,
            first: Link { next: NIL, span: 0 },
            upper: vec![Link { next: NIL, span: 0 }; level - 1].into_boxed_slice(),
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        for i in 0..level {
            let prev = self.link(update[i], i);
            let jumped = rank[0] - rank[i];
            *self.nodes[idx as usize].level_mut(i) = Link {
                next: prev.next,
                span: prev.span - jumped,
            };
            *self.link_mut(update[i], i) = Link {
                next: idx,
                span: jumped + 1,
            };
        }
        // Links above the new node's height now jump one node more.
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            self.link_mut(u, i).span += 1;
        }
        self.nodes[idx as usize].back = update[0];
        let next0 = self.nodes[idx as usize].first.next;
        if next0 == NIL {
            self.tail = idx;
        } else {
            self.nodes[next0 as usize].back = idx;
        }
        self.len += 1;
    }

    /// Removes (score, member); returns the member's bytes if it was there.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> Option<Bytes> {
        let mut update = [NIL; MAX_LEVEL];
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next == NIL {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if cmp(n.score, &n.member, score, member) == Ordering::Less {
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let target = self.link(x, 0).next;
        if target == NIL {
            return None;
        }
        {
            let n = &self.nodes[target as usize];
            if cmp(n.score, &n.member, score, member) != Ordering::Equal {
                return None;
            }
        }
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let l = self.link(u, i);
            if l.next == target {
                let t = self.nodes[target as usize].level(i);
                *self.link_mut(u, i) = Link {
                    next: t.next,
                    span: l.span + t.span - 1,
                };
            } else {
                self.link_mut(u, i).span -= 1;
            }
        }
        let (next0, back) = {
            let n = &self.nodes[target as usize];
            (n.first.next, n.back)
        };
        if next0 == NIL {
            self.tail = back;
        } else {
            self.nodes[next0 as usize].back = back;
        }
        while self.level > 1 && self.head[self.level - 1].next == NIL {
            self.level -= 1;
        }
        self.len -= 1;
        let n = &mut self.nodes[target as usize];
        n.upper = Box::new([]);
        let m = std::mem::take(&mut n.member);
        self.free.push(target);
        if self.len == 0 {
            // Give the arena back when the set empties out.
            self.nodes = Vec::new();
            self.free = Vec::new();
        } else if self.free.len() > 64 && self.free.len() > self.len {
            self.compact();
        }
        Some(m)
    }

    /// Rebuilds the arena without free slots once they outnumber the live nodes, so a set
    /// that shrank holds memory for what it has, not for its peak. Amortized O(1) per removal:
    /// it follows at least `len` removals, and inserting in descending order stops at the head.
    fn compact(&mut self) {
        let mut fresh = SkipList::default();
        fresh.nodes.reserve_exact(self.len);
        let mut p = self.last();
        while let Some(x) = p {
            p = self.prev(x);
            let n = &mut self.nodes[x as usize];
            fresh.insert(n.score, std::mem::take(&mut n.member));
        }
        *self = fresh;
    }

    /// 0-based rank of (score, member), if present.
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let mut r = 0usize;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next == NIL {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if cmp(n.score, &n.member, score, member) != Ordering::Greater {
                    r += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            if x != NIL {
                let n = &self.nodes[x as usize];
                if n.score == score && *n.member == *member {
                    return Some(r - 1);
                }
            }
        }
        None
    }

    /// The node at 0-based rank `r`.
    pub fn at_rank(&self, r: usize) -> Option<Pos> {
        if r >= self.len {
            return None;
        }
        let want = r + 1;
        let mut traversed = 0usize;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next != NIL && traversed + l.span as usize <= want {
                    traversed += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            if traversed == want {
                return Some(x);
            }
        }
        None
    }

    /// The last node (NIL: none) of the prefix for which `before` holds (`before` must be
    /// monotone: true then false), found in O(log n) by descending the levels.
    fn last_of_prefix(&self, before: impl Fn(f64, &[u8]) -> bool) -> Pos {
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next == NIL {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if !before(n.score, &n.member) {
                    break;
                }
                x = l.next;
            }
        }
        x
    }

    /// The first node for which `ge_min` holds (`ge_min` must be monotone: false then true).
    pub fn first_where(&self, ge_min: impl Fn(f64, &[u8]) -> bool) -> Option<Pos> {
        let x = self.last_of_prefix(|s, m| !ge_min(s, m));
        let first = self.link(x, 0).next;
        (first != NIL).then_some(first)
    }

    /// The last node for which `le_max` holds (`le_max` must be monotone: true then false).
    pub fn last_where(&self, le_max: impl Fn(f64, &[u8]) -> bool) -> Option<Pos> {
        let x = self.last_of_prefix(le_max);
        (x != NIL).then_some(x)
    }

    /// The lowest node.
    pub fn first(&self) -> Option<Pos> {
        let f = self.head[0].next;
        (f != NIL).then_some(f)
    }

    /// The highest node.
    pub fn last(&self) -> Option<Pos> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// The node after `p`.
    pub fn next(&self, p: Pos) -> Option<Pos> {
        let n = self.nodes[p as usize].first.next;
        (n != NIL).then_some(n)
    }

    /// The node before `p`.
    pub fn prev(&self, p: Pos) -> Option<Pos> {
        let b = self.nodes[p as usize].back;
        (b != NIL).then_some(b)
    }

    /// (score, member) at `p`.
    pub fn get(&self, p: Pos) -> (f64, &Bytes) {
        let n = &self.nodes[p as usize];
        (n.score, &n.member)
    }

    /// Nodes from `p` on, ascending (or descending when `rev`).
    pub fn walk(&self, p: Option<Pos>, rev: bool) -> Walk<'_> {
        Walk {
            list: self,
            at: p,
            rev,
        }
    }

    /// All nodes, ascending.
    pub fn iter(&self) -> Walk<'_> {
        self.walk(self.first(), false)
    }
}

/// An iterator over skiplist nodes in either direction.
pub struct Walk<'a> {
    list: &'a SkipList,
    at: Option<Pos>,
    rev: bool,
}

impl<'a> Iterator for Walk<'a> {
    type Item = (f64, &'a Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        let p = self.at?;
        self.at = if self.rev {
            self.list.prev(p)
        } else {
            self.list.next(p)
        };
        let n = &self.list.nodes[p as usize];
        Some((n.score, &n.member))
    }
}

/// A sorted set: member -> score, and (score, member) in an indexable skiplist.
#[derive(Debug, Default, Clone)]
pub struct ZSet {
    /// Member -> score.
    pub dict: HashMap<Bytes, f64>,
    /// (score, member), ordered, with ranks.
    pub list: SkipList,
    bytes: usize,
}

/// Bytes a member costs beyond its two copies: its table slot (as any collection element),
/// the 56-byte node, the second copy's allocation header and on average a third of an
/// upper-level allocation.
const MEMBER_OVERHEAD: usize = ELEM_OVERHEAD + 56 + 16;

impl ZSet {
    /// Payload bytes held (both copies of each member plus per-member overhead).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Inserts or updates; returns the previous score. `-0` is kept as given (Redis replies
    /// `-0`) and orders as `0`; an update to an equal score (`0` over `-0`) changes nothing.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        if let Some(old) = self.dict.get_mut(member) {
            let prev = *old;
            if prev != score {
                *old = score;
                let m = self
                    .list
                    .remove(prev, member)
                    .unwrap_or_else(|| member.into());
                self.list.insert(score, m);
            }
            return Some(prev);
        }
        self.bytes += 2 * member.len() + MEMBER_OVERHEAD;
        self.dict.insert(member.into(), score);
        self.list.insert(score, member.into());
        None
    }

    /// Removes a member; true if it existed.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        if let Some(s) = self.dict.remove(member) {
            self.list.remove(s, member);
            self.bytes -= 2 * member.len() + MEMBER_OVERHEAD;
            true
        } else {
            false
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.dict.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    /// A member's score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).copied()
    }

    /// 0-based rank in ascending order, O(log n).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = *self.dict.get(member)?;
        self.list.rank(s, member)
    }

    /// All (member, score) in order, from either end.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: &self.list,
            front: self.list.first(),
            back: self.list.last(),
            left: self.list.len(),
        }
    }

    /// Members with `min <= score < max`, ascending, starting in O(log n).
    pub fn range_from(&self, min: f64, max: f64) -> impl Iterator<Item = (&[u8], f64)> {
        self.list
            .walk(self.list.first_where(|s, _| s >= min), false)
            .take_while(move |(s, _)| *s < max)
            .map(|(s, m)| (&m[..], s))
    }
}

/// A double-ended iterator over a sorted set's (member, score), ascending.
pub struct Iter<'a> {
    list: &'a SkipList,
    front: Option<Pos>,
    back: Option<Pos>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let p = self.front?;
        self.left -= 1;
        self.front = self.list.next(p);
        let (s, m) = self.list.get(p);
        Some((&m[..], s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let p = self.back?;
        self.left -= 1;
        self.back = self.list.prev(p);
        let (s, m) = self.list.get(p);
        Some((&m[..], s))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_set_gives_its_arena_back() {
        let mut z = ZSet::default();
        for i in 0..1000 {
            z.insert(format!("m{i:04}").as_bytes(), f64::from(i % 7));
        }
        for i in 0..900 {
            assert!(z.remove(format!("m{i:04}").as_bytes()));
        }
        assert!(
            z.list.nodes.len() <= 2 * z.len() + 65,
            "{}",
            z.list.nodes.len()
        );
        let mut want: Vec<(f64, String)> = (900..1000)
            .map(|i| (f64::from(i % 7), format!("m{i:04}")))
            .collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (r, (s, m)) in want.iter().enumerate() {
            assert_eq!(z.rank(m.as_bytes()), Some(r));
            assert_eq!(z.score(m.as_bytes()), Some(*s));
        }
        let back: Vec<&[u8]> = z.iter().rev().map(|(m, _)| m).collect();
        assert_eq!(back.len(), 100);
        assert_eq!(back[0], want[99].1.as_bytes());
    }

    #[test]
    fn node_size_is_as_documented() {
        assert_eq!(std::mem::size_of::<Node>(), 56);
    }

    #[test]
    fn range_from_is_half_open() {
        let mut z = ZSet::default();
        for (s, m) in [(1.0, "a"), (2.0, "b"), (2.0, "c"), (3.0, "d")] {
            z.insert(m.as_bytes(), s);
        }
        let got: Vec<&[u8]> = z.range_from(2.0, 3.0).map(|(m, _)| m).collect();
        assert_eq!(got, vec![&b"b"[..], b"c"]);
    }
}
