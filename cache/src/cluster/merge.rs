//! Merging copies of ranges after a heal or a rejoin.
//!
//! A hand-over takes one copy of a range: the first member in rendezvous order that can hand
//! it over. After a partition heals, that copy can be the wrong one: a member cut off without
//! noticing it lacked a majority (or restarted on the minority side, knowing only that side)
//! still serves its copy as current, while the writes the majority acknowledged meanwhile sit
//! on members that held the range during the cut and lost it at the heal.
//!
//! So when members appear in a node's view (a heal, a restart, a join), the node asks each of
//! them for its copies of the ranges the node owns ([`super::proto::KIND_MERGE`]); after a
//! rejoin it asks every member. An asked member answers with the ranges it serves, pulls or
//! released in the last minute, stale or not (an older state never replaces a newer one). Each
//! key state carries the version of the write that left it (a hybrid clock: milliseconds, then
//! a counter, never behind a version the node saw), and the receiving node keeps whichever is newer
//! ([`super::apply::apply_state`]): last writer wins, per key, a delete's tombstone included
//! ([`crate::tombstone`]). The two copies are compared by hash trees first ([`aae`]), so only
//! the states under leaves that differ travel; merges wait until the view has settled. A
//! range goes on being served meanwhile; a read in the first moments after a heal may still
//! see the older state.
//!
//! A node that served a range whose owners change also sends the states written there in the
//! last minute to the owners new to it ([`Cluster::hand_off`]; all of them if it lost the
//! range): until its view changed it may have gone on running the range's writes, or receiving
//! them as a replica, after the new owner's pull took its snapshot elsewhere. A node back after
//! a cut or a rejoin (its keys kept) sends its co-owners the last minute's states of every
//! range it owns: a write acknowledged by this node alone would otherwise stay here, since
//! merges only pull into the node that asks.
//!
//! Limits: a key deleted on one side comes back from a copy that missed the delete if it
//! returns after the tombstone was collected (`tombstone_ttl_secs`); the merged states are not
//! sent on to the range's other owner, which merges for itself when it sees the same members
//! appear.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mesh::PeerId;

use super::apply::apply_state;
use super::proto::{self, KIND_MERGE, MAX_FRAME, Record};
use super::{Cluster, RELEASED_TTL, aae, dump};
use crate::client::ConnState;
use crate::reply::Reply;
use crate::session::now_ms;
use crate::shared::Shared;

/// How long the view must stay unchanged before queued merges are asked.
const MERGE_SETTLE: Duration = Duration::from_secs(3);
/// How often the copies of every owned range are compared with one co-owner's in the
/// background ([`Cluster::background_merges`]).
pub(super) const BACKGROUND_MERGE_EVERY: Duration = Duration::from_secs(60);
/// How long one member's answer may take.
const MERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest frame of hashes or masks in a merge: every leaf of every range.
const MAX_TREE_FRAME: usize = aae::LEAVES * super::view::GROUPS * 8;

impl Cluster {
    /// Asks each of `peers` for its copies of `groups` at the importer's next round.
    pub(crate) fn queue_merges(&self, peers: &[PeerId], groups: &[u16]) {
        let mut m = self.merges.lock();
        for p in peers {
            let list = m.entry(*p).or_default();
            list.extend_from_slice(groups);
            list.sort_unstable();
            list.dedup();
        }
    }

    /// Anti-entropy in the background, as Riak's active anti-entropy and Cassandra's scheduled
    /// repair: every [`BACKGROUND_MERGE_EVERY`], each range this node serves is compared with
    /// one co-owner's copy, the next co-owner in turn at each pass. A difference that neither
    /// a link nor a heal carried (a hand-off dropped past its bound, a merge that failed, a
    /// copy served as it is when no member could hand it over) is found within a pass per
    /// co-owner. Copies that agree cost one root hash per range. Only while this node is fresh
    /// (a stale node pulls its ranges again instead).
    pub(crate) fn background_merges(&self) {
        let pass = {
            let mut b = self.background.lock();
            if b.0.elapsed() < BACKGROUND_MERGE_EVERY || self.is_stale() {
                return;
            }
            b.0 = Instant::now();
            b.1 += 1;
            b.1
        };
        let v = self.view();
        let mut per_peer: HashMap<PeerId, Vec<u16>> = HashMap::new();
        for g in 0..super::view::GROUPS as u16 {
            if self.group_state(g) != super::SERVING {
                continue;
            }
            let others = self.co_owners(&v, g);
            if let Some(p) = others.get(pass % others.len().max(1)) {
                per_peer.entry(*p).or_default().push(g);
            }
        }
        for (p, groups) in per_peer {
            self.queue_merges(&[p], &groups);
        }
    }

    /// Sends the states of the keys written lately in ranges this node served until its view
    /// changed to the peers given for them: the new owners of a range it lost, and the owners
    /// new to a range it keeps. A new owner pulled the range from some member, and this one
    /// may have gone on running the range's writes (or receiving them as a replica) under its
    /// old view: when the pull's source was not this node (it was suspected, say) those writes
    /// would reach only the old owners. Only states younger than the hand-over window go
    /// ([`RELEASED_TTL`]), applied by the owners if newer than their copies, so also while this
    /// node's copies are stale. After a cut or a rejoin (its keys kept), this node also sends
    /// its co-owners the recent writes of every range it owns: it may hold writes they missed.
    pub(crate) fn hand_off(&self, shared: &Shared, per_peer: HashMap<PeerId, Vec<u16>>) {
        let now = now_ms();
        let since = now.saturating_sub(RELEASED_TTL.as_millis() as u64) << 16;
        let mut groups: Vec<u16> = per_peer.values().flatten().copied().collect();
        groups.sort_unstable();
        groups.dedup();
        let ranges = groups.len();
        // Queued under the keyspace lock, as every write's record is: a link numbers its
        // records as they are queued and must receive them in that order.
        let mut db = shared.db.lock();
        let chunks = dump::dump_ranges_apart(&mut db, &groups, now, since);
        let mut sent = 0;
        for (peer, groups) in per_peer {
            tracing::debug!(%peer, ?groups, "cache: handing off recent writes");
            let mut link = None;
            for g in groups {
                for (n, c) in chunks.get(&g).into_iter().flatten() {
                    sent += n;
                    link.get_or_insert_with(|| self.link(peer))
                        .push(Record::Keys(c.clone()));
                }
            }
        }
        drop(db);
        if sent > 0 {
            tracing::info!(
                ranges,
                keys = sent,
                "cache: handed off the recent writes of ranges with new owners"
            );
        }
    }

    /// The merges to ask for now, per member: none until the view has not changed for
    /// [`MERGE_SETTLE`], then those of ranges this node still owns with members still in view.
    /// At a heal members reappear one by one, and each intermediate view gives this node, for
    /// a moment, ranges it loses again at the next: merging them would move their keys for
    /// nothing.
    pub(crate) fn due_merges(&self) -> HashMap<PeerId, Vec<u16>> {
        if self.view_changed.lock().elapsed() < MERGE_SETTLE {
            return HashMap::new();
        }
        let v = self.view();
        let mut due = std::mem::take(&mut *self.merges.lock());
        due.retain(|peer, groups| {
            groups.retain(|g| v.is_owner(g * super::view::GROUP_SLOTS));
            !groups.is_empty() && v.nodes.iter().any(|n| n.peer == *peer)
        });
        due
    }
}

/// Reads the next hash-tree message of a merge (`what`, for the error), counted in
/// [`super::Received::tree`]; `None` if the other side ended the stream first.
async fn read_tree(
    cl: &Cluster,
    recv: &mut mesh::RecvStream,
    what: &str,
) -> Result<Option<bytes::Bytes>, String> {
    let f = mesh::frame::FrameDecoder::new(MAX_TREE_FRAME)
        .read(recv)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    if let Some(f) = &f {
        cl.received
            .tree
            .fetch_add(f.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(f)
}

/// Asks `peer` for its copies of `groups` and keeps, per key, the newer state. The copies are
/// compared by hash trees first ([`aae`]): only the states under leaves that differ travel.
/// Returns how many states were newer than this node's.
pub async fn ask(cl: &Cluster, shared: &Shared, peer: PeerId, groups: &[u16]) -> usize {
    let (mut conn, _rx) = ConnState::detached(shared);
    let mut out = Reply::new();
    let (mut seen, mut newer) = (0usize, 0usize);
    let res = tokio::time::timeout(MERGE_TIMEOUT, async {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let mine = aae::Trees::of(&shared.db.lock(), groups, now_ms());
        let (mut send, mut recv) = cl
            .mesh
            .open_bi(peer, proto::ALPN)
            .await
            .map_err(|e| err(&e))?;
        let mut hello = vec![KIND_MERGE];
        hello.extend_from_slice(&proto::encode_ranges(groups));
        let mut read = async |what: &str| {
            read_tree(cl, &mut recv, what)
                .await?
                .ok_or_else(|| format!("the peer ended before its {what}"))
        };
        mesh::frame::write(&mut send, &hello)
            .await
            .map_err(|e| err(&e))?;
        // Roots: the ranges whose copies differ, compared further or, when the peer holds only
        // a few keys of one, taken whole.
        let roots = aae::decode_roots(&read("roots").await?).map_err(|e| err(&e))?;
        let differ = roots
            .iter()
            .filter(|r| groups.contains(&r.group) && mine.root(r.group) != r.hash);
        let (whole, ranges): (Vec<aae::Root>, Vec<aae::Root>) =
            differ.partition(|r| r.count <= aae::SEND_WHOLE_MAX);
        let ranges: Vec<u16> = ranges.iter().map(|r| r.group).collect();
        if ranges.is_empty() && whole.is_empty() {
            let _ = send.finish();
            return Ok(());
        }
        mesh::frame::write(&mut send, &proto::encode_ranges(&ranges))
            .await
            .map_err(|e| err(&e))?;
        // Inner nodes, then the leaves under those that differ.
        let inner = aae::decode_hashes(&read("inner hashes").await?, ranges.len() * aae::FANOUT)
            .map_err(|e| err(&e))?;
        let mut nodes: Vec<(u16, u16)> = Vec::new();
        for (g, theirs) in ranges.iter().zip(inner.chunks_exact(aae::FANOUT)) {
            let m = aae::differing(&mine.inner(*g), theirs.try_into().expect("FANOUT"));
            if m != 0 {
                nodes.push((*g, m));
            }
        }
        mesh::frame::write(&mut send, &aae::encode_masks(&nodes))
            .await
            .map_err(|e| err(&e))?;
        let under = aae::nodes_under(&nodes);
        let leaves = aae::decode_hashes(&read("leaf hashes").await?, under.len() * aae::FANOUT)
            .map_err(|e| err(&e))?;
        let mut wanted: Vec<(u16, u16)> = Vec::new();
        for ((g, i), theirs) in under.iter().zip(leaves.chunks_exact(aae::FANOUT)) {
            let m = aae::differing(
                &mine.leaves_under(*g, *i),
                theirs.try_into().expect("FANOUT"),
            );
            if m != 0 {
                wanted.push((aae::node_id(*g, *i), m));
            }
        }
        for r in &whole {
            wanted.extend((0..aae::FANOUT).map(|i| (aae::node_id(r.group, i), u16::MAX)));
        }
        mesh::frame::write(&mut send, &aae::encode_masks(&wanted))
            .await
            .map_err(|e| err(&e))?;
        let _ = send.finish();
        // The states under the leaves that differ.
        let dec = mesh::frame::FrameDecoder::new(MAX_FRAME);
        while let Some(f) = dec.read(&mut recv).await.map_err(|e| err(&e))? {
            let states = proto::decode_keys(&f).map_err(|e| err(&e))?;
            cl.received
                .merge
                .fetch_add(f.len() as u64, std::sync::atomic::Ordering::Relaxed);
            seen += states.len();
            for st in &states {
                if let Some(applied) = apply_state(shared, &mut conn, &mut out, st) {
                    cl.observe(st.ver);
                    newer += usize::from(applied);
                }
            }
        }
        Ok::<(), String>(())
    })
    .await;
    conn.release(shared);
    match res {
        Ok(Ok(())) if newer > 0 => {
            tracing::info!(%peer, ranges = groups.len(), keys = seen, newer, "cache: merged a member's copies");
        }
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "cache: merge failed"),
        Err(_) => tracing::debug!(%peer, "cache: merge timed out"),
    }
    newer
}

/// Answers a merge: compares this node's copies of the asked ranges it holds, serves, is
/// pulling or released lately (stale or not, see [`Cluster::has_copy`]) with the asker's, level
/// by level, then sends the states under the leaves that differ.
pub(super) async fn answer(
    shared: &Shared,
    cl: &Cluster,
    groups: &[u16],
    send: &mut mesh::SendStream,
    recv: &mut mesh::RecvStream,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mine: Vec<u16> = groups.iter().copied().filter(|g| cl.has_copy(*g)).collect();
    let trees = aae::Trees::of(&shared.db.lock(), &mine, now_ms());
    let roots: Vec<aae::Root> = mine.iter().map(|g| trees.root_of(*g)).collect();
    mesh::frame::write(send, &aae::encode_roots(&roots))
        .await
        .map_err(|e| err(&e))?;
    // The asker ends the stream here when no range differs.
    let Some(f) = read_tree(cl, recv, "ranges").await? else {
        let _ = send.finish();
        return Ok(());
    };
    let ranges = proto::decode_ranges(&f).map_err(|e| err(&e))?;
    if ranges.iter().any(|g| !mine.contains(g)) {
        return Err("asked for a range this node did not offer".into());
    }
    let inner: Vec<u64> = ranges.iter().flat_map(|g| trees.inner(*g)).collect();
    mesh::frame::write(send, &aae::encode_hashes(&inner))
        .await
        .map_err(|e| err(&e))?;
    let f = read_tree(cl, recv, "inner nodes")
        .await?
        .ok_or("the asker ended before its inner nodes")?;
    let nodes = aae::decode_masks(&f, ranges.len(), aae::GROUP_IDS).map_err(|e| err(&e))?;
    if nodes.iter().any(|(g, _)| !ranges.contains(g)) {
        return Err("asked for an inner node of a range not compared".into());
    }
    let under = aae::nodes_under(&nodes);
    let leaves: Vec<u64> = under
        .iter()
        .flat_map(|(g, i)| trees.leaves_under(*g, *i))
        .collect();
    mesh::frame::write(send, &aae::encode_hashes(&leaves))
        .await
        .map_err(|e| err(&e))?;
    let f = read_tree(cl, recv, "leaves")
        .await?
        .ok_or("the asker ended before its leaves")?;
    // Leaves under the inner nodes compared, and every leaf of the ranges offered with few
    // keys (taken whole).
    let max = under.len() + mine.len() * aae::FANOUT;
    let wanted = aae::decode_masks(&f, max, aae::NODE_IDS).map_err(|e| err(&e))?;
    let compared: std::collections::HashSet<(u16, usize)> = under.iter().copied().collect();
    let mut leaf_set = aae::LeafSet::new();
    for (id, m) in &wanted {
        let (g, i) = aae::node_of(*id);
        let small = mine.contains(&g) && trees.root_of(g).count <= aae::SEND_WHOLE_MAX;
        if !compared.contains(&(g, i)) && !small {
            return Err("asked for leaves under a node not compared".into());
        }
        for j in aae::bits(*m) {
            leaf_set.insert((g, (i * aae::FANOUT + j) as u8));
        }
    }
    let groups: Vec<u16> = wanted.iter().map(|(id, _)| aae::node_of(*id).0).collect();
    let chunks = dump::dump_leaves(&mut shared.db.lock(), &groups, &leaf_set, now_ms());
    for (_, c) in chunks {
        mesh::frame::write(send, &c).await.map_err(|e| err(&e))?;
    }
    let _ = send.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use crate::client::ConnState;
    use crate::cluster::{dump, proto};
    use crate::reply::Reply;
    use crate::session::{Session, now_ms};

    fn applied(
        shared: &crate::shared::Shared,
        conn: &mut ConnState,
        out: &mut Reply,
        state: &proto::KeyState,
    ) -> bool {
        super::apply_state(shared, conn, out, state) == Some(true)
    }

    /// `key`'s state in `from`, as a peer would send it, with version `ver`.
    fn state_of(from: &Session, key: &str, ver: u64) -> proto::KeyState {
        let mut b = BytesMut::new();
        let db = from.shared().db.lock();
        dump::dump_state(&db, key.as_bytes(), ver, now_ms(), &mut b);
        proto::decode_keys(&b.freeze()).unwrap().remove(0)
    }

    #[test]
    fn a_state_replaces_only_an_older_copy() {
        let mut peer = Session::new();
        peer.cmd(&["RPUSH", "l", "a", "b"]);
        peer.cmd(&["SET", "s", "theirs"]);
        let mut me = Session::new();
        me.cmd(&["SET", "l", "mine"]);
        me.cmd(&["SET", "s", "mine"]);
        me.shared().db.lock().set_version(b"l", 10, now_ms());
        me.shared().db.lock().set_version(b"s", 30, now_ms());
        let shared = me.shared().clone();
        let (mut c, _rx) = ConnState::detached(&shared);
        let mut out = Reply::new();
        // Newer than mine: replaces it, type and all, and carries its version.
        assert!(applied(
            &shared,
            &mut c,
            &mut out,
            &state_of(&peer, "l", 20)
        ));
        assert_eq!(
            me.cmd(&["LRANGE", "l", "0", "-1"]),
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(shared.db.lock().version(b"l", now_ms()), 20);
        // Older or as old: mine stays.
        for ver in [20, 29, 30] {
            assert!(!applied(
                &shared,
                &mut c,
                &mut out,
                &state_of(&peer, "s", ver)
            ));
        }
        assert_eq!(me.cmd(&["GET", "s"]), "$4\r\nmine\r\n");
        assert!(applied(
            &shared,
            &mut c,
            &mut out,
            &state_of(&peer, "s", 31)
        ));
        assert_eq!(me.cmd(&["GET", "s"]), "$6\r\ntheirs\r\n");
        // A key the peer lacks travels as a DEL: it removes my copy only if newer.
        me.cmd(&["SET", "x", "1"]);
        shared.db.lock().set_version(b"x", 40, now_ms());
        assert!(!applied(
            &shared,
            &mut c,
            &mut out,
            &state_of(&peer, "x", 39)
        ));
        assert_eq!(me.cmd(&["EXISTS", "x"]), ":1\r\n");
        assert!(applied(
            &shared,
            &mut c,
            &mut out,
            &state_of(&peer, "x", 41)
        ));
        assert_eq!(me.cmd(&["EXISTS", "x"]), ":0\r\n");
        // A key I lack is taken whatever its version.
        peer.cmd(&["SET", "n", "v"]);
        assert!(applied(&shared, &mut c, &mut out, &state_of(&peer, "n", 1)));
        assert_eq!(me.cmd(&["GET", "n"]), "$1\r\nv\r\n");
    }

    #[test]
    fn a_delete_leaves_a_tombstone_that_older_copies_lose_to() {
        let mut peer = Session::new();
        peer.cmd(&["SET", "k", "old"]);
        let mut me = Session::new();
        let shared = me.shared().clone();
        let (mut c, _rx) = ConnState::detached(&shared);
        let mut out = Reply::new();
        let mut take = |st: proto::KeyState| applied(&shared, &mut c, &mut out, &st);
        assert!(take(state_of(&peer, "k", 10)));
        // Deleted here at version 20 (a replicated DEL: the peer lacks "gone").
        assert!(take(state_of(&peer, "gone", 1)));
        assert!(take(state("k", 20, &[&["DEL", "k"]])));
        assert_eq!(me.cmd(&["EXISTS", "k"]), ":0\r\n");
        assert_eq!(shared.db.lock().version(b"k", now_ms()), 20);
        // The copy a cut-off member kept (version 10) comes back at the heal: it stays deleted.
        assert!(!take(state_of(&peer, "k", 10)));
        assert_eq!(me.cmd(&["EXISTS", "k"]), ":0\r\n");
        // A write newer than the delete brings it back, and lifts the tombstone.
        assert!(take(state_of(&peer, "k", 21)));
        assert_eq!(me.cmd(&["GET", "k"]), "$3\r\nold\r\n");
        assert_eq!(
            shared.db.lock().tombstones().0,
            1,
            "only \"gone\" is buried"
        );
        // The tombstone travels in the range's dump, as a DEL of its version.
        let slot = crate::slot::key_slot(b"gone");
        let chunks = dump::dump_ranges(
            &mut shared.db.lock(),
            &[crate::cluster::group_of(slot)],
            now_ms(),
            0,
        );
        let states: Vec<proto::KeyState> = chunks
            .iter()
            .flat_map(|(_, b)| proto::decode_keys(b).unwrap())
            .collect();
        let gone = states
            .iter()
            .find(|s| &s.key[..] == b"gone")
            .expect("dumped");
        assert_eq!(gone.ver, 1);
    }

    #[test]
    fn an_expired_key_is_a_tombstone_of_its_expiry() {
        let mut me = Session::new();
        let shared = me.shared().clone();
        let (mut c, _rx) = ConnState::detached(&shared);
        let mut out = Reply::new();
        let mut take = |st: proto::KeyState| applied(&shared, &mut c, &mut out, &st);
        let past = now_ms() - 5_000;
        let written = crate::cluster::version_at(past - 10_000);
        assert!(take(state(
            "s",
            written,
            &[&["SET", "s", "v", "PXAT", &past.to_string()]]
        )));
        let expired = crate::tombstone::expiry_version(written, past);
        // Expired but not collected yet, then collected: the same version either way.
        assert_eq!(shared.db.lock().version(b"s", now_ms()), expired);
        assert_eq!(me.cmd(&["EXISTS", "s"]), ":0\r\n");
        assert_eq!(shared.db.lock().version(b"s", now_ms()), expired);
        // A copy written before it expired, without the TTL (a replica that missed the
        // EXPIRE), loses to it; one written later wins.
        assert!(!take(state("s", expired - 1, &[&["SET", "s", "kept"]])));
        assert_eq!(me.cmd(&["EXISTS", "s"]), ":0\r\n");
        assert!(take(state("s", expired + 1, &[&["SET", "s", "new"]])));
        assert_eq!(me.cmd(&["GET", "s"]), "$3\r\nnew\r\n");
    }

    #[test]
    fn tombstones_are_forgotten_after_their_time() {
        let me = Session::new();
        let shared = me.shared().clone();
        let (mut c, _rx) = ConnState::detached(&shared);
        let mut out = Reply::new();
        let mut take = |st: proto::KeyState| applied(&shared, &mut c, &mut out, &st);
        let now = now_ms();
        let ttl = shared.db.lock().tombstone_ttl_ms;
        let old = crate::cluster::version_at(now - ttl - 1_000);
        let young = crate::cluster::version_at(now - 1_000);
        for (k, v) in [("old", old), ("young", young)] {
            assert!(take(state(k, v, &[&["DEL", k]])));
        }
        assert_eq!(shared.db.lock().collect_tombstones(now), 1);
        assert_eq!(shared.db.lock().version(b"old", now), 0);
        assert_eq!(shared.db.lock().version(b"young", now), young);
    }

    fn state(key: &str, ver: u64, cmds: &[&[&str]]) -> proto::KeyState {
        let mut b = BytesMut::new();
        proto::encode_key_state(&mut b, key.as_bytes(), ver, |o| {
            for c in cmds {
                let v: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
                proto::command(o, &v);
            }
        });
        proto::decode_keys(&b.freeze()).unwrap().remove(0)
    }

    #[test]
    fn a_state_versioned_beyond_the_drift_is_refused() {
        let mut me = Session::new();
        let shared = me.shared().clone();
        let (mut c, _rx) = ConnState::detached(&shared);
        let mut out = Reply::new();
        let refused = || shared.metrics.peer_refused_count("future_version");
        // A second beyond the drift (the bound moves with the clock while the test runs).
        let beyond = crate::cluster::version_at(now_ms() + 61_000);
        for ver in [u64::MAX, beyond] {
            assert!(!applied(
                &shared,
                &mut c,
                &mut out,
                &state("k", ver, &[&["SET", "k", "pinned"]])
            ));
        }
        assert_eq!(refused(), 2);
        assert_eq!(me.cmd(&["EXISTS", "k"]), ":0\r\n");
        // Within the drift (a peer's clock a little ahead): taken, and a later write here
        // still gets a newer version.
        let ahead = crate::cluster::version_at(now_ms() + 30_000);
        assert!(applied(
            &shared,
            &mut c,
            &mut out,
            &state("k", ahead, &[&["SET", "k", "ahead"]])
        ));
        assert_eq!(me.cmd(&["GET", "k"]), "$5\r\nahead\r\n");
        assert_eq!(refused(), 2);
    }

    #[test]
    fn a_state_carrying_other_commands_is_refused_whole() {
        let mut me = Session::new();
        me.cmd(&["SET", "other", "kept"]);
        me.cmd(&["SET", "k", "mine"]);
        let shared = me.shared().clone();
        let (mut c, _rx) = ConnState::detached(&shared);
        let mut out = Reply::new();
        let bad: &[&[&[&str]]] = &[
            &[&["FLUSHALL"]],
            &[&["DEL", "k"], &["FLUSHALL"]],
            &[&["SET", "k", "theirs"], &["SET", "other", "theirs"]],
            &[&["SET", "other", "theirs"]],
            &[&["DEL", "other"]],
            &[&["CONFIG", "SET", "requirepass", "x"]],
        ];
        for (i, cmds) in bad.iter().enumerate() {
            assert!(
                !applied(&shared, &mut c, &mut out, &state("k", 100, cmds)),
                "{cmds:?}"
            );
            assert_eq!(shared.metrics.peer_refused_count("bad_state"), i as u64 + 1);
        }
        assert_eq!(me.cmd(&["GET", "k"]), "$4\r\nmine\r\n");
        assert_eq!(me.cmd(&["GET", "other"]), "$4\r\nkept\r\n");
        assert!(!shared.needs_auth());
        // The same key's state passes.
        assert!(applied(
            &shared,
            &mut c,
            &mut out,
            &state("k", 100, &[&["SET", "k", "theirs"]])
        ));
        assert_eq!(me.cmd(&["GET", "k"]), "$6\r\ntheirs\r\n");
    }
}
