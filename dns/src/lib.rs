//! The DNS face of a node.
//!
//! Owns: the authoritative server for the ledger TLDs (answers from verified signed zones only),
//! steering answers for site names, the forwarding resolver for every other name (local clients
//! only, never an open resolver), and the fast path for common queries.
//!
//! Must not: decide trust (that is `naming`'s zone store) or pick replicas on its own (that is the
//! `mesh` directory).
