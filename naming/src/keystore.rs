//! The node's keystore for names: the owner key (embedded ledger) and one zone key per name,
//! as hex files with mode 0600 under `<data_dir>/keys/` (directory mode 0700).
//!
//! Writes go to a temporary file that is synced and renamed, so a crash never leaves a
//! half-written key. A rotation writes the new key next to the current one (`NAME.key.new`)
//! before the ledger learns it, and promotes it afterwards; lookups accept either file, matched
//! against the public key the ledger holds, so a crash between the two steps loses nothing.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Name;
use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;

/// Keys of one node.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// Opens (creating) `<data_dir>/keys`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("keys");
        std::fs::create_dir_all(dir.join("zones"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for d in [dir.clone(), dir.join("zones")] {
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("cannot restrict {}", d.display()))?;
            }
        }
        Ok(Self { dir })
    }

    /// The directory holding the keys.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's Ed25519 owner key for the embedded ledger, created on first use.
    pub fn owner_key(&self) -> Result<SigningKey> {
        let path = self.dir.join("owner.key");
        if let Some(k) = read_key(&path)? {
            return Ok(k);
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        write_key(&path, &key.to_bytes())?;
        Ok(key)
    }

    fn zone_path(&self, name: &Name, suffix: &str) -> PathBuf {
        self.dir.join("zones").join(format!("{name}.key{suffix}"))
    }

    /// The current zone key of `name`, if this node holds one.
    pub fn zone_key(&self, name: &Name) -> Result<Option<SigningKey>> {
        read_key(&self.zone_path(name, ""))
    }

    /// The zone key of `name` whose public half is `public` (current or pending rotation).
    /// A pending key that matches is promoted to current.
    pub fn zone_key_matching(&self, name: &Name, public: &[u8; 32]) -> Result<Option<SigningKey>> {
        if let Some(k) = self.zone_key(name)?
            && k.verifying_key().as_bytes() == public
        {
            return Ok(Some(k));
        }
        if let Some(k) = read_key(&self.zone_path(name, ".new"))?
            && k.verifying_key().as_bytes() == public
        {
            self.promote(name)?;
            return Ok(Some(k));
        }
        Ok(None)
    }

    /// Stores `key` as the current zone key of `name`.
    pub fn set_zone_key(&self, name: &Name, key: &SigningKey) -> Result<()> {
        write_key(&self.zone_path(name, ""), &key.to_bytes())
    }

    /// Writes a new key for a rotation, next to the current one.
    pub fn stage_zone_key(&self, name: &Name, key: &SigningKey) -> Result<()> {
        write_key(&self.zone_path(name, ".new"), &key.to_bytes())
    }

    /// Makes the staged key current (the old one is kept as `NAME.key.old`).
    pub fn promote(&self, name: &Name) -> Result<()> {
        let (cur, new, old) = (
            self.zone_path(name, ""),
            self.zone_path(name, ".new"),
            self.zone_path(name, ".old"),
        );
        if cur.exists() {
            std::fs::rename(&cur, &old).context("cannot keep the old zone key")?;
        }
        std::fs::rename(&new, &cur).context("cannot promote the new zone key")?;
        sync_dir(&self.dir.join("zones"))
    }
}

/// Reads a 32-byte hex key; refuses files readable by others.
pub fn read_key(path: &Path) -> Result<Option<SigningKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    let bytes = hex::decode(text.trim())
        .with_context(|| format!("{} is not a hex-encoded key", path.display()))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()))?;
    Ok(Some(SigningKey::from_bytes(&seed)))
}

/// Reads a 32-byte secret in hex (`0x` optional) from a file, for Ethereum account keys.
pub fn read_secret_hex(text: &str, what: &str) -> Result<[u8; 32]> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let bytes = hex::decode(t).with_context(|| format!("{what} is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{what} must be 32 bytes (64 hex digits)"))
}

fn write_key(path: &Path, secret: &[u8; 32]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(format!("{}\n", hex::encode(secret)).as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_rotation_survives() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::open(dir.path()).unwrap();
        let owner = ks.owner_key().unwrap();
        assert_eq!(ks.owner_key().unwrap().to_bytes(), owner.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(ks.dir().join("owner.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let name: Name = "x.proxima".parse().unwrap();
        let k1 = SigningKey::from_bytes(&[1; 32]);
        let k2 = SigningKey::from_bytes(&[2; 32]);
        ks.set_zone_key(&name, &k1).unwrap();
        ks.stage_zone_key(&name, &k2).unwrap();
        // "Crash" before promotion: the ledger already has k2.
        let found = ks
            .zone_key_matching(&name, k2.verifying_key().as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(found.to_bytes(), k2.to_bytes());
        assert_eq!(
            ks.zone_key(&name).unwrap().unwrap().to_bytes(),
            k2.to_bytes()
        );
    }
}
