//! The bao encoding of a response, and its verifying decoder.
//!
//! Both sides walk the same pre-order sequence of items (bao-tree's [`ResponseIter`] over the
//! tree of the blob's size and the requested chunk groups): a parent is the 64-byte pair of its
//! children's hashes, a leaf is one 16 KiB chunk group. The decoder keeps a stack of expected
//! hashes that starts at the blob's hash: every parent and every leaf must hash to the top of
//! the stack, so the first altered byte fails the group that holds it, before it is used.
//!
//! The decoder is pure (no I/O): it takes frame payloads and returns verified leaves and
//! parents, which is also what the fuzz target drives.

use std::collections::VecDeque;

use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::sync::Outboard;
use bao_tree::iter::{BaoChunk, ResponseIter};
use bao_tree::{BaoTree, ChunkNum, ChunkRanges, TreeNode};
use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};
use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{self, Frame, Request, Status, WireError};
use crate::Hash;
use crate::store::{BLOCK_SIZE, Blob, INLINE_MAX, ReadError};

/// Bytes of one chunk group.
pub const GROUP: u64 = 16 * 1024;
/// Chunks (1 KiB) per group.
const CHUNKS_PER_GROUP: u64 = 16;
/// Data frames are cut at about this many bytes of items.
const TARGET_FRAME: usize = 256 * 1024;
/// Verified bytes read from the source at once.
const READ_WINDOW: u64 = 1 << 20;

/// Number of chunk groups of a blob of `size` bytes (an empty blob has one, empty).
pub fn groups(size: u64) -> u64 {
    size.div_ceil(GROUP).max(1)
}

/// The chunk ranges a response covers, in the order they are sent: the last group's proof
/// first when asked for (and the blob has more than one group), then the requested groups
/// clipped to the blob.
pub fn sections(size: u64, req: &Request) -> Vec<ChunkRanges> {
    let n = groups(size);
    let chunks = BaoTree::new(size, BLOCK_SIZE).chunks();
    let to_chunk = |g: u64| ChunkNum(g.saturating_mul(CHUNKS_PER_GROUP));
    let mut out = Vec::with_capacity(2);
    if req.prove_size && n > 1 {
        out.push(ChunkRanges::from(to_chunk(n - 1)..));
    }
    let mut data = ChunkRanges::empty();
    if req.ranges.is_empty() {
        data = ChunkRanges::from(ChunkNum(0)..);
    }
    for &(s, e) in &req.ranges {
        if s >= n {
            continue;
        }
        let start = to_chunk(s);
        if to_chunk(e) >= chunks || e >= n {
            data |= ChunkRanges::from(start..);
        } else {
            data |= ChunkRanges::from(start..to_chunk(e));
        }
    }
    if !data.is_empty() {
        out.push(data);
    }
    out
}

fn leaf_hash(start_chunk: ChunkNum, data: &[u8], is_root: bool) -> blake3::Hash {
    if is_root {
        blake3::hash(data)
    } else {
        let mut h = blake3::Hasher::new();
        h.set_input_offset(start_chunk.0 * 1024);
        h.update(data);
        let cv: ChainingValue = h.finalize_non_root();
        blake3::Hash::from(cv)
    }
}

fn parent_hash(left: &[u8; 32], right: &[u8; 32], is_root: bool) -> blake3::Hash {
    if is_root {
        merge_subtrees_root(left, right, Mode::Hash)
    } else {
        blake3::Hash::from(merge_subtrees_non_root(left, right, Mode::Hash))
    }
}

/// Why a response was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A frame or the item layout is malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The server answered with a non-OK status.
    #[error("server answered {0:?}")]
    Status(Status),
    /// The server gave up mid-stream.
    #[error("server error {code}: {message}")]
    Remote {
        /// Its code.
        code: u8,
        /// Its reason.
        message: String,
    },
    /// A parent or a chunk group does not hash to what its ancestors say: the peer sent
    /// altered data. `offset` is the first byte of the failing group (or of the subtree).
    #[error("verification failed at byte {offset}")]
    Corrupt {
        /// Where.
        offset: u64,
    },
    /// The size in the header is above the bound or not the expected one.
    #[error("size {size} refused ({why})")]
    Size {
        /// The size the server claimed.
        size: u64,
        /// Why it was refused.
        why: &'static str,
    },
}

impl DecodeError {
    /// Whether the peer sent data that is provably wrong (it should lose more standing than a
    /// peer that merely failed).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::Wire(_))
    }
}

/// What one frame yielded.
#[derive(Debug, Default)]
pub struct Progress {
    /// The (unproven until the proof section is done) size, when this frame was the header.
    pub header: Option<u64>,
    /// Verified parents: node and its 64-byte hash pair (for the outboard).
    pub parents: Vec<(TreeNode, [u8; 64])>,
    /// Verified chunk groups: byte offset and bytes.
    pub leaves: Vec<(u64, Bytes)>,
    /// Whether the size proof (if requested) has now been verified.
    pub size_proven: bool,
    /// Whether the response is complete.
    pub done: bool,
}

enum State {
    Header,
    Items {
        tree: BaoTree,
        sections: VecDeque<ChunkRanges>,
        iter: ResponseIter,
        stack: Vec<blake3::Hash>,
        pending: Option<BaoChunk>,
        /// Items of the proof section remain.
        in_proof: bool,
    },
    Done,
    Failed,
}

/// Verifies one response, frame by frame.
pub struct Decoder {
    hash: Hash,
    request: Request,
    max_size: u64,
    expected_size: Option<u64>,
    state: State,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for the response to `request`; sizes above `max_size`, or other than
    /// `expected_size` when given, are refused at the header.
    pub fn new(request: Request, max_size: u64, expected_size: Option<u64>) -> Self {
        Self {
            hash: request.hash,
            request,
            max_size,
            expected_size,
            state: State::Header,
        }
    }

    /// Whether every item has been verified.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Takes one frame payload.
    pub fn feed(&mut self, payload: Bytes) -> Result<Progress, DecodeError> {
        let r = self.feed_inner(payload);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn feed_inner(&mut self, payload: Bytes) -> Result<Progress, DecodeError> {
        let frame = wire::parse_frame(payload)?;
        let mut progress = Progress::default();
        match (&mut self.state, frame) {
            (_, Frame::Error { code, message }) => Err(DecodeError::Remote { code, message }),
            (State::Header, Frame::Header { status, size }) => {
                if status != Status::Ok {
                    return Err(DecodeError::Status(status));
                }
                if size > self.max_size {
                    return Err(DecodeError::Size {
                        size,
                        why: "above the largest blob this node fetches",
                    });
                }
                if self.expected_size.is_some_and(|e| e != size) {
                    return Err(DecodeError::Size {
                        size,
                        why: "not the size this fetch established",
                    });
                }
                progress.header = Some(size);
                let tree = BaoTree::new(size, BLOCK_SIZE);
                let mut sections: VecDeque<ChunkRanges> = sections(size, &self.request).into();
                let in_proof = self.request.prove_size && groups(size) > 1;
                progress.size_proven = !in_proof;
                match sections.pop_front() {
                    Some(first) => {
                        self.state = State::Items {
                            tree,
                            sections,
                            iter: ResponseIter::new(tree, first),
                            stack: vec![self.hash.to_blake3()],
                            pending: None,
                            in_proof,
                        };
                        self.settle(&mut progress);
                    }
                    None => {
                        self.state = State::Done;
                        progress.done = true;
                    }
                }
                Ok(progress)
            }
            (State::Header, Frame::Data(_)) => Err(WireError("data before the header").into()),
            (State::Items { .. }, Frame::Data(data)) => {
                self.items(data, &mut progress)?;
                Ok(progress)
            }
            (_, Frame::Header { .. }) => Err(WireError("second header").into()),
            (State::Done | State::Failed, Frame::Data(_)) => {
                Err(WireError("data after the end of the response").into())
            }
        }
    }

    /// Moves to the next item, across sections; marks the proof and the end.
    fn next_item(&mut self, progress: &mut Progress) -> Option<BaoChunk> {
        let State::Items {
            tree,
            sections,
            iter,
            stack,
            pending,
            in_proof,
        } = &mut self.state
        else {
            return None;
        };
        if let Some(p) = pending.take() {
            return Some(p);
        }
        loop {
            if let Some(item) = iter.next() {
                return Some(item);
            }
            if *in_proof {
                *in_proof = false;
                progress.size_proven = true;
            }
            let next = sections.pop_front()?;
            *iter = ResponseIter::new(*tree, next);
            stack.clear();
            stack.push(self.hash.to_blake3());
        }
    }

    /// After a frame: peeks at the next item so the end (and the end of the proof) is known.
    fn settle(&mut self, progress: &mut Progress) {
        match self.next_item(progress) {
            // The empty blob: its one leaf has no bytes, so no frame carries it.
            Some(BaoChunk::Leaf {
                size: 0,
                start_chunk,
                is_root,
                ..
            }) => {
                let State::Items { stack, .. } = &mut self.state else {
                    return;
                };
                if stack.pop() == Some(leaf_hash(start_chunk, &[], is_root)) {
                    progress.leaves.push((0, Bytes::new()));
                    self.settle(progress);
                } else {
                    // Not the empty blob's hash: nothing can ever complete this response.
                    self.state = State::Failed;
                }
            }
            Some(item) => {
                if let State::Items { pending, .. } = &mut self.state {
                    *pending = Some(item);
                }
            }
            None => {
                self.state = State::Done;
                progress.done = true;
                progress.size_proven = true;
            }
        }
    }

    fn items(&mut self, data: Bytes, progress: &mut Progress) -> Result<(), DecodeError> {
        let mut at = 0usize;
        while at < data.len() {
            let Some(item) = self.next_item(progress) else {
                return Err(WireError("data after the end of the response").into());
            };
            let State::Items { stack, .. } = &mut self.state else {
                return Err(WireError("decoder state").into());
            };
            match item {
                BaoChunk::Parent {
                    node,
                    is_root,
                    left,
                    right,
                    ..
                } => {
                    let Some(pair) = data.get(at..at + 64) else {
                        return Err(WireError("frame ends inside a parent").into());
                    };
                    let mut l = [0u8; 32];
                    let mut r = [0u8; 32];
                    l.copy_from_slice(&pair[..32]);
                    r.copy_from_slice(&pair[32..]);
                    let expected = stack.pop().ok_or(WireError("decoder stack"))?;
                    if parent_hash(&l, &r, is_root) != expected {
                        return Err(DecodeError::Corrupt {
                            offset: node.chunk_range().start.to_bytes(),
                        });
                    }
                    if right {
                        stack.push(blake3::Hash::from(r));
                    }
                    if left {
                        stack.push(blake3::Hash::from(l));
                    }
                    let mut both = [0u8; 64];
                    both.copy_from_slice(pair);
                    progress.parents.push((node, both));
                    at += 64;
                }
                BaoChunk::Leaf {
                    start_chunk,
                    size,
                    is_root,
                    ..
                } => {
                    let Some(bytes) = data.get(at..at + size) else {
                        return Err(WireError("frame ends inside a chunk group").into());
                    };
                    let expected = stack.pop().ok_or(WireError("decoder stack"))?;
                    if leaf_hash(start_chunk, bytes, is_root) != expected {
                        return Err(DecodeError::Corrupt {
                            offset: start_chunk.to_bytes(),
                        });
                    }
                    progress
                        .leaves
                        .push((start_chunk.to_bytes(), data.slice(at..at + size)));
                    at += size;
                }
            }
        }
        self.settle(progress);
        Ok(())
    }
}

/// What a server streams from: a blob's verified bytes and its outboard.
pub struct Source {
    hash: Hash,
    size: u64,
    data: SourceData,
}

enum SourceData {
    /// Bytes already verified, with an outboard computed from them (none for one group).
    Memory(Bytes, Option<PostOrderMemOutboard>),
    /// A stored blob: every window read is verified against its outboard.
    Blob(Blob),
    /// Given bytes and a given outboard, not checked (tests, tools).
    Unchecked(Bytes, PostOrderMemOutboard),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({}, {} B)", self.hash, self.size)
    }
}

impl Source {
    /// A source over a stored blob (blocking: a small blob's outboard is computed here).
    pub fn from_blob(blob: Blob) -> Self {
        let (hash, size) = (blob.hash(), blob.size());
        let data = match blob {
            Blob::Memory { bytes, .. } => {
                let ob =
                    (size > INLINE_MAX).then(|| PostOrderMemOutboard::create(&bytes, BLOCK_SIZE));
                SourceData::Memory(bytes, ob)
            }
            other => SourceData::Blob(other),
        };
        Self { hash, size, data }
    }

    /// A source that serves `data` with the outboard of `honest` (the bytes `hash` really
    /// addresses), without checking `data`: for tests and tools that play a misbehaving peer.
    pub fn unchecked(honest: &[u8], data: impl Into<Bytes>) -> Self {
        let ob = PostOrderMemOutboard::create(honest, BLOCK_SIZE);
        Self {
            hash: Hash::from_blake3(ob.root),
            size: honest.len() as u64,
            data: SourceData::Unchecked(data.into(), ob),
        }
    }

    /// The blob's hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Its size.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn parent(&self, node: TreeNode) -> Result<[u8; 64], EncodeError> {
        let pair = match &self.data {
            SourceData::Memory(_, Some(ob)) | SourceData::Unchecked(_, ob) => ob.load(node)?,
            SourceData::Memory(_, None) => None,
            SourceData::Blob(b) => b.load_parent(node)?,
        };
        let (l, r) = pair.ok_or(EncodeError::MissingParent)?;
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(l.as_bytes());
        out[32..].copy_from_slice(r.as_bytes());
        Ok(out)
    }

    fn read(&self, offset: u64, len: u64) -> Result<Bytes, EncodeError> {
        match &self.data {
            SourceData::Memory(b, _) | SourceData::Unchecked(b, _) => {
                let start = offset.min(b.len() as u64) as usize;
                let end = offset.saturating_add(len).min(b.len() as u64) as usize;
                Ok(b.slice(start..end))
            }
            SourceData::Blob(b) => b.read_verified(offset, len).map_err(|e| match e {
                ReadError::Corrupt(_) => EncodeError::Corrupt,
                ReadError::Io(e) => EncodeError::Io(e),
                _ => EncodeError::Corrupt,
            }),
        }
    }
}

/// Why a server stopped encoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Its own copy failed verification (it has been dropped from the store).
    #[error("the local copy failed verification")]
    Corrupt,
    /// The outboard lacks a node it should have.
    #[error("the outboard lacks a node")]
    MissingParent,
    /// Disk I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The receiver went away.
    #[error("the receiver went away")]
    Closed,
}

/// The end (exclusive, in bytes) of the range of `ranges` that contains byte `at`.
fn run_end(ranges: &ChunkRanges, at: u64, size: u64) -> u64 {
    let chunk = ChunkNum::full_chunks(at);
    let b = ranges.boundaries();
    let mut i = 0;
    while i < b.len() {
        let start = b[i];
        let end = b.get(i + 1).copied();
        if chunk >= start && end.is_none_or(|e| chunk < e) {
            return end.map_or(size, |e| e.to_bytes().min(size));
        }
        i += 2;
    }
    size
}

/// Encodes the items of `sections` from `source` into complete data frames (mesh frame header
/// included), handing each to `emit`; `emit` returning false stops the encoding. Blocking.
pub fn encode(
    source: &Source,
    sections: &[ChunkRanges],
    mut emit: impl FnMut(Bytes) -> bool,
) -> Result<(), EncodeError> {
    let tree = BaoTree::new(source.size, BLOCK_SIZE);
    let new_frame = || {
        let mut f = BytesMut::with_capacity(TARGET_FRAME + GROUP as usize + 1024);
        f.put_u8(mesh::frame::FRAME_VERSION);
        f.put_u32(0);
        f.put_u8(wire::TAG_DATA);
        f
    };
    let mut frame = new_frame();
    let mut window: (u64, Bytes) = (0, Bytes::new());
    let flush = |frame: &mut BytesMut, emit: &mut dyn FnMut(Bytes) -> bool| {
        let len = (frame.len() - mesh::frame::HEADER_LEN) as u32;
        frame[1..5].copy_from_slice(&len.to_be_bytes());
        let done = std::mem::replace(frame, new_frame());
        emit(done.freeze())
    };
    for ranges in sections {
        for item in ResponseIter::new(tree, ranges.clone()) {
            match item {
                BaoChunk::Parent { node, .. } => frame.put_slice(&source.parent(node)?),
                BaoChunk::Leaf {
                    start_chunk, size, ..
                } => {
                    let start = start_chunk.to_bytes();
                    let end = start + size as u64;
                    if start < window.0 || end > window.0 + window.1.len() as u64 {
                        let until = run_end(ranges, start, source.size)
                            .min(start + READ_WINDOW)
                            .max(end);
                        window = (start, source.read(start, until - start)?);
                        if (window.1.len() as u64) < end - start {
                            return Err(EncodeError::Corrupt);
                        }
                    }
                    let off = (start - window.0) as usize;
                    frame.put_slice(&window.1[off..off + size]);
                }
            }
            if frame.len() > TARGET_FRAME + mesh::frame::HEADER_LEN && !flush(&mut frame, &mut emit)
            {
                return Err(EncodeError::Closed);
            }
        }
    }
    if frame.len() > mesh::frame::HEADER_LEN + 1 && !flush(&mut frame, &mut emit) {
        return Err(EncodeError::Closed);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
