//! Nearest-replica reads on the emulated WAN (real PlanetLab RTTs on the QUIC data plane).
//!
//! Five nodes on five continents-apart PlanetLab rows, replication factor 3. Clients at every
//! node read keys the node does not hold: with `READONLY` the node proxies each read to the
//! holder it ranks nearest (the map it gives lists that holder first among the replicas);
//! without, to the primary. The test asserts the routing rule (the holder that answered, seen
//! through the nodes' hit counters, is the truly nearest one for most reads) and prints the
//! read latency p50/p99 of both modes (`benches/cache/wan.sh` records them; no timing is
//! asserted).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxima::harness::{Cluster, redis_cli, wait_for, wan_options};

/// PlanetLab rows the nodes sit at.
const ROWS: [usize; 5] = [0, 133, 378, 485, 250];
const KEYS: usize = 80;

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

fn info_field(a: SocketAddr, section: &str, field: &str) -> Option<String> {
    let out = redis_cli(a, &["info", section]).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

fn hits(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("keyspace_hits:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The holders of `key` per `CLUSTER SLOTS` from `a` (primary first).
fn holders(con: &mut redis::Connection, slot: i64) -> Vec<u16> {
    let v: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(con).unwrap();
    for r in v {
        let redis::Value::Array(r) = r else { panic!() };
        let lo: i64 = redis::from_redis_value(&r[0]).unwrap();
        let hi: i64 = redis::from_redis_value(&r[1]).unwrap();
        if (lo..=hi).contains(&slot) {
            return r[2..]
                .iter()
                .map(|n| {
                    let redis::Value::Array(n) = n else { panic!() };
                    redis::from_redis_value(&n[1]).unwrap()
                })
                .collect();
        }
    }
    panic!("slot {slot} not covered")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn readonly_reads_go_to_the_nearest_replica() {
    let full = planetlab();
    let rtt = |a: usize, b: usize| if a == b { 0.0 } else { full[ROWS[a]][ROWS[b]] };
    let wan = mesh::WanEmulator::new(ROWS.len(), rtt, 7);
    let cluster = Cluster::start_meshed(
        ROWS.len(),
        |_, c| c.cache.replication_factor = 3,
        |i| wan_options(&wan, i),
        Duration::from_secs(60),
    )
    .expect("five nodes on the emulated WAN");
    let addrs: Vec<SocketAddr> = (0..ROWS.len())
        .map(|i| cluster.node(i).addr("redis").unwrap().parse().unwrap())
        .collect();
    let index_of = |port: u16| addrs.iter().position(|a| a.port() == port).unwrap();
    wait_for(Duration::from_secs(60), || {
        addrs.iter().all(|a| {
            info_field(*a, "cluster", "proxima_members").as_deref() == Some("5")
                && info_field(*a, "cluster", "proxima_importing_ranges").as_deref() == Some("0")
        })
    })
    .expect("the five nodes converge");

    let mut w = redis::Client::open(format!("redis://{}/", addrs[0]))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut p = redis::pipe();
    for k in 0..KEYS {
        p.cmd("SET").arg(format!("wan:{k}")).arg(k).ignore();
    }
    let _: () = p.query(&mut w).unwrap();
    // Every node ranks the others by measured RTTs (SWIM probes every member within a few
    // periods) before the routing is judged.
    let others = (ROWS.len() - 1).to_string();
    wait_for(Duration::from_secs(60), || {
        addrs.iter().all(|a| {
            info_field(*a, "cluster", "proxima_nearness_measured").as_deref()
                == Some(others.as_str())
        })
    })
    .expect("every node measures its RTT to every other");

    let mut stats: Vec<redis::Connection> = addrs
        .iter()
        .map(|a| {
            redis::Client::open(format!("redis://{a}/"))
                .unwrap()
                .get_connection()
                .unwrap()
        })
        .collect();
    let (mut ro, mut prim) = (Vec::new(), Vec::new());
    let (mut nearest, mut judged) = (0, 0);
    for (i, a) in addrs.iter().enumerate() {
        let mut readonly = redis::Client::open(format!("redis://{a}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("READONLY").query(&mut readonly).unwrap();
        let mut plain = redis::Client::open(format!("redis://{a}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        // Asking for the map makes a connection cluster-aware (MOVED): a separate one.
        let mut meta = redis::Client::open(format!("redis://{a}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        for k in 0..KEYS {
            let key = format!("wan:{k}");
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query(&mut meta)
                .unwrap();
            let owners: Vec<usize> = holders(&mut meta, slot).into_iter().map(index_of).collect();
            if owners.contains(&i) {
                continue;
            }
            // Which holder answers a READONLY read (one read, counters before and after).
            let before: Vec<u64> = owners.iter().map(|&o| hits(&mut stats[o])).collect();
            let t = Instant::now();
            let v: usize = redis::cmd("GET").arg(&key).query(&mut readonly).unwrap();
            ro.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(v, k);
            let after: Vec<u64> = owners.iter().map(|&o| hits(&mut stats[o])).collect();
            if let Some(j) = (0..owners.len()).find(|&j| after[j] > before[j]) {
                let best = owners
                    .iter()
                    .copied()
                    .min_by(|x, y| rtt(i, *x).total_cmp(&rtt(i, *y)))
                    .unwrap();
                judged += 1;
                if owners[j] == best {
                    nearest += 1;
                }
            }
            let t = Instant::now();
            let v: usize = redis::cmd("GET").arg(&key).query(&mut plain).unwrap();
            prim.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(v, k);
        }
    }
    ro.sort_by(f64::total_cmp);
    prim.sort_by(f64::total_cmp);
    eprintln!(
        "cache WAN reads ({} samples from 5 nodes, RF 3): READONLY nearest replica p50 {:.1} ms p99 {:.1} ms; primary p50 {:.1} ms p99 {:.1} ms; nearest holder answered {nearest}/{judged}",
        ro.len(),
        percentile(&ro, 0.5),
        percentile(&ro, 0.99),
        percentile(&prim, 0.5),
        percentile(&prim, 0.99),
    );
    assert!(judged > 20, "enough reads were attributed: {judged}");
    assert!(
        nearest * 10 >= judged * 7,
        "the nearest holder answers most READONLY reads: {nearest}/{judged}"
    );
}
