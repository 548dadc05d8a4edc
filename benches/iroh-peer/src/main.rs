//! The iroh-blobs peer of `benches/cdn-transfer`: the same verified transfer (BLAKE3/bao,
//! 16 KiB chunk groups, fs store on both sides) with iroh 1.x and iroh-blobs, loopback only
//! (no relays, no address lookup).
//!
//! ```text
//! iroh-peer serve DIR FILE          # prints "READY <endpoint id> <addr> <hash>", runs until stdin closes
//! iroh-peer fetch DIR ID ADDR HASH  # fetches HASH into a fresh store under DIR; prints JSON
//! ```

use std::io::{Read, Write};
use std::time::Instant;

use iroh::endpoint::presets;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, RelayMode};
use iroh_blobs::BlobsProtocol;
use iroh_blobs::store::fs::FsStore;

async fn endpoint() -> anyhow::Result<Endpoint> {
    Ok(Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .bind_addr("127.0.0.1:0")?
        .bind()
        .await?)
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["serve", dir, file] => {
            let store = FsStore::load(std::path::Path::new(dir).join("store")).await?;
            let tag = store.blobs().add_path(std::path::absolute(file)?).await?;
            let ep = endpoint().await?;
            let router = Router::builder(ep.clone())
                .accept(iroh_blobs::ALPN, BlobsProtocol::new(&store, None))
                .spawn();
            println!("READY {} {} {}", ep.id(), ep.bound_sockets()[0], tag.hash);
            std::io::stdout().flush()?;
            tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut sink);
            })
            .await?;
            router.shutdown().await?;
        }
        ["fetch", dir, id, addr, hash] => {
            let root = std::path::Path::new(dir).join("store");
            let _ = std::fs::remove_dir_all(&root);
            let store = FsStore::load(&root).await?;
            let ep = endpoint().await?;
            let hash: iroh_blobs::Hash = hash.parse()?;
            let to = EndpointAddr::new(id.parse()?).with_ip_addr(addr.parse()?);
            let conn = ep.connect(to, iroh_blobs::ALPN).await?;
            let cpu0 = cpu_seconds();
            let t0 = Instant::now();
            let stats = store.remote().fetch(conn, hash).await?;
            let secs = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu0;
            let bytes = stats.payload_bytes_read;
            println!(
                "{{\"tool\":\"iroh-blobs\",\"bytes\":{bytes},\"seconds\":{secs:.4},\"mib_s\":{:.1},\"client_cpu_s\":{cpu:.3},\"client_max_rss_kib\":{}}}",
                bytes as f64 / secs / 1048576.0,
                max_rss_kib()
            );
            store.shutdown().await?;
        }
        _ => {
            eprintln!("usage: iroh-peer serve DIR FILE | fetch DIR ID ADDR HASH");
            std::process::exit(2);
        }
    }
    Ok(())
}
