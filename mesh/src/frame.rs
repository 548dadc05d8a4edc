//! Length-delimited, versioned frames: the unit every data-plane stream carries.
//!
//! Wire format: `[version: u8][length: u32 big-endian][payload: length bytes]`. The length is
//! checked against the caller's bound *before* any buffer is reserved, so a peer announcing a
//! 4 GiB frame costs us nothing.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The only frame version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 5;
/// How far ahead of the bytes received a frame's buffer may grow.
const READ_CHUNK: usize = 64 * 1024;
/// Default payload bound (1 MiB); protocols pass their own.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// A frame that cannot be accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The version byte is not one we speak.
    #[error("unsupported frame version {0} (this build speaks {FRAME_VERSION})")]
    Version(u8),
    /// The announced payload is larger than the bound.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The underlying stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes one frame.
pub fn encode(payload: &[u8]) -> Result<Bytes, FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len(),
        max: u32::MAX as usize,
    })?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_u8(FRAME_VERSION);
    out.put_u32(len);
    out.put_slice(payload);
    Ok(out.freeze())
}

/// Incremental decoder for a byte buffer (the pure core; also the fuzz target's subject).
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing payloads above `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max }
    }

    /// Takes one complete frame off the front of `buf`: `Ok(None)` when more bytes are needed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = self.check_header(&buf[..HEADER_LEN])?;
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        Ok(Some(buf.split_to(len).freeze()))
    }

    /// Validates a header and returns the payload length.
    fn check_header(&self, header: &[u8]) -> Result<usize, FrameError> {
        let mut h = header;
        let version = h.get_u8();
        if version != FRAME_VERSION {
            return Err(FrameError::Version(version));
        }
        let len = h.get_u32() as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        Ok(len)
    }

    /// Reads one frame from a stream: `Ok(None)` on a clean end before any header byte.
    pub async fn read<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
    ) -> Result<Option<Bytes>, FrameError> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            let n = reader.read(&mut header[got..]).await?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
            got += n;
        }
        let len = self.check_header(&header)?;
        // The announced length is believed only as bytes arrive: the buffer grows by what was
        // read, at most [`READ_CHUNK`] ahead, so a peer announcing 64 MiB and sending nothing
        // costs 64 KiB, not 64 MiB.
        let mut payload = Vec::with_capacity(len.min(READ_CHUNK));
        while payload.len() < len {
            let want = (len - payload.len()).min(READ_CHUNK);
            let start = payload.len();
            payload.resize(start + want, 0);
            let n = reader.read(&mut payload[start..]).await?;
            payload.truncate(start + n);
            if n == 0 {
                return Err(FrameError::Truncated);
            }
        }
        Ok(Some(Bytes::from(payload)))
    }
}

/// Writes one frame to a stream.
pub async fn write<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
) -> Result<(), FrameError> {
    let frame = encode(payload)?;
    writer.write_all(&frame).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips_any_split(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8), split in 0usize..2000) {
            let mut wire = BytesMut::new();
            for p in &payloads {
                wire.extend_from_slice(&encode(p).unwrap());
            }
            let split = split.min(wire.len());
            let dec = FrameDecoder::new(1024);
            let mut buf = BytesMut::from(&wire[..split]);
            let mut out = Vec::new();
            while let Some(f) = dec.decode(&mut buf).unwrap() { out.push(f.to_vec()); }
            buf.extend_from_slice(&wire[split..]);
            while let Some(f) = dec.decode(&mut buf).unwrap() { out.push(f.to_vec()); }
            prop_assert_eq!(out, payloads);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let dec = FrameDecoder::new(16);
            let mut buf = BytesMut::from(&data[..]);
            for _ in 0..64 {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => prop_assert!(f.len() <= 16),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn oversized_and_bad_version_are_refused_before_allocation() {
        let dec = FrameDecoder::new(100);
        let mut huge = BytesMut::from(&[FRAME_VERSION, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            dec.decode(&mut huge),
            Err(FrameError::TooLarge { max: 100, .. })
        ));
        let mut v2 = BytesMut::from(&[2u8, 0, 0, 0, 1, 7][..]);
        assert!(matches!(dec.decode(&mut v2), Err(FrameError::Version(2))));
    }

    #[tokio::test]
    async fn stream_reader_reports_truncation_and_clean_end() {
        let dec = FrameDecoder::new(100);
        let frame = encode(b"hello").unwrap();
        let mut whole: &[u8] = &frame;
        assert_eq!(dec.read(&mut whole).await.unwrap().unwrap(), &b"hello"[..]);
        assert!(dec.read(&mut whole).await.unwrap().is_none());
        let mut cut: &[u8] = &frame[..7];
        assert!(matches!(
            dec.read(&mut cut).await,
            Err(FrameError::Truncated)
        ));
        let mut huge: &[u8] = &[FRAME_VERSION, 0x7f, 0, 0, 0];
        assert!(matches!(
            dec.read(&mut huge).await,
            Err(FrameError::TooLarge { .. })
        ));
    }

    /// A reader that records the largest buffer it was asked to fill.
    struct Widest<'a> {
        data: &'a [u8],
        widest: usize,
    }

    impl AsyncRead for Widest<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.widest = self.widest.max(buf.remaining());
            let n = buf.remaining().min(self.data.len());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn an_announced_length_is_believed_only_as_bytes_arrive() {
        // 64 MiB announced, 10 bytes sent: the buffer never grows past one chunk ahead.
        let dec = FrameDecoder::new(64 << 20);
        let mut data = vec![FRAME_VERSION];
        data.extend_from_slice(&(64u32 << 20).to_be_bytes());
        data.extend_from_slice(&[7; 10]);
        let mut r = Widest {
            data: &data,
            widest: 0,
        };
        assert!(matches!(dec.read(&mut r).await, Err(FrameError::Truncated)));
        assert!(r.widest <= READ_CHUNK, "asked to fill {} bytes", r.widest);
        // A whole large frame still arrives intact across many chunks.
        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let frame = encode(&big).unwrap();
        let mut r = Widest {
            data: &frame,
            widest: 0,
        };
        assert_eq!(dec.read(&mut r).await.unwrap().unwrap(), &big[..]);
    }
}
