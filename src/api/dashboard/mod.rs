//! The operator's dashboard on the admin port: one page whose assets are in the binary (uPlot
//! vendored with its licence, no network needed), fed by one document, `/api/dashboard`, that
//! the node keeps up to date itself:
//!
//! - a 15-minute history of rates sampled every 2 s from the metrics registry ([`history`]);
//! - an event log: members joining, suspected, dead, left; cache view changes; refusals;
//! - the names with a zone here, their sites and whether this node holds the site's manifest;
//! - the blob store's use and the cache's part in the cluster (slots, pulls, lag, majority);
//! - the members with their coordinates, measured and predicted RTT.
//!
//! The sampler runs on the node's runtime and the handler only copies what it prepared (the
//! names are listed every 10 s: that walks every zone), so the page keeps answering when the
//! node is busy; the page asks for what changed since its last
//! poll (`?since=MS&events_after=SEQ`).

pub mod history;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::NodeMetrics;
use history::History;

/// Events kept (the oldest go first).
const EVENTS: usize = 500;
/// Names listed at most (a node may hold a million zones; the page lists the first ones in
/// name order, those with a site held here first, and says how many there are).
const NAMES: usize = 200;
/// The names are listed again every this many samples (every 10 s): listing walks every zone.
const NAMES_EVERY: u64 = 5;

/// What the dashboard reads; each part is optional so a node without a service still has a
/// page.
#[derive(Clone)]
pub struct Sources {
    /// The registry `/metrics` renders.
    pub registry: Arc<Registry>,
    /// Node-level metrics (uptime is set at each render).
    pub metrics: NodeMetrics,
    /// When the node started.
    pub started: Instant,
    /// The mesh: members, coordinates.
    pub mesh: mesh::Mesh,
    /// The verified zones held here (names and their site records).
    pub zones: Arc<naming::ZoneStore>,
    /// The blob store (site manifests held here, store use).
    pub store: cdn_edge::store::Store,
    /// The cache, if it runs.
    pub cache: Option<cache::CacheHandle>,
}

/// One line of the event log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Increasing number (the page asks for the events after the last it has).
    pub seq: u64,
    /// Unix milliseconds.
    pub t: u64,
    /// `join`, `suspect`, `dead`, `alive`, `left`, `gone`, `view`, `refused`.
    pub kind: String,
    /// What happened, for a person.
    pub text: String,
}

/// What the sampler keeps between samples.
#[derive(Default)]
struct Live {
    history: History,
    events: VecDeque<Event>,
    next_seq: u64,
    /// Member states at the last sample, by peer id.
    members: HashMap<String, mesh::MemberState>,
    /// The cache view's epoch at the last sample.
    cache_epoch: Option<u64>,
    /// What the page shows besides rates and events, as of the last sample.
    shot: Snapshot,
    /// Samples taken.
    ticks: u64,
}

/// The parts of [`Document`] the sampler prepares, so that a request only copies them.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    names: Vec<NameRow>,
    names_total: usize,
    store: StoreUse,
    cache: Option<CacheView>,
    members: Vec<mesh::MemberStatus>,
}

impl Live {
    fn event(&mut self, t: u64, kind: &str, text: String) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.next_seq += 1;
        self.events.push_back(Event {
            seq: self.next_seq,
            t,
            kind: kind.to_owned(),
            text,
        });
    }
}

/// The dashboard: its sources and what the sampler prepared.
#[derive(Clone)]
pub struct Dashboard {
    sources: Sources,
    live: Arc<Mutex<Live>>,
}

/// Starts the sampler; the returned dashboard gives the routes.
pub fn start(sources: Sources, shutdown: &CancellationToken, tracker: &TaskTracker) -> Dashboard {
    let dash = Dashboard {
        sources,
        live: Arc::default(),
    };
    let d = dash.clone();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(history::INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => d.sample(),
            }
        }
    });
    dash
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn short(peer: &str) -> &str {
    &peer[peer.len().saturating_sub(8)..]
}

impl Dashboard {
    /// Takes one sample: rates, membership changes, cache view changes, refusals.
    fn sample(&self) {
        let s = &self.sources;
        let text = crate::metrics::render(&s.registry, &s.metrics, s.started);
        let samples = history::parse(&text);
        let members = s.mesh.status();
        let cache = s
            .cache
            .as_ref()
            .and_then(cache::CacheHandle::cluster_status);
        let t = now_ms();
        let names_due = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ticks
            .is_multiple_of(NAMES_EVERY);
        // Outside the lock: listing walks every zone.
        let names = names_due.then(|| self.names());
        let (blobs, bytes) = s.store.stats();
        let store = StoreUse {
            blobs,
            bytes,
            capacity: s.store.disk_budget(),
        };
        let cache_view = s.cache.as_ref().map(|c| CacheView {
            keys: c.key_count(),
            cluster: cache.clone(),
        });
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.ticks += 1;
        if let Some((rows, total)) = names {
            live.shot.names = rows;
            live.shot.names_total = total;
        }
        live.shot.store = store;
        live.shot.cache = cache_view;
        live.shot.members = members.clone();
        for r in live.history.record(t, &samples) {
            live.event(t, "refused", format!("{} +{}", r.series, r.delta));
        }
        let mut seen = HashMap::new();
        for m in members.iter().filter(|m| !m.is_self) {
            seen.insert(m.peer_id.clone(), m.state);
            let before = live.members.get(&m.peer_id).copied();
            if before == Some(m.state) {
                continue;
            }
            let kind = match (before, m.state) {
                (None, mesh::MemberState::Alive) => "join",
                (_, mesh::MemberState::Alive) => "alive",
                (_, mesh::MemberState::Suspect) => "suspect",
                (_, mesh::MemberState::Dead) => "dead",
                (_, mesh::MemberState::Left) => "left",
            };
            let at = m.addrs.get("quic").unwrap_or(&m.quic);
            live.event(
                t,
                kind,
                format!("member …{} ({at}): {kind}", short(&m.peer_id)),
            );
        }
        let gone: Vec<String> = live
            .members
            .keys()
            .filter(|p| !seen.contains_key(*p))
            .cloned()
            .collect();
        for p in gone {
            live.event(t, "gone", format!("member …{}: forgotten", short(&p)));
        }
        live.members = seen;
        if let Some(c) = &cache
            && live.cache_epoch != Some(c.epoch)
        {
            live.cache_epoch = Some(c.epoch);
            live.event(
                t,
                "view",
                format!(
                    "cache view epoch {}: {} members, this node primary of {} slots, replica of {}",
                    c.epoch, c.members, c.slots_primary, c.slots_replica
                ),
            );
        }
    }

    /// The document the page polls.
    fn document(&self, q: &Since) -> Document {
        let s = &self.sources;
        let (points, events) = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let events = live
                .events
                .iter()
                .filter(|e| e.seq > q.events_after.unwrap_or(0))
                .cloned()
                .collect();
            (live.history.points_since(q.since.unwrap_or(0)), events)
        };
        let shot = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shot
            .clone();
        Document {
            now: now_ms(),
            interval_ms: history::INTERVAL.as_millis() as u64,
            uptime_secs: s.started.elapsed().as_secs_f64(),
            points,
            events,
            names: shot.names,
            names_total: shot.names_total,
            store: shot.store,
            cache: shot.cache,
            members: shot.members,
        }
    }

    /// The names with a zone here, sites held here first, then names with a site, then the
    /// rest, each in name order; at most [`NAMES`] of them, and how many there are.
    fn names(&self) -> (Vec<NameRow>, usize) {
        let s = &self.sources;
        let all = s.zones.names();
        let total = all.len();
        let mut rows: Vec<NameRow> = all
            .into_iter()
            .filter_map(|n| {
                let zone = s.zones.get(&n)?;
                let site = crate::sites::site_of(&zone, &n);
                Some(NameRow {
                    name: n.to_string(),
                    site_held: site.is_some_and(|h| s.store.contains(h)),
                    site: site.map(|h| h.to_string()),
                    records: zone.zone.records.len(),
                    sequence: zone.zone.sequence,
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            (!a.site_held, a.site.is_none(), &a.name).cmp(&(
                !b.site_held,
                b.site.is_none(),
                &b.name,
            ))
        });
        rows.truncate(NAMES);
        (rows, total)
    }
}

/// `?since=MS&events_after=SEQ`.
#[derive(Debug, Default, Deserialize)]
struct Since {
    since: Option<u64>,
    events_after: Option<u64>,
}

/// A name with a zone here.
#[derive(Debug, Clone, Serialize)]
struct NameRow {
    name: String,
    /// Hash of the site manifest, if the zone has a site record.
    site: Option<String>,
    /// Whether this node's store holds that manifest (the site is served from here).
    site_held: bool,
    records: usize,
    sequence: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct StoreUse {
    blobs: u64,
    bytes: u64,
    capacity: u64,
}

#[derive(Debug, Clone, Serialize)]
struct CacheView {
    keys: usize,
    cluster: Option<cache::cluster::ClusterStatus>,
}

/// `/api/dashboard`.
#[derive(Debug, Serialize)]
struct Document {
    now: u64,
    interval_ms: u64,
    uptime_secs: f64,
    points: history::Points,
    events: Vec<Event>,
    /// At most [`NAMES`] of the names with a zone here.
    names: Vec<NameRow>,
    /// How many names have a zone here.
    names_total: usize,
    store: StoreUse,
    cache: Option<CacheView>,
    members: Vec<mesh::MemberStatus>,
}

/// The page and its assets: path, body, content type.
const ASSETS: [(&str, &str, &str); 6] = [
    ("/", INDEX, "text/html; charset=utf-8"),
    (
        "/assets/dashboard.js",
        SCRIPT,
        "text/javascript; charset=utf-8",
    ),
    ("/assets/dashboard.css", STYLE, "text/css; charset=utf-8"),
    (
        "/assets/uPlot.iife.min.js",
        UPLOT_JS,
        "text/javascript; charset=utf-8",
    ),
    (
        "/assets/uPlot.min.css",
        UPLOT_CSS,
        "text/css; charset=utf-8",
    ),
    (
        "/assets/uPlot.LICENSE",
        UPLOT_LICENSE,
        "text/plain; charset=utf-8",
    ),
];

/// The page, its script and style, uPlot, and `/api/dashboard`.
pub fn routes(dash: Dashboard) -> Router {
    let mut router = Router::new().route("/api/dashboard", get(document));
    for (path, body, content_type) in ASSETS {
        router = router.route(path, get(move || asset(body, content_type)));
    }
    router.with_state(dash)
}

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The page is part of the binary: a new binary may bring a new page.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn document(State(dash): State<Dashboard>, Query(q): Query<Since>) -> Json<Document> {
    Json(dash.document(&q))
}
