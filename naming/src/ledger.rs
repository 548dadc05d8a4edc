//! The ledger abstraction: who controls a name, with which zone key, until when.
//!
//! Two implementations pass one conformance suite: [`EmbeddedLedger`](crate::EmbeddedLedger)
//! here and `contracts::EthLedger`. A ledger registers only names directly below its TLD
//! (`blog.proxima`); a registered name's zone covers every name below it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::name::Name;

/// Who owns a name: an Ed25519 public key (embedded ledger) or a 20-byte Ethereum address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Owner {
    /// Ed25519 public key.
    Ed25519(#[serde(with = "hex32")] [u8; 32]),
    /// Ethereum account address.
    Eth(#[serde(with = "hex20")] [u8; 20]),
}

impl Owner {
    /// The raw bytes (32 or 20).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Ed25519(k) => k,
            Self::Eth(a) => a,
        }
    }

    /// Parses `0x` + 40 hex digits (Ethereum) or 64 hex digits (Ed25519).
    pub fn parse(s: &str) -> Result<Self, LedgerError> {
        let bad = || LedgerError::InvalidOwner(s.to_owned());
        let hex_part = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(hex_part).map_err(|_| bad())?;
        match bytes.len() {
            20 => Ok(Self::Eth(bytes.try_into().map_err(|_| bad())?)),
            32 => Ok(Self::Ed25519(bytes.try_into().map_err(|_| bad())?)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ed25519(k) => write!(f, "{}", hex::encode(k)),
            Self::Eth(a) => write!(f, "0x{}", hex::encode(a)),
        }
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owner({self})")
    }
}

/// The secret that authorizes ledger transactions for an owner.
#[derive(Clone)]
pub enum OwnerKey {
    /// Signs embedded-ledger transactions.
    Ed25519(SigningKey),
    /// An Ethereum account's secp256k1 secret key (the Ethereum ledger signs with it).
    Secp256k1([u8; 32]),
}

impl fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ed25519(k) => write!(f, "OwnerKey::Ed25519({})", hex::encode(k.verifying_key())),
            Self::Secp256k1(_) => f.write_str("OwnerKey::Secp256k1(<secret>)"),
        }
    }
}

/// What a ledger holds for one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The registered name.
    pub name: Name,
    /// Who controls it.
    pub owner: Owner,
    /// Ed25519 public key that must sign the name's zone.
    #[serde(with = "hex32")]
    pub zone_key: [u8; 32],
    /// Unix seconds after which the name is free again.
    pub expiry: u64,
}

impl LedgerEntry {
    /// True while `now` (unix seconds) is before the expiry.
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expiry
    }
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// First registration (or re-registration after expiry).
    Registered,
    /// Expiry extended.
    Renewed,
    /// New owner.
    Transferred,
    /// New zone key.
    ZoneKeySet,
}

/// One change of the ledger, with the entry as it is after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerChange {
    /// Position of this change; the next change has `cursor + 1`. Pass `cursor + 1` to
    /// [`Ledger::changes`] to resume after it.
    pub cursor: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The entry after the change.
    pub entry: LedgerEntry,
}

/// Why a ledger operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Someone holds the name and it has not expired.
    #[error("{0} is already registered")]
    Taken(Name),
    /// The name's registration has expired.
    #[error("{0} has expired")]
    Expired(Name),
    /// The name was never registered.
    #[error("{0} is not registered")]
    NotRegistered(Name),
    /// The caller does not own the name.
    #[error("not the owner of {0}")]
    NotOwner(Name),
    /// The name cannot be registered on this ledger.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// As given.
        name: String,
        /// Why.
        reason: String,
    },
    /// An owner string that is not a key or address.
    #[error("invalid owner {0:?}: expected 64 hex digits (Ed25519) or 0x + 40 (Ethereum)")]
    InvalidOwner(String),
    /// The owner key or owner kind does not fit this ledger.
    #[error("wrong key kind: {0}")]
    WrongKeyKind(&'static str),
    /// A zone key that is not a valid Ed25519 public key.
    #[error("invalid zone key")]
    InvalidZoneKey,
    /// Zero periods, or a term too long.
    #[error("invalid term: {0}")]
    InvalidTerm(String),
    /// The registration fee was not paid.
    #[error("insufficient fee: {0}")]
    InsufficientFee(String),
    /// The ledger cannot be reached (network, RPC endpoint down).
    #[error("ledger unreachable: {0}")]
    Unreachable(String),
    /// The ledger refused for another reason (e.g. an unexpected contract revert).
    #[error("ledger refused: {0}")]
    Refused(String),
    /// Local storage failed (I/O, corruption).
    #[error("ledger storage: {0}")]
    Storage(String),
    /// A transaction forwarded to the embedded ledger's registrar was built on an older copy
    /// of its log; the registrar holds this many records (catch up and retry).
    #[error("out of step with the registrar, which holds {0} records")]
    OutOfStep(u64),
    /// Sent to a registrar-group member that does not lead the group; `leader` is the key of
    /// the member it believes leads, if it knows one (send the transaction there).
    #[error("this registrar-group member is not the leader{}", .leader.map(|k| format!("; the leader is {}", hex::encode(k))).unwrap_or_default())]
    NotLeader {
        /// The leader's Ed25519 key, if known.
        leader: Option<[u8; 32]>,
    },
}

/// A ledger: the authority on who controls a name.
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Short name for logs and status (`embedded`, `eth`).
    fn kind(&self) -> &'static str;

    /// The TLD this ledger registers names under (`proxima`).
    fn tld(&self) -> &Name;

    /// Length of one registration period.
    fn term(&self) -> Duration;

    /// The ledger's clock (unix seconds): the embedded ledger's clock, or the latest block time.
    async fn now(&self) -> Result<u64, LedgerError>;

    /// The owner identity `key` stands for on this ledger.
    fn owner_of(&self, key: &OwnerKey) -> Result<Owner, LedgerError>;

    /// The entry of `name` as recorded, expired or not (`None` if never registered).
    async fn lookup(&self, name: &Name) -> Result<Option<LedgerEntry>, LedgerError>;

    /// Registers `name` for `periods` terms, first come first served: refused with
    /// [`LedgerError::Taken`] while someone else's registration is live.
    async fn register(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError>;

    /// Extends a live registration by `periods` terms (owner only).
    async fn renew(
        &self,
        name: &Name,
        owner: &OwnerKey,
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError>;

    /// Gives a live name to `new_owner` (owner only).
    async fn transfer(
        &self,
        name: &Name,
        owner: &OwnerKey,
        new_owner: Owner,
    ) -> Result<LedgerEntry, LedgerError>;

    /// Replaces the zone key of a live name (owner only). Zones signed by the old key are no
    /// longer accepted.
    async fn set_zone_key(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
    ) -> Result<LedgerEntry, LedgerError>;

    /// Every change from position `from` on, once each and in order, then new changes as they
    /// happen. The stream ends only on an error it cannot recover from.
    fn changes(&self, from: u64) -> BoxStream<'static, Result<LedgerChange, LedgerError>>;
}

/// Checks that `name` can be registered on a ledger for `tld`: exactly one plain LDH label
/// directly below the TLD.
pub fn check_registrable(name: &Name, tld: &Name) -> Result<(), LedgerError> {
    let invalid = |reason: String| LedgerError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.parent().as_ref() != Some(tld) {
        return Err(invalid(format!(
            "only names directly below .{tld} can be registered (like example.{tld})"
        )));
    }
    if !name.is_hostname() {
        return Err(invalid(
            "labels starting with '_' cannot be registered".into(),
        ));
    }
    Ok(())
}

/// A source of the current time in unix seconds; injectable so tests can move time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in unix seconds.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Starts at `now`.
    pub fn new(now: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now)))
    }
    /// Moves forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    /// Sets the time.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

macro_rules! hex_array {
    ($mod:ident, $n:literal) => {
        pub(crate) mod $mod {
            use serde::{Deserialize, Deserializer, Serializer};
            pub(crate) fn serialize<S: Serializer>(v: &[u8; $n], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(v))
            }
            pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<[u8; $n], D::Error> {
                let s = String::deserialize(d)?;
                let s = s.strip_prefix("0x").unwrap_or(&s);
                let v = hex::decode(s).map_err(serde::de::Error::custom)?;
                v.try_into()
                    .map_err(|_| serde::de::Error::custom(concat!("expected ", $n, " bytes")))
            }
        }
    };
}
hex_array!(hex32, 32);
hex_array!(hex20, 20);
