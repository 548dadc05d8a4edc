//! Admin API routes of the cluster membership, under `/api/cluster`:
//!
//! | method | path | body | does |
//! |---|---|---|---|
//! | GET | `/api/cluster` | | anchor, this node's certificate and standing, revoked peers |
//! | POST | `/api/cluster/tokens` | `{"roles"?, "ttl_secs"?}` | a one-time join token (issuers) |
//! | POST | `/api/cluster/admit` | `{"peer", "roles"?, "days"?, "secs"?}` | sign (and deliver) a certificate |
//! | POST | `/api/cluster/revoke` | `{"peer"}` | revoke a peer's certificates |
//!
//! Errors are `{"error": "..."}` (400 bad input, 409 this node is not an issuer).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::cluster::ClusterService;

/// Default lifetime of a join token.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

fn error(status: StatusCode, e: impl std::fmt::Display) -> Response {
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

fn not_issuer_or_bad(svc: &ClusterService, e: anyhow::Error) -> Response {
    if svc.is_issuer() {
        error(StatusCode::BAD_REQUEST, format!("{e:#}"))
    } else {
        error(StatusCode::CONFLICT, format!("{e:#}"))
    }
}

fn default_roles() -> Vec<String> {
    vec![mesh::trust::ROLE_CACHE.to_owned()]
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default = "default_roles")]
    roles: Vec<String>,
    ttl_secs: Option<u64>,
}

#[derive(Deserialize)]
struct AdmitBody {
    peer: String,
    #[serde(default = "default_roles")]
    roles: Vec<String>,
    days: Option<u32>,
    /// A lifetime in seconds (tests of expiry and renewal).
    secs: Option<u64>,
}

#[derive(Deserialize)]
struct RevokeBody {
    peer: String,
}

/// The routes.
pub fn routes(svc: ClusterService) -> Router {
    Router::new()
        .route("/api/cluster", get(status))
        .route("/api/cluster/tokens", post(token))
        .route("/api/cluster/admit", post(admit))
        .route("/api/cluster/revoke", post(revoke))
        .with_state(svc)
}

async fn status(State(svc): State<ClusterService>) -> Response {
    Json(svc.status()).into_response()
}

async fn token(State(svc): State<ClusterService>, Json(b): Json<TokenBody>) -> Response {
    let ttl = b.ttl_secs.map_or(TOKEN_TTL, Duration::from_secs);
    match svc.new_token(b.roles, ttl) {
        Ok(t) => Json(serde_json::json!({ "token": t.to_string() })).into_response(),
        Err(e) => not_issuer_or_bad(&svc, e),
    }
}

async fn admit(State(svc): State<ClusterService>, Json(b): Json<AdmitBody>) -> Response {
    let Ok(peer) = b.peer.parse() else {
        return error(StatusCode::BAD_REQUEST, "peer: not a peer id");
    };
    let secs = b
        .secs
        .unwrap_or_else(|| u64::from(b.days.unwrap_or(30)) * 86_400)
        .clamp(1, 3650 * 86_400);
    match svc.admit(peer, b.roles, secs).await {
        Ok(cert) => Json(cert).into_response(),
        Err(e) => not_issuer_or_bad(&svc, e),
    }
}

async fn revoke(State(svc): State<ClusterService>, Json(b): Json<RevokeBody>) -> Response {
    let Ok(peer) = b.peer.parse() else {
        return error(StatusCode::BAD_REQUEST, "peer: not a peer id");
    };
    match svc.revoke(peer).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => not_issuer_or_bad(&svc, e),
    }
}
