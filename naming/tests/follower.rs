//! A read-only replica of the embedded ledger: it takes the registrar's records only when the
//! chain and both signatures verify, forwards its owners' transactions to the registrar, and keeps
//! what it replicated across a restart.

use std::sync::Arc;

use naming::ed25519_dalek::SigningKey;
use naming::{
    EmbeddedConfig, EmbeddedLedger, Ledger, LedgerError, ManualClock, Name, OwnerKey, Tx,
};

const NOW: u64 = 1_800_000_000;

fn registrar(dir: &std::path::Path, seed: u8, clock: &ManualClock) -> EmbeddedLedger {
    EmbeddedLedger::open(
        &dir.join("registrar"),
        SigningKey::from_bytes(&[seed; 32]),
        EmbeddedConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap()
    .0
}

fn follower(dir: &std::path::Path, key: [u8; 32], clock: &ManualClock) -> EmbeddedLedger {
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

fn all_frames(l: &EmbeddedLedger, from: u64) -> Vec<u8> {
    l.read_frames(from, usize::MAX)
        .unwrap()
        .into_iter()
        .flat_map(|r| r.frame)
        .collect()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

#[tokio::test]
async fn replicates_verified_records_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let reg = registrar(dir.path(), 1, &clock);
    reg.register(&name("a.proxima"), &owner(10), zone_key(20), 1)
        .await
        .unwrap();
    reg.register(&name("b.proxima"), &owner(11), zone_key(21), 2)
        .await
        .unwrap();
    let f = follower(dir.path(), reg.registrar_key(), &clock);
    assert!(f.is_follower());
    assert_eq!(f.append_replicated(&all_frames(&reg, 0)).await.unwrap(), 2);
    // Repeating frames already held is harmless.
    assert_eq!(f.append_replicated(&all_frames(&reg, 0)).await.unwrap(), 2);
    assert_eq!(
        f.lookup(&name("b.proxima")).await.unwrap(),
        reg.lookup(&name("b.proxima")).await.unwrap()
    );
    // Local writes are refused on a replica.
    let err = f
        .register(&name("c.proxima"), &owner(12), zone_key(22), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::Refused(_)), "{err:?}");

    // More records later; the replica reopens with what it had and continues.
    reg.renew(&name("a.proxima"), &owner(10), 1).await.unwrap();
    drop(f);
    let f = follower(dir.path(), reg.registrar_key(), &clock);
    assert_eq!(f.len(), 2);
    f.verify_log().unwrap();
    assert_eq!(f.append_replicated(&all_frames(&reg, 2)).await.unwrap(), 3);
    assert_eq!(
        f.lookup(&name("a.proxima")).await.unwrap(),
        reg.lookup(&name("a.proxima")).await.unwrap()
    );
}

#[tokio::test]
async fn refuses_records_that_do_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let reg = registrar(dir.path(), 1, &clock);
    reg.register(&name("a.proxima"), &owner(10), zone_key(20), 1)
        .await
        .unwrap();
    // A log kept by another registrar (valid chain, valid signatures, wrong key).
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue = registrar(rogue_dir.path(), 2, &clock);
    rogue
        .register(&name("a.proxima"), &owner(66), zone_key(67), 1)
        .await
        .unwrap();
    let f = follower(dir.path(), reg.registrar_key(), &clock);
    let err = f
        .append_replicated(&all_frames(&rogue, 0))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("outside the registrar group"),
        "{err}"
    );
    assert_eq!(f.len(), 0);

    // A tampered byte in an otherwise genuine record: the checksum is recomputed by the
    // attacker, so only the signatures catch it.
    let mut frames = all_frames(&reg, 0);
    let body_len = u32::from_be_bytes(frames[..4].try_into().unwrap()) as usize;
    let ts_at = 4 + 1 + 8 + 32; // timestamp: moves the expiry
    frames[ts_at + 7] ^= 1;
    let hash = blake3::hash(&frames[4..4 + body_len]);
    frames[4 + body_len..4 + body_len + 32].copy_from_slice(hash.as_bytes());
    let err = f.append_replicated(&frames).await.unwrap_err();
    assert!(err.to_string().contains("signature"), "{err}");
    assert_eq!(f.len(), 0);

    // Garbage and a truncated frame.
    assert!(f.append_replicated(&[0xff; 64]).await.is_err());
    let frames = all_frames(&reg, 0);
    assert!(
        f.append_replicated(&frames[..frames.len() - 1])
            .await
            .is_err()
    );
    assert_eq!(f.len(), 0);
    assert_eq!(f.append_replicated(&frames).await.unwrap(), 1);
}

#[tokio::test]
async fn forwarded_transactions_are_sealed_by_the_registrar() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let reg = registrar(dir.path(), 1, &clock);
    let f = follower(dir.path(), reg.registrar_key(), &clock);
    let tx = f
        .owner_tx(
            &name("a.proxima"),
            &owner(10),
            Tx::Register {
                zone_key: zone_key(20),
                periods: 1,
            },
        )
        .unwrap();
    let entry = reg.submit_signed(&tx).await.unwrap();
    assert_eq!(entry.zone_key, zone_key(20));
    assert_eq!(reg.owner_of(&owner(10)).unwrap(), entry.owner);
    reg.verify_log().unwrap();
    // The same transaction again is out of step (the registrar moved on).
    assert_eq!(
        reg.submit_signed(&tx).await.unwrap_err(),
        LedgerError::OutOfStep(1)
    );
    f.append_replicated(&all_frames(&reg, 0)).await.unwrap();
    // Rules hold for forwarded transactions: someone else cannot renew it.
    let tx = f
        .owner_tx(&name("a.proxima"), &owner(11), Tx::Renew { periods: 1 })
        .unwrap();
    assert!(matches!(
        reg.submit_signed(&tx).await.unwrap_err(),
        LedgerError::NotOwner(_)
    ));
    // A forged owner signature is refused.
    let mut tx = f
        .owner_tx(&name("a.proxima"), &owner(10), Tx::Renew { periods: 1 })
        .unwrap();
    let n = tx.len();
    tx[n - 1] ^= 1;
    assert!(
        reg.submit_signed(&tx)
            .await
            .unwrap_err()
            .to_string()
            .contains("signature")
    );
    // A follower whose clock is far off cannot backdate a registration.
    let skewed = ManualClock::new(NOW - 3600);
    let f2 = follower(
        tempfile::tempdir().unwrap().path(),
        reg.registrar_key(),
        &skewed,
    );
    f2.append_replicated(&all_frames(&reg, 0)).await.unwrap();
    let tx = f2
        .owner_tx(&name("a.proxima"), &owner(10), Tx::Renew { periods: 1 })
        .unwrap();
    assert!(
        reg.submit_signed(&tx)
            .await
            .unwrap_err()
            .to_string()
            .contains("clock")
    );
    // Undecodable input.
    assert!(reg.submit_signed(&[1, 2, 3]).await.is_err());
    assert!(reg.submit_signed(&vec![0; 5000]).await.is_err());
    assert_eq!(reg.len(), 1);
}

#[tokio::test]
async fn one_owner_cannot_flood_the_registrar() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let reg = registrar(dir.path(), 1, &clock);
    // A forwarded transaction from the same owner, built before the flood (the rate limit is
    // checked before the transaction's place in the log).
    let f = follower(dir.path(), reg.registrar_key(), &clock);
    let forwarded = f
        .owner_tx(
            &name("forwarded.proxima"),
            &owner(10),
            Tx::Register {
                zone_key: zone_key(20),
                periods: 1,
            },
        )
        .unwrap();
    // The burst is taken, then registrations are refused (the bucket refills at 2/s while
    // the loop runs, so a few more may pass first; never many).
    let burst = naming::embedded::OWNER_BURST as usize;
    let mut refused = None;
    for i in 0..burst * 2 {
        match reg
            .register(&name(&format!("n{i}.proxima")), &owner(10), zone_key(20), 1)
            .await
        {
            Ok(_) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (at, err) = refused.expect("an owner flooding the registrar is refused");
    assert!(err.to_string().contains("rate limited"), "{err}");
    assert!(at >= burst && at < burst + 20, "refused after {at}");
    // Forwarded transactions count against the same owner.
    let err = reg.submit_signed(&forwarded).await.unwrap_err();
    assert!(err.to_string().contains("rate limited"), "{err}");
    // Another owner is not affected.
    reg.register(&name("other.proxima"), &owner(11), zone_key(21), 1)
        .await
        .unwrap();
}
