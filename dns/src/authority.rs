//! Authoritative answers for the ledger TLDs, as a pure function of the question, the zone
//! store and the steering: no sockets, no clock.
//!
//! Each ledger TLD is answered as one zone whose apex has a synthesized SOA and NS; every
//! registered name below it is a signed zone from the [`ZoneSource`]. There are no
//! delegations: the zone store holds the whole tree.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use crate::zones::{SiteSteering, ZoneSource, ZoneView};

/// Longest CNAME chain followed inside one zone.
const MAX_CNAME_HOPS: usize = 8;
/// A ready answer may be served from the fast path for at most this long without a zone
/// change notification, so that expiry of a name is noticed even if nobody announces it.
pub const MAX_READY_AGE: Duration = Duration::from_secs(30);
/// A steered answer (A/AAAA synthesized for a site name) is rebuilt from the steering at least
/// this often, so that a change of the nearest holders reaches clients within a second, whatever
/// the TTL handed to them.
pub const STEERED_READY_AGE: Duration = Duration::from_secs(1);

/// One ledger TLD and its synthesized apex records.
#[derive(Debug, Clone)]
struct Tld {
    name: LowerName,
    soa: Record,
    ns: Record,
}

/// The authoritative side of the server.
#[derive(Debug, Clone)]
pub struct Authority {
    tlds: Vec<Tld>,
    negative_ttl: u32,
    steering_ttl: u32,
}

/// The sections of an authoritative answer, and how long it may be reused.
#[derive(Debug, Clone)]
pub struct Answer {
    /// NOERROR, NXDOMAIN or REFUSED.
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the SOA of negative answers).
    pub authorities: Vec<Record>,
    /// The name whose zone change invalidates this answer: the zone apex, or the question name
    /// itself for NXDOMAIN (so that registering it or a parent invalidates it).
    pub anchor: LowerName,
    /// How long the answer may be served as is.
    pub max_age: Duration,
}

impl Authority {
    /// Builds the synthesized records for `tlds` (validated LDH labels); `serial` is the SOA
    /// serial (the node uses its start time).
    pub fn new(tlds: &[String], negative_ttl: u32, steering_ttl: u32, serial: u32) -> Self {
        let tlds = tlds
            .iter()
            .filter_map(|t| Name::from_ascii(format!("{t}.")).ok())
            .filter_map(|apex| {
                let ns_name = apex.prepend_label("ns").ok()?;
                let rname = apex.prepend_label("hostmaster").ok()?;
                let soa = SOA::new(
                    ns_name.clone(),
                    rname,
                    serial,
                    3600,
                    600,
                    604_800,
                    negative_ttl,
                );
                Some(Tld {
                    name: LowerName::new(&apex),
                    soa: Record::from_rdata(apex.clone(), negative_ttl, RData::SOA(soa)),
                    ns: Record::from_rdata(apex, 3600, RData::NS(NS(ns_name))),
                })
            })
            .collect();
        Self {
            tlds,
            negative_ttl,
            steering_ttl,
        }
    }

    /// Whether `name` is at or below one of the ledger TLDs.
    pub fn is_ledger_name(&self, name: &LowerName) -> bool {
        self.tld_of(name).is_some()
    }

    fn tld_of(&self, name: &LowerName) -> Option<&Tld> {
        self.tlds.iter().find(|t| t.name.zone_of(name))
    }

    /// Answers `query` (a ledger name, class IN) from `zones`.
    pub fn answer(
        &self,
        query: &Query,
        zones: &dyn ZoneSource,
        steering: &dyn SiteSteering,
    ) -> Answer {
        let qname = LowerName::new(query.name());
        let qtype = query.query_type();
        let Some(tld) = self.tld_of(&qname) else {
            return Answer {
                rcode: ResponseCode::Refused,
                answers: Vec::new(),
                authorities: Vec::new(),
                anchor: qname,
                max_age: MAX_READY_AGE,
            };
        };
        let negative = |rcode, anchor: LowerName| Answer {
            rcode,
            answers: Vec::new(),
            authorities: vec![tld.soa.clone()],
            anchor,
            max_age: MAX_READY_AGE,
        };
        if qname == tld.name {
            let rec = match qtype {
                RecordType::SOA | RecordType::ANY => tld.soa.clone(),
                RecordType::NS => tld.ns.clone(),
                _ => return negative(ResponseCode::NoError, qname),
            };
            return Answer {
                rcode: ResponseCode::NoError,
                answers: vec![rec],
                authorities: Vec::new(),
                anchor: qname,
                max_age: MAX_READY_AGE,
            };
        }
        let Some(zone) = zones.zone_for(&qname) else {
            return negative(ResponseCode::NXDomain, qname);
        };
        let anchor = LowerName::new(&zone.apex);
        if !name_exists(&zone, &qname) {
            return negative(ResponseCode::NXDomain, qname);
        }

        let mut answers = Vec::new();
        let mut max_age = MAX_READY_AGE;
        let mut cur = qname.clone();
        for _ in 0..MAX_CNAME_HOPS {
            let at: Vec<&Record> = zone
                .records
                .iter()
                .filter(|r| LowerName::new(&r.name) == cur)
                .collect();
            if qtype != RecordType::CNAME
                && let Some(cname) = at.iter().find(|r| r.record_type() == RecordType::CNAME)
            {
                answers.push((*cname).clone());
                let RData::CNAME(target) = &cname.data else {
                    break;
                };
                let target = LowerName::new(&target.0);
                // Follow only inside this zone; a resolver chases the rest.
                if !anchor.zone_of(&target) || answers.len() > MAX_CNAME_HOPS {
                    break;
                }
                cur = target;
                continue;
            }
            if qtype == RecordType::ANY {
                // RFC 8482: one RRset is enough.
                if let Some(first) = at.first() {
                    let t = first.record_type();
                    answers.extend(
                        at.iter()
                            .filter(|r| r.record_type() == t)
                            .map(|r| (*r).clone()),
                    );
                } else if let Some(steered) = self.steer(&zone, &cur, RecordType::A, steering) {
                    answers.extend(steered);
                    max_age = max_age.min(self.steered_age());
                }
                break;
            }
            let matching: Vec<Record> = at
                .iter()
                .filter(|r| r.record_type() == qtype)
                .map(|r| (*r).clone())
                .collect();
            if matching.is_empty()
                && let Some(steered) = self.steer(&zone, &cur, qtype, steering)
            {
                answers.extend(steered);
                max_age = max_age.min(self.steered_age());
            }
            answers.extend(matching);
            break;
        }
        if answers.is_empty() {
            return negative(ResponseCode::NoError, anchor);
        }
        Answer {
            rcode: ResponseCode::NoError,
            answers,
            authorities: Vec::new(),
            anchor,
            max_age,
        }
    }

    /// A/AAAA for a site name without explicit addresses: the nodes that hold the site.
    fn steer(
        &self,
        zone: &ZoneView,
        owner: &LowerName,
        qtype: RecordType,
        steering: &dyn SiteSteering,
    ) -> Option<Vec<Record>> {
        if !matches!(qtype, RecordType::A | RecordType::AAAA) {
            return None;
        }
        let (name, manifest) = zone
            .sites
            .iter()
            .find(|(n, _)| LowerName::new(n) == *owner)?;
        let explicit = zone.records.iter().any(|r| {
            matches!(r.record_type(), RecordType::A | RecordType::AAAA)
                && LowerName::new(&r.name) == *owner
        });
        if explicit {
            return None;
        }
        let ttl = self.steering_ttl;
        Some(
            steering
                .nodes_for_site(manifest)
                .into_iter()
                .filter_map(|ip| match (ip, qtype) {
                    (IpAddr::V4(v4), RecordType::A) => {
                        Some(Record::from_rdata(name.clone(), ttl, RData::A(A(v4))))
                    }
                    (IpAddr::V6(v6), RecordType::AAAA) => {
                        Some(Record::from_rdata(name.clone(), ttl, RData::AAAA(AAAA(v6))))
                    }
                    _ => None,
                })
                .collect(),
        )
    }

    /// How long a steered answer may be served as is.
    fn steered_age(&self) -> Duration {
        Duration::from_secs(self.steering_ttl.into()).min(STEERED_READY_AGE)
    }

    /// TTL of negative answers.
    pub fn negative_ttl(&self) -> u32 {
        self.negative_ttl
    }
}

/// Whether `name` exists in `zone`: the apex, an owner of a record or a site, or an empty
/// non-terminal above one.
fn name_exists(zone: &ZoneView, name: &LowerName) -> bool {
    if LowerName::new(&zone.apex) == *name {
        return true;
    }
    zone.records
        .iter()
        .map(|r| &r.name)
        .chain(zone.sites.iter().map(|(n, _)| n))
        .any(|owner| name.zone_of(&LowerName::new(owner)))
}

/// The class every ledger record has.
pub const CLASS: DNSClass = DNSClass::IN;

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::zones::{LocalSteering, MemoryZones};
    use hickory_proto::rr::rdata::{CNAME, TXT};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn zones() -> MemoryZones {
        let z = MemoryZones::default();
        z.insert(ZoneView {
            apex: n("bars.proxima."),
            sequence: 1,
            records: vec![
                Record::from_rdata(
                    n("bars.proxima."),
                    300,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
                ),
                Record::from_rdata(
                    n("bars.proxima."),
                    300,
                    RData::TXT(TXT::new(vec!["hi".into()])),
                ),
                Record::from_rdata(
                    n("www.bars.proxima."),
                    60,
                    RData::CNAME(CNAME(n("bars.proxima."))),
                ),
                Record::from_rdata(
                    n("out.bars.proxima."),
                    60,
                    RData::CNAME(CNAME(n("example.com."))),
                ),
                Record::from_rdata(
                    n("a.b.bars.proxima."),
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 9))),
                ),
            ],
            sites: vec![(n("site.bars.proxima."), [7; 32])],
        });
        z
    }

    fn ask(name: &str, t: RecordType) -> Answer {
        let auth = Authority::new(&["proxima".into()], 60, 30, 1);
        let steer = LocalSteering {
            http_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        };
        auth.answer(&Query::query(n(name), t), &zones(), &steer)
    }

    #[test]
    fn records_answer_by_type() {
        let a = ask("BARS.proxima.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].ttl, 300);
        let t = ask("bars.proxima.", RecordType::TXT);
        assert_eq!(t.answers[0].record_type(), RecordType::TXT);
    }

    #[test]
    fn negative_answers_carry_the_soa() {
        let nx = ask("nosuch.proxima.", RecordType::A);
        assert_eq!(nx.rcode, ResponseCode::NXDomain);
        assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
        let nx = ask("nosuch.bars.proxima.", RecordType::A);
        assert_eq!(nx.rcode, ResponseCode::NXDomain);
        let nodata = ask("bars.proxima.", RecordType::MX);
        assert_eq!(nodata.rcode, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        let ent = ask("b.bars.proxima.", RecordType::A);
        assert_eq!(
            ent.rcode,
            ResponseCode::NoError,
            "empty non-terminal is NODATA"
        );
    }

    #[test]
    fn cname_is_followed_inside_the_zone_only() {
        let a = ask("www.bars.proxima.", RecordType::A);
        let types: Vec<_> = a.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, vec![RecordType::CNAME, RecordType::A]);
        let out = ask("out.bars.proxima.", RecordType::A);
        assert_eq!(out.answers.len(), 1);
    }

    #[test]
    fn apex_soa_ns_and_minimal_any() {
        assert_eq!(ask("proxima.", RecordType::SOA).answers.len(), 1);
        assert_eq!(
            ask("proxima.", RecordType::NS).answers[0].record_type(),
            RecordType::NS
        );
        let any = ask("bars.proxima.", RecordType::ANY);
        let t = any.answers[0].record_type();
        assert!(
            any.answers.iter().all(|r| r.record_type() == t),
            "one RRset"
        );
    }

    #[test]
    fn site_names_are_steered() {
        let a = ask("site.bars.proxima.", RecordType::AAAA);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].ttl, 30);
        assert!(a.max_age <= Duration::from_secs(30));
        let v4 = ask("site.bars.proxima.", RecordType::A);
        assert!(v4.answers.is_empty(), "no IPv4 node: NODATA");
        assert_eq!(v4.rcode, ResponseCode::NoError);
    }
}
