//! The wire format of [`ALPN`](super::ALPN): one request frame from the client, then response
//! frames from the server. Every frame is a [`mesh::frame`] (version byte, u32 length,
//! payload) whose length is checked against the bounds below before anything is allocated.
//!
//! Request payload (at most [`MAX_REQUEST`] bytes):
//!
//! ```text
//! [version u8 = 1][hash 32 B][flags u8][count u16 BE][count x (start u64 BE, end u64 BE)]
//! ```
//!
//! Ranges are in 16 KiB chunk groups, sorted, disjoint, `start < end`; `end == u64::MAX` means
//! "to the end of the blob"; `count == 0` means the whole blob. Flag [`FLAG_PROVE_SIZE`] asks
//! for the proof of the last chunk group before the data, which proves the size up front.
//!
//! Response payloads, first byte a tag:
//!
//! - `[0][status u8][size u64 BE]`: the header, always first.
//! - `[1][items]`: bao items in pre-order, whole items only: 64-byte parent hash pairs and
//!   16 KiB leaves (the last one shorter). At most [`MAX_DATA_FRAME`] bytes.
//! - `[2][code u8][message]`: the server stopped (its own copy failed a check, or I/O).
//!
//! The stream's end (FIN) closes the response.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Hash;

/// Version of the request encoding.
pub const REQUEST_VERSION: u8 = 1;
/// Most ranges in one request.
pub const MAX_RANGES: usize = 64;
/// Largest request payload.
pub const MAX_REQUEST: usize = 1 + 32 + 1 + 2 + MAX_RANGES * 16;
/// Largest data frame payload (tag included): 32 chunk groups and their parents fit.
pub const MAX_DATA_FRAME: usize = 1 << 20;
/// Largest error message.
pub const MAX_ERROR_MESSAGE: usize = 256;
/// Ask for the proof of the last chunk group first (proves the size).
pub const FLAG_PROVE_SIZE: u8 = 1;

/// Response frame tags.
pub const TAG_HEADER: u8 = 0;
/// Data frame tag.
pub const TAG_DATA: u8 = 1;
/// Error frame tag.
pub const TAG_ERROR: u8 = 2;

/// The server's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The blob follows.
    Ok,
    /// The server does not hold the blob.
    NotFound,
    /// The server is at its limit of concurrent transfers.
    Busy,
    /// The request was malformed.
    BadRequest,
}

impl Status {
    fn to_u8(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::NotFound => 1,
            Self::Busy => 2,
            Self::BadRequest => 3,
        }
    }

    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Ok,
            1 => Self::NotFound,
            2 => Self::Busy,
            3 => Self::BadRequest,
            _ => return None,
        })
    }
}

/// A frame or request that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed transfer message: {0}")]
pub struct WireError(pub &'static str);

/// A request for a blob, or for some of its chunk groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The blob.
    pub hash: Hash,
    /// Send the last group's proof first.
    pub prove_size: bool,
    /// Chunk-group ranges `[start, end)`; empty: the whole blob.
    pub ranges: Vec<(u64, u64)>,
}

impl Request {
    /// The whole blob, size proven first.
    pub fn whole(hash: Hash) -> Self {
        Self {
            hash,
            prove_size: true,
            ranges: Vec::new(),
        }
    }

    /// Encodes the request payload.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        check_ranges(&self.ranges)?;
        let mut out = BytesMut::with_capacity(36 + self.ranges.len() * 16);
        out.put_u8(REQUEST_VERSION);
        out.put_slice(&self.hash.0);
        out.put_u8(if self.prove_size { FLAG_PROVE_SIZE } else { 0 });
        out.put_u16(self.ranges.len() as u16);
        for &(s, e) in &self.ranges {
            out.put_u64(s);
            out.put_u64(e);
        }
        Ok(out.freeze())
    }

    /// Decodes a request payload.
    pub fn decode(mut b: &[u8]) -> Result<Self, WireError> {
        if b.len() > MAX_REQUEST {
            return Err(WireError("request too large"));
        }
        if b.len() < 36 {
            return Err(WireError("request too short"));
        }
        if b.get_u8() != REQUEST_VERSION {
            return Err(WireError("unknown request version"));
        }
        let mut hash = [0u8; 32];
        b.copy_to_slice(&mut hash);
        let flags = b.get_u8();
        if flags & !FLAG_PROVE_SIZE != 0 {
            return Err(WireError("unknown request flags"));
        }
        let count = b.get_u16() as usize;
        if count > MAX_RANGES {
            return Err(WireError("too many ranges"));
        }
        if b.len() != count * 16 {
            return Err(WireError("range list length mismatch"));
        }
        let mut ranges = Vec::with_capacity(count);
        for _ in 0..count {
            ranges.push((b.get_u64(), b.get_u64()));
        }
        check_ranges(&ranges)?;
        Ok(Self {
            hash: Hash(hash),
            prove_size: flags & FLAG_PROVE_SIZE != 0,
            ranges,
        })
    }
}

fn check_ranges(ranges: &[(u64, u64)]) -> Result<(), WireError> {
    if ranges.len() > MAX_RANGES {
        return Err(WireError("too many ranges"));
    }
    let mut prev_end = 0u64;
    for (i, &(s, e)) in ranges.iter().enumerate() {
        if s >= e {
            return Err(WireError("empty or reversed range"));
        }
        if i > 0 && s < prev_end {
            return Err(WireError("ranges not sorted and disjoint"));
        }
        prev_end = e;
    }
    Ok(())
}

/// Encodes a header frame payload.
pub fn header(status: Status, size: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(10);
    out.put_u8(TAG_HEADER);
    out.put_u8(status.to_u8());
    out.put_u64(size);
    out.freeze()
}

/// Encodes an error frame payload.
pub fn error(code: u8, message: &str) -> Bytes {
    let mut msg = message.as_bytes();
    if msg.len() > MAX_ERROR_MESSAGE {
        msg = &msg[..MAX_ERROR_MESSAGE];
    }
    let mut out = BytesMut::with_capacity(2 + msg.len());
    out.put_u8(TAG_ERROR);
    out.put_u8(code);
    out.put_slice(msg);
    out.freeze()
}

/// One parsed response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The header.
    Header {
        /// The answer.
        status: Status,
        /// The blob's size as the server claims it (proven by the data that follows).
        size: u64,
    },
    /// Bao items.
    Data(Bytes),
    /// The server gave up.
    Error {
        /// Server-defined code.
        code: u8,
        /// Human-readable reason (lossy UTF-8).
        message: String,
    },
}

/// Parses a response frame payload (already bounded by the frame reader).
pub fn parse_frame(mut payload: Bytes) -> Result<Frame, WireError> {
    if payload.is_empty() {
        return Err(WireError("empty frame"));
    }
    if payload.len() > MAX_DATA_FRAME {
        return Err(WireError("frame too large"));
    }
    match payload.get_u8() {
        TAG_HEADER => {
            if payload.len() != 9 {
                return Err(WireError("bad header length"));
            }
            let status = Status::from_u8(payload.get_u8()).ok_or(WireError("unknown status"))?;
            Ok(Frame::Header {
                status,
                size: payload.get_u64(),
            })
        }
        TAG_DATA => Ok(Frame::Data(payload)),
        TAG_ERROR => {
            if payload.is_empty() || payload.len() > 1 + MAX_ERROR_MESSAGE {
                return Err(WireError("bad error frame"));
            }
            let code = payload.get_u8();
            Ok(Frame::Error {
                code,
                message: String::from_utf8_lossy(&payload).into_owned(),
            })
        }
        _ => Err(WireError("unknown frame tag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_refusals() {
        let r = Request {
            hash: Hash::of(b"x"),
            prove_size: true,
            ranges: vec![(0, 4), (10, u64::MAX)],
        };
        assert_eq!(Request::decode(&r.encode().unwrap()).unwrap(), r);
        let mut bad = r.clone();
        bad.ranges = vec![(5, 5)];
        assert!(bad.encode().is_err());
        bad.ranges = vec![(5, 9), (6, 10)];
        assert!(bad.encode().is_err());
        bad.ranges = vec![(0, 1); MAX_RANGES + 1];
        assert!(bad.encode().is_err());
        let enc = r.encode().unwrap();
        assert!(Request::decode(&enc[..enc.len() - 1]).is_err());
        let mut flags = enc.to_vec();
        flags[33] = 0x80;
        assert!(Request::decode(&flags).is_err());
    }

    #[test]
    fn frames_parse() {
        assert_eq!(
            parse_frame(header(Status::Ok, 77)).unwrap(),
            Frame::Header {
                status: Status::Ok,
                size: 77
            }
        );
        assert!(matches!(
            parse_frame(error(3, "disk")).unwrap(),
            Frame::Error { code: 3, .. }
        ));
        assert!(parse_frame(Bytes::from_static(&[9])).is_err());
        assert!(parse_frame(Bytes::from_static(&[0, 0, 1])).is_err());
        assert!(parse_frame(Bytes::new()).is_err());
    }
}
