//! Wiring of the mesh into the node: builds the [`mesh::MeshConfig`] from the node's
//! configuration, starts it, advertises the node's service addresses, and says goodbye to the
//! members on graceful shutdown (a kill drops the runtime without one, as a crash would).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::ServiceInfo;
use crate::config::Config;
use crate::identity::NodeIdentity;

/// Time a graceful leave may take (within the node's shutdown grace).
const LEAVE_DEADLINE: Duration = Duration::from_millis(500);

/// The service addresses a node advertises to members: every service's real listen address.
pub fn advertised(services: &BTreeMap<String, ServiceInfo>) -> BTreeMap<String, String> {
    services
        .iter()
        .map(|(name, s)| (name.clone(), s.listen.clone()))
        .collect()
}

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
    let parse = |key: &str, list: &[String]| -> Result<Vec<mesh::Multiaddr>> {
        list.iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("{key}: {a:?} is not a multiaddr"))
            })
            .collect()
    };
    let mut mc = mesh::MeshConfig::local();
    mc.quic_listen = config.quic_listen;
    mc.advertise_ip = config.advertise_addr;
    if let Some(path) = &config.mesh.network_key_file {
        let key = crate::config::read_network_key(path)
            .map_err(|e| anyhow::anyhow!("mesh.network_key_file {}: {e}", path.display()))?;
        mc.network_key = Some(key);
        tracing::info!("private network: peers without the network key are refused");
    }
    mc.control.listen = parse("p2p_listen", &config.p2p_listen)?;
    mc.control.bootstrap = parse("bootstrap", &config.bootstrap)?;
    mc.services = advertised(services);
    // Zone records pushed to us must decode and carry a valid signature.
    mc.control.validator = Some(crate::names::spread::dht_validator());
    let work_bits = config.mesh.identity_work_bits;
    if let Some(w) = wan {
        mc.wan = Some(w.clone());
        mc.membership = mesh::MembershipConfig::wan();
    }
    mc.membership.identity_work_bits = work_bits;
    let keypair = mesh::keypair_from_seed(identity.signing_key().to_bytes());
    let m = mesh::Mesh::start(keypair, mc, registry.sub_registry_with_prefix("mesh"))
        .await
        .context("cannot start the mesh")?;
    services.insert(
        "quic".into(),
        crate::admin::service("quic (data plane)", m.quic_addr()),
    );
    // The libp2p address members dial: one on the advertised IP (a listener on 0.0.0.0 is
    // reported once per interface, loopback first, and maybe not every one yet: the
    // advertised IP is then put in, since a wildcard listener answers on it).
    let mc_listen_unspecified: Vec<mesh::Multiaddr> = parse("p2p_listen", &config.p2p_listen)?
        .into_iter()
        .filter(|a| mesh::multiaddr_ip(a).is_some_and(|i| i.is_unspecified()))
        .collect();
    let p2p_addrs = m.p2p_addrs().await;
    let ip = m.quic_addr().ip();
    let p2p = p2p_addrs
        .iter()
        .find(|a| mesh::multiaddr_ip(a) == Some(ip))
        .or_else(|| {
            p2p_addrs
                .iter()
                .find(|a| mesh::multiaddr_ip(a).is_some_and(|i| !i.is_unspecified()))
        })
        .or(p2p_addrs.first())
        .cloned()
        .map(|a| on_advertised_ip(a, ip, &mc_listen_unspecified));
    if let Some(p2p) = p2p {
        services.insert(
            "p2p".into(),
            ServiceInfo {
                protocol: "libp2p".into(),
                listen: p2p.to_string(),
            },
        );
    }
    let leaving = m.clone();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        stop.cancelled().await;
        leaving.leave(LEAVE_DEADLINE).await;
    });
    Ok(m)
}

/// `addr` with its IP replaced by `ip` when this node listens on a wildcard address and `addr`
/// is on another IP (loopback, typically) than the one members reach it at.
fn on_advertised_ip(
    addr: mesh::Multiaddr,
    ip: std::net::IpAddr,
    wildcard_listens: &[mesh::Multiaddr],
) -> mesh::Multiaddr {
    use mesh::multiaddr::Protocol;
    if wildcard_listens.is_empty()
        || ip.is_unspecified()
        || ip.is_loopback()
        || mesh::multiaddr_ip(&addr) == Some(ip)
    {
        return addr;
    }
    addr.iter()
        .map(|p| match (p, ip) {
            (Protocol::Ip4(_) | Protocol::Ip6(_), std::net::IpAddr::V4(v4)) => Protocol::Ip4(v4),
            (Protocol::Ip4(_) | Protocol::Ip6(_), std::net::IpAddr::V6(v6)) => Protocol::Ip6(v6),
            (other, _) => other,
        })
        .collect()
}
