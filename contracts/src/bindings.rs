//! `alloy` bindings generated from the committed artifact (ABI + creation bytecode).

#![allow(missing_docs, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    NameRegistry,
    "artifacts/NameRegistry.json"
);
