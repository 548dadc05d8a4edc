//! The libp2p control plane: QUIC and TCP (noise, yamux) transports, identify, Kademlia,
//! gossipsub, ping, optional mDNS, and a one-shot `hello` exchange that introduces the SWIM
//! identities of two freshly connected nodes.
//!
//! Bootstrap addresses may omit `/p2p/<id>`: the peer id is learned in the handshake.
//! The swarm runs in one task; [`ControlPlane`] talks to it over a bounded command channel.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::identity::{Keypair, PeerId};
use libp2p::kad::{self, store::MemoryStore};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, identify, mdns, noise, ping, tcp, yamux};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::membership::{MemberId, Membership};
use crate::wan::WanLink;
use crate::wan_tcp;

/// Largest DHT record value accepted or stored.
pub const MAX_RECORD: usize = 16 * 1024;
/// Largest gossip message.
pub const MAX_GOSSIP: usize = 64 * 1024;
/// Messages buffered per topic subscriber before the slowest one loses the oldest.
pub const TOPIC_BUFFER: usize = 256;
/// How often live members without a libp2p connection are dialed.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);
/// Once a provider lookup has found providers, it answers when the query ends or after this
/// settling time, whichever comes first: as long as the first providers took to arrive, within
/// these bounds. A query ends only when every peer it picked has answered or failed, and a dial
/// to a peer that has gone away (still in other peers' routing tables) fails only at the QUIC
/// handshake timeout, seconds later; callers asked for providers, not for that.
const PROVIDERS_SETTLE_MIN: Duration = Duration::from_millis(50);
const PROVIDERS_SETTLE_MAX: Duration = Duration::from_millis(500);

/// Decides whether a DHT record (key, value) a peer stores with us is acceptable.
pub type RecordValidator = Arc<dyn Fn(&[u8], &[u8]) -> bool + Send + Sync>;

/// Control-plane settings.
#[derive(Clone)]
pub struct ControlConfig {
    /// Listen multiaddrs (QUIC `/udp/N/quic-v1` and/or TCP `/tcp/N`).
    pub listen: Vec<Multiaddr>,
    /// Peers to join at start; `/p2p/<id>` optional.
    pub bootstrap: Vec<Multiaddr>,
    /// Discover LAN peers with mDNS (multicast: off by default, and off in tests).
    pub mdns: bool,
    /// Validates DHT records stored with us by peers; `None` accepts any bounded record.
    pub validator: Option<RecordValidator>,
    /// Run on an emulated WAN: TCP only (QUIC listen addresses become TCP ones on the same IP),
    /// every connection through the delay line of [`crate::wan_tcp`].
    pub wan: Option<WanLink>,
    /// A private network's pre-shared key (libp2p `pnet`): TCP only, like the WAN mode, since
    /// libp2p's QUIC transport cannot carry a pre-shared key; QUIC listen and bootstrap
    /// addresses become TCP ones on the same IP and port.
    pub network_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for ControlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlConfig")
            .field("listen", &self.listen)
            .field("bootstrap", &self.bootstrap)
            .field("mdns", &self.mdns)
            .field("wan", &self.wan)
            .finish_non_exhaustive()
    }
}

/// A control-plane failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The swarm could not be built or could not listen.
    #[error("libp2p setup failed: {0}")]
    Setup(String),
    /// The control task has stopped (node shutting down).
    #[error("the control plane has stopped")]
    Stopped,
    /// A value exceeds a size bound.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A DHT or gossip operation failed.
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hello {
    member: MemberId,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    gossipsub: gossipsub::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    hello: request_response::json::Behaviour<Hello, Hello>,
}

/// The swarm's behaviours, the same with or without an emulated WAN.
fn build_behaviour(
    key: &Keypair,
    mdns_on: bool,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer = key.public().to_peer_id();
    let mut kad_config = kad::Config::new(StreamProtocol::new("/proxima/kad/1.0.0"));
    // Records peers push to us go through the validator first.
    kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
    kad_config.set_max_packet_size(2 * MAX_RECORD);
    let mut kad = kad::Behaviour::with_config(peer, MemoryStore::new(peer), kad_config);
    kad.set_mode(Some(kad::Mode::Server));
    let gossip_config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(MAX_GOSSIP)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| e.to_string())?;
    let gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        gossip_config,
    )?;
    let mdns = if mdns_on {
        Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?)
    } else {
        None
    };
    Ok(Behaviour {
        identify: identify::Behaviour::new(identify::Config::new(
            "/proxima/id/1.0.0".into(),
            key.public(),
        )),
        ping: ping::Behaviour::new(ping::Config::new()),
        kad,
        gossipsub,
        mdns: mdns.into(),
        hello: request_response::json::Behaviour::new(
            [(
                StreamProtocol::new("/proxima/hello/1"),
                ProtocolSupport::Full,
            )],
            request_response::Config::default(),
        ),
    })
}

enum Command {
    Publish(String, Bytes, oneshot::Sender<Result<(), ControlError>>),
    Subscribe(
        String,
        oneshot::Sender<Result<broadcast::Receiver<(PeerId, Bytes)>, ControlError>>,
    ),
    PutRecord(Vec<u8>, Vec<u8>, oneshot::Sender<Result<(), ControlError>>),
    GetRecord(Vec<u8>, oneshot::Sender<Result<Vec<u8>, ControlError>>),
    Provide(Vec<u8>, oneshot::Sender<Result<(), ControlError>>),
    Providers(Vec<u8>, oneshot::Sender<Result<Vec<PeerId>, ControlError>>),
    Dial(Multiaddr),
    Listeners(oneshot::Sender<Vec<Multiaddr>>),
}

/// Handle to the libp2p control plane. Cheap to clone.
#[derive(Clone)]
pub struct ControlPlane {
    commands: mpsc::Sender<Command>,
    /// Peers reached by dialing a configured bootstrap address (the operator named those).
    bootstrap_peers: Arc<std::sync::Mutex<HashSet<PeerId>>>,
    /// DHT records refused by the validator or the size bound.
    pub invalid_records: Counter,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Builds the swarm, listens, dials the bootstrap peers and starts the swarm task.
    /// Returns once every listener is bound.
    pub async fn start(
        keypair: Keypair,
        config: ControlConfig,
        membership: Membership,
        shutdown: CancellationToken,
    ) -> Result<Self, ControlError> {
        let setup = |e: &dyn std::fmt::Display| ControlError::Setup(e.to_string());
        let mdns_on = config.mdns;
        let behaviour = move |key: &Keypair| build_behaviour(key, mdns_on);
        let swarm_config =
            |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(120));
        let mut listen = config.listen.clone();
        let mut bootstrap = config.bootstrap.clone();
        let mut swarm = match (config.wan.clone(), config.network_key) {
            (wan, Some(psk)) => {
                listen = listen.iter().map(wan_tcp::tcp_same_port).collect();
                bootstrap = bootstrap.iter().map(wan_tcp::tcp_same_port).collect();
                let psk = libp2p::pnet::PreSharedKey::new(psk);
                libp2p::SwarmBuilder::with_existing_identity(keypair)
                    .with_tokio()
                    .with_other_transport(|key| {
                        use libp2p::Transport as _;
                        let noise = noise::Config::new(key)?;
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                            tcp::tokio::Transport::new(tcp::Config::default())
                                .and_then(move |stream, endpoint| {
                                    let attached = match &wan {
                                        Some(link) => wan_tcp::attach(link, stream, &endpoint),
                                        None => Ok(wan_tcp::plain(stream)),
                                    };
                                    async move {
                                        libp2p::pnet::PnetConfig::new(psk)
                                            .handshake(attached?)
                                            .await
                                            .map_err(std::io::Error::other)
                                    }
                                })
                                .upgrade(libp2p::core::upgrade::Version::V1)
                                .authenticate(noise)
                                .multiplex(yamux::Config::default()),
                        )
                    })
                    .map_err(|e| setup(&e))?
                    .with_behaviour(behaviour)
                    .map_err(|e| setup(&e))?
                    .with_swarm_config(swarm_config)
                    .build()
            }
            (None, None) => libp2p::SwarmBuilder::with_existing_identity(keypair)
                .with_tokio()
                .with_tcp(
                    tcp::Config::default(),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .map_err(|e| setup(&e))?
                .with_quic()
                .with_behaviour(behaviour)
                .map_err(|e| setup(&e))?
                .with_swarm_config(swarm_config)
                .build(),
            (Some(link), None) => {
                listen = listen.iter().map(wan_tcp::tcp_instead_of_quic).collect();
                libp2p::SwarmBuilder::with_existing_identity(keypair)
                    .with_tokio()
                    .with_other_transport(|key| {
                        use libp2p::Transport as _;
                        let noise = noise::Config::new(key)?;
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                            tcp::tokio::Transport::new(tcp::Config::default())
                                .and_then(move |stream, endpoint| {
                                    std::future::ready(wan_tcp::attach(&link, stream, &endpoint))
                                })
                                .upgrade(libp2p::core::upgrade::Version::V1)
                                .authenticate(noise)
                                .multiplex(yamux::Config::default()),
                        )
                    })
                    .map_err(|e| setup(&e))?
                    .with_behaviour(behaviour)
                    .map_err(|e| setup(&e))?
                    .with_swarm_config(swarm_config)
                    .build()
            }
        };
        for addr in &listen {
            swarm.listen_on(addr.clone()).map_err(|e| setup(&e))?;
        }
        // Wait until every listener reports its address (port 0 resolved).
        let mut bound = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while bound < listen.len() {
            match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
                Ok(SwarmEvent::NewListenAddr { address, .. }) => {
                    tracing::info!(%address, "p2p listening");
                    if let (Some(w), Some(sa)) = (&config.wan, wan_tcp::tcp_socket_addr(&address)) {
                        w.emulator.place(sa, w.position);
                    }
                    bound += 1;
                }
                Ok(SwarmEvent::ListenerError { error, .. }) => return Err(setup(&error)),
                Ok(_) => {}
                Err(_) => return Err(ControlError::Setup("listeners did not come up".into())),
            }
        }
        for addr in &bootstrap {
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        let (tx, rx) = mpsc::channel(256);
        let invalid_records = Counter::default();
        let bootstrap_peers = Arc::new(std::sync::Mutex::new(HashSet::new()));
        let task = SwarmTask {
            bootstrap_peers: bootstrap_peers.clone(),
            swarm,
            membership,
            validator: config.validator,
            invalid_records: invalid_records.clone(),
            topics: HashMap::new(),
            hello_sent: HashSet::new(),
            bootstrap,
            get_queries: HashMap::new(),
            put_queries: HashMap::new(),
            provider_queries: HashMap::new(),
            settling: Default::default(),
        };
        tokio::spawn(task.run(rx, shutdown));
        Ok(Self {
            commands: tx,
            bootstrap_peers,
            invalid_records,
        })
    }

    /// The peers this node reached by dialing one of its configured bootstrap addresses.
    pub fn bootstrap_peers(&self) -> HashSet<PeerId> {
        self.bootstrap_peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ControlError>>) -> Command,
    ) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ControlError::Stopped)?;
        rx.await.map_err(|_| ControlError::Stopped)?
    }

    /// Publishes `data` on gossip topic `topic`.
    pub async fn publish(&self, topic: &str, data: Bytes) -> Result<(), ControlError> {
        if data.len() > MAX_GOSSIP {
            return Err(ControlError::TooLarge {
                what: "gossip message",
                len: data.len(),
                max: MAX_GOSSIP,
            });
        }
        let topic = topic.to_owned();
        self.call(|tx| Command::Publish(topic, data, tx)).await
    }

    /// Subscribes to `topic`; messages arrive with the peer that published them. A slow
    /// receiver loses the oldest messages (bounded buffer of [`TOPIC_BUFFER`]).
    pub async fn subscribe(
        &self,
        topic: &str,
    ) -> Result<broadcast::Receiver<(PeerId, Bytes)>, ControlError> {
        let topic = topic.to_owned();
        self.call(|tx| Command::Subscribe(topic, tx)).await
    }

    /// Stores a record in the DHT (on the closest peers and locally).
    pub async fn put_record(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), ControlError> {
        if value.len() > MAX_RECORD {
            return Err(ControlError::TooLarge {
                what: "record",
                len: value.len(),
                max: MAX_RECORD,
            });
        }
        self.call(|tx| Command::PutRecord(key, value, tx)).await
    }

    /// Fetches a record from the DHT.
    pub async fn get_record(&self, key: Vec<u8>) -> Result<Vec<u8>, ControlError> {
        self.call(|tx| Command::GetRecord(key, tx)).await
    }

    /// Announces that this node provides `key` (e.g. holds blob H).
    pub async fn start_providing(&self, key: Vec<u8>) -> Result<(), ControlError> {
        self.call(|tx| Command::Provide(key, tx)).await
    }

    /// Finds peers that announced `key`. Answers when the DHT query ends, or shortly after the
    /// first providers are found if the query is still waiting on other peers (one that has
    /// gone away takes a handshake timeout to fail).
    pub async fn providers(&self, key: Vec<u8>) -> Result<Vec<PeerId>, ControlError> {
        self.call(|tx| Command::Providers(key, tx)).await
    }

    /// Dials a peer address (with or without `/p2p/<id>`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), ControlError> {
        self.commands
            .send(Command::Dial(addr))
            .await
            .map_err(|_| ControlError::Stopped)
    }

    /// The addresses the swarm listens on.
    pub async fn listeners(&self) -> Result<Vec<Multiaddr>, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Listeners(tx))
            .await
            .map_err(|_| ControlError::Stopped)?;
        rx.await.map_err(|_| ControlError::Stopped)
    }
}

/// A provider lookup: providers found so far, where to send them, and whether the settling
/// timer runs.
struct ProviderQuery {
    found: HashSet<PeerId>,
    reply: oneshot::Sender<Result<Vec<PeerId>, ControlError>>,
    started: std::time::Instant,
    settling: bool,
}

struct SwarmTask {
    bootstrap_peers: Arc<std::sync::Mutex<HashSet<PeerId>>>,
    swarm: libp2p::Swarm<Behaviour>,
    membership: Membership,
    validator: Option<RecordValidator>,
    invalid_records: Counter,
    topics: HashMap<String, broadcast::Sender<(PeerId, Bytes)>>,
    hello_sent: HashSet<PeerId>,
    /// Dialled again while no other member is alive ([`SwarmTask::retry_bootstrap`]).
    bootstrap: Vec<Multiaddr>,
    get_queries: HashMap<kad::QueryId, oneshot::Sender<Result<Vec<u8>, ControlError>>>,
    put_queries: HashMap<kad::QueryId, oneshot::Sender<Result<(), ControlError>>>,
    provider_queries: HashMap<kad::QueryId, ProviderQuery>,
    /// Settling timers of provider lookups that found providers (see [`PROVIDERS_SETTLE_MIN`]).
    settling: futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, kad::QueryId>>,
}

impl SwarmTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut reconnect = tokio::time::interval(RECONNECT_EVERY);
        reconnect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(cmd) = commands.recv() => self.command(cmd),
                event = self.swarm.select_next_some() => self.event(event).await,
                _ = reconnect.tick() => {
                    self.connect_members();
                    self.retry_bootstrap();
                }
                Some(id) = self.settling.next(), if !self.settling.is_empty() => {
                    self.answer_providers(id);
                }
            }
        }
    }

    /// Dials the bootstrap peers again while no other member is alive: a node started while
    /// they were unreachable (a partition, a peer restarting) would otherwise stay alone for
    /// good, since nobody else knows its address (`retry_join`, as Consul and Serf do).
    fn retry_bootstrap(&mut self) {
        let alone = !self
            .membership
            .members()
            .iter()
            .any(|m| !m.is_self && m.state == crate::membership::MemberState::Alive);
        if !alone {
            return;
        }
        for addr in &self.bootstrap {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, error = %e, "cannot dial a bootstrap peer again");
            }
        }
    }

    /// Dials every live SWIM member this swarm has no connection to, at the `p2p` address it
    /// advertises. Without it, a member that restarted without bootstrap peers (the first node
    /// of a cluster, say) would be back in the membership but cut off from gossip and the DHT,
    /// since the others' libp2p connections to it died with the old process.
    fn connect_members(&mut self) {
        for m in self.membership.members() {
            if m.is_self
                || m.state != crate::membership::MemberState::Alive
                || self.swarm.is_connected(&m.id.peer)
            {
                continue;
            }
            let Some(addr) = m
                .meta
                .as_ref()
                .and_then(|meta| meta.services.get("p2p"))
                .and_then(|a| a.parse::<Multiaddr>().ok())
            else {
                continue;
            };
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(m.id.peer)
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .addresses(vec![addr])
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(peer = %m.id.peer, error = %e, "cannot dial a member's p2p address");
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let b = self.swarm.behaviour_mut();
        match cmd {
            Command::Publish(topic, data, reply) => {
                let r = b
                    .gossipsub
                    .publish(IdentTopic::new(topic), data.to_vec())
                    .map(|_| ())
                    .map_err(|e| ControlError::Failed(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Subscribe(topic, reply) => {
                let t = IdentTopic::new(topic.clone());
                let r = b
                    .gossipsub
                    .subscribe(&t)
                    .map_err(|e| ControlError::Failed(e.to_string()))
                    .map(|_| {
                        self.topics
                            .entry(t.hash().to_string())
                            .or_insert_with(|| broadcast::channel(TOPIC_BUFFER).0)
                            .subscribe()
                    });
                let _ = reply.send(r);
            }
            Command::PutRecord(key, value, reply) => {
                let record = kad::Record::new(key, value);
                match b.kad.put_record(record, kad::Quorum::One) {
                    Ok(id) => {
                        self.put_queries.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ControlError::Failed(e.to_string())));
                    }
                }
            }
            Command::GetRecord(key, reply) => {
                let id = b.kad.get_record(kad::RecordKey::new(&key));
                self.get_queries.insert(id, reply);
            }
            Command::Provide(key, reply) => {
                let r = b
                    .kad
                    .start_providing(kad::RecordKey::new(&key))
                    .map(|_| ())
                    .map_err(|e| ControlError::Failed(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Providers(key, reply) => {
                let id = b.kad.get_providers(kad::RecordKey::new(&key));
                self.provider_queries.insert(
                    id,
                    ProviderQuery {
                        found: HashSet::new(),
                        reply,
                        started: std::time::Instant::now(),
                        settling: false,
                    },
                );
            }
            Command::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::debug!(%addr, error = %e, "dial failed");
                }
            }
            Command::Listeners(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
        }
    }

    async fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                if let libp2p::core::ConnectedPoint::Dialer { address, .. } = &endpoint
                    && self
                        .bootstrap
                        .iter()
                        .any(|b| ip_port(b).is_some() && ip_port(b) == ip_port(address))
                {
                    self.bootstrap_peers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(peer_id);
                }
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer_id, endpoint.get_remote_address().clone());
                if self.hello_sent.len() > 4096 {
                    self.hello_sent.clear();
                }
                if self.hello_sent.insert(peer_id) {
                    let hello = Hello {
                        member: self.membership.local().clone(),
                    };
                    self.swarm
                        .behaviour_mut()
                        .hello
                        .send_request(&peer_id, hello);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.hello_sent.remove(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Hello(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let reply = Hello {
                        member: self.membership.local().clone(),
                    };
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .hello
                        .send_response(channel, reply);
                    self.introduce(peer, request.member).await;
                }
                request_response::Message::Response { response, .. } => {
                    self.introduce(peer, response.member).await;
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs.into_iter().take(16) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list.into_iter().take(64) {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    let _ = self.swarm.dial(addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            })) => {
                let from = message.source.unwrap_or(propagation_source);
                if let Some(tx) = self.topics.get(message.topic.as_str()) {
                    let _ = tx.send((from, Bytes::from(message.data)));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.kad_event(event),
            _ => {}
        }
    }

    /// A peer told us its SWIM identity: believe it only for the peer the connection
    /// authenticated.
    async fn introduce(&mut self, peer: PeerId, member: MemberId) {
        if member.peer != peer {
            tracing::warn!(%peer, claimed = %member.peer, "hello for another peer refused");
            return;
        }
        self.membership.announce(member).await;
    }

    /// Sends a provider lookup its answer (once), and ends its query if it still runs.
    fn answer_providers(&mut self, id: kad::QueryId) {
        if let Some(q) = self.provider_queries.remove(&id) {
            let _ = q.reply.send(Ok(q.found.into_iter().collect()));
        }
        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            query.finish();
        }
    }

    fn kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        record: Some(record),
                        ..
                    },
            } => {
                let ok = record.value.len() <= MAX_RECORD
                    && self
                        .validator
                        .as_ref()
                        .is_none_or(|v| v(record.key.as_ref(), &record.value));
                if ok {
                    use kad::store::RecordStore;
                    let _ = self.swarm.behaviour_mut().kad.store_mut().put(record);
                } else {
                    self.invalid_records.inc();
                    tracing::debug!("invalid DHT record refused");
                }
            }
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(record),
                    },
            } => {
                use kad::store::RecordStore;
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .store_mut()
                    .add_provider(record);
            }
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(r))) => {
                    let valid = r.record.value.len() <= MAX_RECORD
                        && self
                            .validator
                            .as_ref()
                            .is_none_or(|v| v(r.record.key.as_ref(), &r.record.value));
                    if !valid {
                        self.invalid_records.inc();
                        return;
                    }
                    if let Some(reply) = self.get_queries.remove(&id) {
                        let _ = reply.send(Ok(r.record.value));
                    }
                }
                kad::QueryResult::GetRecord(Ok(_)) | kad::QueryResult::GetRecord(Err(_)) => {
                    if step.last
                        && let Some(reply) = self.get_queries.remove(&id)
                    {
                        let _ = reply.send(Err(ControlError::Failed("record not found".into())));
                    }
                }
                kad::QueryResult::PutRecord(r) => {
                    if let Some(reply) = self.put_queries.remove(&id) {
                        // Stored locally in any case; a lone node has no peers to reach a quorum.
                        let _ = reply.send(match r {
                            Ok(_) => Ok(()),
                            Err(kad::PutRecordError::QuorumFailed { .. }) => Ok(()),
                            Err(e) => Err(ControlError::Failed(e.to_string())),
                        });
                    }
                }
                kad::QueryResult::GetProviders(r) => {
                    if let Some(q) = self.provider_queries.get_mut(&id) {
                        if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r {
                            q.found.extend(providers.into_iter().take(256));
                        }
                        if !step.last && !q.settling && !q.found.is_empty() {
                            q.settling = true;
                            let wait = q
                                .started
                                .elapsed()
                                .clamp(PROVIDERS_SETTLE_MIN, PROVIDERS_SETTLE_MAX);
                            self.settling.push(Box::pin(async move {
                                tokio::time::sleep(wait).await;
                                id
                            }));
                        }
                    }
                    if step.last {
                        self.answer_providers(id);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// The IP and port of a multiaddr (TCP or UDP), to match a dialed address with a configured one.
fn ip_port(m: &Multiaddr) -> Option<(std::net::IpAddr, u16)> {
    use libp2p::multiaddr::Protocol;
    let ip = crate::multiaddr_ip(m)?;
    let port = m.iter().find_map(|p| match p {
        Protocol::Tcp(p) | Protocol::Udp(p) => Some(p),
        _ => None,
    })?;
    Some((ip, port))
}
