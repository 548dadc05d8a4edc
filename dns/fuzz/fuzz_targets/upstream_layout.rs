//! Arbitrary bytes as an upstream's answer through `wire::layout`, which the forwarding cache
//! runs on every answer it stores: no panic, and every offset it returns lies inside the
//! message. Run: `cargo +nightly fuzz run upstream_layout` in `dns/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(l) = dns::wire::layout(data) {
        assert!(l.question_end <= data.len());
        for &at in &l.ttl_at {
            assert!(usize::from(at) + 4 <= data.len());
        }
        if let Some(opt) = l.opt_at {
            assert!(opt < data.len());
        }
        let mut copy = data.to_vec();
        dns::wire::lower_ttls(&mut copy, &l.ttl_at, 17);
        assert_eq!(copy.len(), data.len());
    }
});
