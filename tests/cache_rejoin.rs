//! A cache member cut off from the others long enough to be declared down, while writes go on
//! without it, serves those writes once the cut heals.
//!
//! Three nodes on the emulated WAN, replication factor 3 (every node holds every range),
//! synchronous replication. Node 2's links are cut; nodes 0 and 1 declare it down and keep
//! acknowledging writes between themselves. Nothing changes in node 2's own ranges (it owns
//! every one before, during and after), so unless it notices that it was declared down it would
//! go on answering `READONLY` reads for those writes with misses. After the heal it must answer
//! every one of them, from its own copy. (The test waits out the minute during which start-up
//! hand-overs keep replicating to their pullers, so it takes about 90 s.)

use std::net::SocketAddr;
use std::time::Duration;

use proxima::harness::{Cluster, cache_converged, cluster_info_field, wait_for, wan_options};

use crate::common;
use common::connect;

const KEYS: usize = 300;
const CUT: usize = 2;

#[test]
fn a_member_declared_down_serves_the_writes_it_missed_after_the_heal() {
    let wan = mesh::WanEmulator::new(3, |a, b| if a == b { 0.0 } else { 2.0 }, 11);
    let cluster = Cluster::start_meshed(
        3,
        |_, c| {
            c.cache.replication_factor = 3;
            c.cache.sync_replication = true;
        },
        |i| wan_options(&wan, i),
        Duration::from_secs(60),
    )
    .expect("three nodes on the emulated WAN");
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|i| cluster.node(i).addr("redis").unwrap().parse().unwrap())
        .collect();
    wait_for(Duration::from_secs(60), || cache_converged(&addrs, 3)).expect("three nodes converge");
    let mut w = connect(addrs[0]);
    common::write_all(&mut w, "before:", KEYS);
    // A node that pulled ranges at start keeps receiving their writes for a minute whatever
    // the view says (that would carry the writes over the cut by itself): wait that out.
    wait_for(Duration::from_secs(90), || {
        addrs
            .iter()
            .all(|a| cluster_info_field(*a, "proxima_exporting_ranges").as_deref() == Some("0"))
    })
    .expect("the start-up hand-overs expire");

    for other in 0..3 {
        if other != CUT {
            wan.set_cut(other, CUT, true);
        }
    }
    let bound = mesh::MembershipConfig::lan().detection_bound();
    wait_for(bound + Duration::from_secs(20), || {
        cache_converged(&addrs[..2], 2)
    })
    .expect("nodes 0 and 1 drop the cut-off node from their view");
    common::write_all(&mut w, "during:", KEYS);
    assert_eq!(common::missing(&mut w, "during:", KEYS).len(), 0);

    for other in 0..3 {
        if other != CUT {
            wan.set_cut(other, CUT, false);
        }
    }
    wait_for(Duration::from_secs(60), || cache_converged(&addrs, 3))
        .expect("the three nodes converge again after the heal");

    let mut ro = connect(addrs[CUT]);
    redis::cmd("READONLY").query::<()>(&mut ro).unwrap();
    let mut last = KEYS;
    let served = wait_for(Duration::from_secs(30), || {
        last = common::missing(&mut ro, "during:", KEYS).len();
        last == 0
    });
    assert!(
        served.is_ok(),
        "after the heal the node that was declared down still misses {last} of {KEYS} writes \
         made while it was cut off"
    );
    assert_eq!(common::missing(&mut ro, "before:", KEYS).len(), 0);
    let mut plain = connect(addrs[CUT]);
    assert_eq!(common::missing(&mut plain, "during:", KEYS).len(), 0);
}
