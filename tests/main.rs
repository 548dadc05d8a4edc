//! The root's whole-system tests, one module per area, in one test binary: each binary links
//! the whole node, and one link instead of one per file is most of the root's test build
//! (measured in ARCHITECTURE.md, *Tests*). Run one area with `cargo nextest run -E 'test(/^browser::/)'`
//! or `cargo test --test main browser::`.

mod common;

mod admin_trust;
mod browser;
mod cache_apps;
mod cache_bad_input;
mod cache_cluster;
mod cache_cluster_fault;
mod cache_partition;
mod cache_redis_cli;
mod cache_redis_py;
mod cache_rejoin;
mod cache_rust_client;
mod cache_trust;
mod cache_wan;
mod cdn_site;
mod cdn_transfer;
mod cdn_wan;
mod dns_authoritative;
mod dns_forged_zones;
mod dns_forward;
mod dns_steering;
mod foundation;
mod mesh_cluster;
mod mesh_restart;
mod multihost;
mod naming_cli;
mod naming_mesh;
mod registrar_group;
mod scenarios;
mod system_install;
mod trust;
