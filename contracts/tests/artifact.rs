//! The committed artifact matches the Solidity source.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fast check that runs everywhere: the artifact records the SHA-256 of the source it was
/// compiled from.
#[test]
fn artifact_matches_source_hash() {
    use sha2::{Digest, Sha256};
    let artifact: serde_json::Value = serde_json::from_str(contracts::ARTIFACT_JSON).unwrap();
    let recorded = artifact["sourceSha256"].as_str().expect("sourceSha256");
    let actual = hex::encode(Sha256::digest(contracts::SOURCE.as_bytes()));
    assert_eq!(
        recorded, actual,
        "contracts/artifacts/NameRegistry.json is stale: run contracts/scripts/build-artifact"
    );
    assert!(
        artifact["bytecode"]
            .as_str()
            .is_some_and(|b| b.starts_with("0x6"))
    );
}

/// Full check: recompiling with the pinned solcjs gives byte-identical output.
#[test]
fn artifact_is_fresh() {
    let solcjs = root().join("../tools/node_modules/.bin/solcjs");
    if !solcjs.exists() && which::which("solcjs").is_err() {
        panic!("solcjs not found: run scripts/install-deps");
    }
    let out = Command::new(root().join("scripts/build-artifact"))
        .arg("--check")
        .output()
        .expect("run build-artifact");
    assert!(
        out.status.success(),
        "stale artifact: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
