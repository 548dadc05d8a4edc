//! The last 15 minutes of the node's rates, kept in the node: every [`INTERVAL`] the sampler
//! reads the same metrics `/metrics` shows (the registry's text, so every service's counters
//! are there without each service knowing about the dashboard), turns counters into rates and
//! keeps one point per series in a ring of [`POINTS`].
//!
//! Refusal and corruption counters that moved since the last sample become events, next to the
//! membership and cache-view changes the dashboard module records.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

/// Time between two samples.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Points kept per series: 15 minutes.
pub const POINTS: usize = 15 * 60 / 2;

/// How a series is computed from the metric samples.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Per-second increase of the sum of the counters.
    Rate,
    /// Current value of the sum of the gauges.
    Gauge,
}

/// One chart series, or a family of them (`by` a label: one series per label value, named
/// `key.value`).
#[derive(Debug, Clone, Copy)]
struct Spec {
    key: &'static str,
    metrics: &'static [&'static str],
    by: Option<&'static str>,
    kind: Kind,
}

const fn rate(key: &'static str, metrics: &'static [&'static str]) -> Spec {
    Spec {
        key,
        metrics,
        by: None,
        kind: Kind::Rate,
    }
}

const fn rate_by(key: &'static str, metric: &'static [&'static str], by: &'static str) -> Spec {
    Spec {
        key,
        metrics: metric,
        by: Some(by),
        kind: Kind::Rate,
    }
}

const fn gauge(key: &'static str, metrics: &'static [&'static str]) -> Spec {
    Spec {
        key,
        metrics,
        by: None,
        kind: Kind::Gauge,
    }
}

/// Blob reads served from this node's store (the hit side of the gateway's hit ratio).
const STORE_HITS: &[&str] = &[
    "proxima_cdn_store_hot_hits_total",
    "proxima_cdn_store_disk_opens_total",
];
/// Blobs the node had to fetch from a peer (the miss side).
const FETCHES: &[&str] = &["proxima_cdn_fetch_started_total"];

/// What the dashboard charts. Names are the ones `/metrics` shows.
const SPECS: &[Spec] = &[
    rate_by("dns", &["proxima_dns_responses_total"], "source"),
    rate_by("dns_rcode", &["proxima_dns_responses_total"], "rcode"),
    rate("http_requests", &["proxima_cdn_gateway_responses_total"]),
    rate("http_bytes", &["proxima_cdn_gateway_body_bytes_total"]),
    rate("store_hits", STORE_HITS),
    rate("fetches", FETCHES),
    rate("cache_ops", &["proxima_cache_commands_total"]),
    gauge("cache_keys", &["proxima_cache_keys"]),
    gauge("cache_memory", &["proxima_cache_used_memory_bytes"]),
    rate("transfer_in", &["proxima_cdn_fetch_bytes_total"]),
    rate("transfer_out", &["proxima_cdn_transfer_bytes_total"]),
    rate("refused_zones", &["proxima_naming_zones_refused_total"]),
    rate(
        "corrupt_blobs",
        &[
            "proxima_cdn_store_corrupt_total",
            "proxima_cdn_fetch_corrupt_responses_total",
            "proxima_cdn_gateway_verify_failures_total",
        ],
    ),
];

/// Whether a counter counts refusals or corruption: each increase is an event.
fn is_refusal(name: &str) -> bool {
    name.ends_with("_total")
        && ["refused", "rate_limited", "corrupt", "verify_failures"]
            .iter()
            .any(|w| name.contains(w))
}

/// One parsed metric line: name, labels as written, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as exposed (`_total` included for counters).
    pub name: String,
    /// `label=value` pairs.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// Parses the OpenMetrics text the registry renders. Lines that are not samples (comments,
/// `# EOF`, anything malformed) are skipped: the text is our own, a bad line only loses itself.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y"` (values may hold escaped quotes and commas).
fn parse_labels(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        out.push((key.trim_start_matches(',').to_owned(), value));
        s = rest[end + 1..].trim_start_matches(',');
    }
    Some(out)
}

/// An increase of a refusal counter since the last sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusals {
    /// The counter and its labels, as `/metrics` names them.
    pub series: String,
    /// By how much it grew.
    pub delta: f64,
}

/// The ring of points.
#[derive(Debug, Default)]
pub struct History {
    /// Sample times, Unix milliseconds.
    times: VecDeque<u64>,
    series: BTreeMap<String, VecDeque<Option<f64>>>,
    /// Counter sums of the last sample per series key, and its time.
    last: Option<(u64, HashMap<String, f64>)>,
    /// Refusal counters at the last sample.
    last_refusals: HashMap<String, f64>,
}

/// What `/api/dashboard` sends of the history.
#[derive(Debug, Clone, Serialize)]
pub struct Points {
    /// Unix milliseconds of each point.
    pub times: Vec<u64>,
    /// Series by key; `null` where a series had no value yet.
    pub series: BTreeMap<String, Vec<Option<f64>>>,
}

impl History {
    /// Adds the sample taken at `now_ms`; returns the refusal counters that grew.
    pub fn record(&mut self, now_ms: u64, samples: &[Sample]) -> Vec<Refusals> {
        let sums = sums(samples);
        if let Some((then, before)) = &self.last {
            let dt = now_ms.saturating_sub(*then) as f64 / 1000.0;
            if dt > 0.0 {
                let mut point: BTreeMap<String, f64> = BTreeMap::new();
                for spec in SPECS {
                    for (key, value) in sums.iter().filter(|(k, _)| belongs(k, spec)) {
                        let v = match spec.kind {
                            Kind::Gauge => *value,
                            // A label value seen for the first time was zero before (a family
                            // creates it at its first increase). A counter never goes down.
                            Kind::Rate => {
                                ((value - before.get(key).copied().unwrap_or(0.0)) / dt).max(0.0)
                            }
                        };
                        point.insert(key.clone(), v);
                    }
                }
                // Hit ratio of blob reads: served from the store vs fetched from a peer.
                let (hits, misses) = (
                    point.get("store_hits").copied().unwrap_or(0.0),
                    point.get("fetches").copied().unwrap_or(0.0),
                );
                if hits + misses > 0.0 {
                    point.insert("http_hit_ratio".into(), hits / (hits + misses));
                }
                self.push(now_ms, point);
            }
        }
        self.last = Some((now_ms, sums));
        self.refusals(samples)
    }

    fn push(&mut self, now_ms: u64, point: BTreeMap<String, f64>) {
        let len = self.times.len();
        if len == POINTS {
            self.times.pop_front();
            for s in self.series.values_mut() {
                s.pop_front();
            }
        }
        let len = self.times.len();
        self.times.push_back(now_ms);
        for key in point.keys() {
            // A series seen for the first time has had no value before.
            self.series
                .entry(key.clone())
                .or_insert_with(|| std::iter::repeat_n(None, len).collect());
        }
        for (key, s) in &mut self.series {
            s.push_back(point.get(key).copied());
        }
    }

    fn refusals(&mut self, samples: &[Sample]) -> Vec<Refusals> {
        let mut grew = Vec::new();
        let first = self.last_refusals.is_empty();
        for s in samples.iter().filter(|s| is_refusal(&s.name)) {
            let series = display(s);
            let before = self.last_refusals.insert(series.clone(), s.value);
            // The first sample sets the baseline; refusals before the dashboard ran are in
            // `/metrics`, not in the log.
            let before = if first { Some(s.value) } else { before };
            let delta = s.value - before.unwrap_or(0.0);
            if delta > 0.0 {
                grew.push(Refusals { series, delta });
            }
        }
        grew
    }

    /// The points after `since_ms` (all of them for 0).
    pub fn points_since(&self, since_ms: u64) -> Points {
        let skip = self.times.iter().take_while(|&&t| t <= since_ms).count();
        Points {
            times: self.times.iter().skip(skip).copied().collect(),
            series: self
                .series
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().skip(skip).copied().collect()))
                .collect(),
        }
    }
}

/// Whether a summed key (`dns.authoritative`, `http_bytes`) is one of `spec`'s series.
fn belongs(key: &str, spec: &Spec) -> bool {
    match spec.by {
        None => key == spec.key,
        Some(_) => key
            .strip_prefix(spec.key)
            .is_some_and(|rest| rest.starts_with('.')),
    }
}

/// Sums the samples into one value per series key of [`SPECS`].
fn sums(samples: &[Sample]) -> HashMap<String, f64> {
    let mut out: HashMap<String, f64> = HashMap::new();
    for spec in SPECS {
        if spec.by.is_none() {
            // Present (zero) even when no metric matched, so the chart starts at once.
            out.entry(spec.key.to_owned()).or_insert(0.0);
        }
        for s in samples
            .iter()
            .filter(|s| spec.metrics.contains(&s.name.as_str()))
        {
            let key = match spec.by {
                None => spec.key.to_owned(),
                Some(label) => {
                    let Some((_, v)) = s.labels.iter().find(|(k, _)| k == label) else {
                        continue;
                    };
                    format!("{}.{}", spec.key, v)
                }
            };
            *out.entry(key).or_insert(0.0) += s.value;
        }
    }
    out
}

/// `name{a="x"}` without the `proxima_` prefix and `_total` suffix, as the event log shows it.
fn display(s: &Sample) -> String {
    let name = s.name.strip_prefix("proxima_").unwrap_or(&s.name);
    let name = name.strip_suffix("_total").unwrap_or(name);
    if s.labels.is_empty() {
        name.to_owned()
    } else {
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{name}{{{}}}", labels.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_A: &str = "# HELP x\n\
        proxima_dns_responses_total{source=\"authoritative\",rcode=\"NOERROR\"} 10\n\
        proxima_dns_responses_total{source=\"forwarded\",rcode=\"NXDOMAIN\"} 4\n\
        proxima_cache_keys 7\n\
        proxima_cdn_store_hot_hits_total 3\n\
        proxima_cache_peer_refused_total{reason=\"state \\\"x\\\", y\"} 2\n\
        # EOF\n";
    const TEXT_B: &str = "proxima_dns_responses_total{source=\"authoritative\",rcode=\"NOERROR\"} 30\n\
        proxima_dns_responses_total{source=\"forwarded\",rcode=\"NXDOMAIN\"} 8\n\
        proxima_dns_responses_total{source=\"cache\",rcode=\"NOERROR\"} 2\n\
        proxima_cache_keys 9\n\
        proxima_cdn_store_hot_hits_total 7\n\
        proxima_cdn_fetch_started_total 4\n\
        proxima_cache_peer_refused_total{reason=\"state \\\"x\\\", y\"} 5\n";

    #[test]
    fn parses_labels_with_escapes() {
        let s = parse(TEXT_A);
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].labels[1], ("rcode".into(), "NOERROR".into()));
        assert_eq!(s[4].labels[0], ("reason".into(), "state \"x\", y".into()));
        assert_eq!(s[4].value, 2.0);
        assert!(parse("garbage{ 1\nx{a=\"1\" 2\n").is_empty());
    }

    #[test]
    fn counters_become_rates_and_refusals_events() {
        let mut h = History::default();
        assert!(h.record(1_000, &parse(TEXT_A)).is_empty(), "baseline");
        let grew = h.record(3_000, &parse(TEXT_B));
        assert_eq!(
            grew,
            vec![Refusals {
                series: "cache_peer_refused{reason=state \"x\", y}".into(),
                delta: 3.0
            }]
        );
        let p = h.points_since(0);
        assert_eq!(p.times, vec![3_000]);
        assert_eq!(p.series["dns.authoritative"], vec![Some(10.0)]);
        assert_eq!(p.series["dns.forwarded"], vec![Some(2.0)]);
        // A label value that appears later counted from zero.
        assert_eq!(p.series["dns.cache"], vec![Some(1.0)]);
        assert_eq!(p.series["dns_rcode.NXDOMAIN"], vec![Some(2.0)]);
        assert_eq!(p.series["cache_keys"], vec![Some(9.0)]);
        // 2 hits/s against 2 fetches/s.
        assert_eq!(p.series["http_hit_ratio"], vec![Some(0.5)]);
        assert!(h.points_since(3_000).times.is_empty());
    }

    #[test]
    fn the_ring_keeps_fifteen_minutes() {
        let mut h = History::default();
        for i in 0..(POINTS as u64 + 10) {
            h.record(i * 2_000, &parse(TEXT_A));
        }
        let p = h.points_since(0);
        assert_eq!(p.times.len(), POINTS);
        assert_eq!(p.series["cache_keys"].len(), POINTS);
        assert_eq!(*p.times.last().unwrap(), (POINTS as u64 + 9) * 2_000);
    }
}
