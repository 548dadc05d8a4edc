//! Wiring of the Redis-compatible cache into the node: `[cache]` configuration, the real
//! address as service `redis`, metrics under `proxima_cache_*`, and the mesh the keyspace is
//! spread over (slots, replication and proxying live in `cache::cluster`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, ServiceInfo};
use crate::config::Config;

/// How long a node that has bootstrap peers waits to see another cache member before it
/// computes its first slot map (so that it pulls its ranges instead of serving them empty).
const JOIN_WAIT: Duration = Duration::from_secs(5);
/// How long the member list must stay the same before the first map is computed.
const STABLE_FOR: Duration = Duration::from_millis(500);

/// Starts the cache server on `config.redis_listen`, spread over `mesh`.
pub async fn start(
    config: &Config,
    mesh: &mesh::Mesh,
    services: &mut BTreeMap<String, ServiceInfo>,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<cache::CacheHandle> {
    if !config.bootstrap.is_empty() {
        // Our own `redis` address is advertised only after this returns, so no member routes
        // to this node before its first map exists.
        // Wait until another cache member is visible and the member list has been stable for
        // a moment (the join's member feed arrives in pieces).
        let cache_members = || -> Vec<String> {
            let mut v: Vec<String> = mesh
                .members()
                .iter()
                .filter(|m| {
                    !m.is_self
                        && m.state == mesh::MemberState::Alive
                        && m.has_role(mesh::trust::ROLE_CACHE)
                        && m.meta
                            .as_ref()
                            .is_some_and(|x| x.services.contains_key("redis"))
                })
                .map(|m| m.id.peer.to_string())
                .collect();
            v.sort();
            v
        };
        let start = Instant::now();
        let mut last = cache_members();
        let mut stable_since = Instant::now();
        while start.elapsed() < JOIN_WAIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = cache_members();
            if now != last {
                last = now;
                stable_since = Instant::now();
            } else if !last.is_empty() && stable_since.elapsed() >= STABLE_FOR {
                break;
            }
        }
    }
    let handle = cache::start(
        &config.cache,
        config.redis_listen,
        cache::Deps {
            registry: registry.sub_registry_with_prefix("cache"),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            mesh: Some(mesh.clone()),
            join_wait: (!config.bootstrap.is_empty()).then_some(JOIN_WAIT),
        },
    )
    .await
    .with_context(|| {
        format!(
            "cannot start the cache on redis_listen {}",
            config.redis_listen
        )
    })?;
    services.insert(
        "redis".to_owned(),
        admin::service("redis", handle.local_addr()),
    );
    Ok(handle)
}
