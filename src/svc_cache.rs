//! Wiring of the Redis-compatible cache into the node: `[cache]` configuration, the real
//! address as service `redis`, metrics under `proxima_cache_*`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, ServiceInfo};
use crate::config::Config;

/// Starts the cache server on `config.redis_listen`.
pub async fn start(
    config: &Config,
    _mesh: &mesh::Mesh,
    services: &mut BTreeMap<String, ServiceInfo>,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<cache::CacheHandle> {
    let handle = cache::start(
        &config.cache,
        config.redis_listen,
        cache::Deps {
            registry: registry.sub_registry_with_prefix("cache"),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
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
