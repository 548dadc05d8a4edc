//! Everything that decides where a request goes.
//!
//! Owns: the node identity's network use, the libp2p control plane (discovery, Kademlia, gossip),
//! the QUIC data-plane endpoint with ALPN-routed protocols and bounded frames, membership and
//! failure detection, network coordinates, and the directory that ranks candidate peers.
//!
//! Must not: know about names, DNS, blobs or cache keys: other crates hand it opaque keys, topics
//! and protocols. Depends on no other Proxima crate.
