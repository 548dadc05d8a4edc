//! Per-operation cost of the local store candidates, single-threaded, as the cache's hot path
//! uses them: moka's sync cache (byte-weighted, TTL) against the keyspace in `cache::db`.
//!
//! Run: `cargo bench -p cache --bench store_ops` (plain `main`, prints ns/op). Results and the
//! decision they led to are in `benches/results/cache.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cache::db::Db;
use cache::value::Value;

const KEYS: usize = 100_000;
const OPS: usize = 2_000_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("key:{i:08}").into_bytes())
        .collect()
}

fn report(name: &str, start: Instant, ops: usize) {
    let ns = start.elapsed().as_nanos() as f64 / ops as f64;
    println!("{name:<40} {ns:>8.1} ns/op  ({:.2} Mops/s)", 1000.0 / ns);
}

#[allow(clippy::borrowed_box)] // moka's weigher signature
fn weigh(k: &Box<[u8]>, v: &Box<[u8]>) -> u32 {
    (k.len() + v.len() + 64) as u32
}

fn bench_moka(keys: &[Vec<u8>]) {
    let cache: moka::sync::Cache<Box<[u8]>, Box<[u8]>> = moka::sync::Cache::builder()
        .max_capacity(1 << 30)
        .weigher(weigh)
        .time_to_live(Duration::from_secs(3600))
        .build();
    let start = Instant::now();
    for i in 0..OPS {
        let k = &keys[i % KEYS];
        cache.insert(k.clone().into_boxed_slice(), Box::from(&b"xyz"[..]));
    }
    report("moka::sync insert (weigher, ttl)", start, OPS);
    let start = Instant::now();
    let mut hits = 0;
    for i in 0..OPS {
        let k = &keys[(i * 7) % KEYS];
        if cache.get(&k[..]).is_some() {
            hits += 1;
        }
    }
    black_box(hits);
    report("moka::sync get", start, OPS);
}

fn bench_db(keys: &[Vec<u8>]) {
    let mut db = Db::new();
    db.maxmemory = 1 << 30;
    let start = Instant::now();
    for i in 0..OPS {
        let k = &keys[i % KEYS];
        db.ensure_memory(1).ok();
        db.insert(k, Value::Str(b"xyz".into()), 0, 1);
    }
    report("cache::db insert (accounting, lfu)", start, OPS);
    let start = Instant::now();
    let mut hits = 0;
    for i in 0..OPS {
        let k = &keys[(i * 7) % KEYS];
        if db.get(k, 1).is_some() {
            hits += 1;
        }
    }
    black_box(hits);
    report("cache::db get", start, OPS);
    let m = parking_lot::Mutex::new(db);
    let start = Instant::now();
    for i in 0..OPS {
        let k = &keys[(i * 7) % KEYS];
        black_box(m.lock().get(k, 1).is_some());
    }
    report("cache::db get + uncontended lock per op", start, OPS);
}

fn main() {
    let keys = keys();
    bench_moka(&keys);
    bench_db(&keys);
}
