//! Fuzzes the registrar group's messages as a member reads them off a `proxima/registrar/1`
//! stream (JSON, bounded by the frame decoder before this point): arbitrary bytes never panic,
//! and a message that decodes encodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naming::raft::{GroupMessage, GroupReply};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<GroupMessage>(data) {
        serde_json::to_vec(&m).expect("a decoded message encodes");
    }
    if let Ok(r) = serde_json::from_slice::<GroupReply>(data) {
        serde_json::to_vec(&r).expect("a decoded reply encodes");
    }
});
