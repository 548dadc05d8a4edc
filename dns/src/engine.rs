//! The request path, transport-independent: a packet and its source in, a packet (or nothing)
//! out. The UDP loop, the TCP server and the fuzz target all call it.
//!
//! Order of work for one packet:
//! 1. the fast path: a plain query whose ready answer is cached is answered by a copy and a few
//!    byte patches ([`wire`](crate::wire), [`ready`](crate::ready));
//! 2. otherwise the full parse (hickory-proto), checks (opcode, one question, EDNS version);
//! 3. ledger names: the authoritative answer ([`authority`](crate::authority)), which is then kept
//!    as a ready answer for the fast path;
//! 4. other names: REFUSED unless the client is allowed, else a forwarding-cache hit, else
//!    [`Step::Forward`] for the async part ([`Engine::forward`]).
//!
//! A forwarding-cache hit for a plain query from an allowed client is also served on the fast
//! path, after a ready-answer miss: a copy and byte patches ([`Forwarder::serve_cached`]), no
//! parse. Ledger names never reach the forwarding cache, so looking there first is safe.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName};
use ipnet::IpNet;

use crate::authority::Authority;
use crate::forward::{self, EDNS_PAYLOAD, Forwarder, Hit};
use crate::metrics::{Metrics, Source};
use crate::ready::ReadyAnswers;
use crate::rrl::{RateLimiter, Verdict};
use crate::wire;
use crate::zones::{SiteSteering, ZoneSource};

/// How a packet arrived: it decides the response size limit and whether rate limiting applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Datagram: size limited by EDNS, truncation, rate limiting.
    Udp,
    /// Stream: up to 65535 bytes, no rate limiting (TCP cannot be spoofed).
    Tcp,
}

/// What to do after the synchronous part.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes (already in the caller's output buffer).
    Reply,
    /// Send nothing.
    Drop,
    /// Needs an upstream: call [`Engine::forward`].
    Forward(Box<Message>),
}

/// Everything the request path needs.
pub struct Engine {
    authority: Authority,
    zones: Arc<dyn ZoneSource>,
    steering: Arc<dyn SiteSteering>,
    forwarder: Forwarder,
    allowed: Vec<IpNet>,
    rrl: RateLimiter,
    ready: ReadyAnswers,
    metrics: Metrics,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("authority", &self.authority)
            .field("forwarder", &self.forwarder)
            .field("allowed", &self.allowed)
            .field("ready", &self.ready.len())
            .finish()
    }
}

/// The parts an [`Engine`] is made of.
#[derive(Debug)]
pub struct EngineParts {
    /// Authoritative side.
    pub authority: Authority,
    /// Forwarding side.
    pub forwarder: Forwarder,
    /// Networks allowed to use forwarding.
    pub allowed: Vec<IpNet>,
    /// Authoritative responses per second per client network outside `allowed`; 0: off.
    pub rate_limit: u32,
}

impl Engine {
    /// Assembles an engine.
    pub fn new(
        parts: EngineParts,
        zones: Arc<dyn ZoneSource>,
        steering: Arc<dyn SiteSteering>,
        metrics: Metrics,
    ) -> Self {
        Self {
            authority: parts.authority,
            zones,
            steering,
            forwarder: parts.forwarder,
            allowed: parts.allowed,
            rrl: RateLimiter::new(parts.rate_limit),
            ready: ReadyAnswers::default(),
            metrics,
        }
    }

    /// The zone source (for subscribing to changes).
    pub fn zones(&self) -> &Arc<dyn ZoneSource> {
        &self.zones
    }

    /// Drops the ready answers that depend on the zone of `apex`.
    pub fn invalidate(&self, apex: &LowerName) {
        let n = self.ready.invalidate(apex);
        tracing::debug!(%apex, dropped = n, "zone changed: ready answers dropped");
    }

    /// Drops expired ready answers (called periodically).
    pub fn purge(&self) {
        self.ready.purge_expired(Instant::now());
    }

    /// Whether `ip` may use the forwarding resolver.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// The synchronous part of answering `pkt` from `src`; a reply is written into `out`.
    pub fn handle(
        &self,
        pkt: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Step {
        let allowed = self.is_allowed(src.ip());
        // 1. Fast path.
        let mut keybuf = [0u8; wire::MAX_KEY];
        let mut key: &[u8] = &[];
        let plain = wire::parse_plain_query(pkt);
        if let Some(q) = &plain {
            let n = wire::cache_key(pkt, q, &mut keybuf);
            key = &keybuf[..n];
            let limit = match transport {
                Transport::Udp => q.udp_limit(),
                Transport::Tcp => usize::from(u16::MAX),
            };
            let hit = self.ready.with(key, limit, Instant::now(), |cached| {
                wire::patch_cached(cached, pkt, q, allowed, out);
            });
            if hit {
                self.metrics.fast_path_hits.inc();
                tracing::debug!(%src, qtype = q.qtype, "fast-path answer");
                return self.finish_authoritative(src, transport, allowed, out);
            }
            if allowed {
                let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
                let mut fkey = [0u8; wire::MAX_KEY];
                let n = forward::cache_key(q.name(pkt), q.qtype, q.qclass, dnssec_ok, &mut fkey);
                let hit = Hit {
                    id: q.id,
                    rd: q.rd,
                    cd: q.cd,
                    ad: q.ad || dnssec_ok,
                    edns: q.edns.is_some(),
                    name: q.name(pkt),
                };
                if self.forwarder.serve_cached(&fkey[..n], &hit, limit, out) {
                    tracing::debug!(%src, qtype = q.qtype, "forwarding cache hit (fast path)");
                    self.metrics.response_wire(Source::Cache, out);
                    return Step::Reply;
                }
            }
        }
        // 2. Full parse.
        let req = match Message::from_vec(pkt) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%src, error = %e, "unparseable packet");
                return self.header_error(pkt, ResponseCode::FormErr, out);
            }
        };
        if req.metadata.message_type != MessageType::Query {
            self.metrics.dropped.inc();
            return Step::Drop;
        }
        let limit = match transport {
            Transport::Udp => usize::from(req.max_payload()),
            Transport::Tcp => usize::from(u16::MAX),
        };
        if req.metadata.op_code != OpCode::Query {
            return self.error(&req, ResponseCode::NotImp, allowed, limit, out);
        }
        if req.queries.len() != 1 {
            return self.error(&req, ResponseCode::FormErr, allowed, limit, out);
        }
        if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return self.error(&req, ResponseCode::BADVERS, allowed, limit, out);
        }
        let query = &req.queries[0];
        let qname = LowerName::new(query.name());
        tracing::debug!(%src, name = %query.name(), qtype = %query.query_type(), "query");
        // 3. Ledger names.
        if self.authority.is_ledger_name(&qname) {
            if query.query_class() != DNSClass::IN {
                return self.error(&req, ResponseCode::Refused, allowed, limit, out);
            }
            let answer = self.authority.answer(query, &*self.zones, &*self.steering);
            let mut resp = response_to(&req, allowed);
            resp.metadata.authoritative = true;
            resp.metadata.response_code = answer.rcode;
            resp.answers = answer.answers;
            resp.authorities = answer.authorities;
            let full = match resp.to_vec() {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode an authoritative answer");
                    return self.error(&req, ResponseCode::ServFail, allowed, limit, out);
                }
            };
            if plain.is_some() {
                // Kept for every client whatever its size limit; the fast path checks the size.
                let expires = Instant::now() + answer.max_age;
                self.ready.insert(key, &full, answer.anchor, expires);
            }
            fit(&resp, full, limit, out);
            return self.finish_authoritative(src, transport, allowed, out);
        }
        // 4. Everything else is forwarded, for allowed clients only.
        if !allowed {
            tracing::debug!(%src, name = %query.name(), "forwarding refused for this client");
            return self.error(&req, ResponseCode::Refused, allowed, limit, out);
        }
        let dnssec_ok = req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        if let Some(name) = forward::encoded_name(query).filter(|n| n.len() <= wire::MAX_NAME_LEN) {
            let mut fkey = [0u8; wire::MAX_KEY];
            let n = forward::cache_key(
                &name,
                u16::from(query.query_type()),
                u16::from(query.query_class()),
                dnssec_ok,
                &mut fkey,
            );
            let hit = Hit {
                id: req.metadata.id,
                rd: req.metadata.recursion_desired,
                cd: req.metadata.checking_disabled,
                ad: req.metadata.authentic_data || dnssec_ok,
                edns: req.edns.is_some(),
                name: &name,
            };
            if self.forwarder.serve_cached(&fkey[..n], &hit, limit, out) {
                self.metrics.response_wire(Source::Cache, out);
                return Step::Reply;
            }
        }
        Step::Forward(Box::new(req))
    }

    /// The asynchronous part: asks the upstreams for `req` and writes the reply into `out`.
    pub async fn forward(&self, req: &Message, transport: Transport, out: &mut Vec<u8>) {
        let limit = match transport {
            Transport::Udp => usize::from(req.max_payload()),
            Transport::Tcp => usize::from(u16::MAX),
        };
        let query: &Query = &req.queries[0];
        let dnssec_ok = req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        match self.forwarder.resolve(query, dnssec_ok).await {
            Ok(resp) => {
                self.relay(req, resp, limit, out);
                self.metrics.response_wire(Source::Forwarded, out);
            }
            Err(e) => {
                self.metrics.upstream_failures.inc();
                tracing::debug!(name = %query.name(), error = %e, "forwarding failed: SERVFAIL");
                let mut resp = response_to(req, true);
                resp.metadata.response_code = ResponseCode::ServFail;
                encode_into(&resp, limit, out);
                self.metrics.response_wire(Source::Forwarded, out);
            }
        }
    }

    /// Rate limiting and counting of an authoritative reply already in `out`.
    fn finish_authoritative(
        &self,
        src: SocketAddr,
        transport: Transport,
        allowed: bool,
        out: &mut Vec<u8>,
    ) -> Step {
        if transport == Transport::Udp && !allowed {
            match self.rrl.check(src.ip(), Instant::now()) {
                Verdict::Send => {}
                Verdict::Slip => {
                    self.metrics.rate_limited.inc();
                    slip(out);
                }
                Verdict::Drop => {
                    self.metrics.rate_limited.inc();
                    return Step::Drop;
                }
            }
        }
        self.metrics.response_wire(Source::Authoritative, out);
        Step::Reply
    }

    /// Copies an upstream (or cached) answer into a response to `req`.
    fn relay(&self, req: &Message, upstream: Message, limit: usize, out: &mut Vec<u8>) {
        let mut resp = response_to(req, true);
        let ad =
            req.metadata.authentic_data || req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        resp.metadata.response_code = upstream.metadata.response_code;
        resp.metadata.authentic_data = ad && upstream.metadata.authentic_data;
        resp.answers = upstream.answers;
        resp.authorities = upstream.authorities;
        resp.additionals = upstream.additionals;
        encode_into(&resp, limit, out);
    }

    fn error(
        &self,
        req: &Message,
        rcode: ResponseCode,
        allowed: bool,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Step {
        let mut resp = response_to(req, allowed);
        resp.metadata.response_code = rcode;
        if let Some(e) = resp.edns.as_mut() {
            e.set_rcode_high(rcode.high());
        }
        encode_into(&resp, limit, out);
        self.metrics.response_wire(Source::Authoritative, out);
        Step::Reply
    }

    fn header_error(&self, pkt: &[u8], rcode: ResponseCode, out: &mut Vec<u8>) -> Step {
        match wire::header_error(pkt, rcode.low()) {
            Some(h) => {
                out.clear();
                out.extend_from_slice(&h);
                self.metrics.response_wire(Source::Authoritative, out);
                Step::Reply
            }
            None => {
                self.metrics.dropped.inc();
                Step::Drop
            }
        }
    }
}

/// A response skeleton for `req`: same id, question, RD and CD; RA for clients that may
/// recurse; an OPT record if the query had one.
fn response_to(req: &Message, ra: bool) -> Message {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.checking_disabled = req.metadata.checking_disabled;
    resp.metadata.recursion_available = ra;
    resp.queries = req.queries.clone();
    if let Some(qe) = &req.edns {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        e.set_dnssec_ok(qe.flags().dnssec_ok);
        resp.set_edns(e);
    }
    resp
}

/// Encodes `resp`, truncating it (TC, no records) if it does not fit in `limit`.
fn encode_into(resp: &Message, limit: usize, out: &mut Vec<u8>) {
    match resp.to_vec() {
        Ok(full) => fit(resp, full, limit, out),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode a response");
            out.clear();
        }
    }
}

fn fit(resp: &Message, full: Vec<u8>, limit: usize, out: &mut Vec<u8>) {
    out.clear();
    if full.len() <= limit {
        out.extend_from_slice(&full);
        return;
    }
    match resp.truncate().to_vec() {
        Ok(t) => out.extend_from_slice(&t),
        Err(_) => out.extend_from_slice(&full[..wire::HEADER_LEN.min(full.len())]),
    }
}

/// Turns a reply in `out` into its empty truncated form: header (TC set, counts but the
/// question zeroed) and question, nothing else.
fn slip(out: &mut Vec<u8>) {
    if let Some(q) = wire::parse_plain_query_response(out) {
        out.truncate(q);
        out[2] |= 0x02;
        out[6..12].fill(0);
    } else {
        out.truncate(wire::HEADER_LEN.min(out.len()));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// An upstream's answer: `n` A records of TTL 300 for `qname` (AD set), or NXDOMAIN with an
    /// SOA (TTL 3600, minimum 120) when `n` is 0.
    fn upstream(qname: &str, n: u8) -> Message {
        let mut m = Message::response(7, OpCode::Query);
        m.metadata.authentic_data = true;
        m.add_query(Query::query(name(qname), RecordType::A));
        if n == 0 {
            m.metadata.response_code = ResponseCode::NXDomain;
            let soa = SOA::new(
                name("example.test."),
                name("h.example.test."),
                1,
                3600,
                600,
                86400,
                120,
            );
            m.authorities.push(Record::from_rdata(
                name("example.test."),
                3600,
                RData::SOA(soa),
            ));
        }
        for i in 0..n {
            let a = RData::A(A(Ipv4Addr::new(192, 0, 2, i)));
            m.answers.push(Record::from_rdata(name(qname), 300, a));
        }
        m
    }

    struct Ask {
        qname: &'static str,
        id: u16,
        edns: Option<bool>,
        ad: bool,
        cd: bool,
        tc: bool,
    }

    fn query(a: &Ask) -> Message {
        let mut m = Message::query();
        m.metadata.id = a.id;
        m.metadata.recursion_desired = true;
        m.metadata.authentic_data = a.ad;
        m.metadata.checking_disabled = a.cd;
        // A query with TC is not plain: it takes the full parse.
        m.metadata.truncation = a.tc;
        m.add_query(Query::query(name(a.qname), RecordType::A));
        if let Some(dnssec_ok) = a.edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:5353".parse().unwrap()
    }

    /// A forwarding-cache hit is what re-encoding the cached message used to give: same id,
    /// flags, question (as the client wrote it), sections, EDNS, truncation; TTLs lowered by age.
    #[test]
    fn cache_hits_match_the_encoded_relay() {
        let e = crate::testing::engine_with_sample_zone();
        let stored = Instant::now() - Duration::from_secs(5);
        let mut id = 100;
        for (qname, n) in [
            ("a.example.test.", 1),
            ("nosuch.example.test.", 0),
            ("big.example.test.", 60),
        ] {
            let up = upstream(qname, n);
            for dnssec_ok in [false, true] {
                e.forwarder.store_at(&up.queries[0], dnssec_ok, &up, stored);
            }
            for asked in [
                qname.to_string(),
                qname.to_ascii_uppercase(),
                format!("{}{}", &qname[..3].to_ascii_uppercase(), &qname[3..]),
            ] {
                let asked: &'static str = Box::leak(asked.into_boxed_str());
                for edns in [None, Some(false), Some(true)] {
                    for (ad, cd, tc) in [
                        (false, false, false),
                        (true, false, false),
                        (false, true, false),
                        (false, false, true),
                    ] {
                        for transport in [Transport::Udp, Transport::Tcp] {
                            id += 1;
                            let req = query(&Ask {
                                qname: asked,
                                id,
                                edns,
                                ad,
                                cd,
                                tc,
                            });
                            let pkt = req.to_vec().unwrap();
                            let mut out = Vec::new();
                            let step = e.handle(&pkt, loopback(), transport, &mut out);
                            assert!(matches!(step, Step::Reply), "{asked} {edns:?}: {step:?}");
                            let got = Message::from_vec(&out).unwrap();
                            assert_eq!(got.metadata.id, id);
                            assert_eq!(
                                got.queries[0].name().to_ascii(),
                                asked,
                                "question case kept"
                            );
                            // What the parse-and-encode path gives for the same answer, aged.
                            let mut aged = up.clone();
                            for r in aged.answers.iter_mut().chain(aged.authorities.iter_mut()) {
                                r.ttl -= 5;
                            }
                            let limit = match transport {
                                Transport::Udp => usize::from(req.max_payload()),
                                Transport::Tcp => usize::from(u16::MAX),
                            };
                            let mut want = Vec::new();
                            e.relay(&req, aged, limit, &mut want);
                            let want = Message::from_vec(&want).unwrap();
                            assert_eq!(
                                got, want,
                                "{asked} {edns:?} ad={ad} cd={cd} tc={tc} {transport:?}"
                            );
                            if n == 60 && transport == Transport::Udp && edns.is_none() {
                                assert!(got.metadata.truncation && got.answers.is_empty());
                            }
                            if n == 1 {
                                assert_eq!(
                                    got.answers[0].ttl, 295,
                                    "TTL lowered by the entry's age"
                                );
                            }
                            if n == 0 {
                                assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
                                assert_eq!(got.authorities[0].ttl, 3595, "negative answer cached");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn cache_hits_count_down_and_expire() {
        let e = crate::testing::engine_with_sample_zone();
        let up = upstream("a.example.test.", 1);
        let ask = |id| {
            let pkt = query(&Ask {
                qname: "A.example.test.",
                id,
                edns: Some(false),
                ad: false,
                cd: false,
                tc: false,
            })
            .to_vec()
            .unwrap();
            let mut out = Vec::new();
            let step = e.handle(&pkt, loopback(), Transport::Udp, &mut out);
            (step, out)
        };
        let mut ttls = Vec::new();
        for (id, age) in [(1, 0), (2, 10), (3, 299)] {
            e.forwarder.store_at(
                &up.queries[0],
                false,
                &up,
                Instant::now() - Duration::from_secs(age),
            );
            let (step, out) = ask(id);
            assert!(matches!(step, Step::Reply));
            let m = Message::from_vec(&out).unwrap();
            assert_eq!(m.metadata.id, id);
            ttls.push(m.answers[0].ttl);
        }
        assert_eq!(ttls, [300, 290, 1]);
        // At its TTL the entry is gone: the query goes upstream.
        e.forwarder.store_at(
            &up.queries[0],
            false,
            &up,
            Instant::now() - Duration::from_secs(300),
        );
        assert!(matches!(ask(4).0, Step::Forward(_)));
        // A client outside allowed_clients is refused, cached answer or not.
        e.forwarder
            .store_at(&up.queries[0], false, &up, Instant::now());
        let pkt = query(&Ask {
            qname: "a.example.test.",
            id: 5,
            edns: None,
            ad: false,
            cd: false,
            tc: false,
        })
        .to_vec()
        .unwrap();
        let mut out = Vec::new();
        e.handle(
            &pkt,
            "192.0.2.9:53".parse().unwrap(),
            Transport::Udp,
            &mut out,
        );
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
    }
}
