//! The emulated Internet: N in-process nodes on a `WanEmulator` whose RTTs are N rows of the
//! PlanetLab matrix, each node serving HTTP on its own loopback address (127.0.0.{i+1}) so a
//! DNS answer says which node it names. Kill, restart and partition, with every node's current
//! service addresses kept up to date (a restarted node listens on new ephemeral ports).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use parking_lot_shim::{Mutex, RwLock};
use proxima::config::Config;
use proxima::harness::{Cluster, TestNode, wan_options};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::Params;

/// `std::sync` locks with the poisoning unwrapped (a panicking scenario thread fails the run).
mod parking_lot_shim {
    pub(super) struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub(super) fn new(v: T) -> Self {
            Self(std::sync::Mutex::new(v))
        }
        pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
    pub(super) struct RwLock<T>(std::sync::RwLock<T>);
    impl<T> RwLock<T> {
        pub(super) fn new(v: T) -> Self {
            Self(std::sync::RwLock::new(v))
        }
        pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }
        pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// The full PlanetLab matrix (ms), vendored by the mesh crate.
pub(crate) fn planetlab() -> Result<Vec<Vec<f64>>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mesh/testdata/planetlab-490.tsv"
    );
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    text.lines()
        .map(|l| {
            l.split('\t')
                .map(|v| v.trim().parse::<f64>().context("bad RTT in the matrix"))
                .collect()
        })
        .collect()
}

/// Picks `n` rows whose pairwise RTTs are all measured (> 0), in a seeded random order.
pub(crate) fn pick_rows(full: &[Vec<f64>], n: usize, seed: u64) -> Result<Vec<usize>> {
    let mut order: Vec<usize> = (0..full.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let mut rows: Vec<usize> = Vec::with_capacity(n);
    for r in order {
        if rows.len() == n {
            break;
        }
        let ok = rows.iter().all(|&o| {
            let (a, b) = (full[r][o], full[o][r]);
            a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()
        });
        if ok {
            rows.push(r);
        }
    }
    if rows.len() < n {
        bail!("the matrix has no {n} rows with all pairs measured");
    }
    Ok(rows)
}

/// Where a running node's services listen.
#[derive(Debug, Clone)]
pub(crate) struct Addrs {
    /// Admin base URL.
    pub admin: String,
    /// `Authorization: Bearer <admin token>`, for changing admin requests (`curl -H`).
    pub auth: String,
    /// DNS (UDP and TCP).
    pub dns: SocketAddr,
    /// HTTP gateway.
    pub http: SocketAddr,
    /// Redis protocol.
    pub redis: SocketAddr,
    /// libp2p listen address (multiaddr).
    pub p2p: String,
    /// libp2p peer id.
    pub peer_id: String,
}

impl Addrs {
    fn of(node: &TestNode) -> Result<Self> {
        let get = |s: &str| -> Result<SocketAddr> {
            node.addr(s)
                .with_context(|| format!("node has no {s} service"))?
                .parse()
                .with_context(|| format!("bad {s} address"))
        };
        Ok(Self {
            admin: node.admin_url(),
            auth: node.auth_header(),
            dns: get("dns")?,
            http: get("http")?,
            redis: get("redis")?,
            p2p: node.addr("p2p").context("node has no p2p address")?,
            peer_id: node.health()?.peer_id,
        })
    }
}

/// The loopback address node `i` serves HTTP on.
pub(crate) fn http_ip(i: usize) -> IpAddr {
    let i = u32::try_from(i + 1).expect("small index");
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | i))
}

/// The node a DNS answer's address names.
pub(crate) fn node_of_ip(ip: IpAddr, n: usize) -> Option<usize> {
    let IpAddr::V4(v4) = ip else { return None };
    let o = v4.octets();
    let i = (u32::from(o[1]) << 16 | u32::from(o[2]) << 8 | u32::from(o[3])).checked_sub(1)?;
    (o[0] == 127 && (i as usize) < n).then_some(i as usize)
}

/// The running network.
pub(crate) struct Net {
    /// The emulated WAN (positions `0..n` are the nodes, further positions are extras).
    pub wan: Arc<mesh::WanEmulator>,
    /// Node count.
    pub n: usize,
    /// RTT (ms) between positions, as the emulator imposes it.
    rtt: Vec<Vec<f64>>,
    cluster: Mutex<Cluster>,
    addrs: RwLock<Vec<Option<Addrs>>>,
    cut: RwLock<Vec<Vec<bool>>>,
    /// When the network finished forming.
    pub formed_in: Duration,
}

impl Net {
    /// Starts `p.nodes` nodes (plus `extra` emulator positions for outsiders, placed at the
    /// matrix rows nearest to node `near`), configured by `tweak`, and waits for the mesh.
    pub(crate) fn start(
        p: &Params,
        extra: usize,
        near: usize,
        tweak: impl Fn(usize, &mut Config),
    ) -> Result<Self> {
        let n = p.nodes;
        let full = planetlab()?;
        let mut rows = pick_rows(&full, n, p.seed)?;
        // Outsiders sit close to node `near`: the nearest measured rows not taken yet.
        let mut free: Vec<usize> = (0..full.len())
            .filter(|r| !rows.contains(r) && rows.iter().all(|&o| full[*r][o] > 0.0))
            .collect();
        free.sort_by(|a, b| full[rows[near]][*a].total_cmp(&full[rows[near]][*b]));
        rows.extend(free.into_iter().take(extra));
        let total = rows.len();
        let rtt: Vec<Vec<f64>> = (0..total)
            .map(|a| {
                (0..total)
                    .map(|b| if a == b { 0.0 } else { full[rows[a]][rows[b]] })
                    .collect()
            })
            .collect();
        let matrix = rtt.clone();
        let wan = mesh::WanEmulator::new(total, move |a, b| matrix[a][b], p.seed);
        let threads = p.worker_threads.max(1);
        let started = Instant::now();
        super::progress(&format!(
            "starting {n} nodes ({threads} worker thread(s) each)"
        ));
        let cluster = Cluster::start_meshed(
            n,
            |i, c| {
                c.http_listen = SocketAddr::new(http_ip(i), 0);
                c.log = "warn".into();
                c.cache.replication_factor = p.replication_factor;
                c.cache.sync_replication = p.sync_replication;
                tweak(i, c);
            },
            |i| proxima::node::NodeOptions {
                worker_threads: Some(threads),
                ..wan_options(&wan, i)
            },
            Duration::from_secs(p.mesh_deadline_secs),
        )
        .context("the nodes did not form one mesh")?;
        super::progress(&format!("{n} nodes see each other alive"));
        // Node logs name the node by thread (`node3`) and peers by id: the key to read them.
        for (i, t) in cluster.nodes.iter().enumerate() {
            if let Some(h) = t.handle() {
                tracing::info!(node = i, peer = %h.info().peer_id, "scenario: node's peer id");
            }
        }
        let addrs = cluster
            .nodes
            .iter()
            .map(|t| Addrs::of(t).map(Some))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            wan,
            n,
            rtt,
            cluster: Mutex::new(cluster),
            addrs: RwLock::new(addrs),
            cut: RwLock::new(vec![vec![false; total]; total]),
            formed_in: started.elapsed(),
        })
    }

    /// The RTT (ms) between two positions.
    pub(crate) fn rtt(&self, a: usize, b: usize) -> f64 {
        self.rtt[a][b]
    }

    /// Node `i`'s addresses, if it runs.
    pub(crate) fn addrs(&self, i: usize) -> Option<Addrs> {
        self.addrs.read()[i].clone()
    }

    /// Whether node `i` runs.
    pub(crate) fn alive(&self, i: usize) -> bool {
        self.addrs.read()[i].is_some()
    }

    /// Running nodes.
    pub(crate) fn live(&self) -> Vec<usize> {
        (0..self.n).filter(|&i| self.alive(i)).collect()
    }

    /// Whether positions `a` and `b` can talk (not cut by a partition).
    pub(crate) fn reachable(&self, a: usize, b: usize) -> bool {
        !self.cut.read()[a][b]
    }

    /// Kills node `i` abruptly.
    pub(crate) fn kill(&self, i: usize) {
        self.addrs.write()[i] = None;
        self.cluster.lock().node_mut(i).kill();
    }

    /// Restarts node `i` on its data directory (same identity), waiting until it answers.
    pub(crate) fn restart(&self, i: usize) -> Result<()> {
        let a = {
            let mut c = self.cluster.lock();
            c.node_mut(i).restart()?;
            Addrs::of(c.node(i))?
        };
        self.addrs.write()[i] = Some(a);
        Ok(())
    }

    /// Cuts (or heals) every link between `group` and the other positions.
    pub(crate) fn partition(&self, group: &[usize], cut: bool) {
        let total = self.rtt.len();
        let mut m = self.cut.write();
        for &a in group {
            for b in (0..total).filter(|b| !group.contains(b)) {
                self.wan.set_cut(a, b, cut);
                m[a][b] = cut;
                m[b][a] = cut;
            }
        }
    }

    /// Peer id of node `i` (as last seen running).
    pub(crate) fn peer_id(&self, i: usize) -> Option<String> {
        self.addrs(i).map(|a| a.peer_id)
    }

    /// Whether every running node in `observers` sees the peer `peer` in `state` (or, with
    /// `alive == false`, not alive).
    pub(crate) fn all_see(&self, observers: &[usize], peer: &str, alive: bool) -> bool {
        observers.iter().all(|&o| {
            let Some(a) = self.addrs(o) else { return true };
            proxima::harness::get_health(&a.admin).is_ok_and(|h| {
                let is_alive = h
                    .members
                    .iter()
                    .any(|m| m.peer_id == peer && m.state == mesh::MemberState::Alive);
                is_alive == alive
            })
        })
    }

    /// The observers for which [`Net::all_see`] does not hold, with what each sees instead:
    /// printed when a wait for convergence runs out, so a failed run says who disagreed.
    pub(crate) fn disagreeing(&self, observers: &[usize], peer: &str, alive: bool) -> Vec<String> {
        let mut out = Vec::new();
        for &o in observers {
            let Some(a) = self.addrs(o) else { continue };
            match proxima::harness::get_health(&a.admin) {
                Err(e) => out.push(format!("node {o}: /health failed: {e:#}")),
                Ok(h) => {
                    let state = h
                        .members
                        .iter()
                        .find(|m| m.peer_id == peer)
                        .map(|m| m.state);
                    if (state == Some(mesh::MemberState::Alive)) != alive {
                        out.push(format!("node {o} sees it {state:?}"));
                    }
                }
            }
        }
        out
    }

    /// Stops every node (gracefully).
    pub(crate) fn stop(&self) {
        let mut c = self.cluster.lock();
        for t in &mut c.nodes {
            t.shutdown();
        }
    }
}
