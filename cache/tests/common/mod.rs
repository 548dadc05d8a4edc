//! What the socket-level tests of the cache share: a server on a loopback port and requests in
//! RESP.

use std::net::SocketAddr;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A request in RESP.
pub(crate) fn req(args: &[&str]) -> Vec<u8> {
    let mut r = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        r.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    r
}

/// A cache server with the default configuration on a free loopback port; cancel the token to
/// stop it.
pub(crate) async fn start() -> (SocketAddr, CancellationToken) {
    let mut registry = Registry::default();
    let shutdown = CancellationToken::new();
    let handle = cache::start(
        &cache::Config::default(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        cache::Deps {
            registry: &mut registry,
            shutdown: shutdown.clone(),
            tracker: TaskTracker::new(),
            mesh: None,
            join_wait: None,
        },
    )
    .await
    .expect("server starts");
    (handle.local_addr(), shutdown)
}
