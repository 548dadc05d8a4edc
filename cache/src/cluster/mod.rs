//! The cache spread over the mesh: slot ownership, routing, replication, range hand-over.
//!
//! - [`view`]: who owns which slot (rendezvous hashing over the live members) and the
//!   `CLUSTER` maps.
//! - Routing ([`Cluster::route`]) runs before a command is dispatched: a command whose slot
//!   this node serves runs here; a cluster-aware client (one that asked for the map with
//!   `CLUSTER SLOTS/SHARDS/NODES`, or sent `ASKING`) gets `MOVED`; any other client is proxied
//!   to the owner over the mesh ([`forward`]), transparently. With `READONLY`, reads are
//!   answered by a replica: this node if it holds the slot, else the holder nearest to it.
//! - Replication ([`link`]): after a write, the primary ships the state of the keys it touched
//!   ([`dump`]) to the slot's other owners over one ordered QUIC stream per peer. With
//!   `sync_replication` the reply waits until every live replica has applied it; otherwise it
//!   does not wait (a primary that dies may lose the writes of its last moments).
//! - Hand-over ([`membership`]): when the view changes, a node that gained a range pulls its
//!   keys from a node that holds it before serving it, and forwards the range's requests to that
//!   node meanwhile, so there is no window of false misses.
//!
//! - Merges ([`merge`]): key states carry versions (a hybrid clock). When members appear in
//!   its view (a heal, a restart) or it rejoined, a node asks them for their copies of the
//!   ranges it owns and keeps the newer state of each key, so a write acknowledged on one side
//!   of a healed cut survives whichever copy the hand-over took.
//! - Partitions ([`membership`]): a node that sees fewer than a majority of the cache members
//!   it knows (alive, suspected, or declared down and not yet forgotten) refuses writes with
//!   `CLUSTERDOWN`, as a Redis Cluster node on the minority side does. Its copies are then
//!   *stale*: it hands no range over until it has pulled every range it owns again from the
//!   other side, once it sees a majority again.
//!
//! - Trust: a proxied session runs as the client (its credential travels in the session
//!   hello and the receiver checks it against its own `requirepass`); replication records are
//!   key states of their own keys ([`dump::state_commands`]) or publications, never other
//!   commands; versions from peers are refused beyond [`MAX_VERSION_DRIFT`] ahead of this
//!   node's clock.
//!
//! Consistency is Redis Cluster's: asynchronous replicas may lag, reads from replicas
//! (`READONLY`) may be stale, and a write is lost only if every node that had it dies.

pub mod aae;
pub mod apply;
pub mod dump;
pub mod forward;
pub mod handover;
pub mod link;
pub mod membership;
pub mod merge;
pub mod placement;
pub mod proto;
pub mod serve;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mesh::PeerId;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::client::RoutingFlags;
use crate::cmd::table::{self, Command};
use crate::slot::key_slot;
use link::Link;
use view::{GROUP_SLOTS, GROUPS, View};

/// A range this node does not hold.
pub const NOT_OWNED: u8 = 0;
/// A range this node holds and serves.
pub const SERVING: u8 = 1;
/// A range this node owns but is still pulling.
pub const IMPORTING: u8 = 2;

/// How long a peer that failed a request is avoided (until membership decides).
const SUSPECT_FOR: Duration = Duration::from_secs(5);
/// How long a write waits for a replica's acknowledgement before giving up on that replica.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an importer keeps receiving a range's writes without being its owner yet.
const IMPORTER_TTL: Duration = Duration::from_secs(60);
/// How long a node that held a range and lost it (the view changed) can still hand it over:
/// at a heal, the members that held a range while its owners were cut off lose it at once,
/// and the returning owners must be able to take their copy.
const RELEASED_TTL: Duration = Duration::from_secs(60);

/// This node's copies are current: it can hand ranges over.
const FRESH: u8 = 0;
/// This node lost sight of a majority of the members: its copies missed the other side's
/// writes, so it hands nothing over.
const STALE: u8 = 1;
/// Back with a majority, pulling every owned range again; fresh once every pull is done.
const CATCHING_UP: u8 = 2;

/// This node's part in the cluster at one moment ([`Cluster::status`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterStatus {
    /// The view's epoch (`cluster_current_epoch`).
    pub epoch: u64,
    /// Cache members in the view.
    pub members: usize,
    /// Copies per slot.
    pub replication_factor: usize,
    /// Slots this node is the primary of.
    pub slots_primary: usize,
    /// Slots this node holds a replica of.
    pub slots_replica: usize,
    /// Ranges (of 64 slots) this node owns and is still pulling.
    pub ranges_pulling: usize,
    /// Ranges a peer pulled from here recently (it still receives their writes).
    pub ranges_exporting: usize,
    /// Whether this node sees a majority of the members (writes are accepted).
    pub majority: bool,
    /// Whether its copies may miss writes made elsewhere (it is catching up).
    pub stale: bool,
    /// Replication links to the other owners.
    pub links: Vec<LinkStatus>,
}

/// One replication link: the replication lag towards a peer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkStatus {
    /// The peer's id.
    pub peer: String,
    /// Key states sent or queued and not acknowledged yet.
    pub in_flight: u64,
}

/// How far a version from a peer may be ahead of this node's own clock. Versions are hybrid
/// clocks (milliseconds << 16, plus a counter) and the newer state of a key wins, so a peer
/// that sent `u64::MAX` would make its key impossible to overwrite, and [`Cluster::observe`]
/// would drag this node's clock (and every version it issues) along. Honest members' clocks
/// agree within NTP's milliseconds, and skew beyond the time between two writes of a key
/// already breaks last-writer-wins; a minute leaves room for a badly synchronised member
/// while bounding how far ahead a peer can pin a key (it is overwritten once the minute has
/// passed).
pub const MAX_VERSION_DRIFT: Duration = Duration::from_secs(60);

/// How far before the moment a node was last in touch with a majority its kept copies may
/// already have missed writes: a cut is noticed within the membership's detection bound (6 s
/// on a LAN, more on the WAN), and clocks differ a little.
pub const KEPT_MARGIN: Duration = Duration::from_secs(30);

/// The version of a write made at `now_ms` with counter 0 (saturating).
pub fn version_at(now_ms: u64) -> u64 {
    now_ms.saturating_mul(1 << 16)
}

/// The newest version accepted from a peer at `now_ms`: [`MAX_VERSION_DRIFT`] ahead of this
/// node's physical clock, any counter.
pub fn max_peer_version(now_ms: u64) -> u64 {
    version_at(now_ms.saturating_add(MAX_VERSION_DRIFT.as_millis() as u64)) | 0xffff
}

/// The hybrid clock that versions key states (see [`Cluster::next_version`]).
#[derive(Debug, Default)]
struct HybridClock(AtomicU64);

impl HybridClock {
    /// A version for a write at `now_ms` to a key at version `floor`: above both and above
    /// every version issued or observed (saturating: never wraps to an old version).
    fn next(&self, now_ms: u64, floor: u64) -> u64 {
        let phys = version_at(now_ms);
        let prev = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.max(phys).max(floor).saturating_add(1))
            })
            .unwrap_or_else(|c| c);
        prev.max(phys).max(floor).saturating_add(1)
    }

    /// Moves the clock up to `ver`, but never beyond [`max_peer_version`] at `now_ms`.
    fn observe(&self, ver: u64, now_ms: u64) {
        self.0
            .fetch_max(ver.min(max_peer_version(now_ms)), Ordering::AcqRel);
    }
}

/// What a node answers requests from peers with before its first view is installed.
pub(super) const STARTING: &str = "TRYAGAIN this node is starting";

/// The error a node without a majority answers writes with (Redis Cluster's).
pub const CLUSTERDOWN: &str = "CLUSTERDOWN The cluster is down";

/// A client's cluster state (kept in its [`crate::client::PlacementState`]).
#[derive(Debug, Default)]
pub struct ConnCluster {
    /// Set on sessions proxied from a peer.
    pub internal: Option<Internal>,
    /// Commands of the current batch to forward.
    pub pending: Vec<forward::Pending>,
    /// Replication acknowledgements the batch's replies wait for (sync mode).
    pub waits: Vec<(Arc<Link>, u64)>,
    /// Per write run here although this node does not own its slot (a fallback, or the source
    /// of a hand-over): the links to its owners and pullers, with sequence numbers. In sync
    /// mode such a write is acknowledged only once one of them has it
    /// ([`Cluster::owners_have`]).
    pub unowned: Vec<Vec<(Arc<Link>, u64)>>,
    /// Open proxy streams to peers, one per peer.
    pub sessions: HashMap<PeerId, forward::PeerSession>,
}

/// How a peer asked this node to run a proxied request.
#[derive(Debug, Clone, Copy)]
pub struct Internal {
    /// Run here whatever the view says.
    pub exec: bool,
    /// The client sent READONLY.
    pub readonly: bool,
    /// Further forwards allowed.
    pub hops: u8,
}

/// Where a command goes.
#[derive(Debug)]
pub enum Decision {
    /// Run it here.
    Local,
    /// Answer with this error (`MOVED ...`, `CROSSSLOT ...`).
    Error(String),
    /// Proxy it to a peer.
    Forward {
        /// The peer.
        peer: PeerId,
        /// Whether the peer must run it regardless of its view.
        exec: bool,
        /// Forwards the peer may still make.
        hops: u8,
        /// The slot (for fallbacks).
        slot: u16,
    },
}

/// A range this node held until a view change moved it elsewhere.
#[derive(Debug, Clone, Copy)]
struct Released {
    at: Instant,
    /// Its copy was whole: it served the range, or it was pulling it but every member refused
    /// (it ran the range's requests itself and held the only copy). A range lost while its
    /// pull was still under way holds only part of the keys; handing it over would give the
    /// puller a copy without the writes its source had.
    whole: bool,
}

impl Released {
    fn recent(&self) -> bool {
        self.at.elapsed() < RELEASED_TTL
    }
}

/// Why a node refuses to hand a range over.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal {
    pub why: &'static str,
    /// It holds no copy it could hand over in any round ([`proto::Accept`]), now or once
    /// the pull rounds go on: a puller with the same view need not wait for it.
    pub empty: bool,
}

/// What a source answered a pull of one range in the current round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Not asked yet, or its answer is still awaited.
    Awaited,
    /// It refused, failed or timed out.
    Refused,
    /// It refused, holding no copy at all, with this node's view ([`proto::decode_refusal`]).
    Empty,
}

#[derive(Debug)]
struct Import {
    /// Every other member, in the range's rendezvous order.
    sources: Vec<PeerId>,
    /// Rounds over the sources completed so far; the round decides which copies are taken
    /// ([`Import::accept`]).
    round: usize,
    /// Per source, its answer in this round.
    answers: Vec<Answer>,
    /// When this round started.
    round_since: Instant,
    /// Sources asked so far, every round included.
    attempts: usize,
    asked: Option<(PeerId, Instant)>,
    /// The last source that accepted to hand the range over (answered its pull without
    /// refusing): it holds a copy.
    accepted: Option<PeerId>,
    since: Instant,
}

impl Import {
    fn new(sources: Vec<PeerId>) -> Self {
        let now = Instant::now();
        Import {
            answers: vec![Answer::Awaited; sources.len()],
            sources,
            round: 0,
            round_since: now,
            attempts: 0,
            asked: None,
            accepted: None,
            since: now,
        }
    }

    /// The copies this round takes: served ones first; a released copy only after a round
    /// in which every member refused (it misses the writes made since its release, so a
    /// served copy must win when there is one); a kept copy last.
    fn accept(&self) -> proto::Accept {
        match self.round {
            0 => proto::Accept::Served,
            1 => proto::Accept::Released,
            _ => proto::Accept::Kept,
        }
    }

    /// No member handed the range over in the rounds that take current copies (served, then
    /// released): nobody else holds it.
    fn unsourced(&self) -> bool {
        self.round >= 2
    }

    /// The sources changed (a new view): every one of them is asked again (a pull under way
    /// goes on), and the round goes back to taking released copies at most, since a member
    /// new to the view may serve the range.
    fn renew(&mut self, sources: Vec<PeerId>) {
        self.answers = vec![Answer::Awaited; sources.len()];
        self.accepted = self.accepted.filter(|p| sources.contains(p));
        self.sources = sources;
        self.round = self.round.min(1);
    }

    /// `peer` answered without handing the range over (or never answered): `answer`.
    fn refused_by(&mut self, peer: PeerId, answer: Answer) {
        if let Some(i) = self.sources.iter().position(|p| *p == peer) {
            self.answers[i] = answer;
        }
        self.asked = None;
        self.attempts += 1;
    }

    /// How many sources answered in this round.
    fn answered(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| **a != Answer::Awaited)
            .count()
    }

    /// Every member answered, with this node's view, that it holds no copy at all: no round
    /// can find one, so the range is served as it is at once.
    fn nobody_holds(&self) -> bool {
        self.answers.iter().all(|a| *a == Answer::Empty)
    }

    /// Starts the next round.
    fn next_round(&mut self) {
        self.round += 1;
        self.answers.fill(Answer::Awaited);
        self.round_since = Instant::now();
    }

    /// The first source not asked yet in this round, passing over those `skip` names.
    fn untried(&self, skip: impl Fn(&PeerId) -> bool) -> Option<PeerId> {
        self.sources
            .iter()
            .zip(&self.answers)
            .find(|(p, a)| **a == Answer::Awaited && !skip(p))
            .map(|(p, _)| *p)
    }
}

/// The cluster layer of one cache server.
pub struct Cluster {
    /// The mesh.
    pub mesh: mesh::Mesh,
    me: PeerId,
    /// The current view.
    view: RwLock<Arc<View>>,
    /// Replication factor.
    pub rf: usize,
    /// Synchronous replication.
    pub sync: bool,
    state: Box<[AtomicU8]>,
    /// Per range: being pulled again with its keys kept (after a rejoin), so it can still
    /// hand them over to a peer that pulls it.
    kept: Box<[AtomicBool]>,
    imports: Mutex<HashMap<u16, Import>>,
    importers: Mutex<HashMap<u16, Vec<(PeerId, Instant)>>>,
    /// Ranges this node held and lost: it can still answer merges with them and, if its copy
    /// was whole, hand them over (see [`RELEASED_TTL`]).
    released: Mutex<HashMap<u16, Released>>,
    /// [`FRESH`], [`STALE`] (no majority in sight: writes are refused) or [`CATCHING_UP`].
    freshness: AtomicU8,
    /// How many other members the current nearness order ranks by a measured RTT (the rest by
    /// coordinates or not at all).
    nearness_measured: AtomicUsize,
    links: Mutex<HashMap<PeerId, Arc<Link>>>,
    suspects: Mutex<HashMap<PeerId, Instant>>,
    /// This node's SWIM generation when the membership was last read (0: not read yet). It
    /// changes when the others declared this node down and it rejoined.
    generation: AtomicU64,
    /// Every owned range must be pulled again (this node rejoined) once another member is in
    /// the view.
    resync: AtomicBool,
    /// The hybrid clock that versions key states: milliseconds in the high bits, a counter in
    /// the low 16, never behind a version this node has seen.
    clock: HybridClock,
    /// Unix ms at which this node last had a majority in sight and was fresh: its kept copies
    /// hold every write made until about then ([`Cluster::kept_since`]).
    in_touch_ms: AtomicU64,
    /// When the members of the view last changed: merges wait until it settles.
    view_changed: Mutex<Instant>,
    /// Per member, the ranges to ask it for its copies of ([`merge`]).
    merges: Mutex<HashMap<PeerId, Vec<u16>>>,
    /// When the last background merges were queued, and how many passes there were
    /// ([`Cluster::background_merges`]).
    background: Mutex<(Instant, usize)>,
    /// A first real view is installed. Until then this node's view holds only itself (every
    /// range "served", nothing in it): peers already send it requests and pulls (a restarted
    /// node keeps its address), and a write run then was acknowledged with no replica and
    /// emptied by the first view (1 reduced churn run in 8).
    installed: AtomicBool,
    /// Wakes the importer.
    pub(crate) kick: Notify,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Cache streams refused because the peer holds no certificate for the cache role.
    pub uncertified_refused: prometheus_client::metrics::counter::Counter,
    /// Bytes of key states received from peers: on replication links (writes, hand-overs,
    /// hand-offs) and in answers to merges. What a heal costs (`INFO cluster`).
    pub received: Received,
}

/// Bytes of key states received, by path (see [`Cluster::received`]).
#[derive(Debug, Default)]
pub struct Received {
    /// On replication links.
    pub link: AtomicU64,
    /// In answers to this node's merges.
    pub merge: AtomicU64,
    /// Hashes and masks of merges' hash-tree comparisons, both ways.
    pub tree: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("me", &self.me)
            .field("rf", &self.rf)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

/// The range of a slot.
#[inline]
pub fn group_of(slot: u16) -> u16 {
    slot / GROUP_SLOTS
}

/// The address clients elsewhere reach this node's Redis listener at: the bound address,
/// unless it is unspecified (`0.0.0.0:6300`); then the mesh's advertised IP (its QUIC
/// address's, the one members are told for `redis`) with the bound port. This node's entry in
/// its own slot map (what `CLUSTER SLOTS/SHARDS/NODES` tell cluster clients to connect to)
/// must use it: a node listening on `0.0.0.0` otherwise named itself `0.0.0.0:6300`, which a
/// cluster client on another host cannot connect to (found by `tests/multihost.rs`).
pub(crate) fn reachable_redis(
    mesh: &mesh::Mesh,
    bound: std::net::SocketAddr,
) -> std::net::SocketAddr {
    if bound.ip().is_unspecified() {
        std::net::SocketAddr::new(mesh.quic_addr().ip(), bound.port())
    } else {
        bound
    }
}

impl Cluster {
    /// A cluster layer whose first view holds only this node.
    pub fn new(
        mesh: mesh::Mesh,
        redis: std::net::SocketAddr,
        rf: usize,
        sync: bool,
        shutdown: CancellationToken,
    ) -> Self {
        let me = mesh.peer_id();
        let view = View::new(
            vec![view::Node::new(me, reachable_redis(&mesh, redis))],
            me,
            rf,
            1,
        );
        Self {
            mesh,
            me,
            view: RwLock::new(Arc::new(view)),
            rf,
            sync,
            state: (0..GROUPS).map(|_| AtomicU8::new(SERVING)).collect(),
            kept: (0..GROUPS).map(|_| AtomicBool::new(false)).collect(),
            imports: Mutex::default(),
            importers: Mutex::default(),
            released: Mutex::default(),
            freshness: AtomicU8::new(FRESH),
            nearness_measured: AtomicUsize::new(0),
            links: Mutex::default(),
            suspects: Mutex::default(),
            generation: AtomicU64::new(0),
            resync: AtomicBool::new(false),
            clock: HybridClock::default(),
            merges: Mutex::default(),
            background: Mutex::new((Instant::now(), 0)),
            installed: AtomicBool::new(false),
            kick: Notify::new(),
            shutdown,
            uncertified_refused: Default::default(),
            received: Received::default(),
            in_touch_ms: AtomicU64::new(0),
            view_changed: Mutex::new(Instant::now()),
        }
    }

    /// This node's peer id.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// The local state of a range.
    pub fn group_state(&self, g: u16) -> u8 {
        self.state[usize::from(g)].load(Ordering::Acquire)
    }

    /// The other owners of range `g` in view `v`, primary first.
    pub(super) fn co_owners(&self, v: &View, g: u16) -> Vec<PeerId> {
        v.owners(g * GROUP_SLOTS)
            .iter()
            .map(|&i| v.nodes[usize::from(i)].peer)
            .filter(|p| *p != self.me)
            .collect()
    }

    /// Whether this node can hand range `g` over to a peer that pulls it, taking `accept`.
    /// Never while its copies are stale (it was without a majority and has not caught up).
    /// Otherwise: it serves it; or it is pulling it but every member refused, so it runs the
    /// range's requests itself and holds the only copy there is.
    ///
    /// From [`proto::Accept::Released`] on, also when it held the range until a view change
    /// moved it elsewhere less than [`RELEASED_TTL`] ago, with its copy whole: at a heal, the
    /// members that held a range during the cut may all lose it to the returning owners. Such
    /// a copy misses the writes made since: a puller takes it only after a round in which no
    /// member served the range (a rejoining node whose co-owner was suspected for a moment
    /// once took a copy released 51 s earlier and answered reads from it). With
    /// [`proto::Accept::Kept`], also when it is pulling the range again after a rejoin with
    /// its keys kept: when both sides of a healed cut rejoin, each pulls from the other (a
    /// member that was cut off without noticing it lacked a majority also rejoins with a kept
    /// copy, one that missed the majority's writes).
    pub fn can_hand_over(&self, g: u16, accept: proto::Accept) -> bool {
        self.hand_over(g, accept).is_ok()
    }

    /// [`Cluster::can_hand_over`], with the reason when it refuses (the puller only learns
    /// "refused", and whether this node holds no copy at all; the serving side logs why).
    pub(super) fn hand_over(&self, g: u16, accept: proto::Accept) -> Result<(), Refusal> {
        let later = |why| Err(Refusal { why, empty: false });
        let empty = |why| Err(Refusal { why, empty: true });
        if !self.installed.load(Ordering::Acquire) {
            return later("starting");
        }
        if self.is_stale() {
            return later(if self.has_majority() {
                "catching up"
            } else {
                "no majority"
            });
        }
        match self.group_state(g) {
            NOT_OWNED => match self.released.lock().get(&g) {
                None => empty("not held"),
                Some(r) if !r.whole => empty("released a partial copy"),
                Some(r) if !r.recent() => empty("released too long ago"),
                Some(_) if accept < proto::Accept::Released => later("released (not accepted yet)"),
                Some(_) => Ok(()),
            },
            IMPORTING if self.kept[usize::from(g)].load(Ordering::Acquire) => {
                if accept >= proto::Accept::Kept {
                    Ok(())
                } else {
                    later("re-pulling a kept copy (not accepted yet)")
                }
            }
            state if self.holds_whole(g, state, &self.imports.lock()) => Ok(()),
            // Pulling it too, from the same members the asker asks: whatever it gets, the
            // asker can get from where it comes.
            _ => empty("still pulling it"),
        }
    }

    /// Whether this node's copy of range `g` (in `state`) has every key: it serves the range,
    /// or it is pulling it (not a kept copy) and every member refused it in the rounds that
    /// take current copies, so it runs the range's requests itself and holds the only copy
    /// there is. A pull still under way has only part.
    fn holds_whole(&self, g: u16, state: u8, imports: &HashMap<u16, Import>) -> bool {
        match state {
            SERVING => true,
            IMPORTING => {
                !self.kept[usize::from(g)].load(Ordering::Acquire)
                    && imports.get(&g).is_some_and(Import::unsourced)
            }
            _ => false,
        }
    }

    /// Whether this node answers a merge request for range `g` with its copy: it holds the
    /// range (serving or pulling it) or released it lately. Also while its copies are stale:
    /// a merge keeps only states newer than the asker's, so an old copy cannot hide a write,
    /// and a member that lost sight of a majority for a moment at a heal (a flapping peer is
    /// enough) may hold the only copies of the writes acknowledged just before. In the
    /// reduced churn scenario both holders of such a write were catching up when a rejoining
    /// owner asked them, and answered nothing; the owner served the range from a copy
    /// released earlier, without the write.
    pub fn has_copy(&self, g: u16) -> bool {
        (self.installed.load(Ordering::Acquire) && self.group_state(g) != NOT_OWNED)
            || self.released.lock().get(&g).is_some_and(Released::recent)
    }

    /// How many other members the nearness order (replicas in the maps, `READONLY` routing)
    /// ranks by a measured RTT.
    pub fn nearness_measured(&self) -> usize {
        self.nearness_measured.load(Ordering::Relaxed)
    }

    /// Whether this node sees a majority of the members it knows (writes are accepted).
    pub fn has_majority(&self) -> bool {
        self.freshness.load(Ordering::Acquire) != STALE
    }

    /// Whether this node's copies may miss writes made on the other side of a partition (it
    /// was without a majority and has not pulled its ranges again yet).
    pub fn is_stale(&self) -> bool {
        self.freshness.load(Ordering::Acquire) != FRESH
    }

    /// Number of ranges being pulled.
    pub fn importing(&self) -> usize {
        self.state
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) == IMPORTING)
            .count()
    }

    /// A snapshot of this node's part in the cluster, for status pages.
    pub fn status(&self) -> ClusterStatus {
        let view = self.view();
        let (mut primary, mut replica) = (0, 0);
        for g in 0..GROUPS {
            let slot = g as u16 * GROUP_SLOTS;
            if view.primary(slot) == view.me {
                primary += usize::from(GROUP_SLOTS);
            } else if view.is_owner(slot) {
                replica += usize::from(GROUP_SLOTS);
            }
        }
        let mut links: Vec<LinkStatus> = self
            .links
            .lock()
            .values()
            .filter(|l| !l.is_closed())
            .map(|l| LinkStatus {
                peer: l.peer.to_string(),
                in_flight: l.in_flight(),
            })
            .collect();
        links.sort_by(|a, b| a.peer.cmp(&b.peer));
        ClusterStatus {
            epoch: view.epoch,
            members: view.nodes.len(),
            replication_factor: view.rf,
            slots_primary: primary,
            slots_replica: replica,
            ranges_pulling: self.importing(),
            ranges_exporting: self.exporting(),
            majority: self.has_majority(),
            stale: self.is_stale(),
            links,
        }
    }

    /// Number of ranges some peer pulled from here recently and so still receives the writes
    /// of (for [`IMPORTER_TTL`] after its pull), whatever the view says.
    pub fn exporting(&self) -> usize {
        let mut imp = self.importers.lock();
        imp.retain(|_, list| {
            list.retain(|(_, t)| t.elapsed() < IMPORTER_TTL);
            !list.is_empty()
        });
        imp.len()
    }

    /// Marks `peer` as failing: routing avoids it for a while.
    pub fn suspect(&self, peer: PeerId) {
        if peer != self.me {
            self.suspects.lock().insert(peer, Instant::now());
            self.mesh.report_failure(peer);
        }
    }

    fn is_suspect(&self, peer: &PeerId) -> bool {
        let mut s = self.suspects.lock();
        match s.get(peer) {
            Some(t) if t.elapsed() < SUSPECT_FOR => true,
            Some(_) => {
                s.remove(peer);
                false
            }
            None => false,
        }
    }

    /// The owners of `slot` that are not suspected, in order (all owners if every one is).
    fn live_owners(&self, v: &View, slot: u16) -> Vec<usize> {
        let owners: Vec<usize> = v.owners(slot).iter().map(|&i| usize::from(i)).collect();
        let live: Vec<usize> = owners
            .iter()
            .copied()
            .filter(|&i| i == v.me || !self.is_suspect(&v.nodes[i].peer))
            .collect();
        if live.is_empty() { owners } else { live }
    }

    /// The next holder of `slot` after the `failed` peers, skipping suspects: `None` means
    /// this node.
    pub fn fallback_after(&self, slot: u16, failed: &[PeerId]) -> Option<PeerId> {
        let v = self.view();
        for &i in v.order(slot) {
            let p = v.nodes[usize::from(i)].peer;
            if failed.contains(&p) || self.is_suspect(&p) {
                continue;
            }
            return if p == self.me { None } else { Some(p) };
        }
        None
    }

    /// Where the requests of range `g` go while it is pulled: the last source that accepted to
    /// hand it over (it holds a copy, even if its keys and `Done` were lost on the way with a
    /// closed link), else the source being asked, else (with `or_next`) the next one. A source
    /// that has not answered may refuse, and runs what it is sent on whatever it holds, so a
    /// range pulled again with its keys kept (after a rejoin) runs its requests here until a
    /// source accepted. `None` (run them here) also once every source refused the current
    /// copies: then no member holds the range (its holders are cut off or dead), and sending
    /// each request to whichever member is asked at the moment would scatter a key's writes
    /// and reads.
    fn import_target(&self, g: u16, or_next: bool) -> Option<PeerId> {
        let imports = self.imports.lock();
        let imp = imports.get(&g).filter(|i| !i.unsourced())?;
        if imp.accepted.is_none() && self.kept[usize::from(g)].load(Ordering::Acquire) {
            return None;
        }
        let next = || {
            or_next
                .then(|| imp.untried(|_| false).or(imp.sources.first().copied()))
                .flatten()
        };
        imp.accepted.or(imp.asked.map(|(p, _)| p)).or_else(next)
    }

    /// Decides where a command runs (see the module docs).
    pub fn route(
        &self,
        cc: &ConnCluster,
        flags: RoutingFlags,
        cmd: &Command,
        args: &[&[u8]],
    ) -> Decision {
        if cc.internal.is_some() && !self.installed.load(Ordering::Acquire) {
            return Decision::Error(STARTING.into());
        }
        if cmd.flags.contains(&"write") && !self.has_majority() {
            // The other side does not see it, and at the heal the majority's copy of the key
            // replaces this one: acknowledging it here could lose it.
            return Decision::Error(CLUSTERDOWN.into());
        }
        let slot = match table::command_slot(cmd, args) {
            Ok(Some(s)) => s,
            Ok(None) => return Decision::Local,
            Err(e) => {
                // Keys in several slots run only where every one of them is served.
                return if self.all_local(cmd, args) {
                    Decision::Local
                } else {
                    Decision::Error(e.into())
                };
            }
        };
        let g = group_of(slot);
        if let Some(i) = cc.internal
            && i.exec
        {
            // Run here, unless this node is still pulling the range: then its source runs it.
            if self.group_state(g) == IMPORTING
                && i.hops > 0
                && let Some(src) = self.import_target(g, false)
            {
                return Decision::Forward {
                    peer: src,
                    exec: true,
                    hops: i.hops - 1,
                    slot,
                };
            }
            return Decision::Local;
        }
        let v = self.view();
        let owners = self.live_owners(&v, slot);
        let primary = owners[0];
        let readonly = cmd.flags.contains(&"readonly");
        let serving = self.group_state(g) == SERVING;
        let mine = v.is_owner(slot);
        let peer_of = |i: usize| v.nodes[i].peer;
        if primary == v.me {
            if serving {
                return Decision::Local;
            }
            return match self.import_target(g, true) {
                Some(src) => Decision::Forward {
                    peer: src,
                    exec: true,
                    hops: 1,
                    slot,
                },
                None => Decision::Local,
            };
        }
        if matches!(cmd.name, "ssubscribe" | "sunsubscribe") {
            // A subscription cannot be proxied: subscribe where the shard lives.
            return if mine && serving {
                Decision::Local
            } else {
                Decision::Error(format!("MOVED {slot} {}", v.nodes[primary].redis))
            };
        }
        let client_readonly = cc.internal.map_or(flags.readonly, |i| i.readonly);
        if client_readonly && readonly && mine && serving {
            return Decision::Local;
        }
        match cc.internal {
            Some(_) if mine && serving => Decision::Local,
            // Out of hops (views disagree for a moment): the primary runs it, whatever its view.
            Some(i) if i.hops == 0 => Decision::Forward {
                peer: peer_of(primary),
                exec: true,
                hops: 1,
                slot,
            },
            Some(i) => Decision::Forward {
                peer: peer_of(primary),
                exec: false,
                hops: i.hops - 1,
                slot,
            },
            None if flags.aware && !flags.asking => {
                let a = v.nodes[primary].redis;
                Decision::Error(format!("MOVED {slot} {a}"))
            }
            None => {
                let target = if client_readonly && readonly {
                    // The nearest owner: the view lists nodes by nearness.
                    v.map_nearest(&owners)
                } else {
                    primary
                };
                Decision::Forward {
                    peer: peer_of(target),
                    exec: false,
                    hops: 2,
                    slot,
                }
            }
        }
    }

    fn all_local(&self, cmd: &Command, args: &[&[u8]]) -> bool {
        let v = self.view();
        table::keys_of(cmd, args)
            .unwrap_or_default()
            .iter()
            .all(|k| {
                let s = key_slot(k);
                self.live_owners(&v, s)[0] == v.me && self.group_state(group_of(s)) == SERVING
            })
    }

    /// The links a write to `slot` must reach: its other owners and any node pulling it.
    pub fn repl_targets(&self, slot: u16) -> Vec<Arc<Link>> {
        self.repl_targets_in(&self.view(), slot)
    }

    fn repl_targets_in(&self, v: &View, slot: u16) -> Vec<Arc<Link>> {
        let mut peers: Vec<PeerId> = v
            .owners(slot)
            .iter()
            .map(|&i| v.nodes[usize::from(i)].peer)
            .filter(|p| *p != self.me)
            .collect();
        {
            let mut imp = self.importers.lock();
            if let Some(list) = imp.get_mut(&group_of(slot)) {
                list.retain(|(_, t)| t.elapsed() < IMPORTER_TTL);
                for (p, _) in list.iter() {
                    if !peers.contains(p) {
                        peers.push(*p);
                    }
                }
            }
        }
        peers.into_iter().map(|p| self.link(p)).collect()
    }

    /// Links to every other member (for `PUBLISH`).
    pub fn all_links(&self) -> Vec<Arc<Link>> {
        let v = self.view();
        v.nodes
            .iter()
            .filter(|n| n.peer != self.me)
            .map(|n| self.link(n.peer))
            .collect()
    }

    /// The ordered link to `peer`, started on first use.
    pub fn link(&self, peer: PeerId) -> Arc<Link> {
        let mut links = self.links.lock();
        let before = match links.get(&peer) {
            Some(l) if !l.is_closed() => return l.clone(),
            before => before.cloned(),
        };
        let l = Link::start(
            self.mesh.clone(),
            peer,
            self.shutdown.child_token(),
            before.as_deref(),
        );
        links.insert(peer, l.clone());
        l
    }

    /// The oldest version a pull of ranges this node kept over a cut or a rejoin asks for: its
    /// copies missed only writes made since it was last in touch with a majority, less
    /// [`KEPT_MARGIN`] (the cut began before this node noticed it). Older differences are
    /// found by the merges that follow every heal and rejoin ([`merge`]). 0 (everything) if
    /// it never was in touch.
    pub fn kept_since(&self) -> u64 {
        match self.in_touch_ms.load(Ordering::Acquire) {
            0 => 0,
            t => version_at(t.saturating_sub(KEPT_MARGIN.as_millis() as u64)),
        }
    }

    /// A version for a write made now to a key whose state has version `floor`: newer than
    /// `floor` and than every version this node issued or saw.
    pub fn next_version(&self, now_ms: u64, floor: u64) -> u64 {
        self.clock.next(now_ms, floor)
    }

    /// Notes a version received from a peer: later writes here get newer ones. The clock never
    /// moves beyond [`max_peer_version`] of the moment, whatever the peer sent.
    pub fn observe(&self, ver: u64) {
        self.clock.observe(ver, crate::session::now_ms());
    }

    /// Versions the key states a write left behind and queues them on the replication links.
    /// A key absent before the write (`existed`, per key) and after it was not written, and no
    /// state goes out for it (see [`crate::cmd::Ctx::run`]), unless the command is a delete:
    /// `DEL k` means k must be gone everywhere, also when this node lacked it (the range's
    /// copy here was made during a cut without it), so it leaves a tombstone.
    pub fn capture_write(
        &self,
        db: &mut crate::db::Db,
        now: u64,
        cmd: &Command,
        all: &[&[u8]],
        existed: &[bool],
        cc: &mut ConnCluster,
    ) {
        let deletes = matches!(cmd.name, "del" | "unlink" | "getdel");
        let keys: Vec<&[u8]> = all
            .iter()
            .enumerate()
            .filter(|(i, k)| {
                deletes || existed.get(*i).copied().unwrap_or(true) || db.peek_ref(k, now).is_some()
            })
            .map(|(_, k)| *k)
            .collect();
        let Some(first) = keys.first() else {
            return;
        };
        let versions: Vec<u64> = keys
            .iter()
            .map(|k| {
                let ver = self.next_version(now, db.version(k, now));
                db.set_version(k, ver, now);
                ver
            })
            .collect();
        let slot = key_slot(first);
        let v = self.view();
        let targets = self.repl_targets_in(&v, slot);
        if tracing::enabled!(target: "cache::keys", tracing::Level::TRACE) {
            let to: Vec<String> = targets.iter().map(|l| l.peer.to_string()).collect();
            tracing::trace!(
                target: "cache::keys",
                key = %String::from_utf8_lossy(first),
                ver = versions.first().copied().unwrap_or(0),
                range = group_of(slot),
                epoch = v.epoch,
                owner = v.is_owner(slot),
                state = self.group_state(group_of(slot)),
                ?to,
                "write ran here"
            );
        }
        if targets.is_empty() {
            return;
        }
        let mut buf = BytesMut::new();
        for (k, ver) in keys.iter().zip(versions) {
            dump::dump_state(db, k, ver, now, &mut buf);
        }
        let rec = proto::Record::Keys(buf.freeze());
        let mut sent = Vec::with_capacity(targets.len());
        for l in targets {
            let seq = l.push(rec.clone());
            sent.push((l, seq));
        }
        if !self.sync {
            return;
        }
        if !v.is_owner(slot) {
            // The targets are the slot's owners and the members pulling it.
            cc.unowned.push(sent.clone());
        }
        cc.waits.extend(sent);
    }

    /// Whether every write in `unowned` reached one of its owners or pullers, waiting up to
    /// [`ACK_TIMEOUT`] for each. A write run by a member that does not own its slot, with every
    /// owner silent (cut off but not declared down yet), would otherwise be acknowledged with
    /// its only copy on a member that holds the range for no one: at the next view change it
    /// may empty the range, or the owners come back and serve their own copies. Suspected
    /// owners are waited for too: a fallback runs a write here precisely because its primary
    /// did not answer in time (and is suspected), and its acknowledgement still counts
    /// ([`Self::wait_acks`] skips suspected replicas, and checking right after it answered
    /// `TRYAGAIN` in `tests/cache_partition.rs` to writes the owners had applied within
    /// milliseconds).
    pub async fn owners_have(&self, unowned: Vec<Vec<(Arc<Link>, u64)>>) -> bool {
        let each = unowned.into_iter().map(|w| async move {
            if w.iter().any(|(l, s)| l.is_acked(*s)) {
                return true;
            }
            if w.is_empty() {
                return false;
            }
            let waits = w.iter().map(|(l, s)| {
                Box::pin(async move { l.wait(*s, ACK_TIMEOUT).await.then_some(()).ok_or(()) })
            });
            futures::future::select_ok(waits).await.is_ok()
        });
        futures::future::join_all(each)
            .await
            .into_iter()
            .all(|ok| ok)
    }

    /// Waits until every link acknowledged its sequence number, or gave up on the peer.
    pub async fn wait_acks(&self, waits: Vec<(Arc<Link>, u64)>) {
        let mut best: HashMap<PeerId, (Arc<Link>, u64)> = HashMap::new();
        for (l, s) in waits {
            let e = best.entry(l.peer).or_insert((l, s));
            e.1 = e.1.max(s);
        }
        let futs = best.into_values().map(|(l, s)| async move {
            if self.is_suspect(&l.peer) {
                return;
            }
            if !l.wait(s, ACK_TIMEOUT).await {
                tracing::warn!(peer = %l.peer, "replica did not acknowledge in time");
                self.suspect(l.peer);
            }
        });
        futures::future::join_all(futs).await;
    }

    /// Registers `peer` as pulling ranges `groups` (it receives their writes from now on).
    pub fn add_importer(&self, peer: PeerId, groups: &[u16]) {
        let mut imp = self.importers.lock();
        let now = Instant::now();
        for g in groups {
            let list = imp.entry(*g).or_default();
            list.retain(|(p, _)| *p != peer);
            list.push((peer, now));
        }
    }
}

impl View {
    /// The owner among `owners` nearest to this node.
    pub fn map_nearest(&self, owners: &[usize]) -> usize {
        *owners
            .iter()
            .min_by_key(|i| self.nearness_rank(**i))
            .unwrap_or(&owners[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_cannot_push_the_clock_beyond_the_drift() {
        let now = 1_800_000_000_000;
        let c = HybridClock::default();
        let v = c.next(now, 0);
        assert_eq!(v, version_at(now) + 1);
        c.observe(u64::MAX, now);
        let v = c.next(now, 0);
        assert!(v <= max_peer_version(now) + 1, "{v:#x}");
        assert!(v > version_at(now + 59_000), "{v:#x}");
        // A version within the drift is taken as it is.
        let c = HybridClock::default();
        c.observe(version_at(now + 1_000) + 5, now);
        assert_eq!(c.next(now, 0), version_at(now + 1_000) + 6);
        // Saturating: a floor at the top stays at the top, never wraps to an old version.
        assert_eq!(c.next(now, u64::MAX), u64::MAX);
        assert_eq!(c.next(u64::MAX, 0), u64::MAX);
        assert_eq!(max_peer_version(u64::MAX), u64::MAX);
    }
}
