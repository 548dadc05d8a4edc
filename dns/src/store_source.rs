//! The node's verified zone store as a [`ZoneSource`]: `naming`'s zones turned into DNS
//! records once per accepted zone (not once per query).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NULL, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use naming::{RecordData, SignedZone, ZoneStore};
use tokio::sync::broadcast;

use crate::zones::{ZoneSource, ZoneView};

/// Zones held converted at most; past that the conversions are dropped and redone on demand.
const MAX_VIEWS: usize = 1_000_000;

/// A converted zone and the store's zone it was converted from.
type Converted = (Arc<SignedZone>, Arc<ZoneView>);

/// A [`ZoneStore`] seen by the DNS server.
pub struct StoreZones {
    store: Arc<ZoneStore>,
    /// Converted zones, valid while the store still hands out the same `Arc<SignedZone>`.
    views: RwLock<HashMap<naming::Name, Converted>>,
}

impl std::fmt::Debug for StoreZones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreZones")
            .field("store", &self.store)
            .finish()
    }
}

impl StoreZones {
    /// Wraps the node's zone store.
    pub fn new(store: Arc<ZoneStore>) -> Self {
        Self {
            store,
            views: RwLock::default(),
        }
    }
}

impl ZoneSource for StoreZones {
    fn zone_for(&self, name: &LowerName) -> Option<Arc<ZoneView>> {
        let text = name.to_string();
        let name = naming::Name::parse(text.trim_end_matches('.')).ok()?;
        // The store checks expiry on every lookup: an expired name stops resolving here.
        let signed = self.store.lookup(&name)?;
        let apex = signed.zone.name.clone();
        if let Some((held, view)) = self.views.read().ok()?.get(&apex)
            && Arc::ptr_eq(held, &signed)
        {
            return Some(view.clone());
        }
        let view = Arc::new(convert(&signed)?);
        if let Ok(mut views) = self.views.write() {
            if views.len() >= MAX_VIEWS {
                views.clear();
            }
            views.insert(apex, (signed, view.clone()));
        }
        Some(view)
    }

    fn subscribe(&self) -> broadcast::Receiver<Name> {
        // Forward the store's notifications as DNS names.
        let (tx, rx) = broadcast::channel(1024);
        let mut from = self.store.subscribe();
        tokio::spawn(async move {
            loop {
                match from.recv().await {
                    Ok(n) => {
                        if let Some(dns) = dns_name(&n)
                            && tx.send(dns).is_err()
                        {
                            break;
                        }
                    }
                    // Missed changes: say "everything changed".
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if tx.send(Name::root()).is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        rx
    }
}

fn dns_name(n: &naming::Name) -> Option<Name> {
    Name::from_ascii(format!("{}.", n.as_str())).ok()
}

/// Converts a verified zone into DNS records; `None` if a name cannot be a DNS name.
pub fn convert(signed: &SignedZone) -> Option<ZoneView> {
    let zone = &signed.zone;
    let mut records = Vec::with_capacity(zone.records.len());
    let mut sites = Vec::new();
    for r in &zone.records {
        let owner = dns_name(&r.owner)?;
        let data = match &r.data {
            RecordData::A(ip) => RData::A(A(*ip)),
            RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            RecordData::Cname(n) => RData::CNAME(CNAME(dns_name(n)?)),
            RecordData::Txt(parts) => RData::TXT(TXT::new(parts.clone())),
            RecordData::Mx {
                preference,
                exchange,
            } => RData::MX(MX::new(*preference, dns_name(exchange)?)),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => RData::SRV(SRV::new(*priority, *weight, *port, dns_name(target)?)),
            // CAA and HTTPS are carried in their exact wire form (what the owner signed).
            RecordData::Caa { flags, tag, value } => {
                let mut wire = vec![*flags, u8::try_from(tag.len()).ok()?];
                wire.extend_from_slice(tag.as_bytes());
                wire.extend_from_slice(value.as_bytes());
                RData::Unknown {
                    code: RecordType::CAA,
                    rdata: NULL::with(wire),
                }
            }
            RecordData::Https {
                priority,
                target,
                params,
            } => {
                let mut wire = priority.to_be_bytes().to_vec();
                for label in target.labels() {
                    wire.push(u8::try_from(label.len()).ok()?);
                    wire.extend_from_slice(label.as_bytes());
                }
                wire.push(0);
                wire.extend_from_slice(params);
                RData::Unknown {
                    code: RecordType::HTTPS,
                    rdata: NULL::with(wire),
                }
            }
            RecordData::Site { manifest } => {
                sites.push((owner, *manifest));
                continue;
            }
        };
        records.push(Record::from_rdata(owner, r.ttl, data));
    }
    Some(ZoneView {
        apex: dns_name(&zone.name)?,
        sequence: zone.sequence,
        records,
        sites,
    })
}
