//! The Proxima node: command-line interface, configuration, and the wiring that starts every
//! service of one node in one process.
//!
//! Owns: the data directory and its lock, the node identity file, the admin HTTP endpoint
//! (`/health`, `/metrics`, the CLI's API), logging, and the in-process test harness.
//!
//! Must not: implement a service itself. DNS, CDN, cache, mesh and naming live in their own
//! crates; this crate only configures, starts, observes and stops them.

pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod datadir;
#[cfg(feature = "test-utils")]
pub mod harness;
pub mod identity;
pub mod metrics;
pub mod names;
pub mod node;
pub mod ports;
pub mod sites;
pub mod steering;
pub mod svc_dns;
pub mod svc_mesh;
pub mod telemetry;
