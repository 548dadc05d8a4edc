//! The cache spread over a 3-node mesh, through real cluster clients: `redis-cli -c`, redis-py's
//! `RedisCluster`, the Rust `redis` crate's cluster client, plain clients proxied by any node,
//! Pub/Sub across nodes, and a membership change (a fourth node joins: the clients follow
//! `MOVED`, and no key is lost in the hand-over).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use proxima::harness::{Cluster, TestNode, redis_cli, test_options, wait_for};

fn redis_addr(n: &TestNode) -> SocketAddr {
    n.addr("redis")
        .expect("redis address")
        .parse()
        .expect("addr")
}

fn url(a: SocketAddr) -> String {
    format!("redis://{a}/")
}

fn info_field(a: SocketAddr, field: &str) -> Option<String> {
    let out = redis_cli(a, &["info", "cluster"]).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// Waits until every node sees `n` cache members and serves every range it owns.
fn wait_converged(addrs: &[SocketAddr], n: usize, deadline: Duration) {
    wait_for(deadline, || {
        addrs.iter().all(|a| {
            info_field(*a, "proxima_members").as_deref() == Some(&n.to_string())
                && info_field(*a, "proxima_importing_ranges").as_deref() == Some("0")
        })
    })
    .unwrap_or_else(|_| panic!("the {n} nodes did not converge"));
}

/// `redis-cli ARGS` with `input` on stdin; stdout.
fn redis_cli_stdin(args: &[&str], input: &str) -> String {
    let mut child = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("redis-cli ends");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One request on a raw connection that first asked for the map (so it gets `MOVED`); the
/// request's reply line.
fn aware_request(a: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(a).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("CLUSTER SHARDS\r\n{req}\r\n").as_bytes())
        .unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let n = s.read(&mut b).unwrap();
        out.extend_from_slice(&b[..n]);
        let text = String::from_utf8_lossy(&out);
        if n == 0 || (text.contains("\r\n-") && text.ends_with("\r\n")) {
            return text
                .lines()
                .find(|l| l.starts_with('-'))
                .unwrap_or_default()
                .to_owned();
        }
    }
}

/// The primary of `slot` according to `CLUSTER SLOTS` from `a`.
fn primary_of(a: SocketAddr, slot: i64) -> SocketAddr {
    holders_of(a, slot)[0]
}

/// The holders of `slot` (primary first) according to `CLUSTER SLOTS` from `a`.
fn holders_of(a: SocketAddr, slot: i64) -> Vec<SocketAddr> {
    let mut con = redis::Client::open(url(a))
        .unwrap()
        .get_connection()
        .unwrap();
    let v: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).unwrap();
    for r in v {
        let redis::Value::Array(r) = r else { panic!() };
        let (redis::Value::Int(lo), redis::Value::Int(hi)) = (&r[0], &r[1]) else {
            panic!()
        };
        if (*lo..=*hi).contains(&slot) {
            return r[2..]
                .iter()
                .map(|node| {
                    let redis::Value::Array(node) = node else {
                        panic!()
                    };
                    let ip: String = redis::from_redis_value(&node[0]).unwrap();
                    let port: u16 = redis::from_redis_value(&node[1]).unwrap();
                    format!("{ip}:{port}").parse().unwrap()
                })
                .collect();
        }
    }
    panic!("slot {slot} not covered")
}

fn slots_cover_everything(a: SocketAddr, members: &[SocketAddr]) {
    let mut con = redis::Client::open(url(a))
        .unwrap()
        .get_connection()
        .unwrap();
    let v: Vec<(i64, i64, Vec<redis::Value>)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<redis::Value>>(&mut con)
        .unwrap()
        .into_iter()
        .map(|r| {
            let redis::Value::Array(mut r) = r else {
                panic!()
            };
            let rest = r.split_off(2);
            (
                redis::from_redis_value(&r[0]).unwrap(),
                redis::from_redis_value(&r[1]).unwrap(),
                rest,
            )
        })
        .collect();
    let mut next = 0;
    for (lo, hi, nodes) in &v {
        assert_eq!(*lo, next, "CLUSTER SLOTS from {a} has a hole before {lo}");
        next = hi + 1;
        assert_eq!(nodes.len(), 2, "primary and one replica");
        for n in nodes {
            let redis::Value::Array(n) = n else { panic!() };
            let port: u16 = redis::from_redis_value(&n[1]).unwrap();
            assert!(members.iter().any(|m| m.port() == port));
        }
    }
    assert_eq!(next, 16384);
    let nodes = redis_cli(a, &["cluster", "nodes"]).unwrap();
    assert_eq!(
        nodes.lines().filter(|l| l.contains("master")).count(),
        members.len()
    );
    let myid = redis_cli(a, &["cluster", "myid"]).unwrap();
    let mine = nodes.lines().find(|l| l.contains("myself")).unwrap();
    assert!(mine.starts_with(myid.trim()), "{mine} vs {myid}");
    let info = redis_cli(a, &["cluster", "info"]).unwrap();
    assert!(info.contains("cluster_state:ok"));
    assert!(info.contains("cluster_slots_assigned:16384"));
    assert!(info.contains(&format!("cluster_known_nodes:{}", members.len())));
}

#[test]
fn three_nodes_serve_real_cluster_clients_and_survive_a_join() {
    let mut cluster = Cluster::start_meshed(
        3,
        |_, c| c.cache.sync_replication = true,
        |_| test_options(),
        Duration::from_secs(30),
    )
    .expect("3 nodes");
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(redis_addr).collect();
    wait_converged(&addrs, 3, Duration::from_secs(20));

    // The map: every node covers all 16384 slots with the same 3 masters.
    for a in &addrs {
        slots_cover_everything(*a, &addrs);
    }
    for (k, s) in [
        ("foo", "12182"),
        ("{user1000}.following", "3443"),
        ("123456789", "12739"),
    ] {
        assert_eq!(
            redis_cli(addrs[1], &["cluster", "keyslot", k])
                .unwrap()
                .trim(),
            s
        );
    }

    // redis-cli -c writes through node 0 and reads through node 2.
    let sets: String = (0..300).map(|i| format!("SET cli:{i} v{i}\n")).collect();
    redis_cli_stdin(&["-c", "-p", &addrs[0].port().to_string()], &sets);
    let gets: String = (0..300).map(|i| format!("GET cli:{i}\n")).collect();
    let out = redis_cli_stdin(&["-c", "-p", &addrs[2].port().to_string()], &gets);
    let want: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);

    // A cluster-aware connection gets MOVED to the primary; redis-cli -c follows it.
    let slot = |k: &str| -> i64 {
        redis_cli(addrs[0], &["cluster", "keyslot", k])
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let remote = (0..300)
        .map(|i| format!("cli:{i}"))
        .find(|k| primary_of(addrs[0], slot(k)) != addrs[0])
        .expect("some key lives elsewhere");
    let moved = aware_request(addrs[0], &format!("GET {remote}"));
    let owner = primary_of(addrs[0], slot(&remote));
    assert_eq!(moved.trim(), format!("-MOVED {} {owner}", slot(&remote)));
    let followed = redis_cli_stdin(
        &["-c", "-p", &addrs[0].port().to_string()],
        &format!("CLUSTER SHARDS\nGET {remote}\n"),
    );
    assert!(
        followed.contains(&format!("v{}", &remote[4..])),
        "{followed}"
    );

    // A plain client on node 1 is proxied transparently, transactions included.
    let mut plain = redis::Client::open(url(addrs[1]))
        .unwrap()
        .get_connection()
        .unwrap();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("plain:{i}"))
            .arg(i)
            .query(&mut plain)
            .unwrap();
    }
    // min-replicas-to-write counts the nodes that get a copy of each write (the replication
    // factor less one), as Redis counts its replicas; more refuses writes, reads still answer.
    // (The entry node's own check refuses it too when the key is local.)
    let rf: usize = info_field(addrs[1], "proxima_replication_factor")
        .expect("INFO cluster shows the replication factor")
        .parse()
        .unwrap();
    assert!(rf >= 2, "rf {rf}");
    // Each node applies its own setting to the writes it runs (a proxied write, the owner's):
    // set it on all three.
    let config = |_: &mut redis::Connection, v: &str| {
        for a in &addrs {
            let ok = redis_cli(*a, &["config", "set", "min-replicas-to-write", v]).unwrap();
            assert_eq!(ok.trim(), "OK");
        }
    };
    config(&mut plain, &(rf - 1).to_string());
    let _: () = redis::cmd("SET")
        .arg("plain:0")
        .arg(0)
        .query(&mut plain)
        .unwrap();
    config(&mut plain, &rf.to_string());
    let refused = redis::cmd("SET")
        .arg("plain:0")
        .arg(0)
        .query::<()>(&mut plain);
    let err = refused
        .expect_err("a write with too few replicas")
        .to_string();
    assert!(err.contains("NOREPLICAS"), "{err}");
    let v: i64 = redis::cmd("GET").arg("plain:0").query(&mut plain).unwrap();
    assert_eq!(v, 0);
    config(&mut plain, "0");

    // Several members: SORT patterns may reach keys of any slot, refused as in Redis Cluster.
    let by = redis::cmd("SORT")
        .arg("plain:list")
        .arg("BY")
        .arg("w_*")
        .query::<Vec<String>>(&mut plain)
        .expect_err("SORT BY a pattern across the mesh")
        .to_string();
    assert!(by.contains("BY option of SORT denied"), "{by}");

    let n: i64 = redis::cmd("INCRBY")
        .arg("plain:7")
        .arg(10)
        .query(&mut plain)
        .unwrap();
    assert_eq!(n, 17);
    let _: () = redis::cmd("HSET")
        .arg("user:42")
        .arg("name")
        .arg("Ada")
        .query(&mut plain)
        .unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg("user:42")
        .arg(100)
        .query(&mut plain)
        .unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("user:42").query(&mut plain).unwrap();
    assert!((90..=100).contains(&ttl));
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("{cart:9}.items")
        .cmd("INCRBY")
        .arg("{cart:9}.total")
        .arg(250)
        .query(&mut plain)
        .unwrap();
    assert_eq!((a, b), (1, 250));
    let cross: redis::RedisResult<()> = redis::cmd("MSET")
        .arg("plain:1")
        .arg("x")
        .arg("plain:2")
        .arg("y")
        .query(&mut plain);
    if let Err(e) = cross {
        assert!(e.to_string().to_lowercase().contains("crossslot"), "{e}");
    }

    // redis-py RedisCluster: a realistic session.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = Command::new(root.join("tools/venv/bin/python"))
        .arg(root.join("tests/cache/redis_py_cluster.py"))
        .arg(addrs[0].ip().to_string())
        .arg(addrs[0].port().to_string())
        .output()
        .expect("python runs");
    assert!(
        py.status.success(),
        "redis-py cluster session failed:\n{}\n{}",
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );

    // The Rust cluster client, with reads from replicas too.
    let client =
        redis::cluster::ClusterClient::new(addrs.iter().map(|a| url(*a)).collect::<Vec<_>>())
            .unwrap();
    let mut cc = client.get_connection().unwrap();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("rs:{i}"))
            .arg(i)
            .query(&mut cc)
            .unwrap();
    }
    let v: i64 = redis::cmd("GET").arg("rs:123").query(&mut cc).unwrap();
    assert_eq!(v, 123);
    let _: () = redis::cmd("RPUSH")
        .arg("{q}jobs")
        .arg("a")
        .arg("b")
        .query(&mut cc)
        .unwrap();
    let moved: String = redis::cmd("LMOVE")
        .arg("{q}jobs")
        .arg("{q}done")
        .arg("LEFT")
        .arg("RIGHT")
        .query(&mut cc)
        .unwrap();
    assert_eq!(moved, "a");
    let done: Vec<String> = redis::cmd("LRANGE")
        .arg("{q}done")
        .arg(0)
        .arg(-1)
        .query(&mut cc)
        .unwrap();
    assert_eq!(done, vec!["a"]);
    let replicas = redis::cluster::ClusterClientBuilder::new(
        addrs.iter().map(|a| url(*a)).collect::<Vec<_>>(),
    )
    .read_from_replicas()
    .build()
    .unwrap();
    let mut rc = replicas.get_connection().unwrap();
    for i in (0..300).step_by(7) {
        let v: i64 = redis::cmd("GET")
            .arg(format!("rs:{i}"))
            .query(&mut rc)
            .unwrap();
        assert_eq!(v, i);
    }

    // Pub/Sub across nodes: subscribe on node 2, publish on node 0.
    let mut sub = redis::Client::open(url(addrs[2]))
        .unwrap()
        .get_connection()
        .unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ps = sub.as_pubsub();
    ps.subscribe("invalidate").unwrap();
    ps.psubscribe("page:*").unwrap();
    let mut publisher = redis::Client::open(url(addrs[0]))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("invalidate")
        .arg("user:42")
        .query(&mut publisher)
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("page:/home")
        .arg("stale")
        .query(&mut publisher)
        .unwrap();
    let m = ps.get_message().unwrap();
    assert_eq!(
        (m.get_channel_name(), m.get_payload::<String>().unwrap()),
        ("invalidate", "user:42".into())
    );
    let m = ps.get_message().unwrap();
    assert_eq!(m.get_channel_name(), "page:/home");
    assert_eq!(m.get_pattern::<String>().unwrap(), "page:*");
    drop(ps);

    // Sharded Pub/Sub: subscribe where the channel's slot lives, publish from anywhere.
    let owner = primary_of(addrs[0], slot("orders"));
    let shard = holders_of(addrs[0], slot("orders"));
    let other = *addrs.iter().find(|a| !shard.contains(a)).unwrap();
    let moved = aware_request(other, "SSUBSCRIBE orders");
    assert!(moved.starts_with("-MOVED"), "{moved}");
    let mut ssub = redis::Client::open(url(owner))
        .unwrap()
        .get_connection()
        .unwrap();
    ssub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ssub.send_packed_command(&redis::cmd("SSUBSCRIBE").arg("orders").get_packed_command())
        .unwrap();
    let _confirm = ssub.recv_response().unwrap();
    let mut via_other = redis::Client::open(url(other))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("SPUBLISH")
        .arg("orders")
        .arg("o-1")
        .query(&mut via_other)
        .unwrap();
    let msg = format!("{:?}", ssub.recv_response().unwrap());
    assert!(msg.contains("smessage") && msg.contains("o-1"), "{msg}");

    // A fourth node joins: it pulls its ranges, clients follow MOVED, nothing is lost.
    let p2p = cluster.nodes[0].addr("p2p").unwrap();
    let token = cluster.join_token().unwrap();
    let fourth = TestNode::start(|c| {
        c.bootstrap = vec![p2p];
        c.cluster.join_token = Some(token);
        c.cache.sync_replication = true;
    })
    .expect("fourth node");
    cluster.nodes.push(fourth);
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(redis_addr).collect();
    wait_converged(&addrs, 4, Duration::from_secs(30));
    slots_cover_everything(addrs[3], &addrs);
    for i in 0..300 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("rs:{i}"))
            .query(&mut cc)
            .unwrap();
        assert_eq!(v, i, "the cluster client reads rs:{i} after the join");
    }
    let out = redis_cli_stdin(&["-c", "-p", &addrs[3].port().to_string()], &gets);
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    let now_remote = (0..300)
        .map(|i| format!("rs:{i}"))
        .find(|k| primary_of(addrs[0], slot(k)) == addrs[3])
        .expect("the new node is primary of some keys");
    let moved = aware_request(addrs[0], &format!("GET {now_remote}"));
    assert_eq!(
        moved.trim(),
        format!("-MOVED {} {}", slot(&now_remote), addrs[3])
    );
}
