//! Where authoritative answers come from: a [`ZoneSource`] (the node's verified zone store) and,
//! for site names, a [`SiteSteering`] that picks the nodes to send visitors to.
//!
//! The DNS crate sees a zone as a [`ZoneView`]: the apex and its records already in DNS form.
//! Trust is not decided here: a source hands out only zones it has verified (signature, ledger
//! key, expiry, sequence).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use hickory_proto::rr::{LowerName, Name, Record};
use tokio::sync::broadcast;

/// A verified zone, ready to answer from.
#[derive(Debug, Clone)]
pub struct ZoneView {
    /// The registered name the zone belongs to (absolute, lowercase).
    pub apex: Name,
    /// The zone's sequence number (for logs and the SOA serial).
    pub sequence: u64,
    /// Every DNS record of the zone, owners absolute and at or below the apex.
    pub records: Vec<Record>,
    /// Site records: (owner, manifest hash). A/AAAA for the owner are steered to nodes that
    /// hold the site unless the zone has explicit A/AAAA records for that owner.
    pub sites: Vec<(Name, [u8; 32])>,
}

/// The verified zones this node knows.
pub trait ZoneSource: Send + Sync + 'static {
    /// The zone of the registered name enclosing `name` (walking up from `name`), if that name
    /// is registered, unexpired and has a verified zone.
    fn zone_for(&self, name: &LowerName) -> Option<Arc<ZoneView>>;

    /// Notifications of zone apexes whose zone changed (new sequence, registration, expiry).
    fn subscribe(&self) -> broadcast::Receiver<Name>;
}

/// Picks the addresses that serve a site over HTTP, nearest and healthy first.
pub trait SiteSteering: Send + Sync + 'static {
    /// Addresses of nodes holding the site with this manifest, best first.
    fn nodes_for_site(&self, manifest: &[u8; 32]) -> Vec<IpAddr>;
}

/// Steering without a mesh: the local node's HTTP address (when it serves HTTP), or nothing.
#[derive(Debug, Clone, Default)]
pub struct LocalSteering {
    /// The local HTTP gateway's IP, if the node runs one.
    pub http_ip: Option<IpAddr>,
}

impl SiteSteering for LocalSteering {
    fn nodes_for_site(&self, _manifest: &[u8; 32]) -> Vec<IpAddr> {
        self.http_ip.into_iter().collect()
    }
}

/// An in-memory zone source: for tests and benchmarks of the DNS crate on its own, and for
/// feeding zones from any other verified origin. Zones are keyed by their apex.
#[derive(Debug)]
pub struct MemoryZones {
    zones: RwLock<HashMap<LowerName, Arc<ZoneView>>>,
    changes: broadcast::Sender<Name>,
}

impl Default for MemoryZones {
    fn default() -> Self {
        Self {
            zones: RwLock::default(),
            changes: broadcast::channel(1024).0,
        }
    }
}

impl MemoryZones {
    /// Adds or replaces a zone and notifies subscribers.
    pub fn insert(&self, zone: ZoneView) {
        let apex = zone.apex.clone();
        self.write().insert(LowerName::new(&apex), Arc::new(zone));
        let _ = self.changes.send(apex);
    }

    /// Removes a zone (as when its name expires) and notifies subscribers.
    pub fn remove(&self, apex: &Name) {
        self.write().remove(&LowerName::new(apex));
        let _ = self.changes.send(apex.clone());
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<LowerName, Arc<ZoneView>>> {
        self.zones.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl ZoneSource for MemoryZones {
    fn zone_for(&self, name: &LowerName) -> Option<Arc<ZoneView>> {
        let zones = self.zones.read().unwrap_or_else(|e| e.into_inner());
        let mut cur = name.clone();
        // Bounded: a name has at most 127 labels.
        loop {
            if let Some(z) = zones.get(&cur) {
                return Some(z.clone());
            }
            if cur.is_root() {
                return None;
            }
            cur = cur.base_name();
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Name> {
        self.changes.subscribe()
    }
}
