//! Naming benchmark: registrations/s on the embedded ledger, zone verifications/s, zone-store
//! lookups/s, each next to a baseline "peer" doing the irreducible part of the same work:
//!
//! - registration vs a durable `redb` insert+commit of the same bytes (both fsync per operation);
//! - decode+verify of a signed zone vs a bare Ed25519 `verify_strict` over the same bytes;
//! - `ZoneStore::lookup` of a name two labels below a zone vs a `HashMap<String, _>` get;
//! - registrations through the registrar group (Raft, members joined by TCP on loopback) of one
//!   and of three members, vs the single embedded ledger kept alone (as every node did before
//!   groups), all with fsync, side by side.
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
    let zkey = SigningKey::from_bytes(&[3; 32]);
    let zk = zkey.verifying_key().to_bytes();
    let mut rows = Vec::new();

    // 1. Registrations (each appended and fdatasync'ed before it is acknowledged), each by its
    // own owner (one owner may make 100 at once, then 2 a second).
    let n_reg = 2000;
    let owners: Vec<OwnerKey> = (0..n_reg)
        .map(|i| {
            let mut seed = [9u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            OwnerKey::Ed25519(SigningKey::from_bytes(&seed))
        })
        .collect();
    let (ops, p50, p99) = timed(n_reg, |i| {
        let n: Name = format!("bench{i}.proxima").parse().unwrap();
        rt.block_on(ledger.register(&n, &owners[i], zk, 1)).unwrap();
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

    // 4. Registrations through the registrar group, each by its own owner (no rate limit).
    let n_group = 400;
    let alone_dir = tempfile::tempdir_in(&base).expect("temp dir");
    let (alone, _) = EmbeddedLedger::open(
        alone_dir.path(),
        SigningKey::from_bytes(&[1; 32]),
        EmbeddedConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let (ops, p50, p99) = timed(n_group, |i| {
        let n: Name = format!("alone{i}.proxima").parse().unwrap();
        rt.block_on(alone.register(&n, &owners[i], zk, 1)).unwrap();
    });
    rows.push(Row {
        what: "single embedded ledger (kept alone): register",
        ops_s: ops,
        p50,
        p99,
    });
    let group_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for members in [1u8, 3] {
        let gdir = tempfile::tempdir_in(&base).expect("temp dir");
        let ledger = group_rt.block_on(group::start(gdir.path(), members, &clock));
        let (ops, p50, p99) = timed(n_group, |i| {
            let n: Name = format!("g{members}x{i}.proxima").parse().unwrap();
            group_rt
                .block_on(ledger.register(&n, &owners[i], zk, 1))
                .unwrap();
        });
        rows.push(Row {
            what: if members == 1 {
                "registrar group of 1 (Raft): register"
            } else {
                "registrar group of 3 (Raft, TCP loopback): register"
            },
            ops_s: ops,
            p50,
            p99,
        });
    }

    println!("| operation | ops/s | p50 | p99 |\n|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.1?} | {:.1?} |",
            r.what, r.ops_s, r.p50, r.p99
        );
    }
    println!("\npeak RSS: {} KiB", rss_kib());
    println!(
        "ratios: register/redb = {:.2}, verify/ed25519 = {:.2}, lookup/hashmap = {:.2}, \
         group of 1/alone = {:.2}, group of 3/alone = {:.2}",
        rows[0].ops_s / rows[1].ops_s,
        rows[2].ops_s / rows[3].ops_s,
        rows[4].ops_s / rows[5].ops_s,
        rows[7].ops_s / rows[6].ops_s,
        rows[8].ops_s / rows[6].ops_s
    );
}

/// A registrar group whose members talk over TCP on loopback (length-prefixed JSON), and the
/// ledger a node's naming service would use on its last member.
mod group {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use naming::ed25519_dalek::SigningKey;
    use naming::raft::testing::Routed;
    use naming::raft::{
        GroupMessage, GroupReply, GroupRouter, GroupSettings, GroupTransport, RegistrarGroup,
        SubmitPath, submit_over,
    };
    use naming::{
        EmbeddedConfig, EmbeddedLedger, FollowerLedger, Ledger, LedgerError, ManualClock,
        SyncMetrics,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    type Book = Arc<parking_lot::Mutex<Vec<([u8; 32], SocketAddr)>>>;

    #[derive(Clone)]
    struct Tcp {
        me: [u8; 32],
        founder: [u8; 32],
        book: Book,
    }

    async fn write(s: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        s.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
        s.write_all(bytes).await
    }

    async fn read(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let mut b = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut b).await?;
        Ok(b)
    }

    #[async_trait]
    impl GroupTransport for Tcp {
        async fn call(
            &self,
            to: [u8; 32],
            message: GroupMessage,
            timeout: Duration,
        ) -> Result<GroupReply, String> {
            let addr = self
                .book
                .lock()
                .iter()
                .find(|(k, _)| *k == to)
                .map(|(_, a)| *a)
                .ok_or("unknown member")?;
            let exchange = async {
                let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                let mut out = self.me.to_vec();
                out.extend(serde_json::to_vec(&message).map_err(|e| e.to_string())?);
                write(&mut s, &out).await.map_err(|e| e.to_string())?;
                let reply = read(&mut s).await.map_err(|e| e.to_string())?;
                serde_json::from_slice(&reply).map_err(|e| e.to_string())
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| "timed out".to_string())?
        }
    }

    #[async_trait]
    impl SubmitPath for Tcp {
        async fn submit_to(&self, member: [u8; 32], tx: &[u8]) -> Result<u64, LedgerError> {
            submit_over(self, self.founder, member, tx).await
        }
    }

    fn serve(listener: TcpListener, group: Arc<RegistrarGroup>) {
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let group = group.clone();
                tokio::spawn(async move {
                    let _ = s.set_nodelay(true);
                    let Ok(req) = read(&mut s).await else { return };
                    if req.len() < 32 {
                        return;
                    }
                    let from: [u8; 32] = req[..32].try_into().unwrap();
                    let Ok(message) = serde_json::from_slice(&req[32..]) else {
                        return;
                    };
                    let reply = group.handle(from, message).await;
                    let _ = write(&mut s, &serde_json::to_vec(&reply).unwrap()).await;
                });
            }
        });
    }

    /// `n` members in `dir`, the first founding; the ledger on the last.
    pub(crate) async fn start(dir: &Path, n: u8, clock: &ManualClock) -> Arc<dyn Ledger> {
        let book: Book = Arc::default();
        let founder = SigningKey::from_bytes(&[41; 32]).verifying_key().to_bytes();
        let mut members = Vec::new();
        for i in 0..n {
            let signer = SigningKey::from_bytes(&[41 + i; 32]);
            let me = signer.verifying_key().to_bytes();
            let (ledger, _) = EmbeddedLedger::open_replica(
                &dir.join(format!("m{i}")),
                founder,
                Some(signer),
                EmbeddedConfig::default(),
                Arc::new(clock.clone()),
            )
            .unwrap();
            let tcp = Tcp {
                me,
                founder,
                book: book.clone(),
            };
            let group = RegistrarGroup::start(
                ledger.clone(),
                me,
                &dir.join(format!("m{i}.redb")),
                Arc::new(tcp.clone()),
                GroupSettings::default(),
            )
            .await
            .unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            book.lock().push((me, listener.local_addr().unwrap()));
            serve(listener, group.clone());
            members.push((ledger, group, tcp));
        }
        members[0].1.found().await.unwrap();
        for m in &members[1..] {
            members[0].1.add_member(m.1.key()).await.unwrap();
        }
        let (ledger, group, tcp) = members.pop().unwrap();
        let router = GroupRouter::new(ledger.clone(), Some(group), tcp);
        // The others stay up as long as the runtime (their tasks hold them).
        std::mem::forget(members);
        Arc::new(FollowerLedger::new(
            ledger,
            Arc::new(Routed(router)),
            SyncMetrics::default(),
        ))
    }
}
