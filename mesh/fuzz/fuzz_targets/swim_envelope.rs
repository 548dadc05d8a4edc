//! The SWIM envelope (a peer's metadata + foca packet) on arbitrary bytes: never panics, and
//! whatever it accepts is within the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::membership::{MAX_SERVICES, decode_envelope};

fuzz_target!(|data: &[u8]| {
    if let Some((meta, packet)) = decode_envelope(data) {
        assert!(meta.services.len() <= MAX_SERVICES);
        assert!(packet.len() <= data.len());
    }
});
