//! The node's Ed25519 identity: created on first start, kept in the data directory with file
//! mode 0600. The same key is the libp2p `PeerId` and authenticates the QUIC data plane.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;

/// File name of the node key inside the data directory.
pub const NODE_KEY_FILE: &str = "node.key";

/// The node's long-term key pair.
#[derive(Clone)]
pub struct NodeIdentity {
    signing: SigningKey,
    keypair: libp2p_identity::Keypair,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Loads the key from `dir/node.key`, creating it (mode 0600) if absent.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        Self::load_or_create_with_work(dir, 0)
    }

    /// [`NodeIdentity::load_or_create`], a new key carrying `work_bits` of identity work
    /// (`mesh::trust::identity_work`); an existing key with less is refused with the reason.
    pub fn load_or_create_with_work(dir: &Path, work_bits: u32) -> Result<Self> {
        let id = Self::load_or_create_inner(dir, work_bits)?;
        let peer = mesh::keypair_from_seed(id.signing_key().to_bytes())
            .public()
            .to_peer_id();
        let work = mesh::trust::identity_work(&peer);
        if work < work_bits {
            anyhow::bail!(
                "{} carries {work} bits of identity work, [mesh] identity_work_bits asks for \
                 {work_bits}: move the key away to mint a new identity",
                dir.join(NODE_KEY_FILE).display()
            );
        }
        Ok(id)
    }

    fn load_or_create_inner(dir: &Path, work_bits: u32) -> Result<Self> {
        let path = dir.join(NODE_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                check_private(&path)?;
                let bytes = hex::decode(text.trim())
                    .with_context(|| format!("{} is not a hex-encoded key", path.display()))?;
                let seed: [u8; 32] = bytes.try_into().map_err(|_| {
                    anyhow::anyhow!("{} must hold a 32-byte Ed25519 seed", path.display())
                })?;
                Ok(Self::from_seed(seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signing = if work_bits == 0 {
                    SigningKey::generate(&mut rand::rngs::OsRng)
                } else {
                    tracing::info!(work_bits, "minting a node identity with identity work");
                    SigningKey::from_bytes(&mesh::trust::mint_identity(work_bits))
                };
                let mut opts = OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                // Write to a temporary name and rename so a crash never leaves a half key.
                let tmp = dir.join(format!("{NODE_KEY_FILE}.tmp"));
                let _ = std::fs::remove_file(&tmp);
                let mut file = opts
                    .open(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                writeln!(file, "{}", hex::encode(signing.to_bytes()))?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                Ok(Self::from_seed(signing.to_bytes()))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Builds the identity from a 32-byte Ed25519 seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let mut seed_copy = seed;
        let keypair = libp2p_identity::Keypair::ed25519_from_bytes(&mut seed_copy)
            .expect("a 32-byte seed is always a valid ed25519 secret key");
        Self { signing, keypair }
    }

    /// The libp2p peer id derived from the public key.
    pub fn peer_id(&self) -> libp2p_identity::PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The same key as a libp2p keypair.
    pub fn keypair(&self) -> &libp2p_identity::Keypair {
        &self.keypair
    }
}

fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{} has mode {:o}; a private key must be readable by its owner only (chmod 600)",
                path.display(),
                mode
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_and_reloaded_identically() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeIdentity::load_or_create(dir.path()).unwrap();
        let b = NodeIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.peer_id(), b.peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(NODE_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
