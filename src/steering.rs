//! Steering of site names through the mesh: which nodes a visitor of a site is sent to.
//!
//! A name whose zone holds a site record answers A/AAAA with the nearest healthy nodes that hold
//! the site and serve HTTP ([`MeshSteering`], the node's [`dns::SiteSteering`]):
//!
//! - holders are the holders of the site's manifest in the mesh's provider table
//!   ([`mesh::Mesh::holders`] under `cdn_edge::Hash::provider_key`, the record the CDN's fetcher
//!   reads and feeds too: DHT provider records and `have` gossip); when nobody holds it (or no
//!   holder serves HTTP), every live member serving HTTP is a candidate, since any gateway can
//!   fetch a published site;
//! - candidates are ordered by the mesh directory (`Mesh::rank`: measured RTT, coordinates,
//!   health, load, standing), the local node first when it serves HTTP and holds the site;
//! - each is mapped to the IP of the `http` service it advertises (its QUIC address's IP when it
//!   listens on an unspecified address), at most [`MAX_ADDRESSES`] of them, and only once this
//!   node has checked that the address answers for that member: a random challenge sent to
//!   `http://ADDR/.well-known/proxima/identity` must come back signed by the member's node key
//!   (what a member advertises about itself is never repeated unchecked; a stranger cannot
//!   send visitors of a site to an address of its choosing);
//! - fewer than [`MIN_ADDRESSES`] holders are followed by the nearest other gateways (this node
//!   first), so a client can fail over while a lone holder's death is not yet detected.
//!
//! The DNS request path never waits for the DHT: [`dns::SiteSteering::nodes_for_site`] only
//! reads the answers kept here and the provider table (which keeps a key asked for fresh in
//! the background: [`mesh::providers`]). A background task ranks the sites asked for lately
//! again every [`RERANK_EVERY`] (cheap, local) and forgets sites nobody asked for in [`IDLE`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mesh::{MemberState, MemberView, Mesh, PeerId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most addresses in one steering answer (enough for a client to fail over).
pub const MAX_ADDRESSES: usize = 4;
/// Fewest addresses in an answer when the mesh has that many gateways: a site with one live
/// holder is answered with it and the nearest other gateway, so a client whose first address
/// fails (the holder died, not yet detected) falls over to a node that can fetch the site.
pub const MIN_ADDRESSES: usize = 2;
/// Answers are ranked again this often (RTTs, liveness and load change).
pub const RERANK_EVERY: Duration = Duration::from_secs(1);
/// Only sites asked for within this long are ranked again every second.
pub const RERANK_ACTIVE: Duration = Duration::from_secs(60);
/// A site nobody asked for in this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(600);
/// Most sites tracked at once; beyond this, new sites are answered from membership alone.
pub const MAX_SITES: usize = 4096;
/// A member's HTTP address is checked again this often.
pub const RECHECK_EVERY: Duration = Duration::from_secs(60);
/// A failed check is retried after this.
pub const RECHECK_FAILED: Duration = Duration::from_secs(5);
/// An identity check taking longer fails.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Identity checks running at once.
const MAX_CHECKS: usize = 4;

/// The last identity check of a member's HTTP address.
#[derive(Debug, Clone)]
struct Check {
    addr: SocketAddr,
    ok: bool,
    at: Instant,
    running: bool,
}

/// What is known about one site.
#[derive(Debug)]
struct Site {
    /// The current answer.
    answer: Arc<[IpAddr]>,
    /// When DNS last asked.
    last_asked: Instant,
}

/// The mesh-backed [`dns::SiteSteering`] of a node. Cheap to clone.
#[derive(Clone)]
pub struct MeshSteering {
    inner: Arc<Inner>,
}

struct Inner {
    mesh: Mesh,
    /// This node's HTTP IP from its configuration (used until its own advertisement is seen).
    local_http: Option<IpAddr>,
    sites: Mutex<HashMap<[u8; 32], Site>>,
    /// Identity checks of members' HTTP addresses.
    checks: Mutex<HashMap<PeerId, Check>>,
    http: reqwest::Client,
    /// Checks by outcome (`ok`, `refused`).
    checked: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Stops the refresh task and any check in flight.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for MeshSteering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshSteering")
            .field("sites", &self.inner.lock().len())
            .finish_non_exhaustive()
    }
}

impl MeshSteering {
    /// Steering over `mesh`; `local_http` is this node's HTTP IP if it serves HTTP on a
    /// specific address. The refresh task runs on the current runtime until `shutdown`.
    pub fn start(
        mesh: Mesh,
        local_http: Option<IpAddr>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Self {
        let steering = Self {
            inner: Arc::new(Inner {
                mesh,
                local_http,
                sites: Mutex::default(),
                checks: Mutex::default(),
                http: reqwest::Client::builder()
                    .timeout(CHECK_TIMEOUT)
                    .no_proxy()
                    .build()
                    .unwrap_or_default(),
                checked: Default::default(),
                shutdown: shutdown.clone(),
            }),
        };
        let s = steering.clone();
        let inner_tracker = tracker.clone();
        tracker.spawn(async move { s.refresh_loop(shutdown, inner_tracker).await });
        steering
    }

    async fn refresh_loop(self, shutdown: CancellationToken, tracker: TaskTracker) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(RERANK_EVERY) => {}
            }
            let now = Instant::now();
            for (peer, addr) in self.due_checks(now) {
                let s = self.clone();
                tracker.spawn(async move { s.check(peer, addr).await });
            }
            self.rerank(now);
        }
    }

    /// Registers the identity check counter (`http_checks_total{result}`).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "http_checks",
            "Identity checks of members' advertised HTTP addresses, by result",
            self.inner.checked.clone(),
        );
    }

    /// Members whose advertised HTTP address is due for an identity check.
    fn due_checks(&self, now: Instant) -> Vec<(PeerId, SocketAddr)> {
        let members = self.inner.mesh.members();
        let mut checks = self.inner.lock_checks();
        checks.retain(|p, _| members.iter().any(|m| m.id.peer == *p));
        let mut running = checks.values().filter(|c| c.running).count();
        let mut due = Vec::new();
        for m in &members {
            if m.is_self || !matches!(m.state, MemberState::Alive | MemberState::Suspect) {
                continue;
            }
            let Some(addr) = advertised_http(m) else {
                continue;
            };
            let stale = match checks.get(&m.id.peer) {
                None => true,
                Some(c) if c.running => false,
                Some(c) if c.addr != addr => true,
                Some(c) if c.ok => now.duration_since(c.at) >= RECHECK_EVERY,
                Some(c) => now.duration_since(c.at) >= RECHECK_FAILED,
            };
            if stale && running < MAX_CHECKS {
                running += 1;
                let prev = checks.get(&m.id.peer).filter(|c| c.addr == addr);
                let entry = Check {
                    addr,
                    ok: prev.is_some_and(|c| c.ok),
                    at: prev.map_or(now, |c| c.at),
                    running: true,
                };
                checks.insert(m.id.peer, entry);
                due.push((m.id.peer, addr));
            }
        }
        due
    }

    /// Sends a random challenge to `addr` and checks that `peer`'s node key signed it.
    async fn check(self, peer: PeerId, addr: SocketAddr) {
        let challenge: [u8; 32] = rand::random();
        let url = format!(
            "http://{addr}{}?challenge={}",
            cdn_edge::gateway::IDENTITY_PATH,
            hex::encode(challenge)
        );
        let answer = async {
            let body = self
                .inner
                .http
                .get(&url)
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?
                .text()
                .await
                .ok()?;
            let mut sig = [0u8; 64];
            hex::decode_to_slice(body.trim(), &mut sig).ok()?;
            Some(sig)
        };
        let sig = tokio::select! {
            () = self.inner.shutdown.cancelled() => return,
            sig = answer => sig,
        };
        let ok = sig.is_some_and(|sig| {
            let Some(key) = mesh::peer_ed25519_key(&peer) else {
                return false;
            };
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
                return false;
            };
            let msg = [cdn_edge::gateway::IDENTITY_DOMAIN, &challenge].concat();
            key.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok()
        });
        let result = if ok { "ok" } else { "refused" };
        self.inner
            .checked
            .get_or_create(&vec![("result".to_owned(), result.to_owned())])
            .inc();
        if !ok {
            tracing::info!(%peer, %addr, "a member's HTTP address does not answer for it; not steered to");
        }
        self.inner.lock_checks().insert(
            peer,
            Check {
                addr,
                ok,
                at: Instant::now(),
                running: false,
            },
        );
    }

    /// Forgets idle sites and ranks the ones asked for lately again from their holders in the
    /// provider table (the others are ranked again once they are asked for).
    fn rerank(&self, now: Instant) {
        let active: Vec<[u8; 32]> = {
            let mut sites = self.inner.lock();
            sites.retain(|_, s| now.duration_since(s.last_asked) < IDLE);
            sites
                .iter()
                .filter(|(_, s)| now.duration_since(s.last_asked) < RERANK_ACTIVE)
                .map(|(m, _)| *m)
                .collect()
        };
        if active.is_empty() {
            return;
        }
        let answers: Vec<([u8; 32], Vec<IpAddr>)> = active
            .into_iter()
            .map(|m| (m, self.rank(&self.holders(&m))))
            .collect();
        let mut sites = self.inner.lock();
        for (m, a) in answers {
            if let Some(s) = sites.get_mut(&m)
                && *s.answer != *a
            {
                s.answer = a.into();
            }
        }
    }

    /// The holders of a site's manifest in the mesh's provider table.
    fn holders(&self, manifest: &[u8; 32]) -> Vec<PeerId> {
        self.inner
            .mesh
            .holders(&cdn_edge::Hash(*manifest).provider_key())
    }

    /// The addresses to send visitors of a site held by `providers` to, best first.
    fn rank(&self, providers: &[PeerId]) -> Vec<IpAddr> {
        let mesh = &self.inner.mesh;
        let members = mesh.members();
        let me = mesh.peer_id();
        let http: HashMap<PeerId, IpAddr> = members
            .iter()
            .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .filter_map(|m| Some((m.id.peer, self.http_ip(m)?)))
            .collect();
        let mut candidates: Vec<PeerId> = providers
            .iter()
            .filter(|p| http.contains_key(p))
            .copied()
            .collect();
        if candidates.is_empty() {
            // Nobody serving HTTP announced it: every gateway can fetch a published site.
            candidates = http.keys().copied().collect();
        }
        let local_has = candidates.contains(&me);
        let mut out: Vec<IpAddr> = Vec::with_capacity(MAX_ADDRESSES);
        let push = |out: &mut Vec<IpAddr>, ranked: Vec<mesh::Ranked>, upto: usize| {
            for r in ranked {
                if out.len() >= upto {
                    break;
                }
                if let Some(ip) = http.get(&r.peer)
                    && !out.contains(ip)
                {
                    out.push(*ip);
                }
            }
        };
        push(&mut out, mesh.rank(&candidates, local_has), MAX_ADDRESSES);
        if out.len() < MIN_ADDRESSES {
            // A lone holder may have died unnoticed yet: the nearest other gateway (this one
            // first) can fetch the site from whoever else holds it by now.
            let others: Vec<PeerId> = http
                .keys()
                .filter(|p| !candidates.contains(p))
                .copied()
                .collect();
            push(&mut out, mesh.rank(&others, true), MIN_ADDRESSES);
        }
        if out.is_empty() {
            // No membership view yet (the node is starting): this node, if it serves HTTP.
            out.extend(self.inner.local_http);
        }
        out
    }

    /// The IP a member's HTTP gateway is reached at, if it serves HTTP and (for another
    /// member) its address passed the identity check.
    fn http_ip(&self, m: &MemberView) -> Option<IpAddr> {
        match advertised_http(m) {
            Some(addr) if m.is_self => Some(addr.ip()),
            Some(addr) => self
                .inner
                .lock_checks()
                .get(&m.id.peer)
                .is_some_and(|c| c.ok && c.addr == addr)
                .then_some(addr.ip()),
            // Not advertised yet: only this node knows its own.
            None if m.is_self => self.inner.local_http,
            None => None,
        }
    }
}

/// The HTTP address a member advertises (an unspecified IP replaced by its data plane's).
fn advertised_http(m: &MemberView) -> Option<SocketAddr> {
    let a = m
        .meta
        .as_ref()?
        .services
        .get("http")?
        .parse::<SocketAddr>()
        .ok()?;
    if !a.ip().is_unspecified() {
        return Some(a);
    }
    // Listening on every address: the one its data plane is reached at.
    let ip = m.id.quic.ip();
    (!ip.is_unspecified()).then_some(SocketAddr::new(ip, a.port()))
}

impl Inner {
    fn lock_checks(&self) -> MutexGuard<'_, HashMap<PeerId, Check>> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Site>> {
        self.sites.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl dns::SiteSteering for MeshSteering {
    fn nodes_for_site(&self, manifest: &[u8; 32]) -> Vec<IpAddr> {
        let now = Instant::now();
        {
            let mut sites = self.inner.lock();
            if let Some(s) = sites.get_mut(manifest)
                && now.duration_since(s.last_asked) < RERANK_ACTIVE
            {
                s.last_asked = now;
                return s.answer.to_vec();
            }
        }
        // Not asked lately: rank it now from the provider table (a local decision; the table
        // starts keeping the site's holders fresh), and keep the answer for the next question.
        let answer = self.rank(&self.holders(manifest));
        let mut sites = self.inner.lock();
        if sites.len() < MAX_SITES || sites.contains_key(manifest) {
            sites.insert(
                *manifest,
                Site {
                    answer: answer.clone().into(),
                    last_asked: now,
                },
            );
        }
        answer
    }
}
