//! Sockets: UDP served by plain threads (one per `SO_REUSEPORT` socket) that run the
//! synchronous request path inline, and TCP served by hickory-server with the same engine
//! behind its [`RequestHandler`]. Forwarding misses go to async tasks on the node's runtime.
//!
//! Why threads for UDP: the common answer costs a few hundred nanoseconds of work; a
//! task per datagram through an async reactor would cost more than the work. Each thread
//! receives with `recvmmsg` (every datagram already queued, up to a batch, once one arrives)
//! and sends the answers with one `sendmmsg`, as Knot and NSD do: under load the system calls
//! and wake-ups, not the request path, are most of the cost. A blocking receive with a short
//! timeout lets the thread notice shutdown.
//!
//! Lifetime: the threads stop when the node shuts down gracefully *or* when its runtime is
//! dropped (a killed node): a guard owned by a task of the runtime raises the stop flag when it
//! is dropped either way.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Message, MessageType, Metadata, OpCode};
use hickory_proto::rr::LowerName;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use prometheus_client::registry::Registry;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::authority::Authority;
use crate::config::DnsConfig;
use crate::engine::{Engine, EngineParts, Step, Transport};
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::zones::{SiteSteering, ZoneSource};

/// Largest UDP datagram read (anything longer is not a DNS query we answer).
const MAX_UDP: usize = 4096;
/// Forwarding misses waiting for a task; beyond this, new ones are dropped (clients retry).
const FORWARD_QUEUE: usize = 1024;
/// Forwarded queries in flight at once.
const FORWARD_IN_FLIGHT: usize = 512;
/// How often UDP threads look at the stop flag when idle.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Idle TCP connections are closed after this long.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::DnsConfigError),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A thread could not be spawned.
    #[error("cannot spawn a DNS thread: {0}")]
    Thread(std::io::Error),
}

/// A running DNS service.
#[derive(Debug, Clone)]
pub struct DnsHandle {
    addr: SocketAddr,
    upstreams: Vec<SocketAddr>,
    engine: Arc<Engine>,
    /// Stops this service only (a child of the node's token).
    stop: CancellationToken,
    /// This service's tasks.
    tasks: TaskTracker,
}

impl DnsHandle {
    /// The real address (UDP and TCP share the port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream resolvers in use.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The request path (for in-process benchmarks and tools).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Stops the service (the node's shutdown does too): sockets close, tasks end.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until every task of the service has ended (after a shutdown).
    pub async fn join(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// What the DNS service is given by whoever starts it.
pub struct Deps<'a> {
    /// The zones of the ledger TLDs (verified by their source).
    pub zones: Arc<dyn ZoneSource>,
    /// Which addresses answer for a site name ([`crate::LocalSteering`] outside a mesh).
    pub steering: Arc<dyn SiteSteering>,
    /// Registry to register metrics into (the caller chooses the prefix).
    pub registry: &'a mut Registry,
    /// Cancelled when the node shuts down: stops everything.
    pub shutdown: CancellationToken,
    /// Where the service's tasks are tracked, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

/// Starts the DNS service on `listen` (port 0 picks a free port shared by UDP and TCP),
/// answering the ledger TLDs from `deps.zones` and forwarding the rest. Tasks run on the
/// current runtime.
pub async fn start(
    config: &DnsConfig,
    listen: SocketAddr,
    deps: Deps<'_>,
) -> Result<DnsHandle, StartError> {
    let Deps {
        zones,
        steering,
        registry,
        shutdown: parent,
        tracker: node_tracker,
    } = deps;
    // The service's own token and tasks, so that it can be stopped and joined alone; the
    // node's tracker waits for them.
    let shutdown = parent.child_token();
    let tasks = TaskTracker::new();
    let tracker = &tasks;
    config.validate()?;
    let n_udp = match config.udp_sockets {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (udp, tcp) = bind(listen, n_udp)?;
    let addr = tcp.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let upstreams = config.resolved_upstreams(addr);
    if upstreams.is_empty() {
        tracing::warn!("no upstream resolver: names outside the ledger TLDs will get SERVFAIL");
    }
    let metrics = Metrics::register(registry);
    let serial = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(1));
    let parts = EngineParts {
        authority: Authority::new(
            &config.tlds,
            config.negative_ttl,
            config.steering_ttl,
            serial,
        ),
        forwarder: Forwarder::new(
            upstreams.clone(),
            config.forward_timeout,
            config.forward_cache_entries,
        ),
        allowed: config.allowed_clients.clone(),
        rate_limit: config.rate_limit,
    };
    let engine = Arc::new(Engine::new(parts, zones, steering, metrics.clone()));

    // Stop flag for the threads, raised by a guard that lives in a task of this runtime.
    let stop = Arc::new(AtomicBool::new(false));
    let guard = StopGuard(stop.clone());
    let token = shutdown.clone();
    tracker.spawn(async move {
        token.cancelled().await;
        drop(guard);
    });

    // Zone changes invalidate ready answers.
    let mut changes = engine.zones().subscribe();
    let (e, token) = (engine.clone(), shutdown.clone());
    tracker.spawn(async move {
        let mut purge = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = purge.tick() => e.purge(),
                change = changes.recv() => match change {
                    Ok(apex) => e.invalidate(&LowerName::new(&apex)),
                    // Missed some: everything may be stale.
                    Err(broadcast::error::RecvError::Lagged(_)) => e.invalidate(&LowerName::from(hickory_proto::rr::Name::root())),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    });

    // Forwarding misses from the UDP threads.
    let (fwd_tx, mut fwd_rx) =
        mpsc::channel::<(Box<Message>, SocketAddr, Arc<UdpSocket>)>(FORWARD_QUEUE);
    let (e, token) = (engine.clone(), shutdown.clone());
    let inner = tracker.clone();
    tracker.spawn(async move {
        let permits = Arc::new(Semaphore::new(FORWARD_IN_FLIGHT));
        loop {
            let job = tokio::select! {
                _ = token.cancelled() => break,
                job = fwd_rx.recv() => job,
            };
            let Some((req, src, sock)) = job else { break };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let e = e.clone();
            inner.spawn(async move {
                let mut out = Vec::with_capacity(512);
                e.forward(&req, Transport::Udp, &mut out).await;
                // A blocking-mode socket: a UDP send does not wait for the peer, only for
                // buffer space, which is there unless the host is saturated.
                if let Err(err) = sock.send_to(&out, src) {
                    tracing::debug!(%src, error = %err, "cannot send a forwarded answer");
                }
                drop(permit);
            });
        }
    });

    for (i, sock) in udp.into_iter().enumerate() {
        let sock = Arc::new(sock);
        let (e, stop, tx, m) = (
            engine.clone(),
            stop.clone(),
            fwd_tx.clone(),
            metrics.clone(),
        );
        std::thread::Builder::new()
            .name(format!("proxima-dns-udp{i}"))
            .spawn(move || udp_loop(&e, &sock, &stop, &tx, &m))
            .map_err(StartError::Thread)?;
    }

    let mut server = hickory_server::Server::new(TcpHandler {
        engine: engine.clone(),
    });
    server.register_listener(tcp, TCP_TIMEOUT, 65_535);
    let token = shutdown.clone();
    tracker.spawn(async move {
        token.cancelled().await;
        if let Err(e) = server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "DNS TCP server stopped with an error");
        }
    });

    tracing::info!(%addr, upstreams = ?upstreams, tlds = ?config.tlds, udp_sockets = n_udp, "DNS listening");
    let waiter = tasks.clone();
    node_tracker.spawn(async move {
        waiter.close();
        waiter.wait().await;
    });
    Ok(DnsHandle {
        addr,
        upstreams,
        engine,
        stop: shutdown,
        tasks,
    })
}

struct StopGuard(Arc<AtomicBool>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

type ForwardTx = mpsc::Sender<(Box<Message>, SocketAddr, Arc<UdpSocket>)>;

fn udp_loop(
    engine: &Engine,
    sock: &Arc<UdpSocket>,
    stop: &AtomicBool,
    fwd: &ForwardTx,
    m: &Metrics,
) {
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.receive(sock) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems: not fatal.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        for i in 0..received {
            let Some(src) = batch.source(i) else {
                continue;
            };
            let (pkt, out) = batch.request_and_reply_buffer(i);
            match engine.handle(pkt, src, Transport::Udp, out) {
                Step::Reply => batch.reply(i),
                Step::Drop => {}
                Step::Forward(req) => {
                    if fwd.try_send((req, src, sock.clone())).is_err() {
                        m.dropped.inc();
                    }
                }
            }
        }
        batch.send(sock);
    }
    tracing::debug!("DNS UDP thread stopped");
}

/// Datagrams received and answered per system call: `recvmmsg` takes whatever is queued (up to
/// this many) once the first one arrives, `sendmmsg` sends the answers together. Under load this
/// turns two system calls and a wake-up per query into two per batch.
const BATCH: usize = 32;

/// Buffers of one UDP thread for a batch of requests and their replies.
struct Batch {
    /// Request buffers, [`MAX_UDP`] bytes each.
    bufs: Vec<Vec<u8>>,
    /// Request lengths and sources of the last receive.
    got: Vec<(usize, Option<SockaddrStorage>)>,
    /// Reply buffers, one per request slot.
    outs: Vec<Vec<u8>>,
    /// Slots whose reply is ready to send, in order.
    ready: Vec<usize>,
    recv_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    fn new() -> Self {
        Self {
            bufs: vec![vec![0u8; MAX_UDP]; BATCH],
            got: Vec::with_capacity(BATCH),
            outs: (0..BATCH).map(|_| Vec::with_capacity(MAX_UDP)).collect(),
            ready: Vec::with_capacity(BATCH),
            recv_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Waits (up to the socket's read timeout) for at least one datagram and takes every one
    /// already queued, up to [`BATCH`]; returns how many.
    fn receive(&mut self, sock: &UdpSocket) -> std::io::Result<usize> {
        self.got.clear();
        self.ready.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(b.as_mut_slice())])
            .collect();
        let msgs = recvmmsg(
            sock.as_raw_fd(),
            &mut self.recv_headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(std::io::Error::from)?;
        self.got.extend(msgs.map(|r| (r.bytes, r.address)));
        Ok(self.got.len())
    }

    /// Where request `i` came from.
    fn source(&self, i: usize) -> Option<SocketAddr> {
        let addr = self.got[i].1.as_ref()?;
        if let Some(v4) = addr.as_sockaddr_in() {
            return Some(SocketAddr::V4((*v4).into()));
        }
        addr.as_sockaddr_in6()
            .map(|v6| SocketAddr::V6((*v6).into()))
    }

    /// Request `i` and the buffer for its reply.
    fn request_and_reply_buffer(&mut self, i: usize) -> (&[u8], &mut Vec<u8>) {
        let len = self.got[i].0.min(MAX_UDP);
        (&self.bufs[i][..len], &mut self.outs[i])
    }

    /// Marks the reply of request `i` as ready.
    fn reply(&mut self, i: usize) {
        self.ready.push(i);
    }

    /// Sends every ready reply, in as few system calls as the kernel allows.
    fn send(&mut self, sock: &UdpSocket) {
        let mut done = 0;
        while done < self.ready.len() {
            let pending = &self.ready[done..];
            let slices: Vec<[IoSlice<'_>; 1]> = pending
                .iter()
                .map(|&i| [IoSlice::new(&self.outs[i])])
                .collect();
            let addrs: Vec<Option<SockaddrStorage>> =
                pending.iter().map(|&i| self.got[i].1).collect();
            let sent = sendmmsg(
                sock.as_raw_fd(),
                &mut self.send_headers,
                slices.iter(),
                &addrs,
                [] as [ControlMessage<'_>; 0],
                MsgFlags::empty(),
            );
            match sent {
                Ok(r) => {
                    let n = r.count();
                    // Nothing sent without an error would loop forever: give up on the batch.
                    if n == 0 {
                        break;
                    }
                    done += n;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    // The first pending reply failed (unreachable client, full buffer): skip it.
                    tracing::debug!(error = %e, "UDP send failed");
                    done += 1;
                }
            }
        }
    }
}

/// Binds `n` UDP sockets (SO_REUSEPORT when more than one) and a TCP listener on one port.
fn bind(
    listen: SocketAddr,
    n: usize,
) -> Result<(Vec<UdpSocket>, tokio::net::TcpListener), StartError> {
    let err = |source| StartError::Bind {
        addr: listen,
        source,
    };
    // With port 0 the UDP port is picked first; TCP may find it taken, so try a few.
    let attempts = if listen.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first = udp_socket(listen, n > 1).map_err(err)?;
        let port = first.local_addr().map_err(err)?.port();
        let addr = SocketAddr::new(listen.ip(), port);
        let tcp = match std::net::TcpListener::bind(addr) {
            Ok(t) => t,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        tcp.set_nonblocking(true).map_err(err)?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(err)?;
        let mut socks = vec![first];
        for _ in 1..n {
            socks.push(udp_socket(addr, true).map_err(err)?);
        }
        return Ok((socks, tcp));
    }
    Err(err(
        last.unwrap_or_else(|| std::io::Error::other("no free port"))
    ))
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // Room for bursts while the thread is busy.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(IDLE_POLL))?;
    Ok(s.into())
}

/// hickory-server's view of the engine, for TCP.
struct TcpHandler {
    engine: Arc<Engine>,
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut out = Vec::with_capacity(512);
        let step = self
            .engine
            .handle(request.as_slice(), request.src(), Transport::Tcp, &mut out);
        if let Step::Forward(req) = step {
            self.engine.forward(&req, Transport::Tcp, &mut out).await;
        } else if let Step::Drop = step {
            out.clear();
        }
        let fallback = || {
            let metadata = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        };
        let Ok(resp) = Message::from_vec(&out) else {
            return fallback();
        };
        let builder = MessageResponseBuilder::new(&request.queries, resp.edns.as_ref());
        let response = builder.build(
            resp.metadata,
            resp.answers.iter(),
            resp.authorities.iter(),
            std::iter::empty(),
            resp.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(src = %request.src(), error = %e, "TCP send failed");
                fallback()
            }
        }
    }
}
