//! The DNS service on real sockets, fed by an in-memory zone source: zone changes and removal
//! (an expired name) reach the fast path, rate limiting, and arbitrary packets.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dns::engine::Transport;
use dns::testing::{engine_with_sample_zone, sample_zone};
use dns::{DnsConfig, LocalSteering, MemoryZones};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use prometheus_client::registry::Registry;
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Running {
    addr: SocketAddr,
    zones: Arc<MemoryZones>,
    stop: CancellationToken,
    _rt: tokio::runtime::Runtime,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn start(config: DnsConfig) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let zones = Arc::new(MemoryZones::default());
    zones.insert(sample_zone("bars.proxima."));
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let z = zones.clone();
    let s = stop.clone();
    let handle = rt
        .block_on(async move {
            let mut registry = Registry::default();
            dns::start(
                &config,
                "127.0.0.1:0".parse().unwrap(),
                dns::Deps {
                    zones: z,
                    steering: Arc::new(LocalSteering::default()),
                    registry: &mut registry,
                    shutdown: s,
                    tracker: tracker.clone(),
                },
            )
            .await
        })
        .unwrap();
    Running {
        addr: handle.local_addr(),
        zones,
        stop,
        _rt: rt,
    }
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.set_edns(Edns::new());
    m.to_vec().unwrap()
}

fn ask(client: &UdpSocket, server: SocketAddr, name: &str, t: RecordType) -> Message {
    client.send_to(&query(name, t), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn client(ip: &str) -> UdpSocket {
    let c = UdpSocket::bind((ip, 0)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c
}

fn wait_for(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn zone_changes_and_expiry_reach_ready_answers() {
    let server = start(DnsConfig::default());
    let c = client("127.0.0.1");
    let first = ask(&c, server.addr, "bars.proxima.", RecordType::A);
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert!(first.metadata.authoritative);
    // Served again, now from the ready answer.
    let again = ask(&c, server.addr, "bars.proxima.", RecordType::A);
    assert_eq!(again.answers, first.answers);

    // A new sequence of the zone with another address.
    let mut z = sample_zone("bars.proxima.");
    z.sequence = 2;
    z.records[0].data = RData::A(hickory_proto::rr::rdata::A([192, 0, 2, 99].into()));
    server.zones.insert(z);
    assert!(wait_for(Duration::from_secs(5), || {
        let m = ask(&c, server.addr, "bars.proxima.", RecordType::A);
        m.answers.first().map(|r| r.data.to_string()) == Some("192.0.2.99".into())
    }));

    // The name expires: the store stops handing out its zone and says so.
    server
        .zones
        .remove(&Name::from_ascii("bars.proxima.").unwrap());
    assert!(wait_for(Duration::from_secs(5), || {
        ask(&c, server.addr, "bars.proxima.", RecordType::A)
            .metadata
            .response_code
            == ResponseCode::NXDomain
    }));
}

#[test]
fn rate_limiting_applies_outside_allowed_networks() {
    let server = start(DnsConfig {
        tlds: vec!["proxima".into()],
        rate_limit: 5,
        allowed_clients: vec!["127.0.0.1/32".parse().unwrap()],
        ..DnsConfig::default()
    });
    let limited = client("127.0.0.2");
    limited
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for _ in 0..40 {
        limited
            .send_to(&query("bars.proxima.", RecordType::A), server.addr)
            .unwrap();
    }
    let (mut full, mut slipped) = (0, 0);
    let mut buf = [0u8; 4096];
    while let Ok((n, _)) = limited.recv_from(&mut buf) {
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            assert!(m.answers.is_empty());
            slipped += 1;
        } else {
            full += 1;
        }
    }
    assert!((5..=7).contains(&full), "full answers: {full}");
    assert!(
        slipped > 5 && full + slipped < 40,
        "slipped {slipped}, full {full}"
    );
    // An allowed client is not limited.
    let local = client("127.0.0.1");
    for _ in 0..20 {
        assert!(
            !ask(&local, server.addr, "bars.proxima.", RecordType::A)
                .answers
                .is_empty()
        );
    }
}

#[test]
fn forwarding_without_upstreams_is_servfail_not_silence() {
    let server = start(DnsConfig {
        tlds: vec!["proxima".into()],
        upstreams: vec!["127.0.0.1:1".into()],
        forward_timeout: Duration::from_millis(200),
        ..DnsConfig::default()
    });
    let c = client("127.0.0.1");
    let m = ask(&c, server.addr, "example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A bounded fuzz run in every test run: arbitrary bytes never panic the request path.
    #[test]
    fn arbitrary_packets_never_panic(pkt in proptest::collection::vec(any::<u8>(), 0..700)) {
        let e = engine();
        let mut out = Vec::new();
        for (src, t) in [("127.0.0.1:1", Transport::Udp), ("192.0.2.1:1", Transport::Tcp)] {
            let _ = e.handle(&pkt, src.parse().unwrap(), t, &mut out);
        }
    }

    /// Valid queries with bytes flipped: answers, when there are any, parse.
    #[test]
    fn mutated_queries_get_parseable_answers(
        name in "[a-z]{1,10}\\.(bars\\.)?proxima\\.",
        qtype in prop::sample::select(vec![RecordType::A, RecordType::AAAA, RecordType::TXT, RecordType::MX, RecordType::ANY, RecordType::SOA]),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let mut pkt = query(&name, qtype);
        for (at, v) in flips {
            let len = pkt.len();
            pkt[at % len] = v;
        }
        let e = engine();
        let mut out = Vec::new();
        if let dns::engine::Step::Reply = e.handle(&pkt, "127.0.0.1:1".parse().unwrap(), Transport::Udp, &mut out) {
            prop_assert!(out.len() >= 12);
            prop_assert!(out.len() <= 4096);
        }
    }
}

fn engine() -> &'static dns::engine::Engine {
    static E: std::sync::OnceLock<dns::engine::Engine> = std::sync::OnceLock::new();
    E.get_or_init(engine_with_sample_zone)
}
