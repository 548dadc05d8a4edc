//! Steering of site names through the mesh: which nodes a visitor of a site is sent to.
//!
//! A name whose zone holds a site record answers A/AAAA with the nearest healthy nodes that hold
//! the site and serve HTTP ([`MeshSteering`], the node's [`dns::SiteSteering`]):
//!
//! - holders are the DHT providers of the site's manifest (`cdn_edge::Hash::provider_key`, under
//!   which the CDN announces what it holds); when nobody announces it (or no holder serves HTTP),
//!   every live member serving HTTP is a candidate, since any gateway can fetch a published site;
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
//! reads a small table. A background task looks up the providers of every site asked for
//! recently ([`LOOKUP_EVERY`], or [`LOOKUP_EVERY_UNHELD`] while none is known), ranks them again every [`RERANK_EVERY`] (cheap, local), and
//! forgets sites nobody asked for in [`IDLE`]. The first question for a site is answered from
//! membership alone, and wakes the task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mesh::{MemberState, MemberView, Mesh, PeerId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most addresses in one steering answer (enough for a client to fail over).
pub const MAX_ADDRESSES: usize = 4;
/// Fewest addresses in an answer when the mesh has that many gateways: a site with one live
/// holder is answered with it and the nearest other gateway, so a client whose first address
/// fails (the holder died, not yet detected) falls over to a node that can fetch the site.
pub const MIN_ADDRESSES: usize = 2;
/// Provider lists are looked up again this often for sites still asked for.
pub const LOOKUP_EVERY: Duration = Duration::from_secs(15);
/// Until some holder is found, a site is looked up this often (it was probably just published).
pub const LOOKUP_EVERY_UNHELD: Duration = Duration::from_secs(3);
/// A DHT lookup taking longer than this is abandoned (the old list stays).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers are ranked again this often (RTTs, liveness and load change).
pub const RERANK_EVERY: Duration = Duration::from_secs(1);
/// Only sites asked for within this long are ranked again every second.
pub const RERANK_ACTIVE: Duration = Duration::from_secs(60);
/// A site nobody asked for in this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(600);
/// Most sites tracked at once; beyond this, new sites are answered from membership alone.
pub const MAX_SITES: usize = 4096;
/// DHT lookups running at once.
const MAX_LOOKUPS: usize = 16;
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
    /// Its holders from the last lookup (`None`: not looked up yet).
    providers: Option<Vec<PeerId>>,
    /// When the last lookup started.
    looked_up: Option<Instant>,
    /// A lookup is running.
    in_flight: bool,
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
    wake: Notify,
    /// Stops the refresh task and any lookup in flight (a shutdown does not wait for the DHT).
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
                wake: Notify::new(),
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
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(RERANK_EVERY) => {}
            }
            let now = Instant::now();
            for (peer, addr) in self.due_checks(now) {
                let s = self.clone();
                tracker.spawn(async move { s.check(peer, addr).await });
            }
            let due = self.due_lookups(now);
            for manifest in due {
                let s = self.clone();
                tracker.spawn(async move { s.lookup(manifest).await });
            }
            self.rerank();
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

    /// Forgets idle sites and marks the ones whose provider list is due for a lookup.
    fn due_lookups(&self, now: Instant) -> Vec<[u8; 32]> {
        let mut sites = self.inner.lock();
        sites.retain(|_, s| now.duration_since(s.last_asked) < IDLE);
        let running = sites.values().filter(|s| s.in_flight).count();
        let mut due = Vec::new();
        for (m, s) in sites.iter_mut() {
            if running + due.len() >= MAX_LOOKUPS {
                break;
            }
            let every = match &s.providers {
                Some(p) if !p.is_empty() => LOOKUP_EVERY,
                _ => LOOKUP_EVERY_UNHELD,
            };
            let stale = s.looked_up.is_none_or(|t| now.duration_since(t) >= every);
            if stale && !s.in_flight {
                s.in_flight = true;
                s.looked_up = Some(now);
                due.push(*m);
            }
        }
        due
    }

    /// Asks the DHT who provides `manifest`, then ranks it again with the result.
    async fn lookup(self, manifest: [u8; 32]) {
        let key = cdn_edge::Hash(manifest).provider_key();
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, self.inner.mesh.control().providers(key));
        let found = tokio::select! {
            () = self.inner.shutdown.cancelled() => return,
            found = lookup => found,
        };
        let providers = match found {
            Ok(Ok(p)) => Some(p),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "site provider lookup failed");
                None
            }
            Err(_) => {
                tracing::debug!("site provider lookup timed out");
                None
            }
        };
        let answer = providers.as_ref().map(|p| self.rank(p));
        let mut sites = self.inner.lock();
        if let Some(s) = sites.get_mut(&manifest) {
            s.in_flight = false;
            if let (Some(p), Some(a)) = (providers, answer) {
                tracing::debug!(providers = p.len(), answer = ?a, "site providers looked up");
                s.providers = Some(p);
                s.answer = a.into();
            }
        }
    }

    /// Ranks the sites asked for lately again from their last provider lists (the others are
    /// ranked again once they are asked for, a second later).
    fn rerank(&self) {
        let now = Instant::now();
        let lists: Vec<([u8; 32], Vec<PeerId>)> = self
            .inner
            .lock()
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_asked) < RERANK_ACTIVE)
            .map(|(m, s)| (*m, s.providers.clone().unwrap_or_default()))
            .collect();
        if lists.is_empty() {
            return;
        }
        let answers: Vec<([u8; 32], Vec<IpAddr>)> =
            lists.into_iter().map(|(m, p)| (m, self.rank(&p))).collect();
        let mut sites = self.inner.lock();
        for (m, a) in answers {
            if let Some(s) = sites.get_mut(&m)
                && *s.answer != *a
            {
                s.answer = a.into();
            }
        }
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
        let idle_providers = {
            let mut sites = self.inner.lock();
            match sites.get_mut(manifest) {
                Some(s) if now.duration_since(s.last_asked) < RERANK_ACTIVE => {
                    s.last_asked = now;
                    return s.answer.to_vec();
                }
                // Not ranked again while nobody asked: rank it now (no DHT, a local decision).
                Some(s) => Some(s.providers.clone().unwrap_or_default()),
                None => None,
            }
        };
        if let Some(providers) = idle_providers {
            let answer = self.rank(&providers);
            if let Some(s) = self.inner.lock().get_mut(manifest) {
                s.last_asked = now;
                s.answer = answer.clone().into();
            }
            return answer;
        }
        // First question for this site: answer from membership alone (no DHT), start tracking.
        let answer = self.rank(&[]);
        let mut sites = self.inner.lock();
        if sites.len() < MAX_SITES {
            sites.entry(*manifest).or_insert_with(|| Site {
                providers: None,
                looked_up: None,
                in_flight: false,
                answer: answer.clone().into(),
                last_asked: now,
            });
            drop(sites);
            self.inner.wake.notify_one();
        }
        answer
    }
}
