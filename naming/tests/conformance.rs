//! The ledger conformance battery against the embedded ledger.

use std::sync::Arc;

use async_trait::async_trait;
use naming::conformance::{self, LedgerHarness};
use naming::ed25519_dalek::SigningKey;
use naming::{Clock, EmbeddedConfig, EmbeddedLedger, Ledger, ManualClock, OwnerKey};

struct Embedded {
    ledger: EmbeddedLedger,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_800_000_000);
        let (ledger, _) = EmbeddedLedger::open(
            &dir.path().join("ledger"),
            SigningKey::from_bytes(&[200; 32]),
            EmbeddedConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        Self {
            ledger,
            clock,
            _dir: dir,
        }
    }
}

#[async_trait]
impl LedgerHarness for Embedded {
    fn ledger(&self) -> Arc<dyn Ledger> {
        Arc::new(self.ledger.clone())
    }
    fn owner(&self, i: usize) -> OwnerKey {
        OwnerKey::Ed25519(SigningKey::from_bytes(&[100 + i as u8; 32]))
    }
    async fn advance(&self, secs: u64) {
        self.clock.advance(secs);
    }
    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }
}

#[tokio::test]
async fn first_come() {
    conformance::first_come(&Embedded::new()).await;
}

#[tokio::test]
async fn expiry_and_reregistration() {
    conformance::expiry_and_reregistration(&Embedded::new()).await;
}

#[tokio::test]
async fn transfer() {
    conformance::transfer(&Embedded::new()).await;
}

#[tokio::test]
async fn non_owner_refused() {
    conformance::non_owner_refused(&Embedded::new()).await;
}

#[tokio::test]
async fn invalid_names_refused() {
    conformance::invalid_names_refused(&Embedded::new()).await;
}

#[tokio::test]
async fn zone_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    conformance::zone_key_rotation(&Embedded::new(), dir.path()).await;
}

#[tokio::test]
async fn bad_zones_refused() {
    let dir = tempfile::tempdir().unwrap();
    conformance::bad_zones_refused(&Embedded::new(), dir.path()).await;
}

#[tokio::test]
async fn change_stream() {
    conformance::change_stream(&Embedded::new()).await;
}

/// The log survives a reopen with every change, and the whole chain verifies.
#[tokio::test]
async fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let clock = ManualClock::new(1_800_000_000);
    let registrar = SigningKey::from_bytes(&[200; 32]);
    let owner = OwnerKey::Ed25519(SigningKey::from_bytes(&[1; 32]));
    let zk = SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes();
    let mut entries = Vec::new();
    {
        let (l, _) = EmbeddedLedger::open(
            &path,
            registrar.clone(),
            EmbeddedConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        for i in 0..20 {
            let n = format!("n{i}.proxima").parse().unwrap();
            entries.push(l.register(&n, &owner, zk, 1).await.unwrap());
        }
    }
    let (l, report) =
        EmbeddedLedger::open(&path, registrar, EmbeddedConfig::default(), Arc::new(clock)).unwrap();
    assert_eq!(report.records, 20);
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(l.verify_log().unwrap(), 20);
    for e in entries {
        assert_eq!(l.lookup(&e.name).await.unwrap(), Some(e));
    }
}
