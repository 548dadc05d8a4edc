//! Ready-made pieces for tests, fuzz targets and benchmarks of this crate: a sample zone and an
//! engine that answers from it (no upstreams, so forwarding answers SERVFAIL).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
use hickory_proto::rr::{Name, RData, Record};

use crate::authority::Authority;
use crate::engine::{Engine, EngineParts};
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::zones::{LocalSteering, MemoryZones, ZoneView};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap_or_else(|_| Name::root())
}

/// A zone for `apex` (e.g. `"bars.proxima."`) with A, AAAA, TXT, MX, a CNAME and a site.
pub fn sample_zone(apex: &str) -> ZoneView {
    let a = name(apex);
    let www = a.prepend_label("www").unwrap_or_else(|_| a.clone());
    let site = a.prepend_label("site").unwrap_or_else(|_| a.clone());
    let mail = a.prepend_label("mail").unwrap_or_else(|_| a.clone());
    ZoneView {
        apex: a.clone(),
        sequence: 1,
        records: vec![
            Record::from_rdata(a.clone(), 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))),
            Record::from_rdata(a.clone(), 300, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
            Record::from_rdata(a.clone(), 300, RData::TXT(TXT::new(vec!["hello".into()]))),
            Record::from_rdata(a.clone(), 300, RData::MX(MX::new(10, mail))),
            Record::from_rdata(www, 60, RData::CNAME(CNAME(a))),
        ],
        sites: vec![(site, [7; 32])],
    }
}

/// An engine for the `proxima` TLD answering from `zones`, loopback allowed, no upstreams.
pub fn engine(zones: Arc<MemoryZones>, rate_limit: u32) -> Engine {
    let parts = EngineParts {
        authority: Authority::new(&["proxima".into()], 60, 30, 1),
        forwarder: Forwarder::new(Vec::new(), Duration::from_millis(100), 1000),
        allowed: crate::DnsConfig::default().allowed_clients,
        rate_limit,
    };
    let steering = Arc::new(LocalSteering {
        http_ip: Some(Ipv4Addr::LOCALHOST.into()),
    });
    Engine::new(parts, zones, steering, Metrics::default())
}

/// [`engine`] with [`sample_zone`] for `bars.proxima.` loaded.
pub fn engine_with_sample_zone() -> Engine {
    let zones = Arc::new(MemoryZones::default());
    zones.insert(sample_zone("bars.proxima."));
    engine(zones, 0)
}
