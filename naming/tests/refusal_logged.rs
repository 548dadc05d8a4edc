//! A refused zone is logged with its reason (operators must see why a zone was dropped).

use std::io::Write;
use std::sync::{Arc, Mutex};

use naming::conformance::zone_key;
use naming::ed25519_dalek::SigningKey;
use naming::{
    EmbeddedConfig, EmbeddedLedger, Ledger, ManualClock, Name, OwnerKey, Record, RecordData,
    SignedZone, Zone, ZoneRejected, ZoneStore,
};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refusals_are_logged_with_the_reason() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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
    let store =
        ZoneStore::open(&dir.path().join("z.redb"), ledger.clone(), Arc::new(clock)).unwrap();
    let name: Name = "logged.proxima".parse().unwrap();
    let key = zone_key(1);
    let owner = OwnerKey::Ed25519(SigningKey::from_bytes(&[2; 32]));
    ledger
        .register(&name, &owner, key.verifying_key().to_bytes(), 1)
        .await
        .unwrap();
    let mut zone = SignedZone::sign(
        Zone {
            name: name.clone(),
            sequence: 1,
            timestamp: 0,
            records: vec![Record {
                owner: name.clone(),
                ttl: 1,
                data: RecordData::A([192, 0, 2, 1].into()),
            }],
        },
        &key,
    )
    .unwrap();
    zone.zone.sequence = 2; // no longer what was signed
    assert_eq!(
        store.accept(zone).await,
        Err(ZoneRejected::BadSignature(name.clone()))
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("zone refused"), "{text}");
    assert!(
        text.contains("reason=\"bad_signature\"") || text.contains("reason=bad_signature"),
        "{text}"
    );
    assert!(text.contains("logged.proxima"), "{text}");
}
