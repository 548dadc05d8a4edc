//! Whole-system mesh test: five in-process nodes bootstrap from one, all see all; one is
//! killed and every other declares it dead within the reported bound; it restarts and rejoins;
//! a gracefully stopped node is gone at once. Everything is observed through `/health`.

use std::time::{Duration, Instant};

use mesh::MemberState;
use proxima::harness::{TestNode, wait_for};

/// States of every member `node` lists, keyed by peer id (itself excluded).
fn view(node: &TestNode) -> Vec<(String, MemberState)> {
    node.health()
        .map(|h| {
            h.members
                .into_iter()
                .filter(|m| !m.is_self)
                .map(|m| (m.peer_id, m.state))
                .collect()
        })
        .unwrap_or_default()
}

fn state_of(node: &TestNode, peer: &str) -> Option<MemberState> {
    view(node)
        .into_iter()
        .find(|(p, _)| p == peer)
        .map(|(_, s)| s)
}

fn all_see_all(nodes: &[TestNode], live: &[usize]) -> bool {
    live.iter().all(|&i| {
        view(&nodes[i])
            .iter()
            .filter(|(_, s)| *s == MemberState::Alive)
            .count()
            == live.len() - 1
    })
}

#[test]
fn five_nodes_join_crash_rejoin_leave() {
    let first = TestNode::start(|_| {}).unwrap();
    let boot = first.addr("p2p").expect("p2p address");
    // Bootstrap by address only, as an operator would: no /p2p/<peer id>.
    assert!(!boot.contains("/p2p/"), "{boot}");
    let mut nodes = vec![first];
    for _ in 1..5 {
        let b = boot.clone();
        nodes.push(TestNode::start(move |c| c.bootstrap = vec![b]).unwrap());
    }
    let all: Vec<usize> = (0..5).collect();
    wait_for(Duration::from_secs(20), || all_see_all(&nodes, &all)).expect("all see all");

    // Members carry their service addresses (learned from each member's own packets).
    wait_for(Duration::from_secs(10), || {
        nodes[1].health().is_ok_and(|h| {
            h.members.iter().filter(|m| !m.is_self).all(|m| {
                ["quic", "admin", "dns", "http", "redis"]
                    .iter()
                    .all(|svc| m.addrs.contains_key(*svc))
            })
        })
    })
    .expect("members advertise their service addresses");

    // Crash: no goodbye.
    let victim = nodes[4].health().unwrap().peer_id;
    let bound = mesh::MembershipConfig::lan().detection_bound();
    let t0 = Instant::now();
    nodes[4].kill();
    wait_for(bound + Duration::from_secs(2), || {
        (0..4).all(|i| state_of(&nodes[i], &victim) == Some(MemberState::Dead))
    })
    .expect("every node declares the killed node dead within the bound");
    eprintln!(
        "killed node declared dead by all 4 others after {:?} (bound {bound:?})",
        t0.elapsed()
    );

    // Restart on the same data directory (same key): it rejoins.
    nodes[4].restart().unwrap();
    wait_for(Duration::from_secs(20), || all_see_all(&nodes, &all)).expect("rejoined");

    // Graceful stop: the others record a departure at once.
    let leaver = nodes[3].health().unwrap().peer_id;
    nodes[3].shutdown();
    let t0 = Instant::now();
    wait_for(Duration::from_secs(1), || {
        [0, 1, 2, 4]
            .iter()
            .all(|&i| state_of(&nodes[i], &leaver) == Some(MemberState::Left))
    })
    .unwrap_or_else(|e| {
        for i in [0, 1, 2, 4] {
            eprintln!("node {i}: {:?}", view(&nodes[i]));
        }
        panic!("a graceful stop is seen as a departure at once: {e}")
    });
    eprintln!("graceful stop seen by all after {:?}", t0.elapsed());
}
