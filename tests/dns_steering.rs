//! Steering answers through the mesh: four nodes on an emulated WAN (real PlanetLab RTTs), each
//! serving HTTP on its own loopback address, so that the A records of a site name say which
//! nodes DNS sends a visitor to. Asked at node 0, with `dig`:
//!
//! - nobody announces the site: every node serving HTTP, node 0 first, then nearest first;
//! - two nodes get its manifest through the CDN's blob API (which announces it in the DHT):
//!   only those two, the nearest first (node 0 does not hold it); asked at one of them (the zone
//!   reached it by gossip), that node first;
//! - the nearest holder dies: it leaves the answer;
//! - an explicit A record in the zone wins over steering.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use proxima::harness::{Cluster, TestNode, curl, dig, wait_for, wan_options};

/// The blob whose hash the site record names (DNS needs only its holders).
const MANIFEST: &str = "the bars.proxima site manifest";

/// Rows of mesh/testdata/planetlab-490.tsv: from the first, the others are 8, 50 and 140 ms away.
const ROWS: [usize; 4] = [0, 133, 378, 485];

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

fn proxima(node: &TestNode, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(args)
        .args(["--node", &node.admin_url()])
        .output()
        .expect("the CLI runs");
    assert!(
        out.status.success(),
        "proxima {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The A records `dig` gets for `name` from `node`, in answer order.
fn a_records(node: &TestNode, name: &str) -> Vec<IpAddr> {
    let addr: SocketAddr = node.addr("dns").expect("dns service").parse().unwrap();
    dig(addr, &["+short", name, "A"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn http_ip(i: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, u8::try_from(i + 1).unwrap()])
}

/// Waits until node 0 answers `want` for `name`, or fails with the last answer.
fn expect_answer(cluster: &Cluster, name: &str, want: &[IpAddr], deadline: Duration, why: &str) {
    expect_answer_at(cluster, 0, name, want, deadline, why);
}

/// Waits until node `at` answers `want` for `name`, or fails with the last answer.
fn expect_answer_at(
    cluster: &Cluster,
    at: usize,
    name: &str,
    want: &[IpAddr],
    deadline: Duration,
    why: &str,
) {
    let mut last = Vec::new();
    let ok = wait_for(deadline, || {
        last = a_records(cluster.node(at), name);
        last == want
    });
    assert!(
        ok.is_ok(),
        "{why}: wanted {want:?}, node {at} answers {last:?}"
    );
}

#[test]
fn site_names_answer_with_the_nearest_healthy_holders() {
    let full = planetlab();
    let rtt = |a: usize, b: usize| {
        if a == b { 0.0 } else { full[ROWS[a]][ROWS[b]] }
    };
    let wan = mesh::WanEmulator::new(ROWS.len(), rtt, 5);
    let mut cluster = Cluster::start_meshed(
        ROWS.len(),
        |i, c| c.http_listen = SocketAddr::new(http_ip(i), 0),
        |i| wan_options(&wan, i),
        Duration::from_secs(60),
    )
    .expect("four nodes on the emulated WAN see each other");

    // A site record whose manifest nobody announces yet.
    let manifest = cdn_edge::Hash::of(MANIFEST.as_bytes());
    let node0 = cluster.node(0);
    proxima(node0, &["name", "register", "bars.proxima"]);
    proxima(
        node0,
        &["name", "set", "bars.proxima", "SITE", &manifest.to_hex()],
    );
    let everyone: Vec<IpAddr> = (0..ROWS.len()).map(http_ip).collect();
    expect_answer(
        &cluster,
        "bars.proxima",
        &everyone,
        Duration::from_secs(30),
        "unannounced site: every HTTP node, local first, then by RTT (8, 50, 140 ms)",
    );

    // Nodes 2 (50 ms away) and 3 (140 ms) receive the manifest through the CDN's blob API,
    // which stores it and announces it in the DHT.
    for i in [3, 2] {
        let url = format!(
            "{}/api/blobs/{}",
            cluster.node(i).admin_url(),
            manifest.to_hex()
        );
        let auth = cluster.node(i).auth_header();
        let out = curl(&[
            "-sf",
            "-X",
            "PUT",
            "-H",
            &auth,
            "--data-binary",
            MANIFEST,
            &url,
        ])
        .unwrap();
        assert!(out.status.success(), "upload to node {i}: {out:?}");
    }
    expect_answer(
        &cluster,
        "bars.proxima",
        &[http_ip(2), http_ip(3)],
        Duration::from_secs(30),
        "announced by nodes 2 and 3: only they, nearest first",
    );
    // Asked at node 3 (the zone reached it by gossip): itself first, as it holds the site.
    expect_answer_at(
        &cluster,
        3,
        "bars.proxima",
        &[http_ip(3), http_ip(2)],
        Duration::from_secs(30),
        "asked at holder node 3: itself first, then node 2",
    );
    // AAAA: no holder has an IPv6 address, so NOERROR without records rather than a wrong one.
    let addr: SocketAddr = cluster.node(0).addr("dns").unwrap().parse().unwrap();
    let aaaa = dig(addr, &["bars.proxima", "AAAA"]).unwrap();
    assert!(aaaa.contains("status: NOERROR"), "{aaaa}");
    assert!(aaaa.contains("ANSWER: 0"), "{aaaa}");
    // A short TTL: the steering TTL, not the zone's.
    let full_answer = dig(addr, &["+noall", "+answer", "bars.proxima", "A"]).unwrap();
    let ttl: u32 = full_answer
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .expect("a TTL in the answer");
    assert!(ttl <= 30, "steering TTL {ttl}: {full_answer}");

    // The nearest holder dies: the other one is left, followed by the nearest other gateway
    // (node 0 itself), which can fetch the site from node 3 if node 3 fails too.
    cluster.node_mut(2).kill();
    expect_answer(
        &cluster,
        "bars.proxima",
        &[http_ip(3), http_ip(0)],
        Duration::from_secs(30),
        "node 2 died: node 3, then node 0 as the fallback gateway",
    );

    // Explicit addresses in the zone win over steering.
    proxima(
        cluster.node(0),
        &["name", "set", "bars.proxima", "A", "192.0.2.7"],
    );
    expect_answer(
        &cluster,
        "bars.proxima",
        &["192.0.2.7".parse().unwrap()],
        Duration::from_secs(10),
        "explicit A record",
    );
}

/// The peers node `at`'s fetcher would fetch `hash` from (`/api/blobs/{hash}/providers`).
fn fetch_providers(cluster: &Cluster, at: usize, hash: &cdn_edge::Hash) -> Vec<String> {
    let url = format!(
        "{}/api/blobs/{}/providers",
        cluster.node(at).admin_url(),
        hash.to_hex()
    );
    let v: serde_json::Value =
        serde_json::from_str(&proxima::harness::http_get(&url).unwrap_or_default())
            .unwrap_or_default();
    let mut peers: Vec<String> = v["providers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["peer"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    peers.sort();
    peers
}

/// DNS steering and the fetcher read one provider record (the mesh's provider table): a holder
/// recorded once in node 0's table, as the CDN's `have` gossip would, is where node 0's DNS
/// sends the site's visitors and where its fetcher would fetch the manifest from.
#[test]
fn steering_and_the_fetcher_read_one_provider_record() {
    let cluster = Cluster::start_meshed(
        3,
        |i, c| c.http_listen = SocketAddr::new(http_ip(i), 0),
        |_| proxima::harness::test_options(),
        Duration::from_secs(60),
    )
    .expect("three nodes see each other");
    // A site whose manifest nobody holds or announces.
    let manifest = cdn_edge::Hash::of(b"a manifest held by nobody");
    let node0 = cluster.node(0);
    proxima(node0, &["name", "register", "shared.proxima"]);
    proxima(
        node0,
        &["name", "set", "shared.proxima", "SITE", &manifest.to_hex()],
    );
    assert!(
        fetch_providers(&cluster, 0, &manifest).is_empty(),
        "nobody holds it yet"
    );

    // One record: node 0 hears that node 2 holds the manifest.
    let mesh0 = &node0.handle().expect("node 0 runs").info().mesh;
    let peer2: mesh::PeerId = cluster.node(2).health().unwrap().peer_id.parse().unwrap();
    mesh0.providers().note(&manifest.provider_key(), peer2);

    // The fetcher would fetch from node 2 ...
    let mut providers = Vec::new();
    let ok = wait_for(Duration::from_secs(10), || {
        providers = fetch_providers(&cluster, 0, &manifest);
        providers == [peer2.to_string()]
    });
    assert!(ok.is_ok(), "fetcher providers: {providers:?}");
    // ... and DNS sends visitors to node 2 first (then node 0 itself, the fallback gateway).
    expect_answer(
        &cluster,
        "shared.proxima",
        &[http_ip(2), http_ip(0)],
        Duration::from_secs(30),
        "the holder in the provider table, then this node",
    );

    // A second holder recorded: both readers see both.
    let peer1: mesh::PeerId = cluster.node(1).health().unwrap().peer_id.parse().unwrap();
    mesh0.providers().note(&manifest.provider_key(), peer1);
    let mut both = vec![peer1.to_string(), peer2.to_string()];
    both.sort();
    let ok = wait_for(Duration::from_secs(10), || {
        providers = fetch_providers(&cluster, 0, &manifest);
        providers == both
    });
    assert!(ok.is_ok(), "fetcher providers: {providers:?}");
    let mut answer = Vec::new();
    let ok = wait_for(Duration::from_secs(30), || {
        answer = a_records(node0, "shared.proxima");
        answer.len() == 2 && answer.contains(&http_ip(1)) && answer.contains(&http_ip(2))
    });
    assert!(ok.is_ok(), "DNS answer: {answer:?}");
}
