//! The SWIM identity in a packet's header must be the peer id the QUIC connection authenticated:
//! a peer that announces itself joins; a peer that announces another identity is refused and
//! counted, and the claimed identity never appears in the view.

use std::time::{Duration, Instant};

use foca::{Codec, Header, Message, PostcardCodec};
use mesh::membership::{MemberMeta, SWIM_ALPN, encode_envelope};
use mesh::{DataPlane, DataPlaneConfig, MemberId, Mesh, MeshConfig};
use prometheus_client::registry::Registry;

fn refused(registry: &Registry) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .find(|l| l.starts_with("swim_refused_packets_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Sends one SWIM packet whose header claims `src`, over a connection authenticated as `plane`.
async fn announce(plane: &DataPlane, to: &MemberId, src: MemberId) {
    let header = Header {
        src,
        src_incarnation: 0,
        dst: to.clone(),
        message: Message::Announce,
    };
    let mut packet = Vec::new();
    PostcardCodec.encode_header(&header, &mut packet).unwrap();
    let envelope = encode_envelope(&MemberMeta::default(), &packet).unwrap();
    let mut stream = plane.open_uni(to.peer, to.quic, SWIM_ALPN).await.unwrap();
    mesh::frame::write(&mut stream, &envelope).await.unwrap();
    stream.finish().unwrap();
    let _ = stream.stopped().await;
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_claiming_another_identity_are_refused() {
    let mut registry = Registry::default();
    let node = Mesh::start(
        mesh::keypair_from_seed([1; 32]),
        MeshConfig::local(),
        &mut registry,
    )
    .await
    .unwrap();
    let target = node.local_member();

    let rogue_key = mesh::keypair_from_seed([2; 32]);
    let rogue = DataPlane::bind(
        "127.0.0.1:0".parse().unwrap(),
        rogue_key.clone(),
        DataPlaneConfig::default(),
        None,
    )
    .unwrap();
    let rogue_addr = rogue.local_addr().unwrap();
    let victim = mesh::keypair_from_seed([3; 32]).public().to_peer_id();

    // Claiming someone else's identity: refused, counted, never in the view.
    let before = refused(&registry);
    announce(
        &rogue,
        &target,
        MemberId {
            peer: victim,
            quic: rogue_addr,
            generation: 1,
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(5), || refused(&registry) > before).await,
        "the forged packet was not counted"
    );
    assert!(!node.members().iter().any(|m| m.id.peer == victim));

    // The same packet in its own name is taken: the check does not refuse honest peers.
    let own = rogue_key.public().to_peer_id();
    announce(
        &rogue,
        &target,
        MemberId {
            peer: own,
            quic: rogue_addr,
            generation: 1,
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(5), || node
            .members()
            .iter()
            .any(|m| m.id.peer == own))
        .await,
        "an honest announce was not taken"
    );
    assert!(!node.members().iter().any(|m| m.id.peer == victim));
    node.leave(Duration::from_millis(100)).await;
}
