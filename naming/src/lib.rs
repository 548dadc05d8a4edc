//! Names and the trust they carry.
//!
//! Owns: validated ledger names, signed zones (a name's DNS records signed by its zone key), the
//! [`Ledger`](crate) abstraction with the embedded, hash-chained ledger, and the persistent zone
//! store that accepts a zone only after checking signature, key and sequence against the ledger.
//!
//! Must not: talk to the network, know about DNS wire formats beyond record data, or depend on any
//! other Proxima crate. Every decoder here bounds sizes before allocating and returns an error,
//! never panics.
