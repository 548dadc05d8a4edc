//! Signed zones: a name's records, a sequence number and an Ed25519 signature by the zone key.
//!
//! # Canonical encoding, version 1
//!
//! ```text
//! u8      version (= 1)
//! [32]    zone key (Ed25519 public key)
//! [64]    signature
//! name    zone name
//! u64     sequence            (all integers big-endian)
//! u64     timestamp (unix seconds)
//! u16     record count        (<= MAX_RECORDS)
//! record* owner: name, ttl: u32, type: u16 (DNS RR type; 0xFF00 = site), rdata: u16 len + bytes
//! name  = u8 len (1..=253) + lowercase ASCII presentation form
//! ```
//!
//! The signature covers `SIGNING_CONTEXT || version || zone key || everything after the
//! signature`, so every byte of an encoding is either signed or is the signature itself: any
//! change is refused by [`SignedZone::verify`]. Decoding is strict: sizes are checked against the
//! remaining input before anything is allocated, and an input that does not re-encode to the same
//! bytes is refused as non-canonical, so one zone has exactly one encoding.

use std::net::{Ipv4Addr, Ipv6Addr};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::name::{MAX_NAME_LEN, Name};

/// Current encoding version (the first byte of every encoding).
pub const ZONE_VERSION: u8 = 1;
/// Domain separation for zone signatures.
pub const SIGNING_CONTEXT: &[u8] = b"proxima zone signature\0";
/// Most records a zone may hold.
pub const MAX_RECORDS: usize = 1024;
/// Largest encoded zone accepted (bounds the whole decode).
pub const MAX_ZONE_BYTES: usize = 256 * 1024;
/// Largest rdata of one record.
pub const MAX_RDATA: usize = 4096;
/// RR type code used for the site record (private-use range, RFC 6895).
pub const SITE_RTYPE: u16 = 0xFF00;

/// One resource record of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Absolute owner name: the zone's name or a name below it.
    pub owner: Name,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Type and data.
    pub data: RecordData,
}

/// Record data of the supported types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "UPPERCASE")]
pub enum RecordData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Alias.
    Cname(Name),
    /// Character strings (each at most 255 bytes).
    Txt(Vec<String>),
    /// Mail exchange.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// Mail server.
        exchange: Name,
    },
    /// Certification authority authorization (RFC 8659).
    Caa {
        /// Flags (128 = critical).
        flags: u8,
        /// Property tag, e.g. `issue`.
        tag: String,
        /// Property value.
        value: String,
    },
    /// Service location.
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Weight among equal priorities.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host.
        target: Name,
    },
    /// HTTPS service binding (RFC 9460); `params` is the raw SvcParams wire form.
    Https {
        /// 0 = alias mode.
        priority: u16,
        /// Target name.
        target: Name,
        /// Raw SvcParams.
        params: Vec<u8>,
    },
    /// The site record: BLAKE3 hash of a CDN site manifest.
    Site {
        /// Manifest hash.
        manifest: [u8; 32],
    },
}

impl RecordData {
    /// The DNS RR type code ([`SITE_RTYPE`] for the site record).
    pub fn rtype(&self) -> u16 {
        match self {
            Self::A(_) => 1,
            Self::Cname(_) => 5,
            Self::Mx { .. } => 15,
            Self::Txt(_) => 16,
            Self::Aaaa(_) => 28,
            Self::Srv { .. } => 33,
            Self::Https { .. } => 65,
            Self::Caa { .. } => 257,
            Self::Site { .. } => SITE_RTYPE,
        }
    }

    /// The type's mnemonic (`A`, `AAAA`, ..., `SITE`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::A(_) => "A",
            Self::Aaaa(_) => "AAAA",
            Self::Cname(_) => "CNAME",
            Self::Txt(_) => "TXT",
            Self::Mx { .. } => "MX",
            Self::Caa { .. } => "CAA",
            Self::Srv { .. } => "SRV",
            Self::Https { .. } => "HTTPS",
            Self::Site { .. } => "SITE",
        }
    }

    /// Presentation form of the data (zone-file style).
    pub fn value_string(&self) -> String {
        match self {
            Self::A(a) => a.to_string(),
            Self::Aaaa(a) => a.to_string(),
            Self::Cname(n) => n.to_string(),
            Self::Txt(parts) => parts
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(" "),
            Self::Mx {
                preference,
                exchange,
            } => format!("{preference} {exchange}"),
            Self::Caa { flags, tag, value } => format!("{flags} {tag} {value:?}"),
            Self::Srv {
                priority,
                weight,
                port,
                target,
            } => format!("{priority} {weight} {port} {target}"),
            Self::Https {
                priority,
                target,
                params,
            } if params.is_empty() => format!("{priority} {target}"),
            Self::Https {
                priority,
                target,
                params,
            } => format!("{priority} {target} {}", hex::encode(params)),
            Self::Site { manifest } => hex::encode(manifest),
        }
    }
}

/// A record value that cannot be parsed from its presentation form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {rtype} value {value:?}: {reason}")]
pub struct RecordParseError {
    /// The type asked for.
    pub rtype: String,
    /// The value given.
    pub value: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl RecordData {
    /// Parses zone-file style presentation form: `A 192.0.2.1`, `AAAA 2001:db8::1`,
    /// `CNAME host.x.proxima`, `TXT any text` (split into 255-byte strings), `MX 10 mail.x.proxima`,
    /// `CAA 0 issue "letsencrypt.org"`, `SRV 10 5 443 host.x.proxima`, `HTTPS 1 svc.x.proxima [hex params]`,
    /// `SITE <64 hex digits>`. The type is case-insensitive.
    pub fn parse(rtype: &str, value: &str) -> Result<Self, RecordParseError> {
        let err = |reason: &str| RecordParseError {
            rtype: rtype.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let value_t = value.trim();
        let fields: Vec<&str> = value_t.split_whitespace().collect();
        let name = |s: &str| Name::parse(s).map_err(|e| err(&e.to_string()));
        let num16 = |s: &str, what: &str| {
            s.parse::<u16>()
                .map_err(|_| err(&format!("{what} must be a number 0..=65535")))
        };
        match rtype.to_ascii_uppercase().as_str() {
            "A" => value_t
                .parse()
                .map(Self::A)
                .map_err(|_| err("expected an IPv4 address such as 192.0.2.1")),
            "AAAA" => value_t
                .parse()
                .map(Self::Aaaa)
                .map_err(|_| err("expected an IPv6 address such as 2001:db8::1")),
            "CNAME" => name(value_t).map(Self::Cname),
            "TXT" => {
                let text = value_t
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                if text.len() > 255 * 16 {
                    return Err(err("TXT values are limited to 4080 bytes"));
                }
                let mut parts = Vec::new();
                let mut rest = text;
                while !rest.is_empty() {
                    let mut cut = rest.len().min(255);
                    while !rest.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    parts.push(rest[..cut].to_owned());
                    rest = &rest[cut..];
                }
                if parts.is_empty() {
                    parts.push(String::new());
                }
                Ok(Self::Txt(parts))
            }
            "MX" => match fields.as_slice() {
                [pref, exchange] => Ok(Self::Mx {
                    preference: num16(pref, "preference")?,
                    exchange: name(exchange)?,
                }),
                _ => Err(err(
                    "expected \"PREFERENCE EXCHANGE\", e.g. \"10 mail.x.proxima\"",
                )),
            },
            "CAA" => {
                let mut it = value_t.splitn(3, char::is_whitespace);
                let (Some(flags), Some(tag), Some(v)) = (it.next(), it.next(), it.next()) else {
                    return Err(err(
                        "expected \"FLAGS TAG VALUE\", e.g. \"0 issue letsencrypt.org\"",
                    ));
                };
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .unwrap_or(v);
                let data = Self::Caa {
                    flags: flags.parse().map_err(|_| err("flags must be 0..=255"))?,
                    tag: tag.to_owned(),
                    value: v.to_owned(),
                };
                let mut buf = Vec::new();
                encode_rdata(&data, &mut buf).map_err(|e| err(&e))?;
                Ok(data)
            }
            "SRV" => match fields.as_slice() {
                [p, w, port, target] => Ok(Self::Srv {
                    priority: num16(p, "priority")?,
                    weight: num16(w, "weight")?,
                    port: num16(port, "port")?,
                    target: name(target)?,
                }),
                _ => Err(err("expected \"PRIORITY WEIGHT PORT TARGET\"")),
            },
            "HTTPS" => match fields.as_slice() {
                [p, target, params @ ..] if params.len() <= 1 => Ok(Self::Https {
                    priority: num16(p, "priority")?,
                    target: name(target)?,
                    params: match params.first() {
                        Some(h) => hex::decode(h)
                            .map_err(|_| err("params must be hex (SvcParams wire form)"))?,
                        None => Vec::new(),
                    },
                }),
                _ => Err(err("expected \"PRIORITY TARGET [HEX-PARAMS]\"")),
            },
            "SITE" => {
                let bytes = hex::decode(value_t).map_err(|_| err("expected 64 hex digits"))?;
                let manifest: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| err("expected 64 hex digits"))?;
                Ok(Self::Site { manifest })
            }
            other => Err(RecordParseError {
                rtype: other.to_owned(),
                value: value.to_owned(),
                reason: "unknown type; supported: A AAAA CNAME TXT MX CAA SRV HTTPS SITE".into(),
            }),
        }
    }
}

/// A zone before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    /// The registered name the zone belongs to.
    pub name: Name,
    /// Strictly increasing per name; a store keeps only the highest.
    pub sequence: u64,
    /// When the owner signed it (unix seconds).
    pub timestamp: u64,
    /// The records, for the name and names below it.
    pub records: Vec<Record>,
}

impl Zone {
    /// Records owned by exactly `owner`.
    pub fn records_for<'a>(&'a self, owner: &'a Name) -> impl Iterator<Item = &'a Record> + 'a {
        self.records.iter().filter(move |r| &r.owner == owner)
    }

    /// The site manifest of the zone's apex, if it has a site record.
    pub fn site(&self) -> Option<[u8; 32]> {
        self.records_for(&self.name).find_map(|r| match r.data {
            RecordData::Site { manifest } => Some(manifest),
            _ => None,
        })
    }

    /// Checks what the types cannot: owners inside the zone, sizes within the encoding's bounds.
    pub fn check(&self) -> Result<(), ZoneError> {
        if self.records.len() > MAX_RECORDS {
            return Err(ZoneError::TooManyRecords(self.records.len()));
        }
        for r in &self.records {
            if !r.owner.is_subdomain_of(&self.name) {
                return Err(ZoneError::OwnerOutsideZone {
                    owner: r.owner.clone(),
                    zone: self.name.clone(),
                });
            }
            let mut buf = Vec::new();
            encode_rdata(&r.data, &mut buf).map_err(ZoneError::Record)?;
            if buf.len() > MAX_RDATA {
                return Err(ZoneError::Record(format!(
                    "{} record data is {} bytes; at most {MAX_RDATA}",
                    r.data.type_name(),
                    buf.len()
                )));
            }
        }
        Ok(())
    }
}

/// A zone that cannot be encoded or signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    /// More than [`MAX_RECORDS`].
    #[error("zone has {0} records; at most {MAX_RECORDS} are allowed")]
    TooManyRecords(usize),
    /// A record's owner is not the zone name or below it.
    #[error("record owner {owner} is outside the zone {zone}")]
    OwnerOutsideZone {
        /// The record owner.
        owner: Name,
        /// The zone.
        zone: Name,
    },
    /// A record's data is out of bounds.
    #[error("bad record: {0}")]
    Record(String),
    /// The encoding would exceed [`MAX_ZONE_BYTES`].
    #[error("encoded zone is {0} bytes; at most {MAX_ZONE_BYTES}")]
    TooLarge(usize),
}

/// Why bytes are not a signed zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Input ended early.
    #[error("truncated: needed {needed} more bytes for {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Missing bytes.
        needed: usize,
    },
    /// Unknown version byte.
    #[error("unsupported zone encoding version {0}")]
    Version(u8),
    /// Input larger than [`MAX_ZONE_BYTES`].
    #[error("zone encoding is {0} bytes; at most {MAX_ZONE_BYTES}")]
    TooLarge(usize),
    /// A size field over its bound.
    #[error("{what} is {len}; at most {max}")]
    Bound {
        /// The field.
        what: &'static str,
        /// Its value.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A name inside the zone is invalid.
    #[error("invalid name in {what}: {reason}")]
    Name {
        /// Where.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Unknown record type.
    #[error("unknown record type {0}")]
    UnknownType(u16),
    /// Record data of the wrong shape for its type.
    #[error("bad {rtype} record data: {reason}")]
    Rdata {
        /// The type.
        rtype: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Bytes left after the last record.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// The zone key is not a valid Ed25519 point.
    #[error("zone key is not a valid Ed25519 public key")]
    BadKey,
    /// Decodes, but is not in canonical form (e.g. uppercase or a record owner outside the zone).
    #[error("not in canonical form")]
    NonCanonical,
}

/// A zone with its zone key and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedZone {
    /// The signed zone.
    pub zone: Zone,
    /// Ed25519 signature over the canonical encoding (see the module docs).
    pub signature: [u8; 64],
    /// The public zone key that made the signature.
    pub zone_key: [u8; 32],
}

/// The signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("zone signature does not verify")]
pub struct BadSignature;

impl SignedZone {
    /// Signs `zone` with `key` (after [`Zone::check`]).
    pub fn sign(zone: Zone, key: &SigningKey) -> Result<Self, ZoneError> {
        zone.check()?;
        let zone_key = key.verifying_key().to_bytes();
        let body = encode_body(&zone)?;
        let msg = signing_message(&zone_key, &body);
        let signature = key.sign(&msg).to_bytes();
        Ok(Self {
            zone,
            signature,
            zone_key,
        })
    }

    /// Verifies the signature against the embedded zone key (strict Ed25519: no small-order
    /// keys, no malleable signatures). Whether that key is the right one is the ledger's call.
    pub fn verify(&self) -> Result<(), BadSignature> {
        let key = VerifyingKey::from_bytes(&self.zone_key).map_err(|_| BadSignature)?;
        let body = encode_body(&self.zone).map_err(|_| BadSignature)?;
        let msg = signing_message(&self.zone_key, &body);
        key.verify_strict(&msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| BadSignature)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        // A SignedZone can only be made by `sign` or `decode`, both of which checked the bounds,
        // but its fields are public: fall back to an empty body rather than panic.
        let body = encode_body(&self.zone).unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 32 + 64 + body.len());
        out.push(ZONE_VERSION);
        out.extend_from_slice(&self.zone_key);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a canonical encoding. Does not verify the signature (see [`verify`](Self::verify)).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ZONE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let mut r = Reader { buf: bytes };
        let version = r.u8("version")?;
        if version != ZONE_VERSION {
            return Err(DecodeError::Version(version));
        }
        let zone_key: [u8; 32] = r.array("zone key")?;
        let signature: [u8; 64] = r.array("signature")?;
        let name = r.name("zone name")?;
        let sequence = r.u64("sequence")?;
        let timestamp = r.u64("timestamp")?;
        let count = usize::from(r.u16("record count")?);
        if count > MAX_RECORDS {
            return Err(DecodeError::Bound {
                what: "record count",
                len: count,
                max: MAX_RECORDS,
            });
        }
        // Each record takes at least 1 + 1 + 4 + 2 + 2 bytes: bound the allocation by the input.
        let mut records = Vec::with_capacity(count.min(r.buf.len() / 10));
        for _ in 0..count {
            records.push(decode_record(&mut r)?);
        }
        if !r.buf.is_empty() {
            return Err(DecodeError::Trailing(r.buf.len()));
        }
        let zone = Zone {
            name,
            sequence,
            timestamp,
            records,
        };
        let decoded = Self {
            zone,
            signature,
            zone_key,
        };
        if decoded.zone.check().is_err() || decoded.encode() != bytes {
            return Err(DecodeError::NonCanonical);
        }
        Ok(decoded)
    }

    /// BLAKE3 hash of the canonical encoding (an identifier for logs and gossip dedup).
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }
}

fn signing_message(zone_key: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + 1 + 32 + body.len());
    msg.extend_from_slice(SIGNING_CONTEXT);
    msg.push(ZONE_VERSION);
    msg.extend_from_slice(zone_key);
    msg.extend_from_slice(body);
    msg
}

fn encode_body(zone: &Zone) -> Result<Vec<u8>, ZoneError> {
    if zone.records.len() > MAX_RECORDS {
        return Err(ZoneError::TooManyRecords(zone.records.len()));
    }
    let mut out = Vec::with_capacity(64 + zone.records.len() * 32);
    put_name(&mut out, &zone.name);
    out.extend_from_slice(&zone.sequence.to_be_bytes());
    out.extend_from_slice(&zone.timestamp.to_be_bytes());
    out.extend_from_slice(&(zone.records.len() as u16).to_be_bytes());
    let mut rdata = Vec::new();
    for rec in &zone.records {
        put_name(&mut out, &rec.owner);
        out.extend_from_slice(&rec.ttl.to_be_bytes());
        out.extend_from_slice(&rec.data.rtype().to_be_bytes());
        rdata.clear();
        encode_rdata(&rec.data, &mut rdata).map_err(ZoneError::Record)?;
        if rdata.len() > MAX_RDATA {
            return Err(ZoneError::Record(format!(
                "record data is {} bytes; at most {MAX_RDATA}",
                rdata.len()
            )));
        }
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    if out.len() + 97 > MAX_ZONE_BYTES {
        return Err(ZoneError::TooLarge(out.len() + 97));
    }
    Ok(out)
}

fn put_name(out: &mut Vec<u8>, name: &Name) {
    // Names are at most 253 bytes, so the length fits a byte.
    out.push(name.as_str().len() as u8);
    out.extend_from_slice(name.as_str().as_bytes());
}

fn encode_rdata(data: &RecordData, out: &mut Vec<u8>) -> Result<(), String> {
    match data {
        RecordData::A(a) => out.extend_from_slice(&a.octets()),
        RecordData::Aaaa(a) => out.extend_from_slice(&a.octets()),
        RecordData::Cname(n) => put_name(out, n),
        RecordData::Txt(parts) => {
            if parts.is_empty() || parts.len() > 255 {
                return Err(format!("TXT needs 1..=255 strings, has {}", parts.len()));
            }
            out.push(parts.len() as u8);
            for p in parts {
                if p.len() > 255 {
                    return Err(format!("TXT string is {} bytes; at most 255", p.len()));
                }
                out.push(p.len() as u8);
                out.extend_from_slice(p.as_bytes());
            }
        }
        RecordData::Mx {
            preference,
            exchange,
        } => {
            out.extend_from_slice(&preference.to_be_bytes());
            put_name(out, exchange);
        }
        RecordData::Caa { flags, tag, value } => {
            if tag.is_empty() || tag.len() > 255 || !tag.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "CAA tag {tag:?} must be 1..=255 ASCII letters/digits"
                ));
            }
            if value.len() > MAX_RDATA {
                return Err("CAA value too long".into());
            }
            out.push(*flags);
            out.push(tag.len() as u8);
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            out.extend_from_slice(&priority.to_be_bytes());
            out.extend_from_slice(&weight.to_be_bytes());
            out.extend_from_slice(&port.to_be_bytes());
            put_name(out, target);
        }
        RecordData::Https {
            priority,
            target,
            params,
        } => {
            if params.len() > MAX_RDATA {
                return Err("HTTPS params too long".into());
            }
            out.extend_from_slice(&priority.to_be_bytes());
            put_name(out, target);
            out.extend_from_slice(&(params.len() as u16).to_be_bytes());
            out.extend_from_slice(params);
        }
        RecordData::Site { manifest } => out.extend_from_slice(manifest),
    }
    Ok(())
}

fn decode_record(r: &mut Reader<'_>) -> Result<Record, DecodeError> {
    let owner = r.name("record owner")?;
    let ttl = r.u32("ttl")?;
    let rtype = r.u16("record type")?;
    let len = usize::from(r.u16("rdata length")?);
    if len > MAX_RDATA {
        return Err(DecodeError::Bound {
            what: "rdata length",
            len,
            max: MAX_RDATA,
        });
    }
    let mut d = Reader {
        buf: r.take(len, "rdata")?,
    };
    let data = match rtype {
        1 => RecordData::A(Ipv4Addr::from(d.array::<4>("A")?)),
        28 => RecordData::Aaaa(Ipv6Addr::from(d.array::<16>("AAAA")?)),
        5 => RecordData::Cname(d.name("CNAME target")?),
        16 => {
            let n = d.u8("TXT count")?;
            let mut parts = Vec::with_capacity(usize::from(n).min(d.buf.len()));
            for _ in 0..n {
                let l = usize::from(d.u8("TXT length")?);
                parts.push(d.utf8(l, "TXT")?);
            }
            RecordData::Txt(parts)
        }
        15 => RecordData::Mx {
            preference: d.u16("MX preference")?,
            exchange: d.name("MX exchange")?,
        },
        257 => {
            let flags = d.u8("CAA flags")?;
            let tl = usize::from(d.u8("CAA tag length")?);
            let tag = d.utf8(tl, "CAA tag")?;
            let vl = usize::from(d.u16("CAA value length")?);
            let value = d.utf8(vl, "CAA value")?;
            RecordData::Caa { flags, tag, value }
        }
        33 => RecordData::Srv {
            priority: d.u16("SRV priority")?,
            weight: d.u16("SRV weight")?,
            port: d.u16("SRV port")?,
            target: d.name("SRV target")?,
        },
        65 => {
            let priority = d.u16("HTTPS priority")?;
            let target = d.name("HTTPS target")?;
            let pl = usize::from(d.u16("HTTPS params length")?);
            let params = d.take(pl, "HTTPS params")?.to_vec();
            RecordData::Https {
                priority,
                target,
                params,
            }
        }
        SITE_RTYPE => RecordData::Site {
            manifest: d.array("site manifest")?,
        },
        other => return Err(DecodeError::UnknownType(other)),
    };
    if !d.buf.is_empty() {
        return Err(DecodeError::Rdata {
            rtype: data.type_name(),
            reason: "trailing bytes in record data",
        });
    }
    Ok(Record { owner, ttl, data })
}

/// A bounds-checked cursor: every read checks the remaining length first.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                what,
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    fn utf8(&mut self, n: usize, what: &'static str) -> Result<String, DecodeError> {
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Rdata {
                rtype: what,
                reason: "not UTF-8",
            })
    }
    fn name(&mut self, what: &'static str) -> Result<Name, DecodeError> {
        let len = usize::from(self.u8(what)?);
        if len > MAX_NAME_LEN {
            return Err(DecodeError::Bound {
                what,
                len,
                max: MAX_NAME_LEN,
            });
        }
        let bytes = self.take(len, what)?;
        let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::Name {
            what,
            reason: "not ASCII".into(),
        })?;
        let name = Name::parse(s).map_err(|e| DecodeError::Name {
            what,
            reason: e.to_string(),
        })?;
        if name.as_str() != s {
            return Err(DecodeError::NonCanonical);
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn zone() -> Zone {
        let name: Name = "blog.proxima".parse().unwrap();
        Zone {
            name: name.clone(),
            sequence: 3,
            timestamp: 1_700_000_000,
            records: vec![
                Record {
                    owner: name.clone(),
                    ttl: 300,
                    data: RecordData::A("192.0.2.7".parse().unwrap()),
                },
                Record {
                    owner: "www.blog.proxima".parse().unwrap(),
                    ttl: 60,
                    data: RecordData::Cname(name.clone()),
                },
                Record {
                    owner: name,
                    ttl: 60,
                    data: RecordData::Site { manifest: [9; 32] },
                },
            ],
        }
    }

    #[test]
    fn sign_encode_decode_verify() {
        let sz = SignedZone::sign(zone(), &key()).unwrap();
        sz.verify().unwrap();
        let bytes = sz.encode();
        assert_eq!(bytes[0], ZONE_VERSION);
        let back = SignedZone::decode(&bytes).unwrap();
        assert_eq!(back, sz);
        back.verify().unwrap();
        assert_eq!(back.zone.site(), Some([9; 32]));
    }

    #[test]
    fn owner_outside_zone_is_refused() {
        let mut z = zone();
        z.records[0].owner = "other.proxima".parse().unwrap();
        assert!(matches!(
            SignedZone::sign(z, &key()),
            Err(ZoneError::OwnerOutsideZone { .. })
        ));
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        let sz = SignedZone::sign(zone(), &key()).unwrap();
        let mut bytes = sz.encode();
        // Patch the record count to 1024 with no records behind it.
        let count_at = 1 + 32 + 64 + 1 + "blog.proxima".len() + 16;
        bytes[count_at..count_at + 2].copy_from_slice(&1024u16.to_be_bytes());
        assert!(SignedZone::decode(&bytes).is_err());
        assert!(SignedZone::decode(&[]).is_err());
        assert!(SignedZone::decode(&[1]).is_err());
        assert!(matches!(
            SignedZone::decode(&[2; 200]),
            Err(DecodeError::Version(2))
        ));
    }
}
