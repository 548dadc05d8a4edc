//! Helpers shared by the cache's whole-system tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

/// A plain (not cluster-aware) client connection to `a`, patient enough for a cut to heal.
pub(crate) fn connect(a: SocketAddr) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{a}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// Sets `{prefix}{i}` to `i` for every `i` below `n` in one pipeline; panics unless every write
/// is acknowledged.
pub(crate) fn write_all(con: &mut redis::Connection, prefix: &str, n: usize) {
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET").arg(format!("{prefix}{i}")).arg(i).ignore();
    }
    p.query::<()>(con).expect("every write is acknowledged");
}

/// The `i` below `n` whose key `{prefix}{i}` reads as a miss or a wrong value (all of them if
/// the read fails).
pub(crate) fn missing(con: &mut redis::Connection, prefix: &str, n: usize) -> Vec<usize> {
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("GET").arg(format!("{prefix}{i}"));
    }
    let got: Vec<Option<usize>> = match p.query(con) {
        Ok(g) => g,
        Err(_) => return (0..n).collect(),
    };
    got.iter()
        .enumerate()
        .filter(|(i, v)| **v != Some(*i))
        .map(|(i, _)| i)
        .collect()
}
