//! The DNS service alone, loaded with N generated ledger names, for `benches/dns`:
//! `bench_server LISTEN NAMES [UDP_SOCKETS] [UPSTREAM]`. Name `n{i}.proxima` has one A record
//! (`10.x.y.z` from i) with TTL 3600. Prints `ready ADDR` once serving; runs until killed.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dns::{DnsConfig, LocalSteering, MemoryZones, ZoneView};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .get(1)
        .map_or("127.0.0.1:5399", String::as_str)
        .parse()?;
    let names: u32 = args.get(2).map_or(Ok(100_000), |s| s.parse())?;
    let udp_sockets: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let upstreams: Vec<String> = args.get(4).cloned().into_iter().collect();

    let zones = Arc::new(MemoryZones::default());
    for i in 0..names {
        let apex = Name::from_ascii(format!("n{i}.proxima."))?;
        let ip = Ipv4Addr::from(0x0A00_0000 | i);
        zones.insert(ZoneView {
            apex: apex.clone(),
            sequence: 1,
            records: vec![Record::from_rdata(apex, 3600, RData::A(A(ip)))],
            sites: Vec::new(),
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let config = DnsConfig {
        udp_sockets,
        upstreams,
        rate_limit: 0,
        forward_cache_entries: 1_000_000,
        ..DnsConfig::default()
    };
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handle = rt.block_on(async {
        let mut registry = Registry::default();
        dns::start(
            &config,
            listen,
            dns::Deps {
                zones,
                steering: Arc::new(LocalSteering::default()),
                registry: &mut registry,
                shutdown: stop.clone(),
                tracker: tracker.clone(),
            },
        )
        .await
    })?;
    println!("ready {}", handle.local_addr());
    rt.block_on(stop.cancelled());
    Ok(())
}
