//! The embedded ledger across the mesh: one node is the registrar (it keeps and signs the
//! hash-chained log); every other node keeps a verified replica and forwards its owners'
//! transactions to the registrar.
//!
//! # Who is the registrar (zero configuration)
//!
//! In this order: `[naming] registrar = "self"` or `"<peer id>"` if set; else the choice saved
//! in `<data>/ledger/registrar` by an earlier start; else a node started without bootstrap peers
//! is its own registrar; else the node asks the first live members it meets (its bootstrap peers)
//! whom they follow, and follows the same registrar. The choice is saved, so a restart does not
//! depend on who happens to be up.
//!
//! # Protocol (`proxima/ledger/1` on the QUIC data plane)
//!
//! One JSON request frame per stream, replies as JSON frames (bounded by [`MAX_MESSAGE`]):
//! - `hello` -> `{registrar, records}`: whom the answering node follows (itself if registrar).
//! - `follow {from}` -> a stream of `frames` batches (raw log frames, hex) from record `from` on,
//!   new records as they are appended, and an empty batch every [`HEARTBEAT`] while idle.
//! - `submit {tx}` -> `submitted {records}` or `failed {error}`: an owner-signed transaction
//!   (see [`EmbeddedLedger::owner_tx`]) for the registrar to check, seal and append.
//!
//! The follower's side lives in the `naming` crate ([`naming::follow`]): [`FollowerLedger`] and
//! [`follow_registrar`] keep the replica and forward transactions through the narrow
//! [`LedgerNetwork`] trait, which [`MeshNetwork`] implements here over this protocol. A replica
//! appends only records that continue its chain and carry valid owner and registrar signatures
//! ([`EmbeddedLedger::append_replicated`]); anything else is refused, counted in
//! `proxima_naming_ledger_refused_total`, and the stream is dropped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use futures::stream::BoxStream;
use mesh::PeerId;
use naming::{
    EmbeddedLedger, FollowerLedger, Ledger, LedgerError, LedgerNetwork, Name, SyncMetrics,
    follow_registrar,
};
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
/// File (in the ledger directory) that keeps the registrar choice.
const REGISTRAR_FILE: &str = "registrar";

/// This node's part in the embedded ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This node keeps the log.
    Registrar,
    /// This node replicates the log of that peer.
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

/// A [`LedgerError`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct WireError {
    kind: String,
    name: Option<String>,
    records: Option<u64>,
    message: String,
}

impl From<&LedgerError> for WireError {
    fn from(e: &LedgerError) -> Self {
        let (kind, name, records) = match e {
            LedgerError::Taken(n) => ("taken", Some(n.to_string()), None),
            LedgerError::Expired(n) => ("expired", Some(n.to_string()), None),
            LedgerError::NotRegistered(n) => ("not_registered", Some(n.to_string()), None),
            LedgerError::NotOwner(n) => ("not_owner", Some(n.to_string()), None),
            LedgerError::InvalidTerm(_) => ("invalid_term", None, None),
            LedgerError::InvalidZoneKey => ("invalid_zone_key", None, None),
            LedgerError::OutOfStep(n) => ("out_of_step", None, Some(*n)),
            _ => ("refused", None, None),
        };
        Self {
            kind: kind.into(),
            name,
            records,
            message: e.to_string(),
        }
    }
}

impl WireError {
    fn into_error(self) -> LedgerError {
        let name = self.name.as_deref().and_then(|n| Name::parse(n).ok());
        match (self.kind.as_str(), name, self.records) {
            ("taken", Some(n), _) => LedgerError::Taken(n),
            ("expired", Some(n), _) => LedgerError::Expired(n),
            ("not_registered", Some(n), _) => LedgerError::NotRegistered(n),
            ("not_owner", Some(n), _) => LedgerError::NotOwner(n),
            ("invalid_term", _, _) => LedgerError::InvalidTerm(self.message),
            ("invalid_zone_key", _, _) => LedgerError::InvalidZoneKey,
            ("out_of_step", _, Some(n)) => LedgerError::OutOfStep(n),
            _ => LedgerError::Refused(format!("registrar: {}", self.message)),
        }
    }
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

/// Serves [`LEDGER_ALPN`] for `ledger`, whose registrar is `registrar`.
pub fn serve(mesh: &mesh::Mesh, ledger: EmbeddedLedger, registrar: PeerId) -> Result<()> {
    let per_peer = Arc::new(parking_lot::Mutex::new(
        naming::ratelimit::TokenBuckets::new(PEER_BURST, PEER_PER_SEC),
    ));
    mesh.dataplane()
        .serve_streams(LEDGER_ALPN, move |peer, send, recv| {
            let ledger = ledger.clone();
            let per_peer = per_peer.clone();
            Box::pin(async move {
                if let Err(e) = handle(ledger, registrar, peer, &per_peer, send, recv).await {
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
                Ok(tx) => match ledger.submit_signed(&tx).await {
                    Ok(_) => Reply::Submitted {
                        records: ledger.len(),
                    },
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

/// The way to the registrar over the mesh: [`LedgerNetwork`] on [`LEDGER_ALPN`].
pub struct MeshNetwork {
    mesh: mesh::Mesh,
    registrar: PeerId,
}

impl MeshNetwork {
    /// Reaches `registrar` through `mesh`.
    pub fn new(mesh: mesh::Mesh, registrar: PeerId) -> Self {
        Self { mesh, registrar }
    }
}

#[async_trait]
impl LedgerNetwork for MeshNetwork {
    async fn submit(&self, tx: &[u8]) -> Result<u64, LedgerError> {
        let exchange = async {
            let (mut send, mut recv) = request(
                &self.mesh,
                self.registrar,
                &Request::Submit {
                    tx: hex::encode(tx),
                },
            )
            .await?;
            let _ = send.finish();
            read_reply(&mut recv).await
        };
        match exchange
            .await
            .map_err(|e| LedgerError::Unreachable(e.to_string()))?
        {
            Reply::Submitted { records } => Ok(records),
            Reply::Failed { error } => Err(error.into_error()),
            other => Err(LedgerError::Refused(format!("unexpected reply {other:?}"))),
        }
    }

    async fn follow(
        &self,
        from: u64,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, LedgerError>>, LedgerError> {
        let (send, recv) = request(&self.mesh, self.registrar, &Request::Follow { from })
            .await
            .map_err(|e| LedgerError::Unreachable(e.to_string()))?;
        // The send half stays open as long as the stream is read; the stream ends after its
        // first error.
        let batches = futures::stream::unfold(Some((send, recv)), |state| async move {
            let (send, mut recv) = state?;
            let batch = match read_reply(&mut recv).await {
                Ok(Reply::Frames { frames }) => hex::decode(frames)
                    .map_err(|_| LedgerError::Refused("frames are not hex".into())),
                Ok(other) => Err(LedgerError::Refused(format!("unexpected reply {other:?}"))),
                Err(e) => Err(LedgerError::Unreachable(e.to_string())),
            };
            let next = batch.is_ok().then_some((send, recv));
            Some((batch, next))
        });
        Ok(Box::pin(batches))
    }

    fn registrar(&self) -> String {
        self.registrar.to_string()
    }

    fn registrar_admin(&self) -> String {
        self.mesh
            .members()
            .into_iter()
            .find(|m| m.id.peer == self.registrar)
            .and_then(|m| m.meta.and_then(|meta| meta.services.get("admin").cloned()))
            .map_or_else(|| "unknown".into(), |a| format!("http://{a}"))
    }
}

/// Opens the embedded ledger for `role` under `ledger_dir` and wires replication: the
/// registrar serves its log; a follower opens its replica (`ledger_dir/follow-<peer>`),
/// serves it too (for `hello`), and follows the registrar.
#[allow(clippy::too_many_arguments)]
pub fn open(
    role: Role,
    ledger_dir: &Path,
    identity: &crate::identity::NodeIdentity,
    config: naming::EmbeddedConfig,
    clock: Arc<dyn naming::Clock>,
    mesh: &mesh::Mesh,
    metrics: &SyncMetrics,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(Arc<dyn Ledger>, EmbeddedLedger)> {
    match role {
        Role::Registrar => {
            let (ledger, report) =
                EmbeddedLedger::open(ledger_dir, identity.signing_key().clone(), config, clock)
                    .context("cannot open the embedded ledger")?;
            if report.dropped_bytes > 0 {
                tracing::warn!(
                    dropped = report.dropped_bytes,
                    "embedded ledger recovered from a torn write"
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
            serve(mesh, ledger.clone(), mesh.peer_id())?;
            tracing::info!("this node is the embedded ledger's registrar");
            Ok((Arc::new(ledger.clone()), ledger))
        }
        Role::Follower(registrar) => {
            let key = peer_ed25519_key(&registrar)
                .with_context(|| format!("registrar {registrar} has no Ed25519 key"))?;
            let dir = ledger_dir.join(format!("follow-{registrar}"));
            let (ledger, report) = EmbeddedLedger::open_follower(&dir, key, config, clock)
                .context("cannot open the ledger replica")?;
            if report.dropped_bytes > 0 {
                tracing::warn!(
                    dropped = report.dropped_bytes,
                    "ledger replica had records that do not verify; dropped them"
                );
            }
            metrics.records.set(ledger.len() as i64);
            serve(mesh, ledger.clone(), registrar)?;
            let network: Arc<dyn LedgerNetwork> =
                Arc::new(MeshNetwork::new(mesh.clone(), registrar));
            tracker.spawn(follow_registrar(
                network.clone(),
                ledger.clone(),
                metrics.clone(),
                shutdown.clone().cancelled_owned(),
            ));
            tracing::info!(%registrar, records = ledger.len(), "following the embedded ledger's registrar");
            Ok((
                Arc::new(FollowerLedger::new(
                    ledger.clone(),
                    network,
                    metrics.clone(),
                )),
                ledger,
            ))
        }
    }
}
