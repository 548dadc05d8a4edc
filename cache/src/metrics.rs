//! Prometheus metrics of the cache server, registered under the `cache_` prefix of the
//! registry the node passes in.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why something a peer sent was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `future_version`, `bad_state`, `bad_publish`, `bad_session`.
    pub reason: &'static str,
}

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
    /// What peers sent that was refused, by reason: a key state versioned too far ahead
    /// (`future_version`), a key state carrying other commands than the ones that build its
    /// own key (`bad_state`), a published record that is not `PUBLISH`/`SPUBLISH`
    /// (`bad_publish`), a malformed session hello (`bad_session`).
    pub peer_refused_total: Family<ReasonLabel, Counter>,
    /// Client connections closed because they looked like HTTP (`POST`, `Host:`).
    pub http_closed_total: Counter,
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
        registry.register(
            "peer_refused",
            "Messages from cache peers refused, by reason (future_version, bad_state, bad_publish, bad_session)",
            self.peer_refused_total.clone(),
        );
        registry.register(
            "http_closed",
            "Client connections closed because they sent POST or Host: (HTTP to the Redis port)",
            self.http_closed_total.clone(),
        );
    }

    /// Counts one refusal of what a peer sent.
    pub fn peer_refused(&self, reason: &'static str) {
        self.peer_refused_total
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// How many refusals of `reason` were counted.
    pub fn peer_refused_count(&self, reason: &'static str) -> u64 {
        self.peer_refused_total
            .get_or_create(&ReasonLabel { reason })
            .get()
    }
}
