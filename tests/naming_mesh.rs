//! Names across the mesh: a name registered and given records on one node resolves with `dig`
//! at every other node (ledger replicated from the registrar, zone spread by gossip), also at a
//! node that joins later and at a follower that was down; a name registered through a follower
//! is forwarded to the registrar; forged and replayed zones that a rogue mesh peer gossips are
//! refused by every node (counted in metrics) and change no answer.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use naming::ed25519_dalek::SigningKey;
use naming::{Name, Record, RecordData, SignedZone, Zone};
use proxima::harness::{Cluster, TestNode, curl, http_get, test_options, wait_for};

const DEADLINE: Duration = Duration::from_secs(20);

fn cli(node: &TestNode, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(args)
        .args(["--node", &node.admin_url()])
        .env_remove("PROXIMA_NODE")
        .output()
        .expect("run proxima")
}

fn ok(node: &TestNode, args: &[&str]) -> String {
    let out = cli(node, args);
    assert!(
        out.status.success(),
        "proxima {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn dns(node: &TestNode) -> SocketAddr {
    node.addr("dns").unwrap().parse().unwrap()
}

/// The A records `node` answers for `name` (empty on NXDOMAIN or no answer).
fn a_records(node: &TestNode, name: &str) -> Vec<String> {
    let out = proxima::harness::dig(dns(node), &[name, "A", "+short"]).unwrap_or_default();
    let mut v: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn answers(node: &TestNode, name: &str, want: &[&str]) -> bool {
    a_records(node, name) == want
}

fn meshed(n: usize) -> Cluster {
    Cluster::start_meshed(n, |_, _| {}, |_| test_options(), DEADLINE).expect("cluster")
}

/// A counter's value from `/metrics` (0 when absent).
fn metric(node: &TestNode, name: &str, label: &str) -> f64 {
    let text = http_get(&format!("{}/metrics", node.admin_url())).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn refused(node: &TestNode, reason: &str) -> f64 {
    metric(
        node,
        "proxima_naming_zones_refused_total",
        &format!("reason=\"{reason}\""),
    )
}

#[test]
fn names_resolve_on_every_node_and_on_late_joiners() {
    proxima::harness::require_tool("dig");
    let cluster = meshed(3);
    let (n0, n2) = (cluster.node(0), cluster.node(2));

    // Registered and given a record at the registrar (node 0), resolved at node 2.
    let started = Instant::now();
    ok(n0, &["name", "register", "spread.proxima"]);
    ok(n0, &["name", "set", "spread.proxima", "A", "192.0.2.10"]);
    wait_for(DEADLINE, || answers(n2, "spread.proxima", &["192.0.2.10"]))
        .expect("node 2 answers the name registered on node 0");
    eprintln!(
        "register + set on node 0 -> answered at node 2 after {:?}",
        started.elapsed()
    );
    assert!(answers(cluster.node(1), "spread.proxima", &["192.0.2.10"]));

    // Registered through a follower: forwarded to the registrar, resolved everywhere.
    let started = Instant::now();
    let out = ok(n2, &["name", "register", "fwd.proxima"]);
    assert!(out.contains("fwd.proxima"), "{out}");
    ok(n2, &["name", "set", "fwd.proxima", "A", "192.0.2.20"]);
    wait_for(DEADLINE, || answers(n0, "fwd.proxima", &["192.0.2.20"]))
        .expect("node 0 answers the name registered through node 2");
    eprintln!(
        "register + set on node 2 (forwarded) -> answered at node 0 after {:?}",
        started.elapsed()
    );
    // The name is owned by node 2's key: node 0 cannot edit its zone.
    let out = cli(n0, &["name", "set", "fwd.proxima", "A", "192.0.2.66"]);
    assert!(!out.status.success());
    // A name taken on the registrar is taken for a follower too.
    let out = cli(n2, &["name", "register", "spread.proxima"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already registered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A node that joins later gets the ledger and every zone.
    let boot = n0.addr("p2p").unwrap();
    let started = Instant::now();
    let late = TestNode::start(move |c| c.bootstrap = vec![boot]).expect("late node");
    wait_for(DEADLINE, || {
        answers(&late, "spread.proxima", &["192.0.2.10"])
            && answers(&late, "fwd.proxima", &["192.0.2.20"])
    })
    .expect("the late node answers both names");
    eprintln!(
        "late joiner answers both names {:?} after its start",
        started.elapsed()
    );
    // Unregistered names stay NXDOMAIN everywhere.
    let out = proxima::harness::dig(dns(&late), &["nobody.proxima", "A"]).unwrap();
    assert!(out.contains("NXDOMAIN"), "{out}");
}

#[test]
fn follower_catches_up_after_its_restart() {
    proxima::harness::require_tool("dig");
    let mut cluster = meshed(3);
    ok(cluster.node(0), &["name", "register", "before.proxima"]);
    ok(
        cluster.node(0),
        &["name", "set", "before.proxima", "A", "192.0.2.1"],
    );
    wait_for(DEADLINE, || {
        answers(cluster.node(2), "before.proxima", &["192.0.2.1"])
    })
    .expect("node 2 has the first name");

    // Node 2 crashes; names change while it is down.
    cluster.node_mut(2).kill();
    ok(cluster.node(0), &["name", "register", "during.proxima"]);
    ok(
        cluster.node(0),
        &["name", "set", "during.proxima", "A", "192.0.2.2"],
    );
    ok(
        cluster.node(0),
        &["name", "set", "before.proxima", "A", "192.0.2.3"],
    );
    let started = Instant::now();
    cluster.node_mut(2).restart().expect("restart node 2");
    let n2 = cluster.node(2);
    wait_for(DEADLINE, || {
        answers(n2, "during.proxima", &["192.0.2.2"])
            && answers(n2, "before.proxima", &["192.0.2.1", "192.0.2.3"])
    })
    .expect("the restarted follower caught up");
    eprintln!("restarted follower caught up after {:?}", started.elapsed());
    // It still follows node 0 (the choice is kept) and holds the replicated ledger.
    let info = http_get(&format!("{}/api/names/during.proxima", n2.admin_url())).unwrap();
    assert!(info.contains("\"ledger\":\"embedded\""), "{info}");
    let saved = std::fs::read_to_string(n2.data_dir().join("ledger/registrar")).unwrap();
    assert_eq!(saved.trim(), cluster.node(0).health().unwrap().peer_id);
}

/// A mesh peer that is not a Proxima node: it joins through node 0 and gossips on the zone topic.
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

    /// Publishes `bytes` on the zone topic (retrying until the topic has peers).
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

#[test]
fn forged_and_replayed_zones_are_refused_by_every_node() {
    proxima::harness::require_tool("dig");
    let cluster = meshed(3);
    let n0 = cluster.node(0);
    ok(n0, &["name", "register", "victim.proxima"]);
    ok(n0, &["name", "set", "victim.proxima", "A", "192.0.2.1"]);
    // The zone as it is now (a genuine, signed zone), captured to be replayed later.
    let zone_url = format!("{}/api/names/victim.proxima/zone", n0.admin_url());
    let old = curl(&["-sf", &zone_url]).unwrap().stdout;
    let old_zone = SignedZone::decode(&old).expect("genuine zone");
    ok(n0, &["name", "set", "victim.proxima", "A", "192.0.2.2"]);
    let want = ["192.0.2.1", "192.0.2.2"];
    wait_for(DEADLINE, || {
        cluster
            .nodes
            .iter()
            .all(|n| answers(n, "victim.proxima", &want))
    })
    .expect("every node has the current zone");
    let before: Vec<[f64; 3]> = cluster
        .nodes
        .iter()
        .map(|n| {
            [
                refused(n, "stale_sequence"),
                refused(n, "wrong_key"),
                refused(n, "bad_signature"),
            ]
        })
        .collect();

    let rogue = Rogue::join(&n0.addr("p2p").unwrap());
    // 1. Replay: the genuine older zone (lower sequence).
    rogue.gossip(old.clone());
    // 2. Forgery: a newer sequence signed by a key that is not the name's zone key.
    let forged = SignedZone::sign(
        Zone {
            name: Name::parse("victim.proxima").unwrap(),
            sequence: old_zone.zone.sequence + 100,
            timestamp: old_zone.zone.timestamp + 1,
            records: vec![Record {
                owner: Name::parse("victim.proxima").unwrap(),
                ttl: 300,
                data: RecordData::parse("A", "203.0.113.66").unwrap(),
            }],
        },
        &SigningKey::from_bytes(&rand::random()),
    )
    .unwrap();
    rogue.gossip(forged.encode());
    // 3. Tampering: the genuine zone with a record changed and a higher sequence, old signature.
    let mut tampered = old_zone.clone();
    tampered.zone.sequence += 200;
    tampered.zone.records[0].data = RecordData::parse("A", "203.0.113.77").unwrap();
    rogue.gossip(tampered.encode());

    wait_for(DEADLINE, || {
        cluster.nodes.iter().zip(&before).all(|(n, b)| {
            refused(n, "stale_sequence") > b[0]
                && refused(n, "wrong_key") > b[1]
                && refused(n, "bad_signature") > b[2]
        })
    })
    .expect("every node refused the replayed, forged and tampered zones");
    for n in &cluster.nodes {
        assert_eq!(a_records(n, "victim.proxima"), want);
    }
    rogue
        .rt
        .block_on(rogue.mesh.leave(Duration::from_millis(200)));
}

/// A free UDP port on loopback (bound and released; the node binds it right after).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn followers_survive_a_registrar_restart() {
    proxima::harness::logs_from_env();
    proxima::harness::require_tool("dig");
    // The registrar keeps its mesh addresses across the restart, as a real node with a
    // configured listen address does, so the members find it again.
    let (quic, p2p) = (free_udp_port(), free_udp_port());
    let mut cluster = Cluster::start_meshed(
        3,
        move |i, c| {
            if i == 0 {
                c.quic_listen = SocketAddr::from(([127, 0, 0, 1], quic));
                c.p2p_listen = vec![format!("/ip4/127.0.0.1/udp/{p2p}/quic-v1")];
            }
        },
        |_| test_options(),
        DEADLINE,
    )
    .expect("cluster");
    ok(cluster.node(0), &["name", "register", "one.proxima"]);
    let registrar = cluster.node(0).health().unwrap().peer_id;

    // Registrar down: a name operation on a follower fails and says where the registrar is.
    cluster.node_mut(0).kill();
    let t = Instant::now();
    let out = cli(cluster.node(1), &["name", "register", "two.proxima"]);
    eprintln!("follower answered with an error after {:?}", t.elapsed());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("registrar") && err.contains(&registrar),
        "unclear error: {err}"
    );

    // Registrar back: followers reconnect on their own; forwarding and spreading work again.
    // The killed runtime releases its sockets in the background: retry the bind briefly.
    let mut tries = 0;
    let t = Instant::now();
    wait_for(DEADLINE, || {
        tries += 1;
        cluster.node_mut(0).restart().is_ok()
    })
    .expect("restart the registrar");
    eprintln!("registrar restarted after {tries} tries, {:?}", t.elapsed());
    let started = Instant::now();
    wait_for(DEADLINE, || {
        cli(cluster.node(1), &["name", "register", "two.proxima"])
            .status
            .success()
    })
    .expect("forwarding works again after the registrar restarted");
    eprintln!(
        "forwarding works again {:?} after the registrar restarted",
        started.elapsed()
    );
    ok(
        cluster.node(1),
        &["name", "set", "two.proxima", "A", "192.0.2.22"],
    );
    let spread = wait_for(DEADLINE, || {
        cluster
            .nodes
            .iter()
            .all(|n| answers(n, "two.proxima", &["192.0.2.22"]))
    });
    let seen: Vec<Vec<String>> = cluster
        .nodes
        .iter()
        .map(|n| a_records(n, "two.proxima"))
        .collect();
    assert!(
        spread.is_ok(),
        "every node answers the name registered after the restart (the restarted registrar \
         knows no peer: the others must find it again): answers per node {seen:?}"
    );
}
