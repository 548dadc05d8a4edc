//! Naming benchmark: registrations/s on the embedded ledger, zone verifications/s, zone-store
//! lookups/s, each next to a baseline "peer" doing the irreducible part of the same work:
//!
//! - registration vs a durable `redb` insert+commit of the same bytes (both fsync per operation);
//! - decode+verify of a signed zone vs a bare Ed25519 `verify_strict` over the same bytes;
//! - `ZoneStore::lookup` of a name two labels below a zone vs a `HashMap<String, _>` get.
//!
//! Run: `taskset -c 0 cargo bench -p naming --bench naming -- [DIR]` (DIR: where the ledger
//! and redb files go; default: a temp dir under $TMPDIR). Prints a Markdown table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use naming::ed25519_dalek::{Signer, SigningKey};
use naming::{
    EmbeddedConfig, EmbeddedLedger, Ledger, ManualClock, Name, OwnerKey, Record, RecordData,
    SignedZone, Zone, ZoneStore,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Row {
    what: &'static str,
    ops_s: f64,
    p50: Duration,
    p99: Duration,
}

fn timed(n: usize, mut f: impl FnMut(usize)) -> (f64, Duration, Duration) {
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        f(i);
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    lat.sort();
    (
        n as f64 / total.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    )
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn zone(name: &Name, records: usize) -> Zone {
    Zone {
        name: name.clone(),
        sequence: 1,
        timestamp: 1,
        records: (0..records)
            .map(|i| Record {
                owner: name.clone(),
                ttl: 300,
                data: RecordData::A([192, 0, 2, i as u8].into()),
            })
            .collect(),
    }
}

fn main() {
    let base: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clock = ManualClock::new(1_800_000_000);
    let (ledger, _) = EmbeddedLedger::open(
        &dir.path().join("ledger"),
        SigningKey::from_bytes(&[1; 32]),
        EmbeddedConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let owner = OwnerKey::Ed25519(SigningKey::from_bytes(&[2; 32]));
    let zkey = SigningKey::from_bytes(&[3; 32]);
    let zk = zkey.verifying_key().to_bytes();
    let mut rows = Vec::new();

    // 1. Registrations (each appended and fdatasync'ed before it is acknowledged).
    let n_reg = 2000;
    let (ops, p50, p99) = timed(n_reg, |i| {
        let n: Name = format!("bench{i}.proxima").parse().unwrap();
        rt.block_on(ledger.register(&n, &owner, zk, 1)).unwrap();
    });
    rows.push(Row {
        what: "embedded ledger: register (fsync each)",
        ops_s: ops,
        p50,
        p99,
    });
    // Peer: redb durable commit per insert of a ~350-byte value.
    let db = redb::Database::create(dir.path().join("peer.redb")).unwrap();
    const T: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("t");
    let value = vec![7u8; 350];
    let (ops, p50, p99) = timed(n_reg, |i| {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            t.insert(format!("bench{i}.proxima").as_str(), value.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    });
    rows.push(Row {
        what: "peer: redb insert+commit (durable)",
        ops_s: ops,
        p50,
        p99,
    });

    // 2. Zone verification: decode + verify of a 10-record signed zone.
    let zname: Name = "bench0.proxima".parse().unwrap();
    let signed = SignedZone::sign(zone(&zname, 10), &zkey).unwrap();
    let bytes = signed.encode();
    let n_ver = 20_000;
    let (ops, p50, p99) = timed(n_ver, |_| {
        let z = SignedZone::decode(std::hint::black_box(&bytes)).unwrap();
        z.verify().unwrap();
    });
    rows.push(Row {
        what: "zone decode+verify (10 records)",
        ops_s: ops,
        p50,
        p99,
    });
    let sig = zkey.sign(&bytes);
    let vk = zkey.verifying_key();
    let (ops, p50, p99) = timed(n_ver, |_| {
        vk.verify_strict(std::hint::black_box(&bytes), &sig)
            .unwrap();
    });
    rows.push(Row {
        what: "peer: ed25519 verify_strict, same bytes",
        ops_s: ops,
        p50,
        p99,
    });

    // 3. Lookups: 500 zones in the store, names two labels below them.
    let store = ZoneStore::open(
        &dir.path().join("zones.redb"),
        Arc::new(ledger.clone()),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let n_zones = 500;
    for i in 0..n_zones {
        let n: Name = format!("bench{i}.proxima").parse().unwrap();
        rt.block_on(store.accept(SignedZone::sign(zone(&n, 3), &zkey).unwrap()))
            .unwrap();
    }
    let queries: Vec<Name> = (0..n_zones)
        .map(|i| format!("a.www.bench{i}.proxima").parse().unwrap())
        .collect();
    let n_look = 1_000_000;
    let batch = 100;
    let (ops, p50, p99) = timed(n_look / batch, |i| {
        for j in 0..batch {
            let q = &queries[(i * batch + j) % queries.len()];
            std::hint::black_box(store.lookup(q)).unwrap();
        }
    });
    rows.push(Row {
        what: "ZoneStore::lookup, 2 labels below a zone (per 100)",
        ops_s: ops * batch as f64,
        p50,
        p99,
    });
    let map: HashMap<String, Arc<SignedZone>> = (0..n_zones)
        .map(|i| (format!("bench{i}.proxima"), Arc::new(signed.clone())))
        .collect();
    let keys: Vec<String> = (0..n_zones).map(|i| format!("bench{i}.proxima")).collect();
    let (ops, p50, p99) = timed(n_look / batch, |i| {
        for j in 0..batch {
            let k = &keys[(i * batch + j) % keys.len()];
            std::hint::black_box(map.get(k.as_str()).cloned()).unwrap();
        }
    });
    rows.push(Row {
        what: "peer: HashMap<String, Arc<_>> get, exact key (per 100)",
        ops_s: ops * batch as f64,
        p50,
        p99,
    });

    println!("| operation | ops/s | p50 | p99 |\n|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.1?} | {:.1?} |",
            r.what, r.ops_s, r.p50, r.p99
        );
    }
    println!("\npeak RSS: {} KiB", rss_kib());
    println!(
        "ratios: register/redb = {:.2}, verify/ed25519 = {:.2}, lookup/hashmap = {:.2}",
        rows[0].ops_s / rows[1].ops_s,
        rows[2].ops_s / rows[3].ops_s,
        rows[4].ops_s / rows[5].ops_s
    );
}
