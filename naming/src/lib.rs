//! Names and the trust they carry.
//!
//! Owns: validated ledger names, signed zones (a name's DNS records signed by its zone key), the
//! [`Ledger`] abstraction with the embedded, hash-chained ledger and its follower (a verified
//! replica that forwards transactions to the registrar), the persistent zone store that accepts a
//! zone only after checking signature, key and sequence against the ledger, the node's keystore,
//! and the naming service: the operations behind `proxima name ...` and `/api/names`.
//!
//! Must not: talk to the network (a follower reaches its registrar through the
//! [`LedgerNetwork`] trait, which the node implements over its mesh), know about DNS wire formats
//! beyond record data, or depend on any other Proxima crate. The node opens the parts (which
//! ledger, where the data lives, who the registrar is) and serves the admin routes. Every decoder
//! here bounds sizes before allocating and returns an error, never panics.
//!
//! The parts:
//! - [`Name`]: a validated, normalized domain name.
//! - [`zone`]: [`Zone`], [`Record`], [`RecordData`], [`SignedZone`] and its canonical encoding.
//! - [`Ledger`] (trait), [`LedgerEntry`], [`LedgerChange`], [`LedgerError`].
//! - [`EmbeddedLedger`]: the default ledger, a hash-chained log in the data directory.
//! - [`ZoneStore`]: the persistent store of accepted zones.
//! - [`follow`]: [`FollowerLedger`], [`follow_registrar`] and the [`LedgerNetwork`] they use.
//! - [`Keystore`]: the owner key and the zone keys, as private files in the data directory.
//! - [`NameService`]: register, renew, transfer, edit and sign zones; [`NameInfo`] and the other
//!   views the admin API shows.

pub mod conformance;
pub mod embedded;
pub mod follow;
pub mod keystore;
pub mod ledger;
pub mod name;
pub mod raft;
pub mod ratelimit;
pub mod service;
pub mod store;
pub mod zone;

pub use embedded::{Applied, EmbeddedConfig, EmbeddedLedger, Tx};
pub use follow::{FollowerLedger, LedgerNetwork, SyncMetrics, follow_registrar};
pub use keystore::Keystore;
pub use ledger::{
    ChangeKind, Clock, Ledger, LedgerChange, LedgerEntry, LedgerError, ManualClock, Owner,
    OwnerKey, SystemClock, check_registrable,
};
pub use name::{Name, NameError};
pub use service::{
    DEFAULT_TTL, ETH_KEY_ENV, NameInfo, NameService, NameServiceError, NameServiceParts,
    RecordView, ZoneView,
};
pub use store::{ZoneRejected, ZoneStore};
pub use zone::{DecodeError, Record, RecordData, SignedZone, Zone, ZoneError};

/// Re-exported so users of zones and ledgers need not depend on a matching `ed25519-dalek`.
pub use ed25519_dalek;
