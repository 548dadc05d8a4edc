//! The Redis-compatible distributed cache.
//!
//! Owns: the RESP2/RESP3 server, the command layer with Redis semantics, the local byte-weighted
//! store, the slot map, and replication and forwarding between nodes.
//!
//! Must not: depend on where a key lives in the command layer (routing sits underneath it), or
//! allocate from a request size it has not bounded.
//!
//! Layers, bottom up (each uses only those below it):
//! - [`resp`]: a pure RESP request parser (no I/O, no copies, bounded);
//! - [`db`] and [`value`]: the keyspace (expiry, memory accounting, sampled-LFU eviction);
//! - [`client`]: one client's state as commands see it;
//! - [`cmd`]: the static command table and the handlers, over a keyspace lock taken once per
//!   pipelined batch;
//! - [`placement`]: the trait through which the cluster routes, captures and publishes;
//! - [`session`]: parse, check, route and run requests, without I/O;
//! - [`conn`]: one socket: read, run the batch through the session, write once;
//! - [`cluster`]: the keyspace spread over the mesh, a [`placement::Placement`]: the slot map,
//!   routing before dispatch (`MOVED` or proxying), ordered replication of key states (applied
//!   through its own entry point, [`cluster::apply`]), range hand-over, Pub/Sub across nodes;
//! - [`start`]: binds, spawns the accept loop and housekeeping on the caller's runtime, and
//!   reports the real address.
//!
//! Nothing here is global: every server has its own [`shared::Shared`], so one process can run
//! many nodes.

pub mod acl;
pub mod client;
pub mod cluster;
pub mod cmd;
pub mod compact;
pub mod config;
pub mod conn;
pub mod db;
pub mod glob;
pub mod introspect;
pub mod keymap;
pub mod metrics;
pub mod notify;
pub mod placement;
pub mod pubsub;
pub mod rdb;
pub mod reply;
pub mod resp;
pub mod script;
pub mod session;
pub mod shared;
pub mod slot;
pub mod stream;
pub mod tombstone;
pub mod tracking;
pub mod value;
pub mod zset;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
use shared::Shared;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on redis_listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: `cache.{key}` = {value:?}: {problem}")]
    Config {
        /// The key under `[cache]`.
        key: &'static str,
        /// The value.
        value: String,
        /// What is wrong and what is allowed.
        problem: &'static str,
    },
    /// Refusing to serve beyond loopback without a password.
    #[error(
        "refusing to listen on {0} (beyond loopback) without cache.requirepass; set a password or cache.allow_remote_without_password = true"
    )]
    RemoteWithoutPassword(SocketAddr),
    /// The cache protocol could not be registered on the mesh.
    #[error("cannot serve the cache protocol on the mesh: {0}")]
    Mesh(String),
}

/// What the node passes in.
#[derive(Debug)]
pub struct Deps<'a> {
    /// Registry to register metrics into (the caller chooses the prefix).
    pub registry: &'a mut Registry,
    /// Cancelled when the node shuts down.
    pub shutdown: CancellationToken,
    /// Where the server's tasks are tracked, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// The mesh to spread the keyspace over; `None` serves every slot alone.
    pub mesh: Option<mesh::Mesh>,
    /// Joining an existing mesh: wait up to this long for a complete member list before the
    /// first slot map.
    pub join_wait: Option<std::time::Duration>,
}

/// A running cache server.
#[derive(Debug, Clone)]
pub struct CacheHandle {
    shared: Arc<Shared>,
    /// The cluster layer, on a mesh.
    cluster: Option<Arc<cluster::Cluster>>,
    /// Stops this service only (a child of the node's token).
    stop: CancellationToken,
    /// This service's tasks.
    tasks: TaskTracker,
}

impl CacheHandle {
    /// The real listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Stops the service (the node's shutdown does too): the listener closes, connections and
    /// tasks end.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until every task of the service has ended (after a shutdown).
    pub async fn join(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The node id this server reports in `CLUSTER MYID` and `INFO`.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Number of keys (for status pages).
    pub fn key_count(&self) -> usize {
        self.shared.db.lock().len()
    }

    /// This node's part in the cluster (slots, pulls, replication lag, majority); `None` when
    /// the cache runs alone, without a mesh.
    pub fn cluster_status(&self) -> Option<cluster::ClusterStatus> {
        self.cluster.as_ref().map(|c| c.status())
    }
}

fn validate(config: &Config) -> Result<(u64, db::Policy, u64), Error> {
    let maxmemory = shared::parse_memory(&config.maxmemory).ok_or_else(|| Error::Config {
        key: "maxmemory",
        value: config.maxmemory.clone(),
        problem: "expected a size such as \"0\", \"256mb\" or \"2gb\"",
    })?;
    let (policy, _) = db::Policy::parse(&config.maxmemory_policy).ok_or_else(|| Error::Config {
        key: "maxmemory_policy",
        value: config.maxmemory_policy.clone(),
        problem: "expected allkeys-lfu, allkeys-lru, allkeys-random, volatile-lfu, volatile-lru, volatile-random, volatile-ttl or noeviction",
    })?;
    let bulk = shared::parse_memory(&config.proto_max_bulk_len)
        .filter(|b| *b >= 1024 * 1024)
        .ok_or_else(|| Error::Config {
            key: "proto_max_bulk_len",
            value: config.proto_max_bulk_len.clone(),
            problem: "expected a size of at least 1mb such as \"512mb\"",
        })?;
    Ok((maxmemory, policy, bulk))
}

/// Binds `listen` (port 0 picks a free port), and serves the Redis protocol on the current
/// tokio runtime until `deps.shutdown` is cancelled.
pub async fn start(
    config: &Config,
    listen: SocketAddr,
    deps: Deps<'_>,
) -> Result<CacheHandle, Error> {
    let (maxmemory, _, _) = validate(config)?;
    // The service's own token and tasks, so that it can be stopped and joined alone; the
    // node's tracker waits for them.
    let stop = deps.shutdown.child_token();
    let tasks = TaskTracker::new();
    if !listen.ip().is_loopback()
        && config.requirepass.is_empty()
        && !config.allow_remote_without_password
    {
        return Err(Error::RemoteWithoutPassword(listen));
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    let metrics = metrics::Metrics::default();
    metrics.register(deps.registry);
    let shared = Arc::new(Shared::new(addr, config.requirepass.clone(), metrics));
    // Apply the configuration through the same path as CONFIG SET, so both stay consistent.
    let set = |k: &str, v: &str| shared.set_param(k, v);
    let _ = maxmemory;
    for (k, v) in [
        ("maxmemory", config.maxmemory.as_str()),
        ("maxmemory-policy", config.maxmemory_policy.as_str()),
        ("proto-max-bulk-len", config.proto_max_bulk_len.as_str()),
        ("maxclients", &config.maxclients.to_string()),
    ] {
        set(k, v).map_err(|_| Error::Config {
            key: "maxmemory",
            value: v.to_owned(),
            problem: "rejected",
        })?;
    }

    shared.db.lock().tombstone_ttl_ms = config.tombstone_ttl_secs.saturating_mul(1000);

    let mut cluster = None;
    if let Some(mesh) = deps.mesh.clone() {
        let cl = Arc::new(cluster::Cluster::new(
            mesh.clone(),
            addr,
            config.replication_factor.max(1),
            config.sync_replication,
            stop.child_token(),
        ));
        let _ = shared.placement.set(cl.clone());
        cluster = Some(cl.clone());
        deps.registry.register(
            "uncertified_streams_refused",
            "Cache streams (session, link, pull, merge) refused: the peer holds no cache certificate",
            cl.uncertified_refused.clone(),
        );
        let (s, c) = (shared.clone(), cl.clone());
        mesh.dataplane()
            .serve_streams(cluster::proto::ALPN, move |peer, send, recv| {
                Box::pin(cluster::serve::handle(
                    s.clone(),
                    c.clone(),
                    peer,
                    send,
                    recv,
                ))
            })
            .map_err(|e| Error::Mesh(e.to_string()))?;
        if let Some(wait) = deps.join_wait {
            cluster::membership::wait_complete(&cl, addr, wait).await;
        }
        cl.install_first(&shared);
        tasks.spawn(cluster::membership::run(cl, shared.clone()));
    }
    let s = shared.clone();
    tasks.spawn(accept_loop(listener, s, stop.clone(), tasks.clone()));
    tasks.spawn(housekeeping(shared.clone(), stop.clone()));
    let waiter = tasks.clone();
    deps.tracker.spawn(async move {
        waiter.close();
        waiter.wait().await;
    });
    tracing::info!(%addr, "redis protocol listening");
    Ok(CacheHandle {
        shared,
        cluster,
        stop,
        tasks,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((mut stream, peer)) => {
                let max = shared.maxclients.load(Ordering::Relaxed);
                if shared.clients.lock().len() >= max {
                    shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracker.spawn(async move {
                        let _ = stream
                            .write_all(b"-ERR max number of clients reached\r\n")
                            .await;
                    });
                    continue;
                }
                tracker.spawn(conn::serve(shared.clone(), stream, peer, shutdown.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Active expiry ten times a second (as Redis's `hz 10`), metrics once a second.
async fn housekeeping(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = db::DbStats::default();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        n += 1;
        let now = session::now_ms();
        let (stats, keys, used) = {
            // A script holds the keyspace for as long as it runs: skip the tick rather than
            // park a worker thread behind it (other clients must get BUSY meanwhile).
            let Some(mut db) = shared.db.try_lock() else {
                continue;
            };
            let start = std::time::Instant::now();
            db.active_expire(now, 16);
            db.collect_tombstones(now);
            // A slow cycle (a big key freed) is a latency event, as in Redis.
            let ms = start.elapsed().as_millis() as u64;
            shared.intro.latency_event("expire-cycle", now / 1000, ms);
            notify::dispatch(&shared, &mut db, None, 0);
            (db.stats.clone(), db.len(), db.used_memory())
        };
        if n.is_multiple_of(10) {
            let m = &shared.metrics;
            m.keys.set(keys as i64);
            m.used_memory_bytes.set(used as i64);
            m.expired_keys_total
                .inc_by(stats.expired.saturating_sub(last.expired));
            m.evicted_keys_total
                .inc_by(stats.evicted.saturating_sub(last.evicted));
            m.keyspace_hits_total
                .inc_by(stats.hits.saturating_sub(last.hits));
            m.keyspace_misses_total
                .inc_by(stats.misses.saturating_sub(last.misses));
            last = stats;
        }
    }
}
