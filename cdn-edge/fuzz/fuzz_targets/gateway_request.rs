//! The gateway's parsing of untrusted request parts: path, Host, Range, If-None-Match.
//! Never panics, and what it accepts keeps its promises (no traversal, ranges inside the blob).
#![no_main]

use cdn_edge::gateway::request::{
    RangeRequest, if_none_match, normalize_host, parse_path, parse_range,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    let text = String::from_utf8_lossy(&data[8..]);
    let mut parts = text.splitn(4, '\n');
    let path = parts.next().unwrap_or("");
    let host = parts.next().unwrap_or("");
    let range = parts.next().unwrap_or("");
    let inm = parts.next().unwrap_or("");

    if let Ok(p) = parse_path(path) {
        assert!(p.starts_with('/'));
        assert!(!p.split('/').any(|s| s == ".." || s == "."), "traversal accepted: {p:?}");
        assert!(!p.contains('\\') && !p.contains('\0'));
    }
    if let Some(h) = normalize_host(host) {
        assert!(!h.is_empty() && h == h.to_ascii_lowercase());
    }
    if let RangeRequest::Ranges(rs) = parse_range(Some(range), size) {
        assert!(!rs.is_empty() && rs.len() <= cdn_edge::gateway::request::MAX_RANGES);
        for (s, e) in rs {
            assert!(s <= e && e < size, "range {s}-{e} outside {size}");
        }
    }
    let _ = if_none_match(inm, "\"abc\"");
});
