//! Manifest decoder: never panics; whatever decodes re-encodes to the same bytes (canonical).
//! Inputs are tried as they are and behind the magic and version (`PXM`, 1), so the fuzzer
//! spends its time in the entries rather than on the 4-byte header.
#![no_main]

use cdn_edge::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8]) {
    if let Ok(m) = Manifest::decode(data) {
        let again = m.encode().expect("a decoded manifest encodes");
        assert_eq!(again, data, "decoding accepted a non-canonical encoding");
        // Resolution of any path must not panic either.
        let _ = m.resolve("/");
        let _ = m.resolve("/a/b/");
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut framed = b"PXM\x01".to_vec();
    framed.extend_from_slice(data);
    check(&framed);
});
