//! The cache believes its peers and its clients no more than it must (DESIGN.md, *Trust*):
//! a client proxied by another node is still the client it is, so the owner's `requirepass`
//! applies to it; and the Redis port hangs up on what looks like HTTP (a browser tricked into
//! posting to it), as Redis does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use proxima::harness::{Cluster, TestNode, http_get, test_options, wait_for};

const PASS: &str = "s3cret";

fn redis_addr(n: &TestNode) -> SocketAddr {
    n.addr("redis")
        .expect("redis address")
        .parse()
        .expect("addr")
}

/// A plain connection to `a`, authenticated with `pass` if given.
fn connect(a: SocketAddr, pass: Option<&str>) -> redis::Connection {
    let url = match pass {
        Some(p) => format!("redis://:{p}@{a}/"),
        None => format!("redis://{a}/"),
    };
    let c = redis::Client::open(url).unwrap().get_connection().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// One field of `INFO cluster` at `a`.
fn info_field(a: SocketAddr, pass: Option<&str>, field: &str) -> Option<String> {
    let mut con = redis::Client::open(match pass {
        Some(p) => format!("redis://:{p}@{a}/"),
        None => format!("redis://{a}/"),
    })
    .ok()?
    .get_connection_with_timeout(Duration::from_secs(2))
    .ok()?;
    let info: String = redis::cmd("INFO").arg("cluster").query(&mut con).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// The primary of `key`'s slot according to `CLUSTER SLOTS` on `con`.
fn primary_of(con: &mut redis::Connection, key: &str) -> SocketAddr {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(con)
        .unwrap();
    let v: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(con).unwrap();
    for r in v {
        let redis::Value::Array(r) = r else { panic!() };
        let (redis::Value::Int(lo), redis::Value::Int(hi)) = (&r[0], &r[1]) else {
            panic!()
        };
        if (*lo..=*hi).contains(&slot) {
            let redis::Value::Array(node) = &r[2] else {
                panic!()
            };
            let ip: String = redis::from_redis_value(&node[0]).unwrap();
            let port: u16 = redis::from_redis_value(&node[1]).unwrap();
            return format!("{ip}:{port}").parse().unwrap();
        }
    }
    panic!("slot {slot} not covered")
}

fn set(con: &mut redis::Connection, k: &str, v: &str) -> Result<(), String> {
    redis::cmd("SET")
        .arg(k)
        .arg(v)
        .query::<()>(con)
        .map_err(|e| e.to_string())
}

fn expect_noauth(r: Result<(), String>) {
    let e = r.expect_err("refused without the owner's password");
    assert!(
        e.contains("NOAUTH") || e.contains("Authentication required"),
        "{e}"
    );
}

/// Two nodes, one copy of every slot: the owner (node 0) has a password, the proxy (node 1)
/// has none. A client on the proxy that did not authenticate cannot touch the owner's keys;
/// one that authenticated with the owner's password can; one that authenticated with the
/// proxy's own, different password cannot.
#[test]
fn a_proxied_client_needs_the_owners_password() {
    let cluster = Cluster::start_meshed(
        2,
        |i, c| {
            c.cache.replication_factor = 1;
            if i == 0 {
                c.cache.requirepass = PASS.into();
            }
        },
        |_| test_options(),
        Duration::from_secs(30),
    )
    .expect("two nodes");
    let (owner, proxy) = (redis_addr(cluster.node(0)), redis_addr(cluster.node(1)));
    wait_for(Duration::from_secs(30), || {
        [(owner, Some(PASS)), (proxy, None)].iter().all(|(a, p)| {
            info_field(*a, *p, "proxima_members").as_deref() == Some("2")
                && info_field(*a, *p, "proxima_importing_ranges").as_deref() == Some("0")
        })
    })
    .expect("the two nodes converge");

    // Asking for the map makes a connection cluster-aware (it would get MOVED): a separate one.
    let mut map = connect(proxy, None);
    let key = (0..1000)
        .map(|i| format!("owned:{i}"))
        .find(|k| primary_of(&mut map, k) == owner)
        .expect("some key lives on the owner");
    let local = (0..1000)
        .map(|i| format!("local:{i}"))
        .find(|k| primary_of(&mut map, k) == proxy)
        .expect("some key lives on the proxy");
    let mut plain = connect(proxy, None);
    let mut on_owner = connect(owner, Some(PASS));
    let get = |con: &mut redis::Connection, k: &str| -> Option<String> {
        redis::cmd("GET").arg(k).query(con).unwrap()
    };

    // Without a credential: refused on the owner, exactly as Redis answers, and nothing lands.
    // The proxy's own keys are served (it needs no password).
    expect_noauth(set(&mut plain, &key, "from-anyone"));
    let reply: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(&key).query(&mut plain);
    assert!(reply.is_err(), "{reply:?}");
    assert_eq!(get(&mut on_owner, &key), None);
    set(&mut plain, &local, "ok").expect("the proxy serves its own keys");
    assert_eq!(get(&mut plain, &local).as_deref(), Some("ok"));

    // The same connection authenticates with the owner's password (the proxy now has the same
    // one): its session is opened again with the new credential, and the write goes through.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASS)
        .query(&mut plain)
        .unwrap();
    // Still the old, credential-less session: the client did not authenticate.
    expect_noauth(set(&mut plain, &key, "still-anyone"));
    let _: () = redis::cmd("AUTH").arg(PASS).query(&mut plain).unwrap();
    set(&mut plain, &key, "authenticated").expect("the owner's password opens the owner");
    assert_eq!(get(&mut on_owner, &key).as_deref(), Some("authenticated"));
    assert_eq!(get(&mut plain, &key).as_deref(), Some("authenticated"));

    // A client that authenticated with the proxy's password, which is not the owner's: the
    // owner checks its own.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("other")
        .query(&mut plain)
        .unwrap();
    let mut other = connect(proxy, Some("other"));
    set(&mut other, &local, "fine").expect("the proxy's password opens the proxy");
    expect_noauth(set(&mut other, &key, "other-password"));
    assert_eq!(get(&mut on_owner, &key).as_deref(), Some("authenticated"));
}

/// A browser made to `POST` to the Redis port (cross-protocol scripting): the connection is
/// closed before anything in the request runs, with no reply, and counted.
#[test]
fn http_to_the_redis_port_is_closed_without_a_reply() {
    let node = TestNode::start(|_| {}).expect("node starts");
    let addr = redis_addr(&node);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nSET pwned 1\r\n")
        .unwrap();
    let mut got = Vec::new();
    // EOF (or a reset) ends the read; a timeout fails the test.
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection stayed open: {e}"
        ),
    }
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let mut con = connect(addr, None);
    let n: i64 = redis::cmd("EXISTS").arg("pwned").query(&mut con).unwrap();
    assert_eq!(n, 0);
    let closed = || {
        http_get(&format!("{}/metrics", node.admin_url()))
            .unwrap_or_default()
            .lines()
            .any(|l| l == "proxima_cache_http_closed_total 1")
    };
    wait_for(Duration::from_secs(5), closed).expect("the close is counted");
}
