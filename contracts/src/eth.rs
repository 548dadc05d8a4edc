//! `EthLedger`: the [`Ledger`] trait over the NameRegistry contract on a JSON-RPC endpoint.
//!
//! Reads are `eth_call`s; writes are transactions signed locally by the owner's account key
//! (an [`OwnerKey::Secp256k1`]) and acknowledged once mined. Changes are followed with
//! `eth_getLogs` polling: every event carries a contract-maintained sequence number, which is
//! the [`LedgerChange::cursor`], so a follower resumes exactly where it stopped.

use std::collections::VecDeque;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEventInterface;
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use naming::{
    ChangeKind, Ledger, LedgerChange, LedgerEntry, LedgerError, Name, Owner, OwnerKey,
    check_registrable,
};

use crate::bindings::NameRegistry::{self, NameRegistryErrors, NameRegistryEvents};

/// How to reach a deployed registry.
#[derive(Debug, Clone)]
pub struct EthConfig {
    /// JSON-RPC endpoint (`http://127.0.0.1:8545`).
    pub rpc_url: String,
    /// NameRegistry contract address.
    pub registry: Address,
    /// TLD the registry's names live under.
    pub tld: Name,
    /// How often the change stream polls for new logs.
    pub poll_interval: Duration,
    /// First block to scan for events (the deployment block; 0 scans everything).
    pub from_block: u64,
}

impl EthConfig {
    /// A config with the default TLD (`proxima`), 1 s polling, scanning from block 0.
    pub fn new(rpc_url: &str, registry: Address) -> Self {
        Self {
            rpc_url: rpc_url.to_owned(),
            registry,
            tld: Name::parse("proxima").unwrap_or_else(|_| unreachable!("valid literal")),
            poll_interval: Duration::from_secs(1),
            from_block: 0,
        }
    }
}

/// The Ethereum ledger.
#[derive(Clone)]
pub struct EthLedger {
    config: EthConfig,
    url: reqwest_url::Url,
    reader: DynProvider,
    term: Duration,
}

mod reqwest_url {
    pub(crate) use alloy::transports::http::reqwest::Url;
}

impl std::fmt::Debug for EthLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthLedger")
            .field("rpc", &self.config.rpc_url)
            .field("registry", &self.config.registry)
            .finish()
    }
}

fn unreachable_err(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Unreachable(e.to_string())
}

fn parse_url(url: &str) -> Result<reqwest_url::Url, LedgerError> {
    url.parse()
        .map_err(|e| LedgerError::Unreachable(format!("bad RPC URL {url:?}: {e}")))
}

fn signer(key: &OwnerKey) -> Result<PrivateKeySigner, LedgerError> {
    match key {
        OwnerKey::Secp256k1(secret) => PrivateKeySigner::from_bytes(&B256::from(*secret))
            .map_err(|_| LedgerError::WrongKeyKind("not a valid secp256k1 secret key")),
        OwnerKey::Ed25519(_) => Err(LedgerError::WrongKeyKind(
            "the Ethereum ledger needs an Ethereum account key",
        )),
    }
}

/// The Ethereum address of an account key.
pub fn eth_address(key: &OwnerKey) -> Result<[u8; 20], LedgerError> {
    Ok(signer(key)?.address().into_array())
}

/// Deploys a NameRegistry with `term` per period and `fee` wei per period, paid by `deployer`.
/// Returns the contract address and the deployment block.
pub async fn deploy(
    rpc_url: &str,
    deployer: &OwnerKey,
    term: Duration,
    fee: U256,
) -> Result<(Address, u64), LedgerError> {
    let wallet = EthereumWallet::from(signer(deployer)?);
    let provider = ProviderBuilder::new()
        .wallet(wallet)
        .connect_http(parse_url(rpc_url)?);
    let builder = NameRegistry::deploy_builder(&provider, term.as_secs(), fee);
    let receipt = builder
        .send()
        .await
        .map_err(unreachable_err)?
        .get_receipt()
        .await
        .map_err(unreachable_err)?;
    let address = receipt
        .contract_address
        .ok_or_else(|| LedgerError::Refused("deployment receipt has no contract address".into()))?;
    if !receipt.status() {
        return Err(LedgerError::Refused("deployment reverted".into()));
    }
    let block = receipt.block_number.unwrap_or(0);
    tracing::info!(%address, block, "NameRegistry deployed");
    Ok((address, block))
}

impl EthLedger {
    /// Connects to a deployed registry and reads its term.
    pub async fn connect(config: EthConfig) -> Result<Self, LedgerError> {
        let url = parse_url(&config.rpc_url)?;
        let reader = ProviderBuilder::new().connect_http(url.clone()).erased();
        let registry = NameRegistry::new(config.registry, reader.clone());
        let term = registry.term().call().await.map_err(|e| {
            LedgerError::Unreachable(format!(
                "cannot read the registry at {} via {}: {e}",
                config.registry, config.rpc_url
            ))
        })?;
        Ok(Self {
            config,
            url,
            reader,
            term: Duration::from_secs(term),
        })
    }

    /// The registry address.
    pub fn registry(&self) -> Address {
        self.config.registry
    }

    fn writer(&self, owner: &OwnerKey) -> Result<DynProvider, LedgerError> {
        let wallet = EthereumWallet::from(signer(owner)?);
        Ok(ProviderBuilder::new()
            .wallet(wallet)
            .connect_http(self.url.clone())
            .erased())
    }

    async fn fee(&self, periods: u32) -> Result<U256, LedgerError> {
        let registry = NameRegistry::new(self.config.registry, self.reader.clone());
        let fee = registry.fee().call().await.map_err(unreachable_err)?;
        Ok(fee * U256::from(periods))
    }

    /// Maps a contract error to the ledger's error kinds.
    fn map_error(&self, name: &Name, e: alloy::contract::Error) -> LedgerError {
        if let Some(decoded) = e.as_decoded_interface_error::<NameRegistryErrors>() {
            return match decoded {
                NameRegistryErrors::NameTaken(_) => LedgerError::Taken(name.clone()),
                NameRegistryErrors::NotRegistered(_) => LedgerError::NotRegistered(name.clone()),
                NameRegistryErrors::NameExpired(_) => LedgerError::Expired(name.clone()),
                NameRegistryErrors::NotOwner(_) => LedgerError::NotOwner(name.clone()),
                NameRegistryErrors::InvalidName(_) => LedgerError::InvalidName {
                    name: name.to_string(),
                    reason: "refused by the registry contract".into(),
                },
                NameRegistryErrors::InvalidPeriods(p) => {
                    LedgerError::InvalidTerm(format!("{} periods", p.periods))
                }
                NameRegistryErrors::InvalidZoneKey(_) => LedgerError::InvalidZoneKey,
                NameRegistryErrors::InvalidOwner(_) => {
                    LedgerError::InvalidOwner("0x0000000000000000000000000000000000000000".into())
                }
                NameRegistryErrors::InsufficientFee(f) => LedgerError::InsufficientFee(format!(
                    "required {} wei, paid {}",
                    f.required, f.paid
                )),
                other => LedgerError::Refused(format!("{other:?}")),
            };
        }
        match e {
            alloy::contract::Error::TransportError(t) if t.is_error_resp() => {
                LedgerError::Refused(t.to_string())
            }
            other => LedgerError::Unreachable(other.to_string()),
        }
    }
}

/// Sends `call` and waits for the receipt; maps reverts to ledger errors.
macro_rules! send_and_wait {
    ($self:expr, $name:expr, $call:expr) => {{
        let pending = $call.send().await.map_err(|e| $self.map_error($name, e))?;
        let receipt = pending.get_receipt().await.map_err(unreachable_err)?;
        if !receipt.status() {
            return Err(LedgerError::Refused(format!(
                "transaction {} reverted",
                receipt.transaction_hash
            )));
        }
        $self
            .lookup($name)
            .await?
            .ok_or_else(|| LedgerError::NotRegistered($name.clone()))
    }};
}

#[async_trait]
impl Ledger for EthLedger {
    fn kind(&self) -> &'static str {
        "eth"
    }

    fn tld(&self) -> &Name {
        &self.config.tld
    }

    fn term(&self) -> Duration {
        self.term
    }

    async fn now(&self) -> Result<u64, LedgerError> {
        let block = self
            .reader
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(unreachable_err)?
            .ok_or_else(|| LedgerError::Unreachable("no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    fn owner_of(&self, key: &OwnerKey) -> Result<Owner, LedgerError> {
        Ok(Owner::Eth(eth_address(key)?))
    }

    async fn lookup(&self, name: &Name) -> Result<Option<LedgerEntry>, LedgerError> {
        let registry = NameRegistry::new(self.config.registry, self.reader.clone());
        let e = registry
            .entry(name.to_string())
            .call()
            .await
            .map_err(unreachable_err)?;
        if e.owner == Address::ZERO {
            return Ok(None);
        }
        Ok(Some(LedgerEntry {
            name: name.clone(),
            owner: Owner::Eth(e.owner.into_array()),
            zone_key: e.zoneKey.0,
            expiry: e.expiry,
        }))
    }

    async fn register(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError> {
        check_registrable(name, &self.config.tld)?;
        check_zone_key(&zone_key)?;
        let fee = self.fee(periods).await?;
        let registry = NameRegistry::new(self.config.registry, self.writer(owner)?);
        let call = registry
            .register(name.to_string(), FixedBytes(zone_key), periods)
            .value(fee);
        send_and_wait!(self, name, call)
    }

    async fn renew(
        &self,
        name: &Name,
        owner: &OwnerKey,
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError> {
        check_registrable(name, &self.config.tld)?;
        let fee = self.fee(periods).await?;
        let registry = NameRegistry::new(self.config.registry, self.writer(owner)?);
        let call = registry.renew(name.to_string(), periods).value(fee);
        send_and_wait!(self, name, call)
    }

    async fn transfer(
        &self,
        name: &Name,
        owner: &OwnerKey,
        new_owner: Owner,
    ) -> Result<LedgerEntry, LedgerError> {
        check_registrable(name, &self.config.tld)?;
        let Owner::Eth(addr) = new_owner else {
            return Err(LedgerError::WrongKeyKind(
                "the Ethereum ledger's owners are Ethereum addresses",
            ));
        };
        let registry = NameRegistry::new(self.config.registry, self.writer(owner)?);
        let call = registry.transfer(name.to_string(), Address::from(addr));
        send_and_wait!(self, name, call)
    }

    async fn set_zone_key(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
    ) -> Result<LedgerEntry, LedgerError> {
        check_registrable(name, &self.config.tld)?;
        check_zone_key(&zone_key)?;
        let registry = NameRegistry::new(self.config.registry, self.writer(owner)?);
        let call = registry.setZoneKey(name.to_string(), FixedBytes(zone_key));
        send_and_wait!(self, name, call)
    }

    fn changes(&self, from: u64) -> BoxStream<'static, Result<LedgerChange, LedgerError>> {
        let state = Follow {
            ledger: self.clone(),
            next_seq: from,
            next_block: self.config.from_block,
            buffer: VecDeque::new(),
            failed: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            let item = s.next().await;
            Some((item, s))
        })
        .boxed()
    }
}

fn check_zone_key(key: &[u8; 32]) -> Result<(), LedgerError> {
    match naming::ed25519_dalek::VerifyingKey::from_bytes(key) {
        Ok(k) if !k.is_weak() => Ok(()),
        _ => Err(LedgerError::InvalidZoneKey),
    }
}

/// State of one change stream.
struct Follow {
    ledger: EthLedger,
    next_seq: u64,
    next_block: u64,
    buffer: VecDeque<LedgerChange>,
    /// The last poll failed: wait before retrying.
    failed: bool,
}

impl Follow {
    async fn next(&mut self) -> Result<LedgerChange, LedgerError> {
        loop {
            if let Some(c) = self.buffer.pop_front() {
                return Ok(c);
            }
            if self.failed {
                tokio::time::sleep(self.ledger.config.poll_interval).await;
            }
            match self.poll().await {
                Ok(true) => self.failed = false,
                Ok(false) => {
                    self.failed = false;
                    tokio::time::sleep(self.ledger.config.poll_interval).await;
                }
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
    }

    /// Reads logs of the blocks not seen yet into the buffer; true if any change arrived.
    async fn poll(&mut self) -> Result<bool, LedgerError> {
        let provider = &self.ledger.reader;
        let latest = provider.get_block_number().await.map_err(unreachable_err)?;
        if latest < self.next_block {
            return Ok(false);
        }
        // Bounded ranges: public endpoints refuse huge eth_getLogs spans.
        let to = latest.min(self.next_block + 9_999);
        let filter = Filter::new()
            .address(self.ledger.config.registry)
            .from_block(self.next_block)
            .to_block(to);
        let logs = provider.get_logs(&filter).await.map_err(unreachable_err)?;
        let mut expected = self.next_seq;
        for log in logs {
            let Ok(event) = NameRegistryEvents::decode_log(&log.inner) else {
                continue;
            };
            let (kind, seq, name, owner, zone_key, expiry) = match event.data {
                NameRegistryEvents::Registered(e) => (
                    ChangeKind::Registered,
                    e.seq,
                    e.name,
                    e.owner,
                    e.zoneKey,
                    e.expiry,
                ),
                NameRegistryEvents::Renewed(e) => (
                    ChangeKind::Renewed,
                    e.seq,
                    e.name,
                    e.owner,
                    e.zoneKey,
                    e.expiry,
                ),
                NameRegistryEvents::Transferred(e) => (
                    ChangeKind::Transferred,
                    e.seq,
                    e.name,
                    e.owner,
                    e.zoneKey,
                    e.expiry,
                ),
                NameRegistryEvents::ZoneKeySet(e) => (
                    ChangeKind::ZoneKeySet,
                    e.seq,
                    e.name,
                    e.owner,
                    e.zoneKey,
                    e.expiry,
                ),
                NameRegistryEvents::FeeChanged(_) => continue,
            };
            if seq < expected {
                continue; // before the cursor
            }
            if seq != expected {
                return Err(LedgerError::Refused(format!(
                    "registry events out of sequence: expected {expected}, got {seq}"
                )));
            }
            let Ok(name) = Name::parse(&name) else {
                // The contract refuses most invalid names; skip (but count) what slips through.
                tracing::warn!(seq, name, "registry event for an invalid name; skipped");
                expected += 1;
                continue;
            };
            self.buffer.push_back(LedgerChange {
                cursor: seq,
                kind,
                entry: LedgerEntry {
                    name,
                    owner: Owner::Eth(owner.into_array()),
                    zone_key: zone_key.0,
                    expiry,
                },
            });
            expected += 1;
        }
        self.next_seq = expected;
        self.next_block = to + 1;
        Ok(!self.buffer.is_empty())
    }
}
