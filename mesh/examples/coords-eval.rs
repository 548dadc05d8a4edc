//! Replays a measured RTT matrix through simulated nodes and scores Proxima's coordinates
//! (Vivaldi + latency filter + adjustment + gravity + Pharos) against plain Vivaldi.
//!
//! ```text
//! cargo run --release -p mesh --example coords-eval -- MATRIX [--unit ms|s] [--json]
//!     [--rounds N] [--neighbours K] [--seed S] [--candidates C]
//! ```
//!
//! MATRIX: TAB-separated square matrix; entry (i, j) is the RTT from i to j; 0 off the diagonal
//! means "not measured".

use std::process::ExitCode;

use mesh::coords_eval::{EvalConfig, LatencyMatrix, evaluate};

const USAGE: &str = "usage: coords-eval MATRIX [--unit ms|s] [--json] [--rounds N] [--neighbours K] [--seed S] [--candidates C]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coords-eval: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut scale = 1.0;
    let mut json = false;
    let mut cfg = EvalConfig::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--unit" => {
                scale = match value("--unit")?.as_str() {
                    "ms" => 1.0,
                    "s" => 1000.0,
                    other => return Err(format!("--unit must be ms or s, not {other:?}")),
                }
            }
            "--json" => json = true,
            "--rounds" => cfg.rounds = parse(&value("--rounds")?)?,
            "--neighbours" => cfg.neighbours_per_round = parse(&value("--neighbours")?)?,
            "--seed" => cfg.seed = parse(&value("--seed")?)?,
            "--candidates" => cfg.candidates = parse(&value("--candidates")?)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            other => path = Some(other.to_owned()),
        }
    }
    let path = path.ok_or("no MATRIX given")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let matrix = LatencyMatrix::parse(&text, scale).map_err(|e| format!("{path}: {e}"))?;
    let report = evaluate(&matrix, &cfg);
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{report}");
    }
    Ok(())
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a valid number"))
}
