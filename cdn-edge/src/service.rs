//! The CDN edge as one service: [`start`] opens the blob store, serves what it holds to its
//! peers (the transfer protocol on the mesh's data plane), fetches what it lacks from the
//! nearest providers, announces what it holds, and serves sites to browsers on the HTTP
//! gateway. The node gives it a site resolver (names are not this crate's business), the
//! mesh, and the key the gateway proves its identity with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::CdnConfig;
use crate::fetch::{FetchConfig, Fetcher};
use crate::gateway::{self, Gateway, IdentitySigner, SiteResolver};
use crate::store::{BlobSource, Store, StoreError};
use crate::transfer;

/// Concurrent transfer requests served to peers.
const TRANSFER_CONCURRENCY: usize = 64;

/// What the CDN edge is given by whoever starts it.
pub struct Deps<'a> {
    /// Directory of the blob store (created if missing).
    pub store_dir: PathBuf,
    /// Maps a site host to its manifest (the node's verified zones).
    pub resolver: Arc<dyn SiteResolver>,
    /// The mesh: the data plane to serve and fetch blobs on, gossip and the DHT to announce.
    pub mesh: mesh::Mesh,
    /// Answers identity challenges on the gateway with the node key (steering names an HTTP
    /// address only after that check).
    pub identity: Option<IdentitySigner>,
    /// Registry to register metrics into (the caller chooses the prefix).
    pub registry: &'a mut Registry,
    /// Cancelled when the node shuts down.
    pub shutdown: CancellationToken,
    /// Where the service's tasks are tracked, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

/// Why the CDN edge did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The `[cdn]` configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The blob store could not be opened.
    #[error("cannot open the blob store: {0}")]
    Store(#[from] StoreError),
    /// The transfer protocol could not be registered on the data plane.
    #[error("cannot serve the blob transfer protocol: {0}")]
    Transfer(String),
    /// The gateway's address could not be bound.
    #[error("cannot listen on http_listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The running CDN edge. Cheap to clone.
#[derive(Clone)]
pub struct CdnHandle {
    /// The blob store.
    pub store: Store,
    /// The networked blob source (store first, then providers on the mesh).
    pub fetcher: Fetcher,
    /// The gateway's real address.
    pub http_addr: SocketAddr,
    /// The site resolver the gateway uses.
    pub resolver: Arc<dyn SiteResolver>,
    /// Stops this service only (a child of the node's token).
    stop: CancellationToken,
    /// This service's tasks.
    tasks: TaskTracker,
}

impl CdnHandle {
    /// Stops the service (the node's shutdown does too): the gateway stops accepting, the
    /// announcer and gossip listener end.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until every task of the service has ended (after a shutdown).
    pub async fn join(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl std::fmt::Debug for CdnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdnHandle")
            .field("store", &self.store)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

/// Starts the CDN edge with the gateway on `http_listen` (port 0 picks a free port). Metrics
/// go under `store_`, `transfer_`, `fetch_` and `gateway_` of `deps.registry`.
pub async fn start(
    config: &CdnConfig,
    http_listen: SocketAddr,
    deps: Deps<'_>,
) -> Result<CdnHandle, StartError> {
    config
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    // The service's own token and tasks, so that it can be stopped and joined alone; the
    // node's tracker waits for them.
    let stop = deps.shutdown.child_token();
    let tasks = TaskTracker::new();
    let store_config = config.store(deps.store_dir);
    let store = tokio::task::spawn_blocking(move || Store::open(store_config))
        .await
        .map_err(|e| StartError::Store(StoreError::Io(std::io::Error::other(e))))??;
    store.register_metrics(deps.registry.sub_registry_with_prefix("store"));

    // Serve what this node holds to its peers, and fetch what it lacks from them.
    let server = transfer::Server::new(Arc::new(store.clone()), TRANSFER_CONCURRENCY);
    server.register_metrics(deps.registry.sub_registry_with_prefix("transfer"));
    server
        .serve_on(deps.mesh.dataplane())
        .map_err(|e| StartError::Transfer(e.to_string()))?;
    let fetcher = Fetcher::new(store.clone(), deps.mesh.clone(), FetchConfig::default());
    fetcher.register_metrics(deps.registry.sub_registry_with_prefix("fetch"));
    tasks.spawn(fetcher.clone().run_announcer(stop.clone()));
    tasks.spawn(fetcher.clone().run_gossip(stop.clone()));

    let gateway_config = gateway::GatewayConfig {
        identity: deps.identity,
        ..config.gateway()
    };
    let gw = Gateway::new(
        gateway_config,
        deps.resolver.clone(),
        Arc::new(fetcher.clone()) as Arc<dyn BlobSource>,
    );
    gw.register_metrics(deps.registry.sub_registry_with_prefix("gateway"));
    let listener = gateway::bind(http_listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: http_listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: http_listen,
        source,
    })?;
    tasks.spawn(gw.serve(listener, stop.clone()));
    let waiter = tasks.clone();
    deps.tracker.spawn(async move {
        waiter.close();
        waiter.wait().await;
    });
    Ok(CdnHandle {
        store,
        fetcher,
        http_addr,
        resolver: deps.resolver,
        stop,
        tasks,
    })
}
