//! The node's naming wiring: which ledger (embedded, as registrar or follower, or Ethereum), the
//! zone store and the keystore under the data directory, zone spreading over the mesh, and the
//! `/api/names` admin routes. The naming service itself ([`naming::NameService`]: the operations
//! behind `proxima name ...`), the keystore and the follower's ledger live in the `naming` crate;
//! this module opens their parts and connects them to the mesh.
//!
//! Other services take what they need from the [`NameService`] that [`start`] returns: DNS and
//! the CDN gateway call [`NameService::zones`] for the verified zone store; the publisher calls
//! [`NameService::set_site`] (or `POST /api/names/{name}/site`).

pub mod api;
pub mod ledger_sync;
pub mod registrar;
pub mod spread;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use naming::{
    Clock, ETH_KEY_ENV, EmbeddedConfig, Keystore, Ledger, Name, NameService, NameServiceParts,
    OwnerKey, SyncMetrics, SystemClock, ZoneStore, keystore,
};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, LedgerKind};
use crate::identity::NodeIdentity;

/// `[naming]`: the ledger TLD, the TLDs this node answers for, the Ethereum account key file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamingConfig {
    /// The TLD the ledger registers names under.
    pub ledger_tld: String,
    /// TLDs this node is authoritative for (the ledger TLD, usually).
    pub tlds: Vec<String>,
    /// File holding the Ethereum account key (hex) used with `ledger = "eth"`. The key may also
    /// come from the `ETH_PRIVATE_KEY` environment variable; never from the command line.
    pub eth_key_file: Option<PathBuf>,
    /// How often the Ethereum ledger is polled for new events.
    #[serde(with = "humantime_serde")]
    pub eth_poll_interval: Duration,
    /// First block to scan for registry events (the deployment block).
    pub eth_from_block: u64,
    /// Embedded ledger: `"self"` to keep the ledger here, or the peer id of the registrar to
    /// follow. Unset: a node without bootstrap peers is its own registrar; one with bootstrap
    /// peers follows the registrar they follow (see `src/names/ledger_sync.rs`).
    pub registrar: Option<String>,
    /// How long a node with bootstrap peers waits to learn the registrar at its first start.
    #[serde(with = "humantime_serde")]
    pub registrar_wait: Duration,
    /// How often every held zone is put in the DHT again.
    #[serde(with = "humantime_serde")]
    pub zone_republish: Duration,
    /// How often zones are pulled from a random live member (anti-entropy).
    #[serde(with = "humantime_serde")]
    pub zone_sync: Duration,
}

impl Default for NamingConfig {
    fn default() -> Self {
        Self {
            ledger_tld: "proxima".into(),
            tlds: vec!["proxima".into()],
            eth_key_file: None,
            eth_poll_interval: Duration::from_secs(2),
            eth_from_block: 0,
            registrar: None,
            registrar_wait: Duration::from_secs(20),
            zone_republish: Duration::from_secs(600),
            zone_sync: Duration::from_secs(60),
        }
    }
}

impl NamingConfig {
    /// Checks the TLDs are valid single-label names; returns (key, value, problem) on error.
    pub fn validate(&self) -> Result<(), (String, String, String)> {
        let single = |key: &str, v: &str| -> Result<(), (String, String, String)> {
            match Name::parse(v) {
                Ok(n) if n.label_count() == 1 => Ok(()),
                Ok(_) => Err((
                    key.into(),
                    format!("{v:?}"),
                    "expected a single label such as \"proxima\"".into(),
                )),
                Err(e) => Err((key.into(), format!("{v:?}"), e.to_string())),
            }
        };
        single("naming.ledger_tld", &self.ledger_tld)?;
        if let Some(r) = &self.registrar
            && r != "self"
            && r.parse::<mesh::PeerId>().is_err()
        {
            return Err((
                "naming.registrar".into(),
                format!("{r:?}"),
                "expected \"self\" or a peer id".into(),
            ));
        }
        for (key, d) in [
            ("naming.zone_republish", self.zone_republish),
            ("naming.zone_sync", self.zone_sync),
        ] {
            if d.is_zero() {
                return Err((key.into(), "0s".into(), "must be more than zero".into()));
            }
        }
        for (i, t) in self.tlds.iter().enumerate() {
            single(&format!("naming.tlds[{i}]"), t)?;
        }
        Ok(())
    }
}

/// Opens the ledger (per `config.ledger`), the zone store and the keystore under `data_dir`,
/// registers metrics, starts the ledger follower and zone spreading on `tracker`, and returns the
/// naming service over them.
pub async fn start(
    config: &Config,
    data_dir: &Path,
    identity: &NodeIdentity,
    mesh: &mesh::Mesh,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<Naming> {
    let naming_cfg = &config.naming;
    let tld = Name::parse(&naming_cfg.ledger_tld).context("naming.ledger_tld")?;
    let tlds = naming_cfg
        .tlds
        .iter()
        .map(|t| Name::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .context("naming.tlds")?;
    let keys = Keystore::open(data_dir)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sync = SyncMetrics::default();
    let group_metrics = registrar::GroupMetrics::default();
    let mut group = None;
    let (ledger, owner): (Arc<dyn Ledger>, Option<OwnerKey>) = match config.ledger {
        LedgerKind::Embedded => {
            let ledger_dir = data_dir.join("ledger");
            let role = ledger_sync::choose_role(
                naming_cfg.registrar.as_deref(),
                !config.bootstrap.is_empty(),
                naming_cfg.registrar_wait,
                mesh,
                &ledger_dir,
            )
            .await?;
            let opened = ledger_sync::open(
                role,
                &ledger_dir,
                identity,
                EmbeddedConfig {
                    tld: tld.clone(),
                    ..EmbeddedConfig::default()
                },
                clock.clone(),
                mesh,
                &sync,
                group_metrics.refused.clone(),
                shutdown,
                tracker,
            )
            .await?;
            group = Some(opened.group);
            (opened.ledger, Some(OwnerKey::Ed25519(keys.owner_key()?)))
        }
        LedgerKind::Eth => {
            let rpc = config
                .eth_rpc
                .clone()
                .context("eth_rpc is required with ledger = \"eth\"")?;
            let registry_addr = config
                .eth_registry
                .as_deref()
                .context("eth_registry is required with ledger = \"eth\"")?
                .parse()
                .context("eth_registry is not an address")?;
            let mut eth = contracts::EthConfig::new(&rpc, registry_addr);
            eth.tld = tld.clone();
            eth.poll_interval = naming_cfg.eth_poll_interval;
            eth.from_block = naming_cfg.eth_from_block;
            let ledger = contracts::EthLedger::connect(eth)
                .await
                .context("cannot reach the NameRegistry")?;
            let owner = eth_account_key(naming_cfg)?.map(OwnerKey::Secp256k1);
            if owner.is_none() {
                tracing::warn!(
                    "no Ethereum account key (naming.eth_key_file or {ETH_KEY_ENV}): names can be resolved but not registered"
                );
            }
            (Arc::new(ledger), owner)
        }
    };
    let zones = Arc::new(
        ZoneStore::open(&data_dir.join("zones.redb"), ledger.clone(), clock.clone())
            .context("cannot open the zone store")?,
    );

    // One `naming` sub-registry, in this order: the service's, replication's, spreading's.
    let sub = registry.sub_registry_with_prefix("naming");
    let service = NameService::new(
        NameServiceParts {
            ledger: ledger.clone(),
            zones: zones.clone(),
            keys,
            owner,
            tlds,
            clock,
        },
        sub,
    );
    sync.register(sub);
    if let Some(g) = &group {
        group_metrics.register(sub);
        tracker.spawn(
            group_metrics
                .clone()
                .follow(g.clone(), shutdown.clone().cancelled_owned()),
        );
    }
    let spread_metrics = spread::SpreadMetrics::default();
    spread_metrics.register(sub);
    spread::Spreader::start(
        zones.clone(),
        mesh.clone(),
        spread::SpreadConfig {
            republish: naming_cfg.zone_republish,
            sync: naming_cfg.zone_sync,
        },
        spread_metrics,
        shutdown,
        tracker,
    )
    .await
    .context("cannot start zone spreading")?;

    tracker.spawn(
        zones
            .clone()
            .follow_ledger(shutdown.clone().cancelled_owned()),
    );
    // Keep the zone gauge in step with the store.
    tracker.spawn(service.keep_zone_gauge(shutdown.clone().cancelled_owned()));
    tracing::info!(ledger = ledger.kind(), tld = %tld, zones = zones.len(), "naming service ready");
    Ok(Naming { service, group })
}

/// What [`start`] returns.
pub struct Naming {
    /// The naming service.
    pub service: Arc<NameService>,
    /// This node's registrar-group member (embedded ledger only).
    pub group: Option<Arc<naming::raft::RegistrarGroup>>,
}

fn eth_account_key(cfg: &NamingConfig) -> Result<Option<[u8; 32]>> {
    if let Some(path) = &cfg.eth_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read naming.eth_key_file {}", path.display()))?;
        return keystore::read_secret_hex(&text, "naming.eth_key_file").map(Some);
    }
    match std::env::var(ETH_KEY_ENV) {
        Ok(v) => keystore::read_secret_hex(&v, ETH_KEY_ENV).map(Some),
        Err(_) => Ok(None),
    }
}
