//! The decoders of the cache's node-to-node protocol on arbitrary bytes: link frames (records),
//! key states, range lists, pull hellos, hash-tree messages and session answers never panic,
//! never read past their frame, and what they accept re-encodes to the same bytes.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use cache::cluster::proto::{
    decode_keys, decode_link, decode_ranges, decode_replies, encode_key_state, encode_ranges,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    if let Ok((seq, records)) = decode_link(&frame) {
        let mut again = BytesMut::new();
        again.put_u64(seq);
        for r in &records {
            r.encode(&mut again);
        }
        assert_eq!(&again[..], data);
    }
    if let Ok(states) = decode_keys(&frame) {
        let mut again = BytesMut::new();
        for st in &states {
            encode_key_state(&mut again, &st.key, st.ver, |o| o.put_slice(&st.ops));
        }
        assert_eq!(&again[..], data);
    }
    if let Ok(ranges) = decode_ranges(data) {
        assert_eq!(encode_ranges(&ranges), data);
    }
    if let Ok(pull) = cache::cluster::proto::decode_pull(data) {
        let again = cache::cluster::proto::encode_pull(0, &pull.ranges, pull.since, pull.view);
        assert_eq!(&again[1..], data);
    }
    if let Ok((refused, empty)) = cache::cluster::proto::decode_refusal(data) {
        assert!(empty.iter().all(|g| refused.contains(g)));
        assert_eq!(cache::cluster::proto::encode_refusal(&refused, &empty), data);
    }
    // The hash-tree exchange of merges (`cluster::aae`).
    use cache::cluster::aae;
    if let Ok(roots) = aae::decode_roots(data) {
        assert_eq!(aae::encode_roots(&roots), data);
    }
    if let Ok(masks) = aae::decode_masks(data, data.len(), aae::NODE_IDS) {
        assert_eq!(aae::encode_masks(&masks), data);
    }
    if let Ok(hashes) = aae::decode_hashes(data, data.len() / 8) {
        assert_eq!(&aae::encode_hashes(&hashes)[..], data);
    }
    let _ = cache::cluster::proto::decode_members(data);
    let expected = usize::from(data.first().copied().unwrap_or(0));
    if let Ok(replies) = decode_replies(&frame, expected) {
        assert_eq!(replies.len(), expected);
        let total: usize = replies.iter().map(|r| r.len() + 4).sum();
        assert_eq!(total, data.len());
    }
});
