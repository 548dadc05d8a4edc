//! The Ethereum side of naming.
//!
//! Owns: the `NameRegistry` Solidity contract, its compiled artifact (ABI and bytecode, rebuilt by
//! a committed script), the `alloy` bindings, deployment, and `EthLedger`, the implementation of
//! `naming`'s ledger trait over any Ethereum JSON-RPC endpoint.
//!
//! Must not: hold zone data or private zone keys, or depend on any Proxima crate but `naming`.
//!
//! Layout: `solidity/NameRegistry.sol` is the source; `artifacts/NameRegistry.json` its compiled
//! ABI and bytecode (`scripts/build-artifact` rebuilds it with the npm `solc`, and the
//! `artifact_is_fresh` test fails when it is stale); [`bindings`] are generated from the artifact
//! by `alloy`'s `sol!`; [`EthLedger`] implements [`naming::Ledger`].

pub mod bindings;
mod eth;

pub use eth::{EthConfig, EthLedger, deploy, eth_address};

/// The committed artifact (JSON: `abi`, `bytecode`, `sourceSha256`, `compiler`).
pub const ARTIFACT_JSON: &str = include_str!("../artifacts/NameRegistry.json");
/// The contract source the artifact was compiled from.
pub const SOURCE: &str = include_str!("../solidity/NameRegistry.sol");
pub use alloy::primitives::{Address, U256};
