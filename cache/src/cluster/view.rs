//! Who owns which slot: rendezvous hashing over the live members, and the `CLUSTER` maps.
//!
//! The 16384 slots are grouped into [`GROUPS`] contiguous ranges of [`GROUP_SLOTS`] slots; each
//! range is placed by rendezvous (highest random weight) hashing of `(member, range)`. Every
//! node computes the same owners from the same member set, with no coordination; when a member
//! leaves, only its ranges move, each to the next member in that range's order (which already
//! holds the replica); when one joins, it takes over only the ranges it now wins. Ranges rather
//! than single slots keep the maps clients fetch short (at most 256 entries instead of ~13000).

use std::net::SocketAddr;

use mesh::PeerId;

use crate::reply::Reply;
use crate::slot::SLOTS;

/// Slots per placement range.
pub const GROUP_SLOTS: u16 = 64;
/// Number of placement ranges.
pub const GROUPS: usize = (SLOTS / GROUP_SLOTS) as usize;

/// One member that serves the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its mesh identity.
    pub peer: PeerId,
    /// The 40-hex node id `CLUSTER NODES`/`MYID` show (derived from the peer id, so every
    /// member names it the same).
    pub id: String,
    /// Its Redis address (what `MOVED` and the maps point clients to).
    pub redis: SocketAddr,
    weight_seed: u64,
}

impl Node {
    /// A node from its peer id and Redis address.
    pub fn new(peer: PeerId, redis: SocketAddr) -> Self {
        Self {
            id: node_id(&peer),
            weight_seed: fnv1a(&peer.to_bytes()),
            peer,
            redis,
        }
    }
}

/// The 40-hex cluster node id of a peer: the last 20 bytes of its peer id (key material).
pub fn node_id(peer: &PeerId) -> String {
    let b = peer.to_bytes();
    let tail = &b[b.len().saturating_sub(20)..];
    let mut s = String::with_capacity(40);
    for x in tail {
        s.push(char::from(b"0123456789abcdef"[usize::from(x >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(x & 15)]));
    }
    while s.len() < 40 {
        s.push('0');
    }
    s
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The splitmix64 finalizer: a good 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A shard of `CLUSTER SHARDS`: owners (primary first) and slot ranges.
type Shard = (Vec<usize>, Vec<(u16, u16)>);

/// One node's view of the cluster: the members, and for every range its owners in rendezvous
/// order (primary first).
#[derive(Debug, Clone)]
pub struct View {
    /// Incremented on every change this node sees (`cluster_current_epoch`).
    pub epoch: u64,
    /// Members, sorted by node id.
    pub nodes: Vec<Node>,
    /// Index of this node in `nodes`.
    pub me: usize,
    /// Copies per slot (bounded by the member count).
    pub rf: usize,
    /// For every range, every member index in rendezvous order.
    order: Vec<Vec<u16>>,
    /// Member indices, nearest to this node first (this node first); orders replicas in maps.
    nearness: Vec<usize>,
    /// A hash of the member set: two nodes with the same digest place every range alike.
    pub digest: u64,
}

impl View {
    /// The view over `nodes` (this node must be among them, `me` being its peer id).
    pub fn new(mut nodes: Vec<Node>, me: PeerId, rf: usize, epoch: u64) -> Self {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes.dedup_by(|a, b| a.peer == b.peer);
        let me = nodes.iter().position(|n| n.peer == me).unwrap_or(0);
        let order = (0..GROUPS)
            .map(|g| {
                let salt = mix(g as u64 ^ 0x5eed_cafe_f00d_d00d);
                let mut idx: Vec<(u64, u16)> = nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (mix(n.weight_seed ^ salt), i as u16))
                    .collect();
                idx.sort_unstable_by(|a, b| b.cmp(a));
                idx.into_iter().map(|(_, i)| i).collect()
            })
            .collect();
        let nearness = (0..nodes.len()).collect();
        let rf = rf.clamp(1, nodes.len().max(1));
        let digest = nodes
            .iter()
            .fold(mix(rf as u64), |h, n| mix(h ^ n.weight_seed));
        Self {
            digest,
            epoch,
            rf,
            nodes,
            me,
            order,
            nearness,
        }
    }

    /// Sets the nearness order (member indices, nearest first) used to list replicas.
    pub fn set_nearness(&mut self, order: Vec<usize>) {
        self.nearness = order;
    }

    /// Position of member `i` in the nearness order (0 = this node).
    pub fn nearness_rank(&self, i: usize) -> usize {
        self.nearness
            .iter()
            .position(|n| *n == i)
            .unwrap_or(usize::MAX)
    }

    /// This node.
    pub fn me(&self) -> &Node {
        &self.nodes[self.me]
    }

    /// Every member of the range holding `slot`, in rendezvous order.
    pub fn order(&self, slot: u16) -> &[u16] {
        &self.order[usize::from(slot / GROUP_SLOTS)]
    }

    /// The owners of `slot`: primary first, then the replicas, in rendezvous order.
    pub fn owners(&self, slot: u16) -> &[u16] {
        let o = self.order(slot);
        &o[..self.rf.min(o.len())]
    }

    /// The primary of `slot`.
    pub fn primary(&self, slot: u16) -> usize {
        usize::from(self.owners(slot)[0])
    }

    /// Whether this node holds a copy of `slot`.
    pub fn is_owner(&self, slot: u16) -> bool {
        self.owners(slot).iter().any(|&i| usize::from(i) == self.me)
    }

    /// The owners of a range for the maps: primary first, then the replicas nearest this node.
    fn map_owners(&self, group: usize) -> Vec<usize> {
        let owners = self.owners(group as u16 * GROUP_SLOTS);
        let mut reps: Vec<usize> = owners[1..].iter().map(|&i| usize::from(i)).collect();
        reps.sort_by_key(|i| {
            self.nearness
                .iter()
                .position(|n| n == i)
                .unwrap_or(usize::MAX)
        });
        let mut v = vec![usize::from(owners[0])];
        v.extend(reps);
        v
    }

    /// Contiguous slot ranges with the same map owners: `(first, last, owners)`.
    pub fn ranges(&self) -> Vec<(u16, u16, Vec<usize>)> {
        let mut out: Vec<(u16, u16, Vec<usize>)> = Vec::new();
        for g in 0..GROUPS {
            let owners = self.map_owners(g);
            let first = g as u16 * GROUP_SLOTS;
            let last = first + GROUP_SLOTS - 1;
            match out.last_mut() {
                Some(r) if r.2 == owners => r.1 = last,
                _ => out.push((first, last, owners)),
            }
        }
        out
    }

    fn write_node(&self, out: &mut Reply, i: usize) {
        let n = &self.nodes[i];
        out.array(4);
        out.bulk(n.redis.ip().to_string().as_bytes());
        out.int(i64::from(n.redis.port()));
        out.bulk(n.id.as_bytes());
        out.map(0);
    }

    /// `CLUSTER SLOTS`.
    pub fn write_slots(&self, out: &mut Reply) {
        let ranges = self.ranges();
        out.array(ranges.len());
        for (a, b, owners) in &ranges {
            out.array(2 + owners.len());
            out.int(i64::from(*a));
            out.int(i64::from(*b));
            for &i in owners {
                self.write_node(out, i);
            }
        }
    }

    /// `CLUSTER SHARDS`: one shard per distinct owner list (primary and its replicas).
    pub fn write_shards(&self, out: &mut Reply) {
        let mut shards: Vec<Shard> = Vec::new();
        for (a, b, owners) in self.ranges() {
            match shards.iter_mut().find(|s| s.0 == owners) {
                Some(s) => s.1.push((a, b)),
                None => shards.push((owners, vec![(a, b)])),
            }
        }
        out.array(shards.len());
        for (owners, slots) in &shards {
            out.map(2);
            out.bulk(b"slots");
            out.array(slots.len() * 2);
            for (a, b) in slots {
                out.int(i64::from(*a));
                out.int(i64::from(*b));
            }
            out.bulk(b"nodes");
            out.array(owners.len());
            for (k, &i) in owners.iter().enumerate() {
                let n = &self.nodes[i];
                let ip = n.redis.ip().to_string();
                out.map(7);
                out.bulk(b"id");
                out.bulk(n.id.as_bytes());
                out.bulk(b"port");
                out.int(i64::from(n.redis.port()));
                out.bulk(b"ip");
                out.bulk(ip.as_bytes());
                out.bulk(b"endpoint");
                out.bulk(ip.as_bytes());
                out.bulk(b"role");
                out.bulk(if k == 0 { b"master" } else { b"replica" });
                out.bulk(b"replication-offset");
                out.int(0);
                out.bulk(b"health");
                out.bulk(b"online");
            }
        }
    }

    /// `CLUSTER NODES`: every member is a master of the ranges it is primary for (replication
    /// is per range, so no member is a replica of one other member).
    pub fn nodes_text(&self) -> String {
        let ranges = self.ranges();
        let mut t = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let flags = if i == self.me {
                "myself,master"
            } else {
                "master"
            };
            t.push_str(&format!(
                "{} {}:{}@{} {flags} - 0 0 {} connected",
                n.id,
                n.redis.ip(),
                n.redis.port(),
                u32::from(n.redis.port()) + 10000,
                self.epoch
            ));
            for (a, b, owners) in &ranges {
                if owners[0] == i {
                    if a == b {
                        t.push_str(&format!(" {a}"));
                    } else {
                        t.push_str(&format!(" {a}-{b}"));
                    }
                }
            }
            t.push('\n');
        }
        t
    }

    /// `CLUSTER INFO`; `ok` is false while this node sees no majority of the members
    /// (`cluster_state:fail`, as on a Redis Cluster node of the minority side).
    pub fn info_text(&self, ok: bool) -> String {
        let primaries = {
            let mut p: Vec<usize> = self.ranges().iter().map(|r| r.2[0]).collect();
            p.sort_unstable();
            p.dedup();
            p.len()
        };
        format!(
            "cluster_state:{}\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\ncluster_size:{primaries}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
            if ok { "ok" } else { "fail" },
            self.nodes.len(),
            self.epoch,
            self.epoch
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<Node> {
        (0..n)
            .map(|i| {
                Node::new(
                    PeerId::random(),
                    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
                )
            })
            .collect()
    }

    #[test]
    fn every_slot_is_covered_and_owners_are_distinct() {
        let nodes = peers(5);
        let v = View::new(nodes.clone(), nodes[0].peer, 2, 1);
        let ranges = v.ranges();
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().1, 16383);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        for s in 0..SLOTS {
            let o = v.owners(s);
            assert_eq!(o.len(), 2);
            assert_ne!(o[0], o[1]);
        }
    }

    #[test]
    fn a_departure_moves_only_its_ranges_to_the_replica() {
        let nodes = peers(5);
        let full = View::new(nodes.clone(), nodes[0].peer, 2, 1);
        let gone = nodes[3].peer;
        let rest: Vec<Node> = nodes.iter().filter(|n| n.peer != gone).cloned().collect();
        let after = View::new(rest, nodes[0].peer, 2, 2);
        let peer_of = |v: &View, i: u16| v.nodes[usize::from(i)].peer;
        for s in (0..SLOTS).step_by(64) {
            let before: Vec<PeerId> = full.owners(s).iter().map(|&i| peer_of(&full, i)).collect();
            let now: Vec<PeerId> = after
                .owners(s)
                .iter()
                .map(|&i| peer_of(&after, i))
                .collect();
            if before[0] != gone {
                assert_eq!(before[0], now[0], "a surviving primary keeps its slot");
            } else {
                assert_eq!(
                    before[1], now[0],
                    "the replica takes the dead primary's slot"
                );
            }
        }
    }

    #[test]
    fn the_load_is_spread() {
        let nodes = peers(3);
        let v = View::new(nodes.clone(), nodes[0].peer, 2, 1);
        let mut count = [0usize; 3];
        for s in (0..SLOTS).step_by(64) {
            count[v.primary(s)] += 1;
        }
        for c in count {
            assert!(c > 50, "{count:?}");
        }
    }
}
