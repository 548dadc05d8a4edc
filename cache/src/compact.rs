//! [`CompactBytes`]: the byte string of the keyspace's keys and string values. Up to
//! [`INLINE_CAP`] (23) bytes live inside the 24-byte value itself, with no heap allocation; a
//! longer string is one exact-size heap allocation (a `Box<[u8]>`).
//!
//! The layout needs no `unsafe`: the inline length is an enum of the 24 lengths 0..=23, so the
//! compiler uses its 232 unused byte values as the enum's discriminant (niche filling) and
//! places the heap variant's `Box<[u8]>` (16 bytes, 8-aligned) beside that byte. A
//! [`crate::value::Value`] holding a `CompactBytes` is still 24 bytes: its other variants
//! (one `Box` each) take more of the same niche. The tests assert the sizes.
//!
//! It dereferences, borrows, compares and hashes exactly as `[u8]`, so maps keyed by it are
//! looked up with a plain `&[u8]`.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};

/// The longest string kept inline.
pub const INLINE_CAP: usize = 23;

/// Heap bytes a `CompactBytes` of `len` bytes holds (see [`CompactBytes::heap_size`]).
pub fn heap_size_for(len: usize) -> usize {
    if len <= INLINE_CAP {
        0
    } else {
        ((len + 8 + 15) & !15).max(32)
    }
}

/// The length of an inline string: an enum rather than a `u8` so that the byte values it
/// cannot take (24..=255) are free for the compiler to encode the heap variant (and the other
/// variants of an enum holding a `CompactBytes`) in the same byte.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Len {
    L0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
    L16,
    L17,
    L18,
    L19,
    L20,
    L21,
    L22,
    L23,
}

const LENS: [Len; INLINE_CAP + 1] = [
    Len::L0,
    Len::L1,
    Len::L2,
    Len::L3,
    Len::L4,
    Len::L5,
    Len::L6,
    Len::L7,
    Len::L8,
    Len::L9,
    Len::L10,
    Len::L11,
    Len::L12,
    Len::L13,
    Len::L14,
    Len::L15,
    Len::L16,
    Len::L17,
    Len::L18,
    Len::L19,
    Len::L20,
    Len::L21,
    Len::L22,
    Len::L23,
];

#[derive(Clone)]
enum Repr {
    Inline(Len, [u8; INLINE_CAP]),
    Heap(Box<[u8]>),
}

/// A byte string stored inline up to [`INLINE_CAP`] bytes, else in one heap allocation.
#[derive(Clone)]
pub struct CompactBytes(Repr);

impl CompactBytes {
    /// The empty string.
    pub const fn empty() -> Self {
        Self(Repr::Inline(Len::L0, [0; INLINE_CAP]))
    }

    /// A copy of `s`.
    pub fn new(s: &[u8]) -> Self {
        if s.len() <= INLINE_CAP {
            let mut data = [0; INLINE_CAP];
            data[..s.len()].copy_from_slice(s);
            Self(Repr::Inline(LENS[s.len()], data))
        } else {
            Self(Repr::Heap(s.into()))
        }
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(len, data) => &data[..*len as usize],
            Repr::Heap(b) => b,
        }
    }

    /// The bytes, mutable (the length does not change).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Repr::Inline(len, data) => &mut data[..*len as usize],
            Repr::Heap(b) => b,
        }
    }

    /// Whether the bytes are stored inline (no heap allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(..))
    }

    /// Heap bytes this string holds: 0 inline, else its allocation as glibc's malloc sizes it
    /// (the length plus an 8-byte header, rounded up to 16, at least 32).
    pub fn heap_size(&self) -> usize {
        heap_size_for(self.len())
    }

    /// The bytes as a vector.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Inline(len, data) => data[..len as usize].to_vec(),
            Repr::Heap(b) => b.into_vec(),
        }
    }

    /// Appends `more` (APPEND); an inline string that outgrows [`INLINE_CAP`] moves to the heap.
    pub fn extend_from_slice(&mut self, more: &[u8]) {
        let old = self.len();
        let new = old + more.len();
        if let Repr::Inline(len, data) = &mut self.0
            && new <= INLINE_CAP
        {
            data[old..new].copy_from_slice(more);
            *len = LENS[new];
            return;
        }
        let mut v = Vec::with_capacity(new);
        v.extend_from_slice(self.as_slice());
        v.extend_from_slice(more);
        *self = v.into();
    }

    /// Grows or shrinks to `new_len`, padding with `fill` (SETRANGE, SETBIT); the string moves
    /// inline or to the heap as its new length requires.
    pub fn resize(&mut self, new_len: usize, fill: u8) {
        let old = self.len();
        if new_len == old {
            return;
        }
        if let Repr::Inline(len, data) = &mut self.0
            && new_len <= INLINE_CAP
        {
            if new_len > old {
                data[old..new_len].fill(fill);
            } else {
                data[new_len..old].fill(0);
            }
            *len = LENS[new_len];
            return;
        }
        let mut v = std::mem::take(self).into_vec();
        v.resize(new_len, fill);
        *self = v.into();
    }
}

impl Default for CompactBytes {
    fn default() -> Self {
        Self::empty()
    }
}

impl Deref for CompactBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for CompactBytes {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl AsRef<[u8]> for CompactBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Hash for CompactBytes {
    /// Hashes as the `[u8]` it holds (required by `Borrow<[u8]>`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for CompactBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CompactBytes {}

impl PartialEq<[u8]> for CompactBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialOrd for CompactBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CompactBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl From<&[u8]> for CompactBytes {
    fn from(s: &[u8]) -> Self {
        Self::new(s)
    }
}

impl<const N: usize> From<&[u8; N]> for CompactBytes {
    fn from(s: &[u8; N]) -> Self {
        Self::new(s)
    }
}

impl From<&str> for CompactBytes {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes())
    }
}

impl From<Vec<u8>> for CompactBytes {
    /// Keeps the vector's allocation (shrunk to fit) when the string is too long for inline.
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE_CAP {
            Self::new(&v)
        } else {
            Self(Repr::Heap(v.into_boxed_slice()))
        }
    }
}

impl From<Box<[u8]>> for CompactBytes {
    fn from(b: Box<[u8]>) -> Self {
        if b.len() <= INLINE_CAP {
            Self::new(&b)
        } else {
            Self(Repr::Heap(b))
        }
    }
}

impl From<&CompactBytes> for Box<[u8]> {
    fn from(b: &CompactBytes) -> Self {
        b.as_slice().into()
    }
}

impl From<CompactBytes> for Box<[u8]> {
    fn from(b: CompactBytes) -> Self {
        match b.0 {
            Repr::Inline(len, data) => data[..len as usize].into(),
            Repr::Heap(b) => b,
        }
    }
}

impl From<CompactBytes> for Vec<u8> {
    fn from(b: CompactBytes) -> Self {
        b.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<CompactBytes>(), 24);
        assert_eq!(std::mem::size_of::<Option<CompactBytes>>(), 24);
        assert_eq!(std::mem::size_of::<crate::value::Value>(), 24);
        assert_eq!(std::mem::size_of::<Option<crate::value::Value>>(), 24);
    }

    #[test]
    fn inline_heap_boundary() {
        for n in [0, 1, 15, 22, 23, 24, 25, 100] {
            let s: Vec<u8> = (0..n as u8).collect();
            for b in [
                CompactBytes::new(&s),
                CompactBytes::from(s.clone()),
                CompactBytes::from(s.clone().into_boxed_slice()),
            ] {
                assert_eq!(&b[..], &s[..]);
                assert_eq!(b.len(), n);
                assert_eq!(b.is_inline(), n <= INLINE_CAP, "{n}");
                assert_eq!(b.heap_size() == 0, n <= INLINE_CAP);
                assert!(b.is_inline() || (n + 8..=n + 24).contains(&b.heap_size()));
                assert_eq!(b.clone().into_vec(), s);
                assert_eq!(Box::<[u8]>::from(b), s.clone().into_boxed_slice());
            }
        }
    }

    #[test]
    fn hashes_and_compares_as_a_slice() {
        let h = hashbrown::DefaultHashBuilder::default();
        let std_h = std::collections::hash_map::RandomState::new();
        for n in [0, 3, 23, 24, 40] {
            let s: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let b = CompactBytes::new(&s);
            assert_eq!(h.hash_one(&b), h.hash_one(&s[..]));
            assert_eq!(std_h.hash_one(&b), std_h.hash_one(&s[..]));
            assert!(b == s[..]);
        }
        let mut m: hashbrown::HashMap<CompactBytes, u32> = Default::default();
        m.insert(b"short".into(), 1);
        m.insert(CompactBytes::new(&[b'x'; 50]), 2);
        assert_eq!(m.get(&b"short"[..]), Some(&1));
        assert_eq!(m.get(&[b'x'; 50][..]), Some(&2));
        assert!(m.get(&b"shor"[..]).is_none());
        assert!(CompactBytes::from("a") < CompactBytes::from("ab"));
        assert!(CompactBytes::new(&[b'z'; 30]) > CompactBytes::from("y"));
    }

    #[test]
    fn append_crosses_to_the_heap() {
        let mut b = CompactBytes::from("0123456789");
        b.extend_from_slice(b"0123456789");
        assert!(b.is_inline());
        b.extend_from_slice(b"abc");
        assert_eq!(b.len(), 23);
        assert!(b.is_inline());
        b.extend_from_slice(b"d");
        assert!(!b.is_inline());
        assert_eq!(&b[..], b"01234567890123456789abcd");
        b.extend_from_slice(b"e");
        assert_eq!(&b[..], b"01234567890123456789abcde");
        let mut e = CompactBytes::empty();
        e.extend_from_slice(&[7; 30]);
        assert_eq!(&e[..], &[7; 30]);
    }

    #[test]
    fn resize_and_in_place_writes() {
        // SETRANGE/SETBIT grow a short value with zeros, then write into it.
        let mut b = CompactBytes::from("ab");
        b.resize(10, 0);
        assert!(b.is_inline());
        assert_eq!(&b[..], b"ab\0\0\0\0\0\0\0\0");
        b[9] = b'z';
        b.resize(23, 0);
        assert!(b.is_inline());
        b.resize(24, 1);
        assert!(!b.is_inline());
        assert_eq!(b.len(), 24);
        assert_eq!(b[9], b'z');
        assert_eq!(b[23], 1);
        b[23] = 2;
        assert_eq!(b[23], 2);
        // Shrinking back inline.
        b.resize(3, 0);
        assert!(b.is_inline());
        assert_eq!(&b[..], b"ab\0");
        // Growing back exposes zeros, not stale bytes.
        b.resize(10, 0);
        assert_eq!(&b[..], b"ab\0\0\0\0\0\0\0\0");
        b.resize(10, 0);
        assert_eq!(b.len(), 10);
    }
}
