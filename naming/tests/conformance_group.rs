//! The ledger conformance battery against the registrar group: the ledger under test is what a
//! node's naming service uses (a [`FollowerLedger`] over a member's copy, its transactions routed
//! to the leader), on groups of one and of three members, on three members whose leader is taken
//! down in the middle of each check, and on a node outside the group whose copy is kept by a
//! follow stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use naming::conformance::{self, LedgerHarness};
use naming::ed25519_dalek::SigningKey;
use naming::raft::testing::{Link, LocalNet, Routed, start_member};
use naming::raft::{GroupRouter, GroupSettings, RegistrarGroup};
use naming::{
    Clock, EmbeddedConfig, EmbeddedLedger, FollowerLedger, Ledger, LedgerChange, LedgerEntry,
    LedgerError, LedgerNetwork, ManualClock, Name, Owner, OwnerKey, SyncMetrics, follow_registrar,
};

struct Group {
    net: Arc<LocalNet>,
    /// A way into the group for a node outside it.
    link: Link,
    groups: Vec<Arc<RegistrarGroup>>,
    ledger: Arc<dyn Ledger>,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

impl Group {
    /// `n` members (the first founds the group); the ledger under test is on the last one.
    async fn new(n: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_800_000_000);
        let net = LocalNet::new();
        let founder = key(1).verifying_key().to_bytes();
        let mut members = Vec::new();
        for seed in 1..=n {
            members.push(
                start_member(
                    &net,
                    &dir.path().join(format!("m{seed}")),
                    founder,
                    key(seed),
                    EmbeddedConfig::default(),
                    Arc::new(clock.clone()),
                    GroupSettings::default(),
                )
                .await
                .unwrap(),
            );
        }
        members[0].group.found().await.unwrap();
        for m in &members[1..] {
            members[0].group.add_member(m.group.key()).await.unwrap();
        }
        let groups = members.iter().map(|m| m.group.clone()).collect();
        let link = members[0].link.clone();
        let last = members.pop().unwrap();
        let ledger = Arc::new(FollowerLedger::new(
            last.ledger,
            Arc::new(Routed(last.router)),
            SyncMetrics::default(),
        ));
        Self {
            net,
            link,
            groups,
            ledger,
            clock,
            _dir: dir,
        }
    }

    /// A group of one and a node outside it: the ledger under test is that node's, its copy kept
    /// by [`follow_registrar`] reading the member's log, its transactions routed to the member.
    async fn with_follower() -> Self {
        let mut g = Self::new(1).await;
        let member = g.groups[0].clone();
        let (copy, _) = EmbeddedLedger::open_replica(
            &g._dir.path().join("follower"),
            key(1).verifying_key().to_bytes(),
            None,
            EmbeddedConfig::default(),
            Arc::new(g.clock.clone()),
        )
        .unwrap();
        let network = Arc::new(FollowsMember {
            member: member.clone(),
            router: GroupRouter::new(copy.clone(), None, g.link.clone()),
        });
        tokio::spawn(follow_registrar(
            network.clone(),
            copy.clone(),
            SyncMetrics::default(),
            futures::future::pending::<()>(),
        ));
        g.ledger = Arc::new(FollowerLedger::new(copy, network, SyncMetrics::default()));
        g
    }

    /// The same, with the leader taken down at the third transaction.
    async fn killing_leader(n: u8) -> Self {
        let mut g = Self::new(n).await;
        g.ledger = Arc::new(KillsLeader {
            inner: g.ledger.clone(),
            net: g.net.clone(),
            member: g.groups.last().unwrap().clone(),
            writes: AtomicU32::new(0),
        });
        g
    }
}

/// A node outside the group: it follows the member's log (read from its copy, as the member's
/// `proxima/ledger/1` would serve it) and routes its transactions to it.
struct FollowsMember {
    member: Arc<RegistrarGroup>,
    router: GroupRouter<Link>,
}

#[async_trait]
impl LedgerNetwork for FollowsMember {
    async fn submit(&self, tx: &[u8]) -> Result<u64, LedgerError> {
        self.router.submit(tx).await
    }
    async fn follow(
        &self,
        from: u64,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, LedgerError>>, LedgerError> {
        let log = self.member.ledger().clone();
        let batches = futures::stream::unfold((log, from), |(log, from)| async move {
            let mut len = log.watch_len();
            let _ = tokio::time::timeout(Duration::from_secs(1), len.wait_for(|n| *n > from)).await;
            let frames: Vec<u8> = match log.read_frames(from, 64) {
                Ok(records) => records.into_iter().flat_map(|r| r.frame).collect(),
                Err(e) => return Some((Err(e), (log, u64::MAX))),
            };
            let next = from + naming_frames(&frames);
            Some((Ok(frames), (log, next)))
        });
        Ok(Box::pin(batches))
    }
    fn registrar(&self) -> String {
        "the test group".into()
    }
    fn registrar_admin(&self) -> String {
        "unknown".into()
    }
}

/// Number of frames in a batch (each `u32 len | body | 32-byte hash`).
fn naming_frames(mut b: &[u8]) -> u64 {
    let mut n = 0;
    while b.len() >= 4 {
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        b = &b[(4 + len + 32).min(b.len())..];
        n += 1;
    }
    n
}

#[async_trait]
impl LedgerHarness for Group {
    fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
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

/// A ledger that takes the group's leader down (it neither sends nor receives again) just
/// before its third transaction, so the rest of a check runs across an election.
struct KillsLeader {
    inner: Arc<dyn Ledger>,
    net: Arc<LocalNet>,
    member: Arc<RegistrarGroup>,
    writes: AtomicU32,
}

impl KillsLeader {
    async fn write(&self) {
        if self.writes.fetch_add(1, Ordering::SeqCst) == 2 {
            let leader = self.member.leader().expect("a leader");
            self.net.set_down(leader, true);
            // The ledger under test is on another member than the leader, or the leader is
            // this member (then its transactions go to the next one).
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait]
impl Ledger for KillsLeader {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn tld(&self) -> &Name {
        self.inner.tld()
    }
    fn term(&self) -> Duration {
        self.inner.term()
    }
    async fn now(&self) -> Result<u64, LedgerError> {
        self.inner.now().await
    }
    fn owner_of(&self, key: &OwnerKey) -> Result<Owner, LedgerError> {
        self.inner.owner_of(key)
    }
    async fn lookup(&self, name: &Name) -> Result<Option<LedgerEntry>, LedgerError> {
        self.inner.lookup(name).await
    }
    async fn register(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError> {
        self.write().await;
        self.inner.register(name, owner, zone_key, periods).await
    }
    async fn renew(
        &self,
        name: &Name,
        owner: &OwnerKey,
        periods: u32,
    ) -> Result<LedgerEntry, LedgerError> {
        self.write().await;
        self.inner.renew(name, owner, periods).await
    }
    async fn transfer(
        &self,
        name: &Name,
        owner: &OwnerKey,
        new_owner: Owner,
    ) -> Result<LedgerEntry, LedgerError> {
        self.write().await;
        self.inner.transfer(name, owner, new_owner).await
    }
    async fn set_zone_key(
        &self,
        name: &Name,
        owner: &OwnerKey,
        zone_key: [u8; 32],
    ) -> Result<LedgerEntry, LedgerError> {
        self.write().await;
        self.inner.set_zone_key(name, owner, zone_key).await
    }
    fn changes(&self, from: u64) -> BoxStream<'static, Result<LedgerChange, LedgerError>> {
        self.inner.changes(from)
    }
}

/// One test per check and group shape.
macro_rules! battery {
    ($($shape:ident => $make:expr;)*) => {$(
        mod $shape {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn first_come() {
                conformance::first_come(&$make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expiry_and_reregistration() {
                conformance::expiry_and_reregistration(&$make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn transfer() {
                conformance::transfer(&$make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn non_owner_refused() {
                conformance::non_owner_refused(&$make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn invalid_names_refused() {
                conformance::invalid_names_refused(&$make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn zone_key_rotation() {
                let dir = tempfile::tempdir().unwrap();
                conformance::zone_key_rotation(&$make, dir.path()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bad_zones_refused() {
                let dir = tempfile::tempdir().unwrap();
                conformance::bad_zones_refused(&$make, dir.path()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn change_stream() {
                conformance::change_stream(&$make).await;
            }
        }
    )*};
}

battery! {
    one_member => Group::new(1).await;
    three_members => Group::new(3).await;
    three_members_leader_killed => Group::killing_leader(3).await;
    follower_outside_the_group => Group::with_follower().await;
}
