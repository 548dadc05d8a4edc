//! Sites by name: the gateway asks a [`SiteResolver`] for a host's manifest, and the node
//! answers from the naming service's verified zones (the CDN knows nothing of names).

use std::sync::Arc;

use cdn_edge::Hash;
use cdn_edge::gateway::SiteResolver;

/// Sites from the naming service's verified zones: a host's site record is the `Site` record
/// owned by exactly that name, in the zone that answers for it.
pub struct ZoneSites(pub Arc<naming::ZoneStore>);

impl SiteResolver for ZoneSites {
    fn manifest_for(&self, host: &str) -> Option<Hash> {
        let name = naming::Name::parse(host).ok()?;
        let zone = self.0.lookup(&name)?;
        site_of(&zone, &name)
    }
}

/// The site record of exactly `name` in `zone`: the manifest of its site, if it has one.
pub fn site_of(zone: &naming::SignedZone, name: &naming::Name) -> Option<Hash> {
    zone.zone.records_for(name).find_map(|r| match r.data {
        naming::RecordData::Site { manifest } => Some(Hash(manifest)),
        _ => None,
    })
}
