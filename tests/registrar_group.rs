//! The registrar group on whole nodes over the mesh (emulated WAN): three registrars and two
//! followers. Names are registered continuously from all five nodes, all racing for the same
//! names, while the leader (node 0, the founder) is killed and restarted, and then the new
//! leader is cut off and healed.
//!
//! Checked at the end: no name was acknowledged to two writers; every acknowledged registration
//! is on every node's ledger with the acknowledged owner (none lost); every node holds each
//! acknowledged name's zone; after each fault, registration came back within [`BOUND`] on the
//! majority side (the figures are printed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proxima::harness::{Cluster, TestNode, wait_for, wan_options};

const NODES: usize = 5;
const REGISTRARS: usize = 3;
/// The stated bound: a new leader within `election_max` (6 s) plus a vote round, and the
/// router's retry pause; measured 5-9 s.
const BOUND: Duration = Duration::from_secs(15);
/// Each writer's pace: at most one attempt per this, so five writers stay within each owner's
/// ledger rate limit (100 at once, then 2 a second) for the test's minute.
const PACE: Duration = Duration::from_millis(300);

/// One attempt: which writer, which name, when it ended, and what the node answered.
#[derive(Debug, Clone)]
struct Attempt {
    writer: usize,
    name: String,
    at: Instant,
    /// 201 with the owner, 409 taken, other statuses or transport errors.
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Registered { owner: String },
    Taken,
    Failed(String),
}

/// A free UDP port on loopback (bound and released; the node binds it right after).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn register(client: &reqwest::Client, admin: &str, name: &str) -> Outcome {
    let resp = client
        .post(format!("{admin}/api/names"))
        .json(&serde_json::json!({ "name": name }))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    match resp {
        Ok(r) if r.status() == 201 => match r.json::<serde_json::Value>().await {
            Ok(v) => Outcome::Registered {
                owner: v["owner"].as_str().unwrap_or_default().to_owned(),
            },
            Err(e) => Outcome::Failed(format!("answer: {e}")),
        },
        Ok(r) if r.status() == 409 => Outcome::Taken,
        Ok(r) => Outcome::Failed(format!(
            "{} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        )),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn group_status(node: &TestNode) -> Option<serde_json::Value> {
    let client = node.admin_client();
    let url = format!("{}/api/cluster/registrars", node.admin_url());
    rt().block_on(async { client.get(url).send().await.ok()?.json().await.ok() })
}

fn peer_id(node: &TestNode) -> String {
    node.health().unwrap().peer_id.to_string()
}

/// Index of the node whose key the group names as leader.
fn leader_index(cluster: &Cluster, alive: &[usize]) -> Option<usize> {
    let keys: Vec<Option<String>> = (0..NODES)
        .map(|i| {
            cluster
                .node(i)
                .handle()
                .and_then(|_| group_status(cluster.node(i)))
                .and_then(|s| s["me"].as_str().map(str::to_owned))
        })
        .collect();
    let leader = alive.iter().find_map(|&i| {
        group_status(cluster.node(i))?["leader"]
            .as_str()
            .map(str::to_owned)
    })?;
    keys.iter()
        .position(|k| k.as_deref() == Some(leader.as_str()))
}

/// Time from `fault` to the first definitive answer (registered or taken) from a writer in
/// `majority`.
fn recovery(history: &[Attempt], fault: Instant, majority: &[usize]) -> Option<Duration> {
    history
        .iter()
        .filter(|a| a.at > fault && majority.contains(&a.writer))
        .filter(|a| !matches!(a.outcome, Outcome::Failed(_)))
        .map(|a| a.at - fault)
        .min()
}

#[test]
fn registration_survives_the_leader_and_a_cut() {
    proxima::harness::logs_from_env();
    let wan = mesh::WanEmulator::new(NODES, |a, b| if a == b { 0.0 } else { 2.0 }, 29);
    // Node 0 (the founder, started without bootstrap peers) keeps its addresses across its
    // restart, as a node with configured listen addresses does, so the others find it again.
    let (quic, p2p) = (free_udp_port(), free_udp_port());
    let mut cluster = Cluster::start_meshed(
        NODES,
        move |i, c| {
            if i == 0 {
                c.quic_listen = std::net::SocketAddr::from(([127, 0, 0, 1], quic));
                c.p2p_listen = vec![format!("/ip4/127.0.0.1/udp/{p2p}/quic-v1")];
            }
        },
        |i| wan_options(&wan, i),
        Duration::from_secs(60),
    )
    .expect("five nodes on the emulated WAN");

    // Promote nodes 1 and 2, as an operator would (through node 0, the founder).
    for i in 1..REGISTRARS {
        let out = crate::common::cli(&[
            "cluster",
            "registrar",
            "add",
            &peer_id(cluster.node(i)),
            "--node",
            &cluster.node(0).admin_url(),
        ])
        .expect("proxima cluster registrar add");
        assert!(out.contains("voters"), "{out}");
    }
    wait_for(Duration::from_secs(30), || {
        (0..REGISTRARS).all(|i| {
            group_status(cluster.node(i)).is_some_and(|s| {
                s["voters"].as_array().map_or(0, Vec::len) == REGISTRARS && s["leader"].is_string()
            })
        })
    })
    .expect("three registrars agree on the group");

    // Writers: one per node, all walking the same names.
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(parking_lot::Mutex::new(Vec::<Attempt>::new()));
    let writers: Vec<_> = (0..NODES)
        .map(|w| {
            let admin = cluster.node(w).admin_url();
            let client = cluster.node(w).admin_client();
            let (stop, history) = (stop.clone(), history.clone());
            std::thread::spawn(move || {
                rt().block_on(async {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let name = format!("race-{i}.proxima");
                        let outcome = register(&client, &admin, &name).await;
                        if !matches!(outcome, Outcome::Failed(_)) {
                            i += 1;
                        }
                        history.lock().push(Attempt {
                            writer: w,
                            name,
                            at: Instant::now(),
                            outcome,
                        });
                        if let Some(rest) = PACE.checked_sub(started.elapsed()) {
                            tokio::time::sleep(rest).await;
                        }
                    }
                });
            })
        })
        .collect();
    let wait_ok = |since: Instant, majority: &[usize], what: &str| {
        wait_for(Duration::from_secs(30), || {
            recovery(&history.lock(), since, majority).is_some()
        })
        .unwrap_or_else(|_| panic!("no registration after {what}"));
        recovery(&history.lock(), since, majority).unwrap()
    };
    wait_ok(Instant::now(), &[0, 1, 2, 3, 4], "the start");
    std::thread::sleep(Duration::from_secs(3));

    // 1. Kill the leader (node 0, which founded the group).
    assert_eq!(leader_index(&cluster, &[0, 1, 2]), Some(0));
    let killed = Instant::now();
    cluster.node_mut(0).kill();
    let after_kill = wait_ok(killed, &[1, 2, 3, 4], "the leader was killed");
    eprintln!("registration back {after_kill:?} after the leader was killed");
    std::thread::sleep(Duration::from_secs(3));

    // 2. It comes back and catches up.
    cluster.node_mut(0).restart().expect("node 0 restarts");
    let reference = || group_status(cluster.node(1)).and_then(|s| s["records"].as_u64());
    wait_for(Duration::from_secs(30), || {
        let want = reference().unwrap_or(u64::MAX);
        group_status(cluster.node(0)).and_then(|s| s["records"].as_u64()) >= Some(want)
    })
    .expect("the restarted registrar catches up");

    // 3. Cut the current leader off from everyone, then heal.
    let leader = leader_index(&cluster, &[0, 1, 2]).expect("a leader");
    let cut_at = Instant::now();
    for j in 0..NODES {
        if j != leader {
            wan.set_cut(leader, j, true);
        }
    }
    let majority: Vec<usize> = (0..NODES).filter(|&j| j != leader).collect();
    let after_cut = wait_ok(cut_at, &majority, "the leader was cut off");
    eprintln!("registration back {after_cut:?} after the leader (node {leader}) was cut off");
    std::thread::sleep(Duration::from_secs(5));
    for j in 0..NODES {
        wan.set_cut(leader, j, false);
    }
    let healed = Instant::now();
    wait_ok(healed, &[leader], "the heal, on the healed node");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let history = history.lock().clone();

    // No name acknowledged to two writers.
    let mut acknowledged = std::collections::BTreeMap::<String, (usize, String)>::new();
    for a in &history {
        if let Outcome::Registered { owner } = &a.outcome
            && let Some((w, _)) = acknowledged.insert(a.name.clone(), (a.writer, owner.clone()))
        {
            panic!("{} acknowledged to writers {w} and {}", a.name, a.writer);
        }
    }
    let failed = history
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Failed(_)))
        .count();
    eprintln!(
        "{} attempts, {} names acknowledged, {failed} failed (unknown outcome)",
        history.len(),
        acknowledged.len()
    );
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for a in &history {
        if let Outcome::Failed(why) = &a.outcome {
            let why: String = why.chars().take(100).collect();
            *reasons
                .entry(format!("writer {}: {why}", a.writer))
                .or_default() += 1;
        }
    }
    eprintln!("failures: {reasons:#?}");
    assert!(
        acknowledged.len() >= 20,
        "too few registrations: {}",
        acknowledged.len()
    );

    // Every acknowledged registration is on every node, with its owner and zone.
    let check = |i: usize, name: &str, owner: &str| -> bool {
        let node = cluster.node(i);
        let client = node.admin_client();
        let url = format!("{}/api/names/{name}", node.admin_url());
        rt().block_on(async {
            let Ok(r) = client.get(url).send().await else {
                return false;
            };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                return false;
            };
            v["owner"].as_str() == Some(owner) && v["zone"].is_object()
        })
    };
    wait_for(Duration::from_secs(60), || {
        acknowledged
            .iter()
            .all(|(name, (_, owner))| (0..NODES).all(|i| check(i, name, owner)))
    })
    .unwrap_or_else(|_| {
        let missing: Vec<String> = acknowledged
            .iter()
            .flat_map(|(name, (_, owner))| {
                (0..NODES)
                    .filter(|&i| !check(i, name, owner))
                    .map(move |i| format!("{name}@{i}"))
            })
            .collect();
        panic!("acknowledged registrations missing: {missing:?}")
    });
    // The five ledgers are one log.
    let records: Vec<Option<u64>> = (0..NODES)
        .map(|i| {
            let node = cluster.node(i);
            rt().block_on(async {
                let v: serde_json::Value = node
                    .admin_client()
                    .get(format!("{}/api/cluster/registrars", node.admin_url()))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                v["records"].as_u64()
            })
        })
        .collect();
    assert!(
        records.windows(2).all(|w| w[0] == w[1]),
        "ledgers differ in length: {records:?}"
    );
    assert!(
        after_kill < BOUND,
        "unavailable {after_kill:?} after the kill"
    );
    assert!(after_cut < BOUND, "unavailable {after_cut:?} after the cut");
}

/// A stranger that reaches the mesh with a fresh key (no certificate) opens the registrar
/// group's protocol: it is refused before anything is read, counted, and the group is unmoved.
#[test]
fn a_stranger_cannot_speak_to_the_group() {
    proxima::harness::logs_from_env();
    let cluster = Cluster::start_meshed(
        2,
        |_, _| {},
        |_| proxima::harness::test_options(),
        Duration::from_secs(30),
    )
    .expect("two nodes");
    let node = cluster.node(0);
    let before = group_status(node).expect("group status");
    let rt = rt();
    let stranger = rt.block_on(async {
        let mut mc = mesh::MeshConfig::local();
        mc.control.bootstrap = vec![node.addr("p2p").unwrap().parse().unwrap()];
        let key = mesh::keypair_from_seed(rand::random());
        let mut registry = prometheus_client::registry::Registry::default();
        mesh::Mesh::start(key, mc, &mut registry).await.unwrap()
    });
    let target: mesh::PeerId = peer_id(node).parse().unwrap();
    let founder = mesh::peer_ed25519_key(&target).unwrap();
    let quic: std::net::SocketAddr = node.addr("quic").unwrap().parse().unwrap();
    // A vote request for a far higher term, claiming to come from the stranger itself.
    let message = serde_json::json!({
        "founder": hex::encode(founder),
        "request": {"op": "vote", "rpc": {
            "vote": {"leader_id": {"term": 1000, "node_id": 1}, "committed": false},
            "last_log_id": null
        }}
    });
    // Try until the node has seen (and refused) the stranger's stream; any reply is a failure.
    let mut reply = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(node, "proxima_naming_group_refused_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the stranger's stream never reached the node"
        );
        let exchange = async {
            // Straight to the node's QUIC address: a stranger is never in the membership.
            let (mut send, mut recv) = stranger
                .dataplane()
                .open_bi(target, quic, proxima::names::registrar::REGISTRAR_ALPN)
                .await?;
            mesh::frame::write(&mut send, &serde_json::to_vec(&message)?).await?;
            let _ = send.finish();
            let reply = mesh::frame::FrameDecoder::new(1 << 20)
                .read(&mut recv)
                .await?;
            anyhow::Ok(reply)
        };
        let got =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), exchange).await });
        if let Ok(Ok(Some(r))) = got {
            reply = Some(r);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(reply.is_none(), "the group answered a stranger: {reply:?}");
    let after = group_status(node).expect("group status");
    assert_eq!(after["term"], before["term"], "a stranger moved the term");
    assert_eq!(after["leader"], before["leader"]);
}

/// A counter's value from `/metrics` (0 when absent).
fn metric(node: &TestNode, name: &str) -> f64 {
    let text =
        proxima::harness::http_get(&format!("{}/metrics", node.admin_url())).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
