//! Trust, as a stranger and as the cluster's operator see it: membership certificates decide
//! who owns cache slots and who may be the registrar; join tokens are one-time and name their
//! cluster; revoked and expired certificates lose their slots within the detection bound; a
//! stranger with a fresh key that advertises `redis` owns nothing and its cache streams are
//! refused and counted.

use std::net::SocketAddr;
use std::time::Duration;

use proxima::harness::{Cluster, TestNode, redis_cli, test_options, wait_for};

/// Certificates change standing within one membership tick; a view follows within its poll.
const BOUND: Duration = Duration::from_secs(10);

fn redis_addr(n: &TestNode) -> SocketAddr {
    n.addr("redis").expect("redis").parse().expect("addr")
}

fn info_field(a: SocketAddr, pass: Option<&str>, field: &str) -> Option<String> {
    let mut args = Vec::new();
    if let Some(p) = pass {
        args.extend(["-a", p, "--no-auth-warning"]);
    }
    args.extend(["info", "cluster"]);
    let out = redis_cli(a, &args).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

fn members(a: SocketAddr) -> Option<usize> {
    info_field(a, None, "proxima_members")?.parse().ok()
}

fn metric(node: &TestNode, name: &str) -> f64 {
    let text = proxima::harness::http_get(&format!("{}/metrics", node.admin_url())).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A raw mesh member with a fresh key and no certificate, advertising `service`, bootstrapped
/// from `boot`; returns once it sees `target` as a member.
async fn stranger(
    boot: mesh::Multiaddr,
    target: mesh::PeerId,
    service: (&str, &str),
) -> mesh::Mesh {
    let mut mc = mesh::MeshConfig::local();
    mc.control.bootstrap = vec![boot];
    mc.services.insert(service.0.into(), service.1.into());
    let mut registry = prometheus_client::registry::Registry::default();
    let rogue = mesh::Mesh::start(mesh::keypair_from_seed(rand::random()), mc, &mut registry)
        .await
        .expect("rogue mesh");
    let deadline = tokio::time::Instant::now() + BOUND;
    while !rogue.members().iter().any(|m| m.id.peer == target) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stranger never joined"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rogue
}

#[test]
fn a_stranger_with_a_fresh_key_owns_nothing_and_reaches_no_key() {
    let a = TestNode::start(|c| c.cache.requirepass = "secret".into()).expect("a");
    let boot = a.addr("p2p").expect("p2p");
    // A node started with the bootstrap address and no token: it believes the cluster key
    // its bootstrap peer presents, but holds no certificate.
    let c = TestNode::start(move |c| c.bootstrap = vec![boot]).expect("c");
    let (ra, rc) = (redis_addr(&a), redis_addr(&c));
    let a_peer = a.handle().unwrap().info().peer_id.clone();
    wait_for(BOUND, || {
        c.health()
            .is_ok_and(|h| h.members.iter().any(|m| m.peer_id == a_peer))
    })
    .expect("c joins the mesh");
    // The stranger's writes stay on the stranger; the protected node holds none of them.
    for i in 0..50 {
        let _ = redis_cli(rc, &["set", &format!("stranger:{i}"), "v"]);
    }
    let on_a = redis_cli(ra, &["-a", "secret", "--no-auth-warning", "dbsize"]).unwrap();
    assert_eq!(
        on_a.trim(),
        "0",
        "a stranger's writes reached the protected node"
    );
    redis_cli(
        ra,
        &["-a", "secret", "--no-auth-warning", "set", "owned:x", "1"],
    )
    .unwrap();
    let read = redis_cli(rc, &["get", "owned:x"]).unwrap();
    assert_ne!(read.trim(), "1", "a stranger read a protected key");
    assert_eq!(
        info_field(ra, Some("secret"), "proxima_members").as_deref(),
        Some("1")
    );
    let nodes = redis_cli(
        ra,
        &["-a", "secret", "--no-auth-warning", "cluster", "nodes"],
    )
    .unwrap();
    assert_eq!(
        nodes.lines().count(),
        1,
        "the stranger is in the map: {nodes}"
    );
}

#[test]
fn a_raw_mesh_peer_advertising_redis_is_not_a_slot_owner_and_its_streams_are_refused() {
    let a = TestNode::start(|_| {}).expect("a");
    let boot: mesh::Multiaddr = a.addr("p2p").unwrap().parse().unwrap();
    let a_peer: mesh::PeerId = a.handle().unwrap().info().peer_id.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refused = rt.block_on(async move {
        let rogue = stranger(boot, a_peer, ("redis", "127.0.0.1:1")).await;
        // A proxied session: the hello, then a PING. An honest owner would answer.
        let (mut send, mut recv) = rogue.open_bi(a_peer, b"proxima/cache/1").await.unwrap();
        mesh::frame::write(&mut send, &[1]).await.unwrap();
        let _ = mesh::frame::write(&mut send, b"\x00\x00*1\r\n$4\r\nPING\r\n").await;
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            mesh::frame::FrameDecoder::new(1 << 20).read(&mut recv),
        )
        .await
        .expect("the owner closes the stream");
        matches!(answer, Ok(None) | Err(_))
    });
    assert!(refused, "an uncertified peer's session was answered");
    assert!(
        metric(&a, "proxima_cache_uncertified_streams_refused") >= 1.0,
        "the refusal is counted"
    );
    assert_eq!(members(redis_addr(&a)), Some(1), "the rogue owns slots");
}

#[test]
fn join_tokens_are_one_time_and_certify_for_the_cache() {
    let cluster = Cluster::start_meshed(2, |_, _| {}, |_| test_options(), BOUND).expect("2 nodes");
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(redis_addr).collect();
    wait_for(BOUND, || addrs.iter().all(|a| members(*a) == Some(2))).expect("2 cache members");
    // A token redeemed once cannot be redeemed again: a third node with the same token
    // cannot start.
    let token = cluster.join_token().unwrap();
    let boot = cluster.node(0).addr("p2p").unwrap();
    let (b2, t2) = (boot.clone(), token.clone());
    let third = TestNode::start(move |c| {
        c.bootstrap = vec![b2];
        c.cluster.join_token = Some(t2);
    })
    .expect("third joins");
    let again = TestNode::start(move |c| {
        c.bootstrap = vec![boot];
        c.cluster.join_token = Some(token);
    });
    let err = format!("{:#}", again.expect_err("a used token is refused"));
    assert!(err.contains("refused"), "{err}");
    let all: Vec<SocketAddr> = addrs.iter().copied().chain([redis_addr(&third)]).collect();
    wait_for(BOUND * 3, || all.iter().all(|a| members(*a) == Some(3))).expect("3 members");
    assert!(metric(cluster.node(0), "proxima_cluster_refused_requests") >= 1.0);
}

#[test]
fn a_token_for_another_cluster_is_refused_at_start() {
    let a = TestNode::start(|_| {}).expect("a");
    let other = TestNode::start(|_| {}).expect("another cluster");
    let token = other
        .handle()
        .unwrap()
        .info()
        .cluster
        .new_token(vec!["cache".into()], Duration::from_secs(60))
        .unwrap()
        .to_string();
    // Bootstrapping into `a` with `other`'s token: the issuer never appears in a's mesh, or
    // if reached, its certificate names another cluster than the one `a` presents. Either
    // way the node must not start believing `a`.
    let boot = a.addr("p2p").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = proxima::harness::test_config(dir.path());
    config.bootstrap = vec![boot];
    config.cluster.join_token = Some(token);
    config.cluster.anchor = Some(hex::encode(
        a.handle().unwrap().info().cluster.anchor().unwrap(),
    ));
    let err = proxima::node::NodeHandle::start(config, test_options())
        .expect_err("two clusters in one data directory");
    assert!(format!("{err:#}").contains("one data directory"), "{err:#}");
}

#[test]
fn revoked_and_expired_certificates_lose_their_slots() {
    let cluster = Cluster::start_meshed(3, |_, _| {}, |_| test_options(), BOUND).expect("3 nodes");
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(redis_addr).collect();
    wait_for(BOUND * 2, || addrs.iter().all(|a| members(*a) == Some(3))).expect("3 members");

    // Node 2's certificate is revoked by the issuer: the list spreads, both others drop it.
    let issuer = cluster.node(0).handle().unwrap().info().cluster.clone();
    let p2: mesh::PeerId = cluster
        .node(2)
        .handle()
        .unwrap()
        .info()
        .peer_id
        .parse()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let list = rt.block_on(issuer.revoke(p2)).expect("revoke");
    assert_eq!(list.entries.len(), 1);
    wait_for(BOUND, || {
        members(addrs[0]) == Some(2) && members(addrs[1]) == Some(2)
    })
    .expect("the revoked member lost its slots on both others");

    // Node 1 presents a certificate that expires in 3 s (set on its mesh directly, so its
    // renewal, which looks at the certificate it stored, does not replace it): it drops out.
    let m1 = cluster.node(1).handle().unwrap().info().mesh.clone();
    let p1 = m1.peer_id();
    let key_file = cluster
        .node(0)
        .data_dir()
        .join("cluster")
        .join("cluster.key");
    let key = proxima::cluster::read_key(&key_file).unwrap();
    let short = key.certify(p1, &["cache".into()], 3);
    // `certify` backdates not_before by a minute for clock skew; expiry is what is tested.
    rt.block_on(m1.set_certificate(Some(short)));
    wait_for(BOUND, || members(addrs[0]) == Some(1)).expect("the expired member lost its slots");
}

#[test]
fn a_short_certificate_is_renewed_by_its_issuer() {
    let cluster = Cluster::start_meshed(2, |_, _| {}, |_| test_options(), BOUND).expect("2 nodes");
    let a = redis_addr(cluster.node(0));
    wait_for(BOUND, || members(a) == Some(2)).expect("2 cache members");
    let issuer = cluster.node(0).handle().unwrap().info().cluster.clone();
    let joined = cluster.node(1).handle().unwrap().info().cluster.clone();
    let p1: mesh::PeerId = cluster
        .node(1)
        .handle()
        .unwrap()
        .info()
        .peer_id
        .parse()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let short = rt
        .block_on(issuer.admit(p1, vec!["cache".into()], 12))
        .expect("admit");
    // The admitted certificate (cache only), or already its renewal: with 12 s of life it is
    // renewed once 4 s are left, which a loaded machine may reach before this looks. The
    // join token's certificate also carried the registrar role.
    wait_for(BOUND, || {
        joined
            .status()
            .certificate
            .is_some_and(|c| c.roles == short.roles && c.not_after >= short.not_after)
    })
    .expect("the admitted certificate is delivered and installed");
    wait_for(Duration::from_secs(20), || {
        joined
            .status()
            .certificate
            .is_some_and(|c| c.not_after > short.not_after + 60)
    })
    .expect("renewed by the issuer before it expired");
    // Past the short certificate's expiry, the member still holds its slots.
    wait_for(Duration::from_secs(20), || {
        mesh::trust::unix_now() > short.not_after + 1
    })
    .unwrap();
    assert_eq!(members(a), Some(2), "the renewed member kept its slots");
}

#[test]
fn steering_names_an_http_address_only_after_it_answered_for_its_member() {
    let a = TestNode::start(|_| {}).expect("a");
    let boot: mesh::Multiaddr = a.addr("p2p").unwrap().parse().unwrap();
    let a_peer: mesh::PeerId = a.handle().unwrap().info().peer_id.parse().unwrap();
    // A stranger advertises an HTTP address that does not answer for it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _rogue = rt.block_on(stranger(boot, a_peer, ("http", "127.0.0.9:9")));
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxima"))
            .args(args)
            .args(["--node", &a.admin_url()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&["name", "register", "steer.proxima"]);
    let manifest = cdn_edge::Hash::of(b"a manifest nobody announces");
    cli(&["name", "set", "steer.proxima", "SITE", &manifest.to_hex()]);
    wait_for(BOUND, || {
        metric(&a, "proxima_steering_http_checks_total{result=\"refused\"}") >= 1.0
    })
    .expect("the stranger's address was checked and refused");
    let dns: SocketAddr = a.addr("dns").unwrap().parse().unwrap();
    let answer = proxima::harness::dig(dns, &["+short", "steer.proxima", "A"]).unwrap();
    assert!(answer.contains("127.0.0.1"), "{answer}");
    assert!(
        !answer.contains("127.0.0.9"),
        "a stranger's unchecked address was steered to: {answer}"
    );
}

#[test]
fn a_network_key_refuses_strangers_at_the_handshake_of_both_planes() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("swarm.key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(["cluster", "network-key"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kf = key_file.clone();
    let a = TestNode::start(move |c| c.mesh.network_key_file = Some(kf)).expect("a");
    let boot = a.addr("p2p").unwrap();
    assert!(
        boot.contains("/tcp/"),
        "the control plane runs on TCP: {boot}"
    );
    let a_peer = a.handle().unwrap().info().peer_id.clone();
    // A member with the key joins (its bootstrap address written for QUIC, as an operator
    // would copy it: it becomes TCP on the same port).
    let quic_boot = boot.replace("/tcp/", "/udp/") + "/quic-v1";
    let (kf, qb) = (key_file.clone(), quic_boot.clone());
    let b = TestNode::start(move |c| {
        c.mesh.network_key_file = Some(kf);
        c.bootstrap = vec![qb];
    })
    .expect("b");
    wait_for(BOUND, || {
        b.health().is_ok_and(|h| {
            h.members
                .iter()
                .any(|m| m.peer_id == a_peer && m.state == mesh::MemberState::Alive)
        })
    })
    .expect("a member with the key joins");
    // A stranger without the key: its libp2p dial fails the pre-shared-key handshake, and its
    // data plane, told a's address directly, is closed before any protocol is served.
    let a_id: mesh::PeerId = a_peer.parse().unwrap();
    let a_quic: SocketAddr = a.addr("quic").unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stranger = rt.block_on(async move {
        let mut mc = mesh::MeshConfig::local();
        mc.control.bootstrap = vec![quic_boot.parse().unwrap()];
        let mut registry = prometheus_client::registry::Registry::default();
        let m = mesh::Mesh::start(mesh::keypair_from_seed(rand::random()), mc, &mut registry)
            .await
            .unwrap();
        m.join(mesh::MemberId {
            peer: a_id,
            quic: a_quic,
            generation: 1,
        })
        .await;
        m
    });
    wait_for(BOUND, || {
        metric(&a, "proxima_mesh_network_key_refused") >= 1.0
    })
    .expect("the stranger's data-plane connection is refused and counted");
    let sp = stranger.peer_id().to_string();
    let h = a.health().unwrap();
    assert!(
        !h.members.iter().any(|m| m.peer_id == sp),
        "the stranger became a member: {:?}",
        h.members
    );
    assert!(
        !stranger
            .members()
            .iter()
            .any(|m| m.id.peer == a_id && m.state == mesh::MemberState::Alive),
        "the stranger sees a alive"
    );
}
