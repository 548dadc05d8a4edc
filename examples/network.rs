//! The whole network on an emulated Internet: `cargo run --release --example network -- SCENARIO`
//! runs `scenarios/SCENARIO.toml` (see `examples/network/mod.rs`), prints its tables and writes
//! `result.json`, `result.md` and `cdf.svg` under `--out` (default `target/scenarios/SCENARIO`).
//!
//! ```text
//! cargo run --release --example network -- resolve-and-browse
//! cargo run --release --example network -- churn --reduced
//! cargo run --release --example network -- all            # every scenario, full size
//! cargo run --release --example network -- cache-near --nodes 10
//! ```
//!
//! Exits with status 1 when a threshold fails. `RUST_LOG` (e.g. `warn`) prints the nodes' logs
//! to standard error.

#[path = "network/mod.rs"]
mod scenario;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    // The nodes' logs only when asked for (`RUST_LOG=warn` shows rejoins, hand-overs, stalls;
    // `cache::keys=trace` every key written, replicated, pulled or merged). Each line names
    // its node by thread (`node3`).
    proxima::harness::logs_from_env();
    let mut args = std::env::args().skip(1);
    let mut which = None;
    let mut size = scenario::Size::Full;
    let mut nodes = None;
    let mut out = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reduced" => size = scenario::Size::Reduced,
            "--nodes" => nodes = Some(args.next().context("--nodes N")?.parse::<usize>()?),
            "--out" => out = Some(PathBuf::from(args.next().context("--out DIR")?)),
            "-h" | "--help" => {
                println!(
                    "usage: network SCENARIO|all [--reduced] [--nodes N] [--out DIR]\nscenarios: {}",
                    scenario::Spec::all()?.join(", ")
                );
                return Ok(());
            }
            s if which.is_none() => which = Some(s.to_owned()),
            s => bail!("unexpected argument {s:?}"),
        }
    }
    let which = which.context("which scenario? (see --help)")?;
    let names = if which == "all" {
        scenario::Spec::all()?
    } else {
        vec![which]
    };
    let mut failed = Vec::new();
    for name in names {
        let spec = scenario::Spec::load(&name)?;
        let mut params = match size {
            scenario::Size::Full => spec.full.clone(),
            scenario::Size::Reduced => spec.reduced.clone(),
        };
        if let Some(n) = nodes {
            params.nodes = n;
        }
        eprintln!("running {} ({} nodes)...", spec.name, params.nodes);
        let report = scenario::run(&spec, size, Some(params))?;
        let dir = out.clone().unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/scenarios")
                .join(&spec.name)
        });
        let dir = if out.is_some() {
            dir.join(&spec.name)
        } else {
            dir
        };
        report.write(&dir)?;
        println!("{}", report.markdown());
        println!("written to {}", dir.display());
        if !report.failed().is_empty() {
            failed.push(spec.name.clone());
        }
    }
    if !failed.is_empty() {
        eprintln!("thresholds failed: {}", failed.join(", "));
        std::process::exit(1);
    }
    Ok(())
}
