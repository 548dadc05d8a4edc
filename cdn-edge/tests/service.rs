//! The CDN edge started alone with `cdn_edge::start` and a `Deps` of real parts (a one-node
//! mesh, a store in a temporary directory) and a fake site resolver: it serves blobs and sites,
//! and `shutdown` + `join` stop it without stopping anything else.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use cdn_edge::gateway::SiteResolver;
use cdn_edge::manifest::{FileEntry, Manifest};
use cdn_edge::{CdnConfig, Hash};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Sites from a map: the resolver a test gives instead of the naming service.
struct Sites(HashMap<String, Hash>);

impl SiteResolver for Sites {
    fn manifest_for(&self, host: &str) -> Option<Hash> {
        self.0.get(host).copied()
    }
}

/// `GET path` with `Host: host`; the whole response as text.
fn get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cdn_edge_starts_alone_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::default();
    let mesh = mesh::Mesh::start(
        mesh::keypair_from_seed([7; 32]),
        mesh::MeshConfig::local(),
        &mut Registry::default(),
    )
    .await
    .unwrap();

    // A one-page site: its page is a blob, its manifest another, named by the fake resolver.
    let page = b"<h1>alone</h1>".to_vec();
    let page_hash = Hash::of(&page);
    let mut manifest = Manifest::default();
    manifest.entries.insert(
        "index.html".into(),
        FileEntry {
            hash: page_hash,
            size: page.len() as u64,
            content_type: "text/html; charset=utf-8".into(),
        },
    );
    let manifest_bytes = manifest.encode().unwrap();
    let manifest_hash = Hash::of(&manifest_bytes);
    let sites = Sites(HashMap::from([("alone.test".to_owned(), manifest_hash)]));

    let node_stop = CancellationToken::new();
    let node_tasks = TaskTracker::new();
    let cdn = cdn_edge::start(
        &CdnConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        cdn_edge::Deps {
            store_dir: dir.path().join("blobs"),
            resolver: Arc::new(sites),
            mesh: mesh.clone(),
            identity: None,
            registry: &mut registry,
            shutdown: node_stop.clone(),
            tracker: node_tasks.clone(),
        },
    )
    .await
    .unwrap();
    cdn.store.import_bytes(&page, None, true).unwrap();
    cdn.store.import_bytes(&manifest_bytes, None, true).unwrap();

    let addr = cdn.http_addr;
    let site = tokio::task::spawn_blocking(move || get(addr, "alone.test", "/"))
        .await
        .unwrap()
        .unwrap();
    assert!(site.starts_with("HTTP/1.1 200"), "{site}");
    assert!(site.ends_with("<h1>alone</h1>"), "{site}");
    let raw = tokio::task::spawn_blocking(move || {
        get(addr, "anything", &format!("/blob/{}", page_hash.to_hex()))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(raw.ends_with("<h1>alone</h1>"), "{raw}");
    let unknown = tokio::task::spawn_blocking(move || get(addr, "nobody.test", "/"))
        .await
        .unwrap()
        .unwrap();
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");

    // Stopped alone: its tasks end, the node's token is untouched, the port closes.
    cdn.shutdown();
    tokio::time::timeout(Duration::from_secs(5), cdn.join())
        .await
        .expect("the CDN edge's tasks end after shutdown");
    assert!(!node_stop.is_cancelled());
    let closed = tokio::task::spawn_blocking(move || get(addr, "alone.test", "/"))
        .await
        .unwrap();
    assert!(closed.is_err(), "the gateway still answers: {closed:?}");
    // The node's tracker waited for the service too.
    node_tasks.close();
    tokio::time::timeout(Duration::from_secs(5), node_tasks.wait())
        .await
        .expect("the node's tracker saw the service end");
    mesh.leave(Duration::from_millis(100)).await;
}
