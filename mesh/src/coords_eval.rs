//! Replays a measured latency matrix through simulated nodes and scores the coordinates:
//! the engine behind `cargo run -p mesh --example coords-eval`, also used by tests.
//!
//! Every simulated node samples a few random neighbours per round (the RTT is the matrix entry),
//! exactly as a live node feeds the RTTs of its connections. After the last round every
//! measured pair is estimated and compared with its measurement.

use std::fmt;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::coords::{Coordinate, Pharos, PharosConfig, Vivaldi, VivaldiConfig};

/// Largest matrix accepted (nodes): bounds what a file can make us allocate.
pub const MAX_NODES: usize = 4096;

/// A square RTT matrix in milliseconds; `None` means "not measured".
#[derive(Debug, Clone)]
pub struct LatencyMatrix {
    rtt: Vec<Option<f64>>,
    n: usize,
}

/// Why a matrix file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatrixError {
    /// Row `row` has a different number of entries than the matrix has rows.
    #[error("row {row} has {found} entries; a square matrix of {expected} rows needs {expected}")]
    NotSquare {
        /// 1-based row number.
        row: usize,
        /// Entries found.
        found: usize,
        /// Entries expected.
        expected: usize,
    },
    /// An entry is not a non-negative number.
    #[error("row {row}, column {col}: {text:?} is not a non-negative number")]
    BadEntry {
        /// 1-based row.
        row: usize,
        /// 1-based column.
        col: usize,
        /// The entry as written.
        text: String,
    },
    /// Fewer than 3 or more than [`MAX_NODES`] rows.
    #[error("the matrix has {0} rows; between 3 and {MAX_NODES} are supported")]
    Size(usize),
}

impl LatencyMatrix {
    /// Parses TAB- (or space-) separated rows; `scale` converts entries to ms (1000 for seconds).
    pub fn parse(text: &str, scale: f64) -> Result<Self, MatrixError> {
        let rows: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let n = rows.len();
        if !(3..=MAX_NODES).contains(&n) {
            return Err(MatrixError::Size(n));
        }
        let mut rtt = Vec::with_capacity(n * n);
        for (r, line) in rows.iter().enumerate() {
            let before = rtt.len();
            for (c, cell) in line.split_whitespace().enumerate() {
                if c >= n {
                    return Err(MatrixError::NotSquare {
                        row: r + 1,
                        found: line.split_whitespace().count(),
                        expected: n,
                    });
                }
                let v: f64 = cell.parse().map_err(|_| MatrixError::BadEntry {
                    row: r + 1,
                    col: c + 1,
                    text: cell.to_owned(),
                })?;
                if !(v.is_finite() && v >= 0.0) {
                    return Err(MatrixError::BadEntry {
                        row: r + 1,
                        col: c + 1,
                        text: cell.to_owned(),
                    });
                }
                rtt.push((v > 0.0 && r != c).then_some(v * scale));
            }
            let found = rtt.len() - before;
            if found != n {
                return Err(MatrixError::NotSquare {
                    row: r + 1,
                    found,
                    expected: n,
                });
            }
        }
        Ok(Self { rtt, n })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the matrix has no nodes (never true for a parsed one).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The RTT measured from `i` to `j` (ms), if any.
    pub fn rtt(&self, i: usize, j: usize) -> Option<f64> {
        self.rtt[i * self.n + j]
    }

    /// The median of all measured entries (ms).
    pub fn median(&self) -> f64 {
        let mut v: Vec<f64> = self.rtt.iter().flatten().copied().collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

/// How the replay runs.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Rounds of sampling.
    pub rounds: usize,
    /// Neighbours each node samples per round.
    pub neighbours_per_round: usize,
    /// Random candidate-set draws for the selection score.
    pub draws: usize,
    /// Candidates per draw.
    pub candidates: usize,
    /// RNG seed (the run is deterministic).
    pub seed: u64,
    /// The refined system under test.
    pub pharos: PharosConfig,
    /// Dimensions of the plain Vivaldi baseline.
    pub plain_dimensions: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            rounds: 300,
            neighbours_per_round: 4,
            draws: 2000,
            candidates: 32,
            seed: 7,
            pharos: PharosConfig::default(),
            plain_dimensions: 8,
        }
    }
}

/// The scores of one coordinate system.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Scores {
    /// Median of |estimate - measured| / measured over all measured pairs.
    pub median_rel_error: f64,
    /// 90th percentile of the same.
    pub p90_rel_error: f64,
    /// How often the lowest estimate among `candidates` random peers is the truly nearest.
    pub nearest_hit_rate: f64,
    /// Median of RTT(chosen) / RTT(truly nearest) over the draws.
    pub median_stretch: f64,
}

/// The refined system's scores with plain Vivaldi's from the same run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Nodes in the matrix.
    pub nodes: usize,
    /// Rounds replayed.
    pub rounds: usize,
    /// Median measured RTT (ms).
    pub median_rtt_ms: f64,
    /// Refined system (Vivaldi + filter + adjustment + gravity + Pharos).
    #[serde(flatten)]
    pub proxima: Scores,
    /// Plain Vivaldi with height vectors, same dimensions, same samples.
    pub vivaldi: Scores,
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} nodes, {} rounds, median RTT {:.3} ms",
            self.nodes, self.rounds, self.median_rtt_ms
        )?;
        writeln!(
            f,
            "{:<28} {:>10} {:>10} {:>12} {:>10}",
            "system", "median err", "p90 err", "nearest hit", "stretch"
        )?;
        for (name, s) in [
            ("proxima (vivaldi+pharos)", &self.proxima),
            ("plain vivaldi", &self.vivaldi),
        ] {
            writeln!(
                f,
                "{:<28} {:>10.4} {:>10.4} {:>12.3} {:>10.3}",
                name, s.median_rel_error, s.p90_rel_error, s.nearest_hit_rate, s.median_stretch
            )?;
        }
        Ok(())
    }
}

/// Replays `m` through both systems with the same sample sequence and scores them.
pub fn evaluate(m: &LatencyMatrix, cfg: &EvalConfig) -> EvalReport {
    let n = m.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut refined: Vec<Pharos<usize>> = (0..n)
        .map(|i| Pharos::new(cfg.pharos.clone()).with_seed(i as u64 * 0x9e37 + 1))
        .collect();
    let mut plain: Vec<Vivaldi<usize>> = (0..n)
        .map(|i| {
            Vivaldi::new(VivaldiConfig::plain(cfg.plain_dimensions))
                .with_seed(i as u64 * 0x9e37 + 1)
        })
        .collect();
    let neighbours: Vec<Vec<usize>> = (0..n)
        .map(|i| (0..n).filter(|&j| m.rtt(i, j).is_some()).collect())
        .collect();
    for _ in 0..cfg.rounds {
        for i in 0..n {
            for _ in 0..cfg.neighbours_per_round {
                let Some(&j) = neighbours[i].choose(&mut rng) else {
                    continue;
                };
                let Some(rtt) = m.rtt(i, j) else { continue };
                let theirs = refined[j].coordinate();
                refined[i].observe(&j, &theirs, rtt);
                let theirs = plain[j].coordinate().clone();
                plain[i].observe(&j, &theirs, rtt);
            }
        }
    }
    let refined_coords: Vec<_> = refined.iter().map(Pharos::coordinate).collect();
    let threshold = cfg.pharos.local_threshold_ms;
    let est_refined =
        |i: usize, j: usize| refined_coords[i].estimate(&refined_coords[j], threshold);
    let plain_coords: Vec<Coordinate> = plain.iter().map(|p| p.coordinate().clone()).collect();
    let est_plain = |i: usize, j: usize| plain_coords[i].distance_to(&plain_coords[j]);

    // Same draws for both systems.
    let draws = draw_sets(m, cfg, &mut rng);
    EvalReport {
        nodes: n,
        rounds: cfg.rounds,
        median_rtt_ms: m.median(),
        proxima: score(m, &draws, est_refined),
        vivaldi: score(m, &draws, est_plain),
    }
}

/// (client, candidates) pairs, every candidate with a measured RTT from the client.
fn draw_sets(
    m: &LatencyMatrix,
    cfg: &EvalConfig,
    rng: &mut rand::rngs::StdRng,
) -> Vec<(usize, Vec<usize>)> {
    let n = m.len();
    let mut out = Vec::with_capacity(cfg.draws);
    for _ in 0..cfg.draws {
        let client = rng.gen_range(0..n);
        let mut pool: Vec<usize> = (0..n).filter(|&j| m.rtt(client, j).is_some()).collect();
        if pool.len() < 2 {
            continue;
        }
        pool.shuffle(rng);
        pool.truncate(cfg.candidates.max(2));
        out.push((client, pool));
    }
    out
}

fn score(
    m: &LatencyMatrix,
    draws: &[(usize, Vec<usize>)],
    estimate: impl Fn(usize, usize) -> f64,
) -> Scores {
    let n = m.len();
    let mut errors = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            if let Some(rtt) = m.rtt(i, j) {
                errors.push((estimate(i, j) - rtt).abs() / rtt);
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    let mut hits = 0usize;
    let mut stretches = Vec::with_capacity(draws.len());
    for (client, cands) in draws {
        let rtt = |j: usize| m.rtt(*client, j).unwrap_or(f64::INFINITY);
        let best = cands.iter().copied().map(rtt).fold(f64::INFINITY, f64::min);
        let chosen = cands
            .iter()
            .copied()
            .min_by(|&a, &b| estimate(*client, a).total_cmp(&estimate(*client, b)))
            .map(rtt)
            .unwrap_or(f64::INFINITY);
        if chosen <= best {
            hits += 1;
        }
        stretches.push(chosen / best);
    }
    stretches.sort_by(f64::total_cmp);
    Scores {
        median_rel_error: percentile(&errors, 0.5),
        p90_rel_error: percentile(&errors, 0.9),
        nearest_hit_rate: hits as f64 / draws.len().max(1) as f64,
        median_stretch: percentile(&stretches, 0.5),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_bad_matrices() {
        let m = LatencyMatrix::parse("0\t1\t2\n1\t0\t0\n2\t3\t0\n", 1000.0).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.rtt(0, 1), Some(1000.0));
        assert_eq!(m.rtt(1, 2), None, "0 off the diagonal is 'not measured'");
        assert_eq!(m.rtt(0, 0), None);
        assert!(matches!(
            LatencyMatrix::parse("0\t1\n1\t0\n", 1.0),
            Err(MatrixError::Size(2))
        ));
        assert!(matches!(
            LatencyMatrix::parse("0\t1\t2\n1\t0\n2\t3\t0\n", 1.0),
            Err(MatrixError::NotSquare { row: 2, .. })
        ));
        assert!(matches!(
            LatencyMatrix::parse("0\t1\t2\n1\t0\tx\n2\t3\t0\n", 1.0),
            Err(MatrixError::BadEntry { row: 2, col: 3, .. })
        ));
        assert!(LatencyMatrix::parse("0\t1\t2\n1\t0\t-1\n2\t3\t0\n", 1.0).is_err());
        assert!(LatencyMatrix::parse("0\t1\t2\t4\n1\t0\t1\n2\t3\t0\n", 1.0).is_err());
    }

    /// Points on a plane: both systems learn it; the refined one is at least as good.
    #[test]
    fn euclidean_matrix_is_learned() {
        let n = 40;
        let pts: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let a = i as f64 * 2.399;
                (100.0 * a.cos() * (i as f64 / n as f64), 100.0 * a.sin())
            })
            .collect();
        let mut text = String::new();
        for i in 0..n {
            let row: Vec<String> = (0..n)
                .map(|j| {
                    let d = ((pts[i].0 - pts[j].0).powi(2) + (pts[i].1 - pts[j].1).powi(2)).sqrt();
                    if i == j {
                        "0".into()
                    } else {
                        format!("{:.3}", d + 5.0)
                    }
                })
                .collect();
            text.push_str(&row.join("\t"));
            text.push('\n');
        }
        let m = LatencyMatrix::parse(&text, 1.0).unwrap();
        let report = evaluate(
            &m,
            &EvalConfig {
                rounds: 150,
                draws: 300,
                candidates: 8,
                ..EvalConfig::default()
            },
        );
        assert!(report.proxima.median_rel_error < 0.1, "{report}");
        assert!(report.vivaldi.median_rel_error < 0.15, "{report}");
        assert!(report.proxima.nearest_hit_rate > 0.5, "{report}");
    }
}
