//! Zone spreading: how a signed zone accepted on one node reaches every other.
//!
//! - **Gossip**: a zone this node accepts from its owner is published on [`ZONE_TOPIC`]
//!   (gossipsub) and put in the DHT under [`record_key`]. Zones received from peers are not
//!   re-gossiped (gossipsub already floods them); they are remembered as spread.
//! - **Every received zone goes through [`ZoneStore::accept`]**: signature, the ledger's current
//!   zone key for an unexpired name, higher sequence. Refusals are counted by reason in
//!   `proxima_naming_zones_refused_total{reason}`. A zone for a name this node's ledger replica
//!   does not know yet (replication lag) waits in a bounded queue ([`MAX_PENDING`]) and is
//!   retried as the ledger advances, for up to [`PENDING_TTL`]; a zone signed by a key the
//!   ledger does not (yet) show is refused at once and retried the same way (key rotation lag).
//! - **On demand**: a lookup that misses (DNS, CDN) reports the name without waiting
//!   ([`ZoneStore::on_miss`]); if the ledger has the name live, the zone is fetched from the DHT
//!   in the background (at most once per [`REFETCH_AFTER`] per name), and if the DHT does not
//!   have it (yet: a put still on its way), asked of up to [`ASK_MEMBERS`] live members
//!   directly. A node that restarted misses the gossip of its first seconds (its peers do not
//!   know it subscribes yet), so this is what makes a zone changed then reach it at once.
//! - **Sync**: at start, and every `naming.zone_sync` after, the node pulls every zone a live
//!   member holds over the data plane ([`ZONES_ALPN`]), so a node that joins later, or missed
//!   gossip while down, gets them all; and at once from any member that comes (back) into the
//!   live view (a join, a restart, the other side of a healed partition), since zones changed
//!   on either side of a cut did not cross it.
//! - **Republish**: every `naming.zone_republish`, each held zone is put in the DHT again, so a
//!   zone never expires from the network while any node holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use naming::{Ledger, Name, SignedZone, ZoneRejected, ZoneStore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Gossip topic of signed zones (the payload is a zone's canonical encoding).
pub const ZONE_TOPIC: &str = "proxima/zones/1";
/// ALPN of zone sync (the reply is every held zone, one frame each).
pub const ZONES_ALPN: &[u8] = b"proxima/zones/1";
/// DHT key prefix of zone records.
pub const RECORD_PREFIX: &str = "/proxima/zone/";
/// Zones waiting for the ledger.
pub const MAX_PENDING: usize = 1024;
/// How long a zone waits for the ledger before it is refused.
pub const PENDING_TTL: Duration = Duration::from_secs(30);
/// A name missed by lookups is fetched from the DHT at most this often.
pub const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// How often the membership is compared with the last look, to pull zones from members that
/// came (back) into the view.
const HEAL_CHECK: Duration = Duration::from_secs(1);
/// Largest sync request.
const MAX_SYNC_REQUEST: usize = 1024;
/// How many live members a missed zone the DHT lacks is asked of.
pub const ASK_MEMBERS: usize = 3;
/// A sync request for one zone: this prefix, then the name (any other request is for all).
const ONE_ZONE: &[u8] = b"one ";

/// The DHT key of `name`'s zone.
pub fn record_key(name: &Name) -> Vec<u8> {
    format!("{RECORD_PREFIX}{name}").into_bytes()
}

/// The DHT record validator: a zone record must decode, be stored under its own name and carry
/// a valid signature (the ledger check happens when a node accepts it). Other keys pass.
pub fn dht_validator() -> mesh::RecordValidator {
    Arc::new(|key: &[u8], value: &[u8]| {
        let Some(name) = key.strip_prefix(RECORD_PREFIX.as_bytes()) else {
            return true;
        };
        match SignedZone::decode(value) {
            Ok(z) => z.zone.name.as_str().as_bytes() == name && z.verify().is_ok(),
            Err(_) => false,
        }
    })
}

/// Where a zone came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ViaLabel {
    via: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Metrics of zone spreading.
#[derive(Clone, Default)]
pub struct SpreadMetrics {
    received: Family<ViaLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
    pending: Gauge,
    published: Counter,
    fetched: Counter,
}

impl SpreadMetrics {
    /// Registers under the naming prefix.
    pub fn register(&self, sub: &mut Registry) {
        sub.register(
            "zones_received",
            "Zones from peers accepted, by how they came (gossip, sync, dht, retry)",
            self.received.clone(),
        );
        sub.register(
            "zones_refused",
            "Zones from peers refused, by reason (bad_signature, wrong_key, stale_sequence, ...)",
            self.refused.clone(),
        );
        sub.register(
            "zones_pending",
            "Zones waiting for the ledger replica to catch up",
            self.pending.clone(),
        );
        sub.register(
            "zones_published",
            "Zones this node published (gossip and DHT)",
            self.published.clone(),
        );
        sub.register(
            "zones_fetched",
            "On-demand DHT fetches started after a lookup miss",
            self.fetched.clone(),
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Gossip,
    Sync,
    Dht,
    Member,
    Retry,
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Self::Gossip => "gossip",
            Self::Sync => "sync",
            Self::Dht => "dht",
            Self::Member => "member",
            Self::Retry => "retry",
        }
    }
}

/// Settings of zone spreading (from `[naming]`).
#[derive(Debug, Clone)]
pub struct SpreadConfig {
    /// How often held zones are put in the DHT again.
    pub republish: Duration,
    /// How often zones are pulled from a random live member.
    pub sync: Duration,
}

struct Pending {
    zone: SignedZone,
    since: Instant,
    /// Already counted as refused (a wrong key); not counted again when it expires.
    counted: bool,
}

/// Spreads zones between nodes. Started once per node by the naming service.
pub struct Spreader {
    zones: Arc<ZoneStore>,
    ledger: Arc<dyn Ledger>,
    mesh: mesh::Mesh,
    metrics: SpreadMetrics,
    /// Highest sequence per name known to be spread (published by us or received).
    spread: Mutex<HashMap<Name, u64>>,
    pending: Mutex<HashMap<Name, Pending>>,
    fetched: Mutex<HashMap<Name, Instant>>,
}

impl Spreader {
    /// Starts every spreading task on `tracker` (see the module docs).
    pub async fn start(
        zones: Arc<ZoneStore>,
        mesh: mesh::Mesh,
        config: SpreadConfig,
        metrics: SpreadMetrics,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Arc<Self>> {
        let this = Arc::new(Self {
            ledger: zones.ledger().clone(),
            spread: Mutex::new(
                zones
                    .names()
                    .into_iter()
                    .filter_map(|n| zones.get(&n).map(|z| (n, z.zone.sequence)))
                    .collect(),
            ),
            zones,
            mesh,
            metrics,
            pending: Mutex::default(),
            fetched: Mutex::default(),
        });
        this.serve_sync()?;
        let gossip = this.mesh.control().subscribe(ZONE_TOPIC).await?;
        let (miss_tx, miss_rx) = tokio::sync::mpsc::channel(256);
        this.zones.on_miss(miss_tx);
        let stop = shutdown.clone();
        tracker.spawn(this.clone().receive_gossip(gossip, stop));
        tracker.spawn(this.clone().publish_local(shutdown.clone()));
        tracker.spawn(this.clone().retry_pending(shutdown.clone()));
        tracker.spawn(this.clone().fetch_misses(miss_rx, shutdown.clone()));
        tracker.spawn(this.clone().sync_and_republish(config, shutdown.clone()));
        Ok(this)
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a zone from a peer through the store. Returns true if it was accepted.
    async fn offer(&self, bytes: &[u8], via: Via) -> bool {
        let zone = match SignedZone::decode(bytes) {
            Ok(z) => z,
            Err(e) => {
                self.refused("decode");
                tracing::debug!(error = %e, via = via.label(), "undecodable zone from a peer");
                return false;
            }
        };
        let name = zone.zone.name.clone();
        let seq = zone.zone.sequence;
        if let Some(held) = self.zones.get(&name) {
            if held.zone.sequence == seq && held.signature == zone.signature {
                return false; // already held: a duplicate, not a refusal
            }
            if via != Via::Gossip && held.zone.sequence >= seq {
                return false; // a peer that is behind; nothing to learn
            }
        }
        // Mark as spread before accepting, so the change it triggers is not re-published;
        // undone if the zone is refused.
        let before = Self::lock(&self.spread).insert(name.clone(), seq);
        let result = self.zones.accept(zone.clone()).await;
        if result.is_err() {
            let mut spread = Self::lock(&self.spread);
            match before {
                Some(b) => spread.insert(name.clone(), b),
                None => spread.remove(&name),
            };
        }
        match result {
            Ok(()) => {
                self.metrics
                    .received
                    .get_or_create(&ViaLabel { via: via.label() })
                    .inc();
                true
            }
            Err(e) => {
                let wait = matches!(e, ZoneRejected::NotRegistered(_))
                    || (matches!(e, ZoneRejected::WrongKey(_)) && via != Via::Retry);
                // Lag is not a refusal until it outlives the queue; a wrong key is one now.
                if !matches!(e, ZoneRejected::NotRegistered(_)) && via != Via::Retry {
                    self.refused(e.reason());
                }
                if wait && via != Via::Retry {
                    let counted = !matches!(e, ZoneRejected::NotRegistered(_));
                    self.park(zone, counted);
                }
                false
            }
        }
    }

    fn refused(&self, reason: &'static str) {
        self.metrics
            .refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    fn park(&self, zone: SignedZone, counted: bool) {
        let mut pending = Self::lock(&self.pending);
        if pending.len() >= MAX_PENDING && !pending.contains_key(&zone.zone.name) {
            // Full: drop the oldest.
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.since)
                .map(|(n, _)| n.clone())
                && pending.remove(&oldest).is_some_and(|p| !p.counted)
            {
                self.refused("not_registered");
            }
        }
        let keep = pending
            .get(&zone.zone.name)
            .is_none_or(|p| p.zone.zone.sequence < zone.zone.sequence);
        if keep {
            pending.insert(
                zone.zone.name.clone(),
                Pending {
                    zone,
                    since: Instant::now(),
                    counted,
                },
            );
        }
        self.metrics.pending.set(pending.len() as i64);
    }

    async fn receive_gossip(
        self: Arc<Self>,
        mut rx: tokio::sync::broadcast::Receiver<(mesh::PeerId, Bytes)>,
        stop: CancellationToken,
    ) {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = rx.recv() => m,
            };
            match msg {
                Ok((peer, bytes)) => {
                    if !self.offer(&bytes, Via::Gossip).await {
                        tracing::debug!(%peer, "gossiped zone not taken");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        lost = n,
                        "zone gossip receiver lagged; the next sync fills the gap"
                    );
                }
                Err(_) => return,
            }
        }
    }

    /// Publishes zones accepted from this node's owner (any change with a sequence not yet
    /// known as spread).
    async fn publish_local(self: Arc<Self>, stop: CancellationToken) {
        let mut changes = self.zones.subscribe();
        loop {
            let names = tokio::select! {
                _ = stop.cancelled() => return,
                c = changes.recv() => match c {
                    Ok(name) => vec![name],
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.zones.names(),
                    Err(_) => return,
                },
            };
            for name in names {
                let Some(zone) = self.zones.get(&name) else {
                    continue;
                };
                let seq = zone.zone.sequence;
                {
                    let mut spread = Self::lock(&self.spread);
                    if spread.get(&name).is_some_and(|s| *s >= seq) {
                        continue;
                    }
                    spread.insert(name.clone(), seq);
                }
                self.publish(&zone).await;
            }
        }
    }

    async fn publish(&self, zone: &SignedZone) {
        let bytes = zone.encode();
        let name = &zone.zone.name;
        self.metrics.published.inc();
        if bytes.len() <= mesh::control::MAX_GOSSIP {
            // No peer subscribed yet is not an error: sync covers nodes that join later.
            if let Err(e) = self
                .mesh
                .control()
                .publish(ZONE_TOPIC, Bytes::from(bytes.clone()))
                .await
            {
                tracing::debug!(%name, error = %e, "zone gossip not sent");
            }
        }
        self.put_record(zone, bytes).await;
        tracing::info!(%name, sequence = zone.zone.sequence, "zone published");
    }

    async fn put_record(&self, zone: &SignedZone, bytes: Vec<u8>) {
        if bytes.len() > mesh::control::MAX_RECORD {
            return; // too large for the DHT: gossip and sync carry it
        }
        let control = self.mesh.control().clone();
        let key = record_key(&zone.zone.name);
        let name = zone.zone.name.clone();
        // The DHT query may take a while on a large network; never hold the caller.
        tokio::spawn(async move {
            if let Err(e) = control.put_record(key, bytes).await {
                tracing::debug!(%name, error = %e, "zone DHT put failed");
            }
        });
    }

    async fn retry_pending(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let ready: Vec<SignedZone> = {
                let mut pending = Self::lock(&self.pending);
                if pending.is_empty() {
                    continue;
                }
                let mut ready = Vec::new();
                let mut expired = 0;
                let mut keep = HashMap::new();
                for (name, p) in pending.drain() {
                    let entry = self.ledger_entry_key(&name);
                    if entry == Some(p.zone.zone_key) {
                        ready.push(p.zone);
                    } else if p.since.elapsed() > PENDING_TTL {
                        expired += usize::from(!p.counted);
                    } else {
                        keep.insert(name, p);
                    }
                }
                *pending = keep;
                self.metrics.pending.set(pending.len() as i64);
                for _ in 0..expired {
                    self.refused("not_registered");
                }
                ready
            };
            for zone in ready {
                self.offer(&zone.encode(), Via::Retry).await;
            }
        }
    }

    /// The zone key the ledger holds for `name` now (in-memory for the embedded ledger).
    fn ledger_entry_key(&self, name: &Name) -> Option<[u8; 32]> {
        let ledger = self.ledger.clone();
        let name = name.clone();
        // The embedded ledger answers without awaiting anything; poll once.
        let fut = async move { ledger.lookup(&name).await };
        futures::FutureExt::now_or_never(fut)
            .and_then(|r| r.ok().flatten())
            .map(|e| e.zone_key)
    }

    async fn fetch_misses(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::Receiver<Name>,
        stop: CancellationToken,
    ) {
        loop {
            let name = tokio::select! {
                _ = stop.cancelled() => return,
                n = rx.recv() => match n { Some(n) => n, None => return },
            };
            let tld = self.ledger.tld().clone();
            let Some(zone_name) = name
                .ancestors()
                .find(|a| naming::check_registrable(a, &tld).is_ok())
            else {
                continue;
            };
            if self.zones.get(&zone_name).is_some() {
                continue;
            }
            // Only names the ledger has live: a flood of queries for unregistered names costs
            // one in-memory lookup each.
            let Ok(Some(entry)) = self.ledger.lookup(&zone_name).await else {
                continue;
            };
            let now = self.ledger.now().await.unwrap_or(0);
            if !entry.is_live(now) {
                continue;
            }
            {
                let mut fetched = Self::lock(&self.fetched);
                if fetched
                    .get(&zone_name)
                    .is_some_and(|t| t.elapsed() < REFETCH_AFTER)
                {
                    continue;
                }
                if fetched.len() >= 4096 {
                    fetched.clear();
                }
                fetched.insert(zone_name.clone(), Instant::now());
            }
            self.metrics.fetched.inc();
            let this = self.clone();
            tokio::spawn(async move {
                match this.mesh.control().get_record(record_key(&zone_name)).await {
                    Ok(bytes) => {
                        this.offer(&bytes, Via::Dht).await;
                    }
                    Err(e) => {
                        tracing::debug!(name = %zone_name, error = %e, "zone not in the DHT; asking members");
                        this.ask_members(&zone_name).await;
                    }
                }
            });
        }
    }

    fn serve_sync(self: &Arc<Self>) -> anyhow::Result<()> {
        // Weak: the data plane outlives nothing it serves, and a strong reference here would
        // close a cycle (store -> follower ledger -> mesh -> handler -> store) that keeps the
        // store's database locked after the node stops.
        let zones = Arc::downgrade(&self.zones);
        self.mesh
            .dataplane()
            .serve_streams(ZONES_ALPN, move |peer, mut send, mut recv| {
                let zones = zones.clone();
                Box::pin(async move {
                    let Some(zones) = zones.upgrade() else {
                        return;
                    };
                    // The request is a version marker for now (room for a "since" later).
                    let req = mesh::frame::FrameDecoder::new(MAX_SYNC_REQUEST)
                        .read(&mut recv)
                        .await;
                    let Ok(Some(req)) = req else {
                        return;
                    };
                    let names = match req.strip_prefix(ONE_ZONE) {
                        Some(one) => match std::str::from_utf8(one)
                            .ok()
                            .and_then(|n| Name::parse(n).ok())
                        {
                            Some(name) => vec![name],
                            None => return,
                        },
                        None => zones.names(),
                    };
                    let mut sent = 0usize;
                    for name in names {
                        if let Some(z) = zones.get(&name) {
                            if mesh::frame::write(&mut send, &z.encode()).await.is_err() {
                                return;
                            }
                            sent += 1;
                        }
                    }
                    let _ = send.finish();
                    tracing::debug!(%peer, zones = sent, "zones sent to a syncing peer");
                })
            })?;
        Ok(())
    }

    /// Pulls every zone `peer` holds. Returns how many were accepted.
    async fn pull(&self, peer: mesh::PeerId) -> anyhow::Result<usize> {
        self.request(peer, b"all", Via::Sync).await
    }

    /// Sends `req` on the zone-sync ALPN and offers every zone `peer` answers with. Returns how
    /// many were accepted.
    async fn request(&self, peer: mesh::PeerId, req: &[u8], via: Via) -> anyhow::Result<usize> {
        let (mut send, mut recv) = self.mesh.open_bi(peer, ZONES_ALPN).await?;
        mesh::frame::write(&mut send, req).await?;
        let _ = send.finish();
        let decoder = mesh::frame::FrameDecoder::new(naming::zone::MAX_ZONE_BYTES);
        let mut accepted = 0;
        while let Some(bytes) = decoder.read(&mut recv).await? {
            if self.offer(&bytes, via).await {
                accepted += 1;
            }
        }
        Ok(accepted)
    }

    /// Asks up to [`ASK_MEMBERS`] live members, one after the other, for `name`'s zone, until
    /// this node holds it (each ask bounded by a few seconds).
    async fn ask_members(&self, name: &Name) {
        let mut peers = self.live_peers();
        rand::seq::SliceRandom::shuffle(peers.as_mut_slice(), &mut rand::thread_rng());
        let mut req = ONE_ZONE.to_vec();
        req.extend_from_slice(name.to_string().as_bytes());
        for peer in peers.into_iter().take(ASK_MEMBERS) {
            match tokio::time::timeout(
                Duration::from_secs(5),
                self.request(peer, &req, Via::Member),
            )
            .await
            {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(%peer, %name, "missed zone fetched from a member")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, %name, error = %e, "asking a member for a zone failed")
                }
                Err(_) => tracing::debug!(%peer, %name, "asking a member for a zone timed out"),
            }
            // Accepted, or it came another way meanwhile.
            if self.zones.get(name).is_some() {
                return;
            }
        }
    }

    /// [`Self::pull`] bounded by `limit`; `None` (logged) if it failed or ran out of time.
    async fn pull_within(&self, peer: mesh::PeerId, limit: Duration) -> Option<usize> {
        match tokio::time::timeout(limit, self.pull(peer)).await {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "zone pull failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, ?limit, "zone pull timed out");
                None
            }
        }
    }

    fn live_peers(&self) -> Vec<mesh::PeerId> {
        self.mesh
            .members()
            .into_iter()
            .filter(|m| !m.is_self && m.state == mesh::MemberState::Alive)
            .map(|m| m.id.peer)
            .collect()
    }

    async fn sync_and_republish(self: Arc<Self>, config: SpreadConfig, stop: CancellationToken) {
        // At start: pull from the first live members (bootstrap peers), a few times while the
        // membership fills in, so a node that joins later has every zone.
        let mut pulled_from = std::collections::HashSet::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) && pulled_from.len() < 3 {
            for peer in self.live_peers() {
                if pulled_from.len() >= 3 || pulled_from.contains(&peer) {
                    continue;
                }
                if let Some(n) = self.pull_within(peer, Duration::from_secs(10)).await {
                    pulled_from.insert(peer);
                    tracing::info!(%peer, accepted = n, "zones synced from a peer");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        let mut sync = tokio::time::interval(config.sync);
        let mut republish = tokio::time::interval(config.republish);
        let mut membership = tokio::time::interval(HEAL_CHECK);
        sync.tick().await;
        republish.tick().await;
        let mut was_live: std::collections::HashSet<mesh::PeerId> =
            self.live_peers().into_iter().collect();
        // Pulls from members back in the view run beside the loop (a heal brings many at
        // once; one slow pull must not hold up the rest or the periodic work); dropping the
        // set at shutdown aborts them.
        let mut heal_pulls = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(_) = heal_pulls.join_next(), if !heal_pulls.is_empty() => {}
                _ = membership.tick() => {
                    // A member that is alive now and was not a moment ago has joined, restarted
                    // or come back from the other side of a partition: whatever changed on
                    // either side meanwhile did not cross, so pull from it now rather than at
                    // the next random sync (a minute away).
                    let live: std::collections::HashSet<mesh::PeerId> =
                        self.live_peers().into_iter().collect();
                    for &peer in live.difference(&was_live) {
                        let this = self.clone();
                        heal_pulls.spawn(async move {
                            if let Some(n) = this.pull_within(peer, Duration::from_secs(10)).await
                                && n > 0
                            {
                                tracing::info!(%peer, accepted = n, "zones pulled from a member back in the view");
                            }
                        });
                    }
                    was_live = live;
                }
                _ = sync.tick() => {
                    let peers = self.live_peers();
                    if peers.is_empty() { continue; }
                    let peer = peers[rand::random::<usize>() % peers.len()];
                    if let Some(n) = self.pull_within(peer, Duration::from_secs(30)).await
                        && n > 0
                    {
                        tracing::info!(%peer, accepted = n, "anti-entropy sync brought new zones");
                    }
                }
                _ = republish.tick() => {
                    let names = self.zones.names();
                    for name in &names {
                        if let Some(z) = self.zones.get(name) {
                            self.put_record(&z, z.encode()).await;
                        }
                    }
                    tracing::debug!(zones = names.len(), "zones republished to the DHT");
                }
            }
        }
    }
}
