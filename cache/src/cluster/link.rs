//! Ordered replication links: one QUIC stream from this node to each peer it replicates to.
//!
//! Records are numbered when they are queued (under the keyspace lock, so their order is the
//! order of the writes), sent in batches of up to [`BATCH_BYTES`] per frame, and kept until the
//! peer acknowledges them: after a broken stream the link reconnects and sends the
//! unacknowledged records again (applying a key state twice is harmless).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use mesh::PeerId;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::proto::{self, KIND_LINK, Record};

/// Bytes of records per frame at most (a single larger record gets a frame of its own).
pub const BATCH_BYTES: usize = 1 << 20;
/// Records kept for a peer that does not acknowledge; beyond this the link gives up on it.
const MAX_UNACKED_BYTES: usize = 256 << 20;

/// The link to one peer.
#[derive(Debug)]
pub struct Link {
    /// The peer.
    pub peer: PeerId,
    seq: AtomicU64,
    tx: mpsc::UnboundedSender<(u64, Record)>,
    acked: watch::Receiver<u64>,
    cancel: CancellationToken,
}

impl Link {
    /// Starts the link task.
    pub fn start(mesh: mesh::Mesh, peer: PeerId, cancel: CancellationToken) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ack_tx, acked) = watch::channel(0u64);
        let link = Arc::new(Self {
            peer,
            seq: AtomicU64::new(0),
            tx,
            acked,
            cancel: cancel.clone(),
        });
        tokio::spawn(run(mesh, peer, rx, ack_tx, cancel));
        link
    }

    /// Queues a record; returns its sequence number. Call under the keyspace lock for writes.
    pub fn push(&self, rec: Record) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = self.tx.send((seq, rec));
        seq
    }

    /// Whether the link was closed (the peer left the view).
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Closes the link.
    pub fn close(&self) {
        self.cancel.cancel();
    }

    /// Whether the peer acknowledged `seq`.
    pub fn is_acked(&self, seq: u64) -> bool {
        *self.acked.borrow() >= seq
    }

    /// Waits until the peer acknowledged `seq`; false on timeout or a closed link.
    pub async fn wait(&self, seq: u64, timeout: Duration) -> bool {
        let mut rx = self.acked.clone();
        let done = tokio::time::timeout(timeout, async {
            tokio::select! {
                r = rx.wait_for(|a| *a >= seq) => r.is_ok(),
                _ = self.cancel.cancelled() => false,
            }
        })
        .await;
        matches!(done, Ok(true))
    }
}

async fn run(
    mesh: mesh::Mesh,
    peer: PeerId,
    mut rx: mpsc::UnboundedReceiver<(u64, Record)>,
    ack_tx: watch::Sender<u64>,
    cancel: CancellationToken,
) {
    // (last seq of the frame, frame payload), oldest first.
    let mut unacked: VecDeque<(u64, bytes::Bytes)> = VecDeque::new();
    let mut unacked_bytes = 0usize;
    let mut failures = 0u32;
    while !cancel.is_cancelled() {
        let opened = tokio::select! {
            _ = cancel.cancelled() => return,
            o = mesh.open_bi(peer, proto::ALPN) => o,
        };
        let (mut send, mut recv) = match opened {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                tracing::debug!(%peer, error = %e, "cache link: cannot open a stream");
                let pause = Duration::from_millis(100 * u64::from(failures.min(20)));
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        if mesh::frame::write(&mut send, &[KIND_LINK]).await.is_err() {
            continue;
        }
        let mut ok = true;
        for (_, f) in &unacked {
            if mesh::frame::write(&mut send, f).await.is_err() {
                ok = false;
                break;
            }
        }
        if !ok {
            continue;
        }
        // Acks are read by their own task: a frame read is not cancel-safe inside a select.
        let (ack_in, mut acks) = mpsc::unbounded_channel::<u64>();
        let reader = tokio::spawn(async move {
            let dec = mesh::frame::FrameDecoder::new(64);
            while let Ok(Some(a)) = dec.read(&mut recv).await {
                let Ok(b) = <[u8; 8]>::try_from(&a[..]) else {
                    return;
                };
                if ack_in.send(u64::from_be_bytes(b)).is_err() {
                    return;
                }
            }
        });
        let _abort = AbortOnDrop(reader);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                ack = acks.recv() => {
                    let Some(seq) = ack else { break };
                    while unacked.front().is_some_and(|(s, _)| *s <= seq) {
                        if let Some((_, f)) = unacked.pop_front() {
                            unacked_bytes -= f.len();
                        }
                    }
                    // Never backwards: a record queued outside the keyspace lock (a
                    // PUBLISH) can travel in a frame after a higher-numbered one.
                    ack_tx.send_if_modified(|a| {
                        let newer = seq > *a;
                        *a = (*a).max(seq);
                        newer
                    });
                    failures = 0;
                }
                first = rx.recv() => {
                    let Some(first) = first else { return };
                    let mut frame = BytesMut::with_capacity(4096);
                    frame.put_u64(0);
                    let mut last = first.0;
                    first.1.encode(&mut frame);
                    while frame.len() < BATCH_BYTES {
                        match rx.try_recv() {
                            Ok((s, r)) => {
                                last = s;
                                r.encode(&mut frame);
                            }
                            Err(_) => break,
                        }
                    }
                    frame[..8].copy_from_slice(&last.to_be_bytes());
                    let frame = frame.freeze();
                    unacked_bytes += frame.len();
                    unacked.push_back((last, frame.clone()));
                    if unacked_bytes > MAX_UNACKED_BYTES {
                        tracing::warn!(%peer, "cache link: peer too far behind; dropping its backlog");
                        unacked.clear();
                        unacked_bytes = 0;
                    }
                    if mesh::frame::write(&mut send, &frame).await.is_err() {
                        break;
                    }
                }
            }
        }
        failures += 1;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
