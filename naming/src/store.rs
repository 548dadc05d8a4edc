//! The zone store: the latest accepted [`SignedZone`] of every name, persisted in `redb`.
//!
//! A zone is accepted only if (1) its signature verifies, (2) the ledger says the name is
//! registered and unexpired, (3) the signing key is the ledger's current zone key, and (4) its
//! sequence is higher than the one held. Refusals are logged with the reason and returned as
//! [`ZoneRejected`].
//!
//! Lookups are synchronous and in memory: they walk from the asked name up to the enclosing
//! name that has a zone, and re-check expiry against the clock, so an expired name stops
//! resolving even before the ledger follower notices. The follower
//! ([`ZoneStore::follow_ledger`]) keeps each held zone's expiry and key in step with the ledger:
//! a renewal extends it, a key rotation or re-registration under another key drops the zone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{Mutex, broadcast};

use crate::ledger::{Clock, Ledger, LedgerError};
use crate::name::Name;
use crate::zone::{DecodeError, SignedZone, ZoneError};

/// name -> `u64 expiry (big-endian) || canonical zone encoding`.
const ZONES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("zones_v1");
/// `ledger_cursor` -> next ledger change to read.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta_v1");
/// Capacity of the change broadcast (subscribers that lag get `Lagged` and should flush).
pub const CHANGE_CAPACITY: usize = 1024;

/// Why a zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneRejected {
    /// Could not be decoded.
    #[error("undecodable zone: {0}")]
    Decode(#[from] DecodeError),
    /// Structurally invalid (owner outside the zone, too large).
    #[error("invalid zone: {0}")]
    Invalid(#[from] ZoneError),
    /// The signature does not verify.
    #[error("bad signature on the zone of {0}")]
    BadSignature(Name),
    /// The ledger has no entry for the zone's name.
    #[error("{0} is not registered")]
    NotRegistered(Name),
    /// The name's registration has expired.
    #[error("{0} has expired")]
    Expired(Name),
    /// Signed by a key that is not the ledger's current zone key for the name.
    #[error("the zone of {0} is signed by a key that is not its current zone key")]
    WrongKey(Name),
    /// Not newer than the zone held.
    #[error("the zone of {name} has sequence {got}; {have} is held (must be higher)")]
    StaleSequence {
        /// Zone name.
        name: Name,
        /// Sequence held.
        have: u64,
        /// Sequence offered.
        got: u64,
    },
    /// The ledger could not answer.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// Local storage failed.
    #[error("zone storage: {0}")]
    Storage(String),
}

impl ZoneRejected {
    /// A short machine-readable reason (for metrics and logs).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Decode(_) => "decode",
            Self::Invalid(_) => "invalid",
            Self::BadSignature(_) => "bad_signature",
            Self::NotRegistered(_) => "not_registered",
            Self::Expired(_) => "expired",
            Self::WrongKey(_) => "wrong_key",
            Self::StaleSequence { .. } => "stale_sequence",
            Self::Ledger(_) => "ledger",
            Self::Storage(_) => "storage",
        }
    }
}

/// Opens the redb file. If another handle in this process still holds it (a node that was
/// stopped abruptly in-process drops its tasks in the background), waits for it to go away, up
/// to a deadline (another process holding it is reported after the same deadline).
fn open_db(path: &Path) -> Result<Database, ZoneRejected> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Database::create(path) {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(storage(e)),
        }
    }
}

fn storage<E: std::fmt::Display>(e: E) -> ZoneRejected {
    ZoneRejected::Storage(e.to_string())
}

#[derive(Debug, Clone)]
struct Held {
    zone: Arc<SignedZone>,
    expiry: u64,
}

/// The persistent store of accepted zones.
pub struct ZoneStore {
    db: Arc<Database>,
    ledger: Arc<dyn Ledger>,
    clock: Arc<dyn Clock>,
    held: RwLock<HashMap<Name, Held>>,
    /// Serializes accepts so the sequence check and the write are atomic.
    write: Mutex<()>,
    changed: broadcast::Sender<Name>,
    /// Told the names that [`ZoneStore::lookup`] found no zone for (to fetch them elsewhere).
    misses: std::sync::OnceLock<tokio::sync::mpsc::Sender<Name>>,
}

impl std::fmt::Debug for ZoneStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneStore")
            .field("ledger", &self.ledger.kind())
            .field("zones", &self.len())
            .finish()
    }
}

impl ZoneStore {
    /// Opens (or creates) the store at `path` (a redb file), checking zones against `ledger`.
    /// Stored zones are loaded into memory; ones that no longer decode are dropped with a warning.
    pub fn open(
        path: &Path,
        ledger: Arc<dyn Ledger>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ZoneRejected> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(storage)?;
        }
        let db = open_db(path)?;
        let mut held = HashMap::new();
        {
            let txn = db.begin_write().map_err(storage)?;
            {
                let table = txn.open_table(ZONES).map_err(storage)?;
                for item in table.iter().map_err(storage)? {
                    let (k, v) = item.map_err(storage)?;
                    let bytes = v.value();
                    let decoded = bytes
                        .get(8..)
                        .ok_or(DecodeError::Truncated {
                            what: "stored expiry",
                            needed: 8,
                        })
                        .and_then(SignedZone::decode);
                    match decoded {
                        Ok(zone) => {
                            let mut exp = [0u8; 8];
                            exp.copy_from_slice(&bytes[..8]);
                            held.insert(
                                zone.zone.name.clone(),
                                Held {
                                    zone: Arc::new(zone),
                                    expiry: u64::from_be_bytes(exp),
                                },
                            );
                        }
                        Err(e) => {
                            tracing::warn!(name = k.value(), error = %e, "dropping undecodable stored zone");
                        }
                    }
                }
                txn.open_table(META).map_err(storage)?;
            }
            txn.commit().map_err(storage)?;
        }
        tracing::info!(path = %path.display(), zones = held.len(), "zone store open");
        let (changed, _) = broadcast::channel(CHANGE_CAPACITY);
        Ok(Self {
            db: Arc::new(db),
            ledger,
            clock,
            held: RwLock::new(held),
            write: Mutex::new(()),
            changed,
            misses: std::sync::OnceLock::new(),
        })
    }

    /// The ledger zones are checked against.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// Decodes and [`accept`](Self::accept)s a zone received as bytes.
    pub async fn accept_bytes(&self, bytes: &[u8]) -> Result<bool, ZoneRejected> {
        let zone = SignedZone::decode(bytes).inspect_err(|e| {
            tracing::warn!(error = %e, "zone refused: undecodable");
        })?;
        self.accept(zone).await.map(|()| true)
    }

    /// Accepts `zone` if it passes every check (see the module docs); persists it and notifies
    /// subscribers. Refusals are logged with their reason.
    pub async fn accept(&self, zone: SignedZone) -> Result<(), ZoneRejected> {
        let name = zone.zone.name.clone();
        let sequence = zone.zone.sequence;
        let result = self.check_and_store(zone).await;
        match &result {
            Ok(()) => tracing::info!(%name, sequence, "zone accepted"),
            Err(e) => {
                tracing::warn!(%name, sequence, reason = e.reason(), error = %e, "zone refused")
            }
        }
        result
    }

    async fn check_and_store(&self, zone: SignedZone) -> Result<(), ZoneRejected> {
        zone.zone.check()?;
        let name = zone.zone.name.clone();
        if zone.verify().is_err() {
            return Err(ZoneRejected::BadSignature(name));
        }
        let entry = self
            .ledger
            .lookup(&name)
            .await?
            .ok_or_else(|| ZoneRejected::NotRegistered(name.clone()))?;
        let now = self.ledger.now().await?;
        if !entry.is_live(now) {
            return Err(ZoneRejected::Expired(name));
        }
        if entry.zone_key != zone.zone_key {
            return Err(ZoneRejected::WrongKey(name));
        }
        let _guard = self.write.lock().await;
        if let Some(have) = self.get_held(&name)
            && zone.zone.sequence <= have.zone.zone.sequence
        {
            return Err(ZoneRejected::StaleSequence {
                name,
                have: have.zone.zone.sequence,
                got: zone.zone.sequence,
            });
        }
        let mut value = entry.expiry.to_be_bytes().to_vec();
        value.extend_from_slice(&zone.encode());
        let db = self.db.clone();
        let key = name.to_string();
        // A commit is a few fsyncs: keep it off the async workers.
        tokio::task::spawn_blocking(move || -> Result<(), ZoneRejected> {
            let txn = db.begin_write().map_err(storage)?;
            {
                let mut table = txn.open_table(ZONES).map_err(storage)?;
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(storage)?;
            }
            txn.commit().map_err(storage)
        })
        .await
        .map_err(storage)??;
        if let Ok(mut held) = self.held.write() {
            held.insert(
                name.clone(),
                Held {
                    zone: Arc::new(zone),
                    expiry: entry.expiry,
                },
            );
        }
        let _ = self.changed.send(name);
        Ok(())
    }

    fn get_held(&self, name: &Name) -> Option<Held> {
        self.held.read().ok()?.get(name).cloned()
    }

    /// The zone that answers for `name`: the zone of `name` or of its nearest ancestor that has
    /// one, if that name has not expired. A miss is reported to the [`ZoneStore::on_miss`]
    /// channel without waiting (a full channel drops it).
    pub fn lookup(&self, name: &Name) -> Option<Arc<SignedZone>> {
        let now = self.clock.now();
        let held = self.held.read().ok()?;
        // Walk the suffixes of the canonical string: no allocation per candidate.
        let s = name.as_str();
        let mut at = 0;
        loop {
            if let Some(h) = held.get(&s[at..]) {
                return (now < h.expiry).then(|| h.zone.clone());
            }
            match s[at..].find('.') {
                Some(dot) => at += dot + 1,
                None => {
                    drop(held);
                    if let Some(tx) = self.misses.get() {
                        let _ = tx.try_send(name.clone());
                    }
                    return None;
                }
            }
        }
    }

    /// Sends every name that [`ZoneStore::lookup`] finds no zone for to `tx` (best effort,
    /// never blocking the lookup), so the node can fetch the zone from its peers. Only the
    /// first call takes effect.
    pub fn on_miss(&self, tx: tokio::sync::mpsc::Sender<Name>) {
        let _ = self.misses.set(tx);
    }

    /// The zone stored for exactly `name`, expired or not (for the owner's tools).
    pub fn get(&self, name: &Name) -> Option<Arc<SignedZone>> {
        self.get_held(name).map(|h| h.zone)
    }

    /// Names whose zone changed (accepted, dropped, expiry moved). Lagging receivers get
    /// `RecvError::Lagged` and should flush whatever they cache.
    pub fn subscribe(&self) -> broadcast::Receiver<Name> {
        self.changed.subscribe()
    }

    /// Every name with a stored zone (expired ones included).
    pub fn names(&self) -> Vec<Name> {
        self.held
            .read()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of stored zones.
    pub fn len(&self) -> usize {
        self.held.read().map(|h| h.len()).unwrap_or(0)
    }

    /// True if no zone is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the ledger follower resumes.
    pub fn ledger_cursor(&self) -> u64 {
        let read = || -> Result<u64, ZoneRejected> {
            let txn = self.db.begin_read().map_err(storage)?;
            let table = txn.open_table(META).map_err(storage)?;
            Ok(table
                .get("ledger_cursor")
                .map_err(storage)?
                .map_or(0, |v| v.value()))
        };
        read().unwrap_or(0)
    }

    /// Re-checks the held zone of `name` against the ledger's *current* entry: drops it if the
    /// name is gone or its zone key changed, otherwise takes the current expiry. Comparing with
    /// the current entry rather than the change being replayed keeps a zone signed by a newer key
    /// when older changes are replayed after it was accepted.
    pub async fn refresh(&self, name: &Name) -> Result<(), ZoneRejected> {
        let _guard = self.write.lock().await;
        let Some(held) = self.get_held(name) else {
            return Ok(());
        };
        let entry = self.ledger.lookup(name).await?;
        let keep = entry
            .as_ref()
            .filter(|e| e.zone_key == held.zone.zone_key)
            .map(|e| e.expiry);
        if keep == Some(held.expiry) {
            return Ok(());
        }
        let db = self.db.clone();
        let key = name.to_string();
        let zone = held.zone.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ZoneRejected> {
            let txn = db.begin_write().map_err(storage)?;
            {
                let mut zones = txn.open_table(ZONES).map_err(storage)?;
                match keep {
                    None => {
                        zones.remove(key.as_str()).map_err(storage)?;
                    }
                    Some(expiry) => {
                        let mut value = expiry.to_be_bytes().to_vec();
                        value.extend_from_slice(&zone.encode());
                        zones
                            .insert(key.as_str(), value.as_slice())
                            .map_err(storage)?;
                    }
                }
            }
            txn.commit().map_err(storage)
        })
        .await
        .map_err(storage)??;
        if let Ok(mut map) = self.held.write() {
            match keep {
                None => {
                    tracing::info!(%name, "zone key changed or name gone on the ledger; dropping the zone signed by the old key");
                    map.remove(name);
                }
                Some(expiry) => {
                    if let Some(h) = map.get_mut(name) {
                        h.expiry = expiry;
                    }
                }
            }
        }
        let _ = self.changed.send(name.clone());
        Ok(())
    }

    fn save_cursor(&self, cursor: u64) -> Result<(), ZoneRejected> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            meta.insert("ledger_cursor", cursor).map_err(storage)?;
        }
        txn.commit().map_err(storage)
    }

    /// Follows the ledger's change stream from the saved cursor until the stream ends or
    /// `stop` resolves. Run it as a task next to the store.
    pub async fn follow_ledger(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let mut changes = self.ledger.changes(self.ledger_cursor());
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                next = changes.next() => match next {
                    Some(Ok(change)) => {
                        if let Err(e) = self.refresh(&change.entry.name).await {
                            tracing::error!(error = %e, name = %change.entry.name, "cannot apply a ledger change to the zone store");
                        }
                        let store = self.clone();
                        let cursor = change.cursor + 1;
                        let saved = tokio::task::spawn_blocking(move || store.save_cursor(cursor))
                            .await
                            .map_err(storage)
                            .and_then(|r| r);
                        if let Err(e) = saved {
                            tracing::error!(error = %e, "cannot save the ledger cursor");
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "ledger change stream error");
                    }
                    None => {
                        tracing::warn!("ledger change stream ended");
                        return;
                    }
                }
            }
        }
    }
}
