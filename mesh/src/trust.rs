//! Membership certificates: who may hold others' data or decide for the network.
//!
//! A *cluster* is an Ed25519 key pair. Its public half (the *anchor*) is what every member
//! believes; its secret half signs [`Certificate`]s: `(cluster, peer, roles, not_before,
//! not_after)`. A member carries its certificate in its SWIM metadata, and every receiver
//! checks it against its own anchor, for the peer the QUIC connection authenticated, and
//! against the cluster's [`Revocations`] (a signed list that spreads in the same metadata).
//! Roles are opaque to the mesh (`cache`, `registrar`, ...): services ask
//! [`crate::MemberView::has_role`].
//!
//! Verifiable services (zones, blobs) need no certificate: their data carries its own proof.
//!
//! The wire form is JSON with hex fields, bounded by [`MAX_ROLES`], [`MAX_ROLE_LEN`] and
//! [`MAX_REVOKED`] before anything is verified; the signed bytes are a fixed binary layout
//! ([`Certificate::signed_bytes`]), never the JSON.

use std::time::{SystemTime, UNIX_EPOCH};

use libp2p::identity::ed25519;
use serde::{Deserialize, Serialize};

use crate::PeerId;

/// Most roles one certificate grants.
pub const MAX_ROLES: usize = 8;
/// Longest role name.
pub const MAX_ROLE_LEN: usize = 32;
/// Most entries in a revocation list. An entry is dropped once the certificate it revokes has
/// expired, so the list stays short when certificates are short-lived (the default is 30 days).
pub const MAX_REVOKED: usize = 64;
/// Role: owns cache slots, receives replicas and proxied sessions.
pub const ROLE_CACHE: &str = "cache";
/// Role: may be (or become) the registrar of the embedded ledger.
pub const ROLE_REGISTRAR: &str = "registrar";

const CERT_DOMAIN: &[u8] = b"proxima/cert/1\0";
const REVOKE_DOMAIN: &[u8] = b"proxima/revoked/1\0";

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a certificate or a revocation list is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Signed by another cluster than ours.
    #[error("signed by another cluster")]
    OtherCluster,
    /// Issued for another peer than the one presenting it.
    #[error("issued for another peer")]
    OtherPeer,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Outside its validity period.
    #[error("expired or not yet valid")]
    Expired,
    /// On the cluster's revocation list.
    #[error("revoked")]
    Revoked,
    /// Too many or too long fields, or bad hex.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// The secret key of a cluster.
#[derive(Clone)]
pub struct ClusterKey(ed25519::Keypair);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey({})", hex::encode(self.public()))
    }
}

impl ClusterKey {
    /// A new random cluster key.
    pub fn generate() -> Self {
        Self(ed25519::Keypair::generate())
    }

    /// The key from its 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut seed = seed;
        let secret = ed25519::SecretKey::try_from_bytes(&mut seed)
            .expect("any 32 bytes are an ed25519 secret key");
        Self(ed25519::Keypair::from(secret))
    }

    /// The 32-byte secret seed (to store it).
    pub fn seed(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.secret().as_ref());
        out
    }

    /// The anchor: the public key every member checks certificates against.
    pub fn public(&self) -> [u8; 32] {
        self.0.public().to_bytes()
    }

    /// Signs a certificate for `peer` with `roles`, valid from now for `secs` seconds.
    pub fn certify(&self, peer: PeerId, roles: &[String], secs: u64) -> Certificate {
        let now = unix_now();
        let mut roles: Vec<String> = roles.to_vec();
        roles.sort();
        roles.dedup();
        let mut cert = Certificate {
            cluster: hex::encode(self.public()),
            peer: peer.to_string(),
            roles,
            // A minute of slack for clocks that disagree a little.
            not_before: now.saturating_sub(60),
            not_after: now.saturating_add(secs),
            sig: String::new(),
        };
        let bytes = cert.signed_bytes().unwrap_or_default();
        cert.sig = hex::encode(self.0.sign(&bytes));
        cert
    }

    /// Signs a revocation list with `entries` (peer, the revoked certificate's `not_after`),
    /// dropping those already expired. `version` must grow with every new list.
    pub fn revoke(&self, version: u64, entries: &[(String, u64)]) -> Revocations {
        let now = unix_now();
        let mut entries: Vec<(String, u64)> = entries
            .iter()
            .filter(|(_, until)| *until > now)
            .cloned()
            .collect();
        entries.sort();
        entries.dedup_by(|a, b| a.0 == b.0);
        entries.truncate(MAX_REVOKED);
        let mut list = Revocations {
            cluster: hex::encode(self.public()),
            version,
            entries,
            sig: String::new(),
        };
        let bytes = list.signed_bytes();
        list.sig = hex::encode(self.0.sign(&bytes));
        list
    }
}

/// A membership certificate: the cluster's signature over a peer's roles and validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The cluster's public key (hex).
    pub cluster: String,
    /// The certified peer id.
    pub peer: String,
    /// Granted roles, sorted.
    pub roles: Vec<String>,
    /// Valid from (Unix seconds).
    pub not_before: u64,
    /// Valid until (Unix seconds).
    pub not_after: u64,
    /// Ed25519 signature by the cluster key over [`Certificate::signed_bytes`] (hex).
    pub sig: String,
}

impl Certificate {
    /// Whether the sizes are within bounds (checked before anything else).
    pub fn is_bounded(&self) -> bool {
        self.cluster.len() == 64
            && self.peer.len() <= 128
            && self.roles.len() <= MAX_ROLES
            && self
                .roles
                .iter()
                .all(|r| !r.is_empty() && r.len() <= MAX_ROLE_LEN)
            && self.sig.len() == 128
    }

    /// The bytes the cluster key signs.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, TrustError> {
        if self.roles.len() > MAX_ROLES || self.peer.len() > 128 {
            return Err(TrustError::Malformed(
                "too many roles or too long a peer id",
            ));
        }
        let cluster = decode32(&self.cluster)?;
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(CERT_DOMAIN);
        out.extend_from_slice(&cluster);
        out.push(self.peer.len() as u8);
        out.extend_from_slice(self.peer.as_bytes());
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out.push(self.roles.len() as u8);
        for r in &self.roles {
            if r.len() > MAX_ROLE_LEN {
                return Err(TrustError::Malformed("role too long"));
            }
            out.push(r.len() as u8);
            out.extend_from_slice(r.as_bytes());
        }
        Ok(out)
    }

    /// Checks the certificate for `peer` against `anchor` at time `now` (Unix seconds),
    /// without the revocation list.
    pub fn verify(&self, anchor: &[u8; 32], peer: &PeerId, now: u64) -> Result<(), TrustError> {
        if !self.is_bounded() {
            return Err(TrustError::Malformed("field sizes"));
        }
        if decode32(&self.cluster)? != *anchor {
            return Err(TrustError::OtherCluster);
        }
        if self.peer != peer.to_string() {
            return Err(TrustError::OtherPeer);
        }
        verify_sig(anchor, &self.signed_bytes()?, &self.sig)?;
        if now < self.not_before || now >= self.not_after {
            return Err(TrustError::Expired);
        }
        Ok(())
    }

    /// Whether it grants `role`.
    pub fn grants(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The cluster's public key it names (unchecked).
    pub fn cluster_key(&self) -> Result<[u8; 32], TrustError> {
        decode32(&self.cluster)
    }
}

/// The cluster's signed list of revoked peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocations {
    /// The cluster's public key (hex).
    pub cluster: String,
    /// Grows with every new list; the highest valid one wins.
    pub version: u64,
    /// Revoked peer ids, each with the `not_after` of its revoked certificate (after which
    /// the entry is no longer needed).
    pub entries: Vec<(String, u64)>,
    /// Ed25519 signature by the cluster key (hex).
    pub sig: String,
}

impl Revocations {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 64);
        out.extend_from_slice(REVOKE_DOMAIN);
        out.extend_from_slice(self.cluster.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for (peer, until) in &self.entries {
            out.push(peer.len().min(255) as u8);
            out.extend_from_slice(peer.as_bytes());
            out.extend_from_slice(&until.to_be_bytes());
        }
        out
    }

    /// Checks the list's bounds and signature against `anchor`.
    pub fn verify(&self, anchor: &[u8; 32]) -> Result<(), TrustError> {
        if self.entries.len() > MAX_REVOKED
            || self.entries.iter().any(|(p, _)| p.len() > 128)
            || self.sig.len() != 128
        {
            return Err(TrustError::Malformed("revocation list too large"));
        }
        if decode32(&self.cluster)? != *anchor {
            return Err(TrustError::OtherCluster);
        }
        verify_sig(anchor, &self.signed_bytes(), &self.sig)
    }

    /// Whether `peer` is on the list.
    pub fn contains(&self, peer: &PeerId) -> bool {
        let p = peer.to_string();
        self.entries.iter().any(|(e, _)| *e == p)
    }
}

fn decode32(s: &str) -> Result<[u8; 32], TrustError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| TrustError::Malformed("bad hex key"))?;
    Ok(out)
}

fn verify_sig(anchor: &[u8; 32], msg: &[u8], sig_hex: &str) -> Result<(), TrustError> {
    let mut sig = [0u8; 64];
    hex::decode_to_slice(sig_hex, &mut sig).map_err(|_| TrustError::Malformed("bad hex sig"))?;
    let key = ed25519::PublicKey::try_from_bytes(anchor)
        .map_err(|_| TrustError::Malformed("bad cluster key"))?;
    if key.verify(msg, &sig) {
        Ok(())
    } else {
        Err(TrustError::BadSignature)
    }
}

/// What this node believes: the anchor, whether the cluster is open (a lab that certifies
/// nobody and believes everybody), and the newest revocation list seen.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// The cluster's public key; `None`: no cluster known yet (nobody is certified).
    pub anchor: Option<[u8; 32]>,
    /// `[cluster] open = true`: every member holds every role.
    pub open: bool,
}

/// How far a member is trusted, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase", tag = "trust", content = "roles")]
pub enum Standing {
    /// No valid certificate: takes part in verifiable services only.
    #[default]
    Uncertified,
    /// A valid certificate granting these roles.
    Certified(Vec<String>),
    /// The cluster is open (a lab): every role.
    Open,
}

impl Standing {
    /// Whether the member holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        match self {
            Standing::Open => true,
            Standing::Certified(roles) => roles.iter().any(|r| r == role),
            Standing::Uncertified => false,
        }
    }
}

/// The standing of `peer` presenting `cert` under `policy` and `revoked` at `now`.
pub fn standing_of(
    policy: &TrustPolicy,
    revoked: Option<&Revocations>,
    peer: &PeerId,
    cert: Option<&Certificate>,
    now: u64,
) -> Result<Standing, TrustError> {
    if policy.open {
        return Ok(Standing::Open);
    }
    let (Some(anchor), Some(cert)) = (policy.anchor.as_ref(), cert) else {
        return Ok(Standing::Uncertified);
    };
    cert.verify(anchor, peer, now)?;
    if revoked.is_some_and(|r| r.contains(peer)) {
        return Err(TrustError::Revoked);
    }
    Ok(Standing::Certified(cert.roles.clone()))
}

/// Leading zero bits of the identity hash of `peer`: the proof of work an identity carries
/// (`[mesh] identity_work_bits`). Each bit doubles the expected CPU time to mint an identity,
/// so a Sybil attacker pays per identity while an honest node pays once.
pub fn identity_work(peer: &PeerId) -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(b"proxima/identity-work/1\0");
    h.update(&peer.to_bytes());
    let digest = h.finalize();
    let mut bits = 0;
    for b in digest.as_bytes() {
        if *b == 0 {
            bits += 8;
        } else {
            bits += b.leading_zeros();
            break;
        }
    }
    bits
}

/// A 32-byte Ed25519 seed whose identity carries at least `bits` of work (tries random seeds;
/// expected 2^bits tries, about 1 s at 16 bits on one core).
pub fn mint_identity(bits: u32) -> [u8; 32] {
    loop {
        let seed: [u8; 32] = rand::random();
        if bits == 0 || identity_work(&crate::keypair_from_seed(seed).public().to_peer_id()) >= bits
        {
            return seed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn a_certificate_verifies_only_for_its_peer_cluster_and_time() {
        let k = ClusterKey::generate();
        let p = peer();
        let c = k.certify(p, &["cache".into()], 3600);
        let now = unix_now();
        assert_eq!(c.verify(&k.public(), &p, now), Ok(()));
        assert_eq!(
            c.verify(&k.public(), &peer(), now),
            Err(TrustError::OtherPeer)
        );
        let other = ClusterKey::generate();
        assert_eq!(
            c.verify(&other.public(), &p, now),
            Err(TrustError::OtherCluster)
        );
        assert_eq!(
            c.verify(&k.public(), &p, now + 7200),
            Err(TrustError::Expired)
        );
        let mut forged = c.clone();
        forged.roles.push("registrar".into());
        assert_eq!(
            forged.verify(&k.public(), &p, now),
            Err(TrustError::BadSignature)
        );
        let mut longer = c.clone();
        longer.not_after += 1;
        assert_eq!(
            longer.verify(&k.public(), &p, now),
            Err(TrustError::BadSignature)
        );
    }

    #[test]
    fn revocation_lists_verify_and_revoke() {
        let k = ClusterKey::generate();
        let p = peer();
        let c = k.certify(p, &["cache".into()], 3600);
        let list = k.revoke(1, &[(p.to_string(), c.not_after)]);
        assert_eq!(list.verify(&k.public()), Ok(()));
        let policy = TrustPolicy {
            anchor: Some(k.public()),
            open: false,
        };
        assert_eq!(
            standing_of(&policy, Some(&list), &p, Some(&c), unix_now()),
            Err(TrustError::Revoked)
        );
        let mut forged = list.clone();
        forged.entries.clear();
        assert_eq!(forged.verify(&k.public()), Err(TrustError::BadSignature));
        // Expired entries are dropped when the list is signed.
        let old = k.revoke(2, &[(p.to_string(), 1)]);
        assert!(old.entries.is_empty());
    }

    #[test]
    fn minted_identities_carry_their_work() {
        let seed = mint_identity(8);
        let peer = crate::keypair_from_seed(seed).public().to_peer_id();
        assert!(identity_work(&peer) >= 8);
    }

    #[test]
    fn the_seed_round_trips() {
        let k = ClusterKey::generate();
        assert_eq!(ClusterKey::from_seed(k.seed()).public(), k.public());
    }
}
