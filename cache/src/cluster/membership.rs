//! Following the mesh membership: a new view when the set of members serving `redis`
//! changes, and the hand-over of ranges this node gained.
//!
//! A range this node gains is first emptied here (stale keys from an earlier ownership must not
//! come back), marked importing, and pulled from the first other member of its rendezvous order
//! that can hand it over ([`Cluster::can_hand_over`]; for a joining node that is the range's
//! previous primary, after a death the surviving copy). Every other member is tried in turn:
//! after a heal the holders of the majority's copy may come after several returning members,
//! which refuse while stale. The members are asked in rounds, each settling for a worse copy
//! than the last ([`proto::Accept`]): a copy some member serves, then one released lately (at a
//! heal, the members that held the range during the cut), then one kept over a rejoin. A
//! suspected member is asked later in its round rather than passed over. While importing,
//! requests for it are forwarded to the member that accepted the pull (before any did, to the
//! one being asked; a range re-pulled with its keys kept runs them here), which runs them and
//! replicates their effects here after the snapshot; the range is served from here once the
//! snapshot's `Done` arrived.
//!
//! Majority: the members this node knows are those alive or suspected plus those declared down
//! and not yet forgotten by the membership (`remove_down_after`); left members do not count.
//! Without a strict majority of them in sight this node refuses writes and marks its copies
//! stale; when it sees a majority again it pulls every range it owns again, keeping its keys
//! (a write it acknowledged just before it noticed the cut survives, unless the other side
//! wrote the same key), and is fresh again once every pull is done.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh::PeerId;

use super::handover::ask;
use super::proto;
use super::view::{GROUP_SLOTS, GROUPS, Node, View};
use super::{CATCHING_UP, Cluster, IMPORTING, Import, NOT_OWNED, SERVING, STALE, group_of};
use crate::shared::Shared;
use crate::slot::key_slot;

/// The certificate role that makes a member a cache member.
pub const CACHE_ROLE: &str = "cache";
/// How often the membership is read.
const POLL: Duration = Duration::from_millis(200);
/// A node that found itself fresh (a majority in sight) this recently was running and in touch
/// all along: many polls, well below a detection bound (a pause longer than this, during which
/// the others may have declared it down and written without it, is not).
const STILL_IN_TOUCH_MS: u64 = 2_000;
/// How often the nearness order of replicas is refreshed.
const NEARNESS_EVERY: Duration = Duration::from_secs(5);

/// The members serving the cache (alive or suspected), this node included.
pub fn cache_nodes(cl: &Cluster, redis: std::net::SocketAddr) -> Vec<Node> {
    nodes_of(cl, &cl.mesh.members(), redis)
}

fn nodes_of(cl: &Cluster, members: &[mesh::MemberView], redis: std::net::SocketAddr) -> Vec<Node> {
    // This node as clients elsewhere reach it (never `0.0.0.0`), as members name it.
    let mut nodes = vec![Node::new(cl.me, super::reachable_redis(&cl.mesh, redis))];
    // A node without the cache role holds no one's data: its cache serves only itself.
    if !members.iter().any(|m| m.is_self && m.has_role(CACHE_ROLE)) {
        return nodes;
    }
    for m in members {
        // Only members certified for the cache own slots (a stranger with a fresh key who
        // advertises `redis` owns nothing).
        if m.is_self
            || !m.has_role(CACHE_ROLE)
            || !matches!(
                m.state,
                mesh::MemberState::Alive | mesh::MemberState::Suspect
            )
        {
            continue;
        }
        if m.state == mesh::MemberState::Suspect {
            cl.suspects
                .lock()
                .entry(m.id.peer)
                .or_insert_with(Instant::now);
        }
        let addr = m
            .meta
            .as_ref()
            .and_then(|x| x.services.get("redis"))
            .and_then(|a| a.parse().ok());
        if let Some(addr) = addr {
            nodes.push(Node::new(m.id.peer, addr));
        }
    }
    nodes
}

/// Whether `live` (the cache members alive or suspected, this node included) is a strict
/// majority of the cache members this node knows: those plus the ones declared down and not
/// yet forgotten.
fn is_majority(members: &[mesh::MemberView], live: &[Node]) -> bool {
    let mut down: Vec<PeerId> = members
        .iter()
        .filter(|m| {
            m.state == mesh::MemberState::Dead
                && m.has_role(CACHE_ROLE)
                && m.meta
                    .as_ref()
                    .is_some_and(|x| x.services.contains_key("redis"))
                && !live.iter().any(|n| n.peer == m.id.peer)
        })
        .map(|m| m.id.peer)
        .collect();
    down.sort_unstable();
    down.dedup();
    live.len() * 2 > live.len() + down.len()
}

fn same_members(v: &View, nodes: &[Node]) -> bool {
    v.nodes.len() == nodes.len()
        && nodes.iter().all(|n| {
            v.nodes
                .iter()
                .any(|m| m.peer == n.peer && m.redis == n.redis)
        })
}

impl Cluster {
    fn with_nearness(&self, mut v: View) -> View {
        let peers: Vec<PeerId> = v.nodes.iter().map(|n| n.peer).collect();
        let mut order: Vec<usize> = vec![v.me];
        let ranked = self.mesh.rank(&peers, true);
        let measured = ranked
            .iter()
            .filter(|r| r.source == mesh::RttSource::Measured)
            .count();
        self.nearness_measured.store(measured, Ordering::Relaxed);
        for r in ranked {
            if let Some(i) = v.nodes.iter().position(|n| n.peer == r.peer)
                && !order.contains(&i)
            {
                order.push(i);
            }
        }
        for i in 0..v.nodes.len() {
            if !order.contains(&i) {
                order.push(i);
            }
        }
        v.set_nearness(order);
        v
    }

    /// Installs the first view (at start): ranges with another holder are pulled before they
    /// are served.
    pub fn install_first(&self, shared: &Shared) {
        let members = self.mesh.members();
        let _ = self.rejoined(&members);
        let nodes = nodes_of(self, &members, shared.addr);
        let v = self.with_nearness(View::new(nodes, self.me, self.rf, 1));
        self.reinstall(shared, v, true);
    }

    /// Installs `v` as if this node held no range yet: every range it owns is pulled before
    /// it is served (emptied first when `empty_gained`).
    fn reinstall(&self, shared: &Shared, v: View, empty_gained: bool) {
        self.apply_view(shared, v, true, empty_gained);
    }

    /// Follows whether a majority is in sight; true if this node just got one back after
    /// having been without (its owned ranges must then be pulled again).
    fn track_majority(&self, members: &[mesh::MemberView], nodes: &[Node]) -> bool {
        if is_majority(members, nodes) {
            let regained = self
                .freshness
                .compare_exchange(STALE, CATCHING_UP, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if regained {
                tracing::warn!(
                    members = nodes.len(),
                    "cache: a majority of the members is in sight again; pulling every owned range"
                );
            }
            return regained;
        }
        if self.freshness.swap(STALE, Ordering::AcqRel) != STALE {
            tracing::warn!(
                members = nodes.len(),
                "cache: fewer than a majority of the members in sight; refusing writes"
            );
            self.released.lock().clear();
        }
        false
    }

    /// Whether this node's SWIM generation (its entry in `members`) changed since the last
    /// call: the others declared it down (a long pause, a partition) and it rejoined.
    fn rejoined(&self, members: &[mesh::MemberView]) -> bool {
        let Some(now) = members.iter().find(|m| m.is_self).map(|m| m.id.generation) else {
            return false;
        };
        let before = self.generation.swap(now, Ordering::AcqRel);
        before != 0 && before != now
    }

    /// Reads the membership; installs a new view if it changed.
    pub fn refresh(&self, shared: &Shared, force_nearness: bool) {
        let members = self.mesh.members();
        let nodes = nodes_of(self, &members, shared.addr);
        let cur = self.view();
        // Both are read on every call: each remembers what it saw last.
        let rejoined = self.rejoined(&members);
        let regained = self.track_majority(&members, &nodes);
        let now = crate::session::now_ms();
        // Declared down by others while this node had a majority in sight all along (this
        // loop ran and found it fresh a moment ago): at a heal that is the other side's view
        // of the cut, not a sign that this node missed anything the majority wrote. Its copies
        // are compared with every member's (merges, by hash trees) instead of pulled again.
        let in_touch = self.in_touch_ms.load(Ordering::Acquire);
        let kept_in_touch = in_touch != 0 && now.saturating_sub(in_touch) < STILL_IN_TOUCH_MS;
        if regained || (rejoined && !kept_in_touch) {
            self.resync.store(true, Ordering::Release);
        } else {
            if rejoined {
                let owned: Vec<u16> = (0..GROUPS as u16)
                    .filter(|g| cur.is_owner(g * GROUP_SLOTS))
                    .collect();
                let peers: Vec<PeerId> = nodes
                    .iter()
                    .map(|n| n.peer)
                    .filter(|p| *p != self.me)
                    .collect();
                tracing::info!(
                    ranges = owned.len(),
                    members = peers.len(),
                    "cache: declared down by others while in touch with a majority; comparing \
                     copies with every member"
                );
                self.queue_merges(&peers, &owned);
            }
            if self.freshness.load(Ordering::Acquire) == super::FRESH {
                self.in_touch_ms.store(now, Ordering::Release);
            }
        }
        // Once some other member is back in the view (at the moment of the rejoin there may
        // be none yet: nothing to pull from).
        if nodes.len() > 1 && self.resync.swap(false, Ordering::AcqRel) {
            // While this node was out of the others' views (declared down, or on the minority
            // side of a cut) their writes did not reach it (their replication links to it
            // were closed) and its ranges may have moved, although nothing changed in its own
            // view. Everything it owns is pulled again before it is served. Unlike a first
            // start its keys are kept, not emptied: if every other holder refuses, the range
            // is served as it is rather than empty (no write is lost; a key deleted meanwhile
            // stays deleted once a tombstone reaches it). Only states since this node was last
            // in touch are asked for ([`Cluster::kept_since`]); merges find older differences.
            tracing::warn!(
                "cache: back after being declared down or without a majority; pulling every \
                 owned range again"
            );
            let v = self.with_nearness(View::new(nodes, self.me, self.rf, cur.epoch + 1));
            self.reinstall(shared, v, false);
            return;
        }
        let same = same_members(&cur, &nodes);
        if same && !force_nearness {
            return;
        }
        let epoch = if same { cur.epoch } else { cur.epoch + 1 };
        let v = self.with_nearness(View::new(nodes, self.me, self.rf, epoch));
        if same {
            *self.view.write() = Arc::new(v);
            return;
        }
        tracing::info!(
            members = v.nodes.len(),
            epoch,
            "cache: membership changed, new slot map"
        );
        self.apply_view(shared, v, false, true);
    }

    /// Installs `v`; ranges this node gains (with `repull`: every range it owns) are pulled
    /// before they are served, and emptied first when `empty_gained`. Ranges it loses can
    /// still be handed over for a while ([`Cluster::can_hand_over`]).
    fn apply_view(&self, shared: &Shared, v: View, repull: bool, empty_gained: bool) {
        let v = Arc::new(v);
        let old = self.view();
        let merge_from: Vec<PeerId> = if repull {
            // A first start has nothing of its own to merge; a rejoin asks everyone.
            if empty_gained {
                Vec::new()
            } else {
                v.nodes
                    .iter()
                    .map(|n| n.peer)
                    .filter(|p| *p != self.me)
                    .collect()
            }
        } else {
            v.nodes
                .iter()
                .map(|n| n.peer)
                .filter(|p| *p != self.me && !old.nodes.iter().any(|m| m.peer == *p))
                .collect()
        };
        let mut owned: Vec<u16> = Vec::new();
        // Per peer, the ranges whose recent writes it is sent (see [`Cluster::hand_off`]).
        let mut hand_off: HashMap<PeerId, Vec<u16>> = HashMap::new();
        let mut to = |peers: Vec<PeerId>, g: u16| {
            for p in peers {
                hand_off.entry(p).or_default().push(g);
            }
        };
        let mut gained: Vec<u16> = Vec::new();
        {
            let mut imports = self.imports.lock();
            for g in 0..GROUPS as u16 {
                let slot = g * GROUP_SLOTS;
                let state = &self.state[usize::from(g)];
                if !v.is_owner(slot) {
                    let was = state.swap(NOT_OWNED, Ordering::AcqRel);
                    if was != NOT_OWNED {
                        // A pull still under way leaves a partial copy: a member that gained
                        // the range at a death and loses it when the dead node restarts must
                        // not hand that to the restarted node (it would serve the range
                        // without the writes the pull's source acknowledged meanwhile).
                        self.release(g, self.holds_whole(g, was, &imports));
                    }
                    if was == SERVING {
                        to(self.co_owners(&v, g), g);
                    }
                    imports.remove(&g);
                    continue;
                }
                self.released.lock().remove(&g);
                owned.push(g);
                if repull && !empty_gained {
                    // Back after a cut or a rejoin with its keys kept: this node may hold
                    // writes its co-owners missed (a fallback write acknowledged by this node
                    // alone, its record to the other owner dropped with a link closed at the
                    // heal). Merges only pull into the asking node, so push them too.
                    to(self.co_owners(&v, g), g);
                }
                let cur = if repull {
                    NOT_OWNED
                } else {
                    state.load(Ordering::Acquire)
                };
                if cur == SERVING {
                    // Owners new to this range may have pulled it from another holder, and
                    // this node may have run writes under the old view that reached only the
                    // old owners.
                    let before = self.co_owners(&old, g);
                    to(
                        self.co_owners(&v, g)
                            .into_iter()
                            .filter(|p| !before.contains(p))
                            .collect(),
                        g,
                    );
                    continue;
                }
                let sources: Vec<PeerId> = v
                    .order(slot)
                    .iter()
                    .map(|&i| v.nodes[usize::from(i)].peer)
                    .filter(|p| *p != self.me)
                    .collect();
                if cur == IMPORTING {
                    if let Some(imp) = imports.get_mut(&g) {
                        imp.renew(sources);
                    }
                    continue;
                }
                if sources.is_empty() {
                    state.store(SERVING, Ordering::Release);
                } else {
                    self.kept[usize::from(g)].store(!empty_gained, Ordering::Release);
                    state.store(IMPORTING, Ordering::Release);
                    imports.insert(g, Import::new(sources));
                    gained.push(g);
                }
            }
            self.check_fresh(&imports);
        }
        if empty_gained && !gained.is_empty() {
            // Empty the gained ranges first: stale keys from an earlier ownership must not
            // survive the pull.
            let mut want = [false; GROUPS];
            for g in &gained {
                want[usize::from(*g)] = true;
            }
            let now = crate::session::now_ms();
            let mut db = shared.db.lock();
            let mut stale: Vec<Bytes> = Vec::new();
            db.for_each_key(now, |k| {
                if want[usize::from(group_of(key_slot(k)))] {
                    stale.push(Bytes::copy_from_slice(k));
                }
            });
            tracing::debug!(keys = stale.len(), "cache: emptied the gained ranges");
            for k in &stale {
                tracing::trace!(target: "cache::keys", key = %String::from_utf8_lossy(k), "emptied");
                db.remove(k);
            }
        }
        // Members declared dead (or gone) pull nothing any more: a write must not wait for
        // them (a dead importer cost every sync write touching its ranges a 3 s
        // acknowledgement timeout for as long as its registration lasted), and their
        // acknowledgement must not count as an owner's. A member merely absent from the view
        // is kept: a joining node pulls before it advertises `redis`.
        let gone: Vec<PeerId> = self
            .mesh
            .members()
            .iter()
            .filter(|m| {
                !m.is_self && matches!(m.state, mesh::MemberState::Dead | mesh::MemberState::Left)
            })
            .map(|m| m.id.peer)
            .collect();
        if !gone.is_empty() {
            self.importers.lock().retain(|_, list| {
                list.retain(|(p, _)| !gone.contains(p));
                !list.is_empty()
            });
        }
        // Links to members that left are closed; their backlogs wait for the member's return
        // (see `link`), and a member back in the view gets its backlog now, not at the next
        // write that happens to go its way.
        let back: Vec<PeerId> = {
            let mut links = self.links.lock();
            links.retain(|p, l| {
                if !v.nodes.iter().any(|n| n.peer == *p) {
                    l.close();
                }
                !l.is_expired()
            });
            links
                .iter()
                .filter(|(p, l)| l.is_closed() && v.nodes.iter().any(|n| n.peer == **p))
                .map(|(p, _)| *p)
                .collect()
        };
        for p in back {
            self.link(p);
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            let members: Vec<String> = v.nodes.iter().map(|n| n.peer.to_string()).collect();
            let offs: Vec<(String, &Vec<u16>)> =
                hand_off.iter().map(|(p, g)| (p.to_string(), g)).collect();
            tracing::debug!(
                epoch = v.epoch,
                ?members,
                ?gained,
                ?offs,
                repull,
                "cache: view installed"
            );
        }
        if !hand_off.is_empty() {
            self.hand_off(shared, hand_off);
        }
        *self.view.write() = v;
        *self.view_changed.lock() = Instant::now();
        self.installed.store(true, Ordering::Release);
        if !merge_from.is_empty() && !owned.is_empty() {
            self.queue_merges(&merge_from, &owned);
        }
        if !gained.is_empty() || !merge_from.is_empty() {
            tracing::info!(
                ranges = gained.len(),
                merge_from = merge_from.len(),
                "cache: pulling gained ranges"
            );
            self.kick.notify_one();
        }
    }
}

/// Before the first map of a joining node: waits (up to `deadline`) until this node's membership
/// includes every cache member that another member knows, so that the first map is the real
/// one (a partial map would make it pull from, and forward to, nodes that do not hold ranges).
pub async fn wait_complete(cl: &Cluster, redis: std::net::SocketAddr, deadline: Duration) {
    // Without the cache role this node's cache serves only itself: nothing to wait for.
    if !cl.mesh.own_standing().has_role(CACHE_ROLE) {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < deadline {
        let mine = cache_nodes(cl, redis);
        let Some(other) = mine.iter().find(|n| n.peer != cl.me).map(|n| n.peer) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let theirs = tokio::time::timeout(Duration::from_secs(2), async {
            let (mut send, mut recv) = cl.mesh.open_bi(other, proto::ALPN).await.ok()?;
            mesh::frame::write(&mut send, &[proto::KIND_MEMBERS])
                .await
                .ok()?;
            let _ = send.finish();
            let ans = mesh::frame::FrameDecoder::new(proto::MAX_MEMBERS_FRAME)
                .read(&mut recv)
                .await
                .ok()??;
            proto::decode_members(&ans).ok()
        })
        .await
        .ok()
        .flatten();
        if let Some(theirs) = theirs
            && theirs
                .iter()
                .all(|p| *p == cl.me || mine.iter().any(|n| n.peer == *p))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("cache: starting with a member list that may be incomplete");
}

/// Follows the membership and runs the pulls, until shutdown.
pub async fn run(cl: Arc<Cluster>, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut near = Instant::now();
    loop {
        tokio::select! {
            _ = cl.shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = cl.kick.notified() => {}
        }
        let force = near.elapsed() > NEARNESS_EVERY;
        if force {
            near = Instant::now();
        }
        cl.refresh(&shared, force);
        cl.background_merges();
        for (peer, groups) in cl.due_merges() {
            let (cl, shared) = (cl.clone(), shared.clone());
            tokio::spawn(async move { super::merge::ask(&cl, &shared, peer, &groups).await });
        }
        for ((src, accept), groups) in cl.due_pulls() {
            tracing::debug!(%src, ?accept, ?groups, "cache: pulling");
            let cl = cl.clone();
            tokio::spawn(async move {
                if !ask(&cl, src, &groups, accept).await {
                    cl.pull_failed(src, &groups, &[]);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::cluster::proto::Accept;
    use crate::metrics::Metrics;

    async fn lone_cluster() -> (Cluster, Shared, mesh::Mesh) {
        let m = mesh::Mesh::start(
            mesh::keypair_from_seed([9; 32]),
            mesh::MeshConfig::local(),
            &mut prometheus_client::registry::Registry::default(),
        )
        .await
        .expect("a mesh on loopback");
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let cl = Cluster::new(m.clone(), addr, 2, true, CancellationToken::new());
        (cl, Shared::new(addr, String::new(), Metrics::default()), m)
    }

    fn view_of(cl: &Cluster, others: &[PeerId]) -> View {
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut nodes = vec![Node::new(cl.me, addr)];
        nodes.extend(others.iter().map(|p| Node::new(*p, addr)));
        View::new(nodes, cl.me, cl.rf, 1)
    }

    /// Joins four members with every range pulled again: one range this node pulls, and its
    /// sources in order.
    fn pulling_one(cl: &Cluster, shared: &Shared) -> (u16, Vec<PeerId>) {
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        cl.apply_view(shared, view_of(cl, &peers), true, true);
        let g = (0..GROUPS as u16)
            .find(|g| cl.group_state(*g) == IMPORTING)
            .expect("a range to pull");
        let sources = cl.imports.lock()[&g].sources.clone();
        assert_eq!(sources.len(), peers.len());
        (g, sources)
    }

    /// Whom a round of [`Cluster::due_pulls`] asks for range `g`, and for which copies.
    fn asked_for(due: HashMap<(PeerId, Accept), Vec<u16>>, g: u16) -> Option<(PeerId, Accept)> {
        due.into_iter()
            .find(|(_, gs)| gs.contains(&g))
            .map(|(k, _)| k)
    }

    /// A member that gained a range (a death) and lost it again (the dead node restarted)
    /// before its pull finished holds part of the keys: it must not hand that over, though it
    /// still answers merges with it. A range it served is handed over after it loses it.
    #[tokio::test]
    async fn a_range_lost_while_still_pulled_is_not_handed_over() {
        let (cl, shared, _mesh) = lone_cluster().await;
        let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        let (dies, later) = (peers[0], &peers[3..]);
        let survivors = &peers[1..3];
        // View 1: four members, every range this node owns served. View 2: one dies, and this
        // node pulls the ranges it gains. View 3: it restarted and others joined, before those
        // pulls finished: this node loses the ranges it was pulling, and some it served.
        cl.apply_view(&shared, view_of(&cl, &peers[..3]), false, true);
        for g in 0..GROUPS as u16 {
            if cl.group_state(g) == IMPORTING {
                let src = cl.imports.lock()[&g].sources[0];
                cl.imports.lock().get_mut(&g).unwrap().asked = Some((src, Instant::now()));
                cl.import_done(src, &[g]);
            }
        }
        assert_eq!(
            cl.importing(),
            0,
            "every range served after the first pulls"
        );
        cl.apply_view(&shared, view_of(&cl, survivors), false, true);
        let pulling: Vec<u16> = (0..GROUPS as u16)
            .filter(|g| cl.group_state(*g) == IMPORTING)
            .collect();
        let serving: Vec<u16> = (0..GROUPS as u16)
            .filter(|g| cl.group_state(*g) == SERVING)
            .collect();
        let mut all = vec![dies];
        all.extend_from_slice(survivors);
        all.extend_from_slice(later);
        cl.apply_view(&shared, view_of(&cl, &all), false, true);
        let lost = |gs: &[u16]| -> Vec<u16> {
            gs.iter()
                .copied()
                .filter(|g| cl.group_state(*g) == NOT_OWNED)
                .collect()
        };
        let (lost_pulling, lost_serving) = (lost(&pulling), lost(&serving));
        assert!(
            !lost_pulling.is_empty() && !lost_serving.is_empty(),
            "the views exercise both cases ({} lost while pulled, {} lost while served)",
            lost_pulling.len(),
            lost_serving.len()
        );
        for g in lost_pulling {
            assert!(
                !cl.can_hand_over(g, Accept::Kept),
                "range {g}: a partial copy is handed over"
            );
            assert!(cl.has_copy(g), "range {g}: its keys still answer merges");
        }
        for g in lost_serving {
            assert!(
                cl.can_hand_over(g, Accept::Released),
                "range {g}: a whole released copy is handed over"
            );
            assert!(
                !cl.can_hand_over(g, Accept::Served),
                "range {g}: a released copy is taken only once no member serves the range"
            );
        }
    }

    /// A pull asks every member for a copy it serves before settling for a released one, and
    /// a suspected member is asked later in its round rather than passed over.
    #[tokio::test]
    async fn a_pull_asks_every_member_for_a_served_copy_before_a_released_one() {
        let (cl, shared, _mesh) = lone_cluster().await;
        let (g, sources) = pulling_one(&cl, &shared);
        let suspected = sources[0];
        cl.suspects.lock().insert(suspected, Instant::now());
        let asked = |due| asked_for(due, g);
        for p in &sources[1..] {
            assert_eq!(asked(cl.due_pulls()), Some((*p, Accept::Served)));
            cl.pull_failed(*p, &[g], &[]);
        }
        assert_eq!(
            asked(cl.due_pulls()),
            None,
            "the round waits for its suspected member"
        );
        assert_eq!(cl.import_target(g, true), Some(suspected));
        cl.suspects.lock().remove(&suspected);
        assert_eq!(asked(cl.due_pulls()), Some((suspected, Accept::Served)));
        cl.pull_failed(suspected, &[g], &[]);
        assert_eq!(
            asked(cl.due_pulls()),
            Some((sources[0], Accept::Released)),
            "once every member refused a served copy, a released one is asked for"
        );
        cl.pull_failed(sources[0], &[g], &[]);
        for p in &sources[1..] {
            assert_eq!(asked(cl.due_pulls()), Some((*p, Accept::Released)));
            cl.pull_failed(*p, &[g], &[]);
        }
        assert_eq!(cl.group_state(g), IMPORTING);
        assert_eq!(
            asked(cl.due_pulls()),
            Some((sources[0], Accept::Kept)),
            "then a kept one"
        );
        assert_eq!(
            cl.import_target(g, true),
            None,
            "with no current copy anywhere, the range's requests run here"
        );
    }

    /// When every member answers, with this node's view, that it holds no copy at all (the
    /// range's owners are all cut off or dead), the range is served at once instead of after
    /// every round, and merged with its co-owners later; one member that may yet hold a copy
    /// keeps the rounds going.
    #[tokio::test]
    async fn a_range_nobody_holds_is_served_after_one_round() {
        let (cl, shared, _mesh) = lone_cluster().await;
        let (g, sources) = pulling_one(&cl, &shared);
        let asked = |due| asked_for(due, g);
        for p in &sources[..sources.len() - 1] {
            assert_eq!(asked(cl.due_pulls()), Some((*p, Accept::Served)));
            cl.pull_failed(*p, &[g], &[g]);
        }
        let last = sources[sources.len() - 1];
        assert_eq!(asked(cl.due_pulls()), Some((last, Accept::Served)));
        // The last member is starting: it may hold a copy once it is up.
        cl.pull_failed(last, &[g], &[]);
        assert_eq!(
            asked(cl.due_pulls()),
            Some((sources[0], Accept::Released)),
            "a refusal that is not final starts the next round"
        );
        for p in &sources {
            if cl.imports.lock()[&g].asked.is_none() {
                assert_eq!(asked(cl.due_pulls()), Some((*p, Accept::Released)));
            }
            cl.pull_failed(*p, &[g], &[g]);
        }
        assert!(cl.merges.lock().is_empty());
        assert_eq!(asked(cl.due_pulls()), None, "nobody is asked again");
        assert_eq!(
            cl.group_state(g),
            SERVING,
            "a range no member holds is served at once"
        );
        let v = cl.view();
        let merges = cl.merges.lock();
        for o in v.owners(g * GROUP_SLOTS) {
            let p = v.nodes[usize::from(*o)].peer;
            if p != cl.me {
                assert!(
                    merges.get(&p).is_some_and(|gs| gs.contains(&g)),
                    "the co-owners' copies are merged later"
                );
            }
        }
    }

    /// A write that finds a key absent and leaves it absent (`PEXPIRE` on a node that lacks the
    /// key: a fallback, a member catching up) versions nothing, so it sends no state: a `DEL`
    /// state with a fresh version would delete the key on the owners that hold it (an
    /// acknowledged write lost, found by the churn history check). `DEL` of an absent key still
    /// leaves a tombstone: the client asked for the key to be gone everywhere.
    #[tokio::test]
    async fn a_write_that_finds_a_key_absent_and_leaves_it_absent_sends_nothing() {
        let (cl, shared, _mesh) = lone_cluster().await;
        let lookup = |name: &str| crate::cmd::table::lookup(name.as_bytes()).expect(name);
        let now = crate::session::now_ms();
        let mut cc = crate::cluster::ConnCluster::default();
        let mut db = shared.db.lock();
        cl.capture_write(
            &mut db,
            now,
            lookup("pexpire"),
            &[b"session:1"],
            &[false],
            &mut cc,
        );
        assert_eq!(db.version(b"session:1", now), 0, "no state, no tombstone");
        cl.capture_write(
            &mut db,
            now,
            lookup("del"),
            &[b"session:1"],
            &[false],
            &mut cc,
        );
        assert_ne!(db.version(b"session:1", now), 0, "a DEL leaves a tombstone");
    }

    /// Every period, each range this node serves is queued for a merge with one co-owner, and
    /// not before the period is over.
    #[tokio::test]
    async fn background_merges_compare_every_served_range_with_a_co_owner() {
        let (cl, shared, _mesh) = lone_cluster().await;
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        cl.apply_view(&shared, view_of(&cl, &peers), false, true);
        let v = cl.view();
        let served: Vec<u16> = (0..GROUPS as u16)
            .filter(|g| cl.group_state(*g) == SERVING && v.is_owner(g * GROUP_SLOTS))
            .collect();
        assert!(!served.is_empty());
        // The merges a view change queues itself (members new to the view) are not these.
        cl.merges.lock().clear();
        cl.background_merges();
        assert!(cl.merges.lock().is_empty(), "not before the period is over");
        cl.background.lock().0 = Instant::now() - super::super::merge::BACKGROUND_MERGE_EVERY;
        cl.background_merges();
        let merges = cl.merges.lock().clone();
        for g in &served {
            let with: Vec<PeerId> = merges
                .iter()
                .filter(|(_, gs)| gs.contains(g))
                .map(|(p, _)| *p)
                .collect();
            assert_eq!(with.len(), 1, "range {g} is compared with one member");
            assert!(
                v.owners(g * GROUP_SLOTS)
                    .iter()
                    .any(|&i| v.nodes[usize::from(i)].peer == with[0]),
                "range {g} is compared with a co-owner"
            );
        }
        assert_eq!(
            merges.values().map(Vec::len).sum::<usize>(),
            served.len(),
            "only served ranges are compared"
        );
    }

    /// While a range is pulled, its requests go to the last source that accepted to hand it
    /// over, not to one still being asked (which may refuse, and holds what it holds).
    #[tokio::test]
    async fn requests_go_to_the_source_that_accepted_the_pull() {
        let (cl, shared, _mesh) = lone_cluster().await;
        let (g, sources) = pulling_one(&cl, &shared);
        let asked = |due| asked_for(due, g);
        assert_eq!(asked(cl.due_pulls()), Some((sources[0], Accept::Served)));
        cl.pull_accepted(sources[0], &[g], &[]);
        // Its keys and `Done` never arrive (a link closed on the way): the pull times out and
        // the next source is asked.
        let long_ago = Instant::now()
            .checked_sub(crate::cluster::handover::PULL_TIMEOUT)
            .expect("a monotonic clock older than the pull timeout");
        cl.imports.lock().get_mut(&g).unwrap().asked = Some((sources[0], long_ago));
        assert_eq!(asked(cl.due_pulls()), Some((sources[1], Accept::Served)));
        assert_eq!(cl.import_target(g, true), Some(sources[0]));
        assert_eq!(cl.import_target(g, false), Some(sources[0]));
    }

    /// A node listening on `0.0.0.0` names itself in its slot map by the address members are
    /// told (its advertised IP), never `0.0.0.0`: cluster clients elsewhere connect to it.
    #[tokio::test]
    async fn a_node_on_0_0_0_0_names_itself_by_its_advertised_ip() {
        let mut mc = mesh::MeshConfig::local();
        mc.quic_listen = "0.0.0.0:0".parse().unwrap();
        mc.advertise_ip = Some("198.18.0.9".parse().unwrap());
        let m = mesh::Mesh::start(
            mesh::keypair_from_seed([7; 32]),
            mc,
            &mut prometheus_client::registry::Registry::default(),
        )
        .await
        .expect("a mesh");
        let bound: std::net::SocketAddr = "0.0.0.0:6300".parse().unwrap();
        let cl = Cluster::new(m, bound, 2, false, CancellationToken::new());
        let want: std::net::SocketAddr = "198.18.0.9:6300".parse().unwrap();
        assert_eq!(cl.view().nodes[cl.view().me].redis, want);
        assert_eq!(cache_nodes(&cl, bound)[0].redis, want);
    }
}
