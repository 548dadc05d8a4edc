//! Ordered replication links: one QUIC stream from this node to each peer it replicates to.
//!
//! Records are numbered when they are queued (under the keyspace lock, so their order is the
//! order of the writes), sent in batches of up to [`BATCH_BYTES`] per frame, and kept until the
//! peer acknowledges them: after a broken stream the link reconnects and sends the
//! unacknowledged records again (applying a key state twice is harmless).
//!
//! A link is closed when its peer leaves the view. What it still held unacknowledged is not
//! dropped: its key states wait up to [`BACKLOG_TTL`] for the next link to that peer, which
//! sends them before anything else. A peer cut off for a few seconds thus still gets the
//! writes that were on their way to it when it was cut (Redis keeps a replication backlog for
//! the same reason). `Done` and `PUBLISH` records are not carried over: a pull is asked again
//! after a view change, and a message published a minute ago is not delivered late.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use mesh::PeerId;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::proto::{self, KIND_LINK, Record};

/// Bytes of records per frame at most (a single larger record gets a frame of its own).
pub const BATCH_BYTES: usize = 1 << 20;
/// Records kept for a peer that does not acknowledge; beyond this the link gives up on it.
const MAX_UNACKED_BYTES: usize = 256 << 20;
/// Records queued for the link's task at most, and their bytes at most: a peer whose stream
/// stalls stops the task from draining the queue, and the queue must not grow without bound
/// meanwhile. Reaching either closes the link (as a peer that stopped acknowledging is given
/// up on): the writes waiting for this peer learn it did not acknowledge, and the next link
/// sends the key states this one still held.
const QUEUE_RECORDS: usize = 1 << 16;
const MAX_QUEUED_BYTES: usize = 256 << 20;
/// How long a closed link's unacknowledged key states wait for the next link to its peer.
pub const BACKLOG_TTL: Duration = Duration::from_secs(60);
/// How long a new link waits for its closed predecessor's task to hand its backlog over (the
/// task stops at its next await, so this only bounds a task stuck in a way nobody expects).
const HANDOVER_WAIT: Duration = Duration::from_secs(2);

/// Frames, oldest first: (sequence number of the frame's last record, encoded frame).
type Frames = VecDeque<(u64, Bytes)>;

/// The link to one peer.
#[derive(Debug)]
pub struct Link {
    /// The peer.
    pub peer: PeerId,
    seq: AtomicU64,
    tx: mpsc::Sender<(u64, Record)>,
    /// Bytes of the records in `tx`'s queue.
    queued: Arc<AtomicUsize>,
    acked: watch::Receiver<u64>,
    cancel: CancellationToken,
    closed_at: OnceLock<Instant>,
    /// The key states the link's task left unacknowledged when it stopped.
    backlog: Mutex<Option<oneshot::Receiver<Frames>>>,
}

impl Link {
    /// Starts the link task. `before` is the last link to the same peer, closed: the key
    /// states it left unacknowledged are sent first if it closed less than [`BACKLOG_TTL`] ago.
    pub fn start(
        mesh: mesh::Mesh,
        peer: PeerId,
        cancel: CancellationToken,
        before: Option<&Link>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE_RECORDS);
        let queued = Arc::new(AtomicUsize::new(0));
        let (ack_tx, acked) = watch::channel(0u64);
        let (backlog_tx, backlog_rx) = oneshot::channel();
        let inherited = before
            .filter(|b| b.closed_at.get().is_some_and(|t| t.elapsed() < BACKLOG_TTL))
            .and_then(|b| b.backlog.lock().take());
        // Numbers go on from the last link's, so its frames keep theirs and acks only grow.
        let first_seq = before.map_or(0, |b| b.seq.load(Ordering::Acquire));
        let link = Arc::new(Self {
            peer,
            seq: AtomicU64::new(first_seq),
            tx,
            queued: queued.clone(),
            acked,
            cancel: cancel.clone(),
            closed_at: OnceLock::new(),
            backlog: Mutex::new(Some(backlog_rx)),
        });
        tokio::spawn(async move {
            let mut unacked = Frames::new();
            if let Some(rx) = inherited
                && let Ok(Ok(frames)) = tokio::time::timeout(HANDOVER_WAIT, rx).await
            {
                if !frames.is_empty() {
                    tracing::debug!(%peer, frames = frames.len(), "cache link: sending a closed link's backlog");
                }
                unacked = frames;
            }
            let mut rx = rx;
            deliver(
                &mesh,
                peer,
                &mut rx,
                &queued,
                &ack_tx,
                &cancel,
                &mut unacked,
            )
            .await;
            let _ = backlog_tx.send(keys_left(unacked, rx));
        });
        link
    }

    /// Queues a record; returns its sequence number. Call under the keyspace lock for writes.
    /// Never waits: when the queue is full the link is closed instead (see [`QUEUE_RECORDS`]),
    /// and whoever waits for this record's acknowledgement learns that it never came.
    pub fn push(&self, rec: Record) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let len = rec.len();
        // Counted before it is sent: the task subtracts what it receives.
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        // A single record larger than the bound still goes alone (the frame limit applies).
        if (before > 0 && before + len > MAX_QUEUED_BYTES) || self.tx.try_send((seq, rec)).is_err()
        {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            if self.is_closed() {
                return seq;
            }
            tracing::warn!(peer = %self.peer, "cache link: queue full, the peer is not keeping up; closing the link");
            self.close();
        }
        seq
    }

    /// Key states queued or sent to the peer and not acknowledged yet: the replication lag,
    /// in records.
    pub fn in_flight(&self) -> u64 {
        self.seq
            .load(Ordering::Acquire)
            .saturating_sub(*self.acked.borrow())
    }

    /// Whether the link was closed (the peer left the view, or the node is stopping).
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Whether the link was closed at least [`BACKLOG_TTL`] ago: its backlog is no use.
    pub fn is_expired(&self) -> bool {
        self.closed_at
            .get()
            .is_some_and(|t| t.elapsed() >= BACKLOG_TTL)
    }

    /// Closes the link.
    pub fn close(&self) {
        self.closed_at.get_or_init(Instant::now);
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

/// Sends queued records and `unacked` again after every reconnect, until the link is closed.
/// Leaves in `unacked` what the peer did not acknowledge.
async fn deliver(
    mesh: &mesh::Mesh,
    peer: PeerId,
    rx: &mut mpsc::Receiver<(u64, Record)>,
    queued: &AtomicUsize,
    ack_tx: &watch::Sender<u64>,
    cancel: &CancellationToken,
    unacked: &mut Frames,
) {
    let mut unacked_bytes: usize = unacked.iter().map(|(_, f)| f.len()).sum();
    let mut failures = 0u32;
    // A write to a stalled stream is abandoned when the link closes: the frame stays unacked.
    macro_rules! write_or {
        ($send:expr, $frame:expr, $on_err:tt) => {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = mesh::frame::write($send, $frame) => if r.is_err() { $on_err }
            }
        };
    }
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
        write_or!(&mut send, &[KIND_LINK], continue);
        let mut resent = true;
        for (_, f) in unacked.iter() {
            write_or!(&mut send, f, {
                resent = false;
                break;
            });
        }
        if !resent {
            continue;
        }
        // Acks are read by their own task: a frame read is not cancel-safe inside a select.
        // Bounded: the reader waits while the loop below is busy writing.
        let (ack_in, mut acks) = mpsc::channel::<u64>(1024);
        let reader = tokio::spawn(async move {
            let dec = mesh::frame::FrameDecoder::new(64);
            while let Ok(Some(a)) = dec.read(&mut recv).await {
                let Ok(b) = <[u8; 8]>::try_from(&a[..]) else {
                    return;
                };
                if ack_in.send(u64::from_be_bytes(b)).await.is_err() {
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
                    let mut batch = vec![first];
                    let mut size = batch[0].1.len();
                    while size < BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(r) => {
                                size += r.1.len();
                                batch.push(r);
                            }
                            Err(_) => break,
                        }
                    }
                    queued.fetch_sub(size, Ordering::AcqRel);
                    let (last, frame) = encode_frame(batch);
                    unacked_bytes += frame.len();
                    unacked.push_back((last, frame.clone()));
                    if unacked_bytes > MAX_UNACKED_BYTES {
                        tracing::warn!(%peer, "cache link: peer too far behind; dropping its backlog");
                        unacked.clear();
                        unacked_bytes = 0;
                    }
                    write_or!(&mut send, &frame, break);
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

/// One frame of `records` (in order): the highest sequence number in it and the encoded frame.
fn encode_frame(records: Vec<(u64, Record)>) -> (u64, Bytes) {
    let mut frame =
        BytesMut::with_capacity(8 + records.iter().map(|(_, r)| r.len()).sum::<usize>());
    frame.put_u64(0);
    let mut last = 0;
    for (s, r) in records {
        last = last.max(s);
        r.encode(&mut frame);
    }
    frame[..8].copy_from_slice(&last.to_be_bytes());
    (last, frame.freeze())
}

/// The key states of a stopped link's unacknowledged frames and of the records it never sent,
/// in order, as frames for the next link to the same peer (bounded like a live backlog).
fn keys_left(unacked: Frames, mut rx: mpsc::Receiver<(u64, Record)>) -> Frames {
    rx.close();
    let mut records: Vec<(u64, Record)> = Vec::new();
    for (last, frame) in unacked {
        // Frames this link encoded itself: decoding cannot fail.
        if let Ok((_, recs)) = proto::decode_link(&frame) {
            records.extend(recs.into_iter().map(|r| (last, r)));
        }
    }
    while let Ok(r) = rx.try_recv() {
        records.push(r);
    }
    let mut left = Frames::new();
    let (mut batch, mut size, mut total) = (Vec::new(), 0usize, 0usize);
    for (seq, rec) in records {
        if !matches!(rec, Record::Keys(_)) {
            continue;
        }
        total += rec.len();
        if total > MAX_UNACKED_BYTES {
            break;
        }
        size += rec.len();
        batch.push((seq, rec));
        if size >= BATCH_BYTES {
            left.push_back(encode_frame(std::mem::take(&mut batch)));
            size = 0;
        }
    }
    if !batch.is_empty() {
        left.push_back(encode_frame(batch));
    }
    left
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    async fn node(seed: u8) -> mesh::Mesh {
        mesh::Mesh::start(
            mesh::keypair_from_seed([seed; 32]),
            mesh::MeshConfig::local(),
            &mut prometheus_client::registry::Registry::default(),
        )
        .await
        .expect("a mesh on loopback")
    }

    /// What a receiver saw: (stream number, record) in arrival order.
    type Seen = Arc<Mutex<Vec<(usize, Record)>>>;

    /// Serves link streams on `m`: records every record, acknowledges frames while `ack` is set.
    fn receiver(m: &mesh::Mesh, ack: Arc<AtomicBool>) -> Seen {
        let seen: Seen = Arc::default();
        let streams = Arc::new(AtomicU64::new(0));
        let out = seen.clone();
        m.dataplane()
            .serve_streams(proto::ALPN, move |_, mut send, mut recv| {
                let (seen, ack) = (seen.clone(), ack.clone());
                let stream = streams.fetch_add(1, Ordering::AcqRel) as usize;
                Box::pin(async move {
                    let dec = mesh::frame::FrameDecoder::new(proto::MAX_FRAME);
                    let Ok(Some(_hello)) = dec.read(&mut recv).await else {
                        return;
                    };
                    while let Ok(Some(f)) = dec.read(&mut recv).await {
                        let (seq, records) = proto::decode_link(&f).expect("a valid frame");
                        seen.lock().extend(records.into_iter().map(|r| (stream, r)));
                        if ack.load(Ordering::Acquire)
                            && mesh::frame::write(&mut send, &seq.to_be_bytes())
                                .await
                                .is_err()
                        {
                            return;
                        }
                    }
                })
            })
            .expect("serve the cache protocol");
        out
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn keys(b: &'static [u8]) -> Record {
        Record::Keys(Bytes::from_static(b))
    }

    /// Two meshes that see each other; the second acknowledges frames once `ack` is set.
    async fn pair(x: u8, y: u8) -> (mesh::Mesh, mesh::Mesh, Arc<AtomicBool>, Seen) {
        let (a, b) = (node(x).await, node(y).await);
        let ack = Arc::new(AtomicBool::new(false));
        let seen = receiver(&b, ack.clone());
        a.join(b.local_member()).await;
        until("a to see b", || {
            a.members().iter().any(|m| m.id.peer == b.peer_id())
        })
        .await;
        (a, b, ack, seen)
    }

    /// The records the receiver got on its `stream`-th stream (one stream per link).
    fn on_stream(seen: &Seen, stream: usize) -> Vec<Record> {
        seen.lock()
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The peer left the view while a write was on its way to it, unacknowledged: the next
    /// link to it sends that write's key state first, and not the pull's `Done` nor the
    /// `PUBLISH` that were queued with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_links_key_states_go_on_the_next_link() {
        let (a, b, ack, seen) = pair(31, 32).await;

        let first = Link::start(a.clone(), b.peer_id(), CancellationToken::new(), None);
        first.push(keys(b"k1"));
        first.push(Record::Done(vec![7]));
        first.push(Record::Publish(Bytes::from_static(b"p")));
        let s = first.push(keys(b"k2"));
        until("b to receive the first link's records", || {
            seen.lock().len() == 4
        })
        .await;
        assert!(!first.is_acked(s));
        first.close();

        ack.store(true, Ordering::Release);
        let second = Link::start(
            a.clone(),
            b.peer_id(),
            CancellationToken::new(),
            Some(&first),
        );
        let s3 = second.push(keys(b"k3"));
        assert!(s3 > s, "numbers go on from the closed link's");
        assert!(second.wait(s3, Duration::from_secs(20)).await);
        let again = on_stream(&seen, 1);
        assert_eq!(again, vec![keys(b"k1"), keys(b"k2"), keys(b"k3")]);
    }

    /// A link closed by shutdown (not by a view change) leaves nothing for the next one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_cancelled_without_close_hands_nothing_over() {
        let (a, b, ack, seen) = pair(33, 34).await;

        let token = CancellationToken::new();
        let first = Link::start(a.clone(), b.peer_id(), token.clone(), None);
        first.push(keys(b"k1"));
        until("b to receive k1", || seen.lock().len() == 1).await;
        token.cancel();

        ack.store(true, Ordering::Release);
        let second = Link::start(
            a.clone(),
            b.peer_id(),
            CancellationToken::new(),
            Some(&first),
        );
        let s = second.push(keys(b"k2"));
        assert!(second.wait(s, Duration::from_secs(20)).await);
        let again = on_stream(&seen, 1);
        assert_eq!(again, vec![keys(b"k2")]);
    }
}
