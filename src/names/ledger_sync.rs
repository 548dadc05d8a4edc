//! The embedded ledger across the mesh: the registrar group (the members that keep the log by
//! Raft, see [`naming::raft`] and [`super::registrar`]) and every other node's verified replica.
//!
//! # Which ledger (zero configuration)
//!
//! A ledger is named by its *founder*: the node whose key sealed its first records. In this
//! order: `[naming] registrar = "self"` or `"<peer id of the founder>"` if set; else the choice
//! saved in `<data>/ledger/registrar` by an earlier start; else a node started without bootstrap
//! peers founds its own (a registrar group of one, exactly the single registrar of before); else
//! the node asks the first live members it meets whose ledger they keep, and keeps the same. The
//! choice is saved, so a restart does not depend on who happens to be up. A node that kept the
//! ledger alone before groups existed founds the group with its log as the first state.
//!
//! Every node runs a group member over its copy of the log (`<data>/ledger` for the founder,
//! `<data>/ledger/follow-<founder>` for the others); it takes part once a leader adds it
//! (`proxima cluster registrar add`). Until then its copy is kept by following.
//!
//! # Protocol (`proxima/ledger/1` on the QUIC data plane, open to every member)
//!
//! One JSON request frame per stream, replies as JSON frames (bounded by [`MAX_MESSAGE`]):
//! - `hello` -> `{registrar, records}`: the founder of the ledger the answering node keeps.
//! - `follow {from}` -> a stream of `frames` batches (raw log frames, hex) from record `from` on,
//!   new records as they are appended, and an empty batch every [`HEARTBEAT`] while idle. Any
//!   node serves its copy; the follower verifies every record anyway.
//! - `submit {tx}` -> `submitted {records}` or `failed {error}`: an owner-signed transaction
//!   (see [`EmbeddedLedger::owner_tx`]) for the group's leader to check, seal and propose; a
//!   member that does not lead answers `not_leader` with the leader it knows.
//!
//! The follower's side lives in the `naming` crate ([`naming::follow`]): [`FollowerLedger`] and
//! [`follow_registrar`] keep the replica and forward transactions through the narrow
//! [`LedgerNetwork`] trait, which [`MeshNetwork`] implements here: transactions go to the
//! leader through a [`GroupRouter`], the follow stream to the leader (or another member). A
//! replica appends only records that continue its chain and are sealed by the group as the log
//! itself names it ([`EmbeddedLedger::append_replicated`]); anything else is refused, counted
//! in `proxima_naming_ledger_refused_total`, and the stream is dropped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use futures::stream::BoxStream;
use mesh::PeerId;
use naming::raft::{GroupRouter, GroupSettings, RegistrarGroup, SubmitPath, WireError};
use naming::{
    EmbeddedLedger, FollowerLedger, Ledger, LedgerError, LedgerNetwork, SyncMetrics,
    follow_registrar,
};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// ALPN of the ledger replication protocol.
pub const LEDGER_ALPN: &[u8] = b"proxima/ledger/1";
/// Largest request or reply frame.
pub const MAX_MESSAGE: usize = 256 * 1024;
/// Records per `frames` batch (a record is at most 1 KiB, twice that in hex).
const BATCH: usize = 64;
/// An idle follow stream carries an empty batch this often (a follower that hears nothing for
/// 15 s reconnects: `naming::follow`).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long opening a stream to a member may take before the next member is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one member may take to answer a transaction: a leader confirms its majority (up to
/// 2 s) and commits (up to 5 s).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(7);
/// File (in the ledger directory) that keeps the registrar choice.
const REGISTRAR_FILE: &str = "registrar";

/// Which ledger this node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This node founded it (a group of one at first).
    Registrar,
    /// The ledger founded by that peer.
    Follower(PeerId),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Hello,
    Follow { from: u64 },
    Submit { tx: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
enum Reply {
    Hello { registrar: String, records: u64 },
    Frames { frames: String },
    Submitted { records: u64 },
    Failed { error: WireError },
}

/// The registrar's log key is its node key, carried in its peer id.
use mesh::peer_ed25519_key;

fn parse_role(s: &str, me: PeerId) -> Result<Role> {
    let s = s.trim();
    if s == "self" {
        return Ok(Role::Registrar);
    }
    let peer: PeerId = s
        .parse()
        .with_context(|| format!("{s:?} is neither \"self\" nor a peer id"))?;
    if peer_ed25519_key(&peer).is_none() {
        anyhow::bail!("peer id {peer} does not carry an Ed25519 key");
    }
    Ok(if peer == me {
        Role::Registrar
    } else {
        Role::Follower(peer)
    })
}

/// Decides this node's [`Role`] (see the module docs) and saves it in `ledger_dir`.
pub async fn choose_role(
    configured: Option<&str>,
    has_bootstrap: bool,
    wait: Duration,
    mesh: &mesh::Mesh,
    ledger_dir: &Path,
) -> Result<Role> {
    let me = mesh.peer_id();
    let file = ledger_dir.join(REGISTRAR_FILE);
    let role = if let Some(c) = configured {
        parse_role(c, me).context("naming.registrar")?
    } else if let Ok(saved) = std::fs::read_to_string(&file) {
        parse_role(&saved, me).with_context(|| format!("{}", file.display()))?
    } else if !has_bootstrap {
        Role::Registrar
    } else {
        discover(mesh, wait).await?
    };
    std::fs::create_dir_all(ledger_dir)?;
    let text = match role {
        Role::Registrar => "self".to_owned(),
        Role::Follower(p) => p.to_string(),
    };
    // Write-then-rename so a crash never leaves a half-written choice.
    let tmp = ledger_dir.join(format!("{REGISTRAR_FILE}.tmp"));
    std::fs::write(&tmp, format!("{text}\n"))?;
    std::fs::rename(&tmp, &file)?;
    Ok(role)
}

/// Asks live members whom they follow, until one answers or `wait` passes. Every live member
/// is asked at once, each round: while a mesh forms, members that are still choosing their own
/// role do not answer yet, and asking them one after another (2 s each) could use up `wait`
/// before one that answers was asked.
async fn discover(mesh: &mesh::Mesh, wait: Duration) -> Result<Role> {
    let me = mesh.peer_id();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let members = mesh.members();
        // Only members the cluster certified for the registrar role are asked, and only an
        // answer naming such a member (or this node) is believed: never whoever answers first.
        let certified = |p: &PeerId| {
            *p == me
                || members
                    .iter()
                    .any(|m| m.id.peer == *p && m.has_role(mesh::trust::ROLE_REGISTRAR))
        };
        let asks: Vec<_> = members
            .iter()
            .filter(|m| {
                !m.is_self
                    && m.state == mesh::MemberState::Alive
                    && m.has_role(mesh::trust::ROLE_REGISTRAR)
            })
            .map(|m| {
                let peer = m.id.peer;
                Box::pin(async move {
                    match tokio::time::timeout(Duration::from_secs(2), hello(mesh, peer)).await {
                        Ok(Ok(registrar)) if certified(&registrar) => Ok((peer, registrar)),
                        Ok(Ok(registrar)) => {
                            tracing::warn!(%peer, %registrar, "a member named an uncertified registrar; ignored");
                            Err(())
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "hello failed");
                            Err(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "hello timed out");
                            Err(())
                        }
                    }
                })
            })
            .collect();
        if !asks.is_empty()
            && let Ok(((peer, registrar), _)) = futures::future::select_ok(asks).await
        {
            tracing::info!(%peer, %registrar, "learned the ledger registrar from a peer");
            return Ok(if registrar == me {
                Role::Registrar
            } else {
                Role::Follower(registrar)
            });
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "cannot learn the embedded ledger's registrar within {wait:?}: no member certified \
                 for the registrar role answered (join with a token from the cluster, or set \
                 [naming] registrar = \"<peer id>\", or \"self\" to keep a ledger of its own)"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn request(
    mesh: &mesh::Mesh,
    peer: PeerId,
    req: &Request,
) -> Result<(mesh::SendStream, mesh::RecvStream)> {
    let (mut send, recv) = mesh.open_bi(peer, LEDGER_ALPN).await?;
    mesh::frame::write(&mut send, &serde_json::to_vec(req)?).await?;
    Ok((send, recv))
}

async fn read_reply(recv: &mut mesh::RecvStream) -> Result<Reply> {
    let bytes = mesh::frame::FrameDecoder::new(MAX_MESSAGE)
        .read(recv)
        .await?
        .context("stream ended")?;
    Ok(serde_json::from_slice(&bytes)?)
}

async fn hello(mesh: &mesh::Mesh, peer: PeerId) -> Result<PeerId> {
    let (mut send, mut recv) = request(mesh, peer, &Request::Hello).await?;
    let _ = send.finish();
    match read_reply(&mut recv).await? {
        Reply::Hello { registrar, .. } => Ok(registrar.parse()?),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
}

/// Serves [`LEDGER_ALPN`] for `ledger`, founded by `registrar`, with this node's group member
/// `group` taking transactions when it leads.
pub fn serve(
    mesh: &mesh::Mesh,
    ledger: EmbeddedLedger,
    registrar: PeerId,
    group: Arc<RegistrarGroup>,
) -> Result<()> {
    let per_peer = Arc::new(parking_lot::Mutex::new(
        naming::ratelimit::TokenBuckets::new(PEER_BURST, PEER_PER_SEC),
    ));
    mesh.dataplane()
        .serve_streams(LEDGER_ALPN, move |peer, send, recv| {
            let (ledger, group) = (ledger.clone(), group.clone());
            let per_peer = per_peer.clone();
            Box::pin(async move {
                if let Err(e) = handle(ledger, &group, registrar, peer, &per_peer, send, recv).await
                {
                    tracing::debug!(%peer, error = %e, "ledger stream ended");
                }
            })
        })
        .context("cannot serve the ledger protocol")
}

async fn write_reply(send: &mut mesh::SendStream, reply: &Reply) -> Result<()> {
    mesh::frame::write(send, &serde_json::to_vec(reply)?).await?;
    Ok(())
}

/// Transactions one peer may forward at once.
const PEER_BURST: u32 = 200;
/// Transactions one peer may forward per second after its burst.
const PEER_PER_SEC: f64 = 5.0;

async fn handle(
    ledger: EmbeddedLedger,
    group: &RegistrarGroup,
    registrar: PeerId,
    peer: PeerId,
    per_peer: &parking_lot::Mutex<naming::ratelimit::TokenBuckets<PeerId>>,
    mut send: mesh::SendStream,
    mut recv: mesh::RecvStream,
) -> Result<()> {
    let bytes = mesh::frame::FrameDecoder::new(MAX_MESSAGE)
        .read(&mut recv)
        .await?
        .context("no request")?;
    match serde_json::from_slice::<Request>(&bytes)? {
        Request::Hello => {
            let reply = Reply::Hello {
                registrar: registrar.to_string(),
                records: ledger.len(),
            };
            write_reply(&mut send, &reply).await?;
            let _ = send.finish();
        }
        Request::Submit { tx } => {
            let allowed = per_peer.lock().allow(&peer);
            let reply = match hex::decode(&tx) {
                _ if !allowed => Reply::Failed {
                    error: (&LedgerError::Refused(format!(
                        "rate limited: at most {PEER_BURST} forwarded transactions at once and \
                         {PEER_PER_SEC} a second per peer"
                    )))
                        .into(),
                },
                Err(_) => Reply::Failed {
                    error: (&LedgerError::Refused("transaction is not hex".into())).into(),
                },
                Ok(tx) => match group.submit(&tx).await {
                    Ok(records) => Reply::Submitted { records },
                    Err(e) => Reply::Failed { error: (&e).into() },
                },
            };
            write_reply(&mut send, &reply).await?;
            let _ = send.finish();
        }
        Request::Follow { mut from } => {
            let mut len = ledger.watch_len();
            loop {
                if from < *len.borrow_and_update() {
                    let l = ledger.clone();
                    let records =
                        tokio::task::spawn_blocking(move || l.read_frames(from, BATCH)).await??;
                    if records.is_empty() {
                        anyhow::bail!("log shorter than its count");
                    }
                    from += records.len() as u64;
                    let frames: Vec<u8> = records.into_iter().flat_map(|r| r.frame).collect();
                    write_reply(
                        &mut send,
                        &Reply::Frames {
                            frames: hex::encode(frames),
                        },
                    )
                    .await?;
                    continue;
                }
                match tokio::time::timeout(HEARTBEAT, len.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Ok(()),
                    Err(_) => {
                        write_reply(
                            &mut send,
                            &Reply::Frames {
                                frames: String::new(),
                            },
                        )
                        .await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Submits a transaction to one member over [`LEDGER_ALPN`].
async fn submit_to_peer(mesh: &mesh::Mesh, peer: PeerId, tx: &[u8]) -> Result<u64, LedgerError> {
    let exchange = async {
        // A dead member must not hold the router up for a QUIC handshake timeout.
        let opened = tokio::time::timeout(
            CONNECT_TIMEOUT,
            request(
                mesh,
                peer,
                &Request::Submit {
                    tx: hex::encode(tx),
                },
            ),
        )
        .await;
        let (mut send, mut recv) =
            opened.map_err(|_| anyhow::anyhow!("no connection within 1 s"))??;
        let _ = send.finish();
        read_reply(&mut recv).await
    };
    match exchange
        .await
        .map_err(|e| LedgerError::Unreachable(format!("{peer}: {e}")))?
    {
        Reply::Submitted { records } => Ok(records),
        Reply::Failed { error } => Err(error.into_error()),
        other => Err(LedgerError::Refused(format!("unexpected reply {other:?}"))),
    }
}

/// Members reached over the mesh, for the [`GroupRouter`].
struct MeshPath {
    mesh: mesh::Mesh,
}

#[async_trait]
impl SubmitPath for MeshPath {
    async fn submit_to(&self, member: [u8; 32], tx: &[u8]) -> Result<u64, LedgerError> {
        let peer = mesh::peer_from_ed25519(&member)
            .ok_or_else(|| LedgerError::Refused("a group key is not an Ed25519 key".into()))?;
        // A member the failure detector does not see alive is not asked: a stream to a dead
        // node can open on a stale connection and wait for a reply that never comes.
        let alive = self
            .mesh
            .members()
            .iter()
            .any(|m| m.id.peer == peer && m.state == mesh::MemberState::Alive);
        if !alive {
            return Err(LedgerError::Unreachable(format!("{peer} is not alive")));
        }
        match tokio::time::timeout(EXCHANGE_TIMEOUT, submit_to_peer(&self.mesh, peer, tx)).await {
            Ok(r) => r,
            Err(_) => Err(LedgerError::Unreachable(format!(
                "{peer} did not answer within {} s",
                EXCHANGE_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// The way to the registrar group over the mesh: [`LedgerNetwork`] on [`LEDGER_ALPN`].
/// Transactions go to the leader (found by the router); the follow stream goes to the member
/// this node last saw lead, and is dropped (and opened again there) when the leader changes, so
/// a follower never waits on a member that fell behind.
pub struct MeshNetwork {
    mesh: mesh::Mesh,
    founder: PeerId,
    ledger: EmbeddedLedger,
    group: Arc<RegistrarGroup>,
    router: GroupRouter<MeshPath>,
    /// The member to follow: the last leader seen (by the router or this node's member).
    source: tokio::sync::watch::Sender<Option<[u8; 32]>>,
    /// Rotates through the group when no leader is known.
    turn: std::sync::atomic::AtomicUsize,
}

impl MeshNetwork {
    /// Reaches the group of the ledger founded by `founder`, whose local copy is `ledger` and
    /// whose member on this node is `group`.
    pub fn new(
        mesh: mesh::Mesh,
        founder: PeerId,
        ledger: EmbeddedLedger,
        group: Arc<RegistrarGroup>,
    ) -> Self {
        let router = GroupRouter::new(
            ledger.clone(),
            Some(group.clone()),
            MeshPath { mesh: mesh.clone() },
        );
        Self {
            mesh,
            founder,
            ledger,
            group,
            router,
            source: tokio::sync::watch::channel(None).0,
            turn: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The member this node last saw lead (by the router, or its own member).
    fn leader_peer(&self) -> Option<PeerId> {
        self.router
            .last_leader()
            .or_else(|| self.group.leader())
            .and_then(|k| mesh::peer_from_ed25519(&k))
    }

    /// Notes the leader this node's member knows, so the follow stream moves to it.
    fn note_leader(&self, leader: Option<[u8; 32]>) {
        if leader.is_some() {
            self.source.send_if_modified(|s| {
                let changed = *s != leader;
                *s = leader;
                changed
            });
        }
    }

    /// Whom to follow now: the last leader seen if it is not this node, else a live member of
    /// the group other than this node (in turn), else the founder.
    fn follow_source(&self) -> PeerId {
        let me = self.mesh.peer_id();
        let leader = self.group.leader().or(*self.source.borrow());
        if let Some(p) = leader.and_then(|k| mesh::peer_from_ed25519(&k))
            && p != me
        {
            return p;
        }
        let live: Vec<PeerId> = {
            let members = self.mesh.members();
            self.ledger
                .group()
                .iter()
                .filter_map(mesh::peer_from_ed25519)
                .filter(|p| {
                    *p != me
                        && members
                            .iter()
                            .any(|m| m.id.peer == *p && m.state == mesh::MemberState::Alive)
                })
                .collect()
        };
        if live.is_empty() {
            return self.founder;
        }
        let i = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        live[i % live.len()]
    }
}

#[async_trait]
impl LedgerNetwork for MeshNetwork {
    async fn submit(&self, tx: &[u8]) -> Result<u64, LedgerError> {
        let r = self.router.submit(tx).await;
        self.note_leader(self.router.last_leader());
        r
    }

    async fn follow(
        &self,
        from: u64,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, LedgerError>>, LedgerError> {
        self.note_leader(self.group.leader());
        let source = self.follow_source();
        let (send, recv) = request(&self.mesh, source, &Request::Follow { from })
            .await
            .map_err(|e| LedgerError::Unreachable(format!("{source}: {e}")))?;
        let mut moved = self.source.subscribe();
        moved.borrow_and_update();
        // The send half stays open as long as the stream is read; the stream ends after its
        // first error, or when another member is seen to lead.
        let batches = futures::stream::unfold(Some((send, recv, moved)), |state| async move {
            let (send, mut recv, mut moved) = state?;
            let batch = tokio::select! {
                r = read_reply(&mut recv) => match r {
                    Ok(Reply::Frames { frames }) => hex::decode(frames)
                        .map_err(|_| LedgerError::Refused("frames are not hex".into())),
                    Ok(other) => Err(LedgerError::Refused(format!("unexpected reply {other:?}"))),
                    Err(e) => Err(LedgerError::Unreachable(e.to_string())),
                },
                _ = moved.changed() => Err(LedgerError::Unreachable(
                    "another member leads the group now; following it".into(),
                )),
            };
            let next = batch.is_ok().then_some((send, recv, moved));
            Some((batch, next))
        });
        Ok(Box::pin(batches))
    }

    fn registrar(&self) -> String {
        match self.leader_peer() {
            Some(l) => format!("group (founder {}, leader {l})", self.founder),
            None => format!("group (founder {})", self.founder),
        }
    }

    fn registrar_admin(&self) -> String {
        let leader = self.leader_peer().unwrap_or(self.founder);
        self.mesh
            .members()
            .into_iter()
            .find(|m| m.id.peer == leader)
            .and_then(|m| m.meta.and_then(|meta| meta.services.get("admin").cloned()))
            .map_or_else(|| "unknown".into(), |a| format!("http://{a}"))
    }
}

/// What [`open`] wires up.
pub struct Opened {
    /// The ledger the naming service uses (reads from the copy, writes through the group).
    pub ledger: Arc<dyn Ledger>,
    /// This node's member of the registrar group.
    pub group: Arc<RegistrarGroup>,
}

/// Opens this node's copy of the ledger for `role` under `ledger_dir` (`ledger_dir` itself for
/// the founder, `ledger_dir/follow-<founder>` otherwise), starts its registrar-group member
/// (founding the group if this node is the founder), serves both protocols, and keeps the copy
/// in step by following.
#[allow(clippy::too_many_arguments)]
pub async fn open(
    role: Role,
    ledger_dir: &Path,
    identity: &crate::identity::NodeIdentity,
    config: naming::EmbeddedConfig,
    clock: Arc<dyn naming::Clock>,
    mesh: &mesh::Mesh,
    metrics: &SyncMetrics,
    group_refused: Counter,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<Opened> {
    let (founder, dir) = match role {
        Role::Registrar => (mesh.peer_id(), ledger_dir.to_path_buf()),
        Role::Follower(p) => (p, ledger_dir.join(format!("follow-{p}"))),
    };
    let founder_key = peer_ed25519_key(&founder)
        .with_context(|| format!("founder {founder} has no Ed25519 key"))?;
    let (ledger, report) = EmbeddedLedger::open_replica(
        &dir,
        founder_key,
        Some(identity.signing_key().clone()),
        config,
        clock,
    )
    .context("cannot open the embedded ledger")?;
    if report.dropped_bytes > 0 {
        tracing::warn!(
            dropped = report.dropped_bytes,
            "embedded ledger dropped a torn tail or records that do not verify"
        );
    }
    metrics.records.set(ledger.len() as i64);
    let gauge = metrics.records.clone();
    let mut len = ledger.watch_len();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = len.changed() => {
                    if r.is_err() { return; }
                    gauge.set(*len.borrow() as i64);
                }
            }
        }
    });

    let me = identity.signing_key().verifying_key().to_bytes();
    let group = RegistrarGroup::start(
        ledger.clone(),
        me,
        &dir.join("raft.redb"),
        Arc::new(super::registrar::MeshTransport::new(mesh.clone())),
        GroupSettings::default(),
    )
    .await
    .context("cannot start the registrar group member")?;
    super::registrar::serve(mesh, group.clone(), group_refused)?;
    let stopping = (shutdown.clone(), group.clone());
    tracker.spawn(async move {
        stopping.0.cancelled().await;
        stopping.1.shutdown().await;
    });
    if role == Role::Registrar {
        group
            .found()
            .await
            .context("cannot found the registrar group")?;
    }
    serve(mesh, ledger.clone(), founder, group.clone())?;
    let network: Arc<dyn LedgerNetwork> = Arc::new(MeshNetwork::new(
        mesh.clone(),
        founder,
        ledger.clone(),
        group.clone(),
    ));
    tracker.spawn(follow_registrar(
        network.clone(),
        ledger.clone(),
        metrics.clone(),
        shutdown.clone().cancelled_owned(),
    ));
    tracing::info!(%founder, records = ledger.len(), member = group.is_member(), "embedded ledger open");
    Ok(Opened {
        ledger: Arc::new(FollowerLedger::new(ledger, network, metrics.clone())),
        group,
    })
}
