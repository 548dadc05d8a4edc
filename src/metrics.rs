//! The node's metrics registry. Each service registers its own metrics under its prefix during
//! start; the admin endpoint encodes the whole registry as Prometheus text.

use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The node-level metrics (everything not owned by one service).
#[derive(Debug, Clone, Default)]
pub struct NodeMetrics {
    /// Seconds since the node started; updated on each scrape.
    pub uptime_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// Builds the registry with the `proxima_` prefix and the node-level metrics registered.
pub fn new_registry(peer_id: &str) -> (Registry, NodeMetrics) {
    let mut registry = Registry::with_prefix("proxima");
    let metrics = NodeMetrics::default();
    registry.register(
        "uptime_seconds",
        "Seconds since this node started",
        metrics.uptime_seconds.clone(),
    );
    registry.register(
        "build",
        "Version and identity of this node",
        Info::new(vec![
            ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            ("peer_id".to_owned(), peer_id.to_owned()),
        ]),
    );
    (registry, metrics)
}

/// Encodes the registry as Prometheus text exposition format.
pub fn render(registry: &Registry, metrics: &NodeMetrics, started: Instant) -> String {
    metrics.uptime_seconds.set(started.elapsed().as_secs_f64());
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
        out.push_str("# metrics encoding failed\n");
    }
    out
}
