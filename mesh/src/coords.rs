//! Network coordinates: Vivaldi with height vectors, the production refinements (latency filter,
//! adjustment term, gravity) and the Pharos two-level refinement.
//!
//! Pure and clock-free: callers feed `(peer, peer's coordinate, measured RTT)` samples and read
//! estimates. Every RTT in this module is in **milliseconds**.
//!
//! * **Vivaldi** (Dabek et al., SIGCOMM 2004): each node is a point in a Euclidean space plus a
//!   non-negative *height* (the access-link delay every path to it pays). A sample moves the node
//!   along the spring between it and the peer by a step weighted by the two nodes' error estimates.
//! * **Latency filter** (Ledlie et al., "Network coordinates in the wild", NSDI 2007): the RTT used
//!   for a peer is the median of its last few samples, so one delayed packet does not move a node.
//! * **Adjustment term** (Serf / Consul): every node keeps the mean residual
//!   `rtt - distance` of its recent samples; estimates add both nodes' terms. It absorbs the
//!   non-Euclidean part of a node's links that the space cannot express.
//! * **Gravity** (Serf): a weak pull toward the origin so the whole system cannot drift away.
//! * **Pharos** (Chen et al., 2009): a second, *local* coordinate trained only on short links; an
//!   estimate for a pair whose global estimate is short uses the local coordinates, which spend
//!   their whole space on the neighbourhood instead of the planet.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// Largest dimensionality accepted from a peer (a bound on what gossip may make us allocate).
pub const MAX_DIMENSIONS: usize = 16;

/// Tuning of one Vivaldi coordinate system.
#[derive(Debug, Clone, PartialEq)]
pub struct VivaldiConfig {
    /// Euclidean dimensions (the height comes on top).
    pub dimensions: usize,
    /// Error-estimate smoothing (`c_e` in the paper).
    pub ce: f64,
    /// Step size (`c_c` in the paper).
    pub cc: f64,
    /// Upper bound and starting value of the error estimate.
    pub error_max: f64,
    /// Smallest height (ms): keeps a node from collapsing onto the origin plane.
    pub height_min: f64,
    /// Samples per peer the latency filter takes the median of (1 disables the filter).
    pub latency_filter_size: usize,
    /// Recent residuals averaged into the adjustment term (0 disables it).
    pub adjustment_window: usize,
    /// Gravity radius in ms (the pull is `(|x| / rho)^2`); `None` disables gravity.
    pub gravity_rho: Option<f64>,
    /// Peers the latency filter remembers before it forgets one.
    pub max_tracked_peers: usize,
}

impl VivaldiConfig {
    /// Proxima's production settings.
    pub fn proxima() -> Self {
        Self {
            dimensions: 8,
            ce: 0.25,
            cc: 0.25,
            error_max: 1.5,
            height_min: 0.01,
            latency_filter_size: 3,
            adjustment_window: 20,
            gravity_rho: Some(150.0),
            max_tracked_peers: 1024,
        }
    }

    /// Plain Vivaldi with height vectors as published: same space, none of the refinements.
    pub fn plain(dimensions: usize) -> Self {
        Self {
            dimensions,
            latency_filter_size: 1,
            adjustment_window: 0,
            gravity_rho: None,
            ..Self::proxima()
        }
    }
}

impl Default for VivaldiConfig {
    fn default() -> Self {
        Self::proxima()
    }
}

/// A position in a Vivaldi space: what a node gossips about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinate {
    /// Euclidean part (ms).
    pub vec: Vec<f64>,
    /// Height (ms): the access-link delay.
    pub height: f64,
    /// The node's confidence: a relative error estimate (lower is better).
    pub error: f64,
    /// Mean recent residual (ms), added to estimates.
    pub adjustment: f64,
}

impl Coordinate {
    /// The origin of a `dimensions`-dimensional space with the given starting error.
    pub fn origin(dimensions: usize, error: f64, height_min: f64) -> Self {
        Self {
            vec: vec![0.0; dimensions],
            height: height_min,
            error,
            adjustment: 0.0,
        }
    }

    /// Whether this coordinate came from the same kind of space and holds only finite numbers
    /// (coordinates arrive from peers: never trust them blindly).
    pub fn is_compatible(&self, other: &Coordinate) -> bool {
        self.vec.len() == other.vec.len() && other.is_valid()
    }

    /// Finite numbers, a sane dimensionality and a non-negative height.
    pub fn is_valid(&self) -> bool {
        self.vec.len() <= MAX_DIMENSIONS
            && self.vec.iter().all(|v| v.is_finite())
            && self.height.is_finite()
            && self.height >= 0.0
            && self.error.is_finite()
            && self.adjustment.is_finite()
    }

    /// Distance in the space plus both heights (ms), without adjustment terms.
    pub fn raw_distance_to(&self, other: &Coordinate) -> f64 {
        euclid(&self.vec, &other.vec) + self.height + other.height
    }

    /// The estimated RTT to `other` (ms): raw distance plus both adjustment terms, unless that
    /// would be non-positive.
    pub fn distance_to(&self, other: &Coordinate) -> f64 {
        let raw = self.raw_distance_to(other);
        let adjusted = raw + self.adjustment + other.adjustment;
        if adjusted > 0.0 { adjusted } else { raw }
    }
}

fn euclid(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// A node's own Vivaldi state: its coordinate plus the filter and residual history behind it.
#[derive(Debug, Clone)]
pub struct Vivaldi<K> {
    config: VivaldiConfig,
    coord: Coordinate,
    filters: HashMap<K, VecDeque<f64>>,
    residuals: VecDeque<f64>,
    /// Deterministic tie-breaker for coincident nodes (no RNG, no clock).
    nudge: u64,
}

impl<K: Hash + Eq + Clone> Vivaldi<K> {
    /// A node at the origin with maximal error.
    pub fn new(config: VivaldiConfig) -> Self {
        let coord = Coordinate::origin(config.dimensions, config.error_max, config.height_min);
        Self {
            config,
            coord,
            filters: HashMap::new(),
            residuals: VecDeque::new(),
            nudge: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The current coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.coord
    }

    /// The configuration in use.
    pub fn config(&self) -> &VivaldiConfig {
        &self.config
    }

    /// Forgets a peer's filter (it left or was declared dead).
    pub fn forget(&mut self, peer: &K) {
        self.filters.remove(peer);
    }

    /// Feeds one RTT sample (ms) to `peer`, whose coordinate is `other`. Returns `false` and
    /// changes nothing when the sample or the peer's coordinate is unusable.
    pub fn observe(&mut self, peer: &K, other: &Coordinate, rtt_ms: f64) -> bool {
        if !(rtt_ms.is_finite() && rtt_ms > 0.0 && self.coord.is_compatible(other)) {
            return false;
        }
        let rtt = self.filtered(peer, rtt_ms);
        self.update(other, rtt);
        true
    }

    /// The latency filter: median of the last `latency_filter_size` samples of this peer.
    fn filtered(&mut self, peer: &K, rtt: f64) -> f64 {
        let size = self.config.latency_filter_size.max(1);
        if size == 1 {
            return rtt;
        }
        if !self.filters.contains_key(peer) && self.filters.len() >= self.config.max_tracked_peers {
            // Bounded memory: forget an arbitrary peer; it only loses its smoothing.
            if let Some(k) = self.filters.keys().next().cloned() {
                self.filters.remove(&k);
            }
        }
        let samples = self.filters.entry(peer.clone()).or_default();
        samples.push_back(rtt);
        while samples.len() > size {
            samples.pop_front();
        }
        let mut sorted: Vec<f64> = samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn update(&mut self, other: &Coordinate, rtt: f64) {
        let cfg = self.config.clone();
        let dist = self.coord.raw_distance_to(other);
        let total_error = (self.coord.error + other.error).max(1e-6);
        let weight = self.coord.error / total_error;
        let wrongness = (dist - rtt).abs() / rtt;
        self.coord.error = (cfg.ce * weight * wrongness
            + self.coord.error * (1.0 - cfg.ce * weight))
            .min(cfg.error_max);
        let force = cfg.cc * weight * (rtt - dist);
        self.apply_force(force, other);

        if cfg.adjustment_window > 0 {
            let residual = rtt - self.coord.raw_distance_to(other);
            self.residuals.push_back(residual);
            while self.residuals.len() > cfg.adjustment_window {
                self.residuals.pop_front();
            }
            // Halved because both ends of a link add their own term.
            self.coord.adjustment =
                self.residuals.iter().sum::<f64>() / (2.0 * cfg.adjustment_window as f64);
        }
        if let Some(rho) = cfg.gravity_rho {
            let origin = Coordinate::origin(cfg.dimensions, 0.0, 0.0);
            let d = euclid(&self.coord.vec, &origin.vec);
            let pull = -(d / rho).powi(2);
            self.move_along(pull, &origin.vec);
        }
    }

    /// Moves away from `other` by `force` (toward it when negative) and scales the height.
    fn apply_force(&mut self, force: f64, other: &Coordinate) {
        let mag = self.move_along(force, &other.vec);
        if mag > 1e-6 {
            let h = (self.coord.height + other.height) * force / mag + self.coord.height;
            self.coord.height = h.max(self.config.height_min);
        }
    }

    /// Moves along the unit vector from `from` to self; returns the distance between them.
    fn move_along(&mut self, force: f64, from: &[f64]) -> f64 {
        let diff: Vec<f64> = self
            .coord
            .vec
            .iter()
            .zip(from)
            .map(|(a, b)| a - b)
            .collect();
        let mag = diff.iter().map(|d| d * d).sum::<f64>().sqrt();
        if mag > 1e-6 {
            for (x, d) in self.coord.vec.iter_mut().zip(&diff) {
                *x += d / mag * force;
            }
        } else if force != 0.0 {
            // Coincident points: push in a deterministic pseudo-random direction.
            let dir = self.pseudo_random_unit();
            for (x, d) in self.coord.vec.iter_mut().zip(&dir) {
                *x += d * force;
            }
        }
        mag
    }

    fn pseudo_random_unit(&mut self) -> Vec<f64> {
        let dims = self.config.dimensions.max(1);
        let mut v = Vec::with_capacity(dims);
        for _ in 0..dims {
            // xorshift64*: deterministic, good enough to break symmetry.
            self.nudge ^= self.nudge >> 12;
            self.nudge ^= self.nudge << 25;
            self.nudge ^= self.nudge >> 27;
            let r = self.nudge.wrapping_mul(0x2545_f491_4f6c_dd1d);
            v.push((r >> 11) as f64 / (1u64 << 53) as f64 - 0.5);
        }
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v.iter().map(|x| x / n).collect()
    }

    /// Starts the tie-breaker from a per-node seed (so coincident nodes split differently).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.nudge = seed | 1;
        self
    }
}

/// Tuning of the two-level Pharos system.
#[derive(Debug, Clone, PartialEq)]
pub struct PharosConfig {
    /// The global system (every sample).
    pub global: VivaldiConfig,
    /// The local system (only samples of short links).
    pub local: VivaldiConfig,
    /// Links shorter than this (ms) train the local coordinate, and pairs whose global estimate
    /// is shorter than this are estimated with the local coordinates.
    pub local_threshold_ms: f64,
}

impl Default for PharosConfig {
    fn default() -> Self {
        Self {
            global: VivaldiConfig::proxima(),
            local: VivaldiConfig::proxima(),
            local_threshold_ms: 100.0,
        }
    }
}

/// A Pharos coordinate: what a node gossips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetCoord {
    /// Trained on every link.
    pub global: Coordinate,
    /// Trained on short links only; `None` until the node has seen one.
    pub local: Option<Coordinate>,
}

impl NetCoord {
    /// Estimated RTT (ms) between the holders of two coordinates, using the local coordinates
    /// for short pairs when both have one.
    pub fn estimate(&self, other: &NetCoord, local_threshold_ms: f64) -> f64 {
        let global = self.global.distance_to(&other.global);
        match (&self.local, &other.local) {
            (Some(a), Some(b)) if global < local_threshold_ms && a.is_compatible(b) => {
                a.distance_to(b)
            }
            _ => global,
        }
    }

    /// Finite numbers and bounded sizes.
    pub fn is_valid(&self) -> bool {
        self.global.is_valid() && self.local.as_ref().is_none_or(Coordinate::is_valid)
    }
}

/// A node's Pharos state: a global and a local Vivaldi system.
#[derive(Debug, Clone)]
pub struct Pharos<K> {
    config: PharosConfig,
    global: Vivaldi<K>,
    local: Vivaldi<K>,
    local_samples: u64,
}

impl<K: Hash + Eq + Clone> Pharos<K> {
    /// A node at the origin of both systems.
    pub fn new(config: PharosConfig) -> Self {
        Self {
            global: Vivaldi::new(config.global.clone()),
            local: Vivaldi::new(config.local.clone()),
            config,
            local_samples: 0,
        }
    }

    /// Seeds the tie-breakers (use something unique per node, e.g. a hash of its id).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.global = self.global.with_seed(seed);
        self.local = self.local.with_seed(seed.rotate_left(17));
        self
    }

    /// The coordinate to gossip.
    pub fn coordinate(&self) -> NetCoord {
        NetCoord {
            global: self.global.coordinate().clone(),
            local: (self.local_samples > 0).then(|| self.local.coordinate().clone()),
        }
    }

    /// The configured local threshold (ms).
    pub fn local_threshold_ms(&self) -> f64 {
        self.config.local_threshold_ms
    }

    /// Estimated RTT (ms) from this node to the holder of `other`.
    pub fn estimate(&self, other: &NetCoord) -> f64 {
        self.coordinate()
            .estimate(other, self.config.local_threshold_ms)
    }

    /// Feeds one RTT sample (ms). Returns `false` when it was unusable.
    pub fn observe(&mut self, peer: &K, other: &NetCoord, rtt_ms: f64) -> bool {
        if !other.is_valid() {
            return false;
        }
        let used = self.global.observe(peer, &other.global, rtt_ms);
        if used && rtt_ms < self.config.local_threshold_ms {
            // A peer that has no local coordinate yet is at the local origin with full error.
            let fresh;
            let theirs = match &other.local {
                Some(c) => c,
                None => {
                    fresh = Coordinate::origin(
                        self.config.local.dimensions,
                        self.config.local.error_max,
                        self.config.local.height_min,
                    );
                    &fresh
                }
            };
            if self.local.observe(peer, theirs, rtt_ms) {
                self.local_samples += 1;
            }
        }
        used
    }

    /// Forgets a peer.
    pub fn forget(&mut self, peer: &K) {
        self.global.forget(peer);
        self.local.forget(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four nodes on a line with known distances converge to small error.
    #[test]
    fn converges_on_a_euclidean_square() {
        let pos = [(0.0, 0.0), (30.0, 0.0), (0.0, 40.0), (30.0, 40.0)];
        let rtt = |i: usize, j: usize| {
            let (a, b): ((f64, f64), (f64, f64)) = (pos[i], pos[j]);
            ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt() + 2.0
        };
        let mut nodes: Vec<Vivaldi<usize>> = (0..4)
            .map(|i| Vivaldi::new(VivaldiConfig::proxima()).with_seed(i as u64 + 1))
            .collect();
        for round in 0..400 {
            for i in 0..4 {
                let j = (i + 1 + round % 3) % 4;
                let other = nodes[j].coordinate().clone();
                assert!(nodes[i].observe(&j, &other, rtt(i, j)));
            }
        }
        for i in 0..4 {
            for j in 0..4 {
                if i != j {
                    let est = nodes[i].coordinate().distance_to(nodes[j].coordinate());
                    let err = (est - rtt(i, j)).abs() / rtt(i, j);
                    assert!(err < 0.1, "pair {i},{j}: est {est} rtt {}", rtt(i, j));
                }
            }
        }
    }

    #[test]
    fn bad_samples_and_coordinates_are_refused() {
        let mut v: Vivaldi<u8> = Vivaldi::new(VivaldiConfig::proxima());
        let good = v.coordinate().clone();
        assert!(!v.observe(&1, &good, f64::NAN));
        assert!(!v.observe(&1, &good, -3.0));
        assert!(!v.observe(&1, &good, 0.0));
        let mut bad = good.clone();
        bad.vec[0] = f64::INFINITY;
        assert!(!v.observe(&1, &bad, 10.0));
        let wrong_dims = Coordinate::origin(3, 1.0, 0.01);
        assert!(!v.observe(&1, &wrong_dims, 10.0));
        assert_eq!(v.coordinate(), &good);
    }

    #[test]
    fn latency_filter_ignores_one_outlier() {
        let mut cfg = VivaldiConfig::proxima();
        cfg.latency_filter_size = 3;
        let mut v: Vivaldi<u8> = Vivaldi::new(cfg);
        assert_eq!(v.filtered(&1, 10.0), 10.0);
        assert_eq!(v.filtered(&1, 11.0), 11.0);
        assert_eq!(v.filtered(&1, 500.0), 11.0);
        assert_eq!(v.filtered(&1, 10.5), 11.0);
    }

    #[test]
    fn filter_memory_is_bounded() {
        let mut cfg = VivaldiConfig::proxima();
        cfg.max_tracked_peers = 8;
        let mut v: Vivaldi<u32> = Vivaldi::new(cfg);
        let other = Coordinate::origin(8, 1.5, 0.01);
        for peer in 0..100 {
            v.observe(&peer, &other, 10.0);
        }
        assert!(v.filters.len() <= 8);
    }

    #[test]
    fn pharos_uses_local_coordinates_for_short_pairs() {
        let a = NetCoord {
            global: Coordinate::origin(2, 0.1, 0.0),
            local: Some(Coordinate {
                vec: vec![0.0, 0.0],
                height: 0.0,
                error: 0.1,
                adjustment: 0.0,
            }),
        };
        let mut b = a.clone();
        b.global.vec = vec![10.0, 0.0];
        b.local = Some(Coordinate {
            vec: vec![3.0, 4.0],
            height: 0.0,
            error: 0.1,
            adjustment: 0.0,
        });
        assert!((a.estimate(&b, 50.0) - 5.0).abs() < 1e-9);
        // Above the threshold the global estimate stands.
        assert!((a.estimate(&b, 5.0) - 10.0).abs() < 1e-9);
    }
}
