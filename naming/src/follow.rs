//! The embedded ledger on a follower: a verified local replica of the registrar's log, kept in
//! step by [`follow_registrar`], and [`FollowerLedger`], which reads from the replica and
//! forwards its owners' transactions to the registrar (signed here by the owner's key, sealed
//! there).
//!
//! This crate does not talk to the network: the registrar is reached through a
//! [`LedgerNetwork`], which the node implements over its mesh (`src/names/ledger_sync.rs`, the
//! `proxima/ledger/1` protocol, which also decides who the registrar is).
//!
//! A replica appends only records that continue its chain and carry valid owner and registrar
//! signatures ([`EmbeddedLedger::append_replicated`]); anything else is refused, counted in
//! `proxima_naming_ledger_refused_total`, and the stream is dropped (and opened again after a
//! backoff).

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::{
    EmbeddedLedger, Ledger, LedgerChange, LedgerEntry, LedgerError, Name, Owner, OwnerKey, Tx,
};

/// A follower that hears nothing for this long reconnects (the registrar sends an empty batch
/// every few seconds while idle).
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a forwarded transaction may take end to end: finding the registrar group's leader
/// across an election (the router gives up after 12 s) and its commit.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(14);
/// Times a transaction built on an old tip is signed again after catching up.
const OUT_OF_STEP_RETRIES: u32 = 5;

/// The way to the registrar, as a follower needs it. The node implements it over its mesh.
#[async_trait]
pub trait LedgerNetwork: Send + Sync + 'static {
    /// Sends an owner-signed transaction (see [`EmbeddedLedger::owner_tx`]) to the registrar;
    /// returns the registrar's record count after it appended it. `Err(Unreachable(why))`: the
    /// exchange failed (`why` says how; the caller adds where the registrar is, and the time
    /// limit); any other error is the registrar's refusal.
    async fn submit(&self, tx: &[u8]) -> Result<u64, LedgerError>;

    /// Opens a follow stream from record `from`: batches of raw concatenated log frames, in
    /// order (an empty batch is a heartbeat). The stream ends, or yields an error, when the
    /// connection breaks.
    async fn follow(
        &self,
        from: u64,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, LedgerError>>, LedgerError>;

    /// The registrar as logs and error messages name it (its peer id).
    fn registrar(&self) -> String;

    /// Where a user finds the registrar's admin API (`http://host:port`), or `unknown`; asked
    /// only when an error message needs it.
    fn registrar_admin(&self) -> String;
}

/// Metrics of replication (`proxima_naming_ledger_*`).
#[derive(Clone, Default)]
pub struct SyncMetrics {
    /// Records in the local log (replica or registrar).
    pub records: Gauge,
    /// Replicated batches refused because they did not verify.
    pub refused: Counter,
    /// Transactions forwarded to the registrar.
    pub forwarded: Counter,
}

impl SyncMetrics {
    /// Registers in `registry` (the node's `naming` sub-registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ledger_records",
            "Records in this node's embedded ledger log (registrar or replica)",
            self.records.clone(),
        );
        registry.register(
            "ledger_refused",
            "Replicated ledger batches refused because they did not verify",
            self.refused.clone(),
        );
        registry.register(
            "ledger_forwarded",
            "Ledger transactions forwarded to the registrar",
            self.forwarded.clone(),
        );
    }
}

/// Keeps `replica` in step with the registrar behind `network` until `stop` completes: follows
/// its log, reconnecting with backoff whenever the stream breaks (registrar restart, network).
/// The node spawns it on its task tracker.
pub async fn follow_registrar(
    network: Arc<dyn LedgerNetwork>,
    replica: EmbeddedLedger,
    metrics: SyncMetrics,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let registrar = network.registrar();
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        let run = tokio::select! {
            _ = &mut stop => return,
            r = follow_once(&*network, &replica, &metrics) => r,
        };
        match run {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                failures += 1;
                // Quiet while the registrar restarts; loud if it stays away.
                if failures % 20 == 1 {
                    tracing::warn!(%registrar, error = %e, failures, "ledger follow stream failed; retrying");
                } else {
                    tracing::debug!(%registrar, error = %e, "ledger follow stream failed");
                }
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn follow_once(
    network: &dyn LedgerNetwork,
    replica: &EmbeddedLedger,
    metrics: &SyncMetrics,
) -> Result<(), LedgerError> {
    let mut batches = network.follow(replica.len()).await?;
    loop {
        let batch = tokio::time::timeout(READ_TIMEOUT, batches.next())
            .await
            .map_err(|_| LedgerError::Unreachable("registrar silent".into()))?
            .ok_or_else(|| LedgerError::Unreachable("stream ended".into()))??;
        if batch.is_empty() {
            continue;
        }
        match replica.append_replicated(&batch).await {
            Ok(n) => {
                metrics.records.set(n as i64);
                tracing::debug!(records = n, "ledger replica advanced");
            }
            Err(e) => {
                metrics.refused.inc();
                tracing::warn!(registrar = %network.registrar(), error = %e, "replicated ledger records refused");
                return Err(e);
            }
        }
    }
}

/// The ledger of a follower: reads from the verified local replica, transactions forwarded to
/// the registrar (signed here by the owner's key, sealed there).
pub struct FollowerLedger {
    local: EmbeddedLedger,
    network: Arc<dyn LedgerNetwork>,
    metrics: SyncMetrics,
}

impl std::fmt::Debug for FollowerLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerLedger")
            .field("registrar", &self.network.registrar())
            .field("records", &self.local.len())
            .finish()
    }
}

impl FollowerLedger {
    /// A follower ledger over the replica `local` of the log of the registrar behind `network`.
    pub fn new(
        local: EmbeddedLedger,
        network: Arc<dyn LedgerNetwork>,
        metrics: SyncMetrics,
    ) -> Self {
        Self {
            local,
            network,
            metrics,
        }
    }

    async fn submit_once(&self, tx: &[u8]) -> Result<u64, LedgerError> {
        let unreachable = |e: &dyn Display| {
            LedgerError::Unreachable(format!(
                "the ledger registrar {} (admin {}) cannot be reached: {e}",
                self.network.registrar(),
                self.network.registrar_admin()
            ))
        };
        match tokio::time::timeout(SUBMIT_TIMEOUT, self.network.submit(tx)).await {
            Err(_) => Err(unreachable(&"timed out")),
            Ok(Err(LedgerError::Unreachable(why))) => Err(unreachable(&why)),
            Ok(r) => r,
        }
    }

    /// Waits until the replica holds `records` records.
    async fn caught_up(&self, records: u64) -> Result<(), LedgerError> {
        let mut len = self.local.watch_len();
        let wait = len.wait_for(|n| *n >= records);
        match tokio::time::timeout(SUBMIT_TIMEOUT, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(LedgerError::Unreachable(format!(
                "the registrar {} accepted the transaction but this replica has not received it yet",
                self.network.registrar()
            ))),
        }
    }

    async fn forward(
        &self,
        name: &Name,
        owner: &OwnerKey,
        tx: Tx,
    ) -> Result<LedgerEntry, LedgerError> {
        self.metrics.forwarded.inc();
        let mut attempts = 0;
        loop {
            let signed = self.local.owner_tx(name, owner, tx.clone())?;
            match self.submit_once(&signed).await {
                Ok(records) => {
                    self.caught_up(records).await?;
                    return self
                        .local
                        .lookup(name)
                        .await?
                        .ok_or_else(|| LedgerError::NotRegistered(name.clone()));
                }
                // Built on an old tip: catch up and sign again (someone else wrote first).
                Err(LedgerError::OutOfStep(n)) if attempts < OUT_OF_STEP_RETRIES => {
                    attempts += 1;
                    self.caught_up(n).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl Ledger for FollowerLedger {
    fn kind(&self) -> &'static str {
        "embedded"
    }
    fn tld(&self) -> &Name {
        self.local.tld()
    }
    fn term(&self) -> Duration {
        self.local.term()
    }
    async fn now(&self) -> Result<u64, LedgerError> {
        self.local.now().await
    }
    fn owner_of(&self, key: &OwnerKey) -> Result<Owner, LedgerError> {
        self.local.owner_of(key)
    }
    async fn lookup(&self, name: &Name) -> Result<Option<LedgerEntry>, LedgerError> {
        self.local.lookup(name).await
    }
    async fn register(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError> {
        self.forward(name, owner, Tx::Register { zone_key, periods })
            .await
    }
    async fn renew(
        &self,
        name: &Name,
        owner: &OwnerKey,
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError> {
        self.forward(name, owner, Tx::Renew { periods }).await
    }
    async fn transfer(
        &self,
        name: &Name,
        owner: &OwnerKey,
        new_owner: Owner,
    ) -> Result<LedgerEntry, LedgerError> {
        self.forward(name, owner, Tx::Transfer { new_owner }).await
    }
    async fn set_zone_key(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
    ) -> Result<LedgerEntry, LedgerError> {
        self.forward(name, owner, Tx::SetZoneKey { zone_key }).await
    }
    fn changes(&self, from: u64) -> BoxStream<'static, Result<LedgerChange, LedgerError>> {
        self.local.changes(from)
    }
}
