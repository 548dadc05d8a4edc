//! The bounded fuzz run of every test run, on stable Rust: thousands of near-valid packets
//! (real queries of every shape the fuzz target's seeds have, then mutated: bytes and bits
//! changed, cut short, grown, counts rewritten, sections duplicated) through the public request
//! path, after the genuine queries filled the fast path's ready answers. No panic, and every reply
//! is a well-formed DNS message with the request's id.

use std::net::SocketAddr;

use dns::engine::{Engine, Step, Transport};
use dns::testing::engine_with_sample_zone;
use hickory_proto::op::Message;

/// Mutated packets per seed.
const MUTATIONS: usize = 12;

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).unwrap());
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Queries in wire form: names inside and outside the zone and TLD, mixed case, many types,
/// with and without EDNS (several sizes, DO), RD and CD set or not.
fn seeds() -> Vec<Vec<u8>> {
    let names = [
        "bars.proxima",
        "BaRs.PROXIMA",
        "site.bars.proxima",
        "www.bars.proxima",
        "mail.bars.proxima",
        "nope.proxima",
        "proxima",
        "a.b.c.bars.proxima",
        "example.com",
    ];
    let types: [u16; 10] = [1, 28, 16, 15, 5, 6, 2, 255, 65, 33];
    let edns = [
        None,
        Some((1232u16, 0u16)),
        Some((4096, 0x8000)),
        Some((100, 0)),
    ];
    let flags: [u16; 3] = [0x0100, 0x0000, 0x0110];
    let mut out = Vec::new();
    let mut id = 1u16;
    for name in names {
        for qtype in types {
            for e in edns {
                for f in flags {
                    let mut p = Vec::new();
                    p.extend_from_slice(&id.to_be_bytes());
                    p.extend_from_slice(&f.to_be_bytes());
                    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(e.is_some())]);
                    p.extend_from_slice(&encode_name(name));
                    p.extend_from_slice(&qtype.to_be_bytes());
                    p.extend_from_slice(&1u16.to_be_bytes());
                    if let Some((size, ext)) = e {
                        p.push(0);
                        p.extend_from_slice(&41u16.to_be_bytes());
                        p.extend_from_slice(&size.to_be_bytes());
                        p.extend_from_slice(&[0, 0]);
                        p.extend_from_slice(&ext.to_be_bytes());
                        p.extend_from_slice(&[0, 0]);
                    }
                    out.push(p);
                    id = id.wrapping_add(1);
                }
            }
        }
    }
    out
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut p = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let len = p.len().max(1);
        match rng.below(7) {
            0 => {
                let at = rng.below(len);
                if let Some(b) = p.get_mut(at) {
                    *b = u8::try_from(rng.below(256)).unwrap();
                }
            }
            1 => {
                let at = rng.below(len);
                if let Some(b) = p.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            2 => p.truncate(rng.below(len)),
            3 => {
                let at = rng.below(len);
                let extra: Vec<u8> = (0..rng.below(40))
                    .map(|_| u8::try_from(rng.below(256)).unwrap())
                    .collect();
                p.splice(at.min(p.len())..at.min(p.len()), extra);
            }
            4 => {
                // A header count (QD, AN, NS, AR) rewritten.
                let at = 4 + 2 * rng.below(4);
                if p.len() > at + 1 {
                    p[at] = u8::try_from(rng.below(3)).unwrap();
                    p[at + 1] = u8::try_from(rng.below(4)).unwrap();
                }
            }
            5 => {
                // The question (or anything after the header) repeated.
                if p.len() > 12 {
                    let tail = p[12..].to_vec();
                    p.extend_from_slice(&tail);
                }
            }
            _ => {
                // A compression pointer somewhere in the question.
                if p.len() > 13 {
                    let at = 12 + rng.below(p.len() - 12);
                    p[at] = 0xC0;
                    if let Some(b) = p.get_mut(at + 1) {
                        *b = u8::try_from(rng.below(64)).unwrap();
                    }
                }
            }
        }
    }
    p
}

fn check(engine: &Engine, pkt: &[u8], src: SocketAddr, transport: Transport) {
    let mut out = Vec::new();
    if let Step::Reply = engine.handle(pkt, src, transport, &mut out) {
        assert!(
            out.len() >= 12,
            "a reply shorter than a header for {pkt:02x?}"
        );
        if pkt.len() >= 2 {
            assert_eq!(out[..2], pkt[..2], "reply id differs for {pkt:02x?}");
        }
        assert!(
            Message::from_vec(&out).is_ok(),
            "malformed reply {out:02x?} for {pkt:02x?}"
        );
        if transport == Transport::Udp {
            assert!(out.len() <= 65_535);
        }
    }
}

#[test]
fn thousands_of_mutated_queries_get_well_formed_replies_or_none() {
    let engine = engine_with_sample_zone();
    let local: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let remote: SocketAddr = "192.0.2.1:5353".parse().unwrap();
    let seeds = seeds();
    // Genuine queries first: the fast path now holds their ready answers.
    for s in &seeds {
        check(&engine, s, local, Transport::Udp);
    }
    let mut rng = Rng(0x5eed_d115);
    let mut n = 0;
    for s in &seeds {
        for _ in 0..MUTATIONS {
            let p = mutate(s, &mut rng);
            for (src, t) in [
                (local, Transport::Udp),
                (remote, Transport::Udp),
                (local, Transport::Tcp),
            ] {
                check(&engine, &p, src, t);
            }
            n += 1;
        }
    }
    assert!(n >= 10_000, "{n} mutated packets");
}
