//! An emulated WAN in user space, for tests and benchmarks (kernel netem is not available).
//!
//! [`WanEmulator::wrap`] puts a delay line under a quinn endpoint's UDP socket: every datagram
//! a node sends waits half the RTT of its link (taken from a matrix of measured RTTs) before it
//! reaches the real socket, may be dropped with a configured probability, and is discarded when
//! the link is cut. Receiving is untouched, so both directions pay their half and a round trip
//! costs the full RTT.
//!
//! Nodes are placed on the matrix by their bound address ([`WanEmulator::place`]); traffic from
//! or to an unplaced address passes undelayed. A node started with a [`WanLink`] places its
//! QUIC socket and its libp2p listeners itself, and its libp2p connections cross the same
//! matrix through the delay line in [`crate::wan_tcp`].

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Datagrams in flight per socket before new ones are dropped (a full router queue).
pub const QUEUE_LIMIT: usize = 8192;

#[derive(Default)]
struct State {
    /// RTT matrix in ms, row-major, `n * n`.
    rtt_ms: Vec<f64>,
    n: usize,
    placed: HashMap<SocketAddr, usize>,
    cut: HashSet<(usize, usize)>,
    loss: f64,
}

impl State {
    /// RTT (ms) between two positions; 0 off the matrix.
    fn rtt(&self, a: usize, b: usize) -> f64 {
        if a < self.n && b < self.n {
            self.rtt_ms[a * self.n + b]
        } else {
            0.0
        }
    }
}

fn half_rtt(rtt_ms: f64) -> Duration {
    Duration::from_secs_f64(rtt_ms / 2000.0)
}

/// Where one node sits on an emulated WAN: the emulator and its position on the matrix.
#[derive(Clone, Debug)]
pub struct WanLink {
    /// The emulated network.
    pub emulator: Arc<WanEmulator>,
    /// This node's row of the matrix.
    pub position: usize,
}

/// The shared description of the emulated network.
pub struct WanEmulator {
    state: Mutex<State>,
    rng: Mutex<rand::rngs::StdRng>,
}

impl fmt::Debug for WanEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("WanEmulator")
            .field("nodes", &s.n)
            .field("placed", &s.placed.len())
            .field("loss", &s.loss)
            .finish()
    }
}

impl WanEmulator {
    /// A network whose link (i, j) has RTT `rtt_ms(i, j)` for `n` positions.
    pub fn new(n: usize, rtt_ms: impl Fn(usize, usize) -> f64, seed: u64) -> Arc<Self> {
        let mut m = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                m.push(rtt_ms(i, j).max(0.0));
            }
        }
        Arc::new(Self {
            state: Mutex::new(State {
                rtt_ms: m,
                n,
                ..State::default()
            }),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the socket bound at `addr` at position `index` of the matrix.
    pub fn place(&self, addr: SocketAddr, index: usize) {
        self.state().placed.insert(addr, index);
    }

    /// Drops each datagram with probability `p` (0..=1).
    pub fn set_loss(&self, p: f64) {
        self.state().loss = p.clamp(0.0, 1.0);
    }

    /// Cuts (or heals) the link between positions `a` and `b`, both directions.
    pub fn set_cut(&self, a: usize, b: usize, cut: bool) {
        let mut s = self.state();
        for key in [(a, b), (b, a)] {
            if cut {
                s.cut.insert(key);
            } else {
                s.cut.remove(&key);
            }
        }
    }

    /// The position of the socket bound at `addr`, if placed.
    pub fn position(&self, addr: SocketAddr) -> Option<usize> {
        self.state().placed.get(&addr).copied()
    }

    /// Whether the link between positions `a` and `b` is cut.
    pub fn is_cut(&self, a: usize, b: usize) -> bool {
        self.state().cut.contains(&(a, b))
    }

    /// The RTT (ms) the emulator imposes between two positions.
    pub fn rtt_ms(&self, a: usize, b: usize) -> f64 {
        self.state().rtt(a, b)
    }

    /// Half the RTT between two positions: what one direction of the link costs.
    pub(crate) fn one_way(&self, a: usize, b: usize) -> Duration {
        half_rtt(self.state().rtt(a, b))
    }

    /// One-way delay from `from` to `to`, or `None` when the datagram is lost.
    fn route(&self, from: SocketAddr, to: SocketAddr) -> Option<Duration> {
        let s = self.state();
        let (Some(&a), Some(&b)) = (s.placed.get(&from), s.placed.get(&to)) else {
            return Some(Duration::ZERO);
        };
        if s.cut.contains(&(a, b)) {
            return None;
        }
        if s.loss > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .r#gen::<f64>()
                < s.loss
        {
            return None;
        }
        Some(half_rtt(s.rtt(a, b)))
    }

    /// Wraps a quinn socket in the delay line. Must run inside a tokio runtime (it spawns the
    /// task that releases delayed datagrams; the task ends with the socket).
    pub fn wrap(
        self: &Arc<Self>,
        inner: Arc<dyn AsyncUdpSocket>,
    ) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let local = inner.local_addr()?;
        let (tx, rx) = mpsc::channel(QUEUE_LIMIT);
        tokio::spawn(release(inner.clone(), rx));
        Ok(Arc::new(DelayedSocket {
            inner,
            local,
            wan: self.clone(),
            queue: tx,
        }))
    }
}

struct Delayed {
    due: Instant,
    seq: u64,
    to: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

async fn release(inner: Arc<dyn AsyncUdpSocket>, mut rx: mpsc::Receiver<Delayed>) {
    let mut heap: BinaryHeap<Delayed> = BinaryHeap::new();
    loop {
        let next_due = heap.peek().map(|d| d.due);
        tokio::select! {
            item = rx.recv() => match item {
                Some(d) => heap.push(d),
                None => break,
            },
            _ = async {
                match next_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                while heap.peek().is_some_and(|d| d.due <= now) {
                    let Some(d) = heap.pop() else { break };
                    let t = Transmit {
                        destination: d.to,
                        ecn: None,
                        contents: &d.data,
                        segment_size: None,
                        src_ip: None,
                    };
                    // UDP semantics: a full socket buffer drops the datagram.
                    let _ = inner.try_send(&t);
                }
            }
        }
    }
}

struct DelayedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    local: SocketAddr,
    wan: Arc<WanEmulator>,
    queue: mpsc::Sender<Delayed>,
}

impl fmt::Debug for DelayedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedSocket")
            .field("local", &self.local)
            .finish()
    }
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl AsyncUdpSocket for DelayedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let Some(delay) = self.wan.route(self.local, transmit.destination) else {
            return Ok(()); // lost or cut: the sender cannot tell, as on a real network
        };
        let _ = self.queue.try_send(Delayed {
            due: Instant::now() + delay,
            seq: SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            to: transmit.destination,
            data: transmit.contents.to_vec(),
        });
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn max_transmit_segments(&self) -> usize {
        1
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
