//! Property tests of the canonical zone encoding: random valid zones round-trip, and every
//! single-bit flip of a signed encoding is refused (by the decoder or by the signature check).

use std::net::{Ipv4Addr, Ipv6Addr};

use naming::ed25519_dalek::SigningKey;
use naming::{Name, Record, RecordData, SignedZone, Zone};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?".prop_filter("a valid label", |l| Name::parse(l).is_ok())
}

fn zone_name() -> impl Strategy<Value = Name> {
    label().prop_map(|l| Name::parse(&format!("{l}.proxima")).unwrap())
}

fn any_name() -> impl Strategy<Value = Name> {
    prop::collection::vec(label(), 1..4).prop_map(|ls| Name::parse(&ls.join(".")).unwrap())
}

fn data() -> impl Strategy<Value = RecordData> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| RecordData::A(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| RecordData::Aaaa(Ipv6Addr::from(b))),
        any_name().prop_map(RecordData::Cname),
        prop::collection::vec("[ -~]{0,40}", 1..4).prop_map(RecordData::Txt),
        (any::<u16>(), any_name()).prop_map(|(preference, exchange)| RecordData::Mx {
            preference,
            exchange
        }),
        (any::<u8>(), "[a-z]{1,10}", "[ -~]{0,30}")
            .prop_map(|(flags, tag, value)| RecordData::Caa { flags, tag, value }),
        (any::<u16>(), any::<u16>(), any::<u16>(), any_name()).prop_map(
            |(priority, weight, port, target)| RecordData::Srv {
                priority,
                weight,
                port,
                target
            }
        ),
        (
            any::<u16>(),
            any_name(),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(priority, target, params)| RecordData::Https {
                priority,
                target,
                params
            }),
        any::<[u8; 32]>().prop_map(|manifest| RecordData::Site { manifest }),
    ]
}

fn zone() -> impl Strategy<Value = Zone> {
    (
        zone_name(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec((prop::option::of(label()), any::<u32>(), data()), 0..8),
    )
        .prop_map(|(name, sequence, timestamp, recs)| {
            let records = recs
                .into_iter()
                .map(|(sub, ttl, data)| Record {
                    owner: match sub {
                        Some(l) => Name::parse(&format!("{l}.{name}")).unwrap(),
                        None => name.clone(),
                    },
                    ttl,
                    data,
                })
                .collect();
            Zone {
                name,
                sequence,
                timestamp,
                records,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/zone_props.proptest-regressions"
        )))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn round_trips(z in zone(), seed in any::<[u8; 32]>()) {
        let key = SigningKey::from_bytes(&seed);
        let signed = SignedZone::sign(z, &key).unwrap();
        let bytes = signed.encode();
        let back = SignedZone::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &signed);
        prop_assert!(back.verify().is_ok());
        prop_assert_eq!(back.encode(), bytes);
    }

    // Each case checks every bit of the encoding (thousands of signature checks).
    #[test]
    fn every_single_bit_flip_is_refused(z in zone(), seed in any::<[u8; 32]>()) {
        prop_assume!(z.records.len() <= 4);
        let key = SigningKey::from_bytes(&seed);
        let bytes = SignedZone::sign(z, &key).unwrap().encode();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            if let Ok(decoded) = SignedZone::decode(&flipped) {
                prop_assert!(decoded.verify().is_err(), "bit {} flip verified", bit);
            }
        }
    }

    #[test]
    fn decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedZone::decode(&bytes);
        let mut v = vec![1u8];
        v.extend_from_slice(&bytes);
        let _ = SignedZone::decode(&v);
    }
}
