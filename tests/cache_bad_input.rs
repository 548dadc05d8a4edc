//! Bad input against the cache of a running node: every request size bound answers Redis's
//! error and closes only the offending connection; garbage from one client leaves the others
//! alone; passwords are enforced; `maxmemory` evicts instead of failing or growing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use proxima::harness::{TestNode, redis_cli};

fn start(tweak: impl FnOnce(&mut proxima::config::Config)) -> (TestNode, SocketAddr) {
    let node = TestNode::start(tweak).expect("node starts");
    let addr = node.addr("redis").unwrap().parse().unwrap();
    (node, addr)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until `want` replies' worth of lines (`\r\n`-terminated) have arrived.
fn read_reply(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends `req`, expects the error line `want`, then expects the server to close.
fn expect_error_and_close(addr: SocketAddr, req: &[u8], want: &str) {
    let mut s = connect(addr);
    // The server may close while we are still writing a huge request; that is fine.
    let _ = s.write_all(req);
    let got = read_reply(&mut s);
    assert_eq!(got, format!("-ERR {want}\r\n"));
    let mut rest = [0u8; 16];
    assert_eq!(
        s.read(&mut rest).unwrap_or(0),
        0,
        "connection must be closed"
    );
}

#[test]
fn every_size_bound_has_its_redis_error() {
    let (_node, addr) = start(|_| {});
    let digits = vec![b'1'; 70_000];
    expect_error_and_close(
        addr,
        &vec![b'a'; 70_000],
        "Protocol error: too big inline request",
    );
    expect_error_and_close(
        addr,
        &[b"*".as_slice(), &digits].concat(),
        "Protocol error: too big mbulk count string",
    );
    expect_error_and_close(
        addr,
        &[b"*1\r\n$".as_slice(), &digits].concat(),
        "Protocol error: too big bulk count string",
    );
    expect_error_and_close(
        addr,
        b"*3000000000\r\n",
        "Protocol error: invalid multibulk length",
    );
    expect_error_and_close(
        addr,
        b"*1\r\n$536870913\r\n",
        "Protocol error: invalid bulk length",
    );
    expect_error_and_close(
        addr,
        b"*1\r\n:5\r\n",
        "Protocol error: expected '$', got ':'",
    );
    expect_error_and_close(
        addr,
        b"*abc\r\n",
        "Protocol error: invalid multibulk length",
    );
    expect_error_and_close(
        addr,
        b"SET a \"b\r\n",
        "Protocol error: unbalanced quotes in request",
    );
    // proto-max-bulk-len is enforced as configured.
    assert_eq!(
        redis_cli(addr, &["config", "set", "proto-max-bulk-len", "1mb"])
            .unwrap()
            .trim(),
        "OK"
    );
    expect_error_and_close(
        addr,
        b"*2\r\n$3\r\nGET\r\n$2000000\r\n",
        "Protocol error: invalid bulk length",
    );
    // Inline commands still work.
    let mut s = connect(addr);
    s.write_all(b"PING\r\nECHO \"a b\"\r\n").unwrap();
    let mut got = String::new();
    while !got.ends_with("a b\r\n") {
        got.push_str(&read_reply(&mut s));
    }
    assert_eq!(got, "+PONG\r\n$3\r\na b\r\n");
}

#[test]
fn garbage_from_one_client_does_not_affect_others() {
    let (_node, addr) = start(|_| {});
    let mut good = connect(addr);
    // A request split across writes, with a garbage client in between.
    good.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk").unwrap();
    let mut bad = connect(addr);
    bad.write_all(b"\x00\xff*-5\r\n$$$garbage\r\n*1\r\n$-9\r\n")
        .unwrap();
    let _ = read_reply(&mut bad);
    good.write_all(b"\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        .unwrap();
    let mut got = String::new();
    while !got.ends_with("v\r\n") {
        got.push_str(&read_reply(&mut good));
    }
    assert_eq!(got, "+OK\r\n$1\r\nv\r\n");
    assert_eq!(redis_cli(addr, &["get", "k"]).unwrap().trim(), "v");
}

#[test]
fn password_is_required_and_bounds_are_tighter_before_auth() {
    let (_node, addr) = start(|c| c.cache.requirepass = "s3cret".into());
    assert_eq!(
        redis_cli(addr, &["get", "x"]).unwrap().trim(),
        "NOAUTH Authentication required."
    );
    let mut s = connect(addr);
    s.write_all(b"AUTH wrong\r\n").unwrap();
    assert_eq!(
        read_reply(&mut s),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        redis_cli(
            addr,
            &["-a", "s3cret", "--no-auth-warning", "set", "x", "1"]
        )
        .unwrap()
        .trim(),
        "OK"
    );
    expect_error_and_close(
        addr,
        b"*11\r\n",
        "Protocol error: unauthenticated multibulk length",
    );
    expect_error_and_close(
        addr,
        b"*1\r\n$16385\r\n",
        "Protocol error: unauthenticated bulk length",
    );
    // HELLO with AUTH authenticates and switches protocol in one step.
    let mut s = connect(addr);
    s.write_all(b"HELLO 3 AUTH default s3cret\r\n").unwrap();
    let hello = read_reply(&mut s);
    assert!(hello.starts_with("%7\r\n"), "{hello}");
}

#[test]
fn refuses_to_listen_beyond_loopback_without_a_password() {
    let err = TestNode::start(|c| c.redis_listen = "0.0.0.0:0".parse().unwrap()).unwrap_err();
    assert!(format!("{err:#}").contains("requirepass"), "{err:#}");
}

#[test]
fn maxmemory_evicts_instead_of_failing_or_growing() {
    let (_node, addr) = start(|c| c.cache.maxmemory = "2mb".into());
    let mut s = connect(addr);
    let value = vec![b'x'; 1024];
    let mut batch = Vec::new();
    for i in 0..5000 {
        let key = format!("key:{i}");
        batch.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1024\r\n", key.len()).as_bytes(),
        );
        batch.extend_from_slice(&value);
        batch.extend_from_slice(b"\r\n");
    }
    s.write_all(&batch).unwrap();
    let mut replies = String::new();
    while replies.matches("\r\n").count() < 5000 {
        replies.push_str(&read_reply(&mut s));
    }
    assert_eq!(replies, "+OK\r\n".repeat(5000), "every write succeeds");
    let info = redis_cli(addr, &["info", "memory"]).unwrap();
    let used: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        used <= 2 * 1024 * 1024 + 2048,
        "used_memory {used} over maxmemory"
    );
    let keys: usize = redis_cli(addr, &["dbsize"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(keys < 5000 && keys > 1000, "{keys} keys");
    let stats = redis_cli(addr, &["info", "stats"]).unwrap();
    assert!(!stats.contains("evicted_keys:0\r"), "{stats}");
    // Under noeviction the same pressure is refused with Redis's OOM error.
    redis_cli(addr, &["config", "set", "maxmemory-policy", "noeviction"]).unwrap();
    redis_cli(addr, &["config", "set", "maxmemory", "1mb"]).unwrap();
    assert_eq!(
        redis_cli(addr, &["set", "another", "v"]).unwrap().trim(),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
}
