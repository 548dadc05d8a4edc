//! A running node: the data directory, the identity, and every service, on a runtime of its own.
//!
//! Each node owns its tokio runtime on a dedicated thread. That lets one test process run many
//! nodes and stop one of them *abruptly* ([`NodeHandle::kill`]): dropping the runtime drops every
//! task and socket of that node at once, without the goodbyes a graceful
//! [`NodeHandle::shutdown`] sends, which is what a crashed process looks like to its peers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AdminState, ServiceInfo};
use crate::config::Config;
use crate::datadir::DataDir;
use crate::identity::NodeIdentity;

/// How long a joining node's cache waits for a complete member list before its first map.
const CACHE_JOIN_WAIT: Duration = Duration::from_secs(5);

/// How long a graceful shutdown may take before remaining tasks are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// Options that are not part of the user's configuration.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Worker threads of the node's runtime; default: one per core.
    pub worker_threads: Option<usize>,
    /// Put the node on an emulated WAN (tests, benchmarks and scenarios only).
    pub wan: Option<mesh::WanLink>,
    /// Name of the runtime's threads (default `proxima-worker`): several nodes in one process
    /// (tests, scenarios) tell their log lines apart by it.
    pub name: Option<String>,
}

/// What a started node tells its owner.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// The data directory in use.
    pub data_dir: PathBuf,
    /// Running services and their real addresses.
    pub services: BTreeMap<String, ServiceInfo>,
    /// The admin endpoint's real address.
    pub admin_addr: SocketAddr,
    /// The admin token (`DATA/admin.token`) changing admin requests must carry as
    /// `Authorization: Bearer <token>`.
    pub admin_token: String,
    /// The node's mesh (for in-process tests and tools that act as another service would).
    pub mesh: mesh::Mesh,
    /// Its cluster membership (anchor, certificate; join tokens on an issuer).
    pub cluster: crate::cluster::ClusterService,
}

/// Handle to a running node. Dropping it shuts the node down gracefully.
#[derive(Debug)]
pub struct NodeHandle {
    info: NodeInfo,
    graceful: CancellationToken,
    kill: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeHandle {
    /// Starts a node and returns once every service is listening.
    pub fn start(config: Config, options: NodeOptions) -> Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<NodeInfo>>(1);
        let graceful = CancellationToken::new();
        let kill = CancellationToken::new();
        let (g, k) = (graceful.clone(), kill.clone());
        let thread = std::thread::Builder::new()
            .name("proxima-node".into())
            .spawn(move || run_node_thread(config, options, g, k, ready_tx))
            .context("cannot spawn the node thread")?;
        match ready_rx.recv() {
            Ok(Ok(info)) => Ok(Self {
                info,
                graceful,
                kill,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                anyhow::bail!("the node thread exited during start")
            }
        }
    }

    /// Starts a node from async code without blocking the caller's runtime.
    pub async fn start_async(config: Config, options: NodeOptions) -> Result<Self> {
        tokio::task::spawn_blocking(move || Self::start(config, options))
            .await
            .context("node start task failed")?
    }

    /// What the node reported when it became ready.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// `http://ADDR` of the admin endpoint.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.info.admin_addr)
    }

    /// The admin token (`Authorization: Bearer <token>` on changing admin requests).
    pub fn admin_token(&self) -> &str {
        &self.info.admin_token
    }

    /// The real address of a running service (`admin`, `dns`, `http`, `redis`, `quic`, `p2p`).
    pub fn service_addr(&self, name: &str) -> Option<&str> {
        self.info.services.get(name).map(|s| s.listen.as_str())
    }

    /// Stops gracefully: services finish what they are doing and say goodbye to peers.
    pub fn shutdown(mut self) {
        self.graceful.cancel();
        self.join();
    }

    /// Stops abruptly, as `SIGKILL` would: every task and socket is dropped at once.
    pub fn kill(mut self) {
        self.kill.cancel();
        self.join();
    }

    /// A token that, when cancelled, shuts the node down gracefully (for signal handlers).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.graceful.clone()
    }

    /// Blocks until the node has stopped (after a shutdown was requested through the token).
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.graceful.cancel();
            self.join();
        }
    }
}

/// How long a killed node's runtime waits for its worker and blocking threads to let go.
const KILL_WAIT: Duration = Duration::from_secs(5);

fn run_node_thread(
    config: Config,
    options: NodeOptions,
    graceful: CancellationToken,
    kill: CancellationToken,
    ready: std::sync::mpsc::SyncSender<Result<NodeInfo>>,
) {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .thread_name(options.name.as_deref().unwrap_or("proxima-worker"));
    if let Some(n) = options.worker_threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(
                anyhow::Error::new(e).context("cannot build the runtime")
            ));
            return;
        }
    };
    let tracker = TaskTracker::new();
    let started = runtime.block_on(start_services(&config, &options, &graceful, &tracker));
    let (info, _data_dir) = match started {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            runtime.shutdown_background();
            return;
        }
    };
    tracing::info!(peer_id = %info.peer_id, admin = %info.admin_addr, "node ready");
    let _ = ready.send(Ok(info));

    let killed = runtime.block_on(async {
        tokio::select! {
            _ = kill.cancelled() => true,
            _ = graceful.cancelled() => {
                tracker.close();
                let drained = tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await;
                if drained.is_err() {
                    tracing::warn!("graceful shutdown timed out; dropping remaining tasks");
                }
                false
            }
        }
    });
    if killed {
        // Every task is dropped at once, as SIGKILL would end them, but before this returns:
        // `shutdown_background` dropped them on another thread after the data directory's lock
        // below was released, so a restart on the same directory could find the Raft log's
        // database still open ("Database already open").
        runtime.shutdown_timeout(KILL_WAIT);
    } else {
        runtime.shutdown_timeout(Duration::from_millis(200));
        tracing::info!("node stopped");
    }
    // `_data_dir` drops here, after every task: the lock is released last.
}

/// Opens the data directory, loads the identity, binds every listener and spawns the services.
async fn start_services(
    config: &Config,
    options: &NodeOptions,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(NodeInfo, DataDir)> {
    let started = Instant::now();
    // Default ports already taken (another node on this machine) fall back to free ones.
    let config = &crate::ports::free_defaults(config);
    config.validate_admin()?;
    let data_dir = DataDir::open(&config.resolved_data_dir())?;
    let admin_token = crate::api::trust::load_or_create_token(data_dir.path())?;
    let identity =
        NodeIdentity::load_or_create_with_work(data_dir.path(), config.mesh.identity_work_bits)?;
    let peer_id = identity.peer_id().to_string();
    #[allow(unused_mut)] // services register into it as they start
    let (mut registry, node_metrics) = crate::metrics::new_registry(&peer_id);
    #[allow(unused_mut)] // services add their admin API routes here
    let mut api = axum::Router::new();

    let mut services = BTreeMap::new();
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on admin_listen {}", config.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    services.insert("admin".to_owned(), api::service("http", admin_addr));

    // Services start here, each on its configured listen address, registering its metrics under
    // its own prefix (`registry.sub_registry_with_prefix(..)`), its real address in `services`,
    // its admin API routes in `api`, and its tasks on `tracker` so shutdown can wait for them.

    // The mesh first: every service below uses it (the directory, the data plane, gossip and
    // the DHT). It starts with the admin address only; the other service addresses are
    // advertised once they listen (`mesh.advertise` below).
    let mesh = crate::svc_mesh::start(
        config,
        &identity,
        options.wan.as_ref(),
        &mut services,
        &mut registry,
        shutdown,
        tracker,
    )
    .await?;

    // The cluster: what this node believes (the anchor) and the certificate it presents,
    // before any service that trusts certified members starts (naming's registrar, cache).
    let cluster = crate::cluster::start(
        &config.cluster,
        !config.bootstrap.is_empty(),
        data_dir.path(),
        &mesh,
        registry.sub_registry_with_prefix("cluster"),
        shutdown,
        tracker,
    )
    .await?;
    api = api.merge(crate::api::cluster::routes(cluster.clone()));

    // Naming: the ledger, the verified zone store and the keystore. DNS and the CDN take the
    // zone store from here (`names.zones()`); its admin routes are under /api/names.
    let names = crate::names::start(
        config,
        data_dir.path(),
        &identity,
        &mesh,
        &mut registry,
        shutdown,
        tracker,
    )
    .await?;
    if let Some(group) = names.group.clone() {
        api = api.merge(crate::api::registrars::routes(group, mesh.clone()));
    }
    let names = names.service;
    api = api.merge(crate::names::api::routes(names.clone()));

    // DNS: authoritative for the ledger TLDs from the verified zone store, forwarding the rest.
    let _dns = crate::svc_dns::start(
        config,
        Arc::new(dns::StoreZones::new(names.zones())),
        &mesh,
        &mut services,
        &mut registry,
        shutdown,
        tracker,
    )
    .await?;

    // CDN edge: the blob store, transfers between nodes and the HTTP gateway (service `http`);
    // sites resolve through the naming service's verified zones. The gateway answers identity
    // challenges with the node key, so other nodes can check its address before steering to it.
    let key = identity.signing_key().clone();
    let sign = move |msg: &[u8]| {
        use ed25519_dalek::Signer;
        key.sign(msg).to_bytes()
    };
    let cdn = cdn_edge::start(
        &config.cdn,
        config.http_listen,
        cdn_edge::Deps {
            store_dir: data_dir.path().join("blobs"),
            resolver: Arc::new(crate::sites::ZoneSites(names.zones())),
            mesh: mesh.clone(),
            identity: Some(cdn_edge::gateway::IdentitySigner(Arc::new(sign))),
            registry: registry.sub_registry_with_prefix("cdn"),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        },
    )
    .await?;
    services.insert("http".to_owned(), api::service("http", cdn.http_addr));
    api = api.merge(crate::api::blobs::routes(
        cdn.clone(),
        config.cdn.max_upload_bytes,
    ));

    // Cache: the Redis protocol on redis_listen (service `redis`), its keyspace spread over the
    // mesh's cache members. A joining node's cache waits (at most `CACHE_JOIN_WAIT`) for the
    // member list before its first slot map; its address is advertised only below, so no
    // member routes to it before that map exists.
    let cache = cache::start(
        &config.cache,
        config.redis_listen,
        cache::Deps {
            registry: registry.sub_registry_with_prefix("cache"),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            mesh: Some(mesh.clone()),
            join_wait: (!config.bootstrap.is_empty()).then_some(CACHE_JOIN_WAIT),
        },
    )
    .await
    .with_context(|| {
        format!(
            "cannot start the cache on redis_listen {}",
            config.redis_listen
        )
    })?;
    services.insert(
        "redis".to_owned(),
        api::service("redis", cache.local_addr()),
    );

    // Every service listens now: tell the members where.
    mesh.advertise(api::advertised(&services)).await;

    let guard = crate::api::trust::Guard::new(&admin_token, &config.admin);
    guard.register_metrics(registry.sub_registry_with_prefix("admin"));
    let services = Arc::new(services);
    let registry = Arc::new(registry);
    // The dashboard samples the same registry `/metrics` renders, every 2 s.
    let dashboard = crate::api::dashboard::start(
        crate::api::dashboard::Sources {
            registry: registry.clone(),
            metrics: node_metrics.clone(),
            started,
            mesh: mesh.clone(),
            zones: names.zones(),
            store: cdn.store.clone(),
            cache: Some(cache),
        },
        shutdown,
        tracker,
    );
    api = api.merge(crate::api::dashboard::routes(dashboard));
    let state = AdminState {
        started,
        peer_id: peer_id.clone(),
        data_dir: data_dir.path().display().to_string(),
        services: services.clone(),
        registry,
        metrics: node_metrics,
        mesh: Some(mesh.clone()),
        guard,
    };
    let app = api::router(state, api);
    // Local CLIs find the URL and token here; the file goes when the admin endpoint stops.
    let runtime_file =
        crate::api::trust::RuntimeFile::publish(admin_addr, &admin_token, data_dir.path());
    let stop = shutdown.clone();
    tracker.spawn(async move {
        let served = axum::serve(admin_listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin endpoint failed");
        }
        drop(runtime_file);
    });

    let info = NodeInfo {
        peer_id,
        data_dir: data_dir.path().to_path_buf(),
        services: (*services).clone(),
        admin_addr,
        admin_token,
        mesh,
        cluster,
    };
    Ok((info, data_dir))
}
