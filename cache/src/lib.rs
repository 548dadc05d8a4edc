//! The Redis-compatible distributed cache.
//!
//! Owns: the RESP2/RESP3 server, the command layer with Redis semantics, the local byte-weighted
//! store, the slot map, and replication and forwarding between nodes.
//!
//! Must not: depend on where a key lives in the command layer (routing sits underneath it), or
//! allocate from a request size it has not bounded.
