//! The admin HTTP endpoint and every admin route: `/health` (JSON), `/metrics` (Prometheus text), and the API routes
//! that services add (the CLI talks to these). Every route, those of services included, is
//! behind [`admin_trust::guard`](crate::api::trust::guard): `Host` check, and the admin token
//! for every changing request.

pub mod blobs;
pub mod cluster;
pub mod dashboard;
pub mod registrars;
pub mod trust;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::metrics::NodeMetrics;

/// One running service and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Transport and protocol, e.g. `http`, `dns (udp+tcp)`.
    pub protocol: String,
    /// The real bound address (port 0 in the config is resolved here).
    pub listen: String,
}

/// The `/health` document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the node answers.
    pub status: String,
    /// Crate version of the node.
    pub version: String,
    /// libp2p peer id of the node.
    pub peer_id: String,
    /// Seconds since start.
    pub uptime_secs: f64,
    /// The data directory in use.
    pub data_dir: String,
    /// Running services by name (`admin`, `dns`, `http`, `redis`, `quic`, `p2p`).
    pub services: BTreeMap<String, ServiceInfo>,
    /// Mesh members as this node sees them (itself included, `self: true`).
    #[serde(default)]
    pub members: Vec<mesh::MemberStatus>,
}

/// Shared state of the admin endpoint.
#[derive(Clone)]
pub struct AdminState {
    pub(crate) started: Instant,
    pub(crate) peer_id: String,
    pub(crate) data_dir: String,
    pub(crate) services: Arc<BTreeMap<String, ServiceInfo>>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) metrics: NodeMetrics,
    pub(crate) mesh: Option<mesh::Mesh>,
    /// The token and `Host` rules every request is checked against.
    pub(crate) guard: crate::api::trust::Guard,
}

impl AdminState {
    /// The current health document.
    pub fn health(&self) -> Health {
        Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            peer_id: self.peer_id.clone(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            data_dir: self.data_dir.clone(),
            services: (*self.services).clone(),
            members: self
                .mesh
                .as_ref()
                .map(mesh::Mesh::status)
                .unwrap_or_default(),
        }
    }
}

/// The admin router; `extra` holds the API routes of the services and the dashboard. The guard goes over the
/// merged router, so it covers every route however it was added.
pub fn router(state: AdminState, extra: Router) -> Router {
    let guard = state.guard.clone();
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::api::trust::guard,
        ))
}

async fn health(State(state): State<AdminState>) -> Json<Health> {
    Json(state.health())
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let body = crate::metrics::render(&state.registry, &state.metrics, state.started);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// The service addresses a node advertises to members: every service's real listen address.
pub fn advertised(services: &BTreeMap<String, ServiceInfo>) -> BTreeMap<String, String> {
    services
        .iter()
        .map(|(name, s)| (name.clone(), s.listen.clone()))
        .collect()
}

/// Formats an address for `/health`.
pub fn service(protocol: &str, addr: impl std::fmt::Display) -> ServiceInfo {
    ServiceInfo {
        protocol: protocol.into(),
        listen: addr.to_string(),
    }
}
