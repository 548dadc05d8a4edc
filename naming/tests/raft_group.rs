//! The registrar group: real openraft nodes with their redb logs and embedded ledgers, joined by
//! an in-process transport that round-trips every message through its JSON encoding (the mesh
//! transport's encoding) and can take a member down. The whole-node tests run the same group
//! over the mesh.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use naming::ed25519_dalek::SigningKey;
use naming::raft::testing::{Link, LocalNet, start_member};
use naming::raft::{
    GroupMessage, GroupReply, GroupRequest, GroupRouter, GroupSettings, RegistrarGroup,
};
use naming::{
    EmbeddedConfig, EmbeddedLedger, Ledger, LedgerError, Name, OwnerKey, SystemClock, Tx,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn founder_key() -> [u8; 32] {
    key(1).verifying_key().to_bytes()
}

fn settings() -> GroupSettings {
    GroupSettings {
        // Small, so that a member that misses a few records must be sent a snapshot.
        snapshot_every: 8,
        ..GroupSettings::default()
    }
}

/// One member: its directory, ledger and group.
struct Node {
    seed: u8,
    dir: PathBuf,
    ledger: EmbeddedLedger,
    group: Arc<RegistrarGroup>,
    router: GroupRouter<Link>,
}

async fn start(net: &Arc<LocalNet>, root: &Path, seed: u8) -> Node {
    let dir = root.join(format!("m{seed}"));
    let m = start_member(
        net,
        &dir,
        founder_key(),
        key(seed),
        EmbeddedConfig::default(),
        Arc::new(SystemClock),
        settings(),
    )
    .await
    .unwrap();
    Node {
        seed,
        dir,
        ledger: m.ledger,
        group: m.group,
        router: m.router,
    }
}

async fn stop(net: &LocalNet, node: Node) -> (u8, PathBuf) {
    net.stop(node.group.key()).await;
    (node.seed, node.dir)
}

fn owner(i: u8) -> OwnerKey {
    OwnerKey::Ed25519(key(100 + i))
}

/// Registers `name` for `owner` from `node`: builds the transaction on the node's replica,
/// routes it to the leader, and catches up and signs again when it was built on an old tip.
async fn register(node: &Node, name: &str, owner: &OwnerKey) -> Result<u64, LedgerError> {
    let name = Name::parse(name).unwrap();
    for _ in 0..10 {
        let tx = node.ledger.owner_tx(
            &name,
            owner,
            Tx::Register {
                zone_key: key(50).verifying_key().to_bytes(),
                periods: 1,
            },
        )?;
        match node.router.submit(&tx).await {
            Err(LedgerError::OutOfStep(n)) => {
                let mut len = node.ledger.watch_len();
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), len.wait_for(|l| *l >= n)).await;
            }
            other => return other,
        }
    }
    Err(LedgerError::Refused("out of step ten times".into()))
}

/// Three members on `net`, the first founding the group and adding the two others.
async fn three_members(net: &Arc<LocalNet>, root: &Path) -> (Node, Node, Node) {
    let a = start(net, root, 1).await;
    let b = start(net, root, 2).await;
    let c = start(net, root, 3).await;
    a.group.found().await.unwrap();
    for m in [&b, &c] {
        a.group.add_member(m.group.key()).await.unwrap();
    }
    (a, b, c)
}

async fn wait_records(ledger: &EmbeddedLedger, n: u64) {
    let mut len = ledger.watch_len();
    tokio::time::timeout(Duration::from_secs(30), len.wait_for(|l| *l >= n))
        .await
        .unwrap_or_else(|_| panic!("replica stuck at {} records, wanted {n}", ledger.len()))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_of_one_founds_on_an_existing_log_and_takes_transactions() {
    let root = tempfile::tempdir().unwrap();
    // A ledger kept alone (before groups existed) with two names.
    {
        let (alone, _) = EmbeddedLedger::open(
            &root.path().join("m1/ledger"),
            key(1),
            EmbeddedConfig::default(),
            Arc::new(SystemClock),
        )
        .unwrap();
        for n in ["old1.proxima", "old2.proxima"] {
            alone
                .register(&Name::parse(n).unwrap(), &owner(0), [7; 32], 1)
                .await
                .unwrap_err(); // [7; 32] is a weak key: refused
            alone
                .register(
                    &Name::parse(n).unwrap(),
                    &owner(0),
                    key(50).verifying_key().to_bytes(),
                    1,
                )
                .await
                .unwrap();
        }
    }
    let net = LocalNet::new();
    let a = start(&net, root.path(), 1).await;
    assert_eq!(a.ledger.len(), 2, "the old log is the group's first state");
    a.group.found().await.unwrap();
    assert_eq!(register(&a, "new.proxima", &owner(1)).await.unwrap(), 3);
    assert_eq!(
        register(&a, "new.proxima", &owner(2)).await,
        Err(LedgerError::Taken(Name::parse("new.proxima").unwrap()))
    );
    // A member added later gets the records no Raft entry carries, by snapshot.
    let b = start(&net, root.path(), 2).await;
    a.group
        .add_member(key(2).verifying_key().to_bytes())
        .await
        .unwrap();
    wait_records(&b.ledger, 4).await; // 3 names + the group record
    assert_eq!(a.ledger.read_log().unwrap(), b.ledger.read_log().unwrap());
    assert_eq!(b.ledger.verify_log().unwrap(), 4);
    let status = a.group.status();
    assert_eq!(status.voters.len(), 2, "{status:?}");
    assert_eq!(status.sealers.len(), 2, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_survive_the_leader_and_a_rejoin_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let net = LocalNet::new();
    let a = start(&net, root.path(), 1).await;
    let b = start(&net, root.path(), 2).await;
    let c = start(&net, root.path(), 3).await;
    a.group.found().await.unwrap();
    for i in 0..3 {
        register(&a, &format!("a{i}.proxima"), &owner(0))
            .await
            .unwrap();
    }
    for m in [&b, &c] {
        a.group.add_member(m.group.key()).await.unwrap();
    }
    // Any member takes a transaction (followers route it to the leader).
    register(&c, "from-c.proxima", &owner(1)).await.unwrap();
    register(&b, "from-b.proxima", &owner(1)).await.unwrap();
    let acknowledged_before = a.ledger.len();

    // The leader dies.
    let leader = a.group.leader().unwrap();
    assert_eq!(leader, a.group.key());
    let killed_at = Instant::now();
    let (a_seed, _) = stop(&net, a).await;
    let mut first = None;
    for i in 0..20 {
        // Keep trying; the router waits out the election.
        if register(&b, &format!("after{i}.proxima"), &owner(2))
            .await
            .is_ok()
        {
            first.get_or_insert(killed_at.elapsed());
        }
    }
    let unavailable = first.expect("no registration after the leader died");
    eprintln!("registration back {unavailable:?} after the leader died");
    assert!(
        unavailable < Duration::from_secs(15),
        "registration unavailable for {unavailable:?}"
    );
    let new_leader = b.group.leader().unwrap();
    assert_ne!(new_leader, leader);
    assert!(b.ledger.len() >= acknowledged_before + 20);

    // The old leader comes back, far behind (its log was purged meanwhile): it catches up.
    let a = start(&net, root.path(), a_seed).await;
    wait_records(&a.ledger, b.ledger.len()).await;
    let n = register(&a, "back.proxima", &owner(3)).await.unwrap();
    for m in [&a, &b, &c] {
        wait_records(&m.ledger, n).await;
    }
    let log = a.ledger.read_log().unwrap();
    assert_eq!(log, b.ledger.read_log().unwrap());
    assert_eq!(log, c.ledger.read_log().unwrap());
    assert_eq!(c.ledger.verify_log().unwrap(), a.ledger.len());
}

/// A leader that dies without closing its connections costs a transaction one wait for its
/// reply, not one per pass while the others elect a new leader: the router skips a member that
/// did not answer (the churn scenario saw registration back 16 s after the leader died, two
/// exchange timeouts, instead of right after the election).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_leader_is_asked_once_per_transaction() {
    let root = tempfile::tempdir().unwrap();
    let net = LocalNet::new();
    let (a, b, _c) = three_members(&net, root.path()).await;
    // b's router now starts at the leader.
    register(&b, "before.proxima", &owner(1)).await.unwrap();
    assert_eq!(b.router.last_leader(), Some(a.group.key()));
    let asked_before = net.submits_to(a.group.key());
    net.set_silent(a.group.key(), true);
    register(&b, "after.proxima", &owner(2))
        .await
        .expect("a registration after the leader fell silent");
    assert_eq!(
        net.submits_to(a.group.key()) - asked_before,
        1,
        "the silent leader is asked once"
    );
    assert_ne!(b.router.last_leader(), Some(a.group.key()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minority_cannot_register_and_the_majority_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let net = LocalNet::new();
    let (a, b, c) = three_members(&net, root.path()).await;
    register(&b, "before.proxima", &owner(0)).await.unwrap();
    // Cut the leader off alone: it keeps believing it leads for a while, but nothing commits.
    net.set_down(a.group.key(), true);
    let cut = register(&a, "minority.proxima", &owner(1)).await;
    assert!(
        matches!(cut, Err(LedgerError::Unreachable(_))),
        "a leader cut off from its majority registered: {cut:?}"
    );
    register(&b, "majority.proxima", &owner(1)).await.unwrap();
    // Heal: the old leader's uncommitted entry is dropped, it follows the majority's log.
    net.set_down(a.group.key(), false);
    wait_records(&a.ledger, b.ledger.len()).await;
    let log = b.ledger.read_log().unwrap();
    assert_eq!(a.ledger.read_log().unwrap(), log);
    let names: Vec<String> = a
        .ledger
        .entries()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    assert!(names.contains(&"majority.proxima".to_string()), "{names:?}");
    assert!(
        !names.contains(&"minority.proxima".to_string()),
        "{names:?}"
    );
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_cannot_seal_or_speak_for_a_member() {
    let root = tempfile::tempdir().unwrap();
    let net = LocalNet::new();
    let a = start(&net, root.path(), 1).await;
    a.group.found().await.unwrap();
    register(&a, "x.proxima", &owner(0)).await.unwrap();
    // A node outside the group cannot seal: its key is not in the group.
    let outsider = start(&net, root.path(), 9).await;
    let tx = outsider
        .ledger
        .owner_tx(
            &Name::parse("y.proxima").unwrap(),
            &owner(0),
            Tx::Register {
                zone_key: key(50).verifying_key().to_bytes(),
                periods: 1,
            },
        )
        .unwrap();
    wait_records(&outsider.ledger, 0).await;
    let sealed = outsider.ledger.seal_signed(&tx).await;
    assert!(sealed.is_err(), "an outsider sealed a record");
    // Nor vote in the group's elections (a certified node outside it, or a removed member), nor
    // add itself.
    let term = a.group.status().term;
    let vote = GroupMessage {
        founder: founder_key(),
        request: GroupRequest::Vote(openraft::raft::VoteRequest::new(
            openraft::Vote::new(1_000, naming::raft::node_id(&outsider.group.key())),
            None,
        )),
    };
    let reply = a.group.handle(outsider.group.key(), vote).await;
    assert!(matches!(reply, GroupReply::Failed(_)), "{reply:?}");
    assert_eq!(
        a.group.status().term,
        term,
        "an outsider's vote request moved the term"
    );
    let add = GroupMessage {
        founder: founder_key(),
        request: GroupRequest::Add {
            key: outsider.group.key(),
        },
    };
    let reply = a.group.handle(outsider.group.key(), add).await;
    assert!(matches!(reply, GroupReply::Failed(_)), "{reply:?}");
    assert_eq!(a.group.status().voters.len(), 1);
    // Nor send a snapshot larger than a member takes (its chunks are held in memory).
    let snapshot = GroupMessage {
        founder: founder_key(),
        request: GroupRequest::Snapshot(openraft::raft::InstallSnapshotRequest {
            vote: openraft::Vote::new(1_000, naming::raft::node_id(&outsider.group.key())),
            meta: Default::default(),
            offset: naming::raft::MAX_SNAPSHOT,
            data: vec![0],
            done: false,
        }),
    };
    let reply = a.group.handle(outsider.group.key(), snapshot).await;
    assert!(matches!(reply, GroupReply::Failed(_)), "{reply:?}");
    assert_eq!(
        a.group.status().term,
        term,
        "an oversized snapshot moved the term"
    );
    // A message about another ledger is refused.
    let reply = a
        .group
        .handle(
            outsider.group.key(),
            GroupMessage {
                founder: [9; 32],
                request: GroupRequest::Submit { tx: tx.clone() },
            },
        )
        .await;
    assert!(matches!(reply, GroupReply::Failed(_)), "{reply:?}");
    // Nor change the group, and a member cannot name an invalid key.
    assert!(outsider.ledger.seal_group(&[outsider.group.key()]).is_err());
    assert!(
        a.ledger.seal_group(&[[0; 32]]).is_err(),
        "a weak key was accepted"
    );
    // A record that continues the group's chain but is sealed by the outsider's key (a copy of
    // the log, kept alone under its key) is refused by a member's state machine.
    let rogue_dir = root.path().join("rogue");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    std::fs::write(rogue_dir.join("ledger.log"), a.ledger.read_log().unwrap()).unwrap();
    let (rogue, _) = EmbeddedLedger::open(
        &rogue_dir,
        key(9),
        EmbeddedConfig::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    rogue
        .register(
            &Name::parse("y.proxima").unwrap(),
            &owner(0),
            key(50).verifying_key().to_bytes(),
            1,
        )
        .await
        .unwrap();
    let frame = rogue
        .read_frames(a.ledger.len(), 1)
        .unwrap()
        .remove(0)
        .frame;
    let body = frame[4..frame.len() - 32].to_vec();
    let err = a.ledger.apply_sealed(body).await.unwrap_err();
    assert!(
        err.to_string().contains("outside the registrar group"),
        "{err}"
    );
    assert_eq!(a.ledger.len(), rogue.len() - 1);
}
