//! Mesh instances in one process on loopback: libp2p bootstrap without a peer id, SWIM joins,
//! crash detection, graceful leave, restart, and the authenticated data plane.

use std::time::{Duration, Instant};

use mesh::{MemberState, Mesh, MeshConfig};
use prometheus_client::registry::Registry;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A mesh on its own runtime, so it can be dropped abruptly like a crashed process.
struct Node {
    rt: Option<tokio::runtime::Runtime>,
    mesh: Mesh,
    keypair_seed: [u8; 32],
}

impl Node {
    fn start(seed: [u8; 32], bootstrap: Vec<mesh::Multiaddr>) -> Node {
        let rt = runtime();
        let mesh = rt.block_on(async {
            let mut config = MeshConfig::local();
            config.control.bootstrap = bootstrap;
            Mesh::start(
                mesh::keypair_from_seed(seed),
                config,
                &mut Registry::default(),
            )
            .await
            .unwrap()
        });
        Node {
            rt: Some(rt),
            mesh,
            keypair_seed: seed,
        }
    }

    fn p2p(&self) -> mesh::Multiaddr {
        let addrs = self.rt.as_ref().unwrap().block_on(self.mesh.p2p_addrs());
        addrs[0].clone()
    }

    fn alive_peers(&self) -> usize {
        self.mesh
            .members()
            .iter()
            .filter(|m| !m.is_self && m.state == MemberState::Alive)
            .count()
    }

    fn state_of(&self, peer: &mesh::MemberId) -> Option<MemberState> {
        self.mesh
            .members()
            .iter()
            .find(|m| m.id.peer == peer.peer && !m.is_self)
            .map(|m| m.state)
    }

    fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    fn shutdown(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.block_on(self.mesh.leave(Duration::from_millis(500)));
            rt.shutdown_timeout(Duration::from_millis(200));
        }
    }
}

fn wait_for(deadline: Duration, mut f: impl FnMut() -> bool) -> Result<Duration, String> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("condition not met within {deadline:?}"))
}

#[test]
fn join_crash_restart_leave() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let seeds: Vec<[u8; 32]> = (1..=4u8).map(|i| [i; 32]).collect();
    let first = Node::start(seeds[0], vec![]);
    // Bootstrap by address only: no /p2p/<peer id> suffix.
    let boot = first.p2p();
    assert!(!boot.to_string().contains("/p2p/"));
    let mut nodes = vec![first];
    for s in &seeds[1..] {
        nodes.push(Node::start(*s, vec![boot.clone()]));
    }
    wait_for(Duration::from_secs(15), || {
        nodes.iter().all(|n| n.alive_peers() == 3)
    })
    .expect("all see all");

    // Members advertise their QUIC address and coordinates travel with the gossip.
    let views = nodes[0].mesh.status();
    assert!(
        views
            .iter()
            .filter(|m| !m.is_self)
            .all(|m| m.addrs.contains_key("quic"))
    );

    // Crash node 3: every other node declares it dead within the bound.
    let victim = nodes[3].mesh.local_member();
    nodes[3].kill();
    let bound = mesh::MembershipConfig::lan().detection_bound() + Duration::from_secs(2);
    let took = wait_for(bound, || {
        nodes[..3]
            .iter()
            .all(|n| n.state_of(&victim) == Some(MemberState::Dead))
    })
    .expect("crash detected within the bound");
    eprintln!("crash declared dead by all in {took:?} (bound {bound:?})");

    // Restart with the same key: it rejoins with a higher generation.
    let seed = nodes[3].keypair_seed;
    nodes[3] = Node::start(seed, vec![boot.clone()]);
    if let Err(e) = wait_for(Duration::from_secs(15), || {
        nodes.iter().all(|n| n.alive_peers() == 3)
    }) {
        for (i, n) in nodes.iter().enumerate() {
            for m in n.mesh.members() {
                eprintln!(
                    "node {i}: {} gen {} {:?} self={}",
                    m.id.peer, m.id.generation, m.state, m.is_self
                );
            }
        }
        panic!("restarted node rejoins: {e}");
    }

    // Graceful leave: gone at once (well within one probe period).
    let leaver = nodes[2].mesh.local_member();
    nodes[2].shutdown();
    let took = wait_for(Duration::from_secs(2), || {
        [0, 1, 3]
            .iter()
            .all(|&i| nodes[i].state_of(&leaver) == Some(MemberState::Left))
    })
    .unwrap_or_else(|e| {
        for (i, n) in nodes.iter().enumerate() {
            if n.rt.is_none() {
                continue;
            }
            for m in n.mesh.members() {
                eprintln!(
                    "node {i}: {} gen {} {:?} self={}",
                    m.id.peer, m.id.generation, m.state, m.is_self
                );
            }
        }
        panic!("graceful leave seen as a departure at once: {e}")
    });
    eprintln!("graceful leave seen by all in {took:?}");
    for n in &mut nodes {
        n.kill();
    }
}
