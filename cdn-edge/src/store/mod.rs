//! The verified blob store.
//!
//! Layout under the store directory:
//!
//! - `index.redb`: one row per *complete, verified* blob (`META`), and the bytes of small blobs
//!   (`INLINE`, at most one 16 KiB chunk group, as iroh-blobs keeps them: static sites are mostly
//!   small files and one database row beats two files each).
//! - `data/<xx>/<hash>.data` and `.obao`: a large blob's bytes and its post-order bao outboard
//!   (hash pairs above the 16 KiB chunk groups: 0.39 % of the data).
//! - `tmp/`: writes in progress; emptied on open.
//!
//! Invariants:
//!
//! - A blob is visible (has a `META` row) only once its bytes and outboard are complete, fsynced,
//!   renamed into place and their root hash equals the blob's address. Files without a row are
//!   leftovers of a crash and are deleted on open; a row whose files are missing is dropped.
//! - Every byte served is verified: small blobs against their hash when loaded into the hot tier,
//!   large ones chunk group by chunk group against the outboard (whose hashes chain to the root).
//!   A blob that fails is logged, counted, and dropped from the store, never served.
//! - Pinned blobs (published here) are never evicted; unpinned ones (fetched) are evicted least
//!   recently used first while the store exceeds its disk budget.

mod blob;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bao_tree::{BaoTree, BlockSize};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

pub use blob::{Arriving, Blob, ReadError};

use crate::Hash;

/// Chunk groups of 16 chunks (16 KiB): the unit of verification and of the outboard.
pub const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);
/// Blobs up to one chunk group have no outboard and live inline in the database.
pub const INLINE_MAX: u64 = 16 * 1024;

const META: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("meta");
const INLINE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("inline");
/// Version byte of a `META` row.
const META_V1: u8 = 1;
const FLAG_PINNED: u8 = 1;
const FLAG_INLINE: u8 = 2;

/// Settings of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the store (created if missing).
    pub dir: PathBuf,
    /// Bytes on disk above which unpinned blobs are evicted.
    pub disk_budget: u64,
    /// Bytes of verified blob data kept in memory.
    pub hot_bytes: u64,
    /// Largest blob the hot tier holds; larger ones are streamed from disk.
    pub hot_max_blob: u64,
}

impl StoreConfig {
    /// Defaults for a store in `dir`: 10 GiB disk budget, 256 MiB hot tier, blobs up to 1 MiB hot.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            disk_budget: 10 << 30,
            hot_bytes: 256 << 20,
            hot_max_blob: 1 << 20,
        }
    }
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Disk I/O failed.
    #[error("blob store I/O: {0}")]
    Io(#[from] io::Error),
    /// The index database failed.
    #[error("blob store index: {0}")]
    Db(String),
    /// Received bytes do not hash to the address they were sent for.
    #[error("content hashes to {actual}, expected {expected}")]
    HashMismatch {
        /// The address the bytes were sent for.
        expected: Hash,
        /// What they hash to.
        actual: Hash,
    },
    /// A stored blob failed verification; it has been dropped.
    #[error("blob {0} is corrupt on disk and was dropped")]
    Corrupt(Hash),
    /// An index row that this version cannot read.
    #[error("blob index row for {0} has an unknown format")]
    BadRow(Hash),
}

fn dberr<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into().to_string())
}

/// Where the gateway gets blobs. The local [`Store`] answers from disk; in part 2 a networked
/// source fetches what it lacks from peers, verifying as it goes, behind the same trait.
#[async_trait::async_trait]
pub trait BlobSource: Send + Sync + 'static {
    /// The blob, ready for verified reads, or `None` if it is not available.
    async fn blob(&self, hash: Hash) -> Result<Option<Blob>, StoreError>;
}

#[async_trait::async_trait]
impl BlobSource for Store {
    async fn blob(&self, hash: Hash) -> Result<Option<Blob>, StoreError> {
        if let Some(bytes) = self.inner.hot.get(&hash) {
            self.inner.metrics.hot_hits.inc();
            return Ok(Some(Blob::memory(hash, bytes)));
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.get(hash))
            .await
            .map_err(|e| StoreError::Io(io::Error::other(e)))?
    }
}

/// Metrics of the store (prefix given by the caller, e.g. `cdn_store_`).
#[derive(Debug, Default, Clone)]
struct StoreMetrics {
    /// Blobs served from the in-memory tier.
    hot_hits: Counter,
    /// Blobs opened from disk.
    disk_opens: Counter,
    /// Blobs found corrupt on disk and dropped.
    corrupt: Counter,
    /// Unpinned blobs evicted under the disk budget.
    evicted: Counter,
    /// Blobs added (not already present).
    imported: Counter,
    /// Bytes of blob data on disk (inline and files).
    disk_bytes: Gauge,
}

/// Per-blob facts kept in memory for eviction.
#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    pinned: bool,
    last_access: u64,
}

struct Inner {
    dir: PathBuf,
    db: redb::Database,
    hot: moka::sync::Cache<Hash, Bytes>,
    /// Large blobs already opened (file handle and outboard in memory), so a request does not
    /// reopen the file and re-read the outboard.
    open_files: moka::sync::Cache<Hash, Blob>,
    config: StoreConfig,
    entries: Mutex<HashMap<Hash, Entry>>,
    clock: AtomicU64,
    tmp_seq: AtomicU64,
    metrics: StoreMetrics,
}

/// The blob store; cheap to clone. Its methods block (disk I/O, hashing): call them from
/// blocking threads in async code.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// A decoded `META` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    size: u64,
    flags: u8,
}

impl Meta {
    fn encode(self) -> [u8; 10] {
        let mut out = [0u8; 10];
        out[0] = META_V1;
        out[1] = self.flags;
        out[2..].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    fn decode(hash: Hash, b: &[u8]) -> Result<Self, StoreError> {
        if b.len() != 10 || b[0] != META_V1 {
            return Err(StoreError::BadRow(hash));
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&b[2..]);
        Ok(Self {
            size: u64::from_le_bytes(size),
            flags: b[1],
        })
    }

    fn pinned(self) -> bool {
        self.flags & FLAG_PINNED != 0
    }

    fn inline(self) -> bool {
        self.flags & FLAG_INLINE != 0
    }
}

/// Result of [`Store::verify_all`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs that verified.
    pub ok: u64,
    /// Blobs that failed and were dropped.
    pub dropped: Vec<Hash>,
}

impl Store {
    /// Opens (or creates) the store, removing leftovers of interrupted writes.
    pub fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let dir = config.dir.clone();
        fs::create_dir_all(dir.join("data"))?;
        let tmp = dir.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let db = redb::Database::create(dir.join("index.redb")).map_err(dberr)?;
        {
            let txn = db.begin_write().map_err(dberr)?;
            txn.open_table(META).map_err(dberr)?;
            txn.open_table(INLINE).map_err(dberr)?;
            txn.commit().map_err(dberr)?;
        }
        let hot = moka::sync::Cache::builder()
            .max_capacity(config.hot_bytes)
            .weigher(|_k: &Hash, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .build();
        let store = Self {
            inner: Arc::new(Inner {
                dir,
                db,
                hot,
                open_files: moka::sync::Cache::new(1024),
                config,
                entries: Mutex::new(HashMap::new()),
                clock: AtomicU64::new(1),
                tmp_seq: AtomicU64::new(0),
                metrics: StoreMetrics::default(),
            }),
        };
        store.recover()?;
        Ok(store)
    }

    /// Registers the store's metrics into `registry` (give it a prefixed sub-registry).
    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.inner.metrics;
        registry.register(
            "hot_hits",
            "Blobs served from the in-memory tier",
            m.hot_hits.clone(),
        );
        registry.register("disk_opens", "Blobs opened from disk", m.disk_opens.clone());
        registry.register(
            "corrupt",
            "Blobs found corrupt on disk and dropped",
            m.corrupt.clone(),
        );
        registry.register(
            "evicted",
            "Unpinned blobs evicted under the disk budget",
            m.evicted.clone(),
        );
        registry.register("imported", "Blobs added to the store", m.imported.clone());
        registry.register(
            "disk_bytes",
            "Bytes of blob data on disk",
            m.disk_bytes.clone(),
        );
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Loads the index into memory and deletes files that no row refers to (a crash between
    /// rename and commit), and rows whose files are gone.
    fn recover(&self) -> Result<(), StoreError> {
        let mut entries = HashMap::new();
        let mut broken = Vec::new();
        {
            let txn = self.inner.db.begin_read().map_err(dberr)?;
            let meta = txn.open_table(META).map_err(dberr)?;
            for row in meta.iter().map_err(dberr)? {
                let (k, v) = row.map_err(dberr)?;
                let Ok(key) = <[u8; 32]>::try_from(k.value()) else {
                    continue;
                };
                let hash = Hash(key);
                let m = Meta::decode(hash, v.value())?;
                if !m.inline() && !self.data_path(hash).exists() {
                    broken.push(hash);
                    continue;
                }
                entries.insert(
                    hash,
                    Entry {
                        size: m.size,
                        pinned: m.pinned(),
                        last_access: 0,
                    },
                );
            }
        }
        for hash in broken {
            tracing::warn!(%hash, "blob index row without its data file; dropping it");
            self.remove(hash)?;
        }
        // Files not in the index.
        for shard in fs::read_dir(self.inner.dir.join("data"))? {
            let shard = shard?.path();
            if !shard.is_dir() {
                continue;
            }
            for file in fs::read_dir(&shard)? {
                let path = file?.path();
                let known = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<Hash>().ok())
                    .is_some_and(|h| entries.contains_key(&h));
                if !known {
                    tracing::info!(path = %path.display(), "removing a blob file left by an interrupted write");
                    fs::remove_file(&path)?;
                }
            }
        }
        let total: u64 = entries.values().map(|e| e.size).sum();
        self.inner.metrics.disk_bytes.set(total as i64);
        *self.lock() = entries;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Entry>> {
        // A panic while holding the lock leaves the map consistent (single inserts/removes).
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn shard_dir(&self, hash: Hash) -> PathBuf {
        self.inner.dir.join("data").join(hex::encode(&hash.0[..1]))
    }

    fn data_path(&self, hash: Hash) -> PathBuf {
        self.shard_dir(hash).join(format!("{hash}.data"))
    }

    fn outboard_path(&self, hash: Hash) -> PathBuf {
        self.shard_dir(hash).join(format!("{hash}.obao"))
    }

    /// A fresh path in the store's temporary directory (same filesystem, so rename is atomic).
    pub fn temp_path(&self) -> PathBuf {
        let n = self.inner.tmp_seq.fetch_add(1, Ordering::Relaxed);
        self.inner
            .dir
            .join("tmp")
            .join(format!("{}-{n}.part", std::process::id()))
    }

    /// Whether the store holds `hash` (complete and verified when written).
    pub fn contains(&self, hash: Hash) -> bool {
        self.lock().contains_key(&hash)
    }

    /// Size of a stored blob.
    pub fn size(&self, hash: Hash) -> Option<u64> {
        self.lock().get(&hash).map(|e| e.size)
    }

    /// Whether a stored blob is pinned.
    pub fn is_pinned(&self, hash: Hash) -> Option<bool> {
        self.lock().get(&hash).map(|e| e.pinned)
    }

    /// The subset of `hashes` the store lacks.
    pub fn missing(&self, hashes: &[Hash]) -> Vec<Hash> {
        let entries = self.lock();
        hashes
            .iter()
            .filter(|h| !entries.contains_key(h))
            .copied()
            .collect()
    }

    /// Bytes on disk above which unpinned blobs are evicted.
    pub fn disk_budget(&self) -> u64 {
        self.inner.config.disk_budget
    }

    /// Number of blobs and their total size.
    pub fn stats(&self) -> (u64, u64) {
        let entries = self.lock();
        (entries.len() as u64, entries.values().map(|e| e.size).sum())
    }

    /// Every stored hash.
    pub fn hashes(&self) -> Vec<Hash> {
        self.lock().keys().copied().collect()
    }

    /// Stores `data`; if `expected` is given the data must hash to it. Returns the hash.
    pub fn import_bytes(
        &self,
        data: &[u8],
        expected: Option<Hash>,
        pin: bool,
    ) -> Result<Hash, StoreError> {
        if data.len() as u64 <= INLINE_MAX {
            let hash = Hash::of(data);
            check_expected(expected, hash)?;
            if self.already_have(hash, pin)? {
                return Ok(hash);
            }
            self.commit_row(hash, data.len() as u64, pin, Some(data))?;
            return Ok(hash);
        }
        let tmp = self.temp_path();
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        self.import_file(&tmp, expected, pin)
    }

    /// Stores the file at `path`, which must be in the store's temporary directory (see
    /// [`Store::temp_path`]) and is moved into place (or deleted). Verifies `expected`.
    pub fn import_file(
        &self,
        path: &Path,
        expected: Option<Hash>,
        pin: bool,
    ) -> Result<Hash, StoreError> {
        let result = self.import_file_inner(path, expected, pin);
        if path.exists() {
            let _ = fs::remove_file(path);
        }
        result
    }

    fn import_file_inner(
        &self,
        path: &Path,
        expected: Option<Hash>,
        pin: bool,
    ) -> Result<Hash, StoreError> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        if size <= INLINE_MAX {
            let mut data = Vec::with_capacity(size as usize);
            file.read_to_end(&mut data)?;
            drop(file);
            let hash = Hash::of(&data);
            check_expected(expected, hash)?;
            if self.already_have(hash, pin)? {
                return Ok(hash);
            }
            self.commit_row(hash, size, pin, Some(&data))?;
            return Ok(hash);
        }
        // Hash and build the outboard in one pass over the file.
        let tree = BaoTree::new(size, BLOCK_SIZE);
        let mut outboard = Vec::with_capacity(tree.outboard_size() as usize);
        let root = bao_tree::io::sync::outboard_post_order(
            io::BufReader::with_capacity(1 << 20, &mut file),
            tree,
            &mut outboard,
        )?;
        let hash = Hash::from_blake3(root);
        check_expected(expected, hash)?;
        if self.already_have(hash, pin)? {
            return Ok(hash);
        }
        file.sync_all()?;
        drop(file);
        let ob_tmp = self.temp_path();
        {
            let mut f = File::create(&ob_tmp)?;
            f.write_all(&outboard)?;
            f.sync_all()?;
        }
        let shard = self.shard_dir(hash);
        fs::create_dir_all(&shard)?;
        fs::rename(&ob_tmp, self.outboard_path(hash))?;
        fs::rename(path, self.data_path(hash))?;
        File::open(&shard)?.sync_all()?;
        self.commit_row(hash, size, pin, None)?;
        Ok(hash)
    }

    /// Stores a large blob received from a peer: `path` (in the temporary directory) holds
    /// bytes whose every chunk group was verified against `hash` on arrival, and `outboard` the
    /// verified parent pairs of that transfer. Checks that the outboard's root pair hashes to
    /// `hash` and has the right length, then moves both into place without hashing the data
    /// again.
    pub fn import_verified(
        &self,
        path: &Path,
        hash: Hash,
        size: u64,
        outboard: Vec<u8>,
    ) -> Result<(), StoreError> {
        let result = (|| {
            let tree = BaoTree::new(size, BLOCK_SIZE);
            let root_ok = size > INLINE_MAX
                && outboard.len() as u64 == tree.outboard_size()
                && outboard.len() >= 64
                && {
                    // Post-order: the root pair is the last one.
                    let pair = &outboard[outboard.len() - 64..];
                    let (l, r) = pair.split_at(32);
                    let l: [u8; 32] = l.try_into().unwrap_or_default();
                    let r: [u8; 32] = r.try_into().unwrap_or_default();
                    blake3::hazmat::merge_subtrees_root(&l, &r, blake3::hazmat::Mode::Hash)
                        == hash.to_blake3()
                };
            if !root_ok || fs::metadata(path)?.len() != size {
                return Err(StoreError::Corrupt(hash));
            }
            if self.already_have(hash, false)? {
                return Ok(());
            }
            File::open(path)?.sync_all()?;
            let ob_tmp = self.temp_path();
            {
                let mut f = File::create(&ob_tmp)?;
                f.write_all(&outboard)?;
                f.sync_all()?;
            }
            let shard = self.shard_dir(hash);
            fs::create_dir_all(&shard)?;
            fs::rename(&ob_tmp, self.outboard_path(hash))?;
            fs::rename(path, self.data_path(hash))?;
            File::open(&shard)?.sync_all()?;
            self.commit_row(hash, size, false, None)
        })();
        if path.exists() {
            let _ = fs::remove_file(path);
        }
        result
    }

    /// If the blob is present, pins it when asked and returns true.
    fn already_have(&self, hash: Hash, pin: bool) -> Result<bool, StoreError> {
        let present = self.lock().get(&hash).map(|e| e.pinned);
        match present {
            Some(true) => Ok(true),
            Some(false) => {
                if pin {
                    self.pin(hash)?;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn commit_row(
        &self,
        hash: Hash,
        size: u64,
        pin: bool,
        inline: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let mut flags = if pin { FLAG_PINNED } else { 0 };
        if inline.is_some() {
            flags |= FLAG_INLINE;
        }
        let meta = Meta { size, flags };
        let txn = self.inner.db.begin_write().map_err(dberr)?;
        {
            if let Some(data) = inline {
                let mut t = txn.open_table(INLINE).map_err(dberr)?;
                t.insert(&hash.0[..], data).map_err(dberr)?;
            }
            let mut t = txn.open_table(META).map_err(dberr)?;
            t.insert(&hash.0[..], &meta.encode()[..]).map_err(dberr)?;
        }
        txn.commit().map_err(dberr)?;
        let tick = self.tick();
        let fresh = self
            .lock()
            .insert(
                hash,
                Entry {
                    size,
                    pinned: pin,
                    last_access: tick,
                },
            )
            .is_none();
        if fresh {
            self.inner.metrics.imported.inc();
            self.inner.metrics.disk_bytes.inc_by(size as i64);
        }
        tracing::debug!(%hash, size, pin, "blob stored");
        if !pin {
            self.evict_to_budget()?;
        }
        Ok(())
    }

    fn tick(&self) -> u64 {
        self.inner.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks a stored blob as pinned (never evicted). Returns false if it is absent.
    pub fn pin(&self, hash: Hash) -> Result<bool, StoreError> {
        let Some(entry) = self.lock().get(&hash).copied() else {
            return Ok(false);
        };
        if entry.pinned {
            return Ok(true);
        }
        let txn = self.inner.db.begin_write().map_err(dberr)?;
        {
            let mut t = txn.open_table(META).map_err(dberr)?;
            let old = t
                .get(&hash.0[..])
                .map_err(dberr)?
                .map(|v| v.value().to_vec());
            let Some(old) = old else {
                return Ok(false);
            };
            let mut m = Meta::decode(hash, &old)?;
            m.flags |= FLAG_PINNED;
            t.insert(&hash.0[..], &m.encode()[..]).map_err(dberr)?;
        }
        txn.commit().map_err(dberr)?;
        if let Some(e) = self.lock().get_mut(&hash) {
            e.pinned = true;
        }
        Ok(true)
    }

    /// Evicts unpinned blobs, least recently used first, while the store is over its budget.
    pub fn evict_to_budget(&self) -> Result<(), StoreError> {
        // Bounded: each round removes one blob or stops.
        loop {
            let victim = {
                // The running total (kept with every insert and removal), not a scan.
                let total = self.inner.metrics.disk_bytes.get().max(0) as u64;
                if total <= self.inner.config.disk_budget {
                    return Ok(());
                }
                self.lock()
                    .iter()
                    .filter(|(_, e)| !e.pinned)
                    .min_by_key(|(_, e)| e.last_access)
                    .map(|(h, _)| *h)
            };
            let Some(victim) = victim else {
                return Ok(());
            };
            tracing::debug!(hash = %victim, "evicting an unpinned blob under the disk budget");
            self.inner.metrics.evicted.inc();
            self.remove(victim)?;
        }
    }

    /// Deletes a blob (row first, so it stops being visible before its files go).
    pub fn remove(&self, hash: Hash) -> Result<(), StoreError> {
        let txn = self.inner.db.begin_write().map_err(dberr)?;
        {
            let mut t = txn.open_table(META).map_err(dberr)?;
            t.remove(&hash.0[..]).map_err(dberr)?;
            let mut t = txn.open_table(INLINE).map_err(dberr)?;
            t.remove(&hash.0[..]).map_err(dberr)?;
        }
        txn.commit().map_err(dberr)?;
        self.inner.hot.invalidate(&hash);
        self.inner.open_files.invalidate(&hash);
        if let Some(e) = self.lock().remove(&hash) {
            self.inner.metrics.disk_bytes.dec_by(e.size as i64);
        }
        for path in [self.data_path(hash), self.outboard_path(hash)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Flags and drops a blob that failed verification.
    pub(crate) fn drop_corrupt(&self, hash: Hash) {
        self.inner.metrics.corrupt.inc();
        tracing::error!(%hash, "blob failed verification on disk; dropping it");
        if let Err(e) = self.remove(hash) {
            tracing::error!(%hash, error = %e, "cannot drop a corrupt blob");
        }
    }

    /// Opens a blob for verified reads (blocking). Small blobs are read, verified and kept in
    /// the hot tier; large ones are opened with their outboard and verified as they are read.
    pub fn get(&self, hash: Hash) -> Result<Option<Blob>, StoreError> {
        if let Some(bytes) = self.inner.hot.get(&hash) {
            self.inner.metrics.hot_hits.inc();
            return Ok(Some(Blob::memory(hash, bytes)));
        }
        let tick = self.tick();
        let entry = {
            let mut entries = self.lock();
            match entries.get_mut(&hash) {
                Some(e) => {
                    e.last_access = tick;
                    *e
                }
                None => return Ok(None),
            }
        };
        if let Some(blob) = self.inner.open_files.get(&hash) {
            return Ok(Some(blob));
        }
        self.inner.metrics.disk_opens.inc();
        if entry.size <= INLINE_MAX {
            let txn = self.inner.db.begin_read().map_err(dberr)?;
            let t = txn.open_table(INLINE).map_err(dberr)?;
            let Some(data) = t.get(&hash.0[..]).map_err(dberr)? else {
                self.drop_corrupt(hash);
                return Err(StoreError::Corrupt(hash));
            };
            let data = Bytes::copy_from_slice(data.value());
            if Hash::of(&data) != hash {
                self.drop_corrupt(hash);
                return Err(StoreError::Corrupt(hash));
            }
            self.inner.hot.insert(hash, data.clone());
            return Ok(Some(Blob::memory(hash, data)));
        }
        let opened = (|| -> io::Result<(File, Vec<u8>)> {
            let file = File::open(self.data_path(hash))?;
            let outboard = fs::read(self.outboard_path(hash))?;
            Ok((file, outboard))
        })();
        let (file, outboard) = match opened {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.drop_corrupt(hash);
                return Err(StoreError::Corrupt(hash));
            }
            Err(e) => return Err(e.into()),
        };
        let tree = BaoTree::new(entry.size, BLOCK_SIZE);
        if outboard.len() as u64 != tree.outboard_size() || file.metadata()?.len() != entry.size {
            self.drop_corrupt(hash);
            return Err(StoreError::Corrupt(hash));
        }
        let blob = Blob::file(hash, entry.size, file, outboard, self);
        if entry.size <= self.inner.config.hot_max_blob {
            // Verify the whole blob once and keep it in memory.
            let data = match blob.read_verified(0, entry.size) {
                Ok(d) => d,
                Err(ReadError::Corrupt(_)) => return Err(StoreError::Corrupt(hash)),
                Err(ReadError::Io(e)) => return Err(e.into()),
                Err(e @ ReadError::Unavailable(..)) => return Err(io::Error::other(e).into()),
            };
            self.inner.hot.insert(hash, data.clone());
            return Ok(Some(Blob::memory(hash, data)));
        }
        self.inner.open_files.insert(hash, blob.clone());
        Ok(Some(blob))
    }

    /// Verifies every blob, dropping those that fail. Blocking; reads everything.
    pub fn verify_all(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for hash in self.hashes() {
            self.inner.hot.invalidate(&hash);
            self.inner.open_files.invalidate(&hash);
            let verified = match self.get(hash) {
                Ok(Some(Blob::Memory { .. })) => true,
                Ok(Some(blob)) => {
                    let size = blob.size();
                    let mut ok = true;
                    let mut offset = 0;
                    while offset < size {
                        let len = (size - offset).min(4 << 20);
                        match blob.read_verified(offset, len) {
                            Ok(_) => offset += len,
                            Err(ReadError::Corrupt(_)) => {
                                ok = false;
                                break;
                            }
                            Err(ReadError::Io(e)) => return Err(e.into()),
                            Err(e @ ReadError::Unavailable(..)) => {
                                return Err(io::Error::other(e).into());
                            }
                        }
                    }
                    ok
                }
                Ok(None) => continue,
                Err(StoreError::Corrupt(_)) => false,
                Err(e) => return Err(e),
            };
            if verified {
                report.ok += 1;
            } else {
                report.dropped.push(hash);
            }
        }
        Ok(report)
    }

    /// Path of a large blob's data file (for tests and tools that inspect the store).
    pub fn blob_file_path(&self, hash: Hash) -> Option<PathBuf> {
        let size = self.size(hash)?;
        (size > INLINE_MAX).then(|| self.data_path(hash))
    }

    /// Forgets a blob's hot copy (tests use it to force a read from disk).
    pub fn evict_hot(&self, hash: Hash) {
        self.inner.hot.invalidate(&hash);
        self.inner.open_files.invalidate(&hash);
    }
}

fn check_expected(expected: Option<Hash>, actual: Hash) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != actual => Err(StoreError::HashMismatch { expected, actual }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
