//! The ledger conformance battery: one set of checks every [`Ledger`] implementation must pass.
//!
//! An implementation's tests provide a [`LedgerHarness`] (a fresh ledger, funded owners, a way
//! to move the ledger's time) and call each check; `naming`'s tests run it against
//! [`EmbeddedLedger`](crate::EmbeddedLedger), `contracts`' tests against `EthLedger` on a real
//! anvil. Each check panics with a message on failure (it is test code).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use futures::StreamExt;

use crate::ledger::{ChangeKind, Clock, Ledger, LedgerError, Owner, OwnerKey};
use crate::name::Name;
use crate::store::{ZoneRejected, ZoneStore};
use crate::zone::{Record, RecordData, SignedZone, Zone};

/// What the battery needs from an implementation under test.
#[async_trait]
pub trait LedgerHarness: Send + Sync {
    /// The ledger under test (fresh: no names registered).
    fn ledger(&self) -> Arc<dyn Ledger>;
    /// Owner number `i` (0..3), distinct and able to pay fees.
    fn owner(&self, i: usize) -> OwnerKey;
    /// Moves the ledger's time forward by `secs`, and [`clock`](Self::clock) with it.
    async fn advance(&self, secs: u64);
    /// A clock in step with the ledger's time (for the zone store's expiry checks).
    fn clock(&self) -> Arc<dyn Clock>;
}

/// A deterministic zone key for tests.
pub fn zone_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap_or_else(|e| panic!("test name {s}: {e}"))
}

fn signed(n: &Name, seq: u64, key: &SigningKey, ip: [u8; 4]) -> SignedZone {
    let zone = Zone {
        name: n.clone(),
        sequence: seq,
        timestamp: 1,
        records: vec![Record {
            owner: n.clone(),
            ttl: 60,
            data: RecordData::A(ip.into()),
        }],
    };
    SignedZone::sign(zone, key).unwrap_or_else(|e| panic!("sign: {e}"))
}

/// First come, first served: the second registrant is refused while the first is live.
pub async fn first_come(h: &dyn LedgerHarness) {
    let l = h.ledger();
    let n = name("first.proxima");
    let (a, b) = (h.owner(0), h.owner(1));
    let zk = zone_key(1).verifying_key().to_bytes();
    let now = l.now().await.expect("now");
    let e = l.register(&n, &a, zk, 1).await.expect("first registration");
    assert_eq!(e.owner, l.owner_of(&a).expect("owner"));
    assert_eq!(e.zone_key, zk);
    let term = l.term().as_secs();
    assert!(
        e.expiry >= now + term && e.expiry <= now + term + 60,
        "expiry {} not about now {now} + term {term}",
        e.expiry
    );
    assert_eq!(
        l.register(&n, &b, zone_key(2).verifying_key().to_bytes(), 1)
            .await,
        Err(LedgerError::Taken(n.clone()))
    );
    assert_eq!(
        l.register(&n, &a, zk, 1).await,
        Err(LedgerError::Taken(n.clone())),
        "even the owner cannot register twice (renew instead)"
    );
    let got = l.lookup(&n).await.expect("lookup").expect("registered");
    assert_eq!(got, e);
    assert_eq!(l.lookup(&name("nobody.proxima")).await, Ok(None));
}

/// An expired name can be registered by someone else; the old owner can no longer act on it.
pub async fn expiry_and_reregistration(h: &dyn LedgerHarness) {
    let l = h.ledger();
    let n = name("expiring.proxima");
    let (a, b) = (h.owner(0), h.owner(1));
    let e = l
        .register(&n, &a, zone_key(1).verifying_key().to_bytes(), 1)
        .await
        .expect("register");
    let renewed = l.renew(&n, &a, 1).await.expect("renew while live");
    assert_eq!(renewed.expiry, e.expiry + l.term().as_secs());
    h.advance(2 * l.term().as_secs() + 10).await;
    let now = l.now().await.expect("now");
    let old = l.lookup(&n).await.expect("lookup").expect("still recorded");
    assert!(!old.is_live(now), "expired entry reported live");
    assert_eq!(
        l.renew(&n, &a, 1).await,
        Err(LedgerError::Expired(n.clone()))
    );
    assert_eq!(
        l.set_zone_key(&n, &a, zone_key(3).verifying_key().to_bytes())
            .await,
        Err(LedgerError::Expired(n.clone()))
    );
    let e2 = l
        .register(&n, &b, zone_key(2).verifying_key().to_bytes(), 1)
        .await
        .expect("re-registration after expiry");
    assert_eq!(e2.owner, l.owner_of(&b).expect("owner"));
    assert!(e2.is_live(now));
}

/// Transfer moves control: the old owner is refused afterwards, the new one accepted.
pub async fn transfer(h: &dyn LedgerHarness) {
    let l = h.ledger();
    let n = name("moving.proxima");
    let (a, b) = (h.owner(0), h.owner(1));
    let b_id = l.owner_of(&b).expect("owner");
    l.register(&n, &a, zone_key(1).verifying_key().to_bytes(), 1)
        .await
        .expect("register");
    let e = l.transfer(&n, &a, b_id).await.expect("transfer");
    assert_eq!(e.owner, b_id);
    assert_eq!(
        l.lookup(&n).await.expect("lookup").map(|e| e.owner),
        Some(b_id)
    );
    assert_eq!(
        l.set_zone_key(&n, &a, zone_key(9).verifying_key().to_bytes())
            .await,
        Err(LedgerError::NotOwner(n.clone()))
    );
    let e = l
        .set_zone_key(&n, &b, zone_key(2).verifying_key().to_bytes())
        .await
        .expect("new owner sets the key");
    assert_eq!(e.zone_key, zone_key(2).verifying_key().to_bytes());
}

/// Someone else's name: renew, transfer and set-zone-key are refused; unknown names too.
pub async fn non_owner_refused(h: &dyn LedgerHarness) {
    let l = h.ledger();
    let n = name("mine.proxima");
    let (a, b) = (h.owner(0), h.owner(1));
    let e = l
        .register(&n, &a, zone_key(1).verifying_key().to_bytes(), 1)
        .await
        .expect("register");
    let b_id = l.owner_of(&b).expect("owner");
    assert_eq!(
        l.renew(&n, &b, 1).await,
        Err(LedgerError::NotOwner(n.clone()))
    );
    assert_eq!(
        l.transfer(&n, &b, b_id).await,
        Err(LedgerError::NotOwner(n.clone()))
    );
    assert_eq!(
        l.set_zone_key(&n, &b, zone_key(2).verifying_key().to_bytes())
            .await,
        Err(LedgerError::NotOwner(n.clone()))
    );
    assert_eq!(l.lookup(&n).await.expect("lookup"), Some(e), "unchanged");
    let unknown = name("unknown.proxima");
    assert_eq!(
        l.renew(&unknown, &a, 1).await,
        Err(LedgerError::NotRegistered(unknown.clone()))
    );
}

/// Names that are not directly below the ledger's TLD (or are service labels) are refused
/// before anything is written; malformed strings never become a [`Name`] at all.
pub async fn invalid_names_refused(h: &dyn LedgerHarness) {
    let l = h.ledger();
    let a = h.owner(0);
    let zk = zone_key(1).verifying_key().to_bytes();
    for bad in ["proxima", "a.b.proxima", "example.com", "_srv.proxima"] {
        let n = name(bad);
        match l.register(&n, &a, zk, 1).await {
            Err(LedgerError::InvalidName { .. }) => {}
            other => panic!("{bad}: expected InvalidName, got {other:?}"),
        }
    }
    for bad in ["bad_name!.proxima", "UPPER CASE.proxima", "-x.proxima", ""] {
        assert!(Name::parse(bad).is_err(), "{bad:?} parsed as a name");
    }
    assert!(matches!(
        l.register(&name("zerokey.proxima"), &a, [0; 32], 1).await,
        Err(LedgerError::InvalidZoneKey)
    ));
    assert!(matches!(
        l.register(&name("zeroterm.proxima"), &a, zk, 0).await,
        Err(LedgerError::InvalidTerm(_))
    ));
}

/// After a zone-key rotation, zones signed by the old key are refused by the zone store.
pub async fn zone_key_rotation(h: &dyn LedgerHarness, store_dir: &Path) {
    let l = h.ledger();
    let store =
        ZoneStore::open(&store_dir.join("zones.redb"), l.clone(), h.clock()).expect("zone store");
    let n = name("rotating.proxima");
    let a = h.owner(0);
    let (old, new) = (zone_key(1), zone_key(2));
    l.register(&n, &a, old.verifying_key().to_bytes(), 1)
        .await
        .expect("register");
    store
        .accept(signed(&n, 1, &old, [192, 0, 2, 1]))
        .await
        .expect("zone signed by the current key");
    l.set_zone_key(&n, &a, new.verifying_key().to_bytes())
        .await
        .expect("rotate");
    assert_eq!(
        store.accept(signed(&n, 2, &old, [192, 0, 2, 2])).await,
        Err(ZoneRejected::WrongKey(n.clone()))
    );
    store
        .accept(signed(&n, 2, &new, [192, 0, 2, 3]))
        .await
        .expect("zone signed by the new key");
    let held = store.lookup(&n).expect("held");
    assert_eq!(held.zone_key, new.verifying_key().to_bytes());
}

/// The bad-zone refusals, each with its reason: bad signature, stale sequence, expired name,
/// unregistered name.
pub async fn bad_zones_refused(h: &dyn LedgerHarness, store_dir: &Path) {
    let l = h.ledger();
    let store =
        ZoneStore::open(&store_dir.join("zones.redb"), l.clone(), h.clock()).expect("zone store");
    let n = name("guarded.proxima");
    let a = h.owner(0);
    let key = zone_key(5);
    l.register(&n, &a, key.verifying_key().to_bytes(), 1)
        .await
        .expect("register");

    let mut forged = signed(&n, 1, &key, [192, 0, 2, 1]);
    forged.zone.records[0].data = RecordData::A([203, 0, 113, 66].into());
    assert_eq!(
        store.accept(forged).await,
        Err(ZoneRejected::BadSignature(n.clone()))
    );

    store
        .accept(signed(&n, 5, &key, [192, 0, 2, 5]))
        .await
        .expect("good zone");
    for seq in [5, 4] {
        assert_eq!(
            store.accept(signed(&n, seq, &key, [192, 0, 2, 9])).await,
            Err(ZoneRejected::StaleSequence {
                name: n.clone(),
                have: 5,
                got: seq
            })
        );
    }

    let stranger = name("stranger.proxima");
    assert_eq!(
        store
            .accept(signed(&stranger, 1, &key, [192, 0, 2, 1]))
            .await,
        Err(ZoneRejected::NotRegistered(stranger.clone()))
    );

    assert!(store.lookup(&name("www.guarded.proxima")).is_some());
    h.advance(l.term().as_secs() + 10).await;
    assert!(
        store.lookup(&n).is_none(),
        "an expired name must stop resolving"
    );
    assert_eq!(
        store.accept(signed(&n, 6, &key, [192, 0, 2, 6])).await,
        Err(ZoneRejected::Expired(n.clone()))
    );
}

/// The change stream delivers every change once, in order, from any cursor, and then live.
pub async fn change_stream(h: &dyn LedgerHarness) {
    let l = h.ledger();
    let (a, b) = (h.owner(0), h.owner(1));
    let b_id = l.owner_of(&b).expect("owner");
    let (x, y) = (name("stream-x.proxima"), name("stream-y.proxima"));
    let zk = |s| zone_key(s).verifying_key().to_bytes();
    l.register(&x, &a, zk(1), 1).await.expect("register x");
    l.register(&y, &a, zk(2), 1).await.expect("register y");
    // A refused operation must not appear in the stream.
    assert!(l.register(&x, &b, zk(3), 1).await.is_err());
    l.renew(&x, &a, 1).await.expect("renew");
    l.transfer(&y, &a, b_id).await.expect("transfer");
    l.set_zone_key(&y, &b, zk(4)).await.expect("set key");
    let expected = [
        (ChangeKind::Registered, &x),
        (ChangeKind::Registered, &y),
        (ChangeKind::Renewed, &x),
        (ChangeKind::Transferred, &y),
        (ChangeKind::ZoneKeySet, &y),
    ];
    let timeout = std::time::Duration::from_secs(20);
    let mut stream = l.changes(0);
    for (i, (kind, n)) in expected.iter().enumerate() {
        let c = tokio::time::timeout(timeout, stream.next())
            .await
            .unwrap_or_else(|_| panic!("change {i} not delivered"))
            .expect("stream open")
            .expect("change");
        assert_eq!(c.cursor, i as u64);
        assert_eq!((c.kind, &c.entry.name), (*kind, *n), "change {i}");
    }
    let last = l.lookup(&y).await.expect("lookup").expect("y");
    // Nothing more until something happens; then exactly that.
    let none = tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await;
    assert!(none.is_err(), "unexpected extra change: {none:?}");
    l.renew(&y, &b, 1).await.expect("renew y");
    let c = tokio::time::timeout(timeout, stream.next())
        .await
        .expect("live change delivered")
        .expect("open")
        .expect("change");
    assert_eq!((c.cursor, c.kind), (5, ChangeKind::Renewed));
    assert_eq!(c.entry.expiry, last.expiry + l.term().as_secs());
    assert_eq!(c.entry.owner, Owner::clone(&b_id));

    // Resuming from a cursor gives the suffix.
    let mut resumed = l.changes(3);
    let c = tokio::time::timeout(timeout, resumed.next())
        .await
        .expect("resumed")
        .expect("open")
        .expect("change");
    assert_eq!((c.cursor, c.kind), (3, ChangeKind::Transferred));
}
