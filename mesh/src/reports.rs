//! Shared standing (the seeds' PowerTrust, simplified): a node that catches a peer serving
//! corrupt data (a blob that fails verification, a forged zone) says so in a report signed with
//! its node key and gossiped on [`REPORT_TOPIC`]. Receivers weigh each report by the reporter's
//! own standing before it counts against the accused in their directory.
//!
//! The model and its limits:
//! - a node's own observations count fully ([`crate::directory::CORRUPT_STRIKES`]); a report
//!   from a member certified by the cluster counts half of that ([`CERTIFIED_WEIGHT`]), one from
//!   an uncertified identity counts only when identities cost work (`[mesh]
//!   identity_work_bits`, [`WORKED_WEIGHT`]) and nothing otherwise: fresh keys are free, so their
//!   word is worth nothing;
//! - a reporter this node has itself caught (strikes at or above a corrupt answer's) has no
//!   voice;
//! - one report per (reporter, accused) per [`REPORT_EVERY`], and reports older or newer than
//!   [`MAX_AGE`] are dropped (no replay of old grievances);
//! - shared strikes against one peer are capped at [`MAX_SHARED`] within the standing window, so
//!   colluding members can demote an honest node in the ranking but never outweigh what this
//!   node measures itself (RTT and its own strikes still order the candidates).
//!
//! Reports only re-rank: no node is excluded on others' word.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::identity::{Keypair, PublicKey};
use serde::{Deserialize, Serialize};

use crate::PeerId;

/// Gossip topic of standing reports.
pub const REPORT_TOPIC: &str = "proxima/standing/1";
/// Largest report accepted.
pub const MAX_REPORT: usize = 1024;
/// Strikes a certified member's report is worth.
pub const CERTIFIED_WEIGHT: u32 = 2;
/// Strikes an uncertified identity's report is worth when identities carry work.
pub const WORKED_WEIGHT: u32 = 1;
/// At most one report per (reporter, accused) this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Reports dated further than this from our clock are dropped.
pub const MAX_AGE: u64 = 300;
/// Most shared strikes against one peer within the standing window.
pub const MAX_SHARED: u32 = 8;

const DOMAIN: &[u8] = b"proxima/standing-report/1\0";

/// A signed statement: `reporter` caught `accused` serving corrupt data at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Who caught it (peer id).
    pub reporter: String,
    /// Who served corrupt data (peer id).
    pub accused: String,
    /// What was caught (`corrupt`).
    pub kind: String,
    /// When (Unix seconds).
    pub at: u64,
    /// The reporter's node-key signature (hex).
    pub sig: String,
}

impl Report {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(DOMAIN);
        for part in [&self.reporter, &self.accused, &self.kind] {
            out.push(part.len().min(255) as u8);
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&self.at.to_be_bytes());
        out
    }

    /// A report by the holder of `key` against `accused`, signed now.
    pub fn sign(key: &Keypair, accused: &PeerId, kind: &str) -> Option<Self> {
        let mut r = Self {
            reporter: key.public().to_peer_id().to_string(),
            accused: accused.to_string(),
            kind: kind.to_owned(),
            at: crate::trust::unix_now(),
            sig: String::new(),
        };
        r.sig = hex::encode(key.sign(&r.signed_bytes()).ok()?);
        Some(r)
    }

    /// Decodes and checks a report: bounded, well-formed, signed by its reporter, dated near
    /// `now`, not self-accusing. Returns (reporter, accused).
    pub fn verify(bytes: &[u8], now: u64) -> Result<(Self, PeerId, PeerId), &'static str> {
        if bytes.len() > MAX_REPORT {
            return Err("too large");
        }
        let r: Report = serde_json::from_slice(bytes).map_err(|_| "malformed")?;
        if r.kind.len() > 16 || r.sig.len() > 256 {
            return Err("malformed");
        }
        let reporter: PeerId = r.reporter.parse().map_err(|_| "bad reporter")?;
        let accused: PeerId = r.accused.parse().map_err(|_| "bad accused")?;
        if reporter == accused {
            return Err("self-accusing");
        }
        if r.at.abs_diff(now) > MAX_AGE {
            return Err("stale");
        }
        let key_bytes = crate::peer_ed25519_key(&reporter).ok_or("reporter has no key")?;
        let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(&key_bytes)
            .map_err(|_| "reporter has no key")?;
        let sig = hex::decode(&r.sig).map_err(|_| "malformed")?;
        if !PublicKey::from(key).verify(&r.signed_bytes(), &sig) {
            return Err("bad signature");
        }
        Ok((r, reporter, accused))
    }
}

/// What a receiver remembers to rate-limit and cap reports.
#[derive(Debug, Default)]
pub struct Ledger {
    last: HashMap<(PeerId, PeerId), Instant>,
    shared: HashMap<PeerId, Vec<(Instant, u32)>>,
}

/// Most (reporter, accused) pairs remembered.
const MAX_PAIRS: usize = 16_384;

impl Ledger {
    /// Strikes to add against `accused` for a report by `reporter` worth `weight`, after the
    /// rate limit and the cap (0: nothing).
    pub fn admit(
        &mut self,
        reporter: PeerId,
        accused: PeerId,
        weight: u32,
        window: Duration,
        now: Instant,
    ) -> u32 {
        if weight == 0 {
            return 0;
        }
        if self.last.len() >= MAX_PAIRS {
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < REPORT_EVERY);
            self.shared.retain(|_, v| {
                v.retain(|(t, _)| now.saturating_duration_since(*t) < window);
                !v.is_empty()
            });
        }
        if let Some(t) = self.last.get(&(reporter, accused))
            && now.saturating_duration_since(*t) < REPORT_EVERY
        {
            return 0;
        }
        self.last.insert((reporter, accused), now);
        let v = self.shared.entry(accused).or_default();
        v.retain(|(t, _)| now.saturating_duration_since(*t) < window);
        let so_far: u32 = v.iter().map(|(_, s)| s).sum();
        let add = weight.min(MAX_SHARED.saturating_sub(so_far));
        if add > 0 {
            v.push((now, add));
        }
        add
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_verify_and_forgeries_do_not() {
        let key = Keypair::generate_ed25519();
        let accused = Keypair::generate_ed25519().public().to_peer_id();
        let r = Report::sign(&key, &accused, "corrupt").unwrap();
        let bytes = serde_json::to_vec(&r).unwrap();
        let now = crate::trust::unix_now();
        assert!(Report::verify(&bytes, now).is_ok());
        assert_eq!(Report::verify(&bytes, now + 3600).unwrap_err(), "stale");
        let mut forged = r.clone();
        forged.accused = Keypair::generate_ed25519()
            .public()
            .to_peer_id()
            .to_string();
        let bytes = serde_json::to_vec(&forged).unwrap();
        assert_eq!(Report::verify(&bytes, now).unwrap_err(), "bad signature");
        assert!(Report::verify(&[b'{'; 2000], now).is_err());
    }

    #[test]
    fn reports_are_rate_limited_and_capped() {
        let mut l = Ledger::default();
        let p = |_: u8| Keypair::generate_ed25519().public().to_peer_id();
        let accused = p(0);
        let window = Duration::from_secs(600);
        let t0 = Instant::now();
        let a = p(1);
        assert_eq!(l.admit(a, accused, 2, window, t0), 2);
        assert_eq!(l.admit(a, accused, 2, window, t0), 0, "one per minute");
        let added: u32 = (0..10).map(|_| l.admit(p(2), accused, 2, window, t0)).sum();
        assert_eq!(added, MAX_SHARED - 2, "capped");
        assert_eq!(
            l.admit(p(3), accused, 0, window, t0),
            0,
            "no weight, no strike"
        );
    }
}
