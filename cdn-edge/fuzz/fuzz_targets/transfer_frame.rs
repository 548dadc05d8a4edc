//! Transfer frames from an untrusted peer: the request decoder and the response path (bounded
//! frame reader, frame parser, verifying bao decoder) never panic and never accept a byte that
//! does not verify. Responses are decoded against the hash of a small real blob, so the fuzzer
//! can reach the item layout and the hash checks.
#![no_main]

use bytes::{Bytes, BytesMut};
use cdn_edge::Hash;
use cdn_edge::transfer::{Decoder, MAX_FRAME, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(r) = Request::decode(rest) {
            let again = r.encode().expect("a decoded request encodes");
            assert_eq!(&again[..], rest, "request decoding is not canonical");
        }
        return;
    }
    // A 40 KiB blob of zeros: three chunk groups, so parents and leaves both occur.
    let blob = vec![0u8; 40 * 1024];
    let hash = Hash::of(&blob);
    let request = Request {
        hash,
        prove_size: mode & 2 != 0,
        ranges: if mode & 4 != 0 { vec![(1, 2)] } else { vec![] },
    };
    let mut decoder = Decoder::new(request, 1 << 40, None);
    let frames = mesh::frame::FrameDecoder::new(MAX_FRAME);
    let mut buf = BytesMut::from(rest);
    for _ in 0..64 {
        match frames.decode(&mut buf) {
            Ok(Some(payload)) => match decoder.feed(Bytes::from(payload)) {
                Ok(progress) => {
                    for (offset, bytes) in progress.leaves {
                        let o = offset as usize;
                        assert!(o + bytes.len() <= blob.len(), "leaf outside the blob");
                        assert_eq!(
                            &blob[o..o + bytes.len()],
                            &bytes[..],
                            "unverified leaf accepted"
                        );
                    }
                }
                Err(_) => return,
            },
            Ok(None) | Err(_) => return,
        }
    }
});
