//! The Ethereum side of naming.
//!
//! Owns: the `NameRegistry` Solidity contract, its compiled artifact (ABI and bytecode, rebuilt by
//! a committed script), the `alloy` bindings, deployment, and `EthLedger`, the implementation of
//! `naming`'s ledger trait over any Ethereum JSON-RPC endpoint.
//!
//! Must not: hold zone data or private zone keys, or depend on any Proxima crate but `naming`.
