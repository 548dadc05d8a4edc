//! What a mesh believes about identities: identity work is required when configured, and
//! standing reports count by the reporter's standing (signed, rate limited, capped; a forged
//! or unweighted report changes nothing).

use std::time::{Duration, Instant};

use mesh::{Mesh, MeshConfig, PeerId, trust};
use prometheus_client::registry::Registry;

async fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

async fn start(seed: [u8; 32], boot: Option<&Mesh>, work_bits: u32) -> Mesh {
    let mut mc = MeshConfig::local();
    mc.membership.identity_work_bits = work_bits;
    if let Some(b) = boot {
        mc.control.bootstrap = b.p2p_addrs().await;
    }
    let mut registry = Registry::default();
    Mesh::start(mesh::keypair_from_seed(seed), mc, &mut registry)
        .await
        .unwrap()
}

fn sees(m: &Mesh, peer: PeerId) -> bool {
    m.members()
        .iter()
        .any(|x| x.id.peer == peer && x.state == mesh::MemberState::Alive)
}

/// A seed whose identity carries less than `bits` of work.
fn lazy_seed(bits: u32) -> [u8; 32] {
    loop {
        let s: [u8; 32] = rand::random();
        if trust::identity_work(&mesh::keypair_from_seed(s).public().to_peer_id()) < bits {
            return s;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_without_the_required_work_are_not_members() {
    let bits = 8;
    let a = start(trust::mint_identity(bits), None, bits).await;
    let worked = start(trust::mint_identity(bits), Some(&a), bits).await;
    let lazy = start(lazy_seed(bits), Some(&a), bits).await;
    assert!(
        wait_until(Duration::from_secs(10), || sees(&a, worked.peer_id())).await,
        "a worked identity joins"
    );
    // By then the lazy one has announced itself too (same bootstrap); it must not be there.
    assert!(
        wait_until(Duration::from_secs(3), || !sees(&a, lazy.peer_id())).await
            && !sees(&a, lazy.peer_id()),
        "an identity without the work became a member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_reports_count_by_the_reporters_standing() {
    // Three members of an open cluster (every member certified): a report from one counts at
    // the others.
    let a = start(rand::random(), None, 0).await;
    let b = start(rand::random(), Some(&a), 0).await;
    let c = start(rand::random(), Some(&a), 0).await;
    let open = trust::TrustPolicy {
        anchor: None,
        open: true,
    };
    for m in [&a, &b, &c] {
        m.set_trust_policy(open.clone()).await;
    }
    assert!(
        wait_until(Duration::from_secs(15), || {
            [&a, &b, &c].iter().all(|m| {
                m.members()
                    .iter()
                    .filter(|x| x.state == mesh::MemberState::Alive)
                    .count()
                    == 3
            })
        })
        .await,
        "three members"
    );
    let accused = c.peer_id();
    // Gossip needs a moment to form its mesh: report until b counts it (one report per
    // minute per pair is counted, so repeats do not add up).
    let counted = wait_until(Duration::from_secs(20), || {
        a.report_corrupt(accused);
        b.strikes(&accused) > 0
    })
    .await;
    assert!(counted, "b never counted a's report");
    assert_eq!(
        b.strikes(&accused),
        mesh::reports::CERTIFIED_WEIGHT,
        "a second-hand report weighs less than a first-hand one, and once per minute"
    );
    assert_eq!(c.strikes(&accused), 0, "a report about oneself is ignored");

    // Under a real anchor, an uncertified reporter's word weighs nothing without identity work.
    let key = trust::ClusterKey::generate();
    let policy = trust::TrustPolicy {
        anchor: Some(key.public()),
        open: false,
    };
    for m in [&a, &b, &c] {
        m.set_trust_policy(policy.clone()).await;
    }
    let victim = a.peer_id();
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..20 {
        c.report_corrupt(victim);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        b.strikes(&victim),
        0,
        "an uncertified identity demoted a member"
    );
}
