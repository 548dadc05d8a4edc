//! The embedded ledger: a hash-chained, append-only log of signed transactions.
//!
//! # Log format (`ledger.log`, version 1)
//!
//! The file is a sequence of frames: `u32 len | body (len bytes) | blake3(body) (32 bytes)`.
//! The BLAKE3 hash of a body is the record's hash; each body names the previous record's hash,
//! so the file is a hash chain. A body is:
//!
//! ```text
//! u8 version | u64 seq | [32] prev hash | u64 timestamp | u8 op | name | [32] owner key
//! | op fields | [64] owner signature | [32] registrar key | [64] registrar signature
//! ```
//!
//! The owner signs everything before its signature (so a transaction cannot be forged or moved);
//! the registrar (the node that sealed the record) signs everything before its own signature, so
//! a follower can check that a log came from registrars it trusts.
//!
//! # Who may seal (the registrar group)
//!
//! The log's trust is rooted in its *founder*: the key that sealed its first records (the node
//! that kept the ledger alone before it had a group). The set of keys that may seal is the
//! founder alone until a *group record* (op 5) names a new set; a group record is itself sealed
//! (and owner-signed) by a member of the set it replaces. So a replica that pins only the
//! founder's key can verify every record of a log sealed by a changing group, and nobody outside
//! the current set can add a record or a member.
//!
//! # Crash safety
//!
//! A transaction is acknowledged only after its frame is written and `fdatasync`ed. A crash can
//! therefore leave at most one partial frame at the end; on open, the first frame whose length,
//! checksum, sequence or chain link is wrong ends the log, and everything from it on is dropped
//! (truncated) with a warning. Acknowledged transactions are never behind a torn frame.
//!
//! # Index
//!
//! Opening replays the log into an in-memory index (name -> entry) and the change list that
//! [`Ledger::changes`] serves; both are updated under the same lock as the append.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::ledger::{
    ChangeKind, Clock, Ledger, LedgerChange, LedgerEntry, LedgerError, Owner, OwnerKey,
    SystemClock, check_registrable,
};
use crate::name::Name;

/// Log record format version.
pub const LOG_VERSION: u8 = 1;
/// File name of the log inside the ledger directory.
pub const LOG_FILE: &str = "ledger.log";
/// Largest frame body (bounds the read before allocating).
pub const MAX_FRAME: usize = 1024;
/// Default registration period.
pub const DEFAULT_TERM: Duration = Duration::from_secs(365 * 24 * 3600);
/// Most periods one transaction may buy.
pub const MAX_PERIODS: u32 = 100;

const OWNER_CONTEXT: &[u8] = b"proxima ledger tx\0";
const REGISTRAR_CONTEXT: &[u8] = b"proxima ledger record\0";

/// Settings of an embedded ledger.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// TLD the ledger registers under.
    pub tld: Name,
    /// Length of one registration period.
    pub term: Duration,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            tld: Name::parse("proxima").unwrap_or_else(|_| unreachable!("valid literal")),
            term: DEFAULT_TERM,
        }
    }
}

/// The embedded, hash-chained ledger. Cheap to clone (a handle).
#[derive(Clone)]
pub struct EmbeddedLedger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLedger")
            .field("path", &self.inner.path)
            .field("tld", &self.inner.config.tld)
            .finish()
    }
}

struct Inner {
    path: PathBuf,
    config: EmbeddedConfig,
    clock: Arc<dyn Clock>,
    role: Role,
    state: Mutex<State>,
    /// Transactions per owner key: a burst of [`OWNER_BURST`], then [`OWNER_PER_SEC`].
    owner_rate: Mutex<crate::ratelimit::TokenBuckets<[u8; 32]>>,
    /// Number of records so far (followers and forwarded transactions wait on it).
    count_tx: watch::Sender<u64>,
    /// Number of name changes so far; wakes change streams.
    changes_tx: watch::Sender<u64>,
}

/// Ledger transactions one owner may make at once.
pub const OWNER_BURST: u32 = 100;
/// Ledger transactions one owner may make per second after its burst.
pub const OWNER_PER_SEC: f64 = 2.0;

struct State {
    file: File,
    entries: HashMap<Name, LedgerEntry>,
    changes: Vec<LedgerChange>,
    /// Records in the log (name changes and group records).
    records: u64,
    /// Keys that may seal the next record: the founder, or the last group record's set.
    group: Vec<[u8; 32]>,
    last_hash: [u8; 32],
    /// Set when a write failed half-way: the file may hold a partial frame, so refuse writes
    /// until reopened (which truncates it).
    poisoned: bool,
}

/// Whether this node keeps the log alone or holds a replica of a group's log.
enum Role {
    /// Keeps the log alone: seals and appends its own transactions at once.
    Registrar(SigningKey),
    /// Appends only records that arrive sealed and verified (applied by the registrar group's
    /// Raft log, or replicated over the mesh). With a `signer`, it seals proposals while its
    /// key is in the group (the Raft leader does); it never appends outside the group's order.
    Replica {
        /// Root of trust: the key that sealed the first records.
        founder: VerifyingKey,
        /// This node's key, for sealing when it leads the group.
        signer: Option<SigningKey>,
    },
}

impl Role {
    fn founder(&self) -> VerifyingKey {
        match self {
            Self::Registrar(k) => k.verifying_key(),
            Self::Replica { founder, .. } => *founder,
        }
    }

    fn signer(&self) -> Option<&SigningKey> {
        match self {
            Self::Registrar(k) => Some(k),
            Self::Replica { signer, .. } => signer.as_ref(),
        }
    }

    /// True if the file was written by this node alone (nothing to re-verify on open).
    fn trusts_own_file(&self) -> bool {
        match self {
            Self::Registrar(_) => true,
            Self::Replica { founder, signer } => {
                signer.as_ref().map(SigningKey::verifying_key) == Some(*founder)
            }
        }
    }
}

/// One ledger transaction, as an owner signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tx {
    /// Register (or re-register after expiry) with a zone key, for `periods` terms.
    Register {
        /// The zone key.
        zone_key: [u8; 32],
        /// Terms bought.
        periods: u32,
    },
    /// Extend by `periods` terms.
    Renew {
        /// Terms bought.
        periods: u32,
    },
    /// Give the name away.
    Transfer {
        /// The new owner.
        new_owner: Owner,
    },
    /// Replace the zone key.
    SetZoneKey {
        /// The new zone key.
        zone_key: [u8; 32],
    },
    /// Replace the set of keys that may seal records (the registrar group). Signed (as owner
    /// and as registrar) by a member of the current set; the name is the ledger's TLD.
    Group {
        /// The new set, 1 to [`MAX_GROUP`] distinct Ed25519 keys.
        members: Vec<[u8; 32]>,
    },
}
use Tx as Op;

/// Most keys a group record may name (Raft groups of 1, 3 or 5, with room for a change).
pub const MAX_GROUP: usize = 7;

/// Seconds a forwarded transaction's timestamp may differ from the registrar's clock.
pub const MAX_CLOCK_SKEW: u64 = 120;

/// What one verified log record says.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Position (0-based).
    pub seq: u64,
    /// BLAKE3 of the body.
    pub hash: [u8; 32],
    /// The raw frame as stored (for followers).
    pub frame: Vec<u8>,
}

/// How opening went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Valid records.
    pub records: u64,
    /// Bytes dropped from a torn or corrupt tail.
    pub dropped_bytes: u64,
}

impl EmbeddedLedger {
    /// Opens (or creates) the ledger in `dir`. `registrar` signs every record; `clock` stamps
    /// transactions and decides expiry.
    pub fn open(
        dir: &Path,
        registrar: SigningKey,
        config: EmbeddedConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, OpenReport), LedgerError> {
        Self::open_role(dir, Role::Registrar(registrar), config, clock)
    }

    /// Opens (or creates) a read-only replica in `dir` of the log kept by the registrar whose
    /// public key is `registrar`. Local transactions are refused ([`LedgerError::Refused`]);
    /// records arrive through [`EmbeddedLedger::append_replicated`]. On open every record's
    /// signatures are checked against `registrar`, and the log is cut at the first that fails.
    pub fn open_follower(
        dir: &Path,
        registrar: [u8; 32],
        config: EmbeddedConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, OpenReport), LedgerError> {
        Self::open_replica(dir, registrar, None, config, clock)
    }

    /// Opens (or creates) a replica in `dir` of the log founded by `founder`, for a node that
    /// may join the registrar group: records are appended only through
    /// [`EmbeddedLedger::apply_sealed`] (the group's Raft log) and
    /// [`EmbeddedLedger::append_replicated`]; while `signer`'s key is in the group it can seal
    /// proposals ([`EmbeddedLedger::seal_signed`], [`EmbeddedLedger::seal_group`]). Records are
    /// re-verified on open unless `signer` is the founder (the file is its own).
    pub fn open_replica(
        dir: &Path,
        founder: [u8; 32],
        signer: Option<SigningKey>,
        config: EmbeddedConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, OpenReport), LedgerError> {
        let founder = VerifyingKey::from_bytes(&founder)
            .map_err(|_| LedgerError::Storage("invalid founder key".into()))?;
        Self::open_role(dir, Role::Replica { founder, signer }, config, clock)
    }

    fn open_role(
        dir: &Path,
        role: Role,
        config: EmbeddedConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, OpenReport), LedgerError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        let path = dir.join(LOG_FILE);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(storage)?;
        if !existed {
            // Make the new file's directory entry durable too.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(storage)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(storage)?;
        let (mut records, mut good_len) = scan(&bytes);
        let founder = role.founder().to_bytes();
        if !role.trusts_own_file() {
            // A replica trusts nothing it cannot verify, not even its own file.
            if let Some(bad) = first_unverified(&records, founder) {
                good_len = records[..bad].iter().map(|r| r.frame.len()).sum();
                records.truncate(bad);
            }
        }
        let dropped = bytes.len() - good_len;
        if dropped > 0 {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = dropped,
                kept_records = records.len(),
                "ledger log had a torn or corrupt tail; dropping it"
            );
            file.set_len(good_len as u64).map_err(storage)?;
            file.sync_all().map_err(storage)?;
            file.seek(SeekFrom::End(0)).map_err(storage)?;
        }
        let mut state = State {
            file,
            entries: HashMap::new(),
            changes: Vec::with_capacity(records.len()),
            records: 0,
            group: vec![founder],
            last_hash: [0; 32],
            poisoned: false,
        };
        let term = config.term;
        for rec in &records {
            apply(&mut state, rec, term);
        }
        let count = state.records;
        let (count_tx, _) = watch::channel(count);
        let (changes_tx, _) = watch::channel(state.changes.len() as u64);
        let report = OpenReport {
            records: count,
            dropped_bytes: dropped as u64,
        };
        tracing::info!(path = %path.display(), records = count, "embedded ledger open");
        Ok((
            Self {
                inner: Arc::new(Inner {
                    path,
                    config,
                    clock,
                    role,
                    state: Mutex::new(state),
                    owner_rate: Mutex::new(crate::ratelimit::TokenBuckets::new(
                        OWNER_BURST,
                        OWNER_PER_SEC,
                    )),
                    count_tx,
                    changes_tx,
                }),
            },
            report,
        ))
    }

    /// Opens with the default config and the system clock.
    pub fn open_default(dir: &Path, registrar: SigningKey) -> Result<Self, LedgerError> {
        Self::open(
            dir,
            registrar,
            EmbeddedConfig::default(),
            Arc::new(SystemClock),
        )
        .map(|(l, _)| l)
    }

    /// The founder's public key: the registrar that sealed the first records (followers pin
    /// it; every later sealer is named by a group record it or its successors sealed).
    pub fn registrar_key(&self) -> [u8; 32] {
        self.inner.role.founder().to_bytes()
    }

    /// The keys that may seal the next record (the registrar group), in the order last set.
    pub fn group(&self) -> Vec<[u8; 32]> {
        self.inner
            .state
            .lock()
            .map(|s| s.group.clone())
            .unwrap_or_default()
    }

    /// True if this is a replica (records arrive sealed), not a ledger kept alone.
    pub fn is_follower(&self) -> bool {
        matches!(self.inner.role, Role::Replica { .. })
    }

    /// Watches the number of records (changes whenever one is appended or replicated).
    pub fn watch_len(&self) -> watch::Receiver<u64> {
        self.inner.count_tx.subscribe()
    }

    /// Builds and owner-signs transaction `tx` for `name` as the next record of this replica
    /// (its sequence, previous hash and clock), for a registrar to seal with
    /// [`EmbeddedLedger::submit_signed`]. Rules are checked by the registrar.
    pub fn owner_tx(&self, name: &Name, owner: &OwnerKey, tx: Tx) -> Result<Vec<u8>, LedgerError> {
        let OwnerKey::Ed25519(owner_key) = owner else {
            return Err(LedgerError::WrongKeyKind(
                "the embedded ledger needs an Ed25519 owner key",
            ));
        };
        check_registrable(name, &self.inner.config.tld)?;
        let state = self
            .inner
            .state
            .lock()
            .map_err(|_| LedgerError::Storage("ledger lock poisoned".into()))?;
        let seq = state.records;
        let mut b = encode_owner_part(
            seq,
            &state.last_hash,
            self.inner.clock.now(),
            name,
            &owner_key.verifying_key(),
            &tx,
        );
        let sig = owner_key.sign(&[OWNER_CONTEXT, &b].concat());
        b.extend_from_slice(&sig.to_bytes());
        Ok(b)
    }

    /// Registrar side of a forwarded transaction: checks the owner's signature, that it was
    /// built on this log's current tip ([`LedgerError::OutOfStep`] otherwise, so the sender
    /// catches up and retries), that its timestamp is within [`MAX_CLOCK_SKEW`] of this clock,
    /// and the same rules as a local transaction; then seals and appends it.
    pub async fn submit_signed(&self, tx: &[u8]) -> Result<LedgerEntry, LedgerError> {
        let inner = self.inner.clone();
        let tx = tx.to_vec();
        tokio::task::spawn_blocking(move || inner.append_signed(&tx))
            .await
            .map_err(|e| LedgerError::Storage(format!("ledger task failed: {e}")))?
    }

    /// Follower side of replication: appends `frames` (raw log frames as
    /// [`EmbeddedLedger::read_frames`] returns them, concatenated) if every one continues the
    /// chain and carries valid owner and registrar signatures; otherwise appends nothing and
    /// returns the reason. Frames this replica already holds are skipped. Returns the new
    /// number of records.
    pub async fn append_replicated(&self, frames: &[u8]) -> Result<u64, LedgerError> {
        let inner = self.inner.clone();
        let frames = frames.to_vec();
        tokio::task::spawn_blocking(move || inner.append_replicated(&frames))
            .await
            .map_err(|e| LedgerError::Storage(format!("ledger task failed: {e}")))?
    }

    /// Group side of a forwarded transaction (the Raft leader): the same checks as
    /// [`EmbeddedLedger::submit_signed`] against the applied state, then returns the record
    /// sealed with this replica's key, to be ordered by the group's log and applied by every
    /// member with [`EmbeddedLedger::apply_sealed`]. Refused unless the key is in the group.
    pub async fn seal_signed(&self, tx: &[u8]) -> Result<Vec<u8>, LedgerError> {
        let inner = self.inner.clone();
        let tx = tx.to_vec();
        tokio::task::spawn_blocking(move || inner.seal_signed(&tx))
            .await
            .map_err(|e| LedgerError::Storage(format!("ledger task failed: {e}")))?
    }

    /// A group record naming `members` as the keys that may seal from now on, built on the
    /// applied tip and sealed (and owner-signed) with this replica's key, which must be in the
    /// current group.
    pub fn seal_group(&self, members: &[[u8; 32]]) -> Result<Vec<u8>, LedgerError> {
        self.inner.seal_group(members)
    }

    /// Applies one sealed record body (the state machine of the registrar group): appended if
    /// it continues the log, its seal is by a current group key and it passes the rules at its
    /// own timestamp; [`Applied::Held`] if the log already holds that position;
    /// [`LedgerError::OutOfStep`] if it was sealed on another tip. Deterministic: every member
    /// that applies the same records in the same order ends with the same log.
    pub async fn apply_sealed(&self, body: Vec<u8>) -> Result<Applied, LedgerError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.apply_sealed(&body))
            .await
            .map_err(|e| LedgerError::Storage(format!("ledger task failed: {e}")))?
    }

    /// The whole log as stored (its valid frames), for a snapshot of the group's state.
    pub fn read_log(&self) -> Result<Vec<u8>, LedgerError> {
        let state = self.inner.lock()?;
        let bytes = std::fs::read(&self.inner.path).map_err(storage)?;
        let (records, good) = scan(&bytes);
        if records.len() as u64 != state.records {
            return Err(LedgerError::Storage(format!(
                "log file holds {} records, the index {}",
                records.len(),
                state.records
            )));
        }
        let mut bytes = bytes;
        bytes.truncate(good);
        Ok(bytes)
    }

    /// Number of records in the log.
    pub fn len(&self) -> u64 {
        *self.inner.count_tx.borrow()
    }

    /// True if the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live and expired entry (a snapshot of the index).
    pub fn entries(&self) -> Vec<LedgerEntry> {
        match self.inner.state.lock() {
            Ok(s) => s.entries.values().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Re-reads the whole log file and checks every frame, chain link and both signatures of
    /// every record. Returns the number of valid records. (Opening checks checksums and chain
    /// links only, to stay fast.)
    pub fn verify_log(&self) -> Result<u64, LedgerError> {
        let bytes = std::fs::read(&self.inner.path).map_err(storage)?;
        let (records, good) = scan(&bytes);
        if good != bytes.len() {
            return Err(LedgerError::Storage(format!(
                "log has {} bytes after the last valid record",
                bytes.len() - good
            )));
        }
        if let Some(bad) = first_unverified(&records, self.registrar_key()) {
            let why = {
                let mut group = vec![self.registrar_key()];
                for rec in &records[..bad] {
                    if let Op::Group { members } = &rec.op {
                        group = members.clone();
                    }
                }
                records[bad].verify_signatures(&group).err().unwrap_or("")
            };
            return Err(LedgerError::Storage(format!("record {bad}: {why}")));
        }
        Ok(records.len() as u64)
    }

    /// Raw frames from `from` on (at most `max`), for read-only followers.
    pub fn read_frames(&self, from: u64, max: usize) -> Result<Vec<LogRecord>, LedgerError> {
        let bytes = std::fs::read(&self.inner.path).map_err(storage)?;
        let (records, _) = scan(&bytes);
        Ok(records
            .into_iter()
            .skip(usize::try_from(from).unwrap_or(usize::MAX))
            .take(max)
            .map(|r| LogRecord {
                seq: r.seq,
                hash: r.hash,
                frame: r.frame,
            })
            .collect())
    }

    async fn submit(
        &self,
        name: &Name,
        owner: &OwnerKey,
        op: Op,
    ) -> Result<LedgerEntry, LedgerError> {
        if self.is_follower() {
            return Err(LedgerError::Refused(format!(
                "this ledger is a replica; send transactions to registrar {}",
                hex::encode(self.registrar_key())
            )));
        }
        let OwnerKey::Ed25519(owner_key) = owner else {
            return Err(LedgerError::WrongKeyKind(
                "the embedded ledger needs an Ed25519 owner key",
            ));
        };
        check_registrable(name, &self.inner.config.tld)?;
        let inner = self.inner.clone();
        let name = name.clone();
        let owner_key = owner_key.clone();
        tokio::task::spawn_blocking(move || inner.append(&name, &owner_key, op))
            .await
            .map_err(|e| LedgerError::Storage(format!("ledger task failed: {e}")))?
    }
}

impl Inner {
    /// Checks the rules, appends and syncs the record, then updates the index.
    fn append(
        &self,
        name: &Name,
        owner_key: &SigningKey,
        op: Op,
    ) -> Result<LedgerEntry, LedgerError> {
        let mut state = self.lock()?;
        let now = self.clock.now();
        let signer = Owner::Ed25519(owner_key.verifying_key().to_bytes());
        self.rate_limit(&owner_key.verifying_key().to_bytes())?;
        check_rules(&state, name, signer, &op, now, self.config.term)?;
        let Role::Registrar(registrar) = &self.role else {
            return Err(LedgerError::Refused("this ledger is a replica".into()));
        };
        let mut body = encode_owner_part(
            state.records,
            &state.last_hash,
            now,
            name,
            &owner_key.verifying_key(),
            &op,
        );
        let owner_sig = owner_key.sign(&[OWNER_CONTEXT, &body].concat());
        body.extend_from_slice(&owner_sig.to_bytes());
        seal(&mut body, registrar);
        let rec = framed(&body)
            .ok_or_else(|| LedgerError::Storage("a record sealed here does not decode".into()))?;
        self.commit(&mut state, rec)?
            .ok_or_else(|| LedgerError::Storage("change not recorded".into()))
    }

    /// Takes one of `owner`'s transaction tokens.
    fn rate_limit(&self, owner: &[u8; 32]) -> Result<(), LedgerError> {
        let allowed = self
            .owner_rate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(owner);
        if allowed {
            Ok(())
        } else {
            Err(LedgerError::Refused(format!(
                "rate limited: at most {OWNER_BURST} transactions at once and {OWNER_PER_SEC} a \
                 second per owner"
            )))
        }
    }

    /// Writes and syncs one sealed record that continues the log, then applies it. Returns the
    /// changed entry (none for a group record).
    fn commit(&self, state: &mut State, rec: Decoded) -> Result<Option<LedgerEntry>, LedgerError> {
        let written = state
            .file
            .write_all(&rec.frame)
            .and_then(|()| state.file.sync_data());
        if let Err(e) = written {
            state.poisoned = true;
            return Err(storage(e));
        }
        let changed = apply(state, &rec, self.config.term);
        self.publish(state);
        Ok(changed
            .then(|| state.changes.last().map(|c| c.entry.clone()))
            .flatten())
    }

    /// Wakes followers and change streams after records were added.
    fn publish(&self, state: &State) {
        self.count_tx.send_replace(state.records);
        self.changes_tx.send_replace(state.changes.len() as u64);
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, LedgerError> {
        let state = self
            .state
            .lock()
            .map_err(|_| LedgerError::Storage("ledger lock poisoned".into()))?;
        if state.poisoned {
            return Err(LedgerError::Storage(
                "an earlier write failed; reopen the ledger".into(),
            ));
        }
        Ok(state)
    }

    /// Checks an owner-signed transaction against the current tip and rules, and returns it
    /// sealed by `registrar` (not yet written).
    fn check_and_seal(
        &self,
        state: &State,
        tx: &[u8],
        registrar: &SigningKey,
    ) -> Result<Vec<u8>, LedgerError> {
        let bad = |why: &str| LedgerError::Refused(format!("bad transaction: {why}"));
        // The sealed record must still fit a frame.
        if tx.len() + 32 + 64 > MAX_FRAME {
            return Err(bad("too large"));
        }
        let mut r = tx;
        let fields = decode_fields(&mut r).ok_or_else(|| bad("undecodable"))?;
        if r.len() != 64 {
            return Err(bad("undecodable"));
        }
        let owner_sig_at = tx.len() - 64;
        let Owner::Ed25519(owner) = fields.signer else {
            return Err(bad("owner is not an Ed25519 key"));
        };
        let owner = VerifyingKey::from_bytes(&owner).map_err(|_| bad("bad owner key"))?;
        let sig = Signature::from_slice(&tx[owner_sig_at..]).map_err(|_| bad("bad signature"))?;
        owner
            .verify_strict(&[OWNER_CONTEXT, &tx[..owner_sig_at]].concat(), &sig)
            .map_err(|_| bad("owner signature does not verify"))?;
        if !matches!(fields.op, Op::Group { .. }) {
            check_registrable(&fields.name, &self.config.tld)?;
        }
        // Before the tip check, so a flood costs its owner even when it is out of step.
        self.rate_limit(&owner.to_bytes())?;
        if fields.seq != state.records || fields.prev != state.last_hash {
            return Err(LedgerError::OutOfStep(state.records));
        }
        let now = self.clock.now();
        if fields.timestamp.abs_diff(now) > MAX_CLOCK_SKEW {
            return Err(bad(&format!(
                "timestamp {} is more than {MAX_CLOCK_SKEW} s from the registrar's clock {now}",
                fields.timestamp
            )));
        }
        if !state.group.contains(registrar.verifying_key().as_bytes()) {
            return Err(LedgerError::Refused(
                "this node's key is not in the registrar group".into(),
            ));
        }
        check_rules(
            state,
            &fields.name,
            fields.signer,
            &fields.op,
            fields.timestamp,
            self.config.term,
        )?;
        let mut body = tx.to_vec();
        seal(&mut body, registrar);
        Ok(body)
    }

    fn append_signed(&self, tx: &[u8]) -> Result<LedgerEntry, LedgerError> {
        let Role::Registrar(registrar) = &self.role else {
            return Err(LedgerError::Refused(
                "this node is not the registrar".into(),
            ));
        };
        let mut state = self.lock()?;
        let body = self.check_and_seal(&state, tx, registrar)?;
        let rec = framed(&body)
            .ok_or_else(|| LedgerError::Storage("a record sealed here does not decode".into()))?;
        self.commit(&mut state, rec)?
            .ok_or_else(|| LedgerError::Storage("change not recorded".into()))
    }

    fn seal_signed(&self, tx: &[u8]) -> Result<Vec<u8>, LedgerError> {
        let Some(signer) = self.role.signer() else {
            return Err(LedgerError::Refused(
                "this replica has no key to seal with".into(),
            ));
        };
        let state = self.lock()?;
        self.check_and_seal(&state, tx, signer)
    }

    fn seal_group(&self, members: &[[u8; 32]]) -> Result<Vec<u8>, LedgerError> {
        let Some(signer) = self.role.signer() else {
            return Err(LedgerError::Refused(
                "this replica has no key to seal with".into(),
            ));
        };
        let state = self.lock()?;
        let op = Op::Group {
            members: members.to_vec(),
        };
        let now = self.clock.now();
        let me = Owner::Ed25519(signer.verifying_key().to_bytes());
        check_rules(&state, &self.config.tld, me, &op, now, self.config.term)?;
        let mut body = encode_owner_part(
            state.records,
            &state.last_hash,
            now,
            &self.config.tld,
            &signer.verifying_key(),
            &op,
        );
        let owner_sig = signer.sign(&[OWNER_CONTEXT, &body].concat());
        body.extend_from_slice(&owner_sig.to_bytes());
        seal(&mut body, signer);
        Ok(body)
    }

    fn apply_sealed(&self, body: &[u8]) -> Result<Applied, LedgerError> {
        let bad = |why: String| LedgerError::Refused(format!("sealed record refused: {why}"));
        if body.len() > MAX_FRAME {
            return Err(bad("too large".into()));
        }
        let rec = framed(body).ok_or_else(|| bad("does not decode".into()))?;
        let mut state = self.lock()?;
        if rec.seq < state.records {
            // Already here (replicated by a follow stream, or applied before a restart).
            return Ok(Applied::Held {
                records: state.records,
            });
        }
        if rec.seq > state.records {
            // Every member holds the same prefix, so a gap means this replica lost records:
            // stop rather than build a different log.
            return Err(LedgerError::Storage(format!(
                "record {} arrived while the log holds {} records",
                rec.seq, state.records
            )));
        }
        if rec.prev != state.last_hash {
            return Err(LedgerError::OutOfStep(state.records));
        }
        rec.verify_signatures(&state.group)
            .map_err(|e| bad(e.into()))?;
        // The same rules the sealer checked, at the record's own time: deterministic, so every
        // member applies or refuses a record alike.
        check_rules(
            &state,
            &rec.name,
            rec.signer,
            &rec.op,
            rec.timestamp,
            self.config.term,
        )?;
        self.commit(&mut state, rec)?;
        Ok(Applied::Appended {
            records: state.records,
        })
    }

    fn append_replicated(&self, frames: &[u8]) -> Result<u64, LedgerError> {
        if matches!(self.role, Role::Registrar(_)) {
            return Err(LedgerError::Refused(
                "the registrar does not take replicated records".into(),
            ));
        }
        let mut state = self.lock()?;
        let have = state.records;
        // Skip frames already held (a resumed stream may repeat the tip).
        let mut at = 0usize;
        let mut first_seq = None;
        while frames.len() - at >= 4 + 9 {
            let len =
                u32::from_be_bytes(frames[at..at + 4].try_into().unwrap_or([0xff; 4])) as usize;
            let seq = u64::from_be_bytes(frames[at + 5..at + 13].try_into().unwrap_or([0; 8]));
            if seq >= have || len > MAX_FRAME {
                first_seq = Some(seq);
                break;
            }
            at = at.saturating_add(4 + len + 32).min(frames.len());
        }
        let rest = &frames[at..];
        if rest.is_empty() {
            return Ok(have);
        }
        if first_seq != Some(have) {
            return Err(LedgerError::Refused(format!(
                "replicated records start at {first_seq:?}, this replica holds {have}"
            )));
        }
        let (records, good) = scan_from(rest, have, state.last_hash);
        if good != rest.len() {
            return Err(LedgerError::Refused(format!(
                "replicated record {} breaks the chain or is malformed",
                have + records.len() as u64
            )));
        }
        let mut group = state.group.clone();
        for rec in &records {
            rec.verify_signatures(&group)
                .map_err(|e| LedgerError::Refused(format!("replicated record {}: {e}", rec.seq)))?;
            if let Op::Group { members } = &rec.op {
                group = members.clone();
            }
        }
        let written = state
            .file
            .write_all(rest)
            .and_then(|()| state.file.sync_data());
        if let Err(e) = written {
            state.poisoned = true;
            return Err(storage(e));
        }
        for rec in &records {
            apply(&mut state, rec, self.config.term);
        }
        self.publish(&state);
        Ok(state.records)
    }
}

/// What [`EmbeddedLedger::apply_sealed`] did with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Written and applied; the log now holds `records` records.
    Appended {
        /// Records in the log after it.
        records: u64,
    },
    /// The log already held a record at that position.
    Held {
        /// Records in the log.
        records: u64,
    },
}

/// Index of the first record whose seals do not verify against the group as the log sets it
/// (founder first), if any.
fn first_unverified(records: &[Decoded], founder: [u8; 32]) -> Option<usize> {
    let mut group = vec![founder];
    for (i, rec) in records.iter().enumerate() {
        if rec.verify_signatures(&group).is_err() {
            return Some(i);
        }
        if let Op::Group { members } = &rec.op {
            group = members.clone();
        }
    }
    None
}

/// The rules every transaction must pass against the current index, at time `now`.
fn check_rules(
    state: &State,
    name: &Name,
    signer: Owner,
    op: &Op,
    now: u64,
    term: Duration,
) -> Result<(), LedgerError> {
    let current = state.entries.get(name);
    let term = term.as_secs();
    let check_periods = |p: u32| {
        if p == 0 || p > MAX_PERIODS {
            Err(LedgerError::InvalidTerm(format!(
                "{p} periods; 1..={MAX_PERIODS} allowed"
            )))
        } else {
            Ok(())
        }
    };
    // The owner-only operations share their checks.
    let owned = |current: Option<&LedgerEntry>| match current {
        None => Err(LedgerError::NotRegistered(name.clone())),
        Some(e) if !e.is_live(now) => Err(LedgerError::Expired(name.clone())),
        Some(e) if e.owner != signer => Err(LedgerError::NotOwner(name.clone())),
        Some(_) => Ok(()),
    };
    match op {
        Op::Register { zone_key, periods } => {
            check_periods(*periods)?;
            check_zone_key(zone_key)?;
            if let Some(e) = current
                && e.is_live(now)
            {
                return Err(LedgerError::Taken(name.clone()));
            }
        }
        Op::Renew { periods } => {
            check_periods(*periods)?;
            owned(current)?;
            let new_expiry = current.map_or(0, |e| e.expiry) + u64::from(*periods) * term;
            if new_expiry > now + u64::from(MAX_PERIODS) * term {
                return Err(LedgerError::InvalidTerm(format!(
                    "would expire more than {MAX_PERIODS} periods from now"
                )));
            }
        }
        Op::Transfer { new_owner } => {
            owned(current)?;
            if !matches!(new_owner, Owner::Ed25519(_)) {
                return Err(LedgerError::WrongKeyKind(
                    "the embedded ledger's owners are Ed25519 keys",
                ));
            }
        }
        Op::SetZoneKey { zone_key } => {
            owned(current)?;
            check_zone_key(zone_key)?;
        }
        Op::Group { members } => {
            let Owner::Ed25519(sealer) = signer else {
                return Err(LedgerError::WrongKeyKind(
                    "a group record is signed by a group member's Ed25519 key",
                ));
            };
            if !state.group.contains(&sealer) {
                return Err(LedgerError::Refused(
                    "only a member of the registrar group may change it".into(),
                ));
            }
            if members.is_empty() || members.len() > MAX_GROUP {
                return Err(LedgerError::Refused(format!(
                    "a registrar group has 1 to {MAX_GROUP} members, not {}",
                    members.len()
                )));
            }
            for (i, key) in members.iter().enumerate() {
                check_zone_key(key).map_err(|_| {
                    LedgerError::Refused("a group member key is not a valid Ed25519 key".into())
                })?;
                if members[..i].contains(key) {
                    return Err(LedgerError::Refused(
                        "a group names each member once".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_zone_key(key: &[u8; 32]) -> Result<(), LedgerError> {
    match VerifyingKey::from_bytes(key) {
        Ok(k) if !k.is_weak() => Ok(()),
        _ => Err(LedgerError::InvalidZoneKey),
    }
}

fn storage(e: std::io::Error) -> LedgerError {
    LedgerError::Storage(e.to_string())
}

/// Applies a valid record to the index, the change list and the group. Rules were checked when
/// it was written. Returns whether a name changed.
fn apply(state: &mut State, rec: &Decoded, term: Duration) -> bool {
    state.records = rec.seq + 1;
    state.last_hash = rec.hash;
    let term = term.as_secs();
    let (kind, entry) = match (&rec.op, state.entries.get(&rec.name)) {
        (Op::Group { members }, _) => {
            state.group = members.clone();
            return false;
        }
        (Op::Register { zone_key, periods }, _) => (
            ChangeKind::Registered,
            LedgerEntry {
                name: rec.name.clone(),
                owner: rec.signer,
                zone_key: *zone_key,
                expiry: rec.timestamp + u64::from(*periods) * term,
            },
        ),
        (Op::Renew { periods }, Some(e)) => (
            ChangeKind::Renewed,
            LedgerEntry {
                expiry: e.expiry + u64::from(*periods) * term,
                ..e.clone()
            },
        ),
        (Op::Transfer { new_owner }, Some(e)) => (
            ChangeKind::Transferred,
            LedgerEntry {
                owner: *new_owner,
                ..e.clone()
            },
        ),
        (Op::SetZoneKey { zone_key }, Some(e)) => (
            ChangeKind::ZoneKeySet,
            LedgerEntry {
                zone_key: *zone_key,
                ..e.clone()
            },
        ),
        (op, None) => {
            // Cannot happen for a log this code wrote; keep the sequence intact anyway.
            tracing::error!(seq = rec.seq, ?op, name = %rec.name, "ledger record for an unknown name");
            return false;
        }
    };
    state.entries.insert(rec.name.clone(), entry.clone());
    // Cursors count name changes only (group records are not changes of a name), so a cursor
    // means the same on every replica of the log.
    let cursor = state.changes.len() as u64;
    state.changes.push(LedgerChange {
        cursor,
        kind,
        entry,
    });
    true
}

/// Everything the owner signs: the record up to the owner signature.
fn encode_owner_part(
    seq: u64,
    prev: &[u8; 32],
    timestamp: u64,
    name: &Name,
    owner: &VerifyingKey,
    op: &Op,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(400);
    b.push(LOG_VERSION);
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(prev);
    b.extend_from_slice(&timestamp.to_be_bytes());
    let (code, fields) = op_fields(op);
    b.push(code);
    b.push(name.as_str().len() as u8);
    b.extend_from_slice(name.as_str().as_bytes());
    b.extend_from_slice(owner.as_bytes());
    b.extend_from_slice(&fields);
    b
}

/// Appends the registrar's key and signature to an owner-signed record.
fn seal(b: &mut Vec<u8>, registrar: &SigningKey) {
    b.extend_from_slice(registrar.verifying_key().as_bytes());
    let reg_sig = registrar.sign(&[REGISTRAR_CONTEXT, b.as_slice()].concat());
    b.extend_from_slice(&reg_sig.to_bytes());
}

fn op_fields(op: &Op) -> (u8, Vec<u8>) {
    match op {
        Op::Register { zone_key, periods } => {
            let mut f = zone_key.to_vec();
            f.extend_from_slice(&periods.to_be_bytes());
            (1, f)
        }
        Op::Renew { periods } => (2, periods.to_be_bytes().to_vec()),
        Op::Transfer { new_owner } => {
            let mut f = vec![match new_owner {
                Owner::Ed25519(_) => 1,
                Owner::Eth(_) => 2,
            }];
            f.extend_from_slice(new_owner.as_bytes());
            (3, f)
        }
        Op::SetZoneKey { zone_key } => (4, zone_key.to_vec()),
        Op::Group { members } => {
            let mut f = vec![members.len() as u8];
            for m in members {
                f.extend_from_slice(m);
            }
            (5, f)
        }
    }
}

/// A record parsed from the log.
#[derive(Debug, Clone)]
struct Decoded {
    seq: u64,
    hash: [u8; 32],
    #[allow(dead_code)] // checked during the scan; kept for debugging
    prev: [u8; 32],
    timestamp: u64,
    name: Name,
    signer: Owner,
    op: Op,
    frame: Vec<u8>,
    body_len: usize,
}

impl Decoded {
    /// Checks the owner signature and the seal, which must be by a key in `group`.
    fn verify_signatures(&self, group: &[[u8; 32]]) -> Result<(), &'static str> {
        let body = &self.frame[4..4 + self.body_len];
        // Layout from the end: [32] registrar key, [64] registrar signature.
        let reg_sig_at = body.len() - 64;
        let reg_key_at = reg_sig_at - 32;
        let owner_sig_at = reg_key_at - 64;
        let sealer: [u8; 32] = body[reg_key_at..reg_sig_at]
            .try_into()
            .map_err(|_| "bad registrar key")?;
        if !group.contains(&sealer) {
            return Err("sealed by a key outside the registrar group");
        }
        let registrar = VerifyingKey::from_bytes(&sealer).map_err(|_| "bad registrar key")?;
        let reg_sig = Signature::from_slice(&body[reg_sig_at..]).map_err(|_| "bad signature")?;
        registrar
            .verify_strict(&[REGISTRAR_CONTEXT, &body[..reg_sig_at]].concat(), &reg_sig)
            .map_err(|_| "registrar signature does not verify")?;
        let Owner::Ed25519(owner) = self.signer else {
            return Err("owner is not an Ed25519 key");
        };
        let owner = VerifyingKey::from_bytes(&owner).map_err(|_| "bad owner key")?;
        let owner_sig =
            Signature::from_slice(&body[owner_sig_at..reg_key_at]).map_err(|_| "bad signature")?;
        owner
            .verify_strict(&[OWNER_CONTEXT, &body[..owner_sig_at]].concat(), &owner_sig)
            .map_err(|_| "owner signature does not verify")
    }
}

/// Parses frames from the start; returns the valid prefix and its length in bytes.
fn scan(bytes: &[u8]) -> (Vec<Decoded>, usize) {
    scan_from(bytes, 0, [0; 32])
}

/// Parses frames that continue a log holding `first_seq` records whose last hash is `prev`.
fn scan_from(bytes: &[u8], first_seq: u64, prev: [u8; 32]) -> (Vec<Decoded>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut prev = prev;
    loop {
        let rest = &bytes[at..];
        if rest.len() < 4 {
            break;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_FRAME || rest.len() < 4 + len + 32 {
            break;
        }
        let body = &rest[4..4 + len];
        let hash = *blake3::hash(body).as_bytes();
        if rest[4 + len..4 + len + 32] != hash {
            break;
        }
        let Some(rec) = decode_frame(rest[..4 + len + 32].to_vec(), hash) else {
            break;
        };
        if rec.seq != first_seq + out.len() as u64 || rec.prev != prev {
            break;
        }
        prev = hash;
        at += 4 + len + 32;
        out.push(rec);
    }
    (out, at)
}

/// The fields of a record up to (not including) the owner signature.
struct Fields {
    seq: u64,
    prev: [u8; 32],
    timestamp: u64,
    name: Name,
    signer: Owner,
    op: Op,
}

/// Reads the fields off the front of `r` (bounded by its length; never panics).
fn decode_fields(r: &mut &[u8]) -> Option<Fields> {
    let mut take = |n: usize| -> Option<&[u8]> {
        if r.len() < n {
            return None;
        }
        let (h, t) = r.split_at(n);
        *r = t;
        Some(h)
    };
    if take(1)?[0] != LOG_VERSION {
        return None;
    }
    let seq = u64::from_be_bytes(take(8)?.try_into().ok()?);
    let prev: [u8; 32] = take(32)?.try_into().ok()?;
    let timestamp = u64::from_be_bytes(take(8)?.try_into().ok()?);
    let code = take(1)?[0];
    let nlen = usize::from(take(1)?[0]);
    let name = Name::parse(std::str::from_utf8(take(nlen)?).ok()?).ok()?;
    let signer = Owner::Ed25519(take(32)?.try_into().ok()?);
    let op = match code {
        1 => Op::Register {
            zone_key: take(32)?.try_into().ok()?,
            periods: u32::from_be_bytes(take(4)?.try_into().ok()?),
        },
        2 => Op::Renew {
            periods: u32::from_be_bytes(take(4)?.try_into().ok()?),
        },
        3 => {
            let kind = take(1)?[0];
            let new_owner = match kind {
                1 => Owner::Ed25519(take(32)?.try_into().ok()?),
                2 => Owner::Eth(take(20)?.try_into().ok()?),
                _ => return None,
            };
            Op::Transfer { new_owner }
        }
        4 => Op::SetZoneKey {
            zone_key: take(32)?.try_into().ok()?,
        },
        5 => {
            let n = usize::from(take(1)?[0]);
            if n == 0 || n > MAX_GROUP {
                return None;
            }
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(take(32)?.try_into().ok()?);
            }
            Op::Group { members }
        }
        _ => return None,
    };
    Some(Fields {
        seq,
        prev,
        timestamp,
        name,
        signer,
        op,
    })
}

/// A sealed record body as the log stores it (`u32 len | body | blake3(body)`), decoded.
fn framed(body: &[u8]) -> Option<Decoded> {
    let hash = *blake3::hash(body).as_bytes();
    let mut frame = Vec::with_capacity(4 + body.len() + 32);
    frame.extend_from_slice(&u32::try_from(body.len()).ok()?.to_be_bytes());
    frame.extend_from_slice(body);
    frame.extend_from_slice(&hash);
    decode_frame(frame, hash)
}

/// Decodes a whole frame whose checksum was checked (`hash` is that of its body).
fn decode_frame(frame: Vec<u8>, hash: [u8; 32]) -> Option<Decoded> {
    let body_len = frame.len().checked_sub(4 + 32)?;
    let mut r = &frame[4..4 + body_len];
    let f = decode_fields(&mut r)?;
    // Owner signature, registrar key, registrar signature, and nothing more.
    if r.len() != 64 + 32 + 64 {
        return None;
    }
    Some(Decoded {
        seq: f.seq,
        hash,
        prev: f.prev,
        timestamp: f.timestamp,
        name: f.name,
        signer: f.signer,
        op: f.op,
        frame,
        body_len,
    })
}

#[async_trait]
impl Ledger for EmbeddedLedger {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn tld(&self) -> &Name {
        &self.inner.config.tld
    }

    fn term(&self) -> Duration {
        self.inner.config.term
    }

    async fn now(&self) -> Result<u64, LedgerError> {
        Ok(self.inner.clock.now())
    }

    fn owner_of(&self, key: &OwnerKey) -> Result<Owner, LedgerError> {
        match key {
            OwnerKey::Ed25519(k) => Ok(Owner::Ed25519(k.verifying_key().to_bytes())),
            OwnerKey::Secp256k1(_) => Err(LedgerError::WrongKeyKind(
                "the embedded ledger needs an Ed25519 owner key",
            )),
        }
    }

    async fn lookup(&self, name: &Name) -> Result<Option<LedgerEntry>, LedgerError> {
        let state = self
            .inner
            .state
            .lock()
            .map_err(|_| LedgerError::Storage("ledger lock poisoned".into()))?;
        Ok(state.entries.get(name).cloned())
    }

    async fn register(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError> {
        self.submit(name, owner, Op::Register { zone_key, periods })
            .await
    }

    async fn renew(
        &self,
        name: &Name,
        owner: &OwnerKey,
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError> {
        self.submit(name, owner, Op::Renew { periods }).await
    }

    async fn transfer(
        &self,
        name: &Name,
        owner: &OwnerKey,
        new_owner: Owner,
    ) -> Result<LedgerEntry, LedgerError> {
        self.submit(name, owner, Op::Transfer { new_owner }).await
    }

    async fn set_zone_key(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
    ) -> Result<LedgerEntry, LedgerError> {
        self.submit(name, owner, Op::SetZoneKey { zone_key }).await
    }

    fn changes(&self, from: u64) -> BoxStream<'static, Result<LedgerChange, LedgerError>> {
        let inner = self.inner.clone();
        let rx = inner.changes_tx.subscribe();
        futures::stream::unfold((inner, rx, from), |(inner, mut rx, next)| async move {
            loop {
                let available = *rx.borrow_and_update();
                if next < available {
                    let change = inner
                        .state
                        .lock()
                        .ok()
                        .and_then(|s| s.changes.get(next as usize).cloned());
                    return match change {
                        Some(c) => Some((Ok(c), (inner, rx, next + 1))),
                        None => Some((
                            Err(LedgerError::Storage("change list out of step".into())),
                            (inner, rx, u64::MAX),
                        )),
                    };
                }
                if next == u64::MAX || rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .boxed()
    }
}
