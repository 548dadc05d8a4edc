//! Ranking candidate peers: the pure rule behind [`crate::Mesh::rank`].
//!
//! The rule, in order:
//! 1. The local node, when it holds the data, comes first (its RTT is 0).
//! 2. Dead and departed members are left out; members we never heard of are ranked last-ish
//!    with an assumed RTT of [`UNKNOWN_RTT_MS`].
//! 3. Expected RTT = the measured RTT of a live connection when there is one (a measurement
//!    beats a prediction), otherwise the coordinate estimate.
//! 4. Score = expected RTT x (1 + load) x (4 if suspect) x (1 + strikes), lowest first, where
//!    strikes are the failures (1 each) and corrupt answers (4 each) the caller reported in the
//!    last [`STANDING_WINDOW`]. So a peer twice as far but idle beats a saturated near one, and
//!    a peer that served corrupt data falls behind peers up to 5x farther for a minute.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::identity::PeerId;
use serde::Serialize;

use crate::membership::MemberState;

/// RTT assumed for a candidate without measurement or coordinate (ms).
pub const UNKNOWN_RTT_MS: f64 = 1000.0;
/// How long a reported failure counts against a peer.
pub const STANDING_WINDOW: Duration = Duration::from_secs(60);
/// Strikes for one failed request.
pub const FAILURE_STRIKES: u32 = 1;
/// Strikes for corrupt data (bad hash, bad signature).
pub const CORRUPT_STRIKES: u32 = 4;
/// Most strike records kept per peer.
const MAX_RECORDS_PER_PEER: usize = 32;
/// Most peers with strike records.
const MAX_PEERS: usize = 4096;

/// Where an expected RTT came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RttSource {
    /// The local node.
    Local,
    /// A live connection's measured RTT (or a probe).
    Measured,
    /// Network coordinates.
    Coordinates,
    /// Nothing known.
    Unknown,
}

/// Everything the rule needs about one candidate.
#[derive(Debug, Clone)]
pub struct CandidateInfo {
    /// The peer.
    pub peer: PeerId,
    /// Whether it is the local node (and holds the data).
    pub is_local: bool,
    /// Its liveness (`None`: not a member we know).
    pub state: Option<MemberState>,
    /// Measured RTT of a live connection (ms).
    pub measured_ms: Option<f64>,
    /// Coordinate estimate (ms).
    pub estimated_ms: Option<f64>,
    /// Advertised load (0..=1).
    pub load: f32,
    /// Current strikes.
    pub strikes: u32,
}

/// One ranked candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    /// The peer.
    pub peer: PeerId,
    /// Expected RTT (ms).
    pub expected_rtt_ms: f64,
    /// Where the expected RTT came from.
    pub source: RttSource,
    /// The score (lower is better).
    pub score: f64,
}

/// Orders candidates by the rule in the module docs; dead or departed ones are dropped.
pub fn rank(candidates: Vec<CandidateInfo>) -> Vec<Ranked> {
    let mut out: Vec<Ranked> = candidates
        .into_iter()
        .filter(|c| !matches!(c.state, Some(MemberState::Dead | MemberState::Left)))
        .map(|c| {
            if c.is_local {
                return Ranked {
                    peer: c.peer,
                    expected_rtt_ms: 0.0,
                    source: RttSource::Local,
                    score: f64::NEG_INFINITY,
                };
            }
            let (rtt, source) = match (c.measured_ms, c.estimated_ms) {
                (Some(m), _) if m.is_finite() => (m, RttSource::Measured),
                (_, Some(e)) if e.is_finite() => (e, RttSource::Coordinates),
                _ => (UNKNOWN_RTT_MS, RttSource::Unknown),
            };
            let load = f64::from(c.load.clamp(0.0, 1.0));
            let health = if c.state == Some(MemberState::Suspect) {
                4.0
            } else {
                1.0
            };
            let score = rtt.max(0.0) * (1.0 + load) * health * (1.0 + f64::from(c.strikes));
            Ranked {
                peer: c.peer,
                expected_rtt_ms: rtt,
                source,
                score,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.score
            .total_cmp(&b.score)
            .then_with(|| a.peer.to_bytes().cmp(&b.peer.to_bytes()))
    });
    out
}

/// Reported failures per peer, expiring after [`STANDING_WINDOW`]. Memory is bounded.
#[derive(Debug, Default)]
pub struct Standing {
    records: HashMap<PeerId, VecDeque<(Instant, u32)>>,
}

impl Standing {
    /// Records `strikes` against `peer` at `now`.
    pub fn strike(&mut self, peer: PeerId, strikes: u32, now: Instant) {
        if !self.records.contains_key(&peer) && self.records.len() >= MAX_PEERS {
            self.expire(now);
            if self.records.len() >= MAX_PEERS {
                return;
            }
        }
        let r = self.records.entry(peer).or_default();
        r.push_back((now, strikes));
        while r.len() > MAX_RECORDS_PER_PEER {
            r.pop_front();
        }
    }

    /// Current strikes of `peer` at `now`.
    pub fn strikes(&self, peer: &PeerId, now: Instant) -> u32 {
        self.records.get(peer).map_or(0, |r| {
            r.iter()
                .filter(|(t, _)| now.saturating_duration_since(*t) < STANDING_WINDOW)
                .map(|(_, s)| *s)
                .sum()
        })
    }

    fn expire(&mut self, now: Instant) {
        self.records.retain(|_, r| {
            r.retain(|(t, _)| now.saturating_duration_since(*t) < STANDING_WINDOW);
            !r.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(measured: Option<f64>, est: Option<f64>) -> CandidateInfo {
        CandidateInfo {
            peer: PeerId::random(),
            is_local: false,
            state: Some(MemberState::Alive),
            measured_ms: measured,
            estimated_ms: est,
            load: 0.0,
            strikes: 0,
        }
    }

    #[test]
    fn local_first_measured_beats_estimate_dead_dropped() {
        let mut local = cand(None, None);
        local.is_local = true;
        let measured_far = cand(Some(80.0), Some(10.0));
        let estimated_near = cand(None, Some(50.0));
        let mut dead = cand(Some(1.0), None);
        dead.state = Some(MemberState::Dead);
        let order = rank(vec![
            measured_far.clone(),
            dead.clone(),
            estimated_near.clone(),
            local.clone(),
        ]);
        let peers: Vec<_> = order.iter().map(|r| r.peer).collect();
        assert_eq!(
            peers,
            vec![local.peer, estimated_near.peer, measured_far.peer]
        );
        assert_eq!(order[2].source, RttSource::Measured);
        assert_eq!(order[2].expected_rtt_ms, 80.0);
    }

    #[test]
    fn load_suspicion_and_strikes_demote() {
        let near_busy = CandidateInfo {
            load: 1.0,
            ..cand(Some(10.0), None)
        };
        let far_idle = cand(Some(15.0), None);
        let order = rank(vec![near_busy.clone(), far_idle.clone()]);
        assert_eq!(order[0].peer, far_idle.peer);

        let suspect = CandidateInfo {
            state: Some(MemberState::Suspect),
            ..cand(Some(10.0), None)
        };
        let struck = CandidateInfo {
            strikes: CORRUPT_STRIKES,
            ..cand(Some(10.0), None)
        };
        let plain = cand(Some(30.0), None);
        let order = rank(vec![suspect.clone(), struck.clone(), plain.clone()]);
        assert_eq!(order[0].peer, plain.peer);
    }

    #[test]
    fn strikes_expire_and_memory_is_bounded() {
        let mut s = Standing::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        s.strike(p, FAILURE_STRIKES, t0);
        s.strike(p, CORRUPT_STRIKES, t0);
        assert_eq!(s.strikes(&p, t0), 5);
        assert_eq!(s.strikes(&p, t0 + STANDING_WINDOW), 0);
        for _ in 0..100 {
            s.strike(p, 1, t0);
        }
        assert!(s.records[&p].len() <= MAX_RECORDS_PER_PEER);
    }
}
