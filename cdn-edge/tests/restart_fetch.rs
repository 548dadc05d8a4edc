//! A node restarted with the same key fetches at once, even though the provider still lists a
//! peer that has gone away.
//!
//! The sequence of `benches/cdn-transfer` (issue 7): a client fetches a blob and exits, another
//! node talks to the provider and exits, then the client is started again with the same key
//! (same peer id, new SWIM generation) and fetches. The provider's DHT routing table still holds
//! the departed node, so the client's provider lookup picks it up as a peer to ask; a QUIC dial
//! to a process that is gone only fails at the handshake timeout (5 s). The lookup must answer
//! with the providers already found instead of waiting for that dial (it used to: the first
//! fetch after the restart stalled for ~5 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdn_edge::Hash;
use cdn_edge::fetch::{FetchConfig, Fetcher};
use cdn_edge::store::{Store, StoreConfig};
use cdn_edge::transfer::Server;
use mesh::{MemberState, Mesh, MeshConfig};
use prometheus_client::registry::Registry;

/// Well under the 5 s the lookup used to wait for a dead peer's dial (and under the 5 s
/// stall timeout), with room for a loaded machine.
const FIRST_FETCH_DEADLINE: Duration = Duration::from_millis(2500);

/// A mesh node on a runtime of its own, so that it can be killed abruptly like a crashed
/// process (no goodbye to its peers).
struct Node {
    rt: Option<tokio::runtime::Runtime>,
    mesh: Mesh,
}

impl Node {
    fn start(seed: u8, bootstrap: Option<mesh::Multiaddr>) -> Node {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mesh = rt.block_on(async {
            let mut config = MeshConfig::local();
            config.control.bootstrap = bootstrap.into_iter().collect();
            Mesh::start(
                mesh::keypair_from_seed([seed; 32]),
                config,
                &mut Registry::default(),
            )
            .await
            .unwrap()
        });
        Node { rt: Some(rt), mesh }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("running")
    }

    fn p2p(&self) -> mesh::Multiaddr {
        self.rt().block_on(self.mesh.p2p_addrs())[0].clone()
    }

    fn sees_alive(&self, peer: mesh::PeerId) -> bool {
        self.mesh
            .members()
            .iter()
            .any(|m| !m.is_self && m.id.peer == peer && m.state == MemberState::Alive)
    }

    fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !f() {
        assert!(Instant::now() < end, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blob(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Starts a client node with key `seed`, waits until it sees the provider, fetches `hash` into
/// a fresh store under `dir`; returns the node, how long the fetch took and its first group.
fn client_fetch(
    seed: u8,
    boot: &mesh::Multiaddr,
    provider: mesh::PeerId,
    dir: &std::path::Path,
    hash: Hash,
) -> (Node, Duration, f64) {
    let node = Node::start(seed, Some(boot.clone()));
    wait_for(
        "the client sees the provider",
        Duration::from_secs(20),
        || node.sees_alive(provider),
    );
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::open(StoreConfig::new(dir)).unwrap();
    let fetcher = Fetcher::new(store.clone(), node.mesh.clone(), FetchConfig::default());
    let t0 = Instant::now();
    let done = node.rt().block_on(async {
        tokio::time::timeout(Duration::from_secs(30), fetcher.fetch(hash)).await
    });
    let took = t0.elapsed();
    done.expect("the fetch ends").expect("the fetch succeeds");
    assert!(store.contains(hash));
    let first = fetcher
        .records()
        .pop()
        .and_then(|r| r.first_group_ms)
        .expect("a first group");
    (node, took, first)
}

#[test]
fn restarted_node_fetches_without_waiting_for_a_departed_peer() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tmp = tempfile::tempdir().unwrap();

    // The provider: one 4 MiB blob, served and announced.
    let provider = Node::start(1, None);
    let store = Store::open(StoreConfig::new(tmp.path().join("provider"))).unwrap();
    let hash = store
        .import_bytes(&blob(4 << 20, 7), None, true)
        .expect("import");
    Server::new(Arc::new(store.clone()), 64)
        .serve_on(provider.mesh.dataplane())
        .unwrap();
    provider
        .rt()
        .block_on(provider.mesh.control().start_providing(hash.provider_key()))
        .unwrap();
    let boot = provider.p2p();
    let provider_id = provider.mesh.peer_id();

    // First run of the client (key 2); then it exits abruptly.
    let (mut client, took, first) =
        client_fetch(2, &boot, provider_id, &tmp.path().join("client"), hash);
    eprintln!("first client process: fetched in {took:?}, first group at {first:.0} ms");
    let client_id = client.mesh.peer_id();
    client.kill();

    // Another node meets the provider (it enters the provider's routing table) and exits.
    let mut other = Node::start(3, Some(boot.clone()));
    let other_id = other.mesh.peer_id();
    wait_for(
        "the provider sees the other node",
        Duration::from_secs(20),
        || provider.sees_alive(other_id),
    );
    other.kill();

    // The client again, same key: a restarted node.
    let (restarted, took, first) =
        client_fetch(2, &boot, provider_id, &tmp.path().join("client"), hash);
    assert_eq!(restarted.mesh.peer_id(), client_id, "same identity");
    eprintln!("restarted client: fetched in {took:?}, first group at {first:.0} ms");
    assert!(
        took < FIRST_FETCH_DEADLINE,
        "the restarted node's first fetch took {took:?} (first group at {first:.0} ms); \
         limit {FIRST_FETCH_DEADLINE:?}"
    );

    // The lookup itself answers with what it found without waiting for the departed peer.
    let t0 = Instant::now();
    let found = restarted.rt().block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            restarted.mesh.control().providers(hash.provider_key()),
        )
        .await
    });
    let lookup = t0.elapsed();
    let found = found
        .expect("the lookup ends")
        .expect("the lookup succeeds");
    assert!(found.contains(&provider_id), "{found:?}");
    assert!(
        lookup < Duration::from_millis(1500),
        "a provider lookup took {lookup:?}"
    );
}
