//! What a scenario run reports: metrics, tables, threshold checks, latency series; written as
//! JSON, a Markdown table and an SVG latency CDF.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::{Params, Spec};

/// A table of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Table {
    /// Caption.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Cells.
    pub rows: Vec<Vec<String>>,
}

/// One threshold, checked.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    /// Metric name.
    pub metric: String,
    /// `<=` or `>=`.
    pub op: String,
    /// The bound.
    pub limit: f64,
    /// The measured value (`None`: the run did not report it, which fails).
    pub value: Option<f64>,
    /// Whether the bound holds.
    pub pass: bool,
}

/// Latency samples of one series (milliseconds), for the CDF plot.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Series {
    /// Legend.
    pub label: String,
    /// Samples in ms.
    pub ms: Vec<f64>,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// Scenario name.
    pub scenario: String,
    /// `full` or `reduced`.
    pub size: String,
    /// Parameters of the run.
    pub params: Params,
    /// `nproc` and CPU model.
    pub machine: String,
    /// UTC start time (RFC 3339).
    pub started: String,
    /// Wall time of the whole run, seconds (node start included).
    pub wall_secs: f64,
    /// What the figures mean and what was emulated.
    pub notes: Vec<String>,
    /// Named figures; thresholds refer to these.
    pub metrics: BTreeMap<String, f64>,
    /// Human-readable tables.
    pub tables: Vec<Table>,
    /// Threshold checks.
    pub checks: Vec<Check>,
    /// Latency series (plotted; not repeated in the JSON).
    #[serde(skip)]
    pub series: Vec<Series>,
}

/// `nproc` and the CPU model of this machine.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("nproc {n}, {cpu}")
}

/// The `p`-th percentile (0..=100) of `v` (nearest rank); NaN when empty.
pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Report {
    /// An empty report for a run of `spec`.
    pub(crate) fn new(spec: &Spec, size: &str, params: &Params) -> Self {
        Self {
            scenario: spec.name.clone(),
            size: size.into(),
            params: params.clone(),
            machine: machine(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            wall_secs: 0.0,
            notes: vec![
                "Every node-to-node byte crosses the WAN emulator with PlanetLab RTTs: QUIC (blob \
                 transfer, cache forwarding/replication, membership, zone fetch) and libp2p on \
                 TCP (gossip, Kademlia, the bootstrap hello)."
                    .into(),
                "Clients sit at their node (loopback); a client talking to another node directly \
                 pays that pair's matrix RTT per round trip (added, not slept)."
                    .into(),
            ],
            metrics: BTreeMap::new(),
            tables: Vec::new(),
            checks: Vec::new(),
            series: Vec::new(),
        }
    }

    /// Records a metric.
    pub(crate) fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.into(), value);
    }

    /// Records p50 and p99 of `samples` as `{name}_p50_ms` and `{name}_p99_ms`, and a row of
    /// `table` (count, p50, p90, p99, max).
    pub(crate) fn latency(&mut self, name: &str, samples: &[f64], table: &mut Table) {
        let (p50, p90, p99) = (
            percentile(samples, 50.0),
            percentile(samples, 90.0),
            percentile(samples, 99.0),
        );
        let max = samples.iter().copied().fold(f64::NAN, f64::max);
        if !samples.is_empty() {
            self.metric(&format!("{name}_p50_ms"), p50);
            self.metric(&format!("{name}_p99_ms"), p99);
        }
        table.rows.push(vec![
            name.into(),
            samples.len().to_string(),
            fmt(p50),
            fmt(p90),
            fmt(p99),
            fmt(max),
        ]);
        self.series.push(Series {
            label: name.into(),
            ms: samples.to_vec(),
        });
    }

    /// An empty latency table (name, n, p50, p90, p99, max in ms).
    pub(crate) fn latency_table(title: &str) -> Table {
        Table {
            title: title.into(),
            header: ["series", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"]
                .map(String::from)
                .to_vec(),
            rows: Vec::new(),
        }
    }

    /// Checks `spec`'s thresholds that apply at `size`.
    pub(crate) fn check(&mut self, spec: &Spec, size: &str) {
        for (metric, t) in &spec.thresholds {
            if t.only.as_deref().is_some_and(|o| o != size) {
                continue;
            }
            let value = self.metrics.get(metric).copied().filter(|v| !v.is_nan());
            for (op, limit) in [("<=", t.max), (">=", t.min)] {
                let Some(limit) = limit else { continue };
                let pass = value.is_some_and(|v| if op == "<=" { v <= limit } else { v >= limit });
                self.checks.push(Check {
                    metric: metric.clone(),
                    op: op.into(),
                    limit,
                    value,
                    pass,
                });
            }
        }
    }

    /// The checks that failed.
    pub(crate) fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.pass).collect()
    }

    /// The report as Markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "### {} ({}, {} nodes)\n\n{}; started {}; wall time {:.0} s.\n",
            self.scenario, self.size, self.params.nodes, self.machine, self.started, self.wall_secs
        );
        for t in &self.tables {
            let _ = writeln!(s, "{}\n", t.title);
            let _ = writeln!(s, "| {} |", t.header.join(" | "));
            let _ = writeln!(s, "|{}", "---|".repeat(t.header.len()));
            for r in &t.rows {
                let _ = writeln!(s, "| {} |", r.join(" | "));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "Metrics:\n");
        for (k, v) in &self.metrics {
            let _ = writeln!(s, "- `{k}` = {}", fmt(*v));
        }
        if !self.checks.is_empty() {
            let _ = writeln!(s, "\nThresholds:\n");
            for c in &self.checks {
                let _ = writeln!(
                    s,
                    "- {} `{}` = {} {} {} ",
                    if c.pass { "PASS" } else { "FAIL" },
                    c.metric,
                    c.value.map_or("missing".into(), fmt),
                    c.op,
                    fmt(c.limit)
                );
            }
        }
        let _ = writeln!(s, "\nNotes:\n");
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }

    /// Writes `result.json`, `result.md` and `cdf.svg` (when there are series) into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("result.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join("result.md"), self.markdown())?;
        if self.series.iter().any(|s| !s.ms.is_empty()) {
            std::fs::write(dir.join("cdf.svg"), self.cdf_svg())?;
        }
        Ok(())
    }

    /// Latency CDFs of every series, log-scaled x axis, as a standalone SVG.
    pub(crate) fn cdf_svg(&self) -> String {
        let (w, h, left, bottom, top, right) = (760.0, 440.0, 60.0, 40.0, 30.0, 190.0);
        let series: Vec<&Series> = self.series.iter().filter(|s| !s.ms.is_empty()).collect();
        let all = series.iter().flat_map(|s| s.ms.iter().copied());
        let lo = all.clone().fold(f64::INFINITY, f64::min).max(0.01);
        let hi = all.fold(0.0, f64::max).max(lo * 10.0);
        let (llo, lhi) = (lo.log10().floor(), hi.log10().ceil());
        let x = |v: f64| left + (v.max(lo).log10() - llo) / (lhi - llo) * (w - left - right);
        let y = |q: f64| top + (1.0 - q) * (h - top - bottom);
        let colors = [
            "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf",
        ];
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" \
             fill=\"white\"/>\n<text x=\"{left}\" y=\"18\" font-size=\"13\">{} ({}, {} nodes): \
             latency CDF</text>\n",
            self.scenario, self.size, self.params.nodes
        );
        let mut d = llo;
        while d <= lhi {
            let v = 10f64.powf(d);
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{3} ms</text>",
                x(v),
                h - bottom,
                h - bottom + 14.0,
                fmt(v)
            );
            d += 1.0;
        }
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#eee\"/>\
                 <text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{q}</text>",
                y(q),
                w - right,
                left - 4.0,
                y(q) + 4.0
            );
        }
        for (i, ser) in series.iter().enumerate() {
            let mut v = ser.ms.clone();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            let pts: Vec<String> = v
                .iter()
                .enumerate()
                .map(|(k, ms)| format!("{:.1},{:.1}", x(*ms), y((k + 1) as f64 / n)))
                .collect();
            let c = colors[i % colors.len()];
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\" points=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{c}\">{}</text>",
                pts.join(" "),
                w - right + 8.0,
                top + 14.0 * (i as f64 + 1.0),
                ser.label
            );
        }
        s.push_str("</svg>\n");
        s
    }
}
