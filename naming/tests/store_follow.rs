//! The zone store follows the ledger: a renewal keeps a zone resolving past its old expiry, a
//! key rotation drops the zone signed by the old key, and subscribers hear of both; held zones
//! survive a reopen.

use std::sync::Arc;
use std::time::Duration;

use naming::conformance::zone_key;
use naming::ed25519_dalek::SigningKey;
use naming::{
    EmbeddedConfig, EmbeddedLedger, Ledger, ManualClock, Name, OwnerKey, Record, RecordData,
    SignedZone, Zone, ZoneStore,
};

fn zone(name: &Name, seq: u64, key: &SigningKey) -> SignedZone {
    SignedZone::sign(
        Zone {
            name: name.clone(),
            sequence: seq,
            timestamp: 0,
            records: vec![Record {
                owner: name.clone(),
                ttl: 60,
                data: RecordData::A([192, 0, 2, 1].into()),
            }],
        },
        key,
    )
    .unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_follows_renewals_and_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000);
    let (ledger, _) = EmbeddedLedger::open(
        &dir.path().join("ledger"),
        SigningKey::from_bytes(&[9; 32]),
        EmbeddedConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let ledger: Arc<dyn Ledger> = Arc::new(ledger);
    let path = dir.path().join("zones.redb");
    let store = Arc::new(ZoneStore::open(&path, ledger.clone(), Arc::new(clock.clone())).unwrap());
    let stop = tokio_util_stop();
    let follower = tokio::spawn(store.clone().follow_ledger(stop.1));
    let mut changes = store.subscribe();

    let owner = OwnerKey::Ed25519(SigningKey::from_bytes(&[2; 32]));
    let (a, b): (Name, Name) = ("a.proxima".parse().unwrap(), "b.proxima".parse().unwrap());
    let (k1, k2) = (zone_key(1), zone_key(2));
    let ea = ledger
        .register(&a, &owner, k1.verifying_key().to_bytes(), 1)
        .await
        .unwrap();
    ledger
        .register(&b, &owner, k1.verifying_key().to_bytes(), 1)
        .await
        .unwrap();
    store.accept(zone(&a, 1, &k1)).await.unwrap();
    store.accept(zone(&b, 1, &k1)).await.unwrap();
    assert_eq!(changes.recv().await.unwrap(), a);
    assert_eq!(changes.recv().await.unwrap(), b);

    // Renew a; move past the first expiry: a still resolves, b (not renewed) does not.
    ledger.renew(&a, &owner, 1).await.unwrap();
    clock.set(ea.expiry + 1);
    until("renewal applied", || store.lookup(&a).is_some()).await;
    assert!(store.lookup(&"www.a.proxima".parse().unwrap()).is_some());
    assert!(store.lookup(&b).is_none(), "expired b still resolves");

    // Rotate a's key: the zone signed by k1 is dropped without anyone re-signing.
    ledger
        .set_zone_key(&a, &owner, k2.verifying_key().to_bytes())
        .await
        .unwrap();
    until("old-key zone dropped", || store.get(&a).is_none()).await;
    store.accept(zone(&a, 2, &k2)).await.unwrap();

    // Reopen: what was held is still held (b kept, expired; a with the new key).
    stop.0.send(()).unwrap();
    follower.await.unwrap();
    drop(store);
    let store = ZoneStore::open(&path, ledger.clone(), Arc::new(clock.clone())).unwrap();
    assert_eq!(
        store.get(&a).unwrap().zone_key,
        k2.verifying_key().to_bytes()
    );
    assert!(store.get(&b).is_some());
    assert!(store.lookup(&a).is_some());
    assert!(
        store.ledger_cursor() >= 4,
        "cursor saved: {}",
        store.ledger_cursor()
    );
}

fn tokio_util_stop() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}
