//! resolve-and-browse: sites published from different nodes; clients resolve each name at
//! their local node's DNS and fetch the page through the node the answer names. Reports DNS
//! latency, time to first byte and full-page time (p50/p99), and the stretch of the answered
//! node against the best node holding the content, for first (cold) and repeat (warm) visits.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::Params;
use super::net::{Net, node_of_ip};
use super::probe::{self, ms};
use super::report::{Report, Table, percentile};
use super::sites::{self, Site};

/// Which nodes hold each site: its publisher and every node that served it whole and verified.
pub(crate) type Holders = Arc<Mutex<Vec<BTreeSet<usize>>>>;

/// Holders known at the start: each site's publisher.
pub(crate) fn holders_of(sites: &[Site]) -> Holders {
    Arc::new(Mutex::new(
        sites
            .iter()
            .map(|s| BTreeSet::from([s.publisher]))
            .collect(),
    ))
}

/// What one page view saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// DNS query time at the local node (ms).
    pub dns_ms: Option<f64>,
    /// The node that served the page.
    pub served_by: Option<usize>,
    /// Time to first byte, client-to-node RTTs included (ms).
    pub ttfb_ms: f64,
    /// Full page, client-to-node RTTs included (ms).
    pub full_ms: f64,
    /// RTT to the serving node over RTT to the nearest reachable holder (1 ms floor).
    pub stretch: f64,
    /// Files whose bytes did not match their hash.
    pub unverified: usize,
    /// Answers that name no node of the network.
    pub foreign_answers: usize,
    /// Why the view failed, if it did.
    pub error: Option<String>,
    /// Whether a holder was alive and reachable from the client when the view was made.
    pub holder_reachable: bool,
}

/// Resolves `site` at `client`'s node and fetches it through the first answered node that
/// works (as a browser tries the next address when one fails), skipping nodes the client
/// cannot reach (partition) and at most three attempts.
pub(crate) async fn view(
    net: &Net,
    client: usize,
    site: &Site,
    idx: usize,
    holders: &Holders,
) -> Outcome {
    let mut out = Outcome::default();
    let known: Vec<usize> = holders.lock().unwrap()[idx].iter().copied().collect();
    let reachable: Vec<usize> = known
        .iter()
        .copied()
        .filter(|&h| net.alive(h) && net.reachable(client, h))
        .collect();
    out.holder_reachable = !reachable.is_empty();
    let Some(local) = net.addrs(client) else {
        out.error = Some("client's node is down".into());
        return out;
    };
    let answer = match probe::resolve(local.dns, &site.name, Duration::from_secs(3)).await {
        Ok(a) => a,
        Err(e) => {
            out.error = Some(format!("dns: {e:#}"));
            return out;
        }
    };
    out.dns_ms = Some(ms(answer.elapsed));
    let nodes: Vec<usize> = answer
        .addrs
        .iter()
        .filter_map(|ip| node_of_ip(*ip, net.n))
        .collect();
    out.foreign_answers = answer.addrs.len() - nodes.len();
    if nodes.is_empty() {
        out.error = Some(format!(
            "dns: no node in the answer (rcode {})",
            answer.rcode
        ));
        return out;
    }
    let mut errors = Vec::new();
    for &j in nodes.iter().filter(|&&j| net.reachable(client, j)).take(3) {
        let Some(a) = net.addrs(j) else {
            errors.push(format!("node {j} is down"));
            continue;
        };
        match probe::visit(a.http, site, Duration::from_secs(10)).await {
            Ok(v) => {
                let rtt = net.rtt(client, j);
                // TCP connect + request to first byte; then one more round for the assets.
                out.ttfb_ms = ms(v.ttfb) + 2.0 * rtt;
                out.full_ms = ms(v.full) + 3.0 * rtt;
                out.unverified = v.unverified;
                out.served_by = Some(j);
                let best = reachable
                    .iter()
                    .map(|&h| net.rtt(client, h))
                    .fold(f64::INFINITY, f64::min);
                let best = if best.is_finite() { best } else { rtt };
                out.stretch = rtt.max(1.0) / best.max(1.0);
                if v.unverified == 0 {
                    holders.lock().unwrap()[idx].insert(j);
                }
                return out;
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    out.error = Some(if errors.is_empty() {
        "every answered node is unreachable from the client".into()
    } else {
        errors.join("; ")
    });
    out
}

/// `count` client nodes spread over `0..n`.
pub(crate) fn client_nodes(n: usize, count: usize) -> Vec<usize> {
    let count = count.clamp(1, n);
    let v: BTreeSet<usize> = (0..count).map(|k| k * n / count).collect();
    v.into_iter().collect()
}

/// Publishes the sites and waits until every node's DNS answers each name; returns the sites
/// and the time that took.
pub(crate) async fn publish_and_spread(
    net: &Net,
    p: &Params,
) -> Result<(Vec<Site>, Option<Duration>)> {
    let sites = sites::publish_all(p.seed, p.sites, net.n, |i| {
        net.addrs(i)
            .expect("every node runs while publishing")
            .admin
    })
    .await?;
    super::progress(&format!("{} sites published", sites.len()));
    let spread = sites::until(Duration::from_secs(60), || async {
        // Every node at once; one query per name, 1 s each at most.
        let checks = net
            .live()
            .into_iter()
            .filter_map(|i| net.addrs(i))
            .map(|a| {
                let sites = &sites;
                async move {
                    for s in sites {
                        match probe::resolve(a.dns, &s.name, Duration::from_secs(1)).await {
                            Ok(ans) if !ans.addrs.is_empty() => {}
                            _ => return false,
                        }
                    }
                    true
                }
            });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .all(|ok| ok)
    })
    .await
    .ok();
    super::progress(&format!("zones spread: {spread:?}"));
    Ok((sites, spread))
}

/// Runs the scenario.
pub(crate) fn run(p: &Params, report: &mut Report) -> Result<()> {
    let net = Arc::new(Net::start(p, 0, 0, |_, _| {})?);
    report.metric("mesh_formed_s", net.formed_in.as_secs_f64());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (sites, spread) = rt.block_on(publish_and_spread(&net, p))?;
    report.metric("sites", sites.len() as f64);
    report.metric(
        "zones_spread_s",
        spread.map_or(f64::NAN, |d| d.as_secs_f64()),
    );
    let sites = Arc::new(sites);
    let holders = holders_of(&sites);
    let clients = client_nodes(net.n, p.clients);
    let visits = p.visits;
    super::progress(&format!("{} clients browsing", clients.len()));
    let outcomes: Vec<(bool, Outcome)> = rt.block_on(async {
        let tasks = clients.iter().enumerate().map(|(k, &c)| {
            let (net, sites, holders) = (net.clone(), sites.clone(), holders.clone());
            let seed = p.seed + k as u64;
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut order: Vec<usize> = (0..sites.len()).collect();
                order.shuffle(&mut rng);
                let mut seen = HashSet::new();
                let mut out = Vec::with_capacity(visits);
                for i in 0..visits {
                    let s = if i < order.len() {
                        order[i]
                    } else {
                        rng.gen_range(0..sites.len())
                    };
                    let cold = seen.insert(s);
                    out.push((cold, view(&net, c, &sites[s], s, &holders).await));
                }
                out
            })
        });
        let mut all = Vec::new();
        for t in futures::future::join_all(tasks).await {
            all.extend(t.expect("client task"));
        }
        all
    });
    summarize(report, &outcomes, &clients);
    net.stop();
    Ok(())
}

/// Tables and metrics of a set of page views (cold and warm).
pub(crate) fn summarize(report: &mut Report, outcomes: &[(bool, Outcome)], clients: &[usize]) {
    let mut lat = Report::latency_table(&format!(
        "Latency at {} client nodes (DNS at the local node; TTFB and full page through the answered node, client RTT included)",
        clients.len()
    ));
    let mut stretch_rows = Vec::new();
    for (label, want) in [("cold", true), ("warm", false)] {
        let ok: Vec<&Outcome> = outcomes
            .iter()
            .filter(|(c, o)| *c == want && o.error.is_none())
            .map(|(_, o)| o)
            .collect();
        let dns: Vec<f64> = outcomes
            .iter()
            .filter(|(c, _)| *c == want)
            .filter_map(|(_, o)| o.dns_ms)
            .collect();
        report.latency(&format!("dns_{label}"), &dns, &mut lat);
        let ttfb: Vec<f64> = ok.iter().map(|o| o.ttfb_ms).collect();
        report.latency(&format!("ttfb_{label}"), &ttfb, &mut lat);
        let full: Vec<f64> = ok.iter().map(|o| o.full_ms).collect();
        report.latency(&format!("page_{label}"), &full, &mut lat);
        let st: Vec<f64> = ok.iter().map(|o| o.stretch).collect();
        if !st.is_empty() {
            report.metric(&format!("stretch_{label}_p50"), percentile(&st, 50.0));
            report.metric(&format!("stretch_{label}_p99"), percentile(&st, 99.0));
        }
        let views = outcomes.iter().filter(|(c, _)| *c == want).count();
        stretch_rows.push(vec![
            label.to_owned(),
            views.to_string(),
            (views - ok.len()).to_string(),
            format!("{:.2}", percentile(&st, 50.0)),
            format!("{:.2}", percentile(&st, 99.0)),
            ok.iter().filter(|o| o.stretch <= 1.0).count().to_string(),
        ]);
    }
    report.tables.push(lat);
    report.tables.push(Table {
        title: "Stretch: RTT to the node that served the page / RTT to the nearest node holding the site (1 ms floor)".into(),
        header: ["visits", "n", "failed", "stretch p50", "stretch p99", "served by a best holder"]
            .map(String::from)
            .to_vec(),
        rows: stretch_rows,
    });
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o.error.is_some())
        .collect();
    report.metric("views", outcomes.len() as f64);
    report.metric("failed_views", failed.len() as f64);
    report.metric(
        "unverified_files",
        outcomes.iter().map(|(_, o)| o.unverified as f64).sum(),
    );
    report.metric(
        "foreign_answers",
        outcomes.iter().map(|(_, o)| o.foreign_answers as f64).sum(),
    );
    let mut errors: Vec<String> = failed.iter().filter_map(|o| o.error.clone()).collect();
    errors.sort();
    errors.dedup();
    for e in errors.into_iter().take(5) {
        report.notes.push(format!("failed view: {e}"));
    }
}
