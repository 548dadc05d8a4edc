//! A node that crashes and restarts (same identity, same addresses, as a supervised process
//! does) is declared down once, comes back alive everywhere, and is not declared down again
//! while it keeps running.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mesh::MemberState;
use proxima::harness::{Cluster, TestNode, http_get, test_options, wait_for};

fn declared_down(node: &TestNode) -> f64 {
    http_get(&format!("{}/metrics", node.admin_url()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("proxima_mesh_members_declared_down_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn state_of(node: &TestNode, peer: &str) -> Option<MemberState> {
    node.health()
        .ok()?
        .members
        .into_iter()
        .find(|m| m.peer_id == peer)
        .map(|m| m.state)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn restarted_node_is_not_declared_down_again() {
    let (quic, p2p) = (free_udp_port(), free_udp_port());
    let mut cluster = Cluster::start_meshed(
        3,
        move |i, c| {
            if i == 2 {
                c.quic_listen = SocketAddr::from(([127, 0, 0, 1], quic));
                c.p2p_listen = vec![format!("/ip4/127.0.0.1/udp/{p2p}/quic-v1")];
            }
        },
        |_| test_options(),
        Duration::from_secs(20),
    )
    .expect("cluster");
    let peer = cluster.node(2).health().unwrap().peer_id;
    {
        let round = 0;
        let before: Vec<f64> = (0..2).map(|i| declared_down(cluster.node(i))).collect();
        cluster.node_mut(2).kill();
        wait_for(Duration::from_secs(20), || {
            (0..2).all(|i| state_of(cluster.node(i), &peer) == Some(MemberState::Dead))
        })
        .expect("the killed node is declared dead");
        // Restart on the same addresses (the killed runtime frees them in the background).
        wait_for(Duration::from_secs(10), || {
            cluster.node_mut(2).restart().is_ok()
        })
        .expect("restart");
        wait_for(Duration::from_secs(20), || {
            (0..2).all(|i| state_of(cluster.node(i), &peer) == Some(MemberState::Alive))
        })
        .expect("the restarted node is alive everywhere");
        let after_up: Vec<f64> = (0..2).map(|i| declared_down(cluster.node(i))).collect();
        // Watch for a few failure-detection periods: it must stay alive and not go down again.
        let watch = Instant::now();
        while watch.elapsed() < Duration::from_secs(6) {
            for i in 0..2 {
                let s = state_of(cluster.node(i), &peer);
                assert!(
                    matches!(s, Some(MemberState::Alive | MemberState::Suspect)),
                    "round {round}: node {i} sees the restarted node as {s:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        for i in 0..2 {
            let now = declared_down(cluster.node(i));
            assert_eq!(
                now, after_up[i],
                "round {round}: node {i} declared the running node down again"
            );
            assert!(
                after_up[i] <= before[i] + 1.0,
                "round {round}: node {i} declared it down {} times for one crash",
                after_up[i] - before[i]
            );
        }
    }
}
