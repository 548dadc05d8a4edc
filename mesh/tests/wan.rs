//! Twenty meshes on an emulated WAN built from real PlanetLab RTTs: every datagram between two
//! nodes is delayed by half the RTT of their link, in both directions. Coordinates must converge
//! and `rank` must put the truly nearest of several candidates first in most draws.

use std::time::{Duration, Instant};

use mesh::{MemberState, MembershipConfig, Mesh, MeshConfig, WanEmulator};
use prometheus_client::registry::Registry;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const NODES: usize = 20;

fn planetlab() -> Vec<Vec<f64>> {
    // A copy of ../shared/data/latency/planetlab-490.tsv (MIT, see testdata/LICENSE), vendored
    // so the test runs from any clone.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/planetlab-490.tsv");
    let text = std::fs::read_to_string(path).expect("mesh/testdata/planetlab-490.tsv");
    text.lines()
        .map(|l| l.split('\t').map(|v| v.parse().unwrap()).collect())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn coordinates_converge_and_rank_picks_the_nearest() {
    let full = planetlab();
    let mut rng = rand::rngs::StdRng::seed_from_u64(490);
    let mut pick: Vec<usize> = (0..full.len()).collect();
    pick.shuffle(&mut rng);
    pick.truncate(NODES);
    let rtt = |a: usize, b: usize| if a == b { 0.0 } else { full[pick[a]][pick[b]] };
    let wan = WanEmulator::new(NODES, rtt, 7);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let meshes: Vec<Mesh> = rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..NODES {
            let mut config = MeshConfig::local();
            config.wan = Some(mesh::WanLink {
                emulator: wan.clone(),
                position: i,
            });
            // Probe timing for RTTs up to ~0.5 s, short enough to keep the test quick.
            config.membership = MembershipConfig {
                probe_period: Duration::from_millis(1500),
                probe_rtt: Duration::from_millis(900),
                suspect_to_down_after: Duration::from_secs(5),
                ..MembershipConfig::wan()
            };
            let mut seed = [0u8; 32];
            seed[0] = i as u8 + 1;
            let m = Mesh::start(
                mesh::keypair_from_seed(seed),
                config,
                &mut Registry::default(),
            )
            .await
            .unwrap();
            out.push(m);
        }
        let boot = out[0].local_member();
        for m in &out[1..] {
            m.join(boot.clone()).await;
        }
        out
    });

    // Membership over the WAN: everyone sees everyone.
    let start = Instant::now();
    let everyone = |m: &Mesh| {
        m.members()
            .iter()
            .filter(|v| !v.is_self && v.state == MemberState::Alive && v.meta.is_some())
            .count()
            == NODES - 1
    };
    while !meshes.iter().all(everyone) {
        // A bound, not a timing: 20 meshes in one process take 10-30 s here, and over 40 s
        // on a loaded 2-core machine (a full suite beside a build); the figure is in
        // benches/results/mesh.md.
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "membership did not converge"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("20 nodes see each other after {:?}", start.elapsed());

    // Coordinates converge: median relative error of every node's estimate to every other.
    let coord_error = || {
        let mut errs = Vec::new();
        for (i, m) in meshes.iter().enumerate() {
            let index_of = |peer: &str| {
                meshes
                    .iter()
                    .position(|x| x.peer_id().to_string() == peer)
                    .unwrap()
            };
            for s in m.status().into_iter().filter(|s| !s.is_self) {
                if let Some(est) = s.coord_distance_ms {
                    let truth = rtt(i, index_of(&s.peer_id));
                    errs.push((est - truth).abs() / truth);
                }
            }
        }
        if errs.len() < NODES * (NODES - 1) / 2 {
            1.0
        } else {
            median(errs)
        }
    };
    let mut err = coord_error();
    while err > 0.25 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "coordinates did not converge: median relative error {err:.3}"
        );
        std::thread::sleep(Duration::from_millis(500));
        err = coord_error();
    }
    eprintln!(
        "coordinates: median relative error {err:.3} after {:?}",
        start.elapsed()
    );

    // rank: the truly nearest of 5 random candidates first, in most draws.
    let draws = 200;
    let mut hits = 0;
    let mut stretches = Vec::new();
    for _ in 0..draws {
        let client = rng.gen_range(0..NODES);
        let mut cands: Vec<usize> = (0..NODES).filter(|&j| j != client).collect();
        cands.shuffle(&mut rng);
        cands.truncate(5);
        let peers: Vec<_> = cands.iter().map(|&j| meshes[j].peer_id()).collect();
        let order = meshes[client].rank(&peers, false);
        assert_eq!(order.len(), 5);
        let chosen = meshes
            .iter()
            .position(|m| m.peer_id() == order[0].peer)
            .unwrap();
        let best = cands
            .iter()
            .map(|&j| rtt(client, j))
            .fold(f64::INFINITY, f64::min);
        if rtt(client, chosen) <= best {
            hits += 1;
        }
        stretches.push(rtt(client, chosen) / best);
    }
    let hit_rate = hits as f64 / draws as f64;
    let stretch = median(stretches);
    eprintln!("rank: nearest first in {hit_rate:.2} of {draws} draws, median stretch {stretch:.3}");
    assert!(hit_rate > 0.6, "hit rate {hit_rate}");
    assert!(stretch < 1.2, "stretch {stretch}");

    // Cut the direct link 0-1: SWIM's indirect probes through the others keep node 1 alive in
    // node 0's view (a member that is reachable at all is not declared dead by mistake).
    wan.set_cut(0, 1, true);
    let victim = meshes[1].peer_id();
    let cut_at = Instant::now();
    while cut_at.elapsed() < Duration::from_millis(1500 * 3 + 5000) {
        let state = meshes[0]
            .members()
            .into_iter()
            .find(|v| v.id.peer == victim)
            .map(|v| v.state);
        assert!(
            matches!(state, Some(MemberState::Alive | MemberState::Suspect)),
            "node 1 declared {state:?} although reachable through others"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    wan.set_cut(0, 1, false);

    rt.block_on(async {
        for m in &meshes {
            m.leave(Duration::from_millis(300)).await;
        }
    });
}
