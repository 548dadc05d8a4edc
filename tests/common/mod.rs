//! Helpers shared by the whole-system tests: the `proxima` CLI, test data, Redis clients.
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

/// Runs the `proxima` CLI; its stdout, or an error with its stderr.
pub(crate) fn cli(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(args)
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "proxima {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Deterministic pseudo-random bytes (xorshift), so big files do not compress or repeat.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
