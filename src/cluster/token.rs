//! Join tokens: `proxima cluster token` prints one, `proxima node --join-token` redeems it.
//!
//! A token names the cluster (its public key: the joining node believes that key and no
//! other, so whoever answers cannot swap in their own cluster), the issuer (its peer id: the
//! node to redeem it with, authenticated by the QUIC handshake) and a random one-time secret.
//! Text form: `pxj1` followed by lowercase hex of `cluster (32) || secret (16) || issuer`.

use anyhow::{Result, bail};
use mesh::PeerId;

const PREFIX: &str = "pxj1";
/// Longest token accepted (a peer id is under 64 bytes).
const MAX_LEN: usize = 4 + 2 * (32 + 16 + 64);

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The cluster public key.
    pub cluster: [u8; 32],
    /// The node that redeems it.
    pub issuer: PeerId,
    /// The one-time secret.
    pub secret: [u8; 16],
}

impl JoinToken {
    /// Parses the text form, bounded before decoding.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() > MAX_LEN {
            bail!("join token too long");
        }
        let Some(body) = text.strip_prefix(PREFIX) else {
            bail!("not a join token (expected it to start with {PREFIX})");
        };
        let bytes = hex::decode(body).map_err(|_| anyhow::anyhow!("join token is not hex"))?;
        if bytes.len() < 48 + 2 {
            bail!("join token too short");
        }
        let mut cluster = [0u8; 32];
        cluster.copy_from_slice(&bytes[..32]);
        let mut secret = [0u8; 16];
        secret.copy_from_slice(&bytes[32..48]);
        let issuer = PeerId::from_bytes(&bytes[48..])
            .map_err(|_| anyhow::anyhow!("join token names no valid issuer"))?;
        Ok(Self {
            cluster,
            issuer,
            secret,
        })
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = Vec::with_capacity(96);
        bytes.extend_from_slice(&self.cluster);
        bytes.extend_from_slice(&self.secret);
        bytes.extend_from_slice(&self.issuer.to_bytes());
        write!(f, "{PREFIX}{}", hex::encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_garbage_is_refused() {
        let t = JoinToken {
            cluster: [7; 32],
            issuer: mesh::keypair_from_seed([3; 32]).public().to_peer_id(),
            secret: [9; 16],
        };
        assert_eq!(JoinToken::parse(&t.to_string()).unwrap(), t);
        for bad in ["", "pxj1", "pxj1zz", "abc", &"pxj1".repeat(100)] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
        let mut s = t.to_string();
        s.truncate(s.len() - 4);
        assert!(JoinToken::parse(&s).is_err());
    }
}
