//! The fast path's view of a DNS packet: the header and the single question, parsed without
//! allocating, and the few byte patches that turn a cached answer into the answer to this query.
//!
//! Only plain queries qualify (QUERY opcode, one question, no answer or authority records, at
//! most one additional record which must be an EDNS(0) OPT ending the packet). Everything else
//! returns `None` and goes to the full parser: this module never has to reject anything.

/// The header size of every DNS message.
pub const HEADER_LEN: usize = 12;
/// Longest encoded name (RFC 1035 2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// OPT's record type.
const TYPE_OPT: u16 = 41;

/// A plain query, as the fast path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainQuery {
    /// Message id.
    pub id: u16,
    /// RD (recursion desired) flag.
    pub rd: bool,
    /// AD (authentic data) flag: the client understands AD (RFC 6840 5.7).
    pub ad: bool,
    /// CD (checking disabled) flag.
    pub cd: bool,
    /// End offset of the question name (it starts at [`HEADER_LEN`]).
    pub name_end: usize,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// EDNS(0) of the query, if it had an OPT record.
    pub edns: Option<EdnsInfo>,
}

/// What the fast path needs from a query's OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdnsInfo {
    /// The client's UDP payload size (as sent; clamp with [`PlainQuery::udp_limit`]).
    pub payload: u16,
    /// DNSSEC OK.
    pub dnssec_ok: bool,
}

impl PlainQuery {
    /// The largest UDP response this client accepts (RFC 6891: at least 512).
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => usize::from(e.payload).max(512),
            None => 512,
        }
    }

    /// The encoded question name, as the client wrote it.
    pub fn name<'a>(&self, pkt: &'a [u8]) -> &'a [u8] {
        &pkt[HEADER_LEN..self.name_end]
    }
}

fn u16_at(pkt: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*pkt.get(at)?, *pkt.get(at + 1)?]))
}

/// Parses a plain query, or returns `None` for anything else (which the full parser handles).
pub fn parse_plain_query(pkt: &[u8]) -> Option<PlainQuery> {
    if pkt.len() < HEADER_LEN + 5 {
        return None;
    }
    let flags = u16_at(pkt, 2)?;
    // QR=0, opcode=0 (QUERY), TC=0, and the reserved Z bit clear.
    if flags & 0xFA40 != 0 {
        return None;
    }
    let qd = u16_at(pkt, 4)?;
    let an = u16_at(pkt, 6)?;
    let ns = u16_at(pkt, 8)?;
    let ar = u16_at(pkt, 10)?;
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut at = HEADER_LEN;
    // Uncompressed labels only (a query has nothing to point back to).
    loop {
        let len = usize::from(*pkt.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if at - HEADER_LEN >= MAX_NAME_LEN {
            return None;
        }
    }
    let name_end = at;
    let qtype = u16_at(pkt, at)?;
    let qclass = u16_at(pkt, at + 2)?;
    at += 4;
    let edns = if ar == 1 {
        // Root owner, type OPT, CLASS = payload, TTL = ext-rcode, version, flags; then RDATA.
        if *pkt.get(at)? != 0 || u16_at(pkt, at + 1)? != TYPE_OPT {
            return None;
        }
        let payload = u16_at(pkt, at + 3)?;
        let ext_rcode = *pkt.get(at + 5)?;
        let version = *pkt.get(at + 6)?;
        let eflags = u16_at(pkt, at + 7)?;
        let rdlen = usize::from(u16_at(pkt, at + 9)?);
        if ext_rcode != 0 || version != 0 {
            return None;
        }
        at += 11 + rdlen;
        Some(EdnsInfo {
            payload,
            dnssec_ok: eflags & 0x8000 != 0,
        })
    } else {
        None
    };
    if at != pkt.len() {
        return None;
    }
    Some(PlainQuery {
        id: u16::from_be_bytes([pkt[0], pkt[1]]),
        rd: flags & 0x0100 != 0,
        ad: flags & 0x0020 != 0,
        cd: flags & 0x0010 != 0,
        name_end,
        qtype,
        qclass,
        edns,
    })
}

/// Longest cache key: a name, type, class and the EDNS byte.
pub const MAX_KEY: usize = MAX_NAME_LEN + 5;

/// Writes the cache key of a plain query into `key` and returns its length: the lowercased
/// name, type, class and the EDNS presence and DO bit (the only query properties a cached
/// answer depends on). A fixed buffer: the fast path allocates nothing.
pub fn cache_key(pkt: &[u8], q: &PlainQuery, key: &mut [u8; MAX_KEY]) -> usize {
    let edns = match q.edns {
        None => 0,
        Some(EdnsInfo {
            dnssec_ok: false, ..
        }) => 1,
        Some(EdnsInfo {
            dnssec_ok: true, ..
        }) => 2,
    };
    key_of(q.name(pkt), q.qtype, q.qclass, edns, key)
}

/// Writes a key made of the lowercased encoded `name`, `qtype`, `qclass` and one `last` byte
/// into `key` and returns its length (`name` must be at most [`MAX_NAME_LEN`] bytes).
pub fn key_of(name: &[u8], qtype: u16, qclass: u16, last: u8, key: &mut [u8; MAX_KEY]) -> usize {
    let n = name.len().min(MAX_NAME_LEN);
    for (k, b) in key.iter_mut().zip(&name[..n]) {
        *k = b.to_ascii_lowercase();
    }
    key[n..n + 2].copy_from_slice(&qtype.to_be_bytes());
    key[n + 2..n + 4].copy_from_slice(&qclass.to_be_bytes());
    key[n + 4] = last;
    n + 5
}

/// Where the parts of a message we encoded are: what serving it again from its wire form needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// End offset of the (single) question.
    pub question_end: usize,
    /// Offsets of the TTL field of every record but OPT.
    pub ttl_at: Vec<u16>,
    /// Start offset of the OPT record, if the message ends with one.
    pub opt_at: Option<usize>,
}

/// Skips an encoded (possibly compressed) name starting at `at`; returns where it ends.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(len),
            // A pointer ends the name.
            0xC0..=0xFF => return (at + 2 <= msg.len()).then_some(at + 2),
            _ => return None,
        }
    }
}

/// The layout of a message with one question: the question's end, every record's TTL offset
/// (OPT excluded: its TTL field holds the extended rcode and flags) and where the OPT record
/// starts if it is the last record. `None` if the message does not parse to its exact end.
pub fn layout(msg: &[u8]) -> Option<Layout> {
    if u16_at(msg, 4)? != 1 {
        return None;
    }
    let records =
        usize::from(u16_at(msg, 6)?) + usize::from(u16_at(msg, 8)?) + usize::from(u16_at(msg, 10)?);
    let question_end = skip_name(msg, HEADER_LEN)? + 4;
    if question_end > msg.len() {
        return None;
    }
    let mut at = question_end;
    // Counts come from the (upstream's, untrusted) header: reserve no more than the bytes can
    // hold (a record takes at least 11: a root name and its fixed fields).
    let mut ttl_at = Vec::with_capacity(records.min((msg.len() - question_end) / 11));
    let mut opt_at = None;
    for _ in 0..records {
        let start = at;
        at = skip_name(msg, at)?;
        let rtype = u16_at(msg, at)?;
        let rdlen = usize::from(u16_at(msg, at + 8)?);
        if rtype == TYPE_OPT {
            opt_at = Some(start);
        } else {
            opt_at = None;
            ttl_at.push(u16::try_from(at + 4).ok()?);
        }
        at += 10 + rdlen;
    }
    (at == msg.len()).then_some(Layout {
        question_end,
        ttl_at,
        opt_at,
    })
}

/// Lowers every TTL at `ttl_at` in `msg` by `age` seconds (not below 0).
pub fn lower_ttls(msg: &mut [u8], ttl_at: &[u16], age: u32) {
    for &at in ttl_at {
        let at = usize::from(at);
        if let Some(field) = msg.get_mut(at..at + 4) {
            let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
            field.copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
        }
    }
}

/// Turns a cached response (built for the lowercased question) into the response to `q`:
/// copies it into `out`, then patches the id, the RD, CD and RA flags, and the question's case.
///
/// The caller guarantees `cached` answers the same key, so the question has the same length.
pub fn patch_cached(cached: &[u8], pkt: &[u8], q: &PlainQuery, ra: bool, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(cached);
    if out.len() < q.name_end {
        return;
    }
    out[0..2].copy_from_slice(&q.id.to_be_bytes());
    out[2] = (out[2] & !0x01) | u8::from(q.rd);
    out[3] = (out[3] & !0x90) | if q.cd { 0x10 } else { 0 } | if ra { 0x80 } else { 0 };
    out[HEADER_LEN..q.name_end].copy_from_slice(q.name(pkt));
}

/// End offset of the (single, uncompressed) question of a message we built, if it has one.
pub fn parse_plain_query_response(pkt: &[u8]) -> Option<usize> {
    if u16_at(pkt, 4)? != 1 {
        return None;
    }
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*pkt.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len > 63 || at - HEADER_LEN >= MAX_NAME_LEN {
            return None;
        }
        at += 1 + len;
    }
    (at + 4 <= pkt.len()).then_some(at + 4)
}

/// A header-only error response (FORMERR and friends) for a packet the full parser rejected;
/// `None` when the packet is too short to have an id or is itself a response.
pub fn header_error(pkt: &[u8], rcode: u8) -> Option<[u8; HEADER_LEN]> {
    if pkt.len() < HEADER_LEN || pkt[2] & 0x80 != 0 {
        return None;
    }
    let mut out = [0u8; HEADER_LEN];
    out[0] = pkt[0];
    out[1] = pkt[1];
    // QR=1, keep the opcode and RD; rcode in the low nibble.
    out[2] = 0x80 | (pkt[2] & 0x79);
    out[3] = rcode & 0x0F;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use proptest::prelude::*;

    fn query(name: &str, edns: Option<(u16, bool)>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if let Some((payload, dnssec_ok)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(payload);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn plain_queries_parse() {
        let pkt = query("Bars4.Proxima.", Some((1232, true)));
        let q = parse_plain_query(&pkt).expect("plain");
        assert_eq!(q.qtype, 1);
        assert_eq!(q.qclass, 1);
        assert!(q.rd);
        assert_eq!(
            q.edns,
            Some(EdnsInfo {
                payload: 1232,
                dnssec_ok: true
            })
        );
        assert_eq!(q.udp_limit(), 1232);
        let mut k1 = [0u8; MAX_KEY];
        let l1 = cache_key(&pkt, &q, &mut k1);
        let pkt2 = query("bars4.proxima.", Some((4096, true)));
        let q2 = parse_plain_query(&pkt2).unwrap();
        let mut k2 = [0u8; MAX_KEY];
        let l2 = cache_key(&pkt2, &q2, &mut k2);
        assert_eq!(
            k1[..l1],
            k2[..l2],
            "case and payload size do not change the key"
        );
        let pkt3 = query("bars4.proxima.", None);
        let q3 = parse_plain_query(&pkt3).unwrap();
        assert_eq!(q3.udp_limit(), 512);
        let mut k3 = [0u8; MAX_KEY];
        let l3 = cache_key(&pkt3, &q3, &mut k3);
        assert_ne!(k1[..l1], k3[..l3]);
    }

    #[test]
    fn patching_restores_id_flags_and_case() {
        let pkt = query("MiXeD.proxima.", None);
        let q = parse_plain_query(&pkt).unwrap();
        let mut cached = query("mixed.proxima.", None);
        cached[2] |= 0x84; // QR + AA
        let mut out = Vec::new();
        patch_cached(&cached, &pkt, &q, true, &mut out);
        assert_eq!(&out[0..2], &pkt[0..2]);
        assert_eq!(out[2] & 0x01, 1, "RD copied");
        assert_eq!(out[3] & 0x80, 0x80, "RA set");
        assert_eq!(q.name(&out), q.name(&pkt));
    }

    #[test]
    fn layout_finds_every_ttl_but_opt() {
        use hickory_proto::rr::rdata::{A, CNAME};
        use hickory_proto::rr::{RData, Record};
        let n = |s: &str| Name::from_ascii(s).unwrap();
        let mut m = Message::response(1, hickory_proto::op::OpCode::Query);
        m.add_query(Query::query(n("www.example.test."), RecordType::A));
        m.answers.push(Record::from_rdata(
            n("www.example.test."),
            60,
            RData::CNAME(CNAME(n("example.test."))),
        ));
        m.answers.push(Record::from_rdata(
            n("example.test."),
            300,
            RData::A(A([192, 0, 2, 1].into())),
        ));
        m.additionals.push(Record::from_rdata(
            n("ns.example.test."),
            1000,
            RData::A(A([192, 0, 2, 2].into())),
        ));
        m.set_edns(Edns::new());
        let mut wire = m.to_vec().unwrap();
        let l = layout(&wire).expect("layout");
        assert_eq!(l.ttl_at.len(), 3, "OPT's TTL field is not a TTL");
        let opt_at = l.opt_at.expect("OPT last");
        assert_eq!(wire.len() - opt_at, 11);
        lower_ttls(&mut wire, &l.ttl_at, 100);
        let aged = Message::from_vec(&wire).unwrap();
        let ttls: Vec<u32> = aged
            .answers
            .iter()
            .chain(&aged.additionals)
            .map(|r| r.ttl)
            .collect();
        assert_eq!(ttls, [0, 200, 900]);
        assert_eq!(aged.edns, m.edns, "OPT untouched");
        assert!(layout(&wire[..wire.len() - 1]).is_none());
    }

    #[test]
    fn non_plain_messages_go_to_the_full_parser() {
        let mut pkt = query("a.proxima.", None);
        pkt[2] |= 0x80; // a response
        assert!(parse_plain_query(&pkt).is_none());
        let mut pkt = query("a.proxima.", None);
        pkt.push(0); // trailing garbage
        assert!(parse_plain_query(&pkt).is_none());
        assert!(parse_plain_query(&[0; 11]).is_none());
    }

    proptest! {
        #[test]
        fn never_panics(pkt in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Some(q) = parse_plain_query(&pkt) {
                let mut key = [0u8; MAX_KEY];
                let n = cache_key(&pkt, &q, &mut key);
                prop_assert!(n <= MAX_KEY);
                let mut out = Vec::new();
                patch_cached(&pkt, &pkt, &q, false, &mut out);
                prop_assert_eq!(out.len(), pkt.len());
            }
            let _ = header_error(&pkt, 1);
            if let Some(l) = layout(&pkt) {
                let mut m = pkt.clone();
                lower_ttls(&mut m, &l.ttl_at, 7);
                prop_assert!(l.question_end <= pkt.len());
            }
        }

        #[test]
        fn agrees_with_hickory(labels in proptest::collection::vec("[a-zA-Z0-9][a-zA-Z0-9-]{0,18}[a-zA-Z0-9]", 1..5),
                               edns in proptest::option::of((512u16..4096, any::<bool>()))) {
            let name = format!("{}.", labels.join("."));
            let pkt = query(&name, edns);
            let q = parse_plain_query(&pkt).expect("hickory's queries are plain");
            let m = Message::from_vec(&pkt).unwrap();
            prop_assert_eq!(q.id, m.metadata.id);
            prop_assert_eq!(q.edns.map(|e| e.payload), m.edns.as_ref().map(|e| e.max_payload()));
            prop_assert_eq!(q.edns.map(|e| e.dnssec_ok), m.edns.as_ref().map(|e| e.flags().dnssec_ok));
        }
    }
}
