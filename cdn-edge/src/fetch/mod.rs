//! The fetcher: gets blobs this node lacks from the nearest providers, verified, and makes
//! this node a provider of what it holds.
//!
//! - **Who has it**: the mesh's provider table ([`mesh::providers`], which DNS steering reads
//!   too) under [`Hash::provider_key`]: the DHT provider records plus what members said on the
//!   `have` gossip topic ([`HAVE_TOPIC`]), which the fetcher feeds into the table. The mesh
//!   directory ranks them ([`mesh::Mesh::rank`]); dead members and peers that failed or
//!   served corrupt data recently fall behind.
//! - **One fetch per blob**: concurrent requests for the same hash share one [`Fetch`]
//!   (single-flight). It runs to completion even if the visitor that started it goes away, so
//!   what one visitor asked for is cached for the next.
//! - **Lanes**: the first request goes to the best provider and asks for the size proof and
//!   the first run of chunk groups; once the size is proven, more lanes start on the next
//!   providers (up to [`FetchConfig::parallel`], two per provider), each claiming runs of
//!   groups, lowest first (or the one a waiting reader needs). A lane that fails (error,
//!   stall, verification failure) returns its unverified groups to the pool and its provider
//!   is reported (`report_failure`, or `report_corrupt` for altered data) and not used again by
//!   this fetch; another lane picks the groups up.
//! - **Streaming while fetching**: verified groups are written to a temporary file at once,
//!   and a large blob is handed to the gateway as [`Blob::Arriving`], whose reads wait only
//!   for the groups they cover. So the first byte reaches the visitor after the first group.
//! - **Spreading**: a completed blob is stored (unpinned, evictable), announced in the DHT and
//!   on gossip; held blobs are re-announced periodically ([`Fetcher::run_announcer`]).

mod arriving;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bao_tree::BaoTree;
use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::sync::OutboardMut;
use bytes::Bytes;
use mesh::PeerId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Hash;
use crate::store::{BLOCK_SIZE, INLINE_MAX, Store, StoreError};
use crate::transfer::codec::{GROUP, groups};
use crate::transfer::{self, Decoder, Flow, Progress, Request, TransferError};

/// Gossip topic on which nodes say which blobs they now hold (payload: 32-byte hashes).
pub const HAVE_TOPIC: &str = "proxima/cdn/have/1";
/// Most hashes in one `have` message (fits the mesh's 64 KiB gossip bound).
const MAX_HAVE: usize = 1900;
/// Fetch records kept for `/api/blobs/fetches`.
const MAX_RECORDS: usize = 256;

/// Settings of the fetcher.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Lanes (concurrent requests) per fetch.
    pub parallel: usize,
    /// Lanes on one provider.
    pub lanes_per_peer: usize,
    /// Chunk groups per request after the first.
    pub run_groups: u64,
    /// Chunk groups of the first request (small: the size proof and the first bytes come
    /// back fast, and the other providers join early).
    pub first_run_groups: u64,
    /// A provider that sends no frame for this long is dropped.
    pub stall: Duration,
    /// Longest wait for DHT provider records.
    pub lookup_timeout: Duration,
    /// Longest a reader waits for a fetch to produce what it needs.
    pub wait_timeout: Duration,
    /// Largest blob fetched.
    pub max_blob: u64,
    /// Blobs up to this size are handed out only once complete (read from the store's hot
    /// tier); larger ones stream while they arrive.
    pub stream_above: u64,
    /// Re-announce every held blob this often.
    pub reannounce: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            parallel: 4,
            lanes_per_peer: 2,
            run_groups: 1024,
            first_run_groups: 64,
            stall: Duration::from_secs(5),
            lookup_timeout: Duration::from_secs(3),
            wait_timeout: Duration::from_secs(30),
            max_blob: 1 << 40,
            stream_above: 1 << 20,
            reannounce: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Metrics {
    started: Counter,
    completed: Counter,
    failed: Counter,
    joined: Counter,
    bytes: Counter,
    provider_failures: Counter,
    corrupt_responses: Counter,
    announced: Counter,
}

/// What one provider did for one fetch.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderRecord {
    /// The peer.
    pub peer: String,
    /// Chunk groups it delivered, verified.
    pub groups: u64,
    /// Its failure, if it failed.
    pub error: Option<String>,
    /// Whether it sent altered data.
    pub corrupt: bool,
}

/// What one fetch did (for `/api/blobs/fetches`, tests and benchmarks).
#[derive(Debug, Clone, Serialize)]
pub struct FetchRecord {
    /// The blob.
    pub hash: String,
    /// Its size, once proven.
    pub size: Option<u64>,
    /// Providers in the order the directory ranked them when the fetch started.
    pub ranked: Vec<String>,
    /// The provider the first request went to.
    pub first: Option<String>,
    /// Per provider.
    pub providers: Vec<ProviderRecord>,
    /// Time to the first verified group (ms).
    pub first_group_ms: Option<f64>,
    /// Time to completion or failure (ms).
    pub total_ms: Option<f64>,
    /// Whether it completed.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// Where a fetch is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Starting,
    Sized(u64),
    Done,
    Failed(String),
}

/// The pool of work and the verified groups of one fetch.
struct Work {
    size: Option<u64>,
    file: Option<Arc<File>>,
    path: Option<std::path::PathBuf>,
    /// One bit per chunk group.
    verified: Vec<u64>,
    verified_count: u64,
    /// Unclaimed, unverified groups, as sorted disjoint runs.
    pending: VecDeque<(u64, u64)>,
    /// The group a waiting reader needs first.
    want: Option<u64>,
    outboard: Option<PostOrderMemOutboard>,
    failed: Option<String>,
    done: bool,
    record: FetchRecord,
}

impl Work {
    fn is_verified(&self, g: u64) -> bool {
        self.verified
            .get((g / 64) as usize)
            .is_some_and(|w| w & (1 << (g % 64)) != 0)
    }

    fn mark(&mut self, g: u64) -> bool {
        let Some(w) = self.verified.get_mut((g / 64) as usize) else {
            return false;
        };
        let bit = 1 << (g % 64);
        if *w & bit != 0 {
            return false;
        }
        *w |= bit;
        self.verified_count += 1;
        true
    }

    fn total(&self) -> u64 {
        self.size.map_or(0, groups)
    }

    fn complete(&self) -> bool {
        self.size.is_some() && self.verified_count == self.total()
    }

    /// Takes up to `max` groups: from the run holding the wanted group if any, else the first.
    fn claim(&mut self, max: u64) -> Option<(u64, u64)> {
        let idx = self
            .want
            .and_then(|w| self.pending.iter().position(|&(s, e)| s <= w && w < e))
            .unwrap_or(0);
        let (s, e) = *self.pending.get(idx)?;
        let start = match self.want {
            Some(w) if s <= w && w < e => w,
            _ => s,
        };
        let end = e.min(start.saturating_add(max.max(1)));
        self.pending.remove(idx);
        if end < e {
            self.pending.insert(idx, (end, e));
        }
        if s < start {
            self.pending.insert(idx, (s, start));
        }
        Some((start, end))
    }

    /// Returns the unverified groups of `[s, e)` to the pool.
    fn unclaim(&mut self, s: u64, e: u64) {
        let mut g = s;
        while g < e {
            if self.is_verified(g) {
                g += 1;
                continue;
            }
            let start = g;
            while g < e && !self.is_verified(g) {
                g += 1;
            }
            self.pending.push_back((start, g));
        }
        self.pending.make_contiguous().sort_unstable();
    }
}

/// One blob being fetched, shared by everyone who asked for it.
pub(crate) struct Fetch {
    hash: Hash,
    started: Instant,
    work: Mutex<Work>,
    /// Blocking readers wait here for groups.
    cond: Condvar,
    phase: watch::Sender<Phase>,
    /// Wakes the coordinator (size proven, work returned).
    kick: tokio::sync::Notify,
}

impl Fetch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, why: String) {
        let mut w = self.lock();
        if w.failed.is_none() && !w.done {
            w.failed = Some(why.clone());
            w.record.ok = false;
            w.record.error = Some(why.clone());
        }
        drop(w);
        self.cond.notify_all();
        self.phase.send_replace(Phase::Failed(why));
    }

    /// Called once the size is proven (on a blocking thread): the temporary file, the bitmap,
    /// the work pool and the outboard.
    fn set_size(
        &self,
        store: &Store,
        size: u64,
        first_claim: (u64, u64),
    ) -> Result<(), TransferError> {
        let mut w = self.lock();
        if w.size.is_some() {
            return Ok(());
        }
        let path = store.temp_path();
        let file = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(size).map(|()| f))
            .map_err(|e| TransferError::Local(format!("temporary file: {e}")))?;
        let n = groups(size);
        w.size = Some(size);
        w.record.size = Some(size);
        w.file = Some(Arc::new(file));
        w.path = Some(path);
        w.verified = vec![0; n.div_ceil(64) as usize];
        if first_claim.1 < n {
            w.pending.push_back((first_claim.1, n));
        }
        if size > INLINE_MAX {
            let tree = BaoTree::new(size, BLOCK_SIZE);
            w.outboard = Some(PostOrderMemOutboard {
                root: self.hash.to_blake3(),
                tree,
                data: vec![0; tree.outboard_size() as usize],
            });
        }
        drop(w);
        self.phase.send_replace(Phase::Sized(size));
        self.kick.notify_one();
        Ok(())
    }

    /// Writes verified groups and parents (blocking). Returns how many new groups.
    fn accept(&self, progress: &Progress) -> Result<u64, TransferError> {
        let file = self.lock().file.clone();
        let Some(file) = file else {
            return Err(TransferError::Local("data before the size proof".into()));
        };
        // Consecutive groups go out in one write (one syscall per frame, not per 16 KiB).
        let write = |buf: &[u8], at: u64| {
            file.write_all_at(buf, at)
                .map_err(|e| TransferError::Local(format!("writing a fetched group: {e}")))
        };
        let mut run: Vec<u8> = Vec::new();
        let mut run_at = 0u64;
        for (offset, bytes) in &progress.leaves {
            if !run.is_empty() && run_at + run.len() as u64 != *offset {
                write(&run, run_at)?;
                run.clear();
            }
            if run.is_empty() {
                run_at = *offset;
                run.reserve(progress.leaves.len() * bytes.len());
            }
            run.extend_from_slice(bytes);
        }
        if !run.is_empty() {
            write(&run, run_at)?;
        }
        let mut w = self.lock();
        if let Some(ob) = w.outboard.as_mut() {
            for (node, pair) in &progress.parents {
                let l =
                    blake3::Hash::from_slice(&pair[..32]).unwrap_or(blake3::Hash::from([0; 32]));
                let r =
                    blake3::Hash::from_slice(&pair[32..]).unwrap_or(blake3::Hash::from([0; 32]));
                let _ = ob.save(*node, &(l, r));
            }
        }
        let mut new = 0;
        for (offset, _) in &progress.leaves {
            if w.mark(offset / GROUP) {
                new += 1;
            }
        }
        if new > 0 && w.record.first_group_ms.is_none() {
            w.record.first_group_ms = Some(self.started.elapsed().as_secs_f64() * 1000.0);
        }
        drop(w);
        if new > 0 {
            self.cond.notify_all();
        }
        Ok(new)
    }
}

struct Inner {
    store: Store,
    mesh: mesh::Mesh,
    config: FetchConfig,
    inflight: Mutex<HashMap<Hash, Arc<Fetch>>>,
    announce: tokio::sync::mpsc::Sender<Hash>,
    announce_rx: Mutex<Option<tokio::sync::mpsc::Receiver<Hash>>>,
    /// Set when a hash did not fit in the queue: the announcer then announces every held blob.
    announce_overflow: std::sync::atomic::AtomicBool,
    records: Mutex<VecDeque<FetchRecord>>,
    metrics: Metrics,
}

/// Hashes waiting to be announced at most; beyond, the whole store is announced once instead.
const ANNOUNCE_QUEUE: usize = 16_384;

/// The networked blob source: the local store first, then the mesh. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher over `store` and `mesh`. Start [`Fetcher::run_announcer`] and
    /// [`Fetcher::run_gossip`] on the node's runtime.
    pub fn new(store: Store, mesh: mesh::Mesh, config: FetchConfig) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(ANNOUNCE_QUEUE);
        Self {
            inner: Arc::new(Inner {
                store,
                mesh,
                config,
                inflight: Mutex::new(HashMap::new()),
                announce: tx,
                announce_rx: Mutex::new(Some(rx)),
                announce_overflow: std::sync::atomic::AtomicBool::new(false),
                records: Mutex::new(VecDeque::new()),
                metrics: Metrics::default(),
            }),
        }
    }

    /// Registers the fetcher's metrics (give it a prefixed sub-registry).
    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.inner.metrics;
        registry.register("started", "Fetches started", m.started.clone());
        registry.register("completed", "Fetches completed", m.completed.clone());
        registry.register(
            "failed",
            "Fetches that failed on every provider",
            m.failed.clone(),
        );
        registry.register(
            "joined",
            "Requests that joined a fetch already running",
            m.joined.clone(),
        );
        registry.register("bytes", "Verified bytes fetched", m.bytes.clone());
        registry.register(
            "provider_failures",
            "Requests to a provider that failed (error, stall)",
            m.provider_failures.clone(),
        );
        registry.register(
            "corrupt_responses",
            "Responses that failed verification",
            m.corrupt_responses.clone(),
        );
        registry.register(
            "announced",
            "Blobs announced as provided",
            m.announced.clone(),
        );
    }

    /// The store behind the fetcher.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The most recent fetches, newest last.
    pub fn records(&self) -> Vec<FetchRecord> {
        let mut out: Vec<FetchRecord> = self
            .inner
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        // Fetches still running.
        for f in self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            out.push(f.lock().record.clone());
        }
        out
    }

    /// Queues `hash` to be announced (DHT provider record and `have` gossip).
    pub fn announce(&self, hash: Hash) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) =
            self.inner.announce.try_send(hash)
        {
            // Never lost: the announcer announces the whole store instead (it is in the store).
            self.inner
                .announce_overflow
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Announces queued hashes, and every held blob at start and every
    /// [`FetchConfig::reannounce`], until `shutdown`.
    pub async fn run_announcer(self, shutdown: CancellationToken) {
        let Some(mut rx) = self
            .inner
            .announce_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let mut tick = tokio::time::interval(self.inner.config.reannounce);
        loop {
            let mut batch: Vec<Hash> = Vec::new();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => batch = self.inner.store.hashes(),
                h = rx.recv() => match h {
                    Some(h) => {
                        batch.push(h);
                        while batch.len() < 10_000 {
                            match rx.try_recv() {
                                Ok(h) => batch.push(h),
                                Err(_) => break,
                            }
                        }
                        if self
                            .inner
                            .announce_overflow
                            .swap(false, std::sync::atomic::Ordering::AcqRel)
                        {
                            batch = self.inner.store.hashes();
                        }
                    }
                    None => return,
                },
            }
            self.provide(&batch).await;
        }
    }

    async fn provide(&self, hashes: &[Hash]) {
        let control = self.inner.mesh.control();
        for h in hashes {
            if let Err(e) = control.start_providing(h.provider_key()).await {
                tracing::debug!(hash = %h, error = %e, "cannot announce a blob in the DHT");
            }
            self.inner.metrics.announced.inc();
        }
        for chunk in hashes.chunks(MAX_HAVE) {
            let mut msg = Vec::with_capacity(chunk.len() * 32);
            for h in chunk {
                msg.extend_from_slice(&h.0);
            }
            if let Err(e) = control.publish(HAVE_TOPIC, Bytes::from(msg)).await {
                tracing::debug!(error = %e, "cannot gossip held blobs");
            }
        }
    }

    /// Learns providers from `have` gossip until `shutdown`.
    pub async fn run_gossip(self, shutdown: CancellationToken) {
        let mut rx = match self.inner.mesh.control().subscribe(HAVE_TOPIC).await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to blob announcements");
                return;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = rx.recv() => m,
            };
            let (peer, data) = match msg {
                Ok(m) => m,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            if data.len() % 32 != 0 || data.len() > MAX_HAVE * 32 {
                continue;
            }
            // Into the mesh's provider table, which DNS steering reads too.
            let table = self.inner.mesh.providers();
            for h in data.chunks_exact(32) {
                let mut b = [0u8; 32];
                b.copy_from_slice(h);
                table.note(&Hash(b).provider_key(), peer);
            }
        }
    }

    /// Other live members holding `hash`, from the mesh's provider table (gossip and the
    /// DHT), looked up now unless a recent lookup found some.
    pub async fn providers(&self, hash: Hash) -> Vec<PeerId> {
        self.inner
            .mesh
            .find_holders(&hash.provider_key(), self.inner.config.lookup_timeout)
            .await
    }

    /// `peers` as the mesh directory ranks them for a fetch (best first).
    pub fn rank(&self, peers: &[PeerId]) -> Vec<mesh::Ranked> {
        self.inner.mesh.rank(peers, false)
    }

    /// The fetch of `hash`, joining one already running.
    fn start(&self, hash: Hash) -> Arc<Fetch> {
        let mut map = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(f) = map.get(&hash) {
            self.inner.metrics.joined.inc();
            return f.clone();
        }
        self.inner.metrics.started.inc();
        let fetch = Arc::new(Fetch {
            hash,
            started: Instant::now(),
            work: Mutex::new(Work {
                size: None,
                file: None,
                path: None,
                verified: Vec::new(),
                verified_count: 0,
                pending: VecDeque::new(),
                want: None,
                outboard: None,
                failed: None,
                done: false,
                record: FetchRecord {
                    hash: hash.to_hex(),
                    size: None,
                    ranked: Vec::new(),
                    first: None,
                    providers: Vec::new(),
                    first_group_ms: None,
                    total_ms: None,
                    ok: false,
                    error: None,
                },
            }),
            cond: Condvar::new(),
            phase: watch::channel(Phase::Starting).0,
            kick: tokio::sync::Notify::new(),
        });
        map.insert(hash, fetch.clone());
        drop(map);
        let this = self.clone();
        let f = fetch.clone();
        tokio::spawn(async move {
            this.run(f.clone()).await;
            this.finish(&f).await;
        });
        fetch
    }

    /// Fetches `hash` into the store if it is not there; waits for completion.
    pub async fn fetch(&self, hash: Hash) -> Result<(), StoreError> {
        if self.inner.store.contains(hash) {
            return Ok(());
        }
        let fetch = self.start(hash);
        let mut rx = fetch.phase.subscribe();
        let phase = rx
            .wait_for(|p| matches!(p, Phase::Done | Phase::Failed(_)))
            .await
            .map(|p| p.clone());
        match phase {
            Ok(Phase::Done) => Ok(()),
            Ok(Phase::Failed(why)) => Err(StoreError::Io(std::io::Error::other(why))),
            _ => Err(StoreError::Io(std::io::Error::other("fetch stopped"))),
        }
    }

    async fn run(&self, fetch: Arc<Fetch>) {
        let cfg = self.inner.config.clone();
        let hash = fetch.hash;
        let mut candidates = self.providers(hash).await;
        let mut refreshed = false;
        let mut ranked: Vec<PeerId> = self
            .inner
            .mesh
            .rank(&candidates, false)
            .into_iter()
            .map(|r| r.peer)
            .collect();
        fetch.lock().record.ranked = ranked.iter().map(|p| p.to_string()).collect();
        let mut bad: HashSet<PeerId> = HashSet::new();
        let mut active: HashMap<PeerId, usize> = HashMap::new();
        let mut lanes = tokio::task::JoinSet::new();
        let first_claim = (0, cfg.first_run_groups.max(1));
        loop {
            let (sized, has_work, complete, failed) = {
                let w = fetch.lock();
                (
                    w.size.is_some(),
                    !w.pending.is_empty(),
                    w.complete(),
                    w.failed.is_some(),
                )
            };
            if complete || failed {
                break;
            }
            // Start lanes: the first (size proof) one alone; then up to `parallel`.
            let want_lanes = if sized {
                if has_work { cfg.parallel } else { 0 }
            } else {
                1
            };
            while lanes.len() < want_lanes {
                let per_peer = if sized { cfg.lanes_per_peer.max(1) } else { 1 };
                let next = ranked
                    .iter()
                    .find(|p| !bad.contains(*p) && active.get(*p).copied().unwrap_or(0) < per_peer)
                    .copied();
                // Spread over providers first: a second lane on a peer only when every usable
                // peer has one.
                let next = ranked
                    .iter()
                    .find(|p| !bad.contains(*p) && !active.contains_key(*p))
                    .copied()
                    .or(next);
                let Some(peer) = next else { break };
                *active.entry(peer).or_default() += 1;
                {
                    let mut w = fetch.lock();
                    if w.record.first.is_none() {
                        w.record.first = Some(peer.to_string());
                    }
                    if !w
                        .record
                        .providers
                        .iter()
                        .any(|r| r.peer == peer.to_string())
                    {
                        w.record.providers.push(ProviderRecord {
                            peer: peer.to_string(),
                            groups: 0,
                            error: None,
                            corrupt: false,
                        });
                    }
                }
                let claim = if sized { None } else { Some(first_claim) };
                let this = self.clone();
                let f = fetch.clone();
                lanes.spawn(async move {
                    let r = this.lane(&f, peer, claim).await;
                    (peer, r)
                });
                if !sized {
                    break;
                }
            }
            if lanes.is_empty() {
                if !refreshed {
                    // Every known provider failed or none was known: ask again once.
                    refreshed = true;
                    candidates = self.providers(hash).await;
                    ranked = self
                        .inner
                        .mesh
                        .rank(&candidates, false)
                        .into_iter()
                        .map(|r| r.peer)
                        .filter(|p| !bad.contains(p))
                        .collect();
                    if !ranked.is_empty() {
                        continue;
                    }
                }
                let why = if candidates.is_empty() {
                    "no provider of this blob is known".to_owned()
                } else {
                    format!("every provider failed ({} tried)", bad.len())
                };
                fetch.fail(why);
                break;
            }
            tokio::select! {
                joined = lanes.join_next() => {
                    let Some(Ok((peer, result))) = joined else { continue };
                    if let Some(n) = active.get_mut(&peer) {
                        *n -= 1;
                        if *n == 0 {
                            active.remove(&peer);
                        }
                    }
                    if let Err(e) = result {
                        let corrupt = e.is_corrupt();
                        if !e.is_local() {
                            bad.insert(peer);
                            if corrupt {
                                self.inner.metrics.corrupt_responses.inc();
                                self.inner.mesh.report_corrupt(peer);
                            } else {
                                self.inner.metrics.provider_failures.inc();
                                self.inner.mesh.report_failure(peer);
                            }
                            tracing::warn!(%hash, %peer, error = %e, corrupt, "provider failed; failing over");
                        } else {
                            tracing::error!(%hash, error = %e, "fetch failed locally");
                            fetch.fail(e.to_string());
                        }
                        let mut w = fetch.lock();
                        if let Some(r) = w.record.providers.iter_mut().find(|r| r.peer == peer.to_string()) {
                            r.error = Some(e.to_string());
                            r.corrupt = corrupt;
                        }
                    }
                }
                _ = fetch.kick.notified() => {}
            }
        }
        lanes.abort_all();
    }

    /// One lane: requests runs of groups from `peer` until there is no work left.
    async fn lane(
        &self,
        fetch: &Arc<Fetch>,
        peer: PeerId,
        mut first: Option<(u64, u64)>,
    ) -> Result<(), TransferError> {
        let cfg = &self.inner.config;
        loop {
            let (claim, size) = match first.take() {
                Some(c) => (c, None),
                None => {
                    let mut w = fetch.lock();
                    if w.failed.is_some() || w.done {
                        return Ok(());
                    }
                    match w.claim(cfg.run_groups) {
                        Some(c) => (c, w.size),
                        None => return Ok(()),
                    }
                }
            };
            let request = Request {
                hash: fetch.hash,
                prove_size: size.is_none(),
                ranges: vec![claim],
            };
            let decoder = Decoder::new(request.clone(), cfg.max_blob, size);
            let result = async {
                let (send, recv) =
                    tokio::time::timeout(cfg.stall, self.inner.mesh.open_bi(peer, transfer::ALPN))
                        .await
                        .map_err(|_| TransferError::Timeout)??;
                let f = fetch.clone();
                let store = self.inner.store.clone();
                let metrics = self.inner.metrics.clone();
                let peer_s = peer.to_string();
                // The header's size is trusted only once its proof has been verified.
                let mut claimed = size;
                let mut held: Vec<Progress> = Vec::new();
                let sink = move |p: Progress| -> Result<Flow, TransferError> {
                    if let Some(sz) = p.header {
                        claimed = Some(sz);
                    }
                    if f.lock().size.is_none() {
                        let proven = p.size_proven;
                        held.push(p);
                        if !proven {
                            return Ok(Flow::Continue);
                        }
                        let Some(sz) = claimed else {
                            return Err(TransferError::Local("size proof without a header".into()));
                        };
                        f.set_size(&store, sz, claim)?;
                    } else {
                        held.push(p);
                    }
                    let mut new = 0;
                    for p in held.drain(..) {
                        new += f.accept(&p)?;
                    }
                    metrics.bytes.inc_by(new * GROUP);
                    let mut w = f.lock();
                    if let Some(r) = w.record.providers.iter_mut().find(|r| r.peer == peer_s) {
                        r.groups += new;
                    }
                    if w.failed.is_some() || w.done {
                        return Ok(Flow::Stop);
                    }
                    Ok(Flow::Continue)
                };
                transfer::exchange(send, recv, &request, decoder, cfg.stall, sink).await
            }
            .await;
            if let Err(e) = result {
                let mut w = fetch.lock();
                if w.size.is_some() {
                    let total = w.total();
                    w.unclaim(claim.0, claim.1.min(total));
                }
                drop(w);
                fetch.kick.notify_one();
                return Err(e);
            }
        }
    }

    /// Stores a completed fetch, announces it, and records it.
    async fn finish(&self, fetch: &Arc<Fetch>) {
        let complete = fetch.lock().complete();
        if complete {
            let (path, size, outboard) = {
                let mut w = fetch.lock();
                (w.path.clone(), w.size.unwrap_or(0), w.outboard.take())
            };
            let store = self.inner.store.clone();
            let hash = fetch.hash;
            let stored = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
                let Some(path) = path else {
                    return Err(StoreError::Corrupt(hash));
                };
                if size <= INLINE_MAX {
                    let data = std::fs::read(&path)?;
                    let _ = std::fs::remove_file(&path);
                    store.import_bytes(&data, Some(hash), false).map(|_| ())
                } else {
                    let ob = outboard.map(|o| o.data).unwrap_or_default();
                    store.import_verified(&path, hash, size, ob)
                }
            })
            .await;
            match stored {
                Ok(Ok(())) => {
                    {
                        let mut w = fetch.lock();
                        w.done = true;
                        w.record.ok = true;
                    }
                    self.inner.metrics.completed.inc();
                    fetch.cond.notify_all();
                    fetch.phase.send_replace(Phase::Done);
                    self.announce(hash);
                }
                Ok(Err(e)) => fetch.fail(format!("storing the fetched blob: {e}")),
                Err(e) => fetch.fail(format!("storing the fetched blob: {e}")),
            }
        } else {
            self.inner.metrics.failed.inc();
            let w = fetch.lock();
            if let Some(p) = &w.path {
                let _ = std::fs::remove_file(p);
            }
        }
        let record = {
            let mut w = fetch.lock();
            w.record.total_ms = Some(fetch.started.elapsed().as_secs_f64() * 1000.0);
            w.record.clone()
        };
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fetch.hash);
        let mut records = self.inner.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
    }
}
