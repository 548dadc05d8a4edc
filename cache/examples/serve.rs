//! Runs the cache server alone, as the node runs it (a multi-threaded tokio runtime), for
//! benchmarks and profiles of the crate in isolation.
//!
//! `cargo run --release -p cache --example serve -- 127.0.0.1:6390 [worker_threads]`

use std::net::SocketAddr;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:6390".into())
        .parse()?;
    let threads: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut registry = Registry::default();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let handle = cache::start(
            &cache::Config::default(),
            addr,
            cache::Deps {
                registry: &mut registry,
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
                mesh: None,
                join_wait: None,
            },
        )
        .await?;
        tracing::info!(addr = %handle.local_addr(), "serving");
        tokio::signal::ctrl_c().await?;
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        anyhow::Ok(())
    })
}
