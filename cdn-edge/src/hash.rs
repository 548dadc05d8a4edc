//! The content address of a blob: its BLAKE3 hash (the root of its bao tree).

use std::fmt;
use std::str::FromStr;

/// A BLAKE3 hash, the address of a blob. Shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The mesh DHT key under which nodes holding this blob announce themselves as providers
    /// (`/proxima/blob/` followed by the 32 hash bytes). DNS steering asks for the providers of
    /// a site's manifest under this key; the fetcher asks for a blob's.
    pub fn provider_key(&self) -> Vec<u8> {
        let mut key = b"/proxima/blob/".to_vec();
        key.extend_from_slice(&self.0);
        key
    }

    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn to_blake3(self) -> blake3::Hash {
        blake3::Hash::from_bytes(self.0)
    }

    pub(crate) fn from_blake3(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the input length.
        let _ = hex::encode_to_slice(self.0, &mut buf);
        f.write_str(std::str::from_utf8(&buf).unwrap_or_default())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// Text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a BLAKE3 hash (expected 64 hex digits)")]
pub struct ParseHashError;

impl FromStr for Hash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(ParseHashError);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseHashError)?;
        Ok(Self(out))
    }
}

impl From<[u8; 32]> for Hash {
    fn from(b: [u8; 32]) -> Self {
        Self(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = Hash::of(b"hello");
        let s = h.to_string();
        assert_eq!(s, blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(s.parse::<Hash>(), Ok(h));
        assert!("zz".parse::<Hash>().is_err());
        assert!(s.to_uppercase().parse::<Hash>().is_ok());
        assert!(format!("{s}0").parse::<Hash>().is_err());
    }
}

/// Incremental hashing, for callers that verify a stream.
#[derive(Debug, Default, Clone)]
pub struct Hasher(blake3::Hasher);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash of everything added.
    pub fn finalize(&self) -> Hash {
        Hash::from_blake3(self.0.finalize())
    }
}
