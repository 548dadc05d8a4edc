//! The DNS face of a node.
//!
//! Owns: the authoritative server for the ledger TLDs (answers from verified signed zones only),
//! steering answers for site names, the forwarding resolver for every other name (local clients
//! only, never an open resolver), and the fast path for common queries.
//!
//! Must not: decide trust (that is `naming`'s zone store) or pick replicas on its own (that is the
//! `mesh` directory).
//!
//! Layout: [`wire`] (fast-path parsing and patching, pure), [`authority`] (authoritative answers,
//! pure), [`forward`] (upstreams and their cache), [`engine`] (the request path), [`server`]
//! (sockets: UDP threads and TCP through hickory-server), [`zones`] (the traits this crate is fed
//! through).

pub mod authority;
pub mod config;
pub mod engine;
pub mod forward;
pub mod metrics;
pub mod ready;
pub mod rrl;
pub mod server;
pub mod store_source;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod wire;
pub mod zones;

pub use config::DnsConfig;
pub use server::{Deps, DnsHandle, StartError, start};
pub use store_source::StoreZones;
pub use zones::{LocalSteering, MemoryZones, SiteSteering, ZoneSource, ZoneView};
