//! Prometheus metrics of the cache server, registered under the `cache_` prefix of the
//! registry the node passes in.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The cache's metrics. Keyspace figures are refreshed once a second by the housekeeping task.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Commands run.
    pub commands_total: Counter,
    /// Connections accepted.
    pub connections_total: Counter,
    /// Connections open now.
    pub connected_clients: Gauge,
    /// Keys in the keyspace.
    pub keys: Gauge,
    /// Bytes accounted to keys and values.
    pub used_memory_bytes: Gauge,
    /// Keys removed because their TTL passed.
    pub expired_keys_total: Counter,
    /// Keys removed to stay under `maxmemory`.
    pub evicted_keys_total: Counter,
    /// Reads that found their key.
    pub keyspace_hits_total: Counter,
    /// Reads that did not.
    pub keyspace_misses_total: Counter,
}

impl Metrics {
    /// Registers every metric into `registry` (the caller picks the prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("commands", "Commands run", self.commands_total.clone());
        registry.register(
            "connections",
            "Connections accepted",
            self.connections_total.clone(),
        );
        registry.register(
            "connected_clients",
            "Connections open now",
            self.connected_clients.clone(),
        );
        registry.register("keys", "Keys in the keyspace", self.keys.clone());
        registry.register(
            "used_memory_bytes",
            "Bytes accounted to keys and values",
            self.used_memory_bytes.clone(),
        );
        registry.register(
            "expired_keys",
            "Keys removed because their TTL passed",
            self.expired_keys_total.clone(),
        );
        registry.register(
            "evicted_keys",
            "Keys removed to stay under maxmemory",
            self.evicted_keys_total.clone(),
        );
        registry.register(
            "keyspace_hits",
            "Reads that found their key",
            self.keyspace_hits_total.clone(),
        );
        registry.register(
            "keyspace_misses",
            "Reads that did not find their key",
            self.keyspace_misses_total.clone(),
        );
    }
}
