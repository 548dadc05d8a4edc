//! Configuration of the cache server (the `[cache]` section of the node's configuration).

use serde::{Deserialize, Serialize};

/// The `[cache]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Memory bound for keys and values, e.g. `"256mb"`, `"2gb"`; `"0"` = no bound (as Redis).
    /// When reached, keys are evicted by `maxmemory_policy`.
    pub maxmemory: String,
    /// `allkeys-lfu` (default), `volatile-lfu`, `noeviction`; the LRU/random/TTL names are
    /// accepted and evict by sampled LFU over the same keys.
    pub maxmemory_policy: String,
    /// Password clients must send with `AUTH` or `HELLO ... AUTH`; empty = none.
    pub requirepass: String,
    /// Allow listening beyond loopback without `requirepass` (refused by default).
    pub allow_remote_without_password: bool,
    /// Maximum number of client connections.
    pub maxclients: usize,
    /// Largest bulk string a client may send (`proto-max-bulk-len`), e.g. `"512mb"`.
    pub proto_max_bulk_len: String,
    /// Copies of every slot across the mesh (the primary included); 1 = no replicas.
    pub replication_factor: usize,
    /// Acknowledge a write only once every live replica of its slot has applied it
    /// (`--cache-sync-replication`). Off: replicas are updated asynchronously, in order, right
    /// after the reply, so a primary that dies may lose its last writes.
    pub sync_replication: bool,
    /// Seconds a deleted or expired key's tombstone is kept (cluster mode): a copy of the key
    /// that missed the delete (cut off, or restarted) and comes back within this time loses to
    /// it; one that comes back later brings the key back. Default 600: twice the longest
    /// `remove_down_after` (5 min on the WAN), beyond which the two sides of a cut forget
    /// each other anyway.
    pub tombstone_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            maxmemory: "0".into(),
            maxmemory_policy: "allkeys-lfu".into(),
            requirepass: String::new(),
            allow_remote_without_password: false,
            maxclients: 10_000,
            proto_max_bulk_len: "512mb".into(),
            replication_factor: 2,
            sync_replication: false,
            tombstone_ttl_secs: crate::db::DEFAULT_TOMBSTONE_TTL_MS / 1000,
        }
    }
}
