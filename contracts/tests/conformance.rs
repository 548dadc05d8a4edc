//! The ledger conformance battery (the same code the embedded ledger passes) against `EthLedger`
//! on a real `anvil`, one fresh chain per test so time travel cannot leak between tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::U256;
use alloy::providers::ext::AnvilApi;
use alloy::providers::{Provider, ProviderBuilder};
use async_trait::async_trait;
use contracts::{EthConfig, EthLedger, deploy};
use naming::conformance::{self, LedgerHarness};
use naming::{Clock, Ledger, ManualClock, OwnerKey};

/// `anvil` from PATH or from the repository's `tools/node_modules/.bin`.
fn anvil_path() -> PathBuf {
    if let Ok(p) = which::which("anvil") {
        return p;
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/node_modules/.bin/anvil");
    assert!(
        local.exists(),
        "anvil not found on PATH or in tools/node_modules/.bin (run scripts/install-deps)"
    );
    local
}

struct Eth {
    anvil: AnvilInstance,
    ledger: EthLedger,
    clock: ManualClock,
}

impl Eth {
    async fn new() -> Self {
        let mut anvil = Anvil::at(anvil_path())
            .host("127.0.0.1")
            .port(0u16)
            .keep_stdout()
            .try_spawn()
            .expect("anvil starts");
        // Drain anvil's log so it never blocks on a full pipe.
        if let Some(mut out) = anvil.child_mut().stdout.take() {
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        }
        let deployer = key(&anvil, 9);
        let (registry, block) = deploy(
            &anvil.endpoint(),
            &deployer,
            Duration::from_secs(30 * 24 * 3600),
            U256::from(1_000_000_000u64),
        )
        .await
        .expect("deploy");
        let mut config = EthConfig::new(&anvil.endpoint(), registry);
        config.poll_interval = Duration::from_millis(50);
        config.from_block = block;
        let ledger = EthLedger::connect(config).await.expect("connect");
        let clock = ManualClock::new(ledger.now().await.expect("now"));
        Self {
            anvil,
            ledger,
            clock,
        }
    }
}

fn key(anvil: &AnvilInstance, i: usize) -> OwnerKey {
    let k = anvil.nth_key(i).expect("anvil key");
    OwnerKey::Secp256k1(k.to_bytes().into())
}

#[async_trait]
impl LedgerHarness for Eth {
    fn ledger(&self) -> Arc<dyn Ledger> {
        Arc::new(self.ledger.clone())
    }
    fn owner(&self, i: usize) -> OwnerKey {
        key(&self.anvil, i)
    }
    async fn advance(&self, secs: u64) {
        let p = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        p.anvil_increase_time(secs).await.expect("increase time");
        p.evm_mine(None).await.expect("mine");
        let now = p
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .expect("block")
            .expect("latest")
            .header
            .timestamp;
        self.clock.set(now);
    }
    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }
}

#[tokio::test]
async fn first_come() {
    conformance::first_come(&Eth::new().await).await;
}

#[tokio::test]
async fn expiry_and_reregistration() {
    conformance::expiry_and_reregistration(&Eth::new().await).await;
}

#[tokio::test]
async fn transfer() {
    conformance::transfer(&Eth::new().await).await;
}

#[tokio::test]
async fn non_owner_refused() {
    conformance::non_owner_refused(&Eth::new().await).await;
}

#[tokio::test]
async fn invalid_names_refused() {
    conformance::invalid_names_refused(&Eth::new().await).await;
}

#[tokio::test]
async fn zone_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    conformance::zone_key_rotation(&Eth::new().await, dir.path()).await;
}

#[tokio::test]
async fn bad_zones_refused() {
    let dir = tempfile::tempdir().unwrap();
    conformance::bad_zones_refused(&Eth::new().await, dir.path()).await;
}

#[tokio::test]
async fn change_stream() {
    conformance::change_stream(&Eth::new().await).await;
}

/// The contract's own refusals surface as the right ledger errors (not just the Rust-side checks).
#[tokio::test]
async fn fee_is_enforced_by_the_contract() {
    let h = Eth::new().await;
    let a = h.owner(0);
    // Calling the contract directly with no value: the named error comes back.
    let registry = contracts::bindings::NameRegistry::new(
        h.ledger.registry(),
        ProviderBuilder::new()
            .wallet(alloy::signers::local::PrivateKeySigner::from(
                h.anvil.nth_key(0).unwrap().clone(),
            ))
            .connect_http(h.anvil.endpoint_url()),
    );
    let zk = conformance::zone_key(1).verifying_key().to_bytes();
    let err = registry
        .register("cheap.proxima".into(), zk.into(), 1)
        .send()
        .await
        .expect_err("no fee paid");
    let decoded = err
        .as_decoded_interface_error::<contracts::bindings::NameRegistry::NameRegistryErrors>()
        .expect("named error");
    assert!(
        matches!(
            decoded,
            contracts::bindings::NameRegistry::NameRegistryErrors::InsufficientFee(_)
        ),
        "{decoded:?}"
    );
    // Through the ledger, the fee is read and paid.
    h.ledger
        .register(&"cheap.proxima".parse().unwrap(), &a, zk, 2)
        .await
        .expect("register with fee");
}
