//! The data-plane frame decoder on arbitrary bytes: never panics, never yields a frame over
//! the bound, and round-trips what it decodes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mesh::frame::{FrameDecoder, encode};

fuzz_target!(|data: &[u8]| {
    let max = 1024;
    let decoder = FrameDecoder::new(max);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        assert!(frame.len() <= max);
        let again = encode(&frame).expect("bounded frame encodes");
        let mut one = BytesMut::from(&again[..]);
        assert_eq!(decoder.decode(&mut one).unwrap().unwrap(), frame);
    }
});
