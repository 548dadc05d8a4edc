//! Admin API routes of the naming service, under `/api/names`:
//!
//! | method | path | body | does |
//! |---|---|---|---|
//! | GET | `/api/names` | | names with zones held here |
//! | POST | `/api/names` | `{"name", "years"?}` | register |
//! | GET | `/api/names/{name}` | | ledger entry (with expiry) and zone |
//! | GET | `/api/names/{name}/records` | | records |
//! | POST | `/api/names/{name}/records` | `{"type", "value", "ttl"?}` | add/update a record |
//! | DELETE | `/api/names/{name}/records?type=T&value=V` | | remove records |
//! | POST | `/api/names/{name}/renew` | `{"years"?}` | renew |
//! | POST | `/api/names/{name}/transfer` | `{"new_owner"}` | transfer |
//! | POST | `/api/names/{name}/rotate-key` | | new zone key, zone re-signed |
//! | POST | `/api/names/{name}/site` | `{"manifest": "<64 hex>"}` | set the site record |
//! | GET | `/api/names/{name}/zone` | | the signed zone, canonical binary encoding |
//!
//! Errors are `{"error": "..."}` with a status that says whose fault it is (400 bad input,
//! 403 not ours, 404 unknown, 409 taken, 410 expired, 422 zone refused, 503 ledger unreachable).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use naming::{NameService, NameServiceError, ZoneView};
use serde::{Deserialize, Serialize};

type Svc = State<Arc<NameService>>;

/// The error as `{"error": "..."}` with its status.
fn error(e: NameServiceError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

/// The value as JSON, or the error.
fn reply<T: Serialize>(r: Result<T, NameServiceError>) -> Response {
    r.map(Json).map_or_else(error, IntoResponse::into_response)
}

#[derive(Deserialize)]
struct RegisterBody {
    name: String,
    #[serde(default = "one")]
    years: u32,
}

#[derive(Deserialize)]
struct YearsBody {
    #[serde(default = "one")]
    years: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct SetBody {
    #[serde(rename = "type")]
    rtype: String,
    value: String,
    ttl: Option<u32>,
}

#[derive(Deserialize)]
struct RmQuery {
    #[serde(rename = "type")]
    rtype: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct TransferBody {
    new_owner: String,
}

#[derive(Deserialize)]
struct SiteBody {
    manifest: String,
}

/// The routes, with the service as state.
pub fn routes(svc: Arc<NameService>) -> Router {
    Router::new()
        .route("/api/names", get(list).post(register))
        .route("/api/names/{name}", get(show))
        .route(
            "/api/names/{name}/records",
            get(records).post(set_record).delete(remove_records),
        )
        .route("/api/names/{name}/renew", post(renew))
        .route("/api/names/{name}/transfer", post(transfer))
        .route("/api/names/{name}/rotate-key", post(rotate_key))
        .route("/api/names/{name}/site", post(set_site))
        .route("/api/names/{name}/zone", get(zone))
        .with_state(svc)
}

async fn list(State(s): Svc) -> Response {
    reply(s.list().await)
}

async fn register(State(s): Svc, Json(b): Json<RegisterBody>) -> Response {
    match s.register(&b.name, b.years).await {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => error(e),
    }
}

async fn show(State(s): Svc, Path(name): Path<String>) -> Response {
    reply(s.show(&name).await)
}

async fn records(State(s): Svc, Path(name): Path<String>) -> Response {
    reply(s.records(&name).await)
}

async fn set_record(State(s): Svc, Path(name): Path<String>, Json(b): Json<SetBody>) -> Response {
    reply(s.set_record(&name, &b.rtype, &b.value, b.ttl).await)
}

async fn remove_records(
    State(s): Svc,
    Path(name): Path<String>,
    Query(q): Query<RmQuery>,
) -> Response {
    reply(
        s.remove_records(&name, &q.rtype, q.value.as_deref())
            .await
            .map(|n| serde_json::json!({ "removed": n })),
    )
}

async fn renew(State(s): Svc, Path(name): Path<String>, Json(b): Json<YearsBody>) -> Response {
    reply(s.renew(&name, b.years).await)
}

async fn transfer(
    State(s): Svc,
    Path(name): Path<String>,
    Json(b): Json<TransferBody>,
) -> Response {
    reply(s.transfer(&name, &b.new_owner).await)
}

async fn rotate_key(State(s): Svc, Path(name): Path<String>) -> Response {
    reply(s.rotate_key(&name).await)
}

/// `POST /api/names/{name}/site` with `{"manifest": "<64 hex digits>"}`: points the name's
/// site record at a manifest and re-signs the zone.
async fn set_site(State(s): Svc, Path(name): Path<String>, Json(b): Json<SiteBody>) -> Response {
    let run = async {
        let name = NameService::parse_name(&name)?;
        let manifest: [u8; 32] = hex::decode(b.manifest.trim())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                NameServiceError::BadRequest(
                    "manifest must be 64 hex digits (a BLAKE3 hash)".into(),
                )
            })?;
        let zone = s.set_site(&name, manifest).await?;
        Ok::<_, NameServiceError>(ZoneView::from(&*zone))
    };
    reply(run.await)
}

async fn zone(State(s): Svc, Path(name): Path<String>) -> Response {
    let run = async {
        let name = NameService::parse_name(&name)?;
        s.zones()
            .get(&name)
            .ok_or_else(|| NameServiceError::NotFound(format!("no zone held for {name}")))
    };
    match run.await {
        Ok(z) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            z.encode(),
        )
            .into_response(),
        Err(e) => error(e),
    }
}
