//! The emulated WAN under libp2p's TCP transport (noise and yamux run on top of it).
//!
//! libp2p's QUIC transport binds its own UDP socket and offers no hook to wrap it, so under
//! emulation the control plane runs on TCP only (see [`crate::control`]), and every TCP
//! connection is passed through a delay line *on the dialing side*: bytes it writes reach the
//! socket half the link's RTT later, and bytes it reads reach libp2p half the RTT after they
//! arrived, so a request and its answer pay the full RTT of the matrix whichever side asks.
//! Only the dialer can do this because only it knows both ends: the listener sees an ephemeral
//! source port that was never placed on the matrix.
//!
//! A cut link refuses new connections and closes an open one at the next byte that crosses it,
//! as a dead path would after TCP's retransmissions gave up. Random loss is not applied: TCP
//! would retransmit a lost segment, and what that costs (a retransmission timeout) is not
//! emulated here.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::Either;
use libp2p::core::ConnectedPoint;
use libp2p::tcp::tokio::TcpStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use tokio_util::sync::CancellationToken;

use crate::wan::{WanEmulator, WanLink};

/// The stream libp2p upgrades: the raw socket (listener side, or an unplaced peer) or the
/// dialer's delay line.
pub(crate) type WanStream = Either<TcpStream, Compat<DuplexStream>>;

/// Bytes buffered between libp2p and the delay line, per direction.
const PIPE_BYTES: usize = 64 * 1024;
/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction: 1 MiB, ten times the control plane's largest message,
/// so the line limits latency, not bandwidth.
const IN_FLIGHT: usize = 64;

/// A TCP stream that is not on an emulated WAN, as the same type.
pub(crate) fn plain(stream: TcpStream) -> WanStream {
    Either::Left(stream)
}

/// `/ip4/A/udp/N/quic-v1` as `/ip4/A/tcp/N` (same port), for a control plane on TCP only
/// (with a network key) whose bootstrap addresses were written for QUIC.
pub(crate) fn tcp_same_port(addr: &libp2p::Multiaddr) -> libp2p::Multiaddr {
    use libp2p::multiaddr::Protocol;
    let mut out = libp2p::Multiaddr::empty();
    for p in addr.iter() {
        match p {
            Protocol::Udp(port) => out.push(Protocol::Tcp(port)),
            Protocol::QuicV1 | Protocol::Quic => {}
            other => out.push(other),
        }
    }
    out
}

/// Puts a freshly connected TCP stream under the emulated WAN (see the module doc).
pub(crate) fn attach(
    link: &WanLink,
    stream: TcpStream,
    endpoint: &ConnectedPoint,
) -> io::Result<WanStream> {
    if !endpoint.is_dialer() {
        return Ok(Either::Left(stream));
    }
    let remote = stream.0.peer_addr()?;
    let Some(peer) = link.emulator.position(remote) else {
        return Ok(Either::Left(stream));
    };
    let (me, wan) = (link.position, &link.emulator);
    if wan.is_cut(me, peer) {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("emulated WAN: link to {remote} is cut"),
        ));
    }
    let (app, line) = tokio::io::duplex(PIPE_BYTES);
    let (socket_rx, socket_tx) = stream.0.into_split();
    let (line_rx, line_tx) = tokio::io::split(line);
    // Either direction ending (EOF, error, cut) closes the whole connection.
    let closed = CancellationToken::new();
    let ends = (me, peer);
    tokio::spawn(relay(line_rx, socket_tx, wan.clone(), ends, closed.clone()));
    tokio::spawn(relay(socket_rx, line_tx, wan.clone(), ends, closed));
    Ok(Either::Right(app.compat()))
}

/// Copies `from` to `to`, each chunk released one way of link (a, b) after it was read, until
/// either side closes, the link is cut, or the other direction ends.
async fn relay(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    wan: Arc<WanEmulator>,
    (a, b): (usize, usize),
    closed: CancellationToken,
) {
    let delay = wan.one_way(a, b);
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let read = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = Instant::now() + delay;
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        drop(tx);
        // Wait for the writer to flush what is in flight.
        std::future::pending::<()>().await;
    };
    let write = async {
        while let Some((due, data)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if wan.is_cut(a, b) || to.write_all(&data).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::select! {
        _ = read => {}
        _ = write => {}
        _ = closed.cancelled() => {}
    }
    closed.cancel();
}

/// The libp2p TCP listen address for a QUIC one under emulation: same IP, TCP, port 0.
pub(crate) fn tcp_instead_of_quic(addr: &libp2p::Multiaddr) -> libp2p::Multiaddr {
    use libp2p::multiaddr::Protocol;
    let mut out = libp2p::Multiaddr::empty();
    for p in addr.iter() {
        match p {
            Protocol::Udp(_) => out.push(Protocol::Tcp(0)),
            Protocol::QuicV1 | Protocol::Quic => {}
            other => out.push(other),
        }
    }
    out
}

/// The socket address of an `/ip4|ip6/.../tcp/N` multiaddr.
pub(crate) fn tcp_socket_addr(addr: &libp2p::Multiaddr) -> Option<SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(port) => return ip.map(|ip| SocketAddr::new(ip, port)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_listen_becomes_tcp() {
        let quic: libp2p::Multiaddr = "/ip4/127.0.0.1/udp/4301/quic-v1".parse().unwrap();
        let tcp = tcp_instead_of_quic(&quic);
        assert_eq!(tcp.to_string(), "/ip4/127.0.0.1/tcp/0");
        let bound: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/5000".parse().unwrap();
        assert_eq!(
            tcp_socket_addr(&bound),
            Some("127.0.0.1:5000".parse().unwrap())
        );
        assert_eq!(tcp_socket_addr(&quic), None);
    }
}
