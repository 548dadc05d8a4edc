//! An open blob and its verified reads.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bao_tree::io::BaoContentItem;
use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::sync::{DecodeResponseIter, encode_ranges};
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use bytes::{Bytes, BytesMut};

use super::{BLOCK_SIZE, Inner, Store};
use crate::Hash;

/// A failed read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The bytes on disk do not match the hash; the blob has been dropped from the store.
    #[error("blob {0} failed verification")]
    Corrupt(Hash),
    /// Disk I/O failed.
    #[error("reading a blob: {0}")]
    Io(#[from] io::Error),
}

/// A blob ready to be read. `Memory` holds bytes already verified; `File` verifies every chunk
/// group it reads against the outboard, whose hashes chain up to the blob's hash.
#[derive(Clone)]
pub enum Blob {
    /// Verified bytes in memory.
    Memory {
        /// The blob's hash.
        hash: Hash,
        /// Its bytes.
        bytes: Bytes,
    },
    /// A large blob on disk.
    File(Arc<FileBlob>),
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory { hash, bytes } => write!(f, "Blob::Memory({hash}, {} B)", bytes.len()),
            Self::File(b) => write!(f, "Blob::File({}, {} B)", b.hash, b.size),
        }
    }
}

/// A large blob on disk with its outboard.
pub struct FileBlob {
    hash: Hash,
    size: u64,
    file: File,
    outboard: PostOrderMemOutboard,
    /// Weak: the store caches open blobs, which must not keep the store alive.
    store: std::sync::Weak<Inner>,
}

impl Blob {
    pub(crate) fn memory(hash: Hash, bytes: Bytes) -> Self {
        Self::Memory { hash, bytes }
    }

    pub(crate) fn file(
        hash: Hash,
        size: u64,
        file: File,
        outboard: Vec<u8>,
        store: &Store,
    ) -> Self {
        let outboard = PostOrderMemOutboard {
            root: hash.to_blake3(),
            tree: BaoTree::new(size, BLOCK_SIZE),
            data: outboard,
        };
        Self::File(Arc::new(FileBlob {
            hash,
            size,
            file,
            outboard,
            store: Arc::downgrade(&store.inner),
        }))
    }

    /// The blob's hash.
    pub fn hash(&self) -> Hash {
        match self {
            Self::Memory { hash, .. } => *hash,
            Self::File(b) => b.hash,
        }
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::Memory { bytes, .. } => bytes.len() as u64,
            Self::File(b) => b.size,
        }
    }

    /// Bytes `offset..offset+len` (clamped to the blob), verified. Blocking for file blobs.
    /// A verification failure drops the blob from the store.
    pub fn read_verified(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        match self {
            Self::Memory { bytes, .. } => {
                let size = bytes.len() as u64;
                let start = offset.min(size) as usize;
                let end = offset.saturating_add(len).min(size) as usize;
                Ok(bytes.slice(start..end))
            }
            Self::File(b) => b.read_verified(offset, len),
        }
    }
}

impl FileBlob {
    fn drop_corrupt(&self) {
        if let Some(inner) = self.store.upgrade() {
            Store { inner }.drop_corrupt(self.hash);
        }
    }

    fn read_verified(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        // Whole chunk groups covering the request: the unit the outboard can verify.
        let group = BLOCK_SIZE.bytes() as u64;
        let g_start = offset / group * group;
        let g_end = end.div_ceil(group).saturating_mul(group).min(self.size);
        let ranges = ChunkRanges::from(ChunkNum::full_chunks(g_start)..ChunkNum::chunks(g_end));
        // Encode (parents + data, unverified) and decode against the root: every leaf that comes
        // out has been hashed and checked up the tree to the blob's hash.
        let mut encoded = Vec::with_capacity((g_end - g_start) as usize + 4096);
        match encode_ranges(&self.file, &self.outboard, &ranges, &mut encoded) {
            Ok(()) => {}
            Err(e) => {
                let e = io::Error::from(e);
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    // The file shrank under us: treat as corruption.
                    self.drop_corrupt();
                    return Err(ReadError::Corrupt(self.hash));
                }
                return Err(e.into());
            }
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        let decoder = DecodeResponseIter::new(
            self.outboard.root,
            self.outboard.tree,
            io::Cursor::new(&encoded),
            &ranges,
        );
        for item in decoder {
            match item {
                Ok(BaoContentItem::Parent(_)) => {}
                Ok(BaoContentItem::Leaf(leaf)) => {
                    let l_start = leaf.offset;
                    let l_end = l_start + leaf.data.len() as u64;
                    let s = offset.max(l_start);
                    let e = end.min(l_end);
                    if s < e {
                        out.extend_from_slice(
                            &leaf.data[(s - l_start) as usize..(e - l_start) as usize],
                        );
                    }
                }
                Err(_) => {
                    self.drop_corrupt();
                    return Err(ReadError::Corrupt(self.hash));
                }
            }
        }
        if out.len() as u64 != end - offset {
            self.drop_corrupt();
            return Err(ReadError::Corrupt(self.hash));
        }
        Ok(out.freeze())
    }
}
