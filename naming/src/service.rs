//! A node's naming service: the operations behind `proxima name ...` and the `/api/names` admin
//! routes, over a ledger, the zone store and the keystore.
//!
//! Other services take what they need from [`NameService`]: DNS and the CDN gateway call
//! [`NameService::zones`] for the verified zone store (and subscribe to its changes); the
//! publisher calls [`NameService::set_site`] (or `POST /api/names/{name}/site`) to point a name
//! at a site manifest.
//!
//! Every edit of a zone goes the same way: take the zone as held, change its records, bump the
//! sequence, sign with the zone key from the keystore, and hand it to
//! [`ZoneStore::accept`], which checks it against the ledger like any zone from the network.
//!
//! The service opens nothing itself: the node builds the ledger (embedded, a follower's
//! [`FollowerLedger`](crate::follow::FollowerLedger), or Ethereum), the zone store and the
//! keystore, and hands them over in [`NameServiceParts`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::keystore::Keystore;
use crate::{
    Clock, Ledger, LedgerEntry, LedgerError, Name, Owner, OwnerKey, Record, RecordData, SignedZone,
    Zone, ZoneRejected, ZoneStore, check_registrable,
};

/// Environment variable that may hold the Ethereum account key (hex) for `ledger = "eth"`.
/// (Deliberately outside the `PROXIMA_` prefix, which maps to configuration keys.)
pub const ETH_KEY_ENV: &str = "ETH_PRIVATE_KEY";

/// Default TTL of records set through the CLI.
pub const DEFAULT_TTL: u32 = 300;

/// What went wrong in a naming operation, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum NameServiceError {
    /// The request itself is wrong (bad name, bad record value).
    #[error("{0}")]
    BadRequest(String),
    /// The ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The zone store refused the zone.
    #[error(transparent)]
    Zone(#[from] ZoneRejected),
    /// This node cannot sign for the name.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// A local failure (keystore, I/O).
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl NameServiceError {
    /// The HTTP status for the admin API.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Internal(_) => 500,
            Self::Ledger(e) => match e {
                LedgerError::Taken(_) => 409,
                LedgerError::Expired(_) => 410,
                LedgerError::NotRegistered(_) => 404,
                LedgerError::NotOwner(_) | LedgerError::WrongKeyKind(_) => 403,
                LedgerError::Unreachable(_) => 503,
                LedgerError::Storage(_) => 500,
                _ => 400,
            },
            Self::Zone(e) => match e {
                ZoneRejected::Ledger(LedgerError::Unreachable(_)) => 503,
                ZoneRejected::Storage(_) => 500,
                _ => 422,
            },
        }
    }
}

type Res<T> = Result<T, NameServiceError>;

/// One record as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    /// Owner name.
    pub owner: String,
    /// Type mnemonic.
    #[serde(rename = "type")]
    pub rtype: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Presentation form of the data.
    pub value: String,
}

impl From<&Record> for RecordView {
    fn from(r: &Record) -> Self {
        Self {
            owner: r.owner.to_string(),
            rtype: r.data.type_name().to_owned(),
            ttl: r.ttl,
            value: r.data.value_string(),
        }
    }
}

/// The zone as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneView {
    /// Sequence number.
    pub sequence: u64,
    /// Signing time (unix seconds).
    pub timestamp: u64,
    /// Hex of the zone key that signed it.
    pub zone_key: String,
    /// The records.
    pub records: Vec<RecordView>,
}

impl From<&SignedZone> for ZoneView {
    fn from(z: &SignedZone) -> Self {
        Self {
            sequence: z.zone.sequence,
            timestamp: z.zone.timestamp,
            zone_key: hex::encode(z.zone_key),
            records: z.zone.records.iter().map(RecordView::from).collect(),
        }
    }
}

/// A name as `proxima name show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameInfo {
    /// The name.
    pub name: String,
    /// Which ledger (`embedded`, `eth`).
    pub ledger: String,
    /// Owner (hex key or 0x address).
    pub owner: String,
    /// True if this node's owner key owns it.
    pub owned_by_this_node: bool,
    /// Hex of the current zone key.
    pub zone_key: String,
    /// True if this node holds the zone key.
    pub zone_key_held: bool,
    /// Expiry, unix seconds.
    pub expiry: u64,
    /// Expiry, RFC 3339 UTC.
    pub expires: String,
    /// Not yet expired.
    pub live: bool,
    /// The zone held for it, if any.
    pub zone: Option<ZoneView>,
}

/// Metrics of the naming service (the node registers them under `proxima_naming_`).
#[derive(Clone, Default)]
struct Metrics {
    /// Ledger and zone operations by `op` and `result` (`ok` or the error reason).
    ops: Family<Vec<(String, String)>, Counter>,
    /// Zones held in the zone store.
    zones: Gauge,
}

/// What a [`NameService`] is made of; the node opens each part.
pub struct NameServiceParts {
    /// The ledger names are registered on.
    pub ledger: Arc<dyn Ledger>,
    /// The verified zone store (checking zones against `ledger`).
    pub zones: Arc<ZoneStore>,
    /// The keystore holding the zone keys (and the embedded ledger's owner key).
    pub keys: Keystore,
    /// This node's account on `ledger`; `None` resolves names but cannot register or change
    /// them.
    pub owner: Option<OwnerKey>,
    /// The TLDs this node is authoritative for.
    pub tlds: Vec<Name>,
    /// The clock used when the ledger cannot tell the time.
    pub clock: Arc<dyn Clock>,
}

/// The naming service of one node.
pub struct NameService {
    ledger: Arc<dyn Ledger>,
    zones: Arc<ZoneStore>,
    keys: Keystore,
    owner: Option<OwnerKey>,
    tlds: Vec<Name>,
    clock: Arc<dyn Clock>,
    /// Serializes zone edits so two edits never sign the same sequence.
    edit: tokio::sync::Mutex<()>,
    metrics: Metrics,
}

impl std::fmt::Debug for NameService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameService")
            .field("ledger", &self.ledger.kind())
            .field("zones", &self.zones.len())
            .finish()
    }
}

impl NameService {
    /// The service over `parts`. Registers its metrics in `registry` (the node passes its
    /// `naming` sub-registry: `proxima_naming_operations`, `proxima_naming_zones`); the zone
    /// gauge follows the store while [`NameService::keep_zone_gauge`] runs.
    pub fn new(parts: NameServiceParts, registry: &mut Registry) -> Arc<Self> {
        let NameServiceParts {
            ledger,
            zones,
            keys,
            owner,
            tlds,
            clock,
        } = parts;
        let metrics = Metrics::default();
        registry.register(
            "operations",
            "Naming operations by op and result",
            metrics.ops.clone(),
        );
        registry.register(
            "zones",
            "Zones held in the zone store",
            metrics.zones.clone(),
        );
        metrics.zones.set(zones.len() as i64);
        Arc::new(Self {
            ledger,
            zones,
            keys,
            owner,
            tlds,
            clock,
            edit: tokio::sync::Mutex::new(()),
            metrics,
        })
    }

    /// Keeps the zone gauge in step with the store until `stop` completes (or the store is
    /// gone). The node spawns it next to [`ZoneStore::follow_ledger`].
    pub fn keep_zone_gauge(
        &self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (mut changed, gauge, store) = (
            self.zones.subscribe(),
            self.metrics.zones.clone(),
            self.zones.clone(),
        );
        async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    r = changed.recv() => {
                        if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                            return;
                        }
                        gauge.set(store.len() as i64);
                    }
                }
            }
        }
    }

    /// The verified zone store (for DNS and the CDN gateway).
    pub fn zones(&self) -> Arc<ZoneStore> {
        self.zones.clone()
    }

    /// The ledger.
    pub fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }

    /// The TLDs this node is authoritative for.
    pub fn tlds(&self) -> &[Name] {
        &self.tlds
    }

    fn count(&self, op: &str, result: &Res<impl Sized>) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(NameServiceError::Ledger(e)) => format!("ledger:{}", ledger_reason(e)),
            Err(NameServiceError::Zone(e)) => format!("zone:{}", e.reason()),
            Err(NameServiceError::BadRequest(_)) => "bad_request".into(),
            Err(NameServiceError::Forbidden(_)) => "forbidden".into(),
            Err(NameServiceError::NotFound(_)) => "not_found".into(),
            Err(NameServiceError::Internal(_)) => "internal".into(),
        };
        self.metrics
            .ops
            .get_or_create(&vec![("op".into(), op.into()), ("result".into(), outcome)])
            .inc();
    }

    fn owner(&self) -> Res<&OwnerKey> {
        self.owner.as_ref().ok_or_else(|| {
            NameServiceError::Forbidden(format!(
                "this node has no account key for the {} ledger (set naming.eth_key_file or {ETH_KEY_ENV})",
                self.ledger.kind()
            ))
        })
    }

    fn owner_id(&self) -> Option<Owner> {
        self.owner
            .as_ref()
            .and_then(|k| self.ledger.owner_of(k).ok())
    }

    /// Parses a user-given name with a clear error.
    pub fn parse_name(input: &str) -> Res<Name> {
        Name::parse(input)
            .map_err(|e| NameServiceError::BadRequest(format!("invalid name {input:?}: {e}")))
    }

    /// The registered name whose zone holds `name` (itself, or the ancestor directly below the
    /// ledger TLD).
    fn zone_name_for(&self, name: &Name) -> Res<Name> {
        let tld = self.ledger.tld();
        name.ancestors()
            .find(|a| check_registrable(a, tld).is_ok())
            .ok_or_else(|| {
                NameServiceError::BadRequest(format!(
                    "{name} is not under a name registrable on the .{tld} ledger"
                ))
            })
    }

    async fn entry(&self, name: &Name) -> Res<LedgerEntry> {
        self.ledger
            .lookup(name)
            .await?
            .ok_or_else(|| NameServiceError::NotFound(format!("{name} is not registered")))
    }

    /// Registers `name` for `years` periods with a fresh zone key (kept in the keystore) and
    /// publishes an empty signed zone, so the name exists in DNS at once.
    pub async fn register(&self, name: &str, years: u32) -> Res<NameInfo> {
        let r = self.register_inner(name, years).await;
        self.count("register", &r);
        r
    }

    async fn register_inner(&self, name: &str, years: u32) -> Res<NameInfo> {
        let name = Self::parse_name(name)?;
        check_registrable(&name, self.ledger.tld())?;
        let owner = self.owner()?.clone();
        // Reuse a key we already hold for this name (a failed earlier attempt); otherwise make one
        // and store it before the ledger hears of it, so a crash cannot orphan the name.
        let key = match self
            .keys
            .zone_key(&name)
            .map_err(NameServiceError::Internal)?
        {
            Some(k) => k,
            None => {
                let k = SigningKey::generate(&mut rand::rngs::OsRng);
                self.keys
                    .set_zone_key(&name, &k)
                    .map_err(NameServiceError::Internal)?;
                k
            }
        };
        self.ledger
            .register(&name, &owner, key.verifying_key().to_bytes(), years)
            .await?;
        self.edit_zone(&name, |_| Ok(())).await?;
        self.show_inner(&name).await
    }

    /// Extends the registration by `years` periods.
    pub async fn renew(&self, name: &str, years: u32) -> Res<NameInfo> {
        let r = async {
            let name = Self::parse_name(name)?;
            self.ledger.renew(&name, self.owner()?, years).await?;
            self.zones.refresh(&name).await?;
            self.show_inner(&name).await
        }
        .await;
        self.count("renew", &r);
        r
    }

    /// The ledger entry and zone of `name`.
    pub async fn show(&self, name: &str) -> Res<NameInfo> {
        let name = Self::parse_name(name)?;
        self.show_inner(&name).await
    }

    async fn show_inner(&self, name: &Name) -> Res<NameInfo> {
        let entry = self.entry(name).await?;
        let now = self.ledger.now().await.unwrap_or_else(|_| self.clock.now());
        let held = self
            .keys
            .zone_key_matching(name, &entry.zone_key)
            .map_err(NameServiceError::Internal)?
            .is_some();
        Ok(NameInfo {
            name: name.to_string(),
            ledger: self.ledger.kind().into(),
            owner: entry.owner.to_string(),
            owned_by_this_node: self.owner_id() == Some(entry.owner),
            zone_key: hex::encode(entry.zone_key),
            zone_key_held: held,
            expiry: entry.expiry,
            expires: rfc3339(entry.expiry),
            live: entry.is_live(now),
            zone: self.zones.get(name).map(|z| ZoneView::from(&*z)),
        })
    }

    /// Names this node has zones for, with their ledger state.
    pub async fn list(&self) -> Res<Vec<NameInfo>> {
        let mut names = self.zones.names();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            match self.show_inner(&n).await {
                Ok(info) => out.push(info),
                Err(NameServiceError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The records of the zone holding `name` (all of them if `name` is the zone's name).
    pub async fn records(&self, name: &str) -> Res<Vec<RecordView>> {
        let name = Self::parse_name(name)?;
        let zone_name = self.zone_name_for(&name)?;
        let zone = self
            .zones
            .get(&zone_name)
            .ok_or_else(|| NameServiceError::NotFound(format!("no zone held for {zone_name}")))?;
        Ok(zone
            .zone
            .records
            .iter()
            .filter(|r| zone_name == name || r.owner == name)
            .map(RecordView::from)
            .collect())
    }

    /// Adds a record to `name` (the zone's name or a name below it). An identical value only
    /// has its TTL updated; CNAME replaces any CNAME of that owner. Returns the owner's records.
    pub async fn set_record(
        &self,
        name: &str,
        rtype: &str,
        value: &str,
        ttl: Option<u32>,
    ) -> Res<Vec<RecordView>> {
        let r = async {
            let owner = Self::parse_name(name)?;
            let data = RecordData::parse(rtype, value)
                .map_err(|e| NameServiceError::BadRequest(e.to_string()))?;
            let ttl = ttl.unwrap_or(DEFAULT_TTL);
            let zone_name = self.zone_name_for(&owner)?;
            let o = owner.clone();
            let zone = self
                .edit_zone(&zone_name, move |records| {
                    set_in(records, o, ttl, data);
                    Ok(())
                })
                .await?;
            Ok(owner_records(&zone, &owner))
        }
        .await;
        self.count("set", &r);
        r
    }

    /// Removes `name`'s records of `rtype` (only those equal to `value` if given). Returns how
    /// many were removed; removing nothing is an error.
    pub async fn remove_records(&self, name: &str, rtype: &str, value: Option<&str>) -> Res<usize> {
        let r = async {
            let owner = Self::parse_name(name)?;
            let wanted = match value {
                Some(v) => Some(
                    RecordData::parse(rtype, v)
                        .map_err(|e| NameServiceError::BadRequest(e.to_string()))?,
                ),
                None => None,
            };
            let rtype_up = rtype.to_ascii_uppercase();
            let zone_name = self.zone_name_for(&owner)?;
            let mut removed = 0;
            let o = owner.clone();
            self.edit_zone(&zone_name, |records| {
                let before = records.len();
                records.retain(|r| {
                    !(r.owner == o
                        && r.data.type_name() == rtype_up
                        && wanted.as_ref().is_none_or(|w| *w == r.data))
                });
                removed = before - records.len();
                if removed == 0 {
                    return Err(NameServiceError::NotFound(format!(
                        "{o} has no matching {rtype_up} record"
                    )));
                }
                Ok(())
            })
            .await?;
            Ok(removed)
        }
        .await;
        self.count("rm", &r);
        r
    }

    /// Points `name`'s site record at `manifest` (BLAKE3 of a CDN site manifest), re-signing
    /// the zone. Used by the publisher; over HTTP: `POST /api/names/{name}/site` with
    /// `{"manifest": "<64 hex digits>"}`.
    pub async fn set_site(&self, name: &Name, manifest: [u8; 32]) -> Res<Arc<SignedZone>> {
        let r = async {
            let zone_name = self.zone_name_for(name)?;
            let owner = name.clone();
            self.edit_zone(&zone_name, move |records| {
                records
                    .retain(|r| !(r.owner == owner && matches!(r.data, RecordData::Site { .. })));
                records.push(Record {
                    owner,
                    ttl: 60,
                    data: RecordData::Site { manifest },
                });
                Ok(())
            })
            .await
        }
        .await;
        self.count("site", &r);
        r
    }

    /// Gives the name to `new_owner` (a hex Ed25519 key, or a 0x address on Ethereum).
    pub async fn transfer(&self, name: &str, new_owner: &str) -> Res<NameInfo> {
        let r = async {
            let name = Self::parse_name(name)?;
            let to = Owner::parse(new_owner)?;
            self.ledger.transfer(&name, self.owner()?, to).await?;
            self.show_inner(&name).await
        }
        .await;
        self.count("transfer", &r);
        r
    }

    /// Replaces the zone key with a fresh one and re-signs the zone with it.
    pub async fn rotate_key(&self, name: &str) -> Res<NameInfo> {
        let r = async {
            let name = Self::parse_name(name)?;
            let _guard = self.edit.lock().await;
            // Take the records before the ledger changes: the store drops the old-key zone
            // as soon as its follower sees the rotation.
            let records = self
                .zones
                .get(&name)
                .map(|z| (z.zone.sequence, z.zone.records.clone()));
            let new = SigningKey::generate(&mut rand::rngs::OsRng);
            self.keys
                .stage_zone_key(&name, &new)
                .map_err(NameServiceError::Internal)?;
            self.ledger
                .set_zone_key(&name, self.owner()?, new.verifying_key().to_bytes())
                .await?;
            self.keys
                .promote(&name)
                .map_err(NameServiceError::Internal)?;
            let (seq, records) = records.unwrap_or((0, Vec::new()));
            let zone = Zone {
                name: name.clone(),
                sequence: seq + 1,
                timestamp: unix_now(),
                records,
            };
            let signed = SignedZone::sign(zone, &new)
                .map_err(|e| NameServiceError::BadRequest(e.to_string()))?;
            self.zones.accept(signed).await?;
            drop(_guard);
            self.show_inner(&name).await
        }
        .await;
        self.count("rotate_key", &r);
        r
    }

    /// Applies `change` to the records of `zone_name`'s zone, signs it with sequence + 1 and
    /// stores it through [`ZoneStore::accept`].
    async fn edit_zone(
        &self,
        zone_name: &Name,
        change: impl FnOnce(&mut Vec<Record>) -> Res<()>,
    ) -> Res<Arc<SignedZone>> {
        let _guard = self.edit.lock().await;
        let entry = self.entry(zone_name).await?;
        let key = self
            .keys
            .zone_key_matching(zone_name, &entry.zone_key)
            .map_err(NameServiceError::Internal)?
            .ok_or_else(|| {
                NameServiceError::Forbidden(format!(
                    "this node does not hold the current zone key of {zone_name}"
                ))
            })?;
        let (sequence, mut records) = match self.zones.get(zone_name) {
            Some(z) => (z.zone.sequence, z.zone.records.clone()),
            None => (0, Vec::new()),
        };
        change(&mut records)?;
        let zone = Zone {
            name: zone_name.clone(),
            sequence: sequence + 1,
            timestamp: unix_now(),
            records,
        };
        let signed = SignedZone::sign(zone, &key)
            .map_err(|e| NameServiceError::BadRequest(e.to_string()))?;
        self.zones.accept(signed).await?;
        self.zones
            .get(zone_name)
            .ok_or_else(|| NameServiceError::Internal(anyhow::anyhow!("accepted zone vanished")))
    }
}

fn set_in(records: &mut Vec<Record>, owner: Name, ttl: u32, data: RecordData) {
    if matches!(data, RecordData::Cname(_)) {
        records.retain(|r| !(r.owner == owner && matches!(r.data, RecordData::Cname(_))));
    }
    if let Some(r) = records
        .iter_mut()
        .find(|r| r.owner == owner && r.data == data)
    {
        r.ttl = ttl;
        return;
    }
    records.push(Record { owner, ttl, data });
}

fn owner_records(zone: &SignedZone, owner: &Name) -> Vec<RecordView> {
    zone.zone
        .records
        .iter()
        .filter(|r| &r.owner == owner)
        .map(RecordView::from)
        .collect()
}

fn ledger_reason(e: &LedgerError) -> &'static str {
    match e {
        LedgerError::Taken(_) => "taken",
        LedgerError::Expired(_) => "expired",
        LedgerError::NotRegistered(_) => "not_registered",
        LedgerError::NotOwner(_) => "not_owner",
        LedgerError::InvalidName { .. } => "invalid_name",
        LedgerError::Unreachable(_) => "unreachable",
        _ => "other",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rfc3339(secs: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs.min(253_402_300_799)); // year 9999
    humantime::format_rfc3339_seconds(t).to_string()
}
