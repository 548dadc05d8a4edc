//! The libp2p control plane between real swarms on loopback: gossip publish/subscribe, DHT
//! records with a validator (invalid ones refused and counted), provider records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh::{Mesh, MeshConfig};
use prometheus_client::registry::Registry;

async fn start(seed: u8, bootstrap: Vec<mesh::Multiaddr>) -> Mesh {
    let mut config = MeshConfig::local();
    config.control.bootstrap = bootstrap;
    // Records must start with "ok:" to be stored.
    config.control.validator = Some(Arc::new(|_key: &[u8], value: &[u8]| {
        value.starts_with(b"ok:")
    }));
    Mesh::start(
        mesh::keypair_from_seed([seed; 32]),
        config,
        &mut Registry::default(),
    )
    .await
    .unwrap()
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what} did not happen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_records_and_providers() {
    let a = start(1, vec![]).await;
    let boot = a.p2p_addrs().await[0].clone();
    let b = start(2, vec![boot.clone()]).await;
    let c = start(3, vec![boot]).await;

    // Gossip: b subscribes, a publishes (retrying until the topic mesh has formed).
    let mut rx = b.control().subscribe("zones").await.unwrap();
    let _ = c.control().subscribe("zones").await.unwrap();
    let _ = a.control().subscribe("zones").await.unwrap();
    let start = Instant::now();
    let (from, data) = loop {
        let _ = a
            .control()
            .publish("zones", Bytes::from_static(b"v1"))
            .await;
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "gossip not delivered"
        );
    };
    assert_eq!(from, a.peer_id());
    assert_eq!(&data[..], b"v1");
    assert!(
        a.control()
            .publish(
                "zones",
                Bytes::from(vec![0u8; mesh::control::MAX_GOSSIP + 1])
            )
            .await
            .is_err(),
        "oversized gossip is refused"
    );

    // DHT: a valid record put by a is found by c.
    eventually("record stored", || {
        let a = a.clone();
        async move {
            a.control()
                .put_record(b"k1".to_vec(), b"ok:1".to_vec())
                .await
                .ok()
        }
    })
    .await;
    let v = eventually("record found", || {
        let c = c.clone();
        async move { c.control().get_record(b"k1".to_vec()).await.ok() }
    })
    .await;
    assert_eq!(v, b"ok:1");

    // An invalid record pushed by a peer is refused by the others' validator and counted.
    let _ = b
        .control()
        .put_record(b"k2".to_vec(), b"bad".to_vec())
        .await;
    eventually("invalid record counted", || {
        let (a, c) = (a.clone(), c.clone());
        async move {
            (a.control().invalid_records.get() + c.control().invalid_records.get() > 0)
                .then_some(())
        }
    })
    .await;
    assert!(
        c.control()
            .put_record(b"k3".to_vec(), vec![b'o'; mesh::control::MAX_RECORD + 1])
            .await
            .is_err(),
        "oversized record is refused"
    );

    // Providers: b announces a key, c finds b.
    eventually("provider announced", || {
        let b = b.clone();
        async move { b.control().start_providing(b"blob-h".to_vec()).await.ok() }
    })
    .await;
    let providers = eventually("provider found", || {
        let c = c.clone();
        async move {
            let p = c.control().providers(b"blob-h".to_vec()).await.ok()?;
            (!p.is_empty()).then_some(p)
        }
    })
    .await;
    assert!(providers.contains(&b.peer_id()), "{providers:?}");
}
