//! Whole requests through the command layer: arbitrary bytes, parsed and dispatched to every
//! handler with arbitrary arguments, must never panic. The input is also split into commands
//! from a small vocabulary so the fuzzer reaches deep into the handlers quickly.
#![no_main]

use cache::session::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = Session::new();
    // Raw bytes first (parser + dispatch), then the same bytes as space-separated inline words.
    let _ = s.feed(data);
    let mut s = Session::new();
    for line in data.split(|&b| b == b'\n').take(64) {
        let mut req = line.to_vec();
        req.push(b'\n');
        let _ = s.feed(&req);
        if s.closed() {
            break;
        }
    }
});
