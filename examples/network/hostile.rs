//! hostile-peer: an outsider joins the mesh next to the clients, announces itself as a provider
//! of every blob of every site, answers blob requests with the genuine response of an honest
//! holder in which it flips bytes (so the framing and sizes look right and only verification
//! can tell), answers zone syncs with forged zones, and gossips forged zones (newer sequence,
//! wrong key) for every site. Clients browse through their own node, which does not hold the
//! sites and must fetch them over the mesh, where the outsider is the nearest provider.
//!
//! Reports how many page views the outsider affected (the serving node saw corrupt data during
//! the view, or the view failed) and whether any byte that does not match its published hash
//! reached a client (must be 0), or any DNS answer named an address outside the network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cdn_edge::Hash;
use naming::ed25519_dalek::SigningKey;
use naming::{Name, Record, RecordData, SignedZone, Zone};

use super::Params;
use super::browse::{self, client_nodes};
use super::net::{Net, node_of_ip};
use super::probe::{self, ms};
use super::report::{Report, Table};
use super::sites::Site;

/// The blob-transfer protocol of the CDN edge.
const BLOB_ALPN: &[u8] = cdn_edge::transfer::ALPN;

/// The hostile outsider: a mesh member with its own runtime.
struct Rogue {
    rt: tokio::runtime::Runtime,
    mesh: mesh::Mesh,
}

fn forged(name: &str, seq: u64) -> SignedZone {
    let owner = Name::parse(name).expect("site name");
    SignedZone::sign(
        Zone {
            name: owner.clone(),
            sequence: seq,
            timestamp: u64::MAX / 4,
            records: vec![Record {
                owner,
                ttl: 300,
                data: RecordData::parse("A", "203.0.113.66").expect("A record"),
            }],
        },
        &SigningKey::from_bytes(&rand::random()),
    )
    .expect("sign")
}

/// Sum of every `/metrics` sample whose name mentions `word`.
fn metric_like(admin: &str, word: &str) -> f64 {
    let text = proxima::harness::http_get(&format!("{admin}/metrics")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next().is_some_and(|n| n.contains(word)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Rogue {
    fn start(net: &Net, position: usize, sites: &[Site]) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let boot = net.addrs(0).context("node 0")?.p2p;
        // Which honest node to copy each blob's response from.
        let mut holder: HashMap<[u8; 32], mesh::PeerId> = HashMap::new();
        for s in sites {
            let peer: mesh::PeerId = net.peer_id(s.publisher).context("publisher")?.parse()?;
            for h in s.hashes() {
                holder.insert(*h.as_bytes(), peer);
            }
        }
        let names: Vec<String> = sites.iter().map(|s| s.name.clone()).collect();
        let hashes: Vec<Hash> = sites.iter().flat_map(Site::hashes).collect();
        let wan = net.wan.clone();
        let mesh = rt.block_on(async move {
            let mut mc = mesh::MeshConfig::local();
            mc.control.bootstrap = vec![boot.parse()?];
            mc.wan = Some(mesh::WanLink {
                emulator: wan.clone(),
                position,
            });
            mc.membership = mesh::MembershipConfig::wan();
            let key = mesh::keypair_from_seed(rand::random());
            let mut registry = prometheus_client::registry::Registry::default();
            let m = mesh::Mesh::start(key, mc, &mut registry).await?;
            let relay = m.clone();
            let holder = Arc::new(holder);
            m.dataplane()
                .serve_streams(BLOB_ALPN, move |_peer, mut send, mut recv| {
                    let (relay, holder) = (relay.clone(), holder.clone());
                    Box::pin(async move {
                        // Read the request, find the hash in it, ask an honest holder the same
                        // question, and pass its answer on with bytes flipped.
                        let mut req = vec![0u8; 4096];
                        let mut len = 0;
                        while len < req.len() {
                            match tokio::time::timeout(
                                Duration::from_millis(300),
                                recv.read(&mut req[len..]),
                            )
                            .await
                            {
                                Ok(Ok(Some(k))) if k > 0 => len += k,
                                _ => break,
                            }
                        }
                        let req = &req[..len];
                        let Some(peer) = req
                            .windows(32)
                            .find_map(|w| holder.get(<&[u8; 32]>::try_from(w).ok()?))
                        else {
                            return;
                        };
                        let Ok((mut up_send, mut up_recv)) = relay.open_bi(*peer, BLOB_ALPN).await
                        else {
                            return;
                        };
                        if up_send.write_all(req).await.is_err() {
                            return;
                        }
                        let _ = up_send.finish();
                        let mut buf = vec![0u8; 64 * 1024];
                        let mut at = 0usize;
                        while let Ok(Some(k)) = up_recv.read(&mut buf).await {
                            for (i, b) in buf[..k].iter_mut().enumerate() {
                                if (at + i) % 4096 == 600 {
                                    *b ^= 0x55;
                                }
                            }
                            at += k;
                            if send.write_all(&buf[..k]).await.is_err() {
                                return;
                            }
                        }
                        let _ = send.finish();
                    })
                })?;
            let zones: Vec<Vec<u8>> = names.iter().map(|n| forged(n, 1 << 40).encode()).collect();
            m.dataplane().serve_streams(
                proxima::names::spread::ZONES_ALPN,
                move |_peer, mut send, _recv| {
                    let zones = zones.clone();
                    Box::pin(async move {
                        for z in &zones {
                            if mesh::frame::write(&mut send, z).await.is_err() {
                                return;
                            }
                        }
                        let _ = send.finish();
                    })
                },
            )?;
            let _rx = m
                .control()
                .subscribe(proxima::names::spread::ZONE_TOPIC)
                .await?;
            for h in &hashes {
                // Best effort: the DHT may need a moment; retried below for the manifests.
                let _ = m.control().start_providing(h.provider_key()).await;
            }
            Ok::<_, anyhow::Error>(m)
        })?;
        Ok(Self { rt, mesh })
    }

    /// Gossips a forged zone for every name (retrying until the topic has peers).
    fn gossip_forgeries(&self, names: &[String], seq: u64) {
        self.rt.block_on(async {
            for n in names {
                let bytes = forged(n, seq).encode();
                for _ in 0..50 {
                    if self
                        .mesh
                        .control()
                        .publish(proxima::names::spread::ZONE_TOPIC, bytes.clone().into())
                        .await
                        .is_ok()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
}

/// Runs the scenario.
pub(crate) fn run(p: &Params, report: &mut Report) -> Result<()> {
    let clients: Vec<usize> = client_nodes(p.nodes, p.clients + 1)
        .into_iter()
        .filter(|&c| c != 0)
        .collect();
    let near = clients.first().copied().unwrap_or(1);
    let net = Arc::new(Net::start(p, 1, near, |_, _| {})?);
    let rogue_pos = net.n;
    report.metric("mesh_formed_s", net.formed_in.as_secs_f64());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (sites, spread) = rt.block_on(browse::publish_and_spread(&net, p))?;
    report.metric(
        "zones_spread_s",
        spread.map_or(f64::NAN, |d| d.as_secs_f64()),
    );
    let names: Vec<String> = sites.iter().map(|s| s.name.clone()).collect();
    let refused_before: f64 = net
        .live()
        .iter()
        .filter_map(|&i| net.addrs(i))
        .map(|a| probe::metric(&a.admin, "proxima_naming_zones_refused_total", ""))
        .sum();

    let rogue = Rogue::start(&net, rogue_pos, &sites)?;
    let rogue_peer = rogue.mesh.peer_id().to_string();
    let joined = proxima::harness::wait_for(Duration::from_secs(30), || {
        net.all_see(&clients, &rogue_peer, true)
    })
    .is_ok();
    report.metric("rogue_joined", if joined { 1.0 } else { 0.0 });
    report.metric("rogue_rtt_to_first_client_ms", net.rtt(near, rogue_pos));
    super::progress(&format!("outsider joined: {joined}"));
    rogue.gossip_forgeries(&names, 1 << 41);

    // Page views through the client's own node, one at a time so that a corrupt-data report
    // on the serving node can be attributed to the view in progress.
    let mut rows = Vec::new();
    let (mut views, mut failed, mut unverified, mut foreign, mut affected) = (0, 0, 0, 0, 0);
    let mut last_affected = 0usize;
    let mut lat = Vec::new();
    for round in 0..p.visits.max(1) {
        for &c in &clients {
            for s in sites.iter().filter(|s| s.publisher != c) {
                let Some(a) = net.addrs(c) else { continue };
                views += 1;
                if let Ok(ans) = rt.block_on(probe::resolve(a.dns, &s.name, Duration::from_secs(3)))
                {
                    foreign += ans
                        .addrs
                        .iter()
                        .filter(|ip| node_of_ip(**ip, net.n).is_none())
                        .count();
                }
                let before = metric_like(&a.admin, "corrupt");
                let started = Instant::now();
                let v = rt.block_on(probe::visit(a.http, s, Duration::from_secs(15)));
                let took = ms(started.elapsed());
                let hit = metric_like(&a.admin, "corrupt") > before;
                match &v {
                    Ok(v) => {
                        unverified += v.unverified;
                        lat.push(took);
                    }
                    Err(e) => {
                        failed += 1;
                        if failed <= 3 {
                            report.notes.push(format!("failed view at node {c}: {e:#}"));
                        }
                    }
                }
                if hit || v.is_err() {
                    affected += 1;
                    last_affected = views;
                }
                rows.push((round, c, s.name.clone(), hit, v.is_ok(), took));
            }
        }
    }
    rogue.gossip_forgeries(&names, 1 << 42);
    // Forged zones must change no answer: every node still answers node addresses only.
    for i in net.live() {
        let Some(a) = net.addrs(i) else { continue };
        for n in &names {
            if let Ok(ans) = rt.block_on(probe::resolve(a.dns, n, Duration::from_secs(3))) {
                foreign += ans
                    .addrs
                    .iter()
                    .filter(|ip| node_of_ip(**ip, net.n).is_none())
                    .count();
            }
        }
    }
    let refused_after: f64 = net
        .live()
        .iter()
        .filter_map(|&i| net.addrs(i))
        .map(|a| probe::metric(&a.admin, "proxima_naming_zones_refused_total", ""))
        .sum();
    let corrupt_total: f64 = net
        .live()
        .iter()
        .filter_map(|&i| net.addrs(i))
        .map(|a| metric_like(&a.admin, "corrupt"))
        .sum();
    report.metric("views", views as f64);
    report.metric("failed_views", failed as f64);
    report.metric("unverified_files", unverified as f64);
    report.metric("foreign_answers", foreign as f64);
    report.metric("affected_views", affected as f64);
    report.metric("last_affected_view", last_affected as f64);
    report.metric("corrupt_reports", corrupt_total);
    report.metric("forged_zones_refused", refused_after - refused_before);
    let mut t = Report::latency_table(
        "Page views through the client's own node (which fetches over the mesh)",
    );
    report.latency("page_via_local", &lat, &mut t);
    report.tables.push(t);
    report.tables.push(Table {
        title: "Hostile peer: what reached clients".into(),
        header: [
            "views",
            "affected (corrupt data seen or failed)",
            "last affected view",
            "failed",
            "unverified files at clients",
            "answers outside the network",
            "forged zones refused (all nodes)",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![vec![
            views.to_string(),
            affected.to_string(),
            last_affected.to_string(),
            failed.to_string(),
            unverified.to_string(),
            foreign.to_string(),
            format!("{}", refused_after - refused_before),
        ]],
    });
    report.notes.push(format!(
        "The outsider sits {:.0} ms from node {near}; it advertises no HTTP service, so DNS never \
         sends clients to it (a client that is steered to a hostile gateway is outside what \
         nodes can verify for it).",
        net.rtt(near, rogue_pos)
    ));
    rogue
        .rt
        .block_on(rogue.mesh.leave(Duration::from_millis(200)));
    net.stop();
    Ok(())
}
