//! The cache's protocol between nodes, inside the mesh's bounded frames (ALPN
//! [`ALPN`]). Every decoder here bounds what it reads by the frame it was given.
//!
//! A stream starts with a one-frame hello naming its kind:
//! - [`KIND_SESSION`]: a proxied client session. The hello carries the credential the client
//!   authenticated with on the forwarding node, if any ([`encode_session_hello`]); the receiver
//!   checks user and password against its own ACL users. Requests are `[flags][hops]` followed by RESP
//!   commands; each answer frame holds one `[u32 length][RESP reply]` per command, in order.
//!   The remote keeps one connection state per stream (`WATCH`, `MULTI` and `SELECT` live
//!   there).
//! - [`KIND_LINK`]: an ordered replication link from a primary to one peer. Frames are
//!   `[u64 seq]` followed by records `[type][u32 length][body]` ([`Record`]); the peer answers
//!   with `[u64 seq]` once it has applied everything up to `seq`. Key states carry the version
//!   of the write that left them ([`KeyState`]): a state older than the receiver's copy is
//!   ignored.
//! - [`KIND_PULL`]: a joining or new owner asks for ranges ([`encode_pull`]); the answer lists
//!   the ranges refused, and among them those the asked node holds no copy of at all while
//!   its view places ranges as the asker's does ([`encode_refusal`]). The keys then
//!   arrive on the link from the asked node, followed by a [`Record::Done`]. The request
//!   takes only a copy the asked node serves; [`KIND_PULL_RELEASED`] also takes a copy it
//!   released lately, and [`KIND_PULL_KEPT`] also one it is pulling again itself with its keys
//!   kept (see [`Accept`]).
//! - [`KIND_MERGE`]: a node asks for another's copies of ranges it owns, to keep the newer of
//!   each key (after a heal or a rejoin); the answer is frames of key states on the stream.

use bytes::{BufMut, Bytes, BytesMut};

/// ALPN of the cache protocol on the mesh data plane.
pub const ALPN: &[u8] = b"proxima/cache/1";
/// Largest frame (a forwarded batch, a batch of replicated keys).
pub const MAX_FRAME: usize = 64 << 20;

/// Stream kind: proxied session.
pub const KIND_SESSION: u8 = 1;
/// Stream kind: replication link.
pub const KIND_LINK: u8 = 2;
/// Stream kind: range pull, taking only a copy the asked node serves ([`Accept::Served`]).
pub const KIND_PULL: u8 = 3;
/// Stream kind: range pull that also takes a copy the asked node released lately
/// ([`Accept::Released`]).
pub const KIND_PULL_RELEASED: u8 = 7;
/// Stream kind: range pull that also takes a copy the asked node is itself pulling again with
/// its keys kept ([`Accept::Kept`]).
pub const KIND_PULL_KEPT: u8 = 5;

/// Which copies of a range a pull takes, from the best to the worst. A puller asks every
/// member for the best kind first and settles for a worse one only after a round in which
/// every member refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Accept {
    /// A copy the asked node serves (or holds as the only one there is): current.
    Served,
    /// Also a whole copy it held until a view change moved the range elsewhere: current when
    /// released, but it misses every write made since by whoever took the range over.
    Released,
    /// Also a copy it is pulling again itself after a rejoin, keys kept: it may miss the
    /// writes made while it was cut off.
    Kept,
}

impl Accept {
    /// The stream kind that asks for it.
    pub fn kind(self) -> u8 {
        match self {
            Accept::Served => KIND_PULL,
            Accept::Released => KIND_PULL_RELEASED,
            Accept::Kept => KIND_PULL_KEPT,
        }
    }

    /// What a pull stream of `kind` accepts (`None`: not a pull).
    pub fn of_kind(kind: u8) -> Option<Accept> {
        match kind {
            KIND_PULL => Some(Accept::Served),
            KIND_PULL_RELEASED => Some(Accept::Released),
            KIND_PULL_KEPT => Some(Accept::Kept),
            _ => None,
        }
    }
}
/// Stream kind: the asked node's copies of ranges, to merge (`[u16 count][u16 range]...`),
/// compared by hash trees first ([`super::aae`]): the asked node answers its roots, the asker
/// the ranges that differ, the asked node their inner hashes, the asker the inner nodes that
/// differ, the asked node their leaves, the asker the leaves that differ; then frames of the
/// [`KeyState`]s under them, and the end of the stream.
pub const KIND_MERGE: u8 = 6;
/// Stream kind: the asked node's cache members (a joining node waits until it knows them all).
pub const KIND_MEMBERS: u8 = 4;
/// Largest member list answer.
pub const MAX_MEMBERS_FRAME: usize = 256 * 1024;

/// Longest credential (user and password together) a session hello carries. A client that
/// authenticated with a longer one is proxied without it (the owner answers `NOAUTH` if it
/// needs a password).
pub const MAX_CREDENTIAL: usize = 512;

/// The hello of a proxied session: [`KIND_SESSION`], then nothing (the client did not
/// authenticate) or `[u16 user length][user][u16 password length][password]`. `None` if the
/// credential is longer than [`MAX_CREDENTIAL`].
pub fn encode_session_hello(cred: Option<&crate::client::Credential>) -> Option<Vec<u8>> {
    let mut v = vec![KIND_SESSION];
    if let Some(c) = cred {
        if c.user.len() + c.pass.len() > MAX_CREDENTIAL {
            return None;
        }
        for part in [&c.user, &c.pass] {
            v.extend_from_slice(&(part.len() as u16).to_be_bytes());
            v.extend_from_slice(part);
        }
    }
    Some(v)
}

/// Decodes what follows [`KIND_SESSION`] in a session hello.
pub fn decode_session_hello(b: &[u8]) -> Result<Option<crate::client::Credential>, ProtoError> {
    if b.is_empty() {
        return Ok(None);
    }
    if b.len() > 4 + MAX_CREDENTIAL {
        return Err(ProtoError("credential too long"));
    }
    let mut pos = 0;
    let mut part = || -> Result<Vec<u8>, ProtoError> {
        let len = b.get(pos..pos + 2).ok_or(ProtoError("short credential"))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        pos += 2;
        let v = b
            .get(pos..pos + len)
            .ok_or(ProtoError("credential longer than its hello"))?;
        pos += len;
        Ok(v.to_vec())
    };
    let user = part()?;
    let pass = part()?;
    if pos != b.len() {
        return Err(ProtoError("bytes after the credential"));
    }
    Ok(Some(crate::client::Credential { user, pass }))
}

/// Session request flag: execute here, whatever this node's view says.
pub const F_EXEC: u8 = 1;
/// Session request flag: the client sent `READONLY` (a replica may answer reads).
pub const F_READONLY: u8 = 2;
/// Session request flag: the client speaks RESP3.
pub const F_RESP3: u8 = 4;

/// A malformed message from a peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed cache peer message: {0}")]
pub struct ProtoError(pub &'static str);

/// One record of a link frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Key states: one [`KeyState`] after another ([`decode_keys`]).
    Keys(Bytes),
    /// The ranges a pull asked for are complete.
    Done(Vec<u16>),
    /// A `PUBLISH`/`SPUBLISH` to deliver to local subscribers (RESP command).
    Publish(Bytes),
}

const R_KEYS: u8 = 0;
const R_DONE: u8 = 1;
const R_PUBLISH: u8 = 2;

impl Record {
    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let (t, body): (u8, &[u8]) = match self {
            Record::Keys(b) => (R_KEYS, b),
            Record::Publish(b) => (R_PUBLISH, b),
            Record::Done(ranges) => {
                out.put_u8(R_DONE);
                out.put_u32(2 + 2 * ranges.len() as u32);
                out.put_slice(&encode_ranges(ranges));
                return;
            }
        };
        out.put_u8(t);
        out.put_u32(body.len() as u32);
        out.put_slice(body);
    }

    /// Encoded length.
    pub fn len(&self) -> usize {
        5 + match self {
            Record::Keys(b) | Record::Publish(b) => b.len(),
            Record::Done(r) => 2 + 2 * r.len(),
        }
    }

    /// Whether the record carries nothing.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Decodes a link frame: its sequence number and records.
pub fn decode_link(frame: &Bytes) -> Result<(u64, Vec<Record>), ProtoError> {
    if frame.len() < 8 {
        return Err(ProtoError("short link frame"));
    }
    let seq = u64::from_be_bytes(frame[..8].try_into().map_err(|_| ProtoError("seq"))?);
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < frame.len() {
        if frame.len() - pos < 5 {
            return Err(ProtoError("short record header"));
        }
        let t = frame[pos];
        let len = u32::from_be_bytes(
            frame[pos + 1..pos + 5]
                .try_into()
                .map_err(|_| ProtoError("len"))?,
        ) as usize;
        pos += 5;
        if len > frame.len() - pos {
            return Err(ProtoError("record longer than its frame"));
        }
        let body = frame.slice(pos..pos + len);
        pos += len;
        out.push(match t {
            R_KEYS => Record::Keys(body),
            R_PUBLISH => Record::Publish(body),
            R_DONE => Record::Done(decode_ranges(&body)?),
            _ => return Err(ProtoError("unknown record type")),
        });
    }
    Ok((seq, out))
}

/// One key's state as a peer sent it: `[u32 key length][key][u64 version][u32 length][RESP
/// commands that recreate the state]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// The key.
    pub key: Bytes,
    /// The version of the write that left this state.
    pub ver: u64,
    /// RESP commands that set the key to it (`DEL` when the key is absent).
    pub ops: Bytes,
}

/// Appends a key state whose commands `ops` writes to `out`.
pub fn encode_key_state(out: &mut BytesMut, key: &[u8], ver: u64, ops: impl FnOnce(&mut BytesMut)) {
    out.put_u32(key.len() as u32);
    out.put_slice(key);
    out.put_u64(ver);
    let at = out.len();
    out.put_u32(0);
    ops(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Decodes the key states of a [`Record::Keys`] body (or a merge answer).
pub fn decode_keys(body: &Bytes) -> Result<Vec<KeyState>, ProtoError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let u32_at = |pos: usize| -> Result<usize, ProtoError> {
        let b = body
            .get(pos..pos + 4)
            .ok_or(ProtoError("short key state"))?;
        Ok(u32::from_be_bytes(b.try_into().map_err(|_| ProtoError("len"))?) as usize)
    };
    while pos < body.len() {
        let klen = u32_at(pos)?;
        pos += 4;
        if klen > body.len() - pos {
            return Err(ProtoError("key longer than its record"));
        }
        let key = body.slice(pos..pos + klen);
        pos += klen;
        let ver = body
            .get(pos..pos + 8)
            .ok_or(ProtoError("short key state"))?;
        let ver = u64::from_be_bytes(ver.try_into().map_err(|_| ProtoError("ver"))?);
        pos += 8;
        let olen = u32_at(pos)?;
        pos += 4;
        if olen > body.len() - pos {
            return Err(ProtoError("key state longer than its record"));
        }
        let ops = body.slice(pos..pos + olen);
        pos += olen;
        out.push(KeyState { key, ver, ops });
    }
    Ok(out)
}

/// `[u16 count][u16 range]...`
pub fn encode_ranges(ranges: &[u16]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + 2 * ranges.len());
    v.extend_from_slice(&(ranges.len() as u16).to_be_bytes());
    for r in ranges {
        v.extend_from_slice(&r.to_be_bytes());
    }
    v
}

/// Decodes a range list; every range must be below [`super::view::GROUPS`].
pub fn decode_ranges(b: &[u8]) -> Result<Vec<u16>, ProtoError> {
    if b.len() < 2 {
        return Err(ProtoError("short range list"));
    }
    let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
    if b.len() != 2 + 2 * n {
        return Err(ProtoError("range list length mismatch"));
    }
    let v: Vec<u16> = b[2..]
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if v.iter().any(|&g| usize::from(g) >= super::view::GROUPS) {
        return Err(ProtoError("range out of bounds"));
    }
    Ok(v)
}

/// A pull's hello: `kind`, the ranges, the oldest version wanted (0: every state), then the
/// digest of the asker's view ([`super::view::View::digest`]).
pub fn encode_pull(kind: u8, ranges: &[u16], since: u64, view: u64) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&encode_ranges(ranges));
    v.extend_from_slice(&since.to_be_bytes());
    v.extend_from_slice(&view.to_be_bytes());
    v
}

/// What a pull asks for, after its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub ranges: Vec<u16>,
    /// The oldest version wanted (0: every state).
    pub since: u64,
    /// The digest of the asker's view.
    pub view: u64,
}

/// Decodes what follows the kind in a pull's hello.
pub fn decode_pull(b: &[u8]) -> Result<Pull, ProtoError> {
    if b.len() < 2 {
        return Err(ProtoError("short pull"));
    }
    let end = 2 + 2 * usize::from(u16::from_be_bytes([b[0], b[1]]));
    if b.len() != end + 16 {
        return Err(ProtoError("pull length mismatch"));
    }
    let word = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    Ok(Pull {
        ranges: decode_ranges(&b[..end])?,
        since: word(end),
        view: word(end + 8),
    })
}

/// The answer to a pull: the ranges refused, then those of them the asked node holds no copy
/// of at all (of any kind, [`Accept`]) with a view that places ranges as the asker's does, so
/// that no later round can get one from it either.
pub fn encode_refusal(refused: &[u16], empty: &[u16]) -> Vec<u8> {
    let mut v = encode_ranges(refused);
    v.extend_from_slice(&encode_ranges(empty));
    v
}

/// Largest answer to a pull.
pub const MAX_REFUSAL: usize = 2 * (2 + 2 * super::view::GROUPS);

/// Decodes a pull's answer: `(refused, empty)`, `empty` a subset of `refused`.
pub fn decode_refusal(b: &[u8]) -> Result<(Vec<u16>, Vec<u16>), ProtoError> {
    if b.len() < 2 {
        return Err(ProtoError("short refusal"));
    }
    let end = 2 + 2 * usize::from(u16::from_be_bytes([b[0], b[1]]));
    if b.len() < end {
        return Err(ProtoError("refusal length mismatch"));
    }
    let refused = decode_ranges(&b[..end])?;
    let empty = decode_ranges(&b[end..])?;
    if empty.iter().any(|g| !refused.contains(g)) {
        return Err(ProtoError("a range empty but not refused"));
    }
    Ok((refused, empty))
}

/// Encodes a member list: one peer id (base58 text) per line.
pub fn encode_members(peers: &[String]) -> Vec<u8> {
    peers.join("\n").into_bytes()
}

/// Decodes a member list; lines that are not peer ids are refused.
pub fn decode_members(b: &[u8]) -> Result<Vec<mesh::PeerId>, ProtoError> {
    let text = std::str::from_utf8(b).map_err(|_| ProtoError("member list is not UTF-8"))?;
    text.split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().map_err(|_| ProtoError("not a peer id")))
        .collect()
}

/// Splits a session answer into one reply per command; exactly `expected` replies.
pub fn decode_replies(frame: &Bytes, expected: usize) -> Result<Vec<Bytes>, ProtoError> {
    let mut out = Vec::with_capacity(expected.min(frame.len() / 4 + 1));
    let mut pos = 0;
    while pos < frame.len() {
        if frame.len() - pos < 4 {
            return Err(ProtoError("short reply header"));
        }
        let len = u32::from_be_bytes(
            frame[pos..pos + 4]
                .try_into()
                .map_err(|_| ProtoError("len"))?,
        ) as usize;
        pos += 4;
        if len > frame.len() - pos {
            return Err(ProtoError("reply longer than its frame"));
        }
        out.push(frame.slice(pos..pos + len));
        pos += len;
        if out.len() > expected {
            return Err(ProtoError("more replies than commands"));
        }
    }
    if out.len() != expected {
        return Err(ProtoError("fewer replies than commands"));
    }
    Ok(out)
}

/// Appends one RESP command to `out`.
pub fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_u8(b'*');
    out.put_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for a in args {
        out.put_u8(b'$');
        out.put_slice(itoa::Buffer::new().format(a.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_frames_round_trip_and_refuse_garbage() {
        let mut b = BytesMut::new();
        b.put_u64(7);
        let recs = vec![
            Record::Keys(Bytes::from_static(b"*1\r\n$4\r\nPING\r\n")),
            Record::Done(vec![1, 255]),
            Record::Publish(Bytes::from_static(b"x")),
        ];
        for r in &recs {
            r.encode(&mut b);
        }
        let f = b.freeze();
        assert_eq!(decode_link(&f).unwrap(), (7, recs));
        assert!(decode_link(&f.slice(..f.len() - 1)).is_err());
        assert!(decode_ranges(&[0, 1, 1, 0]).is_err());
        assert!(decode_replies(&Bytes::from_static(&[0, 0, 0, 9, 1]), 1).is_err());
    }

    #[test]
    fn pulls_and_refusals_round_trip_and_refuse_garbage() {
        let hello = encode_pull(KIND_PULL, &[3, 200], 42, 0xfeed);
        let want = Pull {
            ranges: vec![3, 200],
            since: 42,
            view: 0xfeed,
        };
        assert_eq!(decode_pull(&hello[1..]).unwrap(), want);
        assert!(decode_pull(&hello[1..hello.len() - 1]).is_err());
        assert!(decode_pull(&encode_pull(KIND_PULL, &[256], 0, 0)[1..]).is_err());
        let answer = encode_refusal(&[3, 200], &[200]);
        assert_eq!(decode_refusal(&answer).unwrap(), (vec![3, 200], vec![200]));
        // A range said empty must be one refused.
        assert!(decode_refusal(&encode_refusal(&[3], &[200])).is_err());
        assert!(decode_refusal(&answer[..answer.len() - 1]).is_err());
        assert!(decode_refusal(&[0, 1, 0]).is_err());
    }

    #[test]
    fn session_hellos_round_trip_and_refuse_garbage() {
        use crate::client::Credential;
        assert_eq!(encode_session_hello(None).unwrap(), vec![KIND_SESSION]);
        assert_eq!(decode_session_hello(&[]).unwrap(), None);
        let c = Credential {
            user: b"default".to_vec(),
            pass: b"s3cret".to_vec(),
        };
        let h = encode_session_hello(Some(&c)).unwrap();
        assert_eq!(h[0], KIND_SESSION);
        assert_eq!(decode_session_hello(&h[1..]).unwrap(), Some(c.clone()));
        for cut in 2..h.len() {
            assert!(decode_session_hello(&h[1..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = h.clone();
        longer.push(0);
        assert!(decode_session_hello(&longer[1..]).is_err());
        let big = Credential {
            user: b"default".to_vec(),
            pass: vec![b'x'; MAX_CREDENTIAL],
        };
        assert_eq!(encode_session_hello(Some(&big)), None);
        // A length that claims more than the hello holds is refused before anything is read.
        assert!(decode_session_hello(&[0xff, 0xff, 1]).is_err());
        assert!(decode_session_hello(&vec![0; 4 + MAX_CREDENTIAL + 1]).is_err());
    }

    #[test]
    fn key_states_round_trip_and_refuse_garbage() {
        let mut b = BytesMut::new();
        encode_key_state(&mut b, b"k1", 7, |o| command(o, &[b"DEL", b"k1"]));
        encode_key_state(&mut b, b"", u64::MAX, |_| {});
        let b = b.freeze();
        let got = decode_keys(&b).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((&got[0].key[..], got[0].ver), (&b"k1"[..], 7));
        assert_eq!(&got[0].ops[..], b"*2\r\n$3\r\nDEL\r\n$2\r\nk1\r\n");
        assert_eq!(
            (got[1].key.len(), got[1].ver, got[1].ops.len()),
            (0, u64::MAX, 0)
        );
        // Cut anywhere but between the two states.
        for cut in (1..b.len()).filter(|&c| c != b.len() - 16) {
            assert!(decode_keys(&b.slice(..cut)).is_err(), "cut at {cut}");
        }
        assert!(decode_keys(&Bytes::from_static(&[255, 255, 255, 255, 0])).is_err());
    }
}
