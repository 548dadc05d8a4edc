//! Membership certificates and revocation lists from an untrusted peer (they arrive as JSON in
//! a member's SWIM metadata): decoding, the bounds checks, verification against a fixed anchor
//! and the standing computation never panic, and nothing verifies but what the cluster key
//! signed. The first byte picks the input: raw certificate JSON, raw revocation-list JSON, a
//! valid certificate's or list's JSON with bytes overwritten (so the fuzzer reaches the
//! signature and time checks at once), or a `Standing` (which round-trips).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mesh::PeerId;
use mesh::trust::{
    Certificate, ClusterKey, Revocations, Standing, TrustError, TrustPolicy, standing_of,
};

struct Fixture {
    anchor: [u8; 32],
    peer: PeerId,
    cert: Certificate,
    cert_json: Vec<u8>,
    list: Revocations,
    list_json: Vec<u8>,
}

/// A peer id from a fixed ed25519 public key (identity multihash of the protobuf key).
fn fixed_peer() -> PeerId {
    let key = ClusterKey::from_seed([2; 32]).public();
    let mut bytes = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    bytes.extend_from_slice(&key);
    PeerId::from_bytes(&bytes).expect("an identity peer id")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = ClusterKey::from_seed([1; 32]);
        let peer = fixed_peer();
        let cert = key.certify(peer, &["cache".into(), "registrar".into()], 30 * 86_400);
        let list = key.revoke(7, &[(peer.to_string(), cert.not_after)]);
        assert_eq!(cert.verify(&key.public(), &peer, cert.not_before), Ok(()));
        assert_eq!(list.verify(&key.public()), Ok(()));
        Fixture {
            anchor: key.public(),
            peer,
            cert_json: serde_json::to_vec(&cert).expect("json"),
            list_json: serde_json::to_vec(&list).expect("json"),
            cert,
            list,
        }
    })
}

/// Overwrites bytes of `base`: each 3-byte chunk of `ops` is (position, value).
fn mutate(base: &[u8], ops: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    for op in ops.chunks_exact(3).take(64) {
        if out.is_empty() {
            break;
        }
        let pos = usize::from(u16::from_le_bytes([op[0], op[1]])) % out.len();
        match op[2] {
            // Truncate: the decoder must cope with JSON cut anywhere.
            0xff => out.truncate(pos),
            v => out[pos] = v,
        }
    }
    out
}

fn check_cert(f: &Fixture, cert: &Certificate) {
    let _ = cert.is_bounded();
    let _ = cert.signed_bytes();
    let _ = cert.cluster_key();
    let _ = cert.grants("cache");
    let valid_now = f.cert.not_before + 60;
    for now in [valid_now, cert.not_before, cert.not_after, 0, u64::MAX] {
        let r = cert.verify(&f.anchor, &f.peer, now);
        if r.is_ok() || r == Err(TrustError::Expired) {
            // The signature verified: every signed field is the cluster's own.
            assert_eq!(cert.cluster_key(), Ok(f.anchor), "forged cluster verified");
            assert_eq!(cert.peer, f.cert.peer, "forged peer verified");
            assert_eq!(cert.roles, f.cert.roles, "forged roles verified");
            assert_eq!(cert.not_before, f.cert.not_before, "forged validity verified");
            assert_eq!(cert.not_after, f.cert.not_after, "forged validity verified");
        }
        if r.is_ok() {
            assert!(cert.not_before <= now && now < cert.not_after);
        }
    }
    // Presented by whatever peer it names, if that parses.
    if let Ok(other) = cert.peer.parse::<PeerId>() {
        let _ = cert.verify(&f.anchor, &other, valid_now);
    }
    let closed = TrustPolicy {
        anchor: Some(f.anchor),
        open: false,
    };
    for revoked in [None, Some(&f.list)] {
        match standing_of(&closed, revoked, &f.peer, Some(cert), valid_now) {
            Ok(Standing::Certified(roles)) => {
                assert!(revoked.is_none(), "a revoked peer certified");
                assert_eq!(roles, f.cert.roles);
            }
            Ok(s) => panic!("closed cluster gave {s:?} to a certificate"),
            Err(_) => {}
        }
    }
    let open = TrustPolicy {
        anchor: None,
        open: true,
    };
    assert_eq!(
        standing_of(&open, None, &f.peer, Some(cert), valid_now),
        Ok(Standing::Open)
    );
    let unknown = TrustPolicy::default();
    assert_eq!(
        standing_of(&unknown, None, &f.peer, Some(cert), valid_now),
        Ok(Standing::Uncertified)
    );
}

fn check_list(f: &Fixture, list: &Revocations) {
    let _ = list.contains(&f.peer);
    if list.verify(&f.anchor).is_ok() {
        assert_eq!(list.cluster, f.list.cluster, "forged list verified");
        assert_eq!(list.version, f.list.version, "forged list verified");
        assert_eq!(list.entries, f.list.entries, "forged list verified");
        assert!(list.contains(&f.peer));
        let closed = TrustPolicy {
            anchor: Some(f.anchor),
            open: false,
        };
        assert_eq!(
            standing_of(
                &closed,
                Some(list),
                &f.peer,
                Some(&f.cert),
                f.cert.not_before + 60
            ),
            Err(TrustError::Revoked)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => {
            if let Ok(cert) = serde_json::from_slice::<Certificate>(rest) {
                check_cert(f, &cert);
            }
        }
        1 => {
            if let Ok(list) = serde_json::from_slice::<Revocations>(rest) {
                check_list(f, &list);
            }
        }
        2 => {
            let json = mutate(&f.cert_json, rest);
            if let Ok(cert) = serde_json::from_slice::<Certificate>(&json) {
                check_cert(f, &cert);
            }
        }
        3 => {
            let json = mutate(&f.list_json, rest);
            if let Ok(list) = serde_json::from_slice::<Revocations>(&json) {
                check_list(f, &list);
            }
        }
        _ => {
            if let Ok(s) = serde_json::from_slice::<Standing>(rest) {
                let again = serde_json::to_vec(&s).expect("a standing encodes");
                let back: Standing = serde_json::from_slice(&again).expect("re-decodes");
                assert_eq!(back, s);
                let _ = s.has_role("cache");
            }
        }
    }
});
