//! churn: under a steady web and cache load, a fraction of the nodes is killed (abruptly) and
//! restarted one after another, then a group of nodes is cut off by a partition that heals.
//! Reports failed requests, time until every live node declares a killed node not alive, cache
//! writes acknowledged but lost, page views that failed while a node holding the site was alive
//! and reachable, and zones that still differ between nodes after the heal.
//!
//! The cache load also deletes and expires some of its keys; every command is recorded in a
//! [`History`] and, after the heal, every key it touched is read through two nodes and checked
//! against it: acknowledged writes lost, deleted or expired keys resurrected, values invented.
//!
//! Nodes 0, 1 and 2 form the registrar group (node 0 founded it; 1 and 2 are added as an
//! operator would); node 0 and node 1 are among the killed nodes, so registration has to move to
//! a new leader and back. Names are registered all along through random live nodes; the report
//! gives how long registration was unavailable after each registrar was killed, and checks that
//! no acknowledged registration is lost. The cache writer connects to node 0 while it lives and
//! to another node while it does not. Node 0 keeps its listen addresses across its restart (it
//! has no bootstrap peers: the others must find it where it was).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use proxima::harness::history::{self, FinalRead, History, Op, Seen};

use super::Params;
use super::browse::{self, Outcome, holders_of};
use super::cache_near::connect;
use super::net::Net;
use super::report::{Report, Table, percentile};

/// One fault and what it caused.
#[derive(Debug, Clone)]
struct Fault {
    what: String,
    at_s: f64,
    detect_s: Option<f64>,
    recovered_s: Option<f64>,
    /// For the partition: what the nodes received from each other at the heal.
    heal: Option<HealCost>,
}

/// Key-state and hash bytes the live nodes received from each other (`INFO cluster`) from the
/// heal until every node served every range again, beside what they received per second during
/// the cut (the load's own replication), and the keys they held.
#[derive(Debug, Clone, Copy)]
struct HealCost {
    bytes: u64,
    window_s: f64,
    cut_bytes_per_s: f64,
    keys_held: u64,
}

/// The key-state and hash bytes nodes `nodes` received from their peers so far.
fn state_bytes(net: &Net, nodes: &[usize]) -> u64 {
    let fields = [
        "proxima_state_bytes_received_link",
        "proxima_state_bytes_received_merge",
        "proxima_tree_bytes_received",
    ];
    nodes
        .iter()
        .filter_map(|&i| net.addrs(i))
        .flat_map(|a| {
            fields.map(|f| {
                proxima::harness::cluster_info_field(a.redis, f)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            })
        })
        .sum()
}

/// Keys held by nodes `nodes` (every copy counted).
fn keys_held(net: &Net, nodes: &[usize]) -> u64 {
    nodes
        .iter()
        .filter_map(|&i| net.addrs(i))
        .filter_map(|a| proxima::harness::redis_cli(a.redis, &["dbsize"]).ok())
        .filter_map(|out| out.trim().parse::<u64>().ok())
        .sum()
}

fn wait(deadline: Duration, mut f: impl FnMut() -> bool) -> Option<f64> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if f() {
            return Some(started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Kills and restarts `victims` one after another, then partitions `group` for
/// `p.partition_secs`, on the schedule the run's duration gives. Blocking.
fn inject(
    net: &Net,
    p: &Params,
    victims: &[usize],
    group: &[usize],
    updates: &[(usize, String)],
    t0: Instant,
) -> Vec<Fault> {
    let total = Duration::from_secs(p.duration_secs);
    let mut faults = Vec::new();
    let slot = total.mul_f64(0.5) / u32::try_from(victims.len().max(1)).unwrap_or(1);
    // At least the election bound plus the restart between two registrar kills.
    let slot = slot.max(Duration::from_secs(p.down_secs + 5));
    for (k, &v) in victims.iter().enumerate() {
        let at = total.mul_f64(0.05) + slot * u32::try_from(k).unwrap_or(0);
        std::thread::sleep(at.saturating_sub(t0.elapsed()));
        let Some(peer) = net.peer_id(v) else { continue };
        super::progress(&format!("killing node {v}"));
        let killed = Instant::now();
        net.kill(v);
        let observers = net.live();
        let detect = wait(Duration::from_secs(30), || {
            net.all_see(&observers, &peer, false)
        });
        std::thread::sleep(Duration::from_secs(p.down_secs).saturating_sub(killed.elapsed()));
        let restarted = net.restart(v).is_ok();
        let back = Instant::now();
        let recovered = restarted
            .then(|| {
                wait(Duration::from_secs(30), || {
                    net.all_see(&net.live(), &peer, true)
                })
            })
            .flatten()
            .map(|s| s + back.duration_since(killed).as_secs_f64());
        if restarted && recovered.is_none() {
            let who = net.disagreeing(&net.live(), &peer, true);
            super::progress(&format!("node {v} not back everywhere: {}", who.join("; ")));
        }
        faults.push(Fault {
            what: format!("kill + restart node {v}"),
            at_s: killed.duration_since(t0).as_secs_f64(),
            detect_s: detect,
            recovered_s: recovered,
            heal: None,
        });
    }
    if !group.is_empty() {
        let at = total.mul_f64(0.6);
        std::thread::sleep(at.saturating_sub(t0.elapsed()));
        super::progress(&format!("cutting off nodes {group:?}"));
        let cut_at = Instant::now();
        let cut_bytes = state_bytes(net, &net.live());
        net.partition(group, true);
        let majority: Vec<usize> = net
            .live()
            .into_iter()
            .filter(|i| !group.contains(i))
            .collect();
        let peers: Vec<String> = group.iter().filter_map(|&g| net.peer_id(g)).collect();
        // Zones change on both sides while they are apart (the owners edit their records).
        for (owner, name) in updates {
            let Some(a) = net.addrs(*owner) else { continue };
            let body = r#"{"type":"TXT","value":"changed during the partition","ttl":60}"#;
            let url = format!("{}/api/names/{name}/records", a.admin);
            let _ = proxima::harness::curl(&[
                "-sf",
                "-X",
                "POST",
                "-H",
                &a.auth,
                "-H",
                "content-type: application/json",
                "-d",
                body,
                &url,
            ]);
        }
        let detect = wait(Duration::from_secs(p.partition_secs), || {
            peers.iter().all(|peer| net.all_see(&majority, peer, false))
        });
        std::thread::sleep(Duration::from_secs(p.partition_secs).saturating_sub(cut_at.elapsed()));
        let live = net.live();
        let heal_bytes = state_bytes(net, &live);
        let cut_bytes_per_s =
            heal_bytes.saturating_sub(cut_bytes) as f64 / cut_at.elapsed().as_secs_f64();
        net.partition(group, false);
        super::progress("partition healed");
        let healed = Instant::now();
        let recovered = wait(Duration::from_secs(60), || {
            peers
                .iter()
                .all(|peer| net.all_see(&net.live(), peer, true))
        })
        .map(|s| s + healed.duration_since(cut_at).as_secs_f64());
        if recovered.is_none() {
            for peer in &peers {
                let who = net.disagreeing(&net.live(), peer, true);
                if !who.is_empty() {
                    super::progress(&format!("{peer} not back everywhere: {}", who.join("; ")));
                }
            }
        }
        // Until every live node serves every range again: then the heal's hand-overs and the
        // merges its view changes queued are done (a merge waits 3 s for the view to settle).
        let _ = wait(Duration::from_secs(60), || {
            live.iter().filter_map(|&i| net.addrs(i)).all(|a| {
                proxima::harness::cluster_info_field(a.redis, "proxima_importing_ranges").as_deref()
                    == Some("0")
            })
        });
        std::thread::sleep(Duration::from_secs(5));
        let heal = HealCost {
            bytes: state_bytes(net, &live).saturating_sub(heal_bytes),
            window_s: healed.elapsed().as_secs_f64(),
            cut_bytes_per_s,
            keys_held: keys_held(net, &live),
        };
        super::progress(&format!("heal cost: {heal:?}"));
        faults.push(Fault {
            what: format!("partition of nodes {group:?} for {} s", p.partition_secs),
            at_s: cut_at.duration_since(t0).as_secs_f64(),
            detect_s: detect,
            recovered_s: recovered,
            heal: Some(heal),
        });
    }
    faults
}

/// A free UDP port on loopback (bound and released; the node binds it right after).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_or(0, |a| a.port())
}

/// Adds nodes `members` to the registrar group through node 0's admin API, as an operator
/// would with `proxima cluster registrar add`, and waits until node 0 sees them all vote.
fn promote(net: &Net, members: &[usize]) -> Result<()> {
    let a0 = net.addrs(0).context("node 0 runs")?;
    for &m in members {
        let peer = net.peer_id(m).context("registrar to add runs")?;
        let out = proxima::harness::curl(&[
            "-sf",
            "-m",
            "90",
            "-X",
            "POST",
            "-H",
            &a0.auth,
            "-H",
            "content-type: application/json",
            "-d",
            &format!(r#"{{"peer":"{peer}"}}"#),
            &format!("{}/api/cluster/registrars", a0.admin),
        ])?;
        anyhow::ensure!(
            out.status.success(),
            "adding node {m} to the registrar group failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(())
}

/// One registration attempt of the naming load.
#[derive(Debug, Clone)]
struct Registration {
    at_s: f64,
    name: String,
    /// `Some(owner)` when acknowledged; `None` when refused or failed (outcome unknown).
    owner: Option<String>,
}

/// How long a key of the cache load lives after its `PEXPIRE`: short enough that every
/// expiry has passed when the load stops plus a few seconds.
const EXPIRE_MS: u64 = 3_000;
/// The cache load deletes or expires a key once its write was acknowledged this long ago (after
/// the next write that comes later), so the removal goes through whichever node the writer
/// uses by then. Time, not a count of writes: a write takes from milliseconds to seconds
/// (sync replication over the emulated WAN, a dead owner).
const REMOVE_LAG: Duration = Duration::from_secs(1);

/// What the cache load does to one of its keys after writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Delete,
    Expire,
}

/// Every 5th key is deleted, every 7th of the others expires (`PEXPIRE` [`EXPIRE_MS`]), the rest
/// stay: deterministic, so a report's key names say what happened to them.
fn removal(i: usize) -> Option<Removal> {
    match (i % 5, i % 7) {
        (0, _) => Some(Removal::Delete),
        (_, 0) => Some(Removal::Expire),
        _ => None,
    }
}

/// The key of the cache load's `i`th write.
fn churn_key(i: usize) -> String {
    format!("churn:{i}")
}

/// What an answer (or its absence within the timeout) says about whether a change applied.
fn outcome<T>(
    answer: &Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> history::Outcome {
    match answer {
        Ok(Ok(_)) => history::Outcome::Ok,
        Ok(Err(e)) if refused(e) => history::Outcome::Fail,
        // A timeout, a lost connection, or an error sent after the command ran somewhere.
        _ => history::Outcome::Unknown,
    }
}

/// Error replies a node sends before it changes anything: `CLUSTERDOWN` (minority side) and
/// the redirections are decided when routing, `NOREPLICAS` before running, and `TRYAGAIN this
/// node is starting` before the node serves anything. The other `TRYAGAIN`s are not refusals:
/// "no owner of this slot acknowledged the write" comes after the write ran on a non-owner, and
/// "the owner of this slot is unreachable" / "no reply" after a forward whose fate is unknown.
fn refused(e: &redis::RedisError) -> bool {
    match e.code() {
        Some("CLUSTERDOWN" | "MOVED" | "ASK" | "CROSSSLOT" | "NOREPLICAS") => true,
        Some("TRYAGAIN") => e
            .detail()
            .is_some_and(|d| d.starts_with("this node is starting")),
        _ => false,
    }
}

/// What the cache load did.
#[derive(Debug, Default)]
struct CacheLoad {
    /// Every SET, DEL and PEXPIRE sent and every successful GET, with its times and outcome.
    history: History,
    /// Indices of the keys whose SET was acknowledged (what the GETs during the run read).
    acked: Vec<usize>,
    failed_writes: usize,
    /// GETs sent during the run, and those that got no answer or an error (whether a value is
    /// right is the history's to say).
    reads: usize,
    failed_reads: usize,
    /// Acknowledged DELs that deleted nothing and PEXPIREs answered 0: the key's acknowledged
    /// write was missing when the removal came (the final read no longer sees that loss).
    removals_found_nothing: Vec<String>,
}

/// A one-line account of what the load did to `key`, for the notes.
fn ops_of(h: &History, key: &str) -> String {
    let ops: Vec<String> = h
        .ops()
        .iter()
        .filter(|o| o.key == key)
        .map(|o| {
            let what = match &o.op {
                Op::Write(v) => format!("SET {v}"),
                Op::Delete => "DEL".into(),
                Op::Expire { at } => format!("PEXPIRE (gone by {:.1} s)", at.as_secs_f64()),
            };
            format!(
                "{what} {:?} {:.1}-{:.1} s",
                o.outcome,
                o.invoke.as_secs_f64(),
                o.complete.as_secs_f64()
            )
        })
        .collect();
    ops.join(", ")
}

/// Runs the scenario.
pub(crate) fn run(p: &Params, report: &mut Report) -> Result<()> {
    let (quic, p2p) = (free_udp_port(), free_udp_port());
    let net = Arc::new(Net::start(p, 0, 0, move |i, c| {
        if i == 0 {
            c.quic_listen = std::net::SocketAddr::from(([127, 0, 0, 1], quic));
            c.p2p_listen = vec![format!("/ip4/127.0.0.1/udp/{p2p}/quic-v1")];
        }
    })?);
    let registrars: Vec<usize> = (0..net.n.min(3)).collect();
    promote(&net, &registrars[1..])?;
    super::progress(&format!("registrar group: nodes {registrars:?}"));
    report.metric("mesh_formed_s", net.formed_in.as_secs_f64());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (sites, spread) = rt.block_on(browse::publish_and_spread(&net, p))?;
    report.metric(
        "zones_spread_s",
        spread.map_or(f64::NAN, |d| d.as_secs_f64()),
    );
    let sites = Arc::new(sites);
    let holders = holders_of(&sites);

    let mut rng = rand::rngs::StdRng::seed_from_u64(p.seed);
    // Node 0 (the founder) and node 1 (another registrar) are always among the victims.
    let mut others: Vec<usize> = (registrars.len()..net.n).collect();
    others.shuffle(&mut rng);
    let kills = ((net.n as f64 * p.kill_fraction).round() as usize)
        .max(2)
        .min(others.len() + 2);
    let mut victims: Vec<usize> = vec![0, 1];
    victims.extend(&others[..kills - 2]);
    victims.shuffle(&mut rng);
    let cut = ((net.n as f64 * p.partition_fraction).round() as usize).min(net.n - 1);
    let group: Vec<usize> = (net.n - cut..net.n).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    // Web load: a view every 100 ms from a random live node.
    let web = {
        let (net, sites, holders, stop) =
            (net.clone(), sites.clone(), holders.clone(), stop.clone());
        rt.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1);
            let mut out: Vec<(f64, usize, bool, Outcome)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let live = net.live();
                let c = live[rng.gen_range(0..live.len())];
                let s = rng.gen_range(0..sites.len());
                let o = browse::view(&net, c, &sites[s], s, &holders).await;
                // A view whose own client node died meanwhile says nothing about the site.
                let client_alive = net.alive(c);
                out.push((t0.elapsed().as_secs_f64(), s, client_alive, o));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            out
        })
    };
    // Cache load: SET through node 0 (another live node while it is down), then DEL or PEXPIRE
    // an earlier key (see `removal`), then GET an earlier acknowledged key; every command goes
    // into the history with its times and outcome.
    let cache = {
        let (net, stop) = (net.clone(), stop.clone());
        rt.spawn(async move {
            let mut load = CacheLoad::default();
            // Acknowledged keys to remove, with when their write was acknowledged.
            let mut to_remove: std::collections::VecDeque<(usize, Duration)> = Default::default();
            let mut con = None;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if con.is_none() {
                    let via = net.live().into_iter().next().and_then(|v| net.addrs(v));
                    if let Some(a) = via {
                        con = connect(a.redis).await.ok();
                    }
                    if con.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                let Some(c) = con.as_mut() else { continue };
                let key = churn_key(i);
                let value = format!("v{i}");
                let invoke = t0.elapsed();
                let set = tokio::time::timeout(
                    Duration::from_secs(5),
                    redis::cmd("SET").arg(&key).arg(&value).query_async::<()>(c),
                )
                .await;
                let set_outcome = outcome(&set);
                load.history.record(history::Operation {
                    key,
                    op: Op::Write(value),
                    invoke,
                    complete: t0.elapsed(),
                    outcome: set_outcome,
                });
                if set_outcome == history::Outcome::Ok && removal(i).is_some() {
                    to_remove.push_back((i, t0.elapsed()));
                }
                i += 1;
                if set_outcome != history::Outcome::Ok {
                    load.failed_writes += 1;
                    // The node may be gone: connect again (to a live one).
                    con = None;
                    continue;
                }
                load.acked.push(i - 1);
                // Remove an earlier key whose write was acknowledged.
                let due = match to_remove.front() {
                    Some(&(j, at)) if t0.elapsed() >= at + REMOVE_LAG => {
                        to_remove.pop_front();
                        Some(j)
                    }
                    _ => None,
                };
                if let Some((j, how)) = due.and_then(|j| Some((j, removal(j)?))) {
                    let key = churn_key(j);
                    let invoke = t0.elapsed();
                    let (answer, op) = match how {
                        Removal::Delete => (
                            tokio::time::timeout(
                                Duration::from_secs(5),
                                redis::cmd("DEL").arg(&key).query_async::<i64>(c),
                            )
                            .await,
                            Op::Delete,
                        ),
                        Removal::Expire => (
                            tokio::time::timeout(
                                Duration::from_secs(5),
                                redis::cmd("PEXPIRE")
                                    .arg(&key)
                                    .arg(EXPIRE_MS)
                                    .query_async::<i64>(c),
                            )
                            .await,
                            // The latest the key can be gone by: the expiry started at the
                            // latest when the answer came.
                            Op::Expire {
                                at: t0.elapsed() + Duration::from_millis(EXPIRE_MS),
                            },
                        ),
                    };
                    let complete = t0.elapsed();
                    let found_nothing = matches!(answer, Ok(Ok(0)));
                    if found_nothing {
                        load.removals_found_nothing.push(key.clone());
                    }
                    if found_nothing && how == Removal::Expire {
                        // PEXPIRE on a missing key sets nothing: it is a read that saw the
                        // key absent, not an expiry.
                        load.history.read(history::Read {
                            key,
                            invoke,
                            complete,
                            seen: None,
                        });
                    } else {
                        let outcome = outcome(&answer);
                        load.history.record(history::Operation {
                            key,
                            op,
                            invoke,
                            complete,
                            outcome,
                        });
                        if outcome == history::Outcome::Unknown {
                            con = None;
                            continue;
                        }
                    }
                }
                if let Some(&k) = load.acked.get(i % load.acked.len().max(1)) {
                    load.reads += 1;
                    let key = churn_key(k);
                    let invoke = t0.elapsed();
                    let got = tokio::time::timeout(
                        Duration::from_secs(5),
                        redis::cmd("GET").arg(&key).query_async::<Option<String>>(c),
                    )
                    .await;
                    // Whether the value is right is the history's to say (it may have been
                    // deleted or expired meanwhile); here only the failures count.
                    match got {
                        Ok(Ok(seen)) => load.history.read(history::Read {
                            key,
                            invoke,
                            complete: t0.elapsed(),
                            seen,
                        }),
                        _ => load.failed_reads += 1,
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            load
        })
    };
    // Naming load: a registration every 250 ms through a random live node.
    let names = {
        let (net, stop) = (net.clone(), stop.clone());
        rt.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(2);
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("http client");
            let mut out: Vec<Registration> = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let live = net.live();
                let c = live[rng.gen_range(0..live.len())];
                let Some(a) = net.addrs(c) else { continue };
                let name = format!("reg{i}.proxima");
                i += 1;
                let (auth_name, auth_value) = a.auth.split_once(": ").unwrap_or(("", ""));
                let resp = client
                    .post(format!("{}/api/names", a.admin))
                    .header(auth_name, auth_value)
                    .json(&serde_json::json!({ "name": name }))
                    .send()
                    .await;
                let owner = match resp {
                    Ok(r) if r.status().is_success() => r
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v["owner"].as_str().map(str::to_owned)),
                    _ => None,
                };
                out.push(Registration {
                    at_s: t0.elapsed().as_secs_f64(),
                    name,
                    owner,
                });
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            out
        })
    };
    // One site owned inside the cut-off group and one outside it change during the partition.
    let updates: Vec<(usize, String)> = [
        sites.iter().find(|s| group.contains(&s.publisher)),
        sites.iter().find(|s| !group.contains(&s.publisher)),
    ]
    .into_iter()
    .flatten()
    .map(|s| (s.publisher, s.name.clone()))
    .collect();
    let faults = {
        let (net, p2, victims, group) = (net.clone(), p.clone(), victims.clone(), group.clone());
        std::thread::spawn(move || inject(&net, &p2, &victims, &group, &updates, t0))
            .join()
            .map_err(|_| anyhow::anyhow!("fault injection panicked"))?
    };
    std::thread::sleep(Duration::from_secs(p.duration_secs).saturating_sub(t0.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let views = rt.block_on(web)?;
    let load = rt.block_on(cache)?;
    let registrations = rt.block_on(names)?;

    super::progress(&format!(
        "load stopped: {} views, {} writes acknowledged",
        views.len(),
        load.acked.len()
    ));
    // After the heal: every key the load touched is read from node 0 and another node, and
    // what they say is checked against the history.
    let all_back = wait(Duration::from_secs(60), || {
        (0..net.n).all(|i| {
            net.peer_id(i)
                .is_some_and(|peer| net.all_see(&net.live(), &peer, true))
        })
    });
    report.metric("all_alive_after_s", all_back.unwrap_or(f64::NAN));
    // Every acknowledged expiry must have passed, or the final reads would judge a key that
    // may still legitimately hold its value.
    let last_expiry = load
        .history
        .ops()
        .iter()
        .filter_map(|o| match o.op {
            Op::Expire { at } if o.outcome != history::Outcome::Fail => Some(at),
            _ => None,
        })
        .max()
        .unwrap_or_default();
    std::thread::sleep(last_expiry.saturating_sub(t0.elapsed()));
    // A read that errs (a range still changing hands right after the heal) is retried, within
    // 20 s for all reads together; one that errs all along is unreadable (lost if the key must
    // hold a value).
    let keys = load.history.keys();
    let finals = rt.block_on(async {
        let mut finals: Vec<FinalRead> = Vec::new();
        let reader = net.live().into_iter().find(|&i| i != 0).unwrap_or(0);
        let retry_until = Instant::now() + Duration::from_secs(20);
        for via in [0, reader] {
            let mut con = connect(net.addrs(via).context("reader node")?.redis).await?;
            for key in &keys {
                let mut read = FinalRead {
                    key: key.clone(),
                    at: t0.elapsed(),
                    seen: Seen::Unreadable("not read".into()),
                    via: format!("through node {via}"),
                };
                for attempt in 0.. {
                    if attempt > 0 && Instant::now() >= retry_until {
                        break;
                    }
                    // Past the retry deadline one silent node must not cost 5 s per key.
                    let patience = if Instant::now() < retry_until { 5 } else { 1 };
                    let at = t0.elapsed();
                    let got = tokio::time::timeout(
                        Duration::from_secs(patience),
                        redis::cmd("GET")
                            .arg(key)
                            .query_async::<Option<String>>(&mut con),
                    )
                    .await
                    .map_err(|_| format!("no answer in {patience} s"))
                    .and_then(|r| r.map_err(|e| e.to_string()));
                    match got {
                        Ok(v) => {
                            read.at = at;
                            read.seen = v.map_or(Seen::Absent, Seen::Value);
                            break;
                        }
                        Err(e) => {
                            read.seen = Seen::Unreadable(e);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                finals.push(read);
            }
        }
        Ok::<_, anyhow::Error>(finals)
    })?;
    let verdict = load.history.check(&finals);
    // Resurrections by how the key was removed, for the table.
    let resurrected_by = |how: Removal| {
        let of: Vec<FinalRead> = finals
            .iter()
            .filter(|r| {
                r.key
                    .strip_prefix("churn:")
                    .and_then(|i| i.parse().ok())
                    .and_then(removal)
                    == Some(how)
            })
            .cloned()
            .collect();
        load.history.check(&of).resurrected
    };
    let (resurrected_deletes, resurrected_expiries) = (
        resurrected_by(Removal::Delete),
        resurrected_by(Removal::Expire),
    );
    let unreadable_reads = finals
        .iter()
        .filter(|r| matches!(r.seen, Seen::Unreadable(_)))
        .count();
    // Which live nodes still hold the key of each example (`CLUSTER GETKEYSINSLOT` answers from
    // the node's own keyspace): tells a write that never spread from one a read cannot find,
    // and which node kept a deleted key.
    let holders_of_examples: Vec<Vec<usize>> = rt.block_on(async {
        let mut all = Vec::new();
        for ex in verdict.examples.iter().take(5) {
            let slot = cache::slot::key_slot(ex.key.as_bytes());
            let mut holders = Vec::new();
            for i in net.live() {
                let Some(a) = net.addrs(i) else { continue };
                let Ok(mut con) = connect(a.redis).await else {
                    continue;
                };
                let keys: Vec<String> = redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(10_000)
                    .query_async(&mut con)
                    .await
                    .unwrap_or_default();
                if keys.contains(&ex.key) {
                    holders.push(i);
                }
            }
            all.push(holders);
        }
        all
    });

    // Zones after the heal: every node must hold the same zone for every site.
    let zone_of = |i: usize, name: &str| -> Option<Vec<u8>> {
        let a = net.addrs(i)?;
        let out =
            proxima::harness::curl(&["-sf", &format!("{}/api/names/{name}/zone", a.admin)]).ok()?;
        out.status.success().then_some(out.stdout)
    };
    let diverging = || -> usize {
        sites
            .iter()
            .filter(|s| {
                let zones: Vec<Option<Vec<u8>>> =
                    net.live().iter().map(|&i| zone_of(i, &s.name)).collect();
                zones.iter().any(|z| z.is_none() || *z != zones[0])
            })
            .count()
    };
    let converged = wait(Duration::from_secs(30), || diverging() == 0);
    let diverging_now = diverging();

    // Registrations: every acknowledged one is on every live node's ledger with its owner.
    let owner_on = |i: usize, name: &str| -> Option<String> {
        let a = net.addrs(i)?;
        let out =
            proxima::harness::curl(&["-sf", &format!("{}/api/names/{name}", a.admin)]).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["owner"].as_str().map(str::to_owned)
    };
    let acknowledged: Vec<&Registration> =
        registrations.iter().filter(|r| r.owner.is_some()).collect();
    let missing = || -> Vec<String> {
        acknowledged
            .iter()
            .flat_map(|r| {
                net.live()
                    .into_iter()
                    .filter(|&i| owner_on(i, &r.name) != r.owner)
                    .map(move |i| format!("{}@{i}", r.name))
            })
            .collect()
    };
    let _ = wait(Duration::from_secs(30), || missing().is_empty());
    let registrations_lost = missing();
    // How long registration was unavailable after each registrar was killed: from the kill to
    // the next acknowledged registration.
    let registrar_outages: Vec<(String, f64)> = faults
        .iter()
        .filter(|f| {
            registrars
                .iter()
                .any(|r| f.what == format!("kill + restart node {r}"))
        })
        .map(|f| {
            let back = registrations
                .iter()
                .filter(|r| r.owner.is_some() && r.at_s > f.at_s)
                .map(|r| r.at_s - f.at_s)
                .fold(f64::NAN, f64::min);
            (f.what.clone(), back)
        })
        .collect();

    // Views that failed while a holder of the site was alive and reachable from the client.
    let failed: Vec<&(f64, usize, bool, Outcome)> =
        views.iter().filter(|v| v.3.error.is_some()).collect();
    let unavailable: Vec<&&(f64, usize, bool, Outcome)> = failed
        .iter()
        .filter(|v| v.2 && v.3.holder_reachable)
        .collect();
    // A site is unavailable when its views keep failing, while a holder lives, for longer than
    // the failure detector needs to notice a death (a failed view inside that window is a
    // failed request, counted above, not an unavailable site).
    let grace = p.grace_secs as f64;
    let mut longest = vec![0.0f64; sites.len()];
    let mut streak: Vec<Option<f64>> = vec![None; sites.len()];
    for (t, s, client_alive, o) in &views {
        match (&o.error, *client_alive && o.holder_reachable) {
            (None, _) => streak[*s] = None,
            (Some(_), true) => {
                let start = *streak[*s].get_or_insert(*t);
                longest[*s] = longest[*s].max(t - start);
            }
            (Some(_), false) => {}
        }
    }
    let unavailable_sites: Vec<usize> = (0..sites.len()).filter(|&s| longest[s] > grace).collect();
    report.metric(
        "longest_site_outage_s",
        longest.iter().copied().fold(0.0, f64::max),
    );

    let kill_detect: Vec<f64> = faults
        .iter()
        .filter(|f| f.what.starts_with("kill"))
        .filter_map(|f| f.detect_s)
        .collect();
    report.metric("kills", victims.len() as f64);
    report.metric("kill_detected", kill_detect.len() as f64);
    report.metric("detect_p50_s", percentile(&kill_detect, 50.0));
    report.metric(
        "detect_max_s",
        kill_detect.iter().copied().fold(f64::NAN, f64::max),
    );
    if let Some(part) = faults.iter().find(|f| f.what.starts_with("partition")) {
        report.metric("partition_detect_s", part.detect_s.unwrap_or(f64::NAN));
        report.metric("partition_rejoined_s", part.recovered_s.unwrap_or(f64::NAN));
        if let Some(h) = part.heal {
            report.metric("heal_state_bytes", h.bytes as f64);
            report.metric("heal_window_s", h.window_s);
            report.metric("cut_state_bytes_per_s", h.cut_bytes_per_s);
            report.metric("heal_keys_held", h.keys_held as f64);
        }
    }
    report.metric("views", views.len() as f64);
    report.metric("failed_views", failed.len() as f64);
    report.metric(
        "unavailable_views_while_holder_lived",
        unavailable.len() as f64,
    );
    report.metric(
        "sites_unavailable_while_holder_lived",
        unavailable_sites.len() as f64,
    );
    report.metric(
        "unverified_files",
        views.iter().map(|v| v.3.unverified as f64).sum(),
    );
    report.metric("cache_writes_acked", load.acked.len() as f64);
    report.metric("cache_writes_failed", load.failed_writes as f64);
    report.metric(
        "cache_deletes_acked",
        load.history.acked(&Op::Delete) as f64,
    );
    report.metric(
        "cache_expires_acked",
        load.history.acked(&Op::Expire { at: Duration::ZERO }) as f64,
    );
    report.metric(
        "cache_removals_found_nothing",
        load.removals_found_nothing.len() as f64,
    );
    report.metric("cache_reads", load.reads as f64);
    report.metric("cache_reads_failed", load.failed_reads as f64);
    report.metric("cache_keys_checked", verdict.keys_checked as f64);
    report.metric("acked_writes_lost", verdict.lost as f64);
    report.metric("acked_writes_stale", verdict.stale as f64);
    report.metric("keys_resurrected", verdict.resurrected as f64);
    report.metric("values_invented", verdict.invented as f64);
    report.metric("cache_keys_unreadable", verdict.unreadable as f64);
    report.metric("zones_diverging_after_heal", diverging_now as f64);
    report.metric("registrations", registrations.len() as f64);
    report.metric("registrations_acked", acknowledged.len() as f64);
    report.metric("registrations_lost", registrations_lost.len() as f64);
    report.metric(
        "registration_unavailable_max_s",
        registrar_outages
            .iter()
            .map(|o| if o.1.is_nan() { f64::INFINITY } else { o.1 })
            .fold(0.0, f64::max),
    );
    for lost in registrations_lost.iter().take(5) {
        report
            .notes
            .push(format!("acknowledged registration missing: {lost}"));
    }
    report.tables.push(Table {
        title: "Registration while registrars die".into(),
        header: ["fault", "registration back after s"]
            .map(String::from)
            .to_vec(),
        rows: registrar_outages
            .iter()
            .map(|(what, s)| {
                vec![
                    what.clone(),
                    if s.is_nan() {
                        "never".into()
                    } else {
                        format!("{s:.1}")
                    },
                ]
            })
            .collect(),
    });
    report.metric("zones_converged_s", converged.unwrap_or(f64::NAN));

    report.tables.push(Table {
        title: "Faults".into(),
        header: [
            "fault",
            "at s",
            "detected after s",
            "back in the mesh after s",
        ]
        .map(String::from)
        .to_vec(),
        rows: faults
            .iter()
            .map(|f| {
                let s = |v: Option<f64>| {
                    v.map_or("not within the deadline".into(), |v| format!("{v:.1}"))
                };
                vec![
                    f.what.clone(),
                    format!("{:.1}", f.at_s),
                    s(f.detect_s),
                    s(f.recovered_s),
                ]
            })
            .collect(),
    });
    // DELs and PEXPIREs sent, whatever their outcome (an expiry's time does not matter here).
    let expire = Op::Expire { at: Duration::ZERO };
    let sent = |like: &Op| {
        load.history
            .ops()
            .iter()
            .filter(|o| std::mem::discriminant(&o.op) == std::mem::discriminant(like))
            .count()
    };
    report.tables.push(Table {
        title: "Requests under churn".into(),
        header: ["load", "requests", "failed", "must be 0"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            vec![
                "page views".into(),
                views.len().to_string(),
                failed.len().to_string(),
                format!(
                    "{} while a holder lived ({} sites)",
                    unavailable.len(),
                    unavailable_sites.len()
                ),
            ],
            vec![
                "cache SET (sync replication)".into(),
                (load.acked.len() + load.failed_writes).to_string(),
                load.failed_writes.to_string(),
                format!(
                    "{} acknowledged writes lost ({} of them stale)",
                    verdict.lost, verdict.stale
                ),
            ],
            vec![
                "cache DEL (every 5th key)".into(),
                sent(&Op::Delete).to_string(),
                (sent(&Op::Delete) - load.history.acked(&Op::Delete)).to_string(),
                format!("{resurrected_deletes} deleted keys resurrected"),
            ],
            vec![
                format!("cache PEXPIRE {EXPIRE_MS} ms (every 7th other key)"),
                sent(&expire).to_string(),
                (sent(&expire) - load.history.acked(&expire)).to_string(),
                format!("{resurrected_expiries} expired keys resurrected"),
            ],
            vec![
                "cache GET".into(),
                load.reads.to_string(),
                load.failed_reads.to_string(),
                format!("{} values invented (GET and read-back)", verdict.invented),
            ],
            vec![
                "cache read-back after heal (2 nodes)".into(),
                finals.len().to_string(),
                unreadable_reads.to_string(),
                "-".into(),
            ],
            vec![
                "zones after heal".into(),
                sites.len().to_string(),
                diverging_now.to_string(),
                format!("{diverging_now} diverging"),
            ],
        ],
    });
    for (ex, holders) in verdict.examples.iter().zip(&holders_of_examples) {
        report.notes.push(format!(
            "{ex} (range {}; history: {}); nodes still holding it: {holders:?}",
            cache::cluster::group_of(cache::slot::key_slot(ex.key.as_bytes())),
            ops_of(&load.history, &ex.key)
        ));
    }
    for ex in verdict.examples.iter().skip(holders_of_examples.len()) {
        report.notes.push(ex.to_string());
    }
    if !load.removals_found_nothing.is_empty() {
        report.notes.push(format!(
            "{} DEL/PEXPIRE found their acknowledged key missing during the run (first: {})",
            load.removals_found_nothing.len(),
            load.removals_found_nothing[..load.removals_found_nothing.len().min(5)].join(", ")
        ));
    }
    let mut errors: Vec<String> = failed.iter().filter_map(|v| v.3.error.clone()).collect();
    errors.sort();
    errors.dedup();
    for e in errors.into_iter().take(5) {
        report.notes.push(format!("failed view: {e}"));
    }
    report.notes.push(
        "The partition cuts every link between the two sides: the QUIC data plane (membership \
         probes, transfers, cache links) and libp2p (gossip, Kademlia), so zones changed on \
         one side reach the other only after the heal."
            .into(),
    );
    let mut views_ok: Vec<f64> = views
        .iter()
        .filter(|v| v.3.error.is_none())
        .map(|v| v.3.full_ms)
        .collect();
    views_ok.sort_by(f64::total_cmp);
    let mut lat = Report::latency_table("Page views under churn (client RTT included)");
    report.latency("page_under_churn", &views_ok, &mut lat);
    report.tables.push(lat);
    net.stop();
    Ok(())
}
