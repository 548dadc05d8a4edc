//! An open blob and its verified reads.

use std::fs::File;
use std::io;
use std::sync::Arc;

use std::os::unix::fs::FileExt;

use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::sync::{ReadAt, valid_ranges};
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
    /// A blob still arriving from peers could not be completed (every provider failed, or
    /// the wait timed out).
    #[error("blob {0} could not be fetched: {1}")]
    Unavailable(Hash, String),
}

/// A blob still arriving from peers: reads wait until the chunk groups they cover have been
/// verified (see `crate::fetch`).
pub trait Arriving: Send + Sync + 'static {
    /// The blob's hash.
    fn hash(&self) -> Hash;
    /// Its size (proven before the blob is handed out).
    fn size(&self) -> u64;
    /// Verified bytes `offset..offset+len` (clamped), waiting for them. Blocking.
    fn read_verified(&self, offset: u64, len: u64) -> Result<Bytes, ReadError>;
    /// The verified bytes from `offset` that have arrived, at most `len`: waits only for the
    /// first chunk group. Blocking.
    fn read_some(&self, offset: u64, len: u64) -> Result<Bytes, ReadError>;
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
    /// A blob being fetched: served as its groups are verified.
    Arriving(Arc<dyn Arriving>),
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory { hash, bytes } => write!(f, "Blob::Memory({hash}, {} B)", bytes.len()),
            Self::File(b) => write!(f, "Blob::File({}, {} B)", b.hash, b.size),
            Self::Arriving(b) => write!(f, "Blob::Arriving({}, {} B)", b.hash(), b.size()),
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
            Self::Arriving(b) => b.hash(),
        }
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::Memory { bytes, .. } => bytes.len() as u64,
            Self::File(b) => b.size,
            Self::Arriving(b) => b.size(),
        }
    }

    /// The hash pair of an outboard node (`None` for in-memory blobs, which keep none).
    pub(crate) fn load_parent(
        &self,
        node: bao_tree::TreeNode,
    ) -> io::Result<Option<(blake3::Hash, blake3::Hash)>> {
        use bao_tree::io::sync::Outboard;
        match self {
            Self::Memory { .. } | Self::Arriving(_) => Ok(None),
            Self::File(b) => b.outboard.load(node),
        }
    }

    /// Like [`Blob::read_verified`], but a blob still arriving returns only what has been
    /// verified so far from `offset` (at least one byte unless `offset` is at the end).
    pub fn read_some(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        match self {
            Self::Arriving(b) => b.read_some(offset, len),
            _ => self.read_verified(offset, len),
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
            Self::Arriving(b) => b.read_verified(offset, len),
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
        let mut buf = BytesMut::zeroed((g_end - g_start) as usize);
        // One read into memory; verification then checks exactly these bytes (never the file
        // again), so what we return is what was hashed.
        if let Err(e) = FileExt::read_exact_at(&self.file, &mut buf, g_start) {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                // The file shrank under us.
                self.drop_corrupt();
                return Err(ReadError::Corrupt(self.hash));
            }
            return Err(e.into());
        }
        let first = ChunkNum::full_chunks(g_start);
        let last = ChunkNum::chunks(g_end);
        let ranges = ChunkRanges::from(first..last);
        let window = Window {
            start: g_start,
            data: &buf,
        };
        // Each valid range comes out in order; together they must cover the whole window.
        let mut covered = first;
        for range in valid_ranges(&self.outboard, window, &ranges) {
            let range = range?;
            if range.start > covered {
                break;
            }
            covered = covered.max(range.end);
        }
        if covered < last {
            self.drop_corrupt();
            return Err(ReadError::Corrupt(self.hash));
        }
        let skip = (offset - g_start) as usize;
        let mut out = buf.freeze();
        Ok(out.split_off(skip).split_to((end - offset) as usize))
    }
}

/// Bytes read from `start` of a blob, seen by the validator at their offsets in the blob.
struct Window<'a> {
    start: u64,
    data: &'a [u8],
}

impl ReadAt for Window<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Some(off) = pos.checked_sub(self.start) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read before the window",
            ));
        };
        let off = usize::try_from(off)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let n = buf.len().min(self.data.len() - off);
        buf[..n].copy_from_slice(&self.data[off..off + n]);
        Ok(n)
    }
}
