//! Wiring of the DNS service into the node: the zone store as the source of authoritative
//! answers, steering of site names through the mesh ([`crate::steering`]), the real address in
//! `services`, metrics under `proxima_dns_*`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ServiceInfo};
use crate::config::Config;

/// Starts DNS on `config.dns_listen`, answering ledger names from `zones`.
pub async fn start(
    config: &Config,
    zones: Arc<dyn dns::ZoneSource>,
    mesh: &mesh::Mesh,
    services: &mut BTreeMap<String, ServiceInfo>,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<dns::DnsHandle> {
    let http_ip = Some(config.http_listen.ip()).filter(|ip| !ip.is_unspecified());
    let steering = Arc::new(crate::steering::MeshSteering::start(
        mesh.clone(),
        http_ip,
        shutdown.clone(),
        tracker,
    ));
    steering.register_metrics(registry.sub_registry_with_prefix("steering"));
    let dns_config = dns::DnsConfig {
        tlds: config.naming.tlds.clone(),
        ..config.dns.clone()
    };
    let handle = dns::start(
        &dns_config,
        config.dns_listen,
        dns::Deps {
            zones,
            steering,
            registry,
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        },
    )
    .await
    .with_context(|| format!("cannot start DNS on dns_listen {}", config.dns_listen))?;
    services.insert("dns".to_owned(), api::service("dns", handle.local_addr()));
    Ok(handle)
}
