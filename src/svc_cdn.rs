//! Wiring of the CDN edge into the node: the blob store under `<data_dir>/blobs`, the HTTP
//! gateway on `http_listen` (service `http`), the site resolver over the naming service's
//! verified zones, the blob admin API used by `proxima publish` and `proxima get`, and metrics
//! under `proxima_cdn_*`.
//!
//! Admin API (JSON unless noted):
//!
//! - `GET  /api/blobs`: `{count, bytes}` of the store.
//! - `POST /api/blobs/missing` `{hashes: [hex]}` -> `{missing: [hex]}`: what an upload must send.
//! - `POST /api/blobs/pin` `{hashes: [hex]}` -> `{pinned, missing}`: pin blobs already here.
//! - `PUT  /api/blobs/{hash}?pin=true` raw body: streamed to a temporary file, hashed, stored
//!   only if it hashes to `{hash}` (400 otherwise); 201 when new, 200 when already present.
//! - `GET  /api/blobs/{hash}`: the raw bytes, verified as they are read.
//! - `POST /api/blobs/verify`: re-verify every blob, dropping those that fail.
//! - `GET  /api/sites/{host}` -> `{host, manifest}`: the manifest hash the gateway would use.
//! - `GET  /api/blobs/{hash}/providers`: the providers of a blob this node knows (DHT and
//!   gossip), as the directory ranks them.
//! - `GET  /api/blobs/fetches`: the recent fetches from peers (providers ranked and used,
//!   groups per provider, failures, time to first group and to completion).
//!
//! Blobs this node lacks are fetched from the nearest providers over the mesh
//! ([`cdn_edge::fetch`]); this node serves what it holds to its peers on
//! [`cdn_edge::transfer::ALPN`] and announces every blob it stores (uploaded, pinned or
//! fetched) as a provider.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cdn_edge::fetch::{FetchConfig, Fetcher};
use cdn_edge::gateway::{Gateway, SiteResolver};
use cdn_edge::store::{BlobSource, Store, StoreError};
use cdn_edge::{Hash, gateway};
use futures::StreamExt;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, ServiceInfo};
use crate::config::Config;

/// Most hashes in one `missing` or `pin` request.
const MAX_HASHES: usize = 100_000;

/// The running CDN edge of a node.
#[derive(Clone)]
pub struct Cdn {
    /// The blob store.
    pub store: Store,
    /// The gateway's real address.
    pub http_addr: SocketAddr,
    /// The networked blob source (store first, then providers on the mesh).
    pub fetcher: Fetcher,
    resolver: Arc<dyn SiteResolver>,
    max_upload: u64,
}

impl std::fmt::Debug for Cdn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cdn")
            .field("store", &self.store)
            .field("http_addr", &self.http_addr)
            .finish()
    }
}

/// Sites from the naming service's verified zones: a host's site record is the `Site` record
/// owned by exactly that name, in the zone that answers for it.
pub struct ZoneSites(pub Arc<naming::ZoneStore>);

impl SiteResolver for ZoneSites {
    fn manifest_for(&self, host: &str) -> Option<Hash> {
        let name = naming::Name::parse(host).ok()?;
        let zone = self.0.lookup(&name)?;
        zone.zone.records_for(&name).find_map(|r| match r.data {
            naming::RecordData::Site { manifest } => Some(Hash(manifest)),
            _ => None,
        })
    }
}

/// Starts the store and the gateway on `config.http_listen`.
// Each argument is a distinct dependency the node hands over; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    config: &Config,
    data_dir: &Path,
    resolver: Arc<dyn SiteResolver>,
    identity: &crate::identity::NodeIdentity,
    mesh: &mesh::Mesh,
    services: &mut BTreeMap<String, ServiceInfo>,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<Cdn> {
    config
        .cdn
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let store_config = config.cdn.store(data_dir.join("blobs"));
    let store = tokio::task::spawn_blocking(move || Store::open(store_config))
        .await
        .context("blob store open task failed")?
        .context("cannot open the blob store")?;
    let cdn_registry = registry.sub_registry_with_prefix("cdn");
    store.register_metrics(cdn_registry.sub_registry_with_prefix("store"));
    // Serve what this node holds to its peers, and fetch what it lacks from them.
    let server = cdn_edge::transfer::Server::new(Arc::new(store.clone()), 64);
    server.register_metrics(cdn_registry.sub_registry_with_prefix("transfer"));
    server
        .serve_on(mesh.dataplane())
        .context("cannot serve the blob transfer protocol")?;
    let fetcher = Fetcher::new(store.clone(), mesh.clone(), FetchConfig::default());
    fetcher.register_metrics(cdn_registry.sub_registry_with_prefix("fetch"));
    tracker.spawn(fetcher.clone().run_announcer(shutdown.clone()));
    tracker.spawn(fetcher.clone().run_gossip(shutdown.clone()));
    // The gateway proves to other nodes that its address answers for this node (steering
    // names an HTTP address only after that check).
    let key = identity.signing_key().clone();
    let gateway_config = cdn_edge::gateway::GatewayConfig {
        identity: Some(cdn_edge::gateway::IdentitySigner(Arc::new(
            move |msg: &[u8]| {
                use ed25519_dalek::Signer;
                key.sign(msg).to_bytes()
            },
        ))),
        ..config.cdn.gateway()
    };
    let gw = Gateway::new(
        gateway_config,
        resolver.clone(),
        Arc::new(fetcher.clone()) as Arc<dyn BlobSource>,
    );
    gw.register_metrics(cdn_registry.sub_registry_with_prefix("gateway"));
    let listener = gateway::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on http_listen {}", config.http_listen))?;
    let http_addr = listener.local_addr()?;
    tracker.spawn(gw.serve(listener, shutdown.clone()));
    services.insert("http".to_owned(), admin::service("http", http_addr));
    Ok(Cdn {
        store,
        fetcher,
        http_addr,
        resolver,
        max_upload: config.cdn.max_upload_bytes,
    })
}

impl Cdn {
    /// The admin API routes of the blob store.
    pub fn routes(&self) -> Router {
        let blob_routes = Router::new()
            .route("/api/blobs/{hash}", get(get_blob).put(put_blob))
            .layer(DefaultBodyLimit::disable());
        Router::new()
            .route("/api/blobs", get(stats))
            .route("/api/blobs/missing", post(missing))
            .route("/api/blobs/pin", post(pin))
            .route("/api/blobs/verify", post(verify))
            .route("/api/blobs/fetches", get(fetches))
            .route("/api/blobs/{hash}/providers", get(providers))
            .route("/api/sites/{host}", get(site))
            .merge(blob_routes)
            .with_state(self.clone())
    }
}

/// A list of hashes.
#[derive(Debug, Serialize, Deserialize)]
pub struct HashList {
    /// Hex BLAKE3 hashes.
    pub hashes: Vec<String>,
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn parse_hashes(list: &HashList) -> Result<Vec<Hash>, ApiError> {
    if list.hashes.len() > MAX_HASHES {
        return Err(bad_request(format!(
            "at most {MAX_HASHES} hashes per request"
        )));
    }
    list.hashes
        .iter()
        .map(|h| {
            h.parse::<Hash>()
                .map_err(|_| bad_request(format!("{h:?} is not a BLAKE3 hash")))
        })
        .collect()
}

fn parse_hash(h: &str) -> Result<Hash, ApiError> {
    h.parse()
        .map_err(|_| bad_request(format!("{h:?} is not a BLAKE3 hash")))
}

async fn stats(State(cdn): State<Cdn>) -> Json<serde_json::Value> {
    let (count, bytes) = cdn.store.stats();
    Json(serde_json::json!({ "count": count, "bytes": bytes }))
}

async fn missing(
    State(cdn): State<Cdn>,
    Json(list): Json<HashList>,
) -> Result<Json<HashList>, ApiError> {
    let hashes = parse_hashes(&list)?;
    let missing = cdn.store.missing(&hashes);
    Ok(Json(HashList {
        hashes: missing.iter().map(Hash::to_hex).collect(),
    }))
}

async fn pin(
    State(cdn): State<Cdn>,
    Json(list): Json<HashList>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hashes = parse_hashes(&list)?;
    let store = cdn.store.clone();
    let (pinned, missing) = tokio::task::spawn_blocking(move || {
        let mut pinned = 0u64;
        let mut missing = Vec::new();
        for h in hashes {
            match store.pin(h) {
                Ok(true) => pinned += 1,
                Ok(false) => missing.push(h.to_hex()),
                Err(e) => return Err(e),
            }
        }
        Ok((pinned, missing))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    let missing_set: std::collections::HashSet<&String> = missing.iter().collect();
    for h in &list.hashes {
        if !missing_set.contains(h)
            && let Ok(h) = h.parse::<Hash>()
        {
            cdn.fetcher.announce(h);
        }
    }
    Ok(Json(
        serde_json::json!({ "pinned": pinned, "missing": missing }),
    ))
}

#[derive(Debug, Deserialize)]
struct PutQuery {
    #[serde(default)]
    pin: bool,
}

async fn put_blob(
    State(cdn): State<Cdn>,
    UrlPath(hash): UrlPath<String>,
    Query(q): Query<PutQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    let tmp = cdn.store.temp_path();
    // Stream to a temporary file in the store (bounded), then verify and move into place.
    let received = async {
        let mut file = tokio::fs::File::create(&tmp).await.map_err(internal)?;
        let mut stream = body.into_data_stream();
        let mut total: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| bad_request(format!("upload interrupted: {e}")))?;
            total += chunk.len() as u64;
            if total > cdn.max_upload {
                return Err(ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("blob larger than cdn.max_upload_bytes ({})", cdn.max_upload),
                ));
            }
            file.write_all(&chunk).await.map_err(internal)?;
        }
        file.sync_all().await.map_err(internal)?;
        Ok(total)
    }
    .await;
    let size = match received {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let existed = cdn.store.contains(hash);
    let store = cdn.store.clone();
    let imported = tokio::task::spawn_blocking(move || store.import_file(&tmp, Some(hash), q.pin))
        .await
        .map_err(internal)?;
    match imported {
        Ok(_) => {
            cdn.fetcher.announce(hash);
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let body = serde_json::json!({ "hash": hash.to_hex(), "size": size, "new": !existed });
            Ok((status, Json(body)).into_response())
        }
        Err(e @ StoreError::HashMismatch { .. }) => Err(bad_request(e.to_string())),
        Err(e) => Err(internal(e)),
    }
}

async fn get_blob(
    State(cdn): State<Cdn>,
    UrlPath(hash): UrlPath<String>,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    let blob = match cdn.fetcher.blob(hash).await {
        Ok(Some(b)) => b,
        Ok(None) => return Err(ApiError(StatusCode::NOT_FOUND, "no such blob".into())),
        Err(e @ StoreError::Corrupt(_)) => {
            return Err(ApiError(StatusCode::NOT_FOUND, e.to_string()));
        }
        Err(e) => return Err(internal(e)),
    };
    let size = blob.size();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let mut at = 0;
        while at < size {
            let n = (size - at).min(1 << 20);
            let chunk = match blob.read_some(at, n) {
                Ok(c) if !c.is_empty() => Ok(c),
                Ok(_) => Err(std::io::Error::other("blob ended early")),
                Err(e) => Err(std::io::Error::other(e)),
            };
            let got = chunk.as_ref().map(|c| c.len() as u64).unwrap_or(0);
            if tx.blocking_send(chunk).is_err() || got == 0 {
                return;
            }
            at += got;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", size)
        .body(Body::from_stream(stream))
        .map_err(internal)
}

async fn providers(
    State(cdn): State<Cdn>,
    UrlPath(hash): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hash = parse_hash(&hash)?;
    let peers = cdn.fetcher.providers(hash).await;
    let ranked = cdn.fetcher.rank(&peers);
    Ok(Json(
        serde_json::json!({ "hash": hash.to_hex(), "providers": ranked }),
    ))
}

async fn fetches(State(cdn): State<Cdn>) -> Json<Vec<cdn_edge::fetch::FetchRecord>> {
    Json(cdn.fetcher.records())
}

async fn verify(State(cdn): State<Cdn>) -> Result<Json<serde_json::Value>, ApiError> {
    let store = cdn.store.clone();
    let report = tokio::task::spawn_blocking(move || store.verify_all())
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let dropped: Vec<String> = report.dropped.iter().map(Hash::to_hex).collect();
    Ok(Json(
        serde_json::json!({ "ok": report.ok, "dropped": dropped }),
    ))
}

async fn site(
    State(cdn): State<Cdn>,
    UrlPath(host): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match cdn.resolver.manifest_for(&host) {
        Some(h) => Ok(Json(
            serde_json::json!({ "host": host, "manifest": h.to_hex() }),
        )),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no site record for {host}"),
        )),
    }
}
