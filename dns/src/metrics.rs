//! DNS metrics, registered under the `dns` prefix of the node's registry.
//!
//! - `dns_responses_total{source, rcode}`: responses sent, by where the answer came from
//!   (`authoritative`: the zone store, including fast-path hits; `forwarded`: an upstream
//!   answered just now; `cache`: the forwarding cache) and by response code.
//! - `dns_fast_path_hits_total`: authoritative answers served from ready wire-format responses.
//! - `dns_rate_limited_total`: authoritative responses dropped or slipped (TC) by rate limiting.
//! - `dns_upstream_failures_total`: upstream attempts that timed out or failed.
//! - `dns_dropped_total`: packets dropped unanswered (not a query, unparseable, queue full).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The zone store (signed zones).
    Authoritative,
    /// An upstream resolver, just now.
    Forwarded,
    /// The forwarding cache.
    Cache,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResponseLabels {
    source: &'static str,
    rcode: &'static str,
}

const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "OTHER",
];

/// The DNS service's counters. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// One counter per (source, rcode), resolved once so the hot path only does an atomic add.
    responses: [[Counter; 7]; 3],
    /// Fast-path hits.
    pub fast_path_hits: Counter,
    /// Responses suppressed or slipped by rate limiting.
    pub rate_limited: Counter,
    /// Failed upstream attempts.
    pub upstream_failures: Counter,
    /// Packets dropped without an answer.
    pub dropped: Counter,
}

impl Metrics {
    /// Creates the counters and registers them into `registry` (already prefixed by the caller
    /// or not: this adds `dns`).
    pub fn register(registry: &mut Registry) -> Self {
        let reg = registry.sub_registry_with_prefix("dns");
        let family = Family::<ResponseLabels, Counter>::default();
        reg.register(
            "responses",
            "DNS responses sent, by answer source and response code",
            family.clone(),
        );
        let sources = ["authoritative", "forwarded", "cache"];
        let responses = sources.map(|source| {
            RCODES.map(|rcode| {
                family
                    .get_or_create(&ResponseLabels { source, rcode })
                    .clone()
            })
        });
        let m = Self {
            responses,
            ..Self::default()
        };
        reg.register(
            "fast_path_hits",
            "Authoritative answers served from ready wire-format responses",
            m.fast_path_hits.clone(),
        );
        reg.register(
            "rate_limited",
            "Authoritative responses dropped or truncated by response rate limiting",
            m.rate_limited.clone(),
        );
        reg.register(
            "upstream_failures",
            "Forwarding attempts to an upstream that failed or timed out",
            m.upstream_failures.clone(),
        );
        reg.register(
            "dropped",
            "Packets dropped without an answer (responses, garbage, full queues)",
            m.dropped.clone(),
        );
        m
    }

    /// Counts one response with rcode `rcode` (the low 4 bits of the header's byte 3 suffice
    /// for the labelled ones).
    pub fn response(&self, source: Source, rcode: u8) {
        let idx = match rcode {
            0..=5 => usize::from(rcode),
            _ => 6,
        };
        let s = match source {
            Source::Authoritative => 0,
            Source::Forwarded => 1,
            Source::Cache => 2,
        };
        self.responses[s][idx].inc();
    }

    /// Counts a response given as wire bytes.
    pub fn response_wire(&self, source: Source, wire: &[u8]) {
        self.response(source, wire.get(3).map_or(6, |b| b & 0x0F));
    }
}
