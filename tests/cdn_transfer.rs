//! CDN transfer, whole system: nodes in one process on a real mesh. A site published on one
//! node is served byte-identical by the gateway of a node that never had it (fetched over QUIC
//! from the providers, verified as it streams); a big file comes by ranges from two providers;
//! a provider that alters bytes is caught at the first bad chunk group, loses standing, and the
//! fetch completes from another; a provider killed mid-transfer does not fail the visitor.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{cli, noise};
use cdn_edge::Hash;
use cdn_edge::transfer::{self, Source};
use proxima::harness::{Cluster, TestNode, curl, http_get, test_options, wait_for};

const GROUP: u64 = 16 * 1024;

fn json(url: &str) -> serde_json::Value {
    serde_json::from_str(&http_get(url).unwrap()).unwrap()
}

fn site(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(noise(120_000, 3));
    let files: Vec<(&'static str, Vec<u8>)> = vec![
        ("index.html", b"<h1>home</h1>".to_vec()),
        ("about/index.html", b"<h1>about</h1>".to_vec()),
        ("blog/2024/11/post.html", b"<p>post</p>".to_vec()),
        ("css/site.css", b"body{color:red}".to_vec()),
        ("img/logo.png", png),
        ("docs/guide/part.bin", noise(700_000, 11)),
        ("downloads/big.bin", noise(50 * 1024 * 1024, 7)),
    ];
    for (p, d) in &files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, d).unwrap();
    }
    files
}

/// `curl` a path of a node's gateway (raw bytes), with an optional Host header.
fn get(http: &str, host: Option<&str>, path: &str) -> (u16, Vec<u8>) {
    let url = format!("http://{http}{path}");
    let mut args = vec!["-w", "\n%{http_code}", "--max-time", "60"];
    let h;
    if let Some(host) = host {
        h = format!("Host: {host}");
        args.extend(["-H", &h]);
    }
    args.push(&url);
    let out = curl(&args).unwrap().stdout;
    let split = out.iter().rposition(|b| *b == b'\n').unwrap();
    let code = std::str::from_utf8(&out[split + 1..])
        .unwrap()
        .parse()
        .unwrap();
    (code, out[..split].to_vec())
}

/// The recent fetches of a node, as `/api/blobs/fetches` lists them.
fn fetches(node: &TestNode) -> Vec<serde_json::Value> {
    json(&format!("{}/api/blobs/fetches", node.admin_url()))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The record of the fetch of `hash`, once it has finished (the visitor may have all its
/// bytes a moment before the fetch has stored the blob).
fn record_for(node: &TestNode, hash: Hash) -> Option<serde_json::Value> {
    let mut found = None;
    let _ = wait_for(Duration::from_secs(10), || {
        found = fetches(node)
            .into_iter()
            .rev()
            .find(|r| r["hash"] == hash.to_hex() && r["total_ms"].is_number());
        found.is_some()
    });
    found
}

fn providers(node: &TestNode, hash: Hash) -> Vec<String> {
    json(&format!("{}/api/blobs/{hash}/providers", node.admin_url()))["providers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["peer"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn peer_id(node: &TestNode) -> String {
    node.handle().unwrap().info().peer_id.clone()
}

fn groups_from(record: &serde_json::Value, peer: &str) -> u64 {
    record["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["peer"] == peer)
        .and_then(|p| p["groups"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_site_published_on_one_node_is_served_by_every_node() {
    let cluster =
        Cluster::start_meshed(3, |_, _| {}, |_| test_options(), Duration::from_secs(20)).unwrap();
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let dir = tempfile::tempdir().unwrap();
    let files = site(dir.path());
    let admin = a.admin_url();
    cli(&["name", "register", "spread.proxima", "--node", &admin]).unwrap();
    cli(&[
        "publish",
        dir.path().to_str().unwrap(),
        "--name",
        "spread.proxima",
        "--node",
        &admin,
    ])
    .unwrap();
    let manifest = json(&format!("{admin}/api/sites/spread.proxima"))["manifest"]
        .as_str()
        .unwrap()
        .parse::<Hash>()
        .unwrap();
    let big = Hash::of(&files.last().unwrap().1);
    let (http_b, http_c) = (b.addr("http").unwrap(), c.addr("http").unwrap());

    // Node C never had anything: the manifest and every file through its gateway, by hash,
    // byte-identical.
    wait_for(Duration::from_secs(10), || {
        !providers(c, manifest).is_empty()
    })
    .unwrap();
    let (code, _) = get(&http_c, None, &format!("/blob/{manifest}"));
    assert_eq!(code, 200);
    for (path, data) in &files[..files.len() - 1] {
        let (code, body) = get(&http_c, None, &format!("/blob/{}", Hash::of(data)));
        assert_eq!(code, 200, "{path}");
        assert!(body == *data, "{path} differs");
    }

    // B fetches the big file; then C has two providers and takes ranges from both.
    let (code, body) = get(&http_b, None, &format!("/blob/{big}"));
    assert_eq!(code, 200);
    assert!(body == files.last().unwrap().1);
    let (pa, pb) = (peer_id(a), peer_id(b));
    wait_for(Duration::from_secs(10), || {
        let p = providers(c, big);
        p.contains(&pa) && p.contains(&pb)
    })
    .unwrap();
    let (code, body) = get(&http_c, None, &format!("/blob/{big}"));
    assert_eq!(code, 200);
    assert!(body == files.last().unwrap().1, "big file differs");
    let rec = record_for(c, big).expect("C fetched the big file");
    assert_eq!(rec["ok"], true, "{rec}");
    let (from_a, from_b) = (groups_from(&rec, &pa), groups_from(&rec, &pb));
    assert!(from_a > 0 && from_b > 0, "ranges from both A and B: {rec}");
    assert!(from_a + from_b >= 3200, "{rec}");

    // Once the zone has spread, the site by name on C, every file byte-identical.
    wait_for(Duration::from_secs(20), || {
        http_get(&format!("{}/api/sites/spread.proxima", c.admin_url())).is_ok()
    })
    .expect("the zone of spread.proxima did not reach node C");
    for (path, data) in &files {
        let (code, body) = get(&http_c, Some("spread.proxima"), &format!("/{path}"));
        assert_eq!(code, 200, "{path}");
        assert!(body == *data, "{path} differs by name");
    }
}

/// A provider that serves the real proofs with one altered chunk group.
struct Liar {
    honest: Arc<Vec<u8>>,
    altered: Arc<Vec<u8>>,
}

#[async_trait::async_trait]
impl transfer::Provider for Liar {
    async fn source(&self, hash: Hash) -> Option<Source> {
        let s = Source::unchecked(&self.honest, self.altered.as_ref().clone());
        (s.hash() == hash).then_some(s)
    }
}

#[test]
fn altered_bytes_are_caught_at_the_first_bad_group_and_the_fetch_fails_over() {
    let cluster =
        Cluster::start_meshed(2, |_, _| {}, |_| test_options(), Duration::from_secs(20)).unwrap();
    let (a, c) = (cluster.node(0), cluster.node(1));
    let data = Arc::new(noise(3_000_000, 21));
    let hash = Hash::of(&data);
    let bad_group = 10u64;
    let mut altered = data.to_vec();
    altered[(bad_group * GROUP + 5) as usize] ^= 0x40;

    // A holds the real blob (uploaded through its admin API, which announces it).
    let put = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "--data-binary",
            "@-",
            "-H",
            &a.auth_header(),
        ])
        .arg(format!("{}/api/blobs/{hash}", a.admin_url()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&data)?;
            child.wait()
        })
        .unwrap();
    assert!(put.success());

    // The liar: a raw mesh node in this process, serving the protocol with altered bytes and
    // announcing itself as a provider of the blob.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p2p = a.addr("p2p").unwrap();
    let liar = rt.block_on(async {
        let mut config = mesh::MeshConfig::local();
        config.control.bootstrap = vec![p2p.parse().unwrap()];
        let m = mesh::Mesh::start(
            mesh::keypair_from_seed([42; 32]),
            config,
            &mut prometheus_client::registry::Registry::default(),
        )
        .await
        .unwrap();
        let server = transfer::Server::new(
            Arc::new(Liar {
                honest: data.clone(),
                altered: Arc::new(altered),
            }),
            8,
        );
        server.serve_on(m.dataplane()).unwrap();
        m
    });
    let liar_id = liar.peer_id().to_string();
    let c_mesh = c.handle().unwrap().info().mesh.clone();
    wait_for(Duration::from_secs(15), || {
        c_mesh
            .members()
            .iter()
            .any(|m| m.id.peer == liar.peer_id() && m.state == mesh::MemberState::Alive)
    })
    .unwrap();
    rt.block_on(async {
        liar.control()
            .start_providing(hash.provider_key())
            .await
            .unwrap();
    });
    let pa = peer_id(a);
    wait_for(Duration::from_secs(10), || {
        let p = providers(c, hash);
        p.contains(&pa) && p.contains(&liar_id)
    })
    .unwrap();
    // Steer C to try the liar first: both measured (a probe each), and A has failed C often
    // enough recently that its score (RTT x (1 + strikes)) is worse, with a margin.
    let a_peer: mesh::PeerId = pa.parse().unwrap();
    let both = [a_peer, liar.peer_id()];
    rt.block_on(c_mesh.rank_probed(&both, false, 2, Duration::from_secs(2)));
    for _ in 0..200 {
        if c_mesh.rank(&both, false)[0].peer == liar.peer_id() {
            break;
        }
        c_mesh.report_failure(a_peer);
    }
    for _ in 0..5 {
        c_mesh.report_failure(a_peer);
    }
    assert_eq!(c_mesh.rank(&both, false)[0].peer, liar.peer_id());

    let (code, body) = get(&c.addr("http").unwrap(), None, &format!("/blob/{hash}"));
    assert_eq!(code, 200);
    assert!(body == *data, "C served altered or incomplete bytes");
    let rec = record_for(c, hash).unwrap();
    assert_eq!(rec["ok"], true, "{rec}");
    assert_eq!(rec["first"], liar_id, "{rec}");
    let liar_rec = rec["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == liar_id)
        .unwrap()
        .clone();
    assert_eq!(liar_rec["corrupt"], true, "{rec}");
    let err = liar_rec["error"].as_str().unwrap();
    assert!(
        err.contains(&format!("at byte {}", bad_group * GROUP)),
        "caught at the first bad group: {err}"
    );
    // Nothing from the bad group onward was accepted from the liar (the proof's last group
    // and groups 0..10 at most).
    assert!(
        liar_rec["groups"].as_u64().unwrap() <= bad_group + 1,
        "{rec}"
    );
    assert!(groups_from(&rec, &pa) > 0, "{rec}");
    // The liar lost standing: 4 strikes for corrupt data (score = RTT x (1 + strikes)).
    let r = &c_mesh.rank(&[liar.peer_id()], false)[0];
    let strikes = r.score / r.expected_rtt_ms - 1.0;
    assert!(
        (strikes - 4.0).abs() < 0.01,
        "liar strikes {strikes}: {r:?}"
    );
    rt.block_on(liar.leave(Duration::from_millis(200)));
}

#[test]
fn a_provider_killed_mid_transfer_does_not_fail_the_visitor() {
    let mut cluster =
        Cluster::start_meshed(3, |_, _| {}, |_| test_options(), Duration::from_secs(20)).unwrap();
    let data = noise(40 * 1024 * 1024, 33);
    let hash = Hash::of(&data);
    // A and B both hold the blob.
    for i in 0..2 {
        let n = cluster.node(i);
        let path = n.data_dir().join("upload.bin");
        std::fs::write(&path, &data).unwrap();
        let out = curl(&[
            "-f",
            "-X",
            "PUT",
            "-H",
            &n.auth_header(),
            "--data-binary",
            &format!("@{}", path.display()),
            &format!("{}/api/blobs/{hash}", n.admin_url()),
        ])
        .unwrap();
        assert!(out.status.success());
    }
    let c = cluster.node(2);
    let (pa, pb) = (peer_id(cluster.node(0)), peer_id(cluster.node(1)));
    wait_for(Duration::from_secs(10), || {
        let p = providers(c, hash);
        p.contains(&pa) && p.contains(&pb)
    })
    .unwrap();
    let http_c = c.addr("http").unwrap();
    let admin_c = c.admin_url();
    // The visitor reads slowly, so the fetch is still running when a provider dies.
    let visitor = std::thread::spawn(move || {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "60", "--limit-rate", "8M"])
            .arg(format!("http://{http_c}/blob/{hash}"))
            .output()
            .unwrap();
        out.stdout
    });
    // Kill the first provider as soon as it has delivered its first groups.
    let mut first = String::new();
    wait_for(Duration::from_secs(20), || {
        let recs: Vec<serde_json::Value> =
            serde_json::from_str(&http_get(&format!("{admin_c}/api/blobs/fetches")).unwrap())
                .unwrap();
        match recs.iter().find(|r| r["hash"] == hash.to_hex()) {
            Some(r) if r["first_group_ms"].is_number() => {
                first = r["first"].as_str().unwrap_or_default().to_owned();
                true
            }
            _ => false,
        }
    })
    .unwrap();
    let victim = if first == pa { 0 } else { 1 };
    cluster.node_mut(victim).kill();
    let body = visitor.join().unwrap();
    assert!(
        body == data,
        "the visitor got {} bytes, not the blob",
        body.len()
    );
    let c = cluster.node(2);
    let rec = record_for(c, hash).unwrap();
    assert_eq!(rec["ok"], true, "{rec}");
    let survivor = if victim == 0 { &pb } else { &pa };
    let victim_id = if victim == 0 { &pa } else { &pb };
    let victim_rec = rec["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == *victim_id)
        .unwrap();
    assert!(
        victim_rec["error"].is_string(),
        "the killed provider failed over: {rec}"
    );
    assert!(groups_from(&rec, survivor) > 0, "{rec}");
}
