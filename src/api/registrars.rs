//! Admin API routes of the registrar group, under `/api/cluster/registrars`:
//!
//! | method | path | body | does |
//! |---|---|---|---|
//! | GET | `/api/cluster/registrars` | | the group as this node sees it |
//! | POST | `/api/cluster/registrars` | `{"peer"}` | add a member (through the leader) |
//! | DELETE | `/api/cluster/registrars/{peer}` | | remove a member (through the leader) |
//!
//! A node is added only if it is a live member that holds the `registrar` role by a valid
//! certificate (`proxima cluster token --roles registrar` or `admit --roles registrar`); the
//! leader checks it again. Errors are `{"error": "..."}`: 400 bad input, 409 refused (no
//! certificate, last member, the leader removing itself), 503 no leader reachable.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use naming::LedgerError;
use naming::raft::RegistrarGroup;
use serde::Deserialize;

#[derive(Clone)]
struct Registrars {
    group: Arc<RegistrarGroup>,
    mesh: mesh::Mesh,
}

#[derive(Deserialize)]
struct AddBody {
    peer: String,
}

/// The routes.
pub fn routes(group: Arc<RegistrarGroup>, mesh: mesh::Mesh) -> Router {
    Router::new()
        .route("/api/cluster/registrars", get(status).post(add))
        .route("/api/cluster/registrars/{peer}", delete(remove))
        .with_state(Registrars { group, mesh })
}

fn error(status: StatusCode, e: impl std::fmt::Display) -> Response {
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

fn ledger_error(e: &LedgerError) -> Response {
    let status = match e {
        LedgerError::Unreachable(_) | LedgerError::NotLeader { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::CONFLICT,
    };
    error(status, e)
}

async fn status(State(r): State<Registrars>) -> Response {
    Json(r.group.status()).into_response()
}

/// The member key of `peer`, or why it is not one.
fn registrar_key(peer: &str) -> Result<[u8; 32], &'static str> {
    let peer: mesh::PeerId = peer.parse().map_err(|_| "peer: not a peer id")?;
    mesh::peer_ed25519_key(&peer).ok_or("peer: not an Ed25519 peer id")
}

async fn add(State(r): State<Registrars>, Json(b): Json<AddBody>) -> Response {
    let key = match registrar_key(&b.peer) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let certified = b
        .peer
        .parse()
        .is_ok_and(|p| r.mesh.peer_has_role(&p, mesh::trust::ROLE_REGISTRAR));
    if !certified {
        return error(
            StatusCode::CONFLICT,
            format!(
                "{} is not a live member holding the registrar role (admit it with --roles \
                 registrar, or join it with a token for that role)",
                b.peer
            ),
        );
    }
    match r.group.add_member(key).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => ledger_error(&e),
    }
}

async fn remove(State(r): State<Registrars>, Path(peer): Path<String>) -> Response {
    let key = match registrar_key(&peer) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match r.group.remove_member(key).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => ledger_error(&e),
    }
}
