//! Scenario runner: the whole network on an emulated Internet.
//!
//! A scenario file (`scenarios/*.toml`) names a kind of workload, two sizes (`full` for
//! `cargo run --release --example network`, `reduced` for `tests/scenarios.rs`) and pass/fail
//! thresholds over the metrics the run reports. The runner starts the nodes in this process on
//! an emulated WAN whose RTTs are rows of a real PlanetLab matrix, places clients at chosen
//! nodes, drives the workload, injects faults on a schedule, checks the thresholds and writes
//! `result.json`, `result.md` (the tables) and, where latencies were measured, `cdf.svg`.
//!
//! What is emulated and what is not (every report repeats it):
//!
//! - node-to-node QUIC (blob transfer, cache forwarding and replication, membership probes,
//!   zone fetches) crosses `mesh::WanEmulator`: real packets, delayed by the matrix's RTT;
//! - libp2p control traffic (gossip, Kademlia) is **not** delayed or cut by the emulator;
//! - a client sits at its node: client-to-local-node traffic is loopback; when a client talks
//!   to another node directly (the node a DNS answer names, a `MOVED` target), the RTTs of that
//!   conversation are added from the matrix (TCP connect + each request round trip).
//!
//! Used by `examples/network.rs` and `tests/scenarios.rs` (both include this directory).

#![allow(dead_code)]

pub(super) mod browse;
pub(super) mod cache_near;
pub(super) mod churn;
pub(super) mod hostile;
pub(super) mod net;
pub(super) mod probe;
pub(super) mod report;
pub(super) mod rogue;
pub(super) mod sites;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub(super) use report::Report;

/// The workloads the runner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Kind {
    /// Publish sites, resolve through the local node's DNS, fetch through the answered node.
    ResolveAndBrowse,
    /// Read-heavy Redis workload: `READONLY` reads versus primary reads.
    CacheNear,
    /// Nodes killed and restarted, one partition that heals, under web and cache load.
    Churn,
    /// A peer serving corrupted blobs and forged zones.
    HostilePeer,
    /// An uncertified process with a fresh key trying every attack on a certified mesh.
    RogueMember,
}

/// The size and knobs of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct Params {
    /// Nodes started.
    pub nodes: usize,
    /// Tokio worker threads per node.
    pub worker_threads: usize,
    /// Seed of the matrix rows, site contents and workload choices.
    pub seed: u64,
    /// Sites published.
    pub sites: usize,
    /// Nodes with a client.
    pub clients: usize,
    /// Page visits per client (browse, hostile) .
    pub visits: usize,
    /// Keys written (cache-near, churn).
    pub keys: usize,
    /// Reads per client and per mode (cache-near).
    pub reads: usize,
    /// Length of the loaded phase (churn).
    pub duration_secs: u64,
    /// Fraction of the nodes killed and restarted over the run (churn).
    pub kill_fraction: f64,
    /// How long a killed node stays down (churn).
    pub down_secs: u64,
    /// Fraction of the nodes cut off by the partition (churn).
    pub partition_fraction: f64,
    /// How long the partition lasts (churn).
    pub partition_secs: u64,
    /// Failed views of a site while a holder lives are tolerated for this long (the failure
    /// detector's bound plus the steering refresh), then the site counts as unavailable (churn).
    pub grace_secs: u64,
    /// Cache copies per slot.
    pub replication_factor: usize,
    /// Cache writes acknowledged only once replicated.
    pub sync_replication: bool,
    /// Deadline for the mesh to form, in seconds.
    pub mesh_deadline_secs: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            nodes: 5,
            worker_threads: 1,
            seed: 7,
            sites: 4,
            clients: 3,
            visits: 10,
            keys: 100,
            reads: 100,
            duration_secs: 30,
            kill_fraction: 0.2,
            down_secs: 5,
            partition_fraction: 0.25,
            partition_secs: 8,
            grace_secs: 10,
            replication_factor: 2,
            sync_replication: true,
            mesh_deadline_secs: 60,
        }
    }
}

/// A bound on one metric.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Threshold {
    /// The metric must be at most this.
    pub max: Option<f64>,
    /// The metric must be at least this.
    pub min: Option<f64>,
    /// Only checked at this size (`full` or `reduced`); both when absent.
    pub only: Option<String>,
}

/// A scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Spec {
    /// Short name (the file's stem).
    pub name: String,
    /// The workload.
    pub kind: Kind,
    /// One paragraph: what the scenario shows.
    pub description: String,
    /// The size `cargo run --release --example network` uses.
    pub full: Params,
    /// The size the test suite uses.
    pub reduced: Params,
    /// Metric name -> bound.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Threshold>,
}

/// The scenario directory of the repository.
pub(super) fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

impl Spec {
    /// Loads `scenarios/NAME.toml` (or a path to a file).
    pub(super) fn load(name_or_path: &str) -> Result<Self> {
        let path = if name_or_path.ends_with(".toml") {
            PathBuf::from(name_or_path)
        } else {
            scenario_dir().join(format!("{name_or_path}.toml"))
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        let spec: Spec =
            toml::from_str(&text).with_context(|| format!("bad scenario {}", path.display()))?;
        for (metric, t) in &spec.thresholds {
            if t.max.is_none() && t.min.is_none() {
                bail!(
                    "threshold {metric} in {} has neither max nor min",
                    path.display()
                );
            }
        }
        Ok(spec)
    }

    /// Every scenario file in `scenarios/`, by name.
    pub(super) fn all() -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(scenario_dir())?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Which size to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Size {
    /// The scenario's `full` parameters.
    Full,
    /// The scenario's `reduced` parameters.
    Reduced,
}

impl Size {
    fn label(self) -> &'static str {
        match self {
            Size::Full => "full",
            Size::Reduced => "reduced",
        }
    }
}

/// When the process started (for progress lines).
static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Prints a progress line with the time since the first one.
pub(super) fn progress(what: &str) {
    let t = START.get_or_init(std::time::Instant::now).elapsed();
    eprintln!("[{:>6.1} s] {what}", t.as_secs_f64());
}

/// Runs a scenario at a size and checks its thresholds (the report says which failed).
pub(super) fn run(spec: &Spec, size: Size, params_override: Option<Params>) -> Result<Report> {
    let params = params_override.unwrap_or_else(|| match size {
        Size::Full => spec.full.clone(),
        Size::Reduced => spec.reduced.clone(),
    });
    let started = std::time::Instant::now();
    let mut report = Report::new(spec, size.label(), &params);
    match spec.kind {
        Kind::ResolveAndBrowse => browse::run(&params, &mut report)?,
        Kind::CacheNear => cache_near::run(&params, &mut report)?,
        Kind::Churn => churn::run(&params, &mut report)?,
        Kind::HostilePeer => hostile::run(&params, &mut report)?,
        Kind::RogueMember => rogue::run(&params, &mut report)?,
    }
    report.wall_secs = started.elapsed().as_secs_f64();
    report.check(spec, size.label());
    Ok(report)
}
