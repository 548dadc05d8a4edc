//! A connection with a small write buffer, so that a response header and a small body leave in
//! one `send` instead of two.
//!
//! pingora's `Stream` built from a `TcpStream` writes unbuffered (its buffer setter is
//! crate-private), so its HTTP/1 session sends the header and the body separately. pingora
//! flushes at the end of every response (`finish_body`, or after a header with no body), so
//! buffering here never holds a response back; writes at least as large as the buffer go
//! straight to the socket.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};

/// Bytes a response may collect before it is sent: a header block plus a 16 KiB file.
const WRITE_BUFFER: usize = 20 * 1024;

/// A TCP connection with a write buffer, usable as a pingora `Stream`.
#[derive(Debug)]
pub(crate) struct BufferedConn(BufWriter<L4Stream>);

impl BufferedConn {
    pub(crate) fn new(tcp: tokio::net::TcpStream) -> Self {
        Self(BufWriter::with_capacity(WRITE_BUFFER, L4Stream::from(tcp)))
    }
}

impl AsyncRead for BufferedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for BufferedConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for BufferedConn {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(&mut self.0).await;
    }
}

impl UniqueID for BufferedConn {
    fn id(&self) -> UniqueIDType {
        self.0.get_ref().id()
    }
}

impl Ssl for BufferedConn {}

#[async_trait]
impl Peek for BufferedConn {}

impl GetTimingDigest for BufferedConn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.0.get_ref().get_timing_digest()
    }
}

impl GetProxyDigest for BufferedConn {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.0.get_ref().get_proxy_digest()
    }
}

impl GetSocketDigest for BufferedConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.0.get_ref().get_socket_digest()
    }

    fn set_socket_digest(&mut self, d: SocketDigest) {
        self.0.get_mut().set_socket_digest(d);
    }
}
