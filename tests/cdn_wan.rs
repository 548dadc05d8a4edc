//! CDN transfer on the emulated WAN (real PlanetLab RTTs on the QUIC data plane): in most
//! draws a node fetches a blob it lacks from the provider nearest to it.
//!
//! Each draw picks (seeded) three provider nodes and one visitor node among six, uploads a
//! fresh 4 MiB blob to the providers (which announce it), waits until the visitor knows all
//! three, and reads the blob through the visitor's gateway with `curl`. The fetch record says
//! which provider the first request went to. The test asserts the majority rule; it prints the
//! rate, the stretch (RTT to the chosen provider / RTT to the nearest) and the cold time to
//! first byte, and `CDN_WAN_DRAWS=N` runs more draws for `benches/cdn-transfer/wan.sh`.

use std::process::Command;
use std::time::Duration;

use cdn_edge::Hash;
use proxima::harness::{Cluster, TestNode, http_get, wait_for, wan_options};

use crate::common::noise;

/// PlanetLab rows the six nodes sit at (spread over continents).
const ROWS: [usize; 6] = [0, 133, 378, 485, 60, 250];

fn planetlab() -> Vec<Vec<f64>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mesh/testdata/planetlab-490.tsv"
    );
    let text = std::fs::read_to_string(path).expect("mesh/testdata/planetlab-490.tsv");
    text.lines()
        .map(|l| l.split('\t').map(|v| v.parse().unwrap()).collect())
        .collect()
}

fn json(url: &str) -> serde_json::Value {
    serde_json::from_str(&http_get(url).unwrap()).unwrap()
}

fn upload(node: &TestNode, hash: Hash, path: &std::path::Path) {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-X",
            "PUT",
            "-H",
            &node.auth_header(),
        ])
        .arg("--data-binary")
        .arg(format!("@{}", path.display()))
        .arg(format!("{}/api/blobs/{hash}", node.admin_url()))
        .status()
        .unwrap();
    assert!(out.success());
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn fetches_go_to_the_nearest_provider_in_most_draws() {
    let draws: usize = std::env::var("CDN_WAN_DRAWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let full = planetlab();
    let rtt = |a: usize, b: usize| {
        if a == b { 0.0 } else { full[ROWS[a]][ROWS[b]] }
    };
    let wan = mesh::WanEmulator::new(ROWS.len(), rtt, 11);
    let cluster = Cluster::start_meshed(
        ROWS.len(),
        |_, _| {},
        |i| wan_options(&wan, i),
        Duration::from_secs(60),
    )
    .expect("six nodes on the emulated WAN see each other");
    let peers: Vec<String> = (0..ROWS.len())
        .map(|i| cluster.node(i).handle().unwrap().info().peer_id.clone())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut seed: u64 = 0x5eed;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut nearest_hits, mut stretches, mut ttfbs) = (0, Vec::new(), Vec::new());
    for draw in 0..draws {
        // Three distinct providers and a fourth node as the visitor.
        let mut order: Vec<usize> = (0..ROWS.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, next(i + 1));
        }
        let (providers, visitor) = (&order[..3], order[3]);
        let data = noise(4 << 20, 1001 + 2 * draw as u64);
        let hash = Hash::of(&data);
        let path = dir.path().join(format!("blob-{draw}"));
        std::fs::write(&path, &data).unwrap();
        for &p in providers {
            upload(cluster.node(p), hash, &path);
        }
        let v = cluster.node(visitor);
        let want: Vec<&String> = providers.iter().map(|&p| &peers[p]).collect();
        wait_for(Duration::from_secs(20), || {
            let known = json(&format!("{}/api/blobs/{hash}/providers", v.admin_url()));
            let known: Vec<&str> = known["providers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["peer"].as_str())
                .collect();
            want.iter().all(|w| known.contains(&w.as_str()))
        })
        .expect("the visitor learns every provider");
        let out = Command::new("curl")
            .args(["-s", "--max-time", "60", "-o"])
            .arg(dir.path().join(format!("got-{draw}")))
            .args(["-w", "%{http_code} %{time_starttransfer}"])
            .arg(format!("http://{}/blob/{hash}", v.addr("http").unwrap()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut parts = text.split_whitespace();
        assert_eq!(parts.next(), Some("200"), "draw {draw}: {text}");
        let ttfb: f64 = parts.next().unwrap().parse().unwrap();
        assert!(std::fs::read(dir.path().join(format!("got-{draw}"))).unwrap() == data);
        let mut rec = serde_json::Value::Null;
        wait_for(Duration::from_secs(10), || {
            rec = json(&format!("{}/api/blobs/fetches", v.admin_url()))
                .as_array()
                .into_iter()
                .flatten()
                .rev()
                .find(|r| r["hash"] == hash.to_hex())
                .cloned()
                .unwrap_or_default();
            rec["first"].is_string()
        })
        .unwrap();
        let first = peers
            .iter()
            .position(|p| rec["first"] == *p)
            .expect("the first provider is a node");
        let nearest = *providers
            .iter()
            .min_by(|a, b| rtt(visitor, **a).total_cmp(&rtt(visitor, **b)))
            .unwrap();
        if first == nearest {
            nearest_hits += 1;
        }
        stretches.push(rtt(visitor, first) / rtt(visitor, nearest));
        ttfbs.push(ttfb * 1000.0);
        eprintln!(
            "draw {draw}: visitor {visitor}, providers {providers:?} at {:?} ms, first request to {first} ({} ms), ttfb {:.0} ms",
            providers
                .iter()
                .map(|&p| rtt(visitor, p).round())
                .collect::<Vec<_>>(),
            rtt(visitor, first).round(),
            ttfb * 1000.0
        );
    }
    stretches.sort_by(f64::total_cmp);
    ttfbs.sort_by(f64::total_cmp);
    eprintln!(
        "nearest provider chosen in {nearest_hits}/{draws} draws; stretch p50 {:.2} max {:.2}; cold TTFB through the gateway p50 {:.0} ms p99 {:.0} ms",
        percentile(&stretches, 0.5),
        stretches.last().unwrap(),
        percentile(&ttfbs, 0.5),
        percentile(&ttfbs, 0.99)
    );
    assert!(
        nearest_hits * 2 > draws,
        "the nearest provider was chosen in only {nearest_hits} of {draws} draws"
    );
}
