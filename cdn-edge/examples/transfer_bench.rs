//! The Proxima side of `benches/cdn-transfer`: node-to-node verified transfer over loopback
//! QUIC, and a plain quinn stream of the same bytes without verification.
//!
//! ```text
//! transfer_bench serve DIR SIZE_MIB          # prints "READY <p2p addr> <peer id> <quic addr> <hash>"
//! transfer_bench fetch DIR P2P HASH          # fetcher.fetch(HASH) into a fresh store; prints JSON
//! transfer_bench raw P2P PEER QUIC SIZE      # reads SIZE bytes of one plain stream; prints JSON
//! ```
//!
//! `serve` holds one blob of SIZE_MIB MiB (deterministic bytes) in a store under DIR, serves
//! [`cdn_edge::transfer::ALPN`] and a raw protocol (`bench/raw/1`: the file's bytes on one
//! stream, read from disk, no verification), and announces the blob in the DHT. It runs until
//! its standard input closes.
//!
//! Each client process gets a fresh node key; `TRANSFER_BENCH_SAME_KEY=1` keeps a fixed one
//! (a second client is then the same node restarted). `RUST_LOG` logs to standard error.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdn_edge::Hash;
use cdn_edge::fetch::{FetchConfig, Fetcher};
use cdn_edge::store::{Store, StoreConfig};
use cdn_edge::transfer::Server;
use prometheus_client::registry::Registry;

const RAW_ALPN: &[u8] = b"bench/raw/1";

fn noise_file(path: &Path, size: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut left = size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()
}

async fn start_mesh(seed: u8, bootstrap: Option<&str>) -> mesh::Mesh {
    // Clients get a fresh identity per process (the process id in the key), as separate
    // nodes would have; `TRANSFER_BENCH_SAME_KEY=1` keeps the fixed key instead, so that a
    // second client process is the same node restarted (same peer id, new generation).
    let mut key = [seed; 32];
    if seed != 1 && std::env::var_os("TRANSFER_BENCH_SAME_KEY").is_none() {
        key[..4].copy_from_slice(&std::process::id().to_le_bytes());
    }
    let mut config = mesh::MeshConfig::local();
    if let Some(b) = bootstrap {
        config.control.bootstrap = vec![b.parse().expect("p2p multiaddr")];
    }
    mesh::Mesh::start(
        mesh::keypair_from_seed(key),
        config,
        &mut Registry::default(),
    )
    .await
    .expect("mesh starts")
}

async fn serve(dir: &Path, size_mib: u64) {
    let store = Store::open(StoreConfig::new(dir.join("store"))).expect("store");
    let hash_file = dir.join("hash");
    let hash: Hash = match std::fs::read_to_string(&hash_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(h) if store.contains(h) => h,
        _ => {
            let tmp = store.temp_path();
            noise_file(&tmp, size_mib << 20).expect("data file");
            let h = store.import_file(&tmp, None, true).expect("import");
            std::fs::write(&hash_file, h.to_hex()).expect("hash file");
            h
        }
    };
    let m = start_mesh(1, None).await;
    Server::new(Arc::new(store.clone()), 64)
        .serve_on(m.dataplane())
        .expect("serve");
    let path = store.blob_file_path(hash).expect("a large blob");
    m.dataplane()
        .serve_streams(RAW_ALPN, move |_peer, mut send, _recv| {
            let path = path.clone();
            Box::pin(async move {
                let file = std::fs::File::open(&path).expect("data");
                let size = file.metadata().expect("meta").len();
                let file = Arc::new(file);
                let mut at = 0;
                while at < size {
                    let n = (size - at).min(1 << 20);
                    let f = file.clone();
                    let chunk = tokio::task::spawn_blocking(move || {
                        let mut b = vec![0u8; n as usize];
                        f.read_exact_at(&mut b, at).map(|()| b)
                    })
                    .await
                    .expect("read task")
                    .expect("read");
                    if send.write_chunk(chunk.into()).await.is_err() {
                        return;
                    }
                    at += n;
                }
                let _ = send.finish();
                let _ = send.stopped().await;
            })
        })
        .expect("raw");
    m.control()
        .start_providing(hash.provider_key())
        .await
        .expect("provide");
    let p2p = m.p2p_addrs().await;
    println!(
        "READY {} {} {} {}",
        p2p[0],
        m.peer_id(),
        m.quic_addr(),
        hash
    );
    std::io::stdout().flush().ok();
    // Until our standard input closes.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .ok();
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn max_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_member(m: &mesh::Mesh, peer: Option<mesh::PeerId>) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if m.members().iter().any(|x| {
            !x.is_self && x.state == mesh::MemberState::Alive && peer.is_none_or(|p| p == x.id.peer)
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become a member");
}

async fn fetch(dir: &Path, p2p: &str, hash: Hash) {
    let _ = std::fs::remove_dir_all(dir.join("store"));
    let store = Store::open(StoreConfig::new(dir.join("store"))).expect("store");
    let m = start_mesh(2, Some(p2p)).await;
    wait_member(&m, None).await;
    let fetcher = Fetcher::new(store.clone(), m.clone(), FetchConfig::default());
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    fetcher.fetch(hash).await.expect("fetch");
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let size = store.size(hash).expect("stored");
    let rec = fetcher.records().pop();
    println!(
        "{{\"tool\":\"proxima\",\"bytes\":{size},\"seconds\":{secs:.4},\"mib_s\":{:.1},\"client_cpu_s\":{cpu:.3},\"client_max_rss_kib\":{},\"first_group_ms\":{}}}",
        size as f64 / secs / 1048576.0,
        max_rss_kib(),
        rec.and_then(|r| r.first_group_ms).unwrap_or(-1.0)
    );
}

async fn raw(p2p: &str, peer: &str, quic: &str, size: u64) {
    let m = start_mesh(3, Some(p2p)).await;
    let peer: mesh::PeerId = peer.parse().expect("peer id");
    let addr = quic.parse().expect("quic addr");
    m.dataplane()
        .connect(peer, addr, RAW_ALPN)
        .await
        .expect("connect");
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let (mut send, mut recv) = m
        .dataplane()
        .open_bi(peer, addr, RAW_ALPN)
        .await
        .expect("stream");
    send.write_all(b"go").await.expect("request");
    let _ = send.finish();
    let mut got = 0u64;
    while let Some(chunk) = recv.read_chunk(1 << 20, true).await.expect("read") {
        got += chunk.bytes.len() as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(got, size, "short raw stream");
    println!(
        "{{\"tool\":\"quinn-raw\",\"bytes\":{got},\"seconds\":{secs:.4},\"mib_s\":{:.1},\"client_cpu_s\":{:.3},\"client_max_rss_kib\":{}}}",
        got as f64 / secs / 1048576.0,
        cpu_seconds() - cpu0,
        max_rss_kib()
    );
}

fn main() {
    // Logs to standard error with RUST_LOG (off by default).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["serve", dir, mib] => rt.block_on(serve(Path::new(dir), mib.parse().expect("MiB"))),
        ["fetch", dir, p2p, hash] => {
            rt.block_on(fetch(Path::new(dir), p2p, hash.parse().expect("hash")))
        }
        ["raw", p2p, peer, quic, size] => {
            rt.block_on(raw(p2p, peer, quic, size.parse().expect("size")))
        }
        _ => {
            eprintln!(
                "usage: transfer_bench serve DIR SIZE_MIB | fetch DIR P2P HASH | raw P2P PEER QUIC SIZE"
            );
            std::process::exit(2);
        }
    }
}
