//! Whole requests through the command layer: arbitrary bytes, parsed and dispatched to every
//! handler with arbitrary arguments, must never panic. The input is also split into commands
//! from a small vocabulary so the fuzzer reaches deep into the handlers quickly.
#![no_main]

use cache::session::Session;
use libfuzzer_sys::fuzz_target;

/// A session whose scripts stop after 200 ms: a generated `EVAL "while 1 do end" 0` runs until
/// `SCRIPT KILL` on a real server, and a session has no second client to send it.
fn session() -> Session {
    let mut s = Session::new();
    s.cmd(&["CONFIG", "SET", "proxima-script-time-limit", "200"]);
    s
}

fuzz_target!(|data: &[u8]| {
    let mut s = session();
    // Raw bytes first (parser + dispatch), then the same bytes as space-separated inline words.
    let _ = s.feed(data);
    let mut s = session();
    for line in data.split(|&b| b == b'\n').take(64) {
        let mut req = line.to_vec();
        req.push(b'\n');
        let _ = s.feed(&req);
        if s.closed() {
            break;
        }
    }
});
