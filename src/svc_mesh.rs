//! Wiring of the mesh into the node: builds the [`mesh::MeshConfig`] from the node's
//! configuration, starts it, advertises the node's service addresses, and says goodbye to the
//! members on graceful shutdown (a kill drops the runtime without one, as a crash would).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ServiceInfo;
use crate::config::Config;
use crate::identity::NodeIdentity;

/// Time a graceful leave may take (within the node's shutdown grace).
const LEAVE_DEADLINE: Duration = Duration::from_millis(500);

/// Starts the mesh; registers `quic` and `p2p` in `services`.
pub async fn start(
    config: &Config,
    identity: &NodeIdentity,
    wan: Option<&mesh::WanLink>,
    services: &mut BTreeMap<String, ServiceInfo>,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<mesh::Mesh> {
    let mut mc = config.mesh_config()?;
    mc.services = crate::api::advertised(services);
    if let Some(w) = wan {
        let work_bits = mc.membership.identity_work_bits;
        mc.wan = Some(w.clone());
        mc.membership = mesh::MembershipConfig {
            identity_work_bits: work_bits,
            ..mesh::MembershipConfig::wan()
        };
    }
    let listens = mc.control.listen.clone();
    let keypair = mesh::keypair_from_seed(identity.signing_key().to_bytes());
    let m = mesh::Mesh::start(keypair, mc, registry.sub_registry_with_prefix("mesh"))
        .await
        .context("cannot start the mesh")?;
    let quic = crate::api::service("quic (data plane)", m.quic_addr());
    services.insert("quic".into(), quic);
    if let Some(p2p) = m.dialable_p2p_addr(&listens).await {
        services.insert("p2p".into(), crate::api::service("libp2p", p2p));
    }
    let leaving = m.clone();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        stop.cancelled().await;
        leaving.leave(LEAVE_DEADLINE).await;
    });
    Ok(m)
}
