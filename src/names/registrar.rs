//! The registrar group over the mesh: `proxima/registrar/1` on the QUIC data plane carries
//! [`naming::raft::GroupMessage`]s between members (Raft's messages, and additions or removals
//! forwarded to the leader).
//!
//! One JSON request frame per stream, one JSON reply frame, each at most [`MAX_MESSAGE`]. Only
//! members that hold the `registrar` role by a valid certificate may open such a stream (an
//! uncertified peer counts for no majority and cannot speak for the group); every refusal is
//! counted in `proxima_naming_group_refused_total`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use naming::raft::{GroupMessage, GroupReply, GroupRequest, GroupTransport, RegistrarGroup};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// ALPN of the registrar group's protocol.
pub const REGISTRAR_ALPN: &[u8] = b"proxima/registrar/1";
/// Largest request or reply frame: 64 log entries of at most 1 KiB (2 KiB in hex), or one
/// 256 KiB snapshot chunk (as a JSON byte list, up to 4 bytes a byte).
pub const MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// Sends group messages to members over the mesh.
pub struct MeshTransport {
    mesh: mesh::Mesh,
}

impl MeshTransport {
    /// A transport over `mesh`.
    pub fn new(mesh: mesh::Mesh) -> Self {
        Self { mesh }
    }

    async fn exchange(&self, to: [u8; 32], message: &GroupMessage) -> Result<GroupReply> {
        let peer = mesh::peer_from_ed25519(&to).context("not an Ed25519 key")?;
        let (mut send, mut recv) = self.mesh.open_bi(peer, REGISTRAR_ALPN).await?;
        mesh::frame::write(&mut send, &serde_json::to_vec(message)?).await?;
        let _ = send.finish();
        let bytes = mesh::frame::FrameDecoder::new(MAX_MESSAGE)
            .read(&mut recv)
            .await?
            .context("no reply")?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

#[async_trait]
impl GroupTransport for MeshTransport {
    async fn call(
        &self,
        to: [u8; 32],
        message: GroupMessage,
        timeout: Duration,
    ) -> Result<GroupReply, String> {
        match tokio::time::timeout(timeout, self.exchange(to, &message)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("no reply within {} ms", timeout.as_millis())),
        }
    }
}

/// Serves [`REGISTRAR_ALPN`] for `group`.
pub fn serve(mesh: &mesh::Mesh, group: Arc<RegistrarGroup>, refused: Counter) -> Result<()> {
    let me = mesh.clone();
    mesh.dataplane()
        .serve_streams(REGISTRAR_ALPN, move |peer, send, recv| {
            let (group, mesh, refused) = (group.clone(), me.clone(), refused.clone());
            Box::pin(async move {
                if let Err(e) = handle(&mesh, &group, peer, send, recv, &refused).await {
                    tracing::debug!(%peer, error = %e, "registrar stream ended");
                }
            })
        })
        .context("cannot serve the registrar group protocol")
}

async fn handle(
    mesh: &mesh::Mesh,
    group: &RegistrarGroup,
    peer: mesh::PeerId,
    mut send: mesh::SendStream,
    mut recv: mesh::RecvStream,
    refused: &Counter,
) -> Result<()> {
    if !mesh.peer_has_role(&peer, mesh::trust::ROLE_REGISTRAR) {
        refused.inc();
        tracing::warn!(%peer, "registrar-group stream from a peer without the registrar role refused");
        return Ok(());
    }
    let from = mesh::peer_ed25519_key(&peer).context("peer id carries no Ed25519 key")?;
    let bytes = mesh::frame::FrameDecoder::new(MAX_MESSAGE)
        .read(&mut recv)
        .await?
        .context("no request")?;
    let message: GroupMessage = serde_json::from_slice(&bytes)?;
    // A member joins only if it holds the role (the leader checks too, not only the node the
    // operator asked).
    if let GroupRequest::Add { key } = &message.request
        && !mesh::peer_from_ed25519(key)
            .is_some_and(|p| mesh.peer_has_role(&p, mesh::trust::ROLE_REGISTRAR))
    {
        refused.inc();
        let reply = GroupReply::Failed(naming::raft::WireError::from(
            &naming::LedgerError::Refused(
                "that member holds no registrar certificate (or is not a live member)".into(),
            ),
        ));
        mesh::frame::write(&mut send, &serde_json::to_vec(&reply)?).await?;
        let _ = send.finish();
        return Ok(());
    }
    let reply = group.handle(from, message).await;
    mesh::frame::write(&mut send, &serde_json::to_vec(&reply)?).await?;
    let _ = send.finish();
    Ok(())
}

/// Metrics of this node's group member (`proxima_naming_group_*`).
#[derive(Clone, Default)]
pub struct GroupMetrics {
    /// Registrar-group streams refused (no registrar role, or an addition of an uncertified
    /// member).
    pub refused: Counter,
    /// 1 while this node leads the group.
    pub leader: Gauge,
    /// The Raft term this node is in.
    pub term: Gauge,
    /// Voting members this node knows.
    pub voters: Gauge,
    /// Leader changes this node has seen.
    pub leader_changes: Counter,
}

impl GroupMetrics {
    /// Registers in `registry` (the node's `naming` sub-registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "group_refused",
            "Registrar-group streams refused (peer without the registrar role)",
            self.refused.clone(),
        );
        registry.register(
            "group_leader",
            "1 while this node leads the registrar group",
            self.leader.clone(),
        );
        registry.register(
            "group_term",
            "Raft term of the registrar group",
            self.term.clone(),
        );
        registry.register(
            "group_voters",
            "Voting members of the registrar group",
            self.voters.clone(),
        );
        registry.register(
            "group_leader_changes",
            "Leader changes of the registrar group seen by this node",
            self.leader_changes.clone(),
        );
    }

    /// Keeps the gauges in step with `group` until `stop`.
    pub async fn follow(
        self,
        group: Arc<RegistrarGroup>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut watch = group.watch();
        let mut leader = None;
        loop {
            let s = group.status();
            if s.leader != leader {
                if s.leader.is_some() {
                    self.leader_changes.inc();
                    tracing::info!(leader = ?s.leader, term = s.term, "registrar group leader");
                }
                leader = s.leader.clone();
            }
            self.leader
                .set(i64::from(s.leader.as_deref() == Some(s.me.as_str())));
            self.term.set(i64::try_from(s.term).unwrap_or(i64::MAX));
            self.voters.set(s.voters.len() as i64);
            tokio::select! {
                _ = &mut stop => return,
                r = watch.changed() => if r.is_err() { return },
            }
        }
    }
}
