//! A forged or stale zone offered by a peer never becomes a DNS answer. Two nodes (registrar and
//! follower) answer a name whose answers are already in the DNS fast path (ready answers), then
//! a rogue mesh peer gossips, on the zone topic:
//!
//! - a replay of the name's genuine older zone (lower sequence, without the AAAA added since);
//! - a forgery: a newer sequence with other records, signed by a key that is not the name's;
//! - a forged zone for a name nobody registered.
//!
//! Once every node has refused the first two and parked the third until its ledger replica
//! shows the name (counted in `/metrics`), `dig` over UDP (fast path) and
//! `kdig` over TCP (full path) still get the true answers, authoritative, with the zone's TTL,
//! and the unregistered name is still NXDOMAIN with the TLD's SOA.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use naming::ed25519_dalek::SigningKey;
use naming::{Name, Record, RecordData, SignedZone, Zone};
use proxima::harness::{Cluster, TestNode, curl, dig, http_get, run_tool, test_options, wait_for};

const DEADLINE: Duration = Duration::from_secs(20);

fn proxima(node: &TestNode, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(args)
        .args(["--node", &node.admin_url()])
        .env_remove("PROXIMA_NODE")
        .output()
        .expect("the CLI runs");
    assert!(
        out.status.success(),
        "proxima {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dns(node: &TestNode) -> SocketAddr {
    node.addr("dns").unwrap().parse().unwrap()
}

/// `dig +short` answers for `name`/`rtype` at `node`, sorted.
fn short(node: &TestNode, name: &str, rtype: &str) -> Vec<String> {
    let out = dig(dns(node), &["+short", name, rtype]).unwrap_or_default();
    let mut v: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// Every zone refusal `node` counted, whatever the reason.
fn refusals(node: &TestNode) -> f64 {
    let text = http_get(&format!("{}/metrics", node.admin_url())).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("proxima_naming_zones_refused_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A gauge's value from `/metrics` (0 when absent).
fn gauge(node: &TestNode, name: &str) -> f64 {
    let text = http_get(&format!("{}/metrics", node.admin_url())).unwrap_or_default();
    text.lines()
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A mesh peer that is not a Proxima node: it joins through a node and gossips zones.
struct Rogue {
    rt: tokio::runtime::Runtime,
    mesh: mesh::Mesh,
}

impl Rogue {
    fn join(boot: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mesh = rt.block_on(async {
            let mut mc = mesh::MeshConfig::local();
            mc.control.bootstrap = vec![boot.parse().unwrap()];
            let key = mesh::keypair_from_seed(rand::random());
            let mut registry = prometheus_client::registry::Registry::default();
            let m = mesh::Mesh::start(key, mc, &mut registry).await.unwrap();
            // Subscribing puts it in the topic's mesh, so what it publishes is relayed.
            let _rx = m
                .control()
                .subscribe(proxima::names::spread::ZONE_TOPIC)
                .await
                .unwrap();
            m
        });
        Self { rt, mesh }
    }

    /// Publishes `bytes` on the zone topic, retrying until the topic has peers.
    fn gossip(&self, bytes: Vec<u8>) {
        self.rt.block_on(async {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let sent = self
                    .mesh
                    .control()
                    .publish(proxima::names::spread::ZONE_TOPIC, bytes.clone().into())
                    .await;
                match sent {
                    Ok(()) => return,
                    Err(e) if Instant::now() > deadline => panic!("cannot gossip: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
    }
}

fn forged_zone(name: &str, sequence: u64, timestamp: u64, a: &str) -> SignedZone {
    let owner = Name::parse(name).unwrap();
    SignedZone::sign(
        Zone {
            name: owner.clone(),
            sequence,
            timestamp,
            records: vec![Record {
                owner,
                ttl: 300,
                data: RecordData::parse("A", a).unwrap(),
            }],
        },
        &SigningKey::from_bytes(&rand::random()),
    )
    .unwrap()
}

#[test]
fn forged_and_stale_zones_never_become_answers() {
    proxima::harness::require_tool("dig");
    let cluster =
        Cluster::start_meshed(2, |_, _| {}, |_| test_options(), DEADLINE).expect("two nodes");
    let n0 = cluster.node(0);
    proxima(n0, &["name", "register", "victim.proxima"]);
    proxima(
        n0,
        &[
            "name",
            "set",
            "victim.proxima",
            "A",
            "192.0.2.1",
            "--ttl",
            "120",
        ],
    );
    // The genuine zone as it is now, to be replayed once it is old.
    let zone_url = format!("{}/api/names/victim.proxima/zone", n0.admin_url());
    let old = curl(&["-sf", &zone_url]).unwrap().stdout;
    let old_zone = SignedZone::decode(&old).expect("a genuine signed zone");
    proxima(
        n0,
        &[
            "name",
            "set",
            "victim.proxima",
            "AAAA",
            "2001:db8::2",
            "--ttl",
            "120",
        ],
    );

    let nodes = [cluster.node(0), cluster.node(1)];
    let a = vec!["192.0.2.1".to_owned()];
    let aaaa = vec!["2001:db8::2".to_owned()];
    wait_for(DEADLINE, || {
        nodes.iter().all(|n| {
            short(n, "victim.proxima", "A") == a && short(n, "victim.proxima", "AAAA") == aaaa
        })
    })
    .expect("both nodes answer the current zone");
    // Asked again: now from the fast path's ready answers, which a zone change would drop.
    for n in nodes {
        assert_eq!(short(n, "victim.proxima", "AAAA"), aaaa);
        assert!(short(n, "ghost.proxima", "A").is_empty());
    }
    let before: Vec<f64> = nodes.iter().map(|n| refusals(n)).collect();
    let pending: Vec<f64> = nodes
        .iter()
        .map(|n| gauge(n, "proxima_naming_zones_pending"))
        .collect();

    let rogue = Rogue::join(&n0.addr("p2p").unwrap());
    // Stale: the genuine older zone (lower sequence, no AAAA).
    rogue.gossip(old.clone());
    // Forged: a higher sequence with another address, signed by a stranger's key.
    let forged = forged_zone(
        "victim.proxima",
        old_zone.zone.sequence + 100,
        old_zone.zone.timestamp + 1,
        "203.0.113.66",
    );
    rogue.gossip(forged.encode());
    // Forged, for a name nobody registered.
    rogue.gossip(forged_zone("ghost.proxima", 1, old_zone.zone.timestamp, "203.0.113.67").encode());

    // The stale and the forged zone of a registered name are refused; the zone of a name the
    // ledger does not know is parked until the ledger replica shows it (it never will).
    wait_for(DEADLINE, || {
        nodes
            .iter()
            .zip(before.iter().zip(&pending))
            .all(|(n, (b, p))| {
                refusals(n) >= b + 2.0 && gauge(n, "proxima_naming_zones_pending") >= p + 1.0
            })
    })
    .expect("every node refused the stale and the forged zone and parked the unregistered one");

    for n in nodes {
        // UDP, fast path.
        assert_eq!(short(n, "victim.proxima", "A"), a);
        assert_eq!(short(n, "victim.proxima", "AAAA"), aaaa);
        let full = dig(dns(n), &["victim.proxima", "A"]).unwrap();
        assert!(full.contains("status: NOERROR"), "{full}");
        assert!(full.contains(" aa"), "authoritative: {full}");
        assert!(full.contains("\t120\tIN\tA\t192.0.2.1"), "TTL 120: {full}");
        assert!(!full.contains("203.0.113."), "a forged address: {full}");
        let ghost = dig(dns(n), &["ghost.proxima", "A"]).unwrap();
        assert!(ghost.contains("status: NXDOMAIN"), "{ghost}");
        assert!(
            ghost.contains("SOA"),
            "SOA in the authority section: {ghost}"
        );
        // TCP, full path (`run_tool` fails with the reason when kdig is missing).
        let d = dns(n);
        let out = run_tool(
            "kdig",
            &[
                &format!("@{}", d.ip()),
                "-p",
                &d.port().to_string(),
                "+tcp",
                "+short",
                "victim.proxima",
                "AAAA",
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "2001:db8::2",
            "over TCP"
        );
    }
    rogue
        .rt
        .block_on(rogue.mesh.leave(Duration::from_millis(200)));
}
