//! The blob store's admin API, used by `proxima publish` and `proxima get` (JSON unless
//! noted):
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

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cdn_edge::store::{BlobSource, StoreError};
use cdn_edge::{CdnHandle, Hash};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// Most hashes in one `missing` or `pin` request.
const MAX_HASHES: usize = 100_000;

/// What the routes act on.
#[derive(Clone)]
struct Cdn {
    edge: CdnHandle,
    /// Largest upload accepted (`cdn.max_upload_bytes`).
    max_upload: u64,
}

impl std::ops::Deref for Cdn {
    type Target = CdnHandle;
    fn deref(&self) -> &CdnHandle {
        &self.edge
    }
}

/// The routes, over the running CDN edge.
pub fn routes(edge: CdnHandle, max_upload: u64) -> Router {
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
        .with_state(Cdn { edge, max_upload })
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
