//! Fuzzes what the embedded ledger takes from the network: replicated log frames (a follower),
//! forwarded owner-signed transactions (the registrar), and sealed records applied from the
//! registrar group's Raft log (a member). Arbitrary bytes never panic, never allocate beyond the
//! frame bound, and are never appended (they carry no valid signatures).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use naming::ed25519_dalek::SigningKey;
use naming::{EmbeddedConfig, EmbeddedLedger, SystemClock};

struct Ledgers {
    rt: tokio::runtime::Runtime,
    registrar: EmbeddedLedger,
    follower: EmbeddedLedger,
    member: EmbeddedLedger,
    _dir: tempfile::TempDir,
}

fn ledgers() -> &'static Ledgers {
    static L: OnceLock<Ledgers> = OnceLock::new();
    L.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let (registrar, _) = EmbeddedLedger::open(
            &dir.path().join("r"),
            key,
            EmbeddedConfig::default(),
            Arc::new(SystemClock),
        )
        .expect("registrar");
        let (follower, _) = EmbeddedLedger::open_follower(
            &dir.path().join("f"),
            public,
            EmbeddedConfig::default(),
            Arc::new(SystemClock),
        )
        .expect("follower");
        let (member, _) = EmbeddedLedger::open_replica(
            &dir.path().join("m"),
            public,
            Some(SigningKey::from_bytes(&[8; 32])),
            EmbeddedConfig::default(),
            Arc::new(SystemClock),
        )
        .expect("member");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        Ledgers {
            rt,
            registrar,
            follower,
            member,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let l = ledgers();
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    l.rt.block_on(async {
        match which % 3 {
            0 => {
                let r = l.follower.append_replicated(rest).await;
                assert!(r.is_err() || l.follower.is_empty(), "appended unsigned frames");
            }
            1 => {
                assert!(l.registrar.submit_signed(rest).await.is_err());
                assert!(l.registrar.is_empty());
            }
            _ => {
                assert!(l.member.apply_sealed(rest.to_vec()).await.is_err());
                assert!(l.member.is_empty());
            }
        }
    });
});
