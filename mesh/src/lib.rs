//! Everything that decides where a request goes.
//!
//! Owns: the node identity's network use, the libp2p control plane (discovery, Kademlia, gossip),
//! the QUIC data-plane endpoint with ALPN-routed protocols and bounded frames, membership and
//! failure detection, network coordinates, and the directory that ranks candidate peers.
//!
//! Must not: know about names, DNS, blobs or cache keys: other crates hand it opaque keys, topics
//! and protocols. Depends on no other Proxima crate.
//!
//! # Using the mesh from another crate
//!
//! ```text
//! let mesh: mesh::Mesh = ...;                       // started by the node (src/svc_mesh.rs)
//! // choose where a request goes
//! let order = mesh.rank(&candidates, local_has_data);           // instant, no I/O
//! let order = mesh.rank_probed(&candidates, local_has_data, 3, timeout).await; // probes top 3
//! mesh.report_failure(peer); mesh.report_corrupt(peer);          // standing
//! // talk to a peer on your own protocol
//! mesh.dataplane().serve_streams(b"proxima/blob/1", handler)?;
//! let (send, recv) = mesh.open_bi(peer, b"proxima/blob/1").await?;
//! mesh::frame::write(&mut send, &payload).await?;                // versioned, bounded frames
//! // control plane
//! mesh.control().publish("zones", bytes).await?; mesh.control().subscribe("zones").await?;
//! mesh.control().put_record(k, v).await?; mesh.control().get_record(k).await?;
//! mesh.control().start_providing(k).await?; mesh.control().providers(k).await?;
//! // who is there
//! mesh.members();  // MemberView: id (peer, quic addr), state, meta (services, load, coord)
//! ```

pub mod control;
pub mod coords;
#[cfg(feature = "test-utils")]
pub mod coords_eval;
pub mod dataplane;
pub mod directory;
pub mod frame;
pub mod membership;
pub mod providers;
pub mod reports;
pub mod trust;
pub mod wan;
mod wan_tcp;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use control::{ControlConfig, ControlError, ControlPlane, RecordValidator};
pub use coords::{NetCoord, PharosConfig};
pub use dataplane::{DataPlane, DataPlaneConfig, DataPlaneError, RecvStream, SendStream};
pub use directory::{Ranked, RttSource};
pub use libp2p::Multiaddr;
pub use libp2p::identity::PeerId;
pub use libp2p::multiaddr;

/// The Ed25519 public key an Ed25519 peer id carries (every Proxima node's id does), e.g. to
/// check signatures made with the node key.
pub fn peer_ed25519_key(peer: &PeerId) -> Option<[u8; 32]> {
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    let pk = libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    Some(pk.try_into_ed25519().ok()?.to_bytes())
}

/// The peer id of the node whose Ed25519 public key is `key` (the inverse of
/// [`peer_ed25519_key`]); `None` if the bytes are not a valid key.
pub fn peer_from_ed25519(key: &[u8; 32]) -> Option<PeerId> {
    let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(key).ok()?;
    Some(libp2p::identity::PublicKey::from(pk).to_peer_id())
}
pub use membership::{MemberId, MemberMeta, MemberState, MemberView, MembershipConfig};
pub use wan::{WanEmulator, WanLink};

/// The libp2p keypair of a node from its 32-byte Ed25519 seed (the node key file).
pub fn keypair_from_seed(seed: [u8; 32]) -> Keypair {
    let mut seed = seed;
    Keypair::ed25519_from_bytes(&mut seed).expect("any 32 bytes are a valid ed25519 secret key")
}

/// The IP to advertise for a node bound to `bound`: `bound` itself unless it is unspecified;
/// then the local IP of the route to the first bootstrap peer (the interface that peer's
/// network reaches us on; a connected UDP socket sends nothing), else the first non-loopback
/// interface address of the same family, else loopback.
pub fn advertise_ip(bound: IpAddr, bootstrap: &[Multiaddr]) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let v6 = bound.is_ipv6();
    let route = bootstrap.iter().find_map(|m| {
        let peer = multiaddr_ip(m)?;
        if peer.is_ipv6() != v6 {
            return None;
        }
        let any: SocketAddr = (bound, 0).into();
        let sock = std::net::UdpSocket::bind(any).ok()?;
        sock.connect((peer, 9)).ok()?;
        let ip = sock.local_addr().ok()?.ip();
        (!ip.is_unspecified()).then_some(ip)
    });
    route.or_else(|| first_interface_ip(v6)).unwrap_or(if v6 {
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::from(std::net::Ipv4Addr::LOCALHOST)
    })
}

/// The IP of a multiaddr's first `/ip4` or `/ip6` component.
pub fn multiaddr_ip(m: &Multiaddr) -> Option<IpAddr> {
    m.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => Some(IpAddr::from(ip)),
        libp2p::multiaddr::Protocol::Ip6(ip) => Some(IpAddr::from(ip)),
        _ => None,
    })
}

/// `addr` with its IP replaced by `ip` when this node listens on a wildcard address and `addr`
/// is on another IP (loopback, typically) than the one members reach it at.
fn on_ip(addr: Multiaddr, ip: IpAddr, wildcard: bool) -> Multiaddr {
    use libp2p::multiaddr::Protocol;
    if !wildcard || ip.is_unspecified() || ip.is_loopback() || multiaddr_ip(&addr) == Some(ip) {
        return addr;
    }
    addr.iter()
        .map(|p| match (p, ip) {
            (Protocol::Ip4(_) | Protocol::Ip6(_), IpAddr::V4(v4)) => Protocol::Ip4(v4),
            (Protocol::Ip4(_) | Protocol::Ip6(_), IpAddr::V6(v6)) => Protocol::Ip6(v6),
            (other, _) => other,
        })
        .collect()
}

fn first_interface_ip(v6: bool) -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    addrs
        .filter_map(|i| {
            let a = i.address?;
            if let Some(s) = a.as_sockaddr_in() {
                Some(IpAddr::from(s.ip()))
            } else {
                a.as_sockaddr_in6().map(|s| IpAddr::from(s.ip()))
            }
        })
        .find(|ip| {
            ip.is_ipv6() == v6
                && !ip.is_loopback()
                && !ip.is_unspecified()
                // Link-local IPv6 needs a scope id a peer cannot use from an address string.
                && !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
        })
}

/// `addr` with its IP replaced by `ip` when it is unspecified.
fn reachable(addr: SocketAddr, ip: IpAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// [`reachable`] for an advertised service address (left alone when it is not `IP:PORT`);
/// `None` for a service bound to loopback on a node reached at another address: members
/// elsewhere cannot reach it, so they are not told of it.
fn reachable_str(addr: &str, ip: IpAddr) -> Option<String> {
    match addr.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() && !ip.is_loopback() => None,
        Ok(a) => Some(reachable(a, ip).to_string()),
        Err(_) => Some(addr.to_owned()),
    }
}

/// ALPN of the RTT probe protocol (an echo of one frame).
pub const PING_ALPN: &[u8] = b"proxima/ping/1";
/// Largest probe frame.
const MAX_PING: usize = 64;

/// Everything needed to start the mesh of one node.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// QUIC data-plane listen address (port 0 picks one).
    pub quic_listen: SocketAddr,
    /// The IP other members reach this node at, used in its identity and in every service
    /// address it advertises whose listen IP is unspecified (`0.0.0.0`, `::`). Required to be
    /// reachable when listening on an unspecified address; see [`advertise_ip`] for a default.
    pub advertise_ip: Option<IpAddr>,
    /// A private deployment's network key: peers without it are refused at the handshake of
    /// the libp2p control plane (a pre-shared key, libp2p's `pnet`, which runs on TCP only)
    /// and of the QUIC data plane (a keyed proof before any protocol is served).
    pub network_key: Option<[u8; 32]>,
    /// libp2p control plane.
    pub control: ControlConfig,
    /// Service addresses this node advertises (`dns`, `http`, `redis`, ...); `quic` is added.
    pub services: BTreeMap<String, String>,
    /// Relative capacity advertised to members.
    pub capacity: u32,
    /// SWIM timing.
    pub membership: MembershipConfig,
    /// QUIC tuning.
    pub dataplane: DataPlaneConfig,
    /// Coordinates.
    pub pharos: PharosConfig,
    /// Put this node on an emulated WAN (tests and benchmarks only): its QUIC socket is placed
    /// at the given position and delayed, and its libp2p control plane runs on TCP through the
    /// same matrix.
    pub wan: Option<WanLink>,
}

impl MeshConfig {
    /// Loopback defaults: everything on port 0, no bootstrap, no mDNS.
    pub fn local() -> Self {
        Self {
            quic_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_ip: None,
            network_key: None,
            control: ControlConfig {
                listen: vec![
                    "/ip4/127.0.0.1/udp/0/quic-v1"
                        .parse()
                        .expect("valid multiaddr"),
                ],
                bootstrap: Vec::new(),
                mdns: false,
                validator: None,
                wan: None,
                network_key: None,
            },
            services: BTreeMap::new(),
            capacity: 1,
            membership: MembershipConfig::lan(),
            dataplane: DataPlaneConfig::default(),
            pharos: PharosConfig::default(),
            wan: None,
        }
    }
}

/// A mesh start-up failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The data plane failed.
    #[error(transparent)]
    DataPlane(#[from] DataPlaneError),
    /// The control plane failed.
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// One member as `/health` and `proxima status` show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// Peer id.
    pub peer_id: String,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: MemberState,
    /// Whether this is the node answering.
    #[serde(rename = "self", default)]
    pub is_self: bool,
    /// QUIC data-plane address.
    pub quic: String,
    /// Advertised service addresses.
    pub addrs: BTreeMap<String, String>,
    /// Advertised load.
    pub load: Option<f32>,
    /// Advertised capacity.
    pub capacity: Option<u32>,
    /// Its coordinate.
    pub coordinate: Option<NetCoord>,
    /// Estimated RTT from this node by coordinates (ms).
    pub coord_distance_ms: Option<f64>,
    /// Measured RTT of a live connection (ms).
    pub rtt_ms: Option<f64>,
    /// What its membership certificate grants, as this node verified it.
    #[serde(default)]
    pub standing: trust::Standing,
}

/// The running mesh of one node. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    plane: DataPlane,
    membership: membership::Membership,
    control: ControlPlane,
    standing: Arc<Mutex<directory::Standing>>,
    /// Signs this node's standing reports.
    keypair: Keypair,
    /// When this node last reported each peer (one report per peer per minute).
    reported: Arc<Mutex<std::collections::HashMap<PeerId, Instant>>>,
    /// Reports received by outcome.
    report_outcomes: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Who holds what (blobs, sites), for every service that fetches or steers.
    providers: providers::ProviderTable,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("local", self.membership.local())
            .finish_non_exhaustive()
    }
}

impl Mesh {
    /// Binds the data plane, starts SWIM and the libp2p swarm, dials the bootstrap peers.
    /// Must run inside a tokio runtime; tasks stop when the runtime does, or at [`Mesh::leave`].
    pub async fn start(
        keypair: Keypair,
        mut config: MeshConfig,
        registry: &mut Registry,
    ) -> Result<Self, MeshError> {
        let shutdown = CancellationToken::new();
        let mut dp_config = config.dataplane.clone();
        dp_config.network_key = config.network_key;
        config.control.network_key = config.network_key;
        let plane = DataPlane::bind(
            config.quic_listen,
            keypair.clone(),
            dp_config,
            config.wan.as_ref().map(|w| w.emulator.clone()),
        )?;
        let quic = plane.local_addr().map_err(|source| DataPlaneError::Bind {
            addr: config.quic_listen,
            source,
        })?;
        if let Some(w) = &config.wan {
            w.emulator.place(quic, w.position);
            config.control.wan = Some(w.clone());
        }
        plane.serve_streams(PING_ALPN, |_peer, mut send, mut recv| {
            Box::pin(async move {
                if let Ok(Some(p)) = frame::FrameDecoder::new(MAX_PING).read(&mut recv).await {
                    let _ = frame::write(&mut send, &p).await;
                    let _ = send.finish();
                }
            })
        })?;
        // Members must be told an address they can reach: never `0.0.0.0` (Consul's
        // `advertise_addr`). A bound unspecified IP is replaced by the advertised one.
        let advertised_ip = config
            .advertise_ip
            .unwrap_or_else(|| advertise_ip(quic.ip(), &config.control.bootstrap));
        let quic = reachable(quic, advertised_ip);
        config.services = config
            .services
            .into_iter()
            .filter_map(|(k, v)| Some((k, reachable_str(&v, advertised_ip)?)))
            .collect();
        config.services.insert("quic".into(), quic.to_string());
        let local = MemberId {
            peer: keypair.public().to_peer_id(),
            quic,
            generation: membership::generation_now(),
        };
        let meta = MemberMeta {
            services: config.services.clone(),
            capacity: config.capacity,
            load: 0.0,
            coord: None,
            leaving: false,
            cert: None,
            revoked: None,
        };
        let metrics = membership::MembershipMetrics::default();
        registry.register(
            "members_alive",
            "Members currently alive (self excluded)",
            metrics.alive.clone(),
        );
        registry.register(
            "members_suspect",
            "Members currently suspected",
            metrics.suspect.clone(),
        );
        registry.register(
            "members_declared_down",
            "Members declared down (crashed or unreachable)",
            metrics.declared_down.clone(),
        );
        registry.register(
            "swim_refused_packets",
            "SWIM packets refused (bad frame, bad envelope, refused by foca)",
            metrics.refused_packets.clone(),
        );
        registry.register(
            "network_key_refused",
            "Data-plane connections closed for lack of the network key",
            plane.refused_network_key(),
        );
        registry.register(
            "identity_work_refused",
            "SWIM packets refused: the sender's identity carries too little work",
            metrics.refused_identity_work.clone(),
        );
        registry.register(
            "certificates_refused",
            "Membership certificates presented by members and not believed",
            metrics.refused_certificates.clone(),
        );
        let membership = membership::Membership::start(
            plane.clone(),
            local,
            meta,
            config.membership.clone(),
            config.pharos.clone(),
            metrics.clone(),
            shutdown.clone(),
        )?;
        let control = ControlPlane::start(
            keypair.clone(),
            config.control.clone(),
            membership.clone(),
            shutdown.clone(),
        )
        .await?;
        registry.register(
            "invalid_records",
            "DHT records refused by the validator or the size bound",
            control.invalid_records.clone(),
        );
        let mesh = Self {
            plane,
            membership,
            control,
            standing: Arc::default(),
            keypair,
            reported: Arc::default(),
            report_outcomes: Default::default(),
            providers: providers::ProviderTable::default(),
            shutdown,
        };
        tokio::spawn(mesh.clone().refresh_providers());
        registry.register(
            "standing_reports",
            "Standing reports received, by outcome (counted, ignored, invalid)",
            mesh.report_outcomes.clone(),
        );
        match mesh.control.subscribe(reports::REPORT_TOPIC).await {
            Ok(rx) => {
                tokio::spawn(
                    mesh.clone()
                        .receive_reports(rx, config.membership.identity_work_bits),
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to standing reports"),
        }
        Ok(mesh)
    }

    /// The provider table (who holds a key); services feed it what members say they hold.
    pub fn providers(&self) -> &providers::ProviderTable {
        &self.providers
    }

    /// The holders of `key` that are live members (this node included when it announced the
    /// key), without waiting: the table is read and the key kept fresh in the background
    /// (see [`providers`]). For answers that must not wait, such as DNS steering.
    pub fn holders(&self, key: &[u8]) -> Vec<PeerId> {
        let peers = self.providers.read(key, true);
        let live: HashSet<PeerId> = self
            .members()
            .into_iter()
            .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .map(|m| m.id.peer)
            .collect();
        peers.into_iter().filter(|p| live.contains(p)).collect()
    }

    /// The other live members holding `key`, for a fetch: the table's holders after a DHT
    /// lookup of at most `wait` (300 ms when some holder is already known: a fetch starts with
    /// what is known rather than wait, and a provider that appeared since is still found).
    pub async fn find_holders(&self, key: &[u8], wait: Duration) -> Vec<PeerId> {
        let known = self.other_live(self.providers.read(key, false));
        let wait = if known.is_empty() {
            wait
        } else {
            wait.min(Duration::from_millis(300))
        };
        self.providers.start_lookup(key);
        self.lookup_holders(key.to_vec(), wait).await;
        self.other_live(self.providers.read(key, false))
    }

    fn other_live(&self, peers: Vec<PeerId>) -> Vec<PeerId> {
        let me = self.peer_id();
        let alive: HashSet<PeerId> = self
            .members()
            .into_iter()
            .filter(|m| !m.is_self && m.state == MemberState::Alive)
            .map(|m| m.id.peer)
            .collect();
        peers
            .into_iter()
            .filter(|p| *p != me && alive.contains(p))
            .collect()
    }

    async fn lookup_holders(&self, key: Vec<u8>, wait: Duration) {
        let found = tokio::select! {
            _ = self.shutdown.cancelled() => None,
            r = tokio::time::timeout(wait, self.control.providers(key.clone())) => match r {
                Ok(Ok(peers)) => Some(peers),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "DHT provider lookup failed");
                    None
                }
                Err(_) => None,
            },
        };
        self.providers.looked_up(&key, found);
    }

    /// Looks the watched keys of the provider table up in the background (see [`providers`]).
    async fn refresh_providers(self) {
        let running = Arc::new(tokio::sync::Semaphore::new(providers::MAX_LOOKUPS));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                () = self.providers.wait(Duration::from_secs(1)) => {}
            }
            for key in self.providers.due(running.available_permits()) {
                let Ok(permit) = running.clone().try_acquire_owned() else {
                    self.providers.looked_up(&key, None);
                    continue;
                };
                let mesh = self.clone();
                tokio::spawn(async move {
                    mesh.lookup_holders(key, providers::LOOKUP_TIMEOUT).await;
                    drop(permit);
                });
            }
        }
    }

    /// Weighs every standing report gossiped to this node (see [`reports`]).
    async fn receive_reports(
        self,
        mut rx: tokio::sync::broadcast::Receiver<(PeerId, bytes::Bytes)>,
        work_bits: u32,
    ) {
        let mut ledger = reports::Ledger::default();
        loop {
            let msg = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                m = rx.recv() => m,
            };
            let bytes = match msg {
                Ok((_, b)) => b,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let outcome = self.weigh_report(&bytes, work_bits, &mut ledger);
            self.report_outcomes
                .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
                .inc();
        }
    }

    fn weigh_report(
        &self,
        bytes: &[u8],
        work_bits: u32,
        ledger: &mut reports::Ledger,
    ) -> &'static str {
        let (_, reporter, accused) = match reports::Report::verify(bytes, trust::unix_now()) {
            Ok(v) => v,
            Err(why) => {
                tracing::debug!(why, "standing report refused");
                return "invalid";
            }
        };
        if accused == self.peer_id() {
            return "ignored";
        }
        let now = Instant::now();
        let members = self.members();
        let Some(m) = members.iter().find(|m| m.id.peer == reporter) else {
            return "ignored";
        };
        let own_strikes = self
            .standing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .strikes(&reporter, now);
        let weight = if own_strikes >= directory::CORRUPT_STRIKES {
            0
        } else if !matches!(m.standing, trust::Standing::Uncertified) {
            reports::CERTIFIED_WEIGHT
        } else if work_bits > 0 {
            reports::WORKED_WEIGHT
        } else {
            0
        };
        let add = ledger.admit(reporter, accused, weight, directory::STANDING_WINDOW, now);
        if add == 0 {
            return "ignored";
        }
        self.standing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .strike(accused, add, now);
        tracing::info!(%reporter, %accused, strikes = add, "standing report counted");
        "counted"
    }

    /// Current strikes against `peer` in this node's directory (own and shared).
    pub fn strikes(&self, peer: &PeerId) -> u32 {
        self.standing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .strikes(peer, Instant::now())
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.membership.local().peer
    }

    /// This node's SWIM identity (peer id, QUIC address, generation).
    pub fn local_member(&self) -> MemberId {
        self.membership.local().clone()
    }

    /// The QUIC data-plane address.
    pub fn quic_addr(&self) -> SocketAddr {
        self.membership.local().quic
    }

    /// The QUIC data plane (serve protocols, open streams).
    pub fn dataplane(&self) -> &DataPlane {
        &self.plane
    }

    /// The libp2p control plane (gossip, DHT, providers).
    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    /// The libp2p listen addresses.
    pub async fn p2p_addrs(&self) -> Vec<Multiaddr> {
        self.control.listeners().await.unwrap_or_default()
    }

    /// The libp2p address members should dial: one on the advertised IP. A listener on a
    /// wildcard address (`listens` holds one) is reported once per interface, loopback first,
    /// and maybe not on every interface yet; the advertised IP is then put in, since a wildcard
    /// listener answers on it.
    pub async fn dialable_p2p_addr(&self, listens: &[Multiaddr]) -> Option<Multiaddr> {
        let wildcard = listens
            .iter()
            .any(|a| multiaddr_ip(a).is_some_and(|i| i.is_unspecified()));
        let addrs = self.p2p_addrs().await;
        let ip = self.quic_addr().ip();
        addrs
            .iter()
            .find(|a| multiaddr_ip(a) == Some(ip))
            .or_else(|| {
                addrs
                    .iter()
                    .find(|a| multiaddr_ip(a).is_some_and(|i| !i.is_unspecified()))
            })
            .or(addrs.first())
            .cloned()
            .map(|a| on_ip(a, ip, wildcard))
    }

    /// Joins through a member whose identity is known (without the libp2p hello).
    pub async fn join(&self, member: MemberId) {
        self.membership.announce(member).await;
    }

    /// Sets the load this node advertises (0 = idle, 1 = saturated).
    pub async fn set_load(&self, load: f32) {
        self.membership.set_load(load).await;
    }

    /// Sets what this node believes about certificates ([`trust`]).
    pub async fn set_trust_policy(&self, policy: trust::TrustPolicy) {
        self.membership.set_policy(policy).await;
    }

    /// Sets the membership certificate this node presents to members.
    pub async fn set_certificate(&self, cert: Option<trust::Certificate>) {
        self.membership.set_certificate(cert).await;
    }

    /// Adopts a revocation list if it is valid and newer than the one held; it then spreads
    /// with this node's packets.
    pub async fn set_revocations(&self, list: trust::Revocations) {
        self.membership.set_revocations(list).await;
    }

    /// The newest valid revocation list this node holds.
    pub fn revocations(&self) -> Option<trust::Revocations> {
        self.membership.revocations()
    }

    /// This node's own standing (what its certificate grants, as it verified it).
    pub fn own_standing(&self) -> trust::Standing {
        self.members()
            .into_iter()
            .find(|m| m.is_self)
            .map(|m| m.standing)
            .unwrap_or_default()
    }

    /// Whether member `peer` holds `role` by a valid certificate (or the cluster is open).
    pub fn peer_has_role(&self, peer: &PeerId, role: &str) -> bool {
        self.members()
            .iter()
            .any(|m| m.id.peer == *peer && m.has_role(role))
    }

    /// Replaces the service addresses this node advertises (`dns`, `http`, `redis`, ...; `quic`
    /// is always added). Services that start after the mesh call this once they listen.
    /// An address whose IP is unspecified (`0.0.0.0:6300`) is advertised with this node's
    /// advertised IP (that of its QUIC address) instead.
    pub async fn advertise(&self, services: BTreeMap<String, String>) {
        let ip = self.quic_addr().ip();
        let mut services: BTreeMap<String, String> = services
            .into_iter()
            .filter_map(|(k, v)| Some((k, reachable_str(&v, ip)?)))
            .collect();
        services.insert("quic".into(), self.quic_addr().to_string());
        self.membership.set_services(services).await;
    }

    /// Every member this node knows of, itself included.
    pub fn members(&self) -> Vec<MemberView> {
        self.membership.members()
    }

    /// This node's coordinate.
    pub fn coordinate(&self) -> Option<NetCoord> {
        self.membership.coordinate()
    }

    /// Opens a bidirectional stream to member `peer` for protocol `alpn`, using the QUIC
    /// address it advertises.
    pub async fn open_bi(
        &self,
        peer: PeerId,
        alpn: &[u8],
    ) -> Result<(SendStream, RecvStream), DataPlaneError> {
        let addr = self
            .members()
            .into_iter()
            .find(|m| m.id.peer == peer)
            .map(|m| m.id.quic)
            .ok_or(DataPlaneError::UnknownPeer(peer))?;
        self.plane.open_bi(peer, addr, alpn).await
    }

    /// Members with their state, coordinate distance and measured RTT, for `/health`.
    pub fn status(&self) -> Vec<MemberStatus> {
        let rtts = self.plane.rtts();
        let mine = self.coordinate();
        let threshold = self.membership.local_threshold_ms();
        self.members()
            .into_iter()
            .map(|m| {
                let meta = m.meta.unwrap_or_default();
                let coord_distance_ms = match (&mine, &meta.coord) {
                    (Some(a), Some(b)) if !m.is_self => Some(a.estimate(b, threshold)),
                    _ => None,
                };
                MemberStatus {
                    peer_id: m.id.peer.to_string(),
                    state: m.state,
                    is_self: m.is_self,
                    quic: m.id.quic.to_string(),
                    addrs: meta.services,
                    load: Some(meta.load),
                    capacity: Some(meta.capacity),
                    coordinate: meta.coord,
                    coord_distance_ms,
                    rtt_ms: rtts.get(&m.id.peer).map(|d| d.as_secs_f64() * 1000.0),
                    standing: m.standing,
                }
            })
            .collect()
    }

    /// Orders `candidates` for a request (see [`directory`] for the rule): measured RTT where
    /// a live connection exists, coordinates otherwise, then health, load and standing; the
    /// local node first when `local_has_data`. Dead and departed members are left out.
    pub fn rank(&self, candidates: &[PeerId], local_has_data: bool) -> Vec<Ranked> {
        let rtts = self.plane.rtts();
        self.rank_with(candidates, local_has_data, |p| {
            rtts.get(p).map(|d| d.as_secs_f64() * 1000.0)
        })
    }

    fn rank_with(
        &self,
        candidates: &[PeerId],
        local_has_data: bool,
        measured: impl Fn(&PeerId) -> Option<f64>,
    ) -> Vec<Ranked> {
        let members = self.members();
        let mine = self.coordinate();
        let threshold = self.membership.local_threshold_ms();
        let now = Instant::now();
        let standing = self.standing.lock().unwrap_or_else(|e| e.into_inner());
        let me = self.peer_id();
        let infos = candidates
            .iter()
            .filter(|p| **p != me || local_has_data)
            .map(|p| {
                let m = members.iter().find(|m| m.id.peer == *p && !m.is_self);
                let meta = m.and_then(|m| m.meta.as_ref());
                directory::CandidateInfo {
                    peer: *p,
                    is_local: *p == me,
                    state: m.map(|m| m.state),
                    measured_ms: measured(p),
                    estimated_ms: match (&mine, meta.and_then(|x| x.coord.as_ref())) {
                        (Some(a), Some(b)) => Some(a.estimate(b, threshold)),
                        _ => None,
                    },
                    load: meta.map_or(0.0, |x| x.load),
                    strikes: standing.strikes(p, now),
                }
            })
            .collect();
        directory::rank(infos)
    }

    /// Like [`Mesh::rank`], then probes the best `shortlist` remote candidates that have no
    /// live connection (one echo over the data plane each, in parallel, bounded by `timeout`)
    /// and ranks again with the measurements: for choices that matter.
    pub async fn rank_probed(
        &self,
        candidates: &[PeerId],
        local_has_data: bool,
        shortlist: usize,
        timeout: Duration,
    ) -> Vec<Ranked> {
        let first = self.rank(candidates, local_has_data);
        let members = self.members();
        let probes = first
            .iter()
            .filter(|r| r.source != RttSource::Local)
            .take(shortlist)
            .filter_map(|r| {
                let m = members.iter().find(|m| m.id.peer == r.peer && !m.is_self)?;
                let (peer, addr, plane) = (m.id.peer, m.id.quic, self.plane.clone());
                Some(async move {
                    let rtt = tokio::time::timeout(timeout, probe(&plane, peer, addr)).await;
                    (peer, rtt.ok().flatten())
                })
            });
        let measured: std::collections::HashMap<PeerId, f64> = futures::future::join_all(probes)
            .await
            .into_iter()
            .filter_map(|(p, r)| r.map(|d| (p, d.as_secs_f64() * 1000.0)))
            .collect();
        let rtts = self.plane.rtts();
        self.rank_with(candidates, local_has_data, |p| {
            measured
                .get(p)
                .copied()
                .or_else(|| rtts.get(p).map(|d| d.as_secs_f64() * 1000.0))
        })
    }

    /// A request to `peer` failed: it loses standing for a while.
    pub fn report_failure(&self, peer: PeerId) {
        self.standing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .strike(peer, directory::FAILURE_STRIKES, Instant::now());
    }

    /// `peer` served corrupt data: it loses more standing.
    /// The report is also signed and gossiped, so other nodes can weigh it ([`reports`]).
    pub fn report_corrupt(&self, peer: PeerId) {
        let now = Instant::now();
        self.standing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .strike(peer, directory::CORRUPT_STRIKES, now);
        {
            let mut last = self.reported.lock().unwrap_or_else(|e| e.into_inner());
            if last
                .get(&peer)
                .is_some_and(|t| now.saturating_duration_since(*t) < reports::REPORT_EVERY)
            {
                return;
            }
            if last.len() > 4096 {
                last.retain(|_, t| now.saturating_duration_since(*t) < reports::REPORT_EVERY);
            }
        }
        let Some(report) = reports::Report::sign(&self.keypair, &peer, "corrupt") else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(&report) else {
            return;
        };
        let control = self.control.clone();
        let reported = self.reported.clone();
        tokio::spawn(async move {
            match control.publish(reports::REPORT_TOPIC, bytes.into()).await {
                // Only a report that went out counts against the once-a-minute limit.
                Ok(()) => {
                    reported
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(peer, now);
                }
                Err(e) => tracing::debug!(error = %e, "standing report not gossiped"),
            }
        });
    }

    /// Leaves gracefully: SWIM goodbye to members, then closes the endpoint and stops the
    /// control plane. Bounded by `deadline`.
    pub async fn leave(&self, deadline: Duration) {
        self.membership.leave(deadline).await;
        self.plane.close();
        let _ = tokio::time::timeout(Duration::from_millis(100), self.plane.wait_idle()).await;
        self.shutdown.cancel();
    }
}

/// One echo over [`PING_ALPN`]; the elapsed time of the round trip.
async fn probe(plane: &DataPlane, peer: PeerId, addr: SocketAddr) -> Option<Duration> {
    // Connect first so the handshake is not counted.
    plane.connect(peer, addr, PING_ALPN).await.ok()?;
    let (mut send, mut recv) = plane.open_bi(peer, addr, PING_ALPN).await.ok()?;
    let start = Instant::now();
    frame::write(&mut send, b"ping").await.ok()?;
    send.finish().ok()?;
    frame::FrameDecoder::new(MAX_PING)
        .read(&mut recv)
        .await
        .ok()??;
    Some(start.elapsed())
}
