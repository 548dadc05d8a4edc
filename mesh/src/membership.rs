//! Membership and failure detection: `foca` (SWIM with suspicion, indirect probes and
//! refutation) carried over the data plane, plus each member's self-description.
//!
//! Transport: every SWIM packet is one frame on a fresh unidirectional QUIC stream of protocol
//! [`SWIM_ALPN`], over a cached connection to the member. The frame payload is an envelope:
//! `[meta_len: u16][meta: JSON MemberMeta][foca packet]`. The envelope's metadata is the
//! sender's own (service addresses, capacity, load, coordinate); it is believed only for the
//! peer the QUIC handshake authenticated, so a member cannot speak for another one.
//!
//! Detection bound: a crashed member stops acking; whichever member probes it next (each member
//! probes one random member per `probe_period`) suspects it after `probe_rtt` plus the indirect
//! probes, and the suspicion becomes *down* `suspect_to_down_after` later unless refuted. The
//! verdict spreads with the gossip of the next packets. See [`MembershipConfig::detection_bound`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use foca_rand::SeedableRng;
use libp2p::identity::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::coords::{NetCoord, Pharos, PharosConfig};
use crate::dataplane::{Connection, DataPlane};
use crate::frame::{self, FrameDecoder};
use crate::trust::{self, Certificate, Revocations, Standing, TrustPolicy};

/// ALPN of the SWIM protocol on the data plane.
pub const SWIM_ALPN: &[u8] = b"proxima/swim/1";
/// Largest SWIM frame accepted.
pub const MAX_SWIM_FRAME: usize = 64 * 1024;
/// Largest metadata document accepted inside an envelope.
pub const MAX_META: usize = 8 * 1024;
/// Most service entries a member may advertise.
pub const MAX_SERVICES: usize = 16;
/// SWIM packets in flight (being sent) at once; more are dropped, as UDP would.
const MAX_SENDS_IN_FLIGHT: usize = 256;
/// Inbound packets queued for the membership task.
const INBOX: usize = 1024;

/// The identity SWIM gossips: who, where its data plane listens, and which incarnation of the
/// process it is (a restart gets a higher generation and so wins over the dead one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// The node's peer id (its Ed25519 key).
    pub peer: PeerId,
    /// Its QUIC data-plane address.
    pub quic: SocketAddr,
    /// Start time in ms since the epoch, bumped on renewal.
    pub generation: u64,
}

impl foca::Identity for MemberId {
    type Addr = PeerId;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation + 1,
            ..self.clone()
        })
    }

    fn addr(&self) -> PeerId {
        self.peer
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// What a member says about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberMeta {
    /// Service name (`dns`, `http`, `redis`, `quic`, ...) to its address.
    pub services: BTreeMap<String, String>,
    /// Relative capacity (1 = a small node).
    pub capacity: u32,
    /// Current load, 0 = idle, 1 = saturated.
    pub load: f32,
    /// Its network coordinate.
    pub coord: Option<NetCoord>,
    /// Set in the packets of a graceful leave.
    pub leaving: bool,
    /// Its membership certificate, if it holds one ([`crate::trust`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<Certificate>,
    /// The newest revocation list it has seen (so lists spread with every member's packets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocations>,
}

impl MemberMeta {
    fn is_valid(&self) -> bool {
        self.services.len() <= MAX_SERVICES
            && self
                .services
                .iter()
                .all(|(k, v)| k.len() <= 64 && v.len() <= 256)
            && self.load.is_finite()
            && self.coord.as_ref().is_none_or(NetCoord::is_valid)
            && self.cert.as_ref().is_none_or(Certificate::is_bounded)
            && self
                .revoked
                .as_ref()
                .is_none_or(|r| r.entries.len() <= trust::MAX_REVOKED)
    }
}

/// A member's liveness as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; declared dead unless it refutes in time.
    Suspect,
    /// Declared dead (crashed or unreachable).
    Dead,
    /// Left gracefully.
    Left,
}

/// One member in this node's view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    /// Its identity.
    pub id: MemberId,
    /// Liveness.
    pub state: MemberState,
    /// What it last said about itself (`None` until a packet from it arrived).
    pub meta: Option<MemberMeta>,
    /// Whether this is the local node.
    pub is_self: bool,
    /// What its certificate grants, as this node verified it (recomputed continuously:
    /// expiry and revocation take effect within one membership tick).
    #[serde(default)]
    pub standing: Standing,
}

impl MemberView {
    /// Whether the member holds `role` by a valid certificate (or the cluster is open).
    pub fn has_role(&self, role: &str) -> bool {
        self.standing.has_role(role)
    }
}

/// SWIM timing.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// Each member probes one random member this often.
    pub probe_period: Duration,
    /// Wait this long for a direct ack before asking others to probe indirectly.
    pub probe_rtt: Duration,
    /// A suspect that does not refute within this is declared dead.
    pub suspect_to_down_after: Duration,
    /// Dead members are forgotten after this.
    pub remove_down_after: Duration,
    /// Until then, two of them are sent an announce this often: a member that restarted on
    /// the same address (or a healed partition) is found again even if it knows no one, as
    /// Serf's reconnect does.
    pub reconnect_down_every: Duration,
    /// Expected cluster size (sizes the gossip fan-out).
    pub cluster_size_hint: u32,
    /// Packets from identities carrying fewer bits of identity work are refused
    /// ([`crate::trust::identity_work`]); 0 = no work required.
    pub identity_work_bits: u32,
}

impl MembershipConfig {
    /// LAN / loopback timing: 1 s probes, 3 s suspicion.
    pub fn lan() -> Self {
        Self {
            probe_period: Duration::from_millis(1000),
            probe_rtt: Duration::from_millis(400),
            suspect_to_down_after: Duration::from_secs(3),
            remove_down_after: Duration::from_secs(120),
            reconnect_down_every: Duration::from_secs(2),
            cluster_size_hint: 16,
            identity_work_bits: 0,
        }
    }

    /// WAN timing for RTTs up to about a second.
    pub fn wan() -> Self {
        Self {
            probe_period: Duration::from_millis(2000),
            probe_rtt: Duration::from_millis(1200),
            suspect_to_down_after: Duration::from_secs(6),
            remove_down_after: Duration::from_secs(300),
            reconnect_down_every: Duration::from_secs(5),
            cluster_size_hint: 32,
            identity_work_bits: 0,
        }
    }

    /// Expected worst case from a crash until every member has declared it dead, in a small
    /// cluster where several members probe each period (with few members, the one probing the
    /// crashed member next may take longer: SWIM round-robins over shuffled members).
    pub fn detection_bound(&self) -> Duration {
        // Up to a period until someone probes it, a period for the direct and indirect probes,
        // the suspicion timeout, and a period for the verdict to reach everyone.
        self.probe_period * 3 + self.suspect_to_down_after
    }

    fn foca(&self) -> foca::Config {
        let mut c = foca::Config::new_lan(
            NonZeroU32::new(self.cluster_size_hint.max(1)).unwrap_or(NonZeroU32::MIN),
        );
        c.probe_period = self.probe_period;
        c.probe_rtt = self.probe_rtt;
        c.suspect_to_down_after = self.suspect_to_down_after;
        c.remove_down_after = Some(self.remove_down_after);
        // foca's LAN default (every 65 s) leaves a restarted first node, which has no
        // bootstrap peers, alone for a minute.
        c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: self.reconnect_down_every,
            num_members: std::num::NonZeroUsize::new(2).unwrap_or(std::num::NonZeroUsize::MIN),
        });
        c.max_packet_size = std::num::NonZeroUsize::new(MAX_SWIM_FRAME - MAX_META - 2)
            .unwrap_or(std::num::NonZeroUsize::MIN);
        c
    }
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self::lan()
    }
}

/// Membership metrics (registered by [`crate::Mesh::start`] under the mesh prefix).
#[derive(Debug, Clone, Default)]
pub struct MembershipMetrics {
    /// Members currently alive (self excluded).
    pub alive: prometheus_client::metrics::gauge::Gauge,
    /// Members currently suspected.
    pub suspect: prometheus_client::metrics::gauge::Gauge,
    /// Members declared down so far.
    pub declared_down: prometheus_client::metrics::counter::Counter,
    /// SWIM packets refused (bad frame, bad envelope, or refused by foca).
    pub refused_packets: prometheus_client::metrics::counter::Counter,
    /// Certificates presented by members and not believed (bad signature, other cluster,
    /// other peer, expired, revoked), counted once per distinct certificate.
    pub refused_certificates: prometheus_client::metrics::counter::Counter,
    /// SWIM packets refused because the sender's identity carries too little work.
    pub refused_identity_work: prometheus_client::metrics::counter::Counter,
}

enum Command {
    Announce(MemberId),
    Leave(oneshot::Sender<()>),
    SetLoad(f32),
    SetServices(BTreeMap<String, String>),
    SetPolicy(TrustPolicy),
    SetCertificate(Option<Certificate>),
    SetRevocations(Revocations),
}

/// Shared, read-mostly state other parts of the mesh look at.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) members: Vec<MemberView>,
    pub(crate) coord: Option<NetCoord>,
    pub(crate) local_threshold_ms: f64,
}

/// Handle to the membership task.
#[derive(Clone)]
pub struct Membership {
    local: MemberId,
    commands: mpsc::Sender<Command>,
    shared: Arc<RwLock<Shared>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("local", &self.local)
            .finish()
    }
}

impl Membership {
    /// Starts SWIM on `plane` (registering [`SWIM_ALPN`]) for the local member `local`.
    pub fn start(
        plane: DataPlane,
        local: MemberId,
        meta: MemberMeta,
        config: MembershipConfig,
        pharos: PharosConfig,
        metrics: MembershipMetrics,
        shutdown: CancellationToken,
    ) -> Result<Self, crate::dataplane::DataPlaneError> {
        let (inbox_tx, inbox_rx) = mpsc::channel::<(PeerId, Bytes)>(INBOX);
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let shared = Arc::new(RwLock::new(Shared {
            local_threshold_ms: pharos.local_threshold_ms,
            ..Shared::default()
        }));
        let refused = metrics.refused_packets.clone();
        plane.serve(
            SWIM_ALPN,
            Arc::new(move |peer, conn: Connection| {
                let inbox = inbox_tx.clone();
                Box::pin(receive_swim(peer, conn, inbox, refused.clone()))
            }),
        )?;
        let seed = local.generation
            ^ u64::from_le_bytes(
                local.peer.to_bytes()[local.peer.to_bytes().len() - 8..]
                    .try_into()
                    .unwrap_or([7; 8]),
            );
        let foca = Foca::new(
            local.clone(),
            config.foca(),
            foca_rand::rngs::StdRng::seed_from_u64(seed),
            PostcardCodec,
        );
        let task = Task {
            foca,
            runtime: AccumulatingRuntime::new(),
            plane,
            metas: HashMap::new(),
            left: HashSet::new(),
            own: meta,
            policy: TrustPolicy::default(),
            identity_work_bits: config.identity_work_bits,
            verified: HashMap::new(),
            coords: Pharos::new(pharos).with_seed(seed),
            shared: shared.clone(),
            sends: Arc::new(tokio::sync::Semaphore::new(MAX_SENDS_IN_FLIGHT)),
            local: local.clone(),
            metrics,
            push_cursor: 0,
        };
        tokio::spawn(task.run(inbox_rx, cmd_rx, shutdown));
        Ok(Self {
            local,
            commands: cmd_tx,
            shared,
        })
    }

    /// The local member's identity.
    pub fn local(&self) -> &MemberId {
        &self.local
    }

    /// Introduces the local node to `member` (a bootstrap peer); SWIM does the rest.
    pub async fn announce(&self, member: MemberId) {
        let _ = self.commands.send(Command::Announce(member)).await;
    }

    /// Sets the load this node advertises (0 = idle, 1 = saturated).
    pub async fn set_load(&self, load: f32) {
        let _ = self.commands.send(Command::SetLoad(load)).await;
    }

    /// Replaces the service addresses this node advertises (they travel with the next gossip).
    pub async fn set_services(&self, services: BTreeMap<String, String>) {
        let _ = self.commands.send(Command::SetServices(services)).await;
    }

    /// Sets what this node believes (anchor, open cluster).
    pub async fn set_policy(&self, policy: TrustPolicy) {
        let _ = self.commands.send(Command::SetPolicy(policy)).await;
    }

    /// Sets the certificate this node presents.
    pub async fn set_certificate(&self, cert: Option<Certificate>) {
        let _ = self.commands.send(Command::SetCertificate(cert)).await;
    }

    /// Adopts `list` if it is valid under the anchor and newer than the one held.
    pub async fn set_revocations(&self, list: Revocations) {
        let _ = self.commands.send(Command::SetRevocations(list)).await;
    }

    /// The newest valid revocation list this node holds.
    pub fn revocations(&self) -> Option<Revocations> {
        self.members()
            .into_iter()
            .find(|m| m.is_self)
            .and_then(|m| m.meta)
            .and_then(|m| m.revoked)
    }

    /// Leaves gracefully: tells members, then returns once the goodbyes are on the wire
    /// (bounded by `deadline`).
    pub async fn leave(&self, deadline: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(deadline, rx).await;
        }
    }

    /// Every member this node knows of, itself included.
    pub fn members(&self) -> Vec<MemberView> {
        self.shared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .members
            .clone()
    }

    /// This node's current coordinate.
    pub fn coordinate(&self) -> Option<NetCoord> {
        self.shared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .coord
            .clone()
    }

    /// The Pharos local threshold in use (ms).
    pub fn local_threshold_ms(&self) -> f64 {
        self.shared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .local_threshold_ms
    }
}

/// Reads SWIM frames from every unidirectional stream of an authenticated connection.
async fn receive_swim(
    peer: PeerId,
    conn: Connection,
    inbox: mpsc::Sender<(PeerId, Bytes)>,
    refused: prometheus_client::metrics::counter::Counter,
) {
    let decoder = FrameDecoder::new(MAX_SWIM_FRAME);
    while let Ok(mut recv) = conn.accept_uni().await {
        let inbox = inbox.clone();
        let refused = refused.clone();
        tokio::spawn(async move {
            match decoder.read(&mut recv).await {
                Ok(Some(packet)) => {
                    // A full inbox drops the packet: SWIM tolerates loss, memory stays bounded.
                    let _ = inbox.try_send((peer, packet));
                }
                Ok(None) => {}
                Err(e) => {
                    refused.inc();
                    tracing::debug!(%peer, error = %e, "bad SWIM frame refused");
                }
            }
        });
    }
}

/// Splits an envelope into the sender's metadata and the foca packet.
pub fn decode_envelope(payload: &[u8]) -> Option<(MemberMeta, &[u8])> {
    let len = u16::from_be_bytes(payload.get(..2)?.try_into().ok()?) as usize;
    if len > MAX_META {
        return None;
    }
    let meta_bytes = payload.get(2..2 + len)?;
    let meta: MemberMeta = serde_json::from_slice(meta_bytes).ok()?;
    meta.is_valid().then_some((meta, &payload[2 + len..]))
}

/// Builds an envelope; `None` if the metadata is too large.
pub fn encode_envelope(meta: &MemberMeta, packet: &[u8]) -> Option<Bytes> {
    let json = serde_json::to_vec(meta).ok()?;
    if json.len() > MAX_META {
        return None;
    }
    let mut out = BytesMut::with_capacity(2 + json.len() + packet.len());
    out.put_u16(json.len() as u16);
    out.put_slice(&json);
    out.put_slice(packet);
    Some(out.freeze())
}

struct Task {
    foca: Foca<MemberId, PostcardCodec, foca_rand::rngs::StdRng, NoCustomBroadcast>,
    runtime: AccumulatingRuntime<MemberId>,
    plane: DataPlane,
    metas: HashMap<PeerId, MemberMeta>,
    left: HashSet<MemberId>,
    own: MemberMeta,
    /// What this node believes.
    policy: TrustPolicy,
    /// Identity work a sender must carry ([`MembershipConfig::identity_work_bits`]).
    identity_work_bits: u32,
    /// Certificates checked so far, by member: the signature checked and the outcome (a
    /// certificate is verified once, not at every packet; time and revocation are rechecked
    /// at every [`Task::publish`]).
    verified: HashMap<PeerId, (String, Result<(), trust::TrustError>)>,
    coords: Pharos<PeerId>,
    shared: Arc<RwLock<Shared>>,
    sends: Arc<tokio::sync::Semaphore>,
    local: MemberId,
    metrics: MembershipMetrics,
    /// Round-robin position of [`Task::push_meta`].
    push_cursor: usize,
}

impl Task {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<(PeerId, Bytes)>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) {
        let (timer_tx, mut timers) = mpsc::channel::<Timer<MemberId>>(1024);
        let mut rtt_tick = tokio::time::interval(Duration::from_millis(500));
        rtt_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.own.coord = Some(self.coords.coordinate());
        self.publish();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some((peer, packet)) = inbox.recv() => self.handle_packet(peer, &packet),
                Some(timer) = timers.recv() => {
                    if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                        tracing::debug!(error = %e, "foca timer");
                    }
                }
                Some(cmd) = commands.recv() => match cmd {
                    Command::Announce(id) => {
                        if id.peer != self.local.peer
                            && let Err(e) = self.foca.announce(id, &mut self.runtime) {
                                tracing::debug!(error = %e, "announce failed");
                            }
                    }
                    Command::SetLoad(load) => self.own.load = load.clamp(0.0, 1.0),
                    Command::SetServices(services) => self.own.services = services,
                    Command::SetPolicy(policy) => {
                        self.policy = policy;
                        self.verified.clear();
                        if self.own.revoked.as_ref().is_some_and(|r| {
                            self.policy.anchor.is_none_or(|a| r.verify(&a).is_err())
                        }) {
                            self.own.revoked = None;
                        }
                        let (me, cert) = (self.local.peer, self.own.cert.clone());
                        self.check_certificate(me, cert.as_ref());
                    }
                    Command::SetCertificate(cert) => {
                        // Verified once here, like a member's, not at every publish.
                        self.check_certificate(self.local.peer, cert.as_ref());
                        self.own.cert = cert;
                    }
                    Command::SetRevocations(list) => self.adopt_revocations(list),
                    Command::Leave(done) => {
                        self.own.leaving = true;
                        // foca tells only a few members (and forgets the rest as it leaves);
                        // say goodbye to every one directly so each records a departure.
                        let active: Vec<MemberId> =
                            self.foca.iter_members().map(|m| m.id().clone()).collect();
                        let _ = self.foca.leave_cluster(&mut self.runtime);
                        let mut pending = self.drain(&timer_tx);
                        pending.extend(active.into_iter().filter_map(|m| self.send(m, &[], true)));
                        tokio::spawn(async move {
                            for p in pending { let _ = p.await; }
                            let _ = done.send(());
                        });
                        // After leaving, the task stops: the identity is down for good.
                        self.publish();
                        return;
                    }
                },
                _ = rtt_tick.tick() => {
                    self.feed_rtts();
                    self.push_meta();
                }
            }
            self.drain(&timer_tx);
            self.publish();
        }
    }

    fn handle_packet(&mut self, peer: PeerId, payload: &[u8]) {
        let bits = self.identity_work_bits;
        if bits > 0 && trust::identity_work(&peer) < bits {
            self.metrics.refused_identity_work.inc();
            tracing::debug!(%peer, bits, "SWIM packet from an identity without enough work refused");
            return;
        }
        let Some((meta, packet)) = decode_envelope(payload) else {
            self.metrics.refused_packets.inc();
            tracing::debug!(%peer, "malformed SWIM envelope refused");
            return;
        };
        // The SWIM identity a packet claims must be the peer its QUIC connection authenticated
        // (foca always puts the sender in the header, forwarded probes included): otherwise any
        // peer could speak for, suspect or refute another member.
        if !packet.is_empty() {
            match foca::Codec::<MemberId>::decode_header(&mut PostcardCodec, packet) {
                Ok(header) if header.src.peer == peer => {}
                Ok(header) => {
                    self.metrics.refused_packets.inc();
                    tracing::warn!(%peer, claimed = %header.src.peer, "SWIM packet claiming another identity refused");
                    return;
                }
                Err(e) => {
                    self.metrics.refused_packets.inc();
                    tracing::debug!(%peer, error = %e, "undecodable SWIM header refused");
                    return;
                }
            }
        }
        let leaving = meta.leaving;
        if let Some(list) = &meta.revoked {
            self.adopt_revocations(list.clone());
        }
        self.check_certificate(peer, meta.cert.as_ref());
        self.metas.insert(peer, meta);
        if !packet.is_empty()
            && let Err(e) = self.foca.handle_data(packet, &mut self.runtime)
        {
            self.metrics.refused_packets.inc();
            tracing::debug!(%peer, error = %e, "foca refused a packet");
        }
        if leaving {
            // A goodbye: the view says "left", not "dead", and foca spreads the departure.
            let gone: Vec<_> = self
                .foca
                .iter_membership_state()
                .filter(|m| m.id().peer == peer)
                .map(|m| m.id().clone())
                .collect();
            for id in gone {
                self.left.insert(id.clone());
                let down = foca::Member::new(id, foca::Incarnation::MAX, foca::State::Down);
                if let Err(e) = self
                    .foca
                    .apply_many(std::iter::once(down), true, &mut self.runtime)
                {
                    tracing::debug!(%peer, error = %e, "cannot apply a departure");
                }
            }
        }
    }

    /// Takes `list` if it is signed by our anchor and newer than ours; it then travels in our
    /// own packets too.
    fn adopt_revocations(&mut self, list: Revocations) {
        let Some(anchor) = self.policy.anchor else {
            return;
        };
        if self
            .own
            .revoked
            .as_ref()
            .is_some_and(|r| r.version >= list.version)
        {
            return;
        }
        match list.verify(&anchor) {
            Ok(()) => {
                tracing::info!(
                    version = list.version,
                    revoked = list.entries.len(),
                    "revocation list adopted"
                );
                self.own.revoked = Some(list);
            }
            Err(e) => tracing::debug!(error = %e, "revocation list refused"),
        }
    }

    /// Verifies a member's certificate once per distinct signature (time and revocation are
    /// checked at every publish).
    fn check_certificate(&mut self, peer: PeerId, cert: Option<&Certificate>) {
        let Some(cert) = cert else {
            self.verified.remove(&peer);
            return;
        };
        if self
            .verified
            .get(&peer)
            .is_some_and(|(sig, _)| *sig == cert.sig)
        {
            return;
        }
        let outcome = match self.policy.anchor {
            // Checked without the clock here: expiry is a matter of time, not of validity.
            Some(anchor) => cert.verify(&anchor, &peer, cert.not_before),
            None => Err(trust::TrustError::OtherCluster),
        };
        if let Err(e) = &outcome {
            self.metrics.refused_certificates.inc();
            tracing::debug!(%peer, error = %e, "membership certificate not believed");
        }
        self.verified.insert(peer, (cert.sig.clone(), outcome));
    }

    /// The standing of `peer` presenting `cert` now.
    fn standing(&self, peer: &PeerId, cert: Option<&Certificate>) -> Standing {
        if self.policy.open {
            return Standing::Open;
        }
        let Some(cert) = cert else {
            return Standing::Uncertified;
        };
        let checked = self
            .verified
            .get(peer)
            .is_some_and(|(sig, r)| *sig == cert.sig && r.is_ok());
        let now = trust::unix_now();
        if !checked
            || now < cert.not_before
            || now >= cert.not_after
            || self.own.revoked.as_ref().is_some_and(|r| r.contains(peer))
        {
            return Standing::Uncertified;
        }
        Standing::Certified(cert.roles.clone())
    }

    /// Feeds the RTT of every live data-plane connection to the coordinates.
    fn feed_rtts(&mut self) {
        for (peer, rtt) in self.plane.rtts() {
            let Some(coord) = self.metas.get(&peer).and_then(|m| m.coord.clone()) else {
                continue;
            };
            let ms = rtt.as_secs_f64() * 1000.0;
            self.coords.observe(&peer, &coord, ms.max(0.001));
        }
        self.own.coord = Some(self.coords.coordinate());
    }

    /// Carries out what foca asked for; returns handles of the sends just started.
    fn drain(
        &mut self,
        timers: &mpsc::Sender<Timer<MemberId>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut started = Vec::new();
        while let Some((dst, data)) = self.runtime.to_send() {
            started.extend(self.send(dst, &data, self.own.leaving));
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let tx = timers.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(timer).await;
            });
        }
        while let Some(n) = self.runtime.to_notify() {
            match n {
                OwnedNotification::MemberUp(id) => {
                    self.left.remove(&id);
                    tracing::info!(peer = %id.peer, quic = %id.quic, "member up");
                    // Introduce ourselves at once: our metadata travels only in our packets.
                    started.extend(self.send(id, &[], false));
                }
                OwnedNotification::MemberDown(id) => {
                    self.metrics.declared_down.inc();
                    self.coords.forget(&id.peer);
                    self.plane.forget(&id.peer);
                    tracing::info!(peer = %id.peer, "member down");
                }
                OwnedNotification::Rename(old, new) => {
                    self.left.remove(&old);
                    self.plane.forget(&new.peer);
                    tracing::info!(peer = %new.peer, generation = new.generation, "member restarted");
                }
                OwnedNotification::Defunct => {
                    // Declared dead by the others while alive (e.g. a long pause): come back
                    // with a higher generation.
                    let renewed = MemberId {
                        generation: self.local.generation + 1,
                        ..self.local.clone()
                    };
                    if self
                        .foca
                        .change_identity(renewed.clone(), &mut self.runtime)
                        .is_ok()
                    {
                        self.local = renewed;
                    }
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(
                        generation = id.generation,
                        "declared down; rejoined with a new generation"
                    );
                    self.local = id;
                }
                other => tracing::debug!(?other, "membership"),
            }
        }
        started
    }

    /// Sends our metadata (an envelope without a foca packet) to the next two active members
    /// in turn, so coordinates and load stay fresh everywhere without waiting for probes.
    fn push_meta(&mut self) {
        let active: Vec<MemberId> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        if active.is_empty() {
            return;
        }
        for _ in 0..2.min(active.len()) {
            self.push_cursor = (self.push_cursor + 1) % active.len();
            let _ = self.send(active[self.push_cursor].clone(), &[], false);
        }
    }

    /// Sends one foca packet (empty: metadata only, or a goodbye when leaving) in an envelope
    /// with our metadata.
    /// With `wait_ack`, the task ends only once the peer has the packet (for goodbyes, which
    /// must land before the endpoint closes).
    fn send(
        &self,
        dst: MemberId,
        packet: &[u8],
        wait_ack: bool,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let envelope = encode_envelope(&self.own, packet)?;
        let Ok(permit) = self.sends.clone().try_acquire_owned() else {
            tracing::debug!("SWIM send queue full; packet dropped");
            return None;
        };
        let plane = self.plane.clone();
        Some(tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = send_packet(&plane, &dst, &envelope, wait_ack).await {
                tracing::trace!(peer = %dst.peer, error = %e, "SWIM send failed");
            }
        }))
    }

    fn publish(&self) {
        let mut members = vec![MemberView {
            id: self.local.clone(),
            state: if self.own.leaving {
                MemberState::Left
            } else {
                MemberState::Alive
            },
            meta: Some(self.own.clone()),
            is_self: true,
            standing: self.standing(&self.local.peer, self.own.cert.as_ref()),
        }];
        for m in self.foca.iter_membership_state() {
            let id = m.id().clone();
            let state = match m.state() {
                foca::State::Alive => MemberState::Alive,
                foca::State::Suspect => MemberState::Suspect,
                foca::State::Down if self.left.contains(&id) => MemberState::Left,
                foca::State::Down => MemberState::Dead,
            };
            let meta = self.metas.get(&id.peer).cloned();
            let standing = self.standing(&id.peer, meta.as_ref().and_then(|m| m.cert.as_ref()));
            members.push(MemberView {
                meta,
                id,
                state,
                is_self: false,
                standing,
            });
        }
        let count = |s: MemberState| {
            members
                .iter()
                .filter(|m| !m.is_self && m.state == s)
                .count() as i64
        };
        self.metrics.alive.set(count(MemberState::Alive));
        self.metrics.suspect.set(count(MemberState::Suspect));
        let mut shared = self.shared.write().unwrap_or_else(|e| e.into_inner());
        shared.members = members;
        shared.coord = self.own.coord.clone();
    }
}

async fn send_packet(
    plane: &DataPlane,
    dst: &MemberId,
    envelope: &[u8],
    wait_ack: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = plane.open_uni(dst.peer, dst.quic, SWIM_ALPN).await?;
    frame::write(&mut stream, envelope).await?;
    stream.finish()?;
    if wait_ack {
        // Resolves once the peer acknowledged everything (or stopped the stream).
        let _ = stream.stopped().await;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch: a process's SWIM generation.
pub fn generation_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}
