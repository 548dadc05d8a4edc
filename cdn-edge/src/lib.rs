//! Content-addressed delivery.
//!
//! Owns: the BLAKE3 blob store with verified range streaming, site manifests, the publisher, the
//! verified QUIC transfer between nodes, and the HTTP gateway that serves sites to browsers.
//!
//! Must not: serve a byte it has not verified against its hash, or decide on its own which peer to
//! fetch from (the `mesh` directory ranks providers). The gateway knows nothing of names or of
//! the network: it asks a [`gateway::SiteResolver`] for a host's manifest hash and a
//! [`store::BlobSource`] for blobs.

pub mod config;
pub mod fetch;
pub mod gateway;
pub mod hash;
pub mod manifest;
pub mod publish;
pub mod service;
pub mod store;
pub mod transfer;

pub use config::CdnConfig;
pub use hash::Hash;
pub use service::{CdnHandle, Deps, StartError, start};
