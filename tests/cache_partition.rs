//! A group of cache members cut off from the majority: the majority goes on acknowledging
//! writes, the cut-off minority refuses writes (`CLUSTERDOWN`, as Redis Cluster's minority
//! does), and after the heal every write the majority acknowledged is still readable, also in
//! the ranges whose owners are now all back on the minority side.
//!
//! Seven nodes on the emulated WAN, replication factor 2, synchronous replication; nodes 4-6
//! are cut off from nodes 0-3. About one range in seven has both its owners among nodes 4-6:
//! while they are away those ranges are held by two majority nodes, which lose them at the heal,
//! and the returning owners must take the majority's copy, not each other's (they missed every
//! write of the cut). A second test restarts a minority node during the cut: it comes back
//! knowing only its own side, so it never learns it lacks a majority, serves its (empty) copies
//! as current and would hand them over at the heal; the members must merge its copies with the
//! majority's, newest per key. Each test waits out the minute during which start-up hand-overs
//! keep replicating to their pullers, so each takes about two minutes.

use std::net::SocketAddr;
use std::time::Duration;

use proxima::harness::{Cluster, cache_converged, cluster_info_field, wait_for, wan_options};

use crate::common;
use common::connect;

const NODES: usize = 7;
const MINORITY: std::ops::Range<usize> = 4..7;
const KEYS: usize = 600;

fn cut(wan: &mesh::WanEmulator, on: bool) {
    for a in 0..MINORITY.start {
        for b in MINORITY {
            wan.set_cut(a, b, on);
        }
    }
}

/// Seven nodes on the emulated WAN (RF 2, sync replication), converged, `before:` written
/// through node 0, and the start-up hand-overs expired.
fn start(wan: &std::sync::Arc<mesh::WanEmulator>) -> (Cluster, Vec<SocketAddr>) {
    start_with(wan, |_| {})
}

/// As [`start`], with `write` run through node 0 before the start-up hand-overs expire: what it
/// writes is older than any hand-off window by the time the test cuts the cluster.
fn start_with(
    wan: &std::sync::Arc<mesh::WanEmulator>,
    write: impl FnOnce(&mut redis::Connection),
) -> (Cluster, Vec<SocketAddr>) {
    proxima::harness::logs_from_env();
    let cluster = Cluster::start_meshed(
        NODES,
        |_, c| {
            c.cache.replication_factor = 2;
            c.cache.sync_replication = true;
        },
        |i| wan_options(wan, i),
        Duration::from_secs(90),
    )
    .expect("seven nodes on the emulated WAN");
    for i in 0..NODES {
        if let Some(h) = cluster.node(i).handle() {
            tracing::info!(node = i, peer = %h.info().peer_id, "test: node's peer id");
        }
    }
    let addrs: Vec<SocketAddr> = (0..NODES).map(|i| redis_addr(&cluster, i)).collect();
    wait_for(Duration::from_secs(90), || cache_converged(&addrs, NODES))
        .expect("seven nodes converge");
    let mut w = connect(addrs[0]);
    common::write_all(&mut w, "before:", KEYS);
    write(&mut w);
    // Start-up pullers keep receiving their ranges' writes for a minute whatever the view says,
    // which would carry writes over the cut by itself: wait that out.
    wait_for(Duration::from_secs(90), || {
        addrs
            .iter()
            .all(|a| cluster_info_field(*a, "proxima_exporting_ranges").as_deref() == Some("0"))
    })
    .expect("the start-up hand-overs expire");
    (cluster, addrs)
}

fn redis_addr(cluster: &Cluster, i: usize) -> SocketAddr {
    cluster.node(i).addr("redis").unwrap().parse().unwrap()
}

/// Cuts the minority off and waits until the majority dropped it from its view, then until
/// the majority serves every range, those whose owners are all cut off included: no member
/// holds those, and each member says so, so they are served after one round of pulls rather
/// than after the 30 s a range whose sources refused once waited.
fn cut_off(wan: &mesh::WanEmulator, addrs: &[SocketAddr]) {
    cut(wan, true);
    let bound = mesh::MembershipConfig::lan().detection_bound();
    wait_for(bound + Duration::from_secs(30), || {
        addrs[..MINORITY.start].iter().all(|a| {
            cluster_info_field(*a, "proxima_members").as_deref()
                == Some(&MINORITY.start.to_string())
        })
    })
    .expect("the majority drops the cut-off nodes from its view");
    let dropped = std::time::Instant::now();
    let served = wait_for(Duration::from_secs(20), || {
        addrs[..MINORITY.start]
            .iter()
            .all(|a| cluster_info_field(*a, "proxima_importing_ranges").as_deref() == Some("0"))
    });
    eprintln!(
        "the majority served every range {:.1} s after dropping the minority",
        dropped.elapsed().as_secs_f64()
    );
    served.expect("the majority serves every range within 20 s of the cut");
}

/// Heals the cut; once the cache converged, every node serves every write of `prefixes`.
fn heal_and_check(wan: &mesh::WanEmulator, addrs: &[SocketAddr], prefixes: &[&str]) {
    cut(wan, false);
    let healed = std::time::Instant::now();
    wait_for(Duration::from_secs(90), || cache_converged(addrs, NODES))
        .expect("the seven nodes converge again after the heal");
    eprintln!(
        "every node serves every range {:.1} s after the heal",
        healed.elapsed().as_secs_f64()
    );
    for (i, a) in addrs.iter().enumerate() {
        let mut con = connect(*a);
        for prefix in prefixes {
            let mut last = Vec::new();
            let served = wait_for(Duration::from_secs(30), || {
                last = common::missing(&mut con, prefix, KEYS);
                last.is_empty()
            });
            assert!(
                served.is_ok(),
                "after the heal node {i} misses {} of {KEYS} acknowledged writes {prefix}* \
                 (e.g. {prefix}{:?})",
                last.len(),
                &last[..last.len().min(5)]
            );
        }
    }
}

#[test]
fn writes_acknowledged_by_the_majority_survive_the_heal_and_the_minority_refuses_writes() {
    let wan = mesh::WanEmulator::new(NODES, |a, b| if a == b { 0.0 } else { 2.0 }, 17);
    let (_cluster, addrs) = start(&wan);
    cut_off(&wan, &addrs);
    let mut w = connect(addrs[0]);
    common::write_all(&mut w, "during:", KEYS);
    // Every one of them is readable at once: the ranges no member can hand over are served
    // by their new owner, not by whichever member it is asking at the moment.
    let gone = common::missing(&mut w, "during:", KEYS);
    assert!(
        gone.is_empty(),
        "during the cut {} of {KEYS} writes the majority acknowledged read as missing",
        gone.len()
    );

    // The minority, once it sees itself without a majority, refuses writes.
    let bound = mesh::MembershipConfig::lan().detection_bound();
    let mut m = connect(addrs[MINORITY.start]);
    let refused = wait_for(bound + Duration::from_secs(30), || {
        let r: redis::RedisResult<()> = redis::cmd("SET").arg("minority:x").arg(1).query(&mut m);
        r.is_err_and(|e| e.code() == Some("CLUSTERDOWN"))
    });
    assert!(
        refused.is_ok(),
        "a node cut off with 2 others of 7 still accepts writes"
    );

    heal_and_check(&wan, &addrs, &["during:", "before:"]);
    // Writes go on everywhere once healed.
    let mut m = connect(addrs[MINORITY.start]);
    redis::cmd("SET")
        .arg("after:x")
        .arg(1)
        .query::<()>(&mut m)
        .expect("a healed minority node accepts writes again");
}

#[test]
fn a_node_restarted_on_the_minority_side_does_not_hide_the_majority_writes() {
    let wan = mesh::WanEmulator::new(NODES, |a, b| if a == b { 0.0 } else { 2.0 }, 23);
    let (mut cluster, mut addrs) = start(&wan);
    cut_off(&wan, &addrs);
    common::write_all(&mut connect(addrs[0]), "during:", KEYS);
    // Node 6 restarts while cut off: it knows only what it can reach now, never the majority
    // it lacks, so it serves its ranges, empty, as current.
    let last = NODES - 1;
    cluster.node_mut(last).restart().expect("node 6 restarts");
    addrs[last] = redis_addr(&cluster, last);
    wait_for(Duration::from_secs(90), || {
        cluster_info_field(addrs[last], "proxima_importing_ranges").as_deref() == Some("0")
    })
    .expect("the restarted node serves every range it owns");
    common::write_all(&mut connect(addrs[0]), "later:", KEYS);
    heal_and_check(&wan, &addrs, &["during:", "later:", "before:"]);
}

/// `before:` keys the majority deletes during the cut, and those it lets expire.
const DELETED: std::ops::Range<usize> = 0..200;
const EXPIRED: std::ops::Range<usize> = 200..400;

/// The `i` of `which` whose key `{prefix}{i}` `con` reads as present.
fn present(
    con: &mut redis::Connection,
    prefix: &str,
    which: impl IntoIterator<Item = usize>,
) -> Vec<usize> {
    let which: Vec<usize> = which.into_iter().collect();
    let mut p = redis::pipe();
    for i in &which {
        p.cmd("EXISTS").arg(format!("{prefix}{i}"));
    }
    match p.query::<Vec<u8>>(con) {
        Ok(got) => which
            .into_iter()
            .zip(got)
            .filter(|(_, e)| *e == 1)
            .map(|(i, _)| i)
            .collect(),
        // A failed read is not a resurrection; the callers wait or check elsewhere.
        Err(_) => Vec::new(),
    }
}

#[test]
fn keys_deleted_or_expired_on_the_majority_stay_gone_after_the_heal() {
    let wan = mesh::WanEmulator::new(NODES, |a, b| if a == b { 0.0 } else { 2.0 }, 29);
    let (_cluster, addrs) = start(&wan);
    cut_off(&wan, &addrs);
    // On the majority: a third of the sessions logged out, a third timed out, a third kept.
    let mut w = connect(addrs[0]);
    let mut p = redis::pipe();
    for i in DELETED {
        p.cmd("DEL").arg(format!("before:{i}")).ignore();
    }
    for i in EXPIRED {
        p.cmd("PEXPIRE").arg(format!("before:{i}")).arg(1500);
    }
    let set: Vec<i64> = p
        .query(&mut w)
        .expect("the majority acknowledges the deletes and expiries");
    // A PEXPIRE answered 0 found no key on the majority (a range both of whose owners are cut
    // off is held there without the keys written before the cut): nothing expires, and the key
    // is back with its value after the heal. DEL is a delete whatever it found.
    let expired: Vec<usize> = EXPIRED
        .zip(&set)
        .filter(|(_, s)| **s == 1)
        .map(|(i, _)| i)
        .collect();
    assert!(
        expired.len() > EXPIRED.len() / 2,
        "the majority set only {} of {} expiries",
        expired.len(),
        EXPIRED.len()
    );
    let gone: Vec<usize> = DELETED.chain(expired.iter().copied()).collect();
    let kept: Vec<usize> = (EXPIRED.start..KEYS)
        .filter(|i| !expired.contains(i))
        .collect();
    wait_for(Duration::from_secs(30), || {
        present(&mut w, "before:", gone.iter().copied()).is_empty()
    })
    .expect("the majority no longer serves the deleted and expired keys");
    // The minority still holds copies of them: what would come back at the heal.
    let held: usize = addrs[MINORITY]
        .iter()
        .map(|a| {
            let mut c = connect(*a);
            redis::cmd("READONLY").query::<()>(&mut c).unwrap();
            present(&mut c, "before:", gone.iter().copied()).len()
        })
        .sum();
    assert!(
        held > 0,
        "no minority node holds a copy of the deleted keys"
    );

    heal_and_check(&wan, &addrs, &[]);
    assert_gone_and_kept(&addrs, &gone, &kept);
    // Once the heal's hand-offs and pulls are over too: nothing brought them back later.
    wait_for(Duration::from_secs(120), || {
        addrs
            .iter()
            .all(|a| cluster_info_field(*a, "proxima_exporting_ranges").as_deref() == Some("0"))
    })
    .expect("the heal's hand-overs end");
    assert_gone_and_kept(&addrs, &gone, &kept);
}

/// Every node, with and without `READONLY`, serves none of the `before:` keys of `gone` and
/// every one of `kept`.
fn assert_gone_and_kept(addrs: &[SocketAddr], gone: &[usize], kept: &[usize]) {
    for (i, a) in addrs.iter().enumerate() {
        for readonly in [false, true] {
            let mut con = connect(*a);
            if readonly {
                redis::cmd("READONLY").query::<()>(&mut con).unwrap();
            }
            let back = present(&mut con, "before:", gone.iter().copied());
            assert!(
                back.is_empty(),
                "after the heal node {i} (READONLY: {readonly}) serves {} deleted or expired \
                 keys again (e.g. before:{:?})",
                back.len(),
                &back[..back.len().min(5)]
            );
            let served = present(&mut con, "before:", kept.iter().copied());
            assert_eq!(
                served.len(),
                kept.len(),
                "after the heal node {i} (READONLY: {readonly}) misses keys nobody deleted \
                 or expired"
            );
        }
    }
}

/// Bytes each node received from its peers so far: key states on replication links and in
/// merge answers, and the hashes and masks of merges (`INFO cluster`).
fn state_bytes_received(addrs: &[SocketAddr]) -> Vec<[u64; 3]> {
    addrs
        .iter()
        .map(|a| {
            [
                "state_bytes_received_link",
                "state_bytes_received_merge",
                "tree_bytes_received",
            ]
            .map(|what| {
                cluster_info_field(*a, &format!("proxima_{what}"))
                    .and_then(|v| v.parse::<u64>().ok())
                    .expect("INFO cluster reports the state bytes received")
            })
        })
        .collect()
}

#[test]
fn a_heal_moves_the_difference_not_the_keyspace() {
    const SESSIONS: usize = 20_000;
    let wan = mesh::WanEmulator::new(NODES, |a, b| if a == b { 0.0 } else { 2.0 }, 31);
    let value = "v".repeat(100);
    let (_cluster, addrs) = start_with(&wan, |w| {
        for chunk in (0..SESSIONS).collect::<Vec<_>>().chunks(2_000) {
            let mut p = redis::pipe();
            for i in chunk {
                p.cmd("SET")
                    .arg(format!("session:{i}"))
                    .arg(&value)
                    .ignore();
            }
            p.query::<()>(w).expect("every session is written");
        }
    });
    let mut w = connect(addrs[0]);
    let keyspace: usize = (0..SESSIONS)
        .map(|i| format!("session:{i}").len() + value.len())
        .sum();
    cut_off(&wan, &addrs);
    // 1 % of the sessions change on the majority during the cut: half rewritten, half deleted.
    let changed = SESSIONS / 100;
    let mut p = redis::pipe();
    for (n, i) in (0..SESSIONS).step_by(SESSIONS / changed).enumerate() {
        if n % 2 == 0 {
            p.cmd("SET")
                .arg(format!("session:{i}"))
                .arg("renewed")
                .ignore();
        } else {
            p.cmd("DEL").arg(format!("session:{i}")).ignore();
        }
    }
    p.query::<()>(&mut w)
        .expect("the majority acknowledges the changes");
    // What the cut itself moved (the majority restoring its copies of the ranges the minority
    // held, the minority settling on its own view) is done before the heal is measured.
    wait_for(Duration::from_secs(90), || {
        addrs
            .iter()
            .all(|a| cluster_info_field(*a, "proxima_importing_ranges").as_deref() == Some("0"))
    })
    .expect("both sides serve every range they own during the cut");
    let before = state_bytes_received(&addrs);
    heal_and_check(&wan, &addrs, &[]);
    wait_for(Duration::from_secs(120), || {
        addrs
            .iter()
            .all(|a| cluster_info_field(*a, "proxima_exporting_ranges").as_deref() == Some("0"))
    })
    .expect("the heal's hand-overs end");
    let after = state_bytes_received(&addrs);
    let per_node: Vec<[u64; 3]> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| [a[0] - b[0], a[1] - b[1], a[2] - b[2]])
        .collect();
    let moved: u64 = per_node.iter().flatten().sum();
    let share = moved as f64 / keyspace as f64;
    eprintln!(
        "heal cost: {moved} bytes moved for a keyspace of {keyspace} bytes ({:.1} %), \
         {changed} of {SESSIONS} keys changed during the cut; per node [states on links, \
         states in merges, merge hashes]: {per_node:?}",
        share * 100.0
    );
    // Every node serves the majority's state.
    for a in &addrs {
        let mut con = connect(*a);
        let got: Vec<Option<String>> = (0..SESSIONS)
            .step_by(SESSIONS / changed)
            .map(|i| {
                redis::cmd("GET")
                    .arg(format!("session:{i}"))
                    .query(&mut con)
                    .unwrap()
            })
            .collect();
        for (n, g) in got.iter().enumerate() {
            let want = if n % 2 == 0 { Some("renewed") } else { None };
            let i = n * (SESSIONS / changed);
            assert_eq!(g.as_deref(), want, "session:{i} after the heal");
        }
    }
    // 2.7-4.0 % alone (six runs); with other tests beside it 3.4 %, 11 %, 21 % and once 43 %,
    // the excess in merge states into the minority nodes (not explained yet: see network.md,
    // session 30). The bound catches a return to whole-range pulls (1,634 %) without failing
    // on a loaded machine.
    assert!(
        share < 0.50,
        "a heal after 1 % of keys changed moved {:.1} % of the keyspace's bytes",
        share * 100.0
    );
}
