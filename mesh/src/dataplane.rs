//! The QUIC data plane: one quinn endpoint per node, authenticated with the node's Ed25519 key,
//! protocols routed by ALPN.
//!
//! TLS is libp2p-tls: each side presents a self-signed certificate carrying its host key in the
//! signed libp2p extension, and the dialer's verifier refuses any peer but the one it expected
//! (the listener learns the dialer's peer id the same way from its client certificate). So a
//! `PeerId` handed to a protocol handler is authenticated.
//!
//! Connections are cached per (peer, protocol) and reused; keep-alives make the connection RTT
//! a live measurement that [`DataPlane::rtts`] exposes to the coordinates and the directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use libp2p::identity::{Keypair, PeerId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio_util::sync::CancellationToken;

pub use quinn::{Connection, RecvStream, SendStream};

use crate::wan::WanEmulator;

/// Longest accepted ALPN protocol name.
pub const MAX_ALPN_LEN: usize = 64;
/// The SNI name every dial uses (the peer id is what gets verified, not a host name).
const SERVER_NAME: &str = "proxima";

/// Handles one authenticated incoming connection of a registered protocol.
pub type ConnectionHandler =
    Arc<dyn Fn(PeerId, Connection) -> BoxFuture<'static, ()> + Send + Sync>;

/// Tuning of the data plane.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// A connection with no traffic for this long is closed (keep-alives prevent it while the
    /// peer lives, so a dead peer's connection goes away after about this long).
    pub idle_timeout: Duration,
    /// Keep-alive interval (also refreshes the RTT estimate).
    pub keep_alive: Duration,
    /// Bound on a connection handshake.
    pub connect_timeout: Duration,
    /// Incoming connections served at once.
    pub max_incoming: usize,
    /// A private deployment's network key: every connection must prove it knows the key
    /// before any protocol handler sees it ([`network_proof`]); strangers are closed.
    pub network_key: Option<[u8; 32]>,
}

/// How long a listener waits for a dialer's network-key proof.
const PROOF_TIMEOUT: Duration = Duration::from_secs(3);

/// The proof a dialer sends on its first unidirectional stream when a network key is set: a
/// keyed BLAKE3 hash of both peer ids and the protocol, so it cannot be replayed to another
/// peer or for another identity, and it travels inside TLS.
pub fn network_proof(key: &[u8; 32], dialer: &PeerId, listener: &PeerId, alpn: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"proxima/network-key/1\0");
    for part in [dialer.to_bytes(), listener.to_bytes(), alpn.to_vec()] {
        h.update(&(part.len() as u32).to_be_bytes());
        h.update(&part);
    }
    *h.finalize().as_bytes()
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_millis(1000),
            connect_timeout: Duration::from_secs(3),
            max_incoming: 1024,
            network_key: None,
        }
    }
}

/// A data-plane failure, saying whose fault it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataPlaneError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the QUIC endpoint on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS configuration could not be built (a local problem).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The ALPN name is empty or too long.
    #[error("invalid protocol name (1..={MAX_ALPN_LEN} bytes)")]
    BadAlpn,
    /// The dial could not start (bad address, endpoint closed).
    #[error("cannot dial {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: quinn::ConnectError,
    },
    /// The connection failed or was closed (the peer is down, refused us, or is not who we
    /// expected: the TLS verifier refuses a wrong peer id).
    #[error("connection to {peer} failed: {source}")]
    Connection {
        /// The expected peer.
        peer: PeerId,
        /// Why.
        source: Box<quinn::ConnectionError>,
    },
    /// The peer is not a member this node knows (no address to dial).
    #[error("{0} is not a known member")]
    UnknownPeer(PeerId),
    /// The handshake took longer than the configured bound.
    #[error("connecting to {peer} at {addr} timed out")]
    Timeout {
        /// The expected peer.
        peer: PeerId,
        /// Where.
        addr: SocketAddr,
    },
}

type ConnSlot = Arc<tokio::sync::Mutex<Option<Connection>>>;
/// One outgoing connection per peer, protocol and address dialled.
type SlotKey = (PeerId, Vec<u8>, SocketAddr);

struct Inner {
    endpoint: quinn::Endpoint,
    keypair: Keypair,
    local_peer: PeerId,
    config: DataPlaneConfig,
    transport: Arc<quinn::TransportConfig>,
    handlers: RwLock<HashMap<Vec<u8>, ConnectionHandler>>,
    outgoing: Mutex<HashMap<SlotKey, ConnSlot>>,
    /// Every live connection (both directions) by quinn's stable id.
    live: Mutex<HashMap<usize, (PeerId, Connection)>>,
    shutdown: CancellationToken,
    /// Incoming connections closed for lack of the network key.
    refused_network_key: prometheus_client::metrics::counter::Counter,
}

/// Dropped with the runtime's tasks: closes the endpoint and drops every handler, connection
/// and cached dial, so nothing keeps the socket alive.
struct ReleaseOnDrop(std::sync::Weak<Inner>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        inner.shutdown.cancel();
        inner.endpoint.close(0u32.into(), b"stopped");
        let handlers =
            std::mem::take(&mut *inner.handlers.write().unwrap_or_else(|e| e.into_inner()));
        let live = std::mem::take(&mut *inner.live.lock().unwrap_or_else(|e| e.into_inner()));
        let outgoing =
            std::mem::take(&mut *inner.outgoing.lock().unwrap_or_else(|e| e.into_inner()));
        drop(inner);
        // Dropped last, outside the locks: a handler may hold the last handle to the plane.
        drop((handlers, live, outgoing));
    }
}

/// Handle to the node's QUIC endpoint. Cheap to clone.
#[derive(Clone)]
pub struct DataPlane {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("peer", &self.inner.local_peer)
            .field("addr", &self.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl DataPlane {
    /// Binds the endpoint on `addr` (port 0 picks one) and starts accepting. `wan` routes every
    /// datagram through a user-space WAN emulator (tests and benchmarks). Must run inside a
    /// tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        keypair: Keypair,
        config: DataPlaneConfig,
        wan: Option<Arc<WanEmulator>>,
    ) -> Result<Self, DataPlaneError> {
        let bind_err = |source| DataPlaneError::Bind { addr, source };
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
        let mut udp = runtime.wrap_udp_socket(socket).map_err(bind_err)?;
        if let Some(wan) = wan {
            udp = wan.wrap(udp).map_err(bind_err)?;
        }
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(config.idle_timeout)
                    .map_err(|e| DataPlaneError::Tls(e.to_string()))?,
            ))
            .keep_alive_interval(Some(config.keep_alive));
        let transport = Arc::new(transport);
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            None,
            udp,
            runtime,
        )
        .map_err(bind_err)?;
        let local_peer = keypair.public().to_peer_id();
        let inner = Arc::new(Inner {
            endpoint,
            keypair,
            local_peer,
            config,
            transport,
            handlers: RwLock::new(HashMap::new()),
            outgoing: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            refused_network_key: Default::default(),
        });
        let plane = Self { inner };
        plane.refresh_server_config()?;
        tokio::spawn(plane.clone().accept_loop());
        // When the runtime that owns the node goes away (a node killed in-process), release
        // the socket even if a handler closure still holds a handle to this plane (a cycle
        // through `handlers` would otherwise keep the port bound for the life of the process).
        let guard = ReleaseOnDrop(Arc::downgrade(&plane.inner));
        tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        Ok(plane)
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// This node's peer id.
    pub fn local_peer(&self) -> PeerId {
        self.inner.local_peer
    }

    /// Incoming connections closed because they did not prove the network key.
    pub fn refused_network_key(&self) -> prometheus_client::metrics::counter::Counter {
        self.inner.refused_network_key.clone()
    }

    /// Serves protocol `alpn`: every authenticated incoming connection that negotiated it is
    /// handed to `handler` (which owns it until it returns).
    pub fn serve(&self, alpn: &[u8], handler: ConnectionHandler) -> Result<(), DataPlaneError> {
        if alpn.is_empty() || alpn.len() > MAX_ALPN_LEN {
            return Err(DataPlaneError::BadAlpn);
        }
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(alpn.to_vec(), handler);
        self.refresh_server_config()
    }

    /// Serves protocol `alpn` stream by stream: `handler(peer, send, recv)` runs for every
    /// bidirectional stream a peer opens (quinn bounds the concurrent streams per connection).
    pub fn serve_streams<F>(&self, alpn: &[u8], handler: F) -> Result<(), DataPlaneError>
    where
        F: Fn(PeerId, SendStream, RecvStream) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.serve(
            alpn,
            Arc::new(move |peer, conn: Connection| {
                let handler = handler.clone();
                Box::pin(async move {
                    while let Ok((send, recv)) = conn.accept_bi().await {
                        tokio::spawn(handler(peer, send, recv));
                    }
                })
            }),
        )
    }

    fn refresh_server_config(&self) -> Result<(), DataPlaneError> {
        let mut tls = libp2p::tls::make_server_config(&self.inner.keypair)
            .map_err(|e| DataPlaneError::Tls(e.to_string()))?;
        tls.alpn_protocols = self
            .inner
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let crypto =
            QuicServerConfig::try_from(tls).map_err(|e| DataPlaneError::Tls(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(self.inner.transport.clone());
        self.inner.endpoint.set_server_config(Some(server));
        Ok(())
    }

    /// A connection to `peer` at `addr` for protocol `alpn`, reused while it lives. The TLS
    /// handshake fails unless the remote proves it holds `peer`'s key.
    pub async fn connect(
        &self,
        peer: PeerId,
        addr: SocketAddr,
        alpn: &[u8],
    ) -> Result<Connection, DataPlaneError> {
        if alpn.is_empty() || alpn.len() > MAX_ALPN_LEN {
            return Err(DataPlaneError::BadAlpn);
        }
        let slot = self
            .inner
            .outgoing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((peer, alpn.to_vec(), addr))
            .or_default()
            .clone();
        // One dial at a time per (peer, protocol, address): concurrent callers wait and share
        // it. The address is part of the key so that a dial to a restarted peer's previous
        // address (which hangs until the connect timeout: nothing answers there) cannot hold
        // up traffic to its new one, such as a goodbye that must land within the leave deadline.
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref()
            && conn.close_reason().is_none()
        {
            return Ok(conn.clone());
        }
        let mut tls = libp2p::tls::make_client_config(&self.inner.keypair, Some(peer))
            .map_err(|e| DataPlaneError::Tls(e.to_string()))?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| DataPlaneError::Tls(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(self.inner.transport.clone());
        let connecting = self
            .inner
            .endpoint
            .connect_with(client, addr, SERVER_NAME)
            .map_err(|source| DataPlaneError::Connect { addr, source })?;
        let conn = tokio::time::timeout(self.inner.config.connect_timeout, connecting)
            .await
            .map_err(|_| DataPlaneError::Timeout { peer, addr })?
            .map_err(|source| DataPlaneError::Connection {
                peer,
                source: Box::new(source),
            })?;
        if let Some(key) = &self.inner.config.network_key {
            // The proof goes on the connection's first unidirectional stream, before any
            // other stream is opened on it.
            let me = self.inner.keypair.public().to_peer_id();
            let proof = network_proof(key, &me, &peer, alpn);
            let mut s = conn
                .open_uni()
                .await
                .map_err(|e| DataPlaneError::Connection {
                    peer,
                    source: Box::new(e),
                })?;
            let sent = s.write_all(&proof).await.is_ok() && s.finish().is_ok();
            if !sent {
                return Err(DataPlaneError::Tls(
                    "cannot send the network-key proof".into(),
                ));
            }
        }
        self.track(peer, conn.clone());
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Opens a bidirectional stream to `peer` for protocol `alpn` (reusing a live connection;
    /// redialing once if the cached one just died).
    pub async fn open_bi(
        &self,
        peer: PeerId,
        addr: SocketAddr,
        alpn: &[u8],
    ) -> Result<(SendStream, RecvStream), DataPlaneError> {
        let conn = self.connect(peer, addr, alpn).await?;
        match conn.open_bi().await {
            Ok(s) => Ok(s),
            Err(_) => {
                let conn = self.connect(peer, addr, alpn).await?;
                conn.open_bi()
                    .await
                    .map_err(|source| DataPlaneError::Connection {
                        peer,
                        source: Box::new(source),
                    })
            }
        }
    }

    /// Opens a unidirectional stream to `peer` for protocol `alpn`.
    pub async fn open_uni(
        &self,
        peer: PeerId,
        addr: SocketAddr,
        alpn: &[u8],
    ) -> Result<SendStream, DataPlaneError> {
        let conn = self.connect(peer, addr, alpn).await?;
        match conn.open_uni().await {
            Ok(s) => Ok(s),
            Err(_) => {
                let conn = self.connect(peer, addr, alpn).await?;
                conn.open_uni()
                    .await
                    .map_err(|source| DataPlaneError::Connection {
                        peer,
                        source: Box::new(source),
                    })
            }
        }
    }

    /// Closes and forgets the cached outgoing connections to `peer` (it restarted or died: a
    /// connection to its previous process would only swallow packets until it times out).
    pub fn forget(&self, peer: &PeerId) {
        let mut out = self
            .inner
            .outgoing
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        out.retain(|(p, _, _), slot| {
            if p != peer {
                return true;
            }
            if let Ok(guard) = slot.try_lock()
                && let Some(conn) = guard.as_ref()
            {
                conn.close(3u32.into(), b"peer restarted or died");
            }
            false
        });
    }

    /// The smoothed RTT of the live connections, lowest per peer: measurements, not estimates.
    pub fn rtts(&self) -> HashMap<PeerId, Duration> {
        let mut out: HashMap<PeerId, Duration> = HashMap::new();
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        for (peer, conn) in live.values() {
            if conn.close_reason().is_some() {
                continue;
            }
            let rtt = conn.rtt();
            out.entry(*peer)
                .and_modify(|r| *r = (*r).min(rtt))
                .or_insert(rtt);
        }
        out
    }

    /// Closes every connection and the endpoint (peers see a clean close, not a timeout).
    pub fn close(&self) {
        self.inner.shutdown.cancel();
        self.inner.endpoint.close(0u32.into(), b"shutdown");
    }

    /// Waits until the peers have been told about closed connections (bounded by the caller).
    pub async fn wait_idle(&self) {
        self.inner.endpoint.wait_idle().await;
    }

    fn track(&self, peer: PeerId, conn: Connection) {
        let id = conn.stable_id();
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (peer, conn.clone()));
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            conn.closed().await;
            if let Some(inner) = inner.upgrade() {
                inner
                    .live
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            }
        });
    }

    async fn accept_loop(self) {
        let permits = Arc::new(tokio::sync::Semaphore::new(self.inner.config.max_incoming));
        loop {
            let incoming = tokio::select! {
                _ = self.inner.shutdown.cancelled() => break,
                i = self.inner.endpoint.accept() => i,
            };
            let Some(incoming) = incoming else { break };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                incoming.refuse();
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let timeout = this.inner.config.connect_timeout;
                let conn = match tokio::time::timeout(timeout, incoming).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "incoming QUIC handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let (Some(peer), Some(alpn)) = (remote_peer(&conn), negotiated_alpn(&conn)) else {
                    conn.close(1u32.into(), b"unauthenticated");
                    return;
                };
                let handler = this
                    .inner
                    .handlers
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&alpn)
                    .cloned();
                let Some(handler) = handler else {
                    conn.close(2u32.into(), b"unknown protocol");
                    return;
                };
                if let Some(key) = &this.inner.config.network_key {
                    let me = this.inner.keypair.public().to_peer_id();
                    let want = network_proof(key, &peer, &me, &alpn);
                    let got = tokio::time::timeout(PROOF_TIMEOUT, async {
                        let mut s = conn.accept_uni().await.ok()?;
                        let mut proof = [0u8; 32];
                        s.read_exact(&mut proof).await.ok()?;
                        Some(proof)
                    })
                    .await
                    .ok()
                    .flatten();
                    // Compared as BLAKE3 hashes: constant time.
                    if got.map(blake3::Hash::from) != Some(blake3::Hash::from(want)) {
                        this.inner.refused_network_key.inc();
                        tracing::debug!(%peer, "connection without the network key refused");
                        conn.close(3u32.into(), b"network key");
                        return;
                    }
                }
                this.track(peer, conn.clone());
                handler(peer, conn).await;
            });
        }
    }
}

/// The authenticated peer id of a connection (from the libp2p certificate extension).
pub fn remote_peer(conn: &Connection) -> Option<PeerId> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    let end_entity = certs.first()?;
    libp2p::tls::certificate::parse(end_entity)
        .ok()
        .map(|c| c.peer_id())
}

fn negotiated_alpn(conn: &Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}
