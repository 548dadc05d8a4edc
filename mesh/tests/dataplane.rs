//! The QUIC data plane between two real endpoints on loopback: ALPN routing, peer
//! authentication (a dialer expecting another key is refused), connection reuse, bounded frames.

use std::time::Duration;

use mesh::dataplane::{DataPlane, DataPlaneConfig};
use mesh::frame::{self, FrameDecoder, FrameError};

const ECHO: &[u8] = b"test/echo/1";

fn plane(seed: u8) -> DataPlane {
    DataPlane::bind(
        "127.0.0.1:0".parse().unwrap(),
        mesh::keypair_from_seed([seed; 32]),
        DataPlaneConfig::default(),
        None,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_routing_peer_auth_reuse_and_bounds() {
    let server = plane(1);
    let client = plane(2);
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::channel::<String>(4);
    server
        .serve_streams(ECHO, move |peer, mut send, mut recv| {
            let refused = refused_tx.clone();
            Box::pin(async move {
                // The handler learns the authenticated dialer.
                assert_eq!(peer, mesh::keypair_from_seed([2; 32]).public().to_peer_id());
                match FrameDecoder::new(16).read(&mut recv).await {
                    Ok(Some(p)) => {
                        frame::write(&mut send, &p).await.unwrap();
                        send.finish().unwrap();
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = refused.send(e.to_string()).await;
                    }
                }
            })
        })
        .unwrap();
    let addr = server.local_addr().unwrap();
    let server_id = server.local_peer();

    // Echo through an authenticated connection.
    let (mut send, mut recv) = client.open_bi(server_id, addr, ECHO).await.unwrap();
    frame::write(&mut send, b"hello").await.unwrap();
    send.finish().unwrap();
    let back = FrameDecoder::new(16)
        .read(&mut recv)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back[..], b"hello");

    // The connection is reused, and its RTT is measured.
    let a = client.connect(server_id, addr, ECHO).await.unwrap();
    let b = client.connect(server_id, addr, ECHO).await.unwrap();
    assert_eq!(a.stable_id(), b.stable_id());
    assert!(client.rtts().contains_key(&server_id));

    // A dialer expecting another peer at this address is refused by its own verifier.
    let impostor_expected = mesh::keypair_from_seed([9; 32]).public().to_peer_id();
    let err = client
        .open_bi(impostor_expected, addr, ECHO)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed"), "{err}");

    // A protocol the server does not serve fails the handshake.
    assert!(
        tokio::time::timeout(
            Duration::from_secs(5),
            client.open_bi(server_id, addr, b"test/none/1")
        )
        .await
        .unwrap()
        .is_err()
    );

    // An oversized frame is refused by the server before it allocates.
    let (mut send, mut recv) = client.open_bi(server_id, addr, ECHO).await.unwrap();
    frame::write(&mut send, &[0u8; 64]).await.unwrap();
    send.finish().unwrap();
    let why = tokio::time::timeout(Duration::from_secs(5), refused_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(why.contains("exceeds the limit of 16"), "{why}");
    assert!(matches!(
        FrameDecoder::new(16).read(&mut recv).await,
        Ok(None) | Err(FrameError::Io(_))
    ));
}
