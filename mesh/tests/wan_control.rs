//! The libp2p control plane on the emulated WAN: gossip between two nodes takes at least half
//! the RTT of their link in the matrix, a cut link carries nothing, and a healed one carries
//! gossip again.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh::{Mesh, MeshConfig, WanEmulator, WanLink};
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;

const TOPIC: &str = "wan-test";
/// Node 0 publishes; node 1 is far from everyone, node 2 near node 0.
const FAR_MS: f64 = 200.0;
const NEAR_MS: f64 = 20.0;

fn rtt(a: usize, b: usize) -> f64 {
    match (a.min(b), a.max(b)) {
        (x, y) if x == y => 0.0,
        (0, 2) => NEAR_MS,
        _ => FAR_MS,
    }
}

/// Waits for the message whose payload is `want`, up to `within`; `None` if it did not come.
async fn arrival(
    rx: &mut broadcast::Receiver<(mesh::PeerId, Bytes)>,
    want: &[u8],
    within: Duration,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok((_, data))) if data.as_ref() == want => return Some(Instant::now()),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
        }
    }
}

/// Publishes fresh messages from `from` until `rx` gets one, within `deadline`.
async fn until_delivered(
    from: &Mesh,
    rx: &mut broadcast::Receiver<(mesh::PeerId, Bytes)>,
    tag: &str,
    deadline: Duration,
) {
    let start = Instant::now();
    for n in 0.. {
        assert!(
            start.elapsed() < deadline,
            "{tag}: no gossip delivered within {deadline:?}"
        );
        let msg = format!("{tag}-{n}");
        // Publishing fails while no peer subscribed to the topic is known yet.
        let _ = from
            .control()
            .publish(TOPIC, Bytes::from(msg.clone()))
            .await;
        if arrival(rx, msg.as_bytes(), Duration::from_millis(500))
            .await
            .is_some()
        {
            return;
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_pays_the_link_rtt_and_stops_at_a_cut() {
    let wan = WanEmulator::new(3, rtt, 3);
    let mut meshes = Vec::new();
    for i in 0..3 {
        let mut config = MeshConfig::local();
        config.wan = Some(WanLink {
            emulator: wan.clone(),
            position: i,
        });
        if let Some(first) = meshes.first() {
            config.control.bootstrap = Mesh::p2p_addrs(first).await;
        }
        let mut seed = [0u8; 32];
        seed[0] = i as u8 + 1;
        let m = Mesh::start(
            mesh::keypair_from_seed(seed),
            config,
            &mut Registry::default(),
        )
        .await
        .unwrap();
        let addrs = m.p2p_addrs().await;
        assert!(
            addrs.iter().all(|a| a.to_string().contains("/tcp/")),
            "under emulation libp2p listens on TCP only: {addrs:?}"
        );
        // As a node does (src/svc_mesh.rs): members re-dial each other's advertised p2p
        // address when a connection is lost.
        let p2p = addrs[0].to_string();
        m.advertise([("p2p".to_string(), p2p)].into()).await;
        meshes.push(m);
    }
    let mut far = meshes[1].control().subscribe(TOPIC).await.unwrap();
    let mut near = meshes[2].control().subscribe(TOPIC).await.unwrap();
    let publisher = &meshes[0];
    until_delivered(publisher, &mut far, "warm-far", Duration::from_secs(20)).await;
    until_delivered(publisher, &mut near, "warm-near", Duration::from_secs(20)).await;

    let (mut to_far, mut to_near) = (Vec::new(), Vec::new());
    for n in 0..5 {
        let msg = format!("timed-{n}");
        let sent = Instant::now();
        publisher
            .control()
            .publish(TOPIC, Bytes::from(msg.clone()))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            arrival(&mut far, msg.as_bytes(), Duration::from_secs(5)),
            arrival(&mut near, msg.as_bytes(), Duration::from_secs(5)),
        );
        to_far.push(a.expect("far node got the message") - sent);
        to_near.push(b.expect("near node got the message") - sent);
    }
    let (far_t, near_t) = (median(to_far), median(to_near));
    eprintln!(
        "gossip one way: far {far_t:?} (RTT {FAR_MS} ms), near {near_t:?} (RTT {NEAR_MS} ms)"
    );
    // Delays are imposed, so these lower bounds hold however loaded the machine is.
    assert!(
        far_t >= Duration::from_secs_f64(FAR_MS / 2000.0),
        "far gossip in {far_t:?}: the 200 ms link was not delayed"
    );
    assert!(
        near_t >= Duration::from_secs_f64(NEAR_MS / 2000.0),
        "near gossip in {near_t:?}: the 20 ms link was not delayed"
    );
    assert!(near_t < far_t, "near {near_t:?} not before far {far_t:?}");

    // Cut node 1 off from both others: nothing reaches it.
    wan.set_cut(0, 1, true);
    wan.set_cut(1, 2, true);
    for n in 0..3 {
        let msg = format!("cut-{n}");
        let _ = publisher
            .control()
            .publish(TOPIC, Bytes::from(msg.clone()))
            .await;
        assert!(
            arrival(&mut far, msg.as_bytes(), Duration::from_millis(700))
                .await
                .is_none(),
            "gossip crossed a cut link"
        );
    }
    // Healed: connections are dialled again and gossip flows.
    wan.set_cut(0, 1, false);
    wan.set_cut(1, 2, false);
    until_delivered(publisher, &mut far, "healed", Duration::from_secs(30)).await;

    for m in &meshes {
        m.leave(Duration::from_millis(300)).await;
    }
}
