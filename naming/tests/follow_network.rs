//! A follower over an in-process [`LedgerNetwork`]: its replica follows the registrar's log,
//! its owners' transactions are forwarded and answered once the replica holds them, batches that
//! do not verify are refused and counted, and an unreachable registrar is named in the error.
//! (The node's network is the mesh, `src/names/ledger_sync.rs`; `tests/naming_mesh.rs` runs it.)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use naming::ed25519_dalek::SigningKey;
use naming::{
    EmbeddedConfig, EmbeddedLedger, FollowerLedger, Ledger, LedgerError, LedgerNetwork,
    ManualClock, Name, OwnerKey, SyncMetrics, follow_registrar,
};

const NOW: u64 = 1_800_000_000;

fn open(dir: &std::path::Path, seed: u8, clock: &ManualClock) -> EmbeddedLedger {
    EmbeddedLedger::open(
        &dir.join(format!("registrar-{seed}")),
        SigningKey::from_bytes(&[seed; 32]),
        EmbeddedConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap()
    .0
}

fn replica(dir: &std::path::Path, key: [u8; 32], clock: &ManualClock) -> EmbeddedLedger {
    EmbeddedLedger::open_follower(
        &dir.join("follower"),
        key,
        EmbeddedConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap()
    .0
}

fn owner(seed: u8) -> OwnerKey {
    OwnerKey::Ed25519(SigningKey::from_bytes(&[seed; 32]))
}

fn zone_key(seed: u8) -> [u8; 32] {
    SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// The registrar in the same process; `up: false` answers nothing.
struct Local {
    registrar: EmbeddedLedger,
    up: bool,
}

#[async_trait]
impl LedgerNetwork for Local {
    async fn submit(&self, tx: &[u8]) -> Result<u64, LedgerError> {
        if !self.up {
            return Err(LedgerError::Unreachable("connection refused".into()));
        }
        self.registrar.submit_signed(tx).await?;
        Ok(self.registrar.len())
    }

    async fn follow(
        &self,
        from: u64,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, LedgerError>>, LedgerError> {
        if !self.up {
            return Err(LedgerError::Unreachable("connection refused".into()));
        }
        let state = (self.registrar.clone(), from, self.registrar.watch_len());
        let batches = futures::stream::unfold(state, |(l, from, mut len)| async move {
            if from >= *len.borrow_and_update() {
                // Idle: a heartbeat after a while, or the next records.
                let _ = tokio::time::timeout(Duration::from_millis(200), len.changed()).await;
                return Some((Ok(Vec::new()), (l, from, len)));
            }
            let batch = match l.read_frames(from, 64) {
                Ok(r) => r,
                Err(e) => return Some((Err(e), (l, from, len))),
            };
            let next = from + batch.len() as u64;
            let bytes = batch.into_iter().flat_map(|r| r.frame).collect();
            Some((Ok(bytes), (l, next, len)))
        });
        Ok(Box::pin(batches))
    }

    fn registrar(&self) -> String {
        "the-registrar".into()
    }

    fn registrar_admin(&self) -> String {
        "http://192.0.2.1:7300".into()
    }
}

#[tokio::test]
async fn forwards_transactions_and_follows_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let reg = open(dir.path(), 1, &clock);
    reg.register(&name("a.proxima"), &owner(10), zone_key(20), 1)
        .await
        .unwrap();
    let local = replica(dir.path(), reg.registrar_key(), &clock);
    let network: Arc<dyn LedgerNetwork> = Arc::new(Local {
        registrar: reg.clone(),
        up: true,
    });
    let metrics = SyncMetrics::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follow = tokio::spawn(follow_registrar(
        network.clone(),
        local.clone(),
        metrics.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let ledger = FollowerLedger::new(local.clone(), network, metrics.clone());

    // Records written before the follower came are replicated.
    let mut len = local.watch_len();
    tokio::time::timeout(Duration::from_secs(10), len.wait_for(|n| *n >= 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ledger.lookup(&name("a.proxima")).await.unwrap(),
        reg.lookup(&name("a.proxima")).await.unwrap()
    );

    // A registration through the follower is sealed by the registrar and answered from the
    // replica once it holds it.
    let entry = ledger
        .register(&name("b.proxima"), &owner(11), zone_key(21), 2)
        .await
        .unwrap();
    assert_eq!(Some(entry), reg.lookup(&name("b.proxima")).await.unwrap());
    assert_eq!(local.len(), 2);
    assert_eq!(metrics.forwarded.get(), 1);
    // The gauge follows right after the append the answer waited for.
    tokio::time::timeout(Duration::from_secs(10), async {
        while metrics.records.get() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("records gauge");
    // The registrar's refusal comes back as it is.
    let err = ledger
        .register(&name("b.proxima"), &owner(12), zone_key(22), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::Taken(_)), "{err:?}");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), follow)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_registrar_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let reg = open(dir.path(), 1, &clock);
    let local = replica(dir.path(), reg.registrar_key(), &clock);
    let network = Arc::new(Local {
        registrar: reg,
        up: false,
    });
    let ledger = FollowerLedger::new(local, network, SyncMetrics::default());
    let err = ledger
        .register(&name("a.proxima"), &owner(10), zone_key(20), 1)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ledger unreachable: the ledger registrar the-registrar (admin http://192.0.2.1:7300) \
         cannot be reached: connection refused"
    );
}

#[tokio::test]
async fn refuses_and_counts_a_log_that_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let reg = open(dir.path(), 1, &clock);
    // Another registrar's log (valid chain and signatures, wrong key) behind the network.
    let rogue = open(dir.path(), 2, &clock);
    rogue
        .register(&name("a.proxima"), &owner(66), zone_key(67), 1)
        .await
        .unwrap();
    let local = replica(dir.path(), reg.registrar_key(), &clock);
    let metrics = SyncMetrics::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follow = tokio::spawn(follow_registrar(
        Arc::new(Local {
            registrar: rogue,
            up: true,
        }),
        local.clone(),
        metrics.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::time::timeout(Duration::from_secs(10), async {
        while metrics.refused.get() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the batch is refused on every attempt");
    assert_eq!(local.len(), 0);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), follow)
        .await
        .unwrap()
        .unwrap();
}
