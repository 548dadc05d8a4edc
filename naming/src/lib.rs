//! Names and the trust they carry.
//!
//! Owns: validated ledger names, signed zones (a name's DNS records signed by its zone key), the
//! [`Ledger`] abstraction with the embedded, hash-chained ledger, and the persistent zone
//! store that accepts a zone only after checking signature, key and sequence against the ledger.
//!
//! Must not: talk to the network, know about DNS wire formats beyond record data, or depend on any
//! other Proxima crate. Every decoder here bounds sizes before allocating and returns an error,
//! never panics.
//!
//! The parts:
//! - [`Name`]: a validated, normalized domain name.
//! - [`zone`]: [`Zone`], [`Record`], [`RecordData`], [`SignedZone`] and its canonical encoding.
//! - [`Ledger`] (trait), [`LedgerEntry`], [`LedgerChange`], [`LedgerError`].
//! - [`EmbeddedLedger`]: the default ledger, a hash-chained log in the data directory.
//! - [`ZoneStore`]: the persistent store of accepted zones.

pub mod conformance;
pub mod embedded;
pub mod ledger;
pub mod name;
pub mod raft;
pub mod ratelimit;
pub mod store;
pub mod zone;

pub use embedded::{Applied, EmbeddedConfig, EmbeddedLedger, Tx};
pub use ledger::{
    ChangeKind, Clock, Ledger, LedgerChange, LedgerEntry, LedgerError, ManualClock, Owner,
    OwnerKey, SystemClock, check_registrable,
};
pub use name::{Name, NameError};
pub use store::{ZoneRejected, ZoneStore};
pub use zone::{DecodeError, Record, RecordData, SignedZone, Zone, ZoneError};

/// Re-exported so users of zones and ledgers need not depend on a matching `ed25519-dalek`.
pub use ed25519_dalek;
