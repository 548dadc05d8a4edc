//! Fuzzes the signed-zone decoder: arbitrary bytes never panic, and whatever decodes re-encodes
//! to exactly the same bytes (the encoding is canonical) and round-trips again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naming::SignedZone;

fuzz_target!(|data: &[u8]| {
    if let Ok(zone) = SignedZone::decode(data) {
        let again = zone.encode();
        assert_eq!(again, data, "decode accepted a non-canonical encoding");
        let back = SignedZone::decode(&again).expect("re-decodes");
        assert_eq!(back, zone);
        let _ = zone.verify();
    }
});
