//! Arbitrary packets through the whole synchronous request path (fast path, full parse,
//! authoritative answers, forwarding checks), over UDP and TCP rules, from an allowed and a
//! non-allowed client. Run: `cargo +nightly fuzz run request` in `dns/`.
#![no_main]

use std::sync::OnceLock;

use dns::engine::{Engine, Transport};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(dns::testing::engine_with_sample_zone)
}

fuzz_target!(|data: &[u8]| {
    let e = engine();
    let mut out = Vec::new();
    for (src, transport) in [
        ("127.0.0.1:5353", Transport::Udp),
        ("192.0.2.1:5353", Transport::Udp),
        ("127.0.0.1:5353", Transport::Tcp),
    ] {
        let _ = e.handle(data, src.parse().unwrap(), transport, &mut out);
    }
});
