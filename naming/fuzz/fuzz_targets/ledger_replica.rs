//! Fuzzes what the embedded ledger takes from the network: replicated log frames (a follower)
//! and forwarded owner-signed transactions (the registrar). Arbitrary bytes never panic, never
//! allocate beyond the frame bound, and are never appended (they carry no valid signatures).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use naming::ed25519_dalek::SigningKey;
use naming::{EmbeddedConfig, EmbeddedLedger, SystemClock};

struct Ledgers {
    rt: tokio::runtime::Runtime,
    registrar: EmbeddedLedger,
    follower: EmbeddedLedger,
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        Ledgers {
            rt,
            registrar,
            follower,
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
        if which % 2 == 0 {
            let r = l.follower.append_replicated(rest).await;
            assert!(r.is_err() || l.follower.is_empty(), "appended unsigned frames");
        } else {
            assert!(l.registrar.submit_signed(rest).await.is_err());
            assert!(l.registrar.is_empty());
        }
    });
});
