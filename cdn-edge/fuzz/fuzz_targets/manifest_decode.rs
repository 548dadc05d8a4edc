//! Manifest decoder: never panics; whatever decodes re-encodes to the same bytes (canonical).
#![no_main]

use cdn_edge::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        let again = m.encode().expect("a decoded manifest encodes");
        assert_eq!(again, data, "decoding accepted a non-canonical encoding");
        // Resolution of any path must not panic either.
        let _ = m.resolve("/");
        let _ = m.resolve("/a/b/");
    }
});
