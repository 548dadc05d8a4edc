use bao_tree::io::outboard::PostOrderMemOutboard;
use bytes::Bytes;

use super::*;
use crate::transfer::wire::{self, Request, Status};

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Encodes a whole response (header and data frames), as payloads.
fn respond(source: &Source, req: &Request) -> Vec<Bytes> {
    let mut out = vec![wire::header(Status::Ok, source.size())];
    encode(source, &sections(source.size(), req), |frame| {
        out.push(frame.slice(mesh::frame::HEADER_LEN..));
        true
    })
    .unwrap();
    out
}

fn decode_all(req: &Request, frames: &[Bytes]) -> Result<(Vec<(u64, Bytes)>, usize), DecodeError> {
    let mut dec = Decoder::new(req.clone(), u64::MAX, None);
    let mut leaves = Vec::new();
    let mut parents = 0;
    for f in frames {
        let p = dec.feed(f.clone())?;
        leaves.extend(p.leaves);
        parents += p.parents.len();
    }
    assert!(dec.is_done());
    Ok((leaves, parents))
}

fn memory(data: &[u8]) -> Source {
    Source::from_blob(Blob::memory(Hash::of(data), Bytes::copy_from_slice(data)))
}

#[test]
fn items_are_the_bao_encoding_bao_tree_produces() {
    for size in [
        0usize,
        1,
        1024,
        16 * 1024,
        16 * 1024 + 1,
        100_000,
        1 << 20,
        3_000_001,
    ] {
        let data = noise(size, size as u64 + 1);
        let source = memory(&data);
        let req = Request {
            hash: source.hash(),
            prove_size: false,
            ranges: vec![],
        };
        let ours: Vec<u8> = respond(&source, &req)[1..]
            .iter()
            .flat_map(|f| f[1..].to_vec())
            .collect();
        let ob = PostOrderMemOutboard::create(&data, BLOCK_SIZE);
        let mut theirs = Vec::new();
        bao_tree::io::sync::encode_ranges_validated(
            &data[..],
            &ob,
            &ChunkRanges::from(ChunkNum(0)..),
            &mut theirs,
        )
        .unwrap();
        assert_eq!(ours, theirs, "size {size}");
        let (leaves, _) = decode_all(&req, &respond(&source, &req)).unwrap();
        let joined: Vec<u8> = leaves.iter().flat_map(|(_, b)| b.to_vec()).collect();
        assert_eq!(joined, data, "size {size}");
    }
}

#[test]
fn ranges_and_size_proof_decode_to_the_right_groups() {
    let data = noise(1_000_000, 9);
    let source = memory(&data);
    let req = Request {
        hash: source.hash(),
        prove_size: true,
        ranges: vec![(2, 5), (40, u64::MAX)],
    };
    let (leaves, parents) = decode_all(&req, &respond(&source, &req)).unwrap();
    assert!(parents > 0);
    // The proof's last group first, then groups 2..5 and 40..62 (62 groups in all).
    let n = groups(data.len() as u64);
    assert_eq!(n, 62);
    assert_eq!(leaves[0].0, (n - 1) * GROUP);
    let offsets: Vec<u64> = leaves[1..].iter().map(|(o, _)| o / GROUP).collect();
    let want: Vec<u64> = (2..5).chain(40..n).collect();
    assert_eq!(offsets, want);
    for (off, bytes) in &leaves {
        let o = *off as usize;
        assert_eq!(&data[o..o + bytes.len()], &bytes[..]);
    }
}

#[test]
fn the_first_altered_group_fails_and_nothing_after_it_is_returned() {
    let data = noise(600_000, 5);
    let mut bad = data.clone();
    let bad_group = 20u64;
    bad[(bad_group * GROUP + 77) as usize] ^= 1;
    let source = Source::unchecked(&data, Bytes::from(bad));
    let req = Request::whole(source.hash());
    let frames = respond(&source, &req);
    let mut dec = Decoder::new(req, u64::MAX, None);
    let mut good = Vec::new();
    let mut failed_at = None;
    for f in frames {
        match dec.feed(f) {
            Ok(p) => good.extend(p.leaves.into_iter().map(|(o, _)| o / GROUP)),
            Err(DecodeError::Corrupt { offset }) => {
                failed_at = Some(offset);
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(failed_at, Some(bad_group * GROUP));
    assert!(good.iter().all(|g| *g != bad_group));
    // Only the groups before the bad one (and the proven last group) were accepted.
    assert!(
        good.iter()
            .all(|g| *g < bad_group || *g == groups(600_000) - 1)
    );
}

#[test]
fn wrong_hash_size_and_framing_are_refused() {
    let data = noise(100_000, 3);
    let source = memory(&data);
    let frames = respond(&source, &Request::whole(source.hash()));
    // Another hash: the first parent (the root) fails.
    let other = Request::whole(Hash::of(b"other"));
    assert!(matches!(
        decode_all(&other, &frames),
        Err(DecodeError::Corrupt { .. })
    ));
    // A lie about the size: the size proof fails.
    let mut lie = frames.clone();
    lie[0] = wire::header(Status::Ok, 100_000 + 16 * 1024);
    let r = decode_all(&Request::whole(source.hash()), &lie);
    assert!(r.is_err(), "{r:?}");
    // Bound and expected size are checked at the header.
    let mut dec = Decoder::new(Request::whole(source.hash()), 1000, None);
    assert!(matches!(
        dec.feed(frames[0].clone()),
        Err(DecodeError::Size { .. })
    ));
    let mut dec = Decoder::new(Request::whole(source.hash()), u64::MAX, Some(5));
    assert!(matches!(
        dec.feed(frames[0].clone()),
        Err(DecodeError::Size { .. })
    ));
    // A frame cut inside an item.
    let mut cut = frames.clone();
    let last = cut.len() - 1;
    cut[last] = cut[last].slice(..cut[last].len() - 1);
    assert!(matches!(
        decode_all(&Request::whole(source.hash()), &cut),
        Err(DecodeError::Wire(_))
    ));
    // Data after the end.
    let mut extra = frames.clone();
    extra.push(Bytes::from_static(&[wire::TAG_DATA, 0]));
    assert!(decode_all(&Request::whole(source.hash()), &extra).is_err());
    // Not found.
    let mut dec = Decoder::new(Request::whole(source.hash()), u64::MAX, None);
    assert!(matches!(
        dec.feed(wire::header(Status::NotFound, 0)),
        Err(DecodeError::Status(Status::NotFound))
    ));
}

proptest::proptest! {
    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 0..6)) {
        let mut dec = Decoder::new(Request::whole(Hash::of(b"x")), 1 << 30, None);
        for f in frames {
            if dec.feed(Bytes::from(f)).is_err() { break; }
        }
    }
}

#[test]
fn verified_parents_rebuild_the_outboard_the_store_keeps() {
    use bao_tree::io::sync::OutboardMut;
    let data = noise(2_500_000, 17);
    let source = memory(&data);
    // Two overlapping requests, as two lanes would make them, cover every parent.
    let mut ob = PostOrderMemOutboard {
        root: source.hash().to_blake3(),
        tree: BaoTree::new(data.len() as u64, BLOCK_SIZE),
        data: vec![0; BaoTree::new(data.len() as u64, BLOCK_SIZE).outboard_size() as usize],
    };
    for ranges in [vec![(0, 70)], vec![(70, u64::MAX)]] {
        let req = Request {
            hash: source.hash(),
            prove_size: true,
            ranges,
        };
        let mut dec = Decoder::new(req.clone(), u64::MAX, None);
        for f in respond(&source, &req) {
            for (node, pair) in dec.feed(f).unwrap().parents {
                let l = blake3::Hash::from_slice(&pair[..32]).unwrap();
                let r = blake3::Hash::from_slice(&pair[32..]).unwrap();
                ob.save(node, &(l, r)).unwrap();
            }
        }
    }
    assert!(ob.data == PostOrderMemOutboard::create(&data, BLOCK_SIZE).data);
}
