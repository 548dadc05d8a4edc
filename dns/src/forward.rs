//! The forwarding resolver: every name outside the ledger TLDs goes, as asked, to the
//! configured upstreams, and the answer comes back as the upstream gave it (rcode, all
//! sections), with its TTLs counting down while it sits in a cache bounded in entries.
//!
//! A lean forwarder on `hickory-proto` rather than `hickory-resolver`: a stub resolver's
//! `lookup()` returns records, not messages, so negative answers (NXDOMAIN with the SOA that
//! tells the client how long to cache it), the AD bit and the authority section would be
//! lost or re-synthesized. Each attempt uses a fresh socket on a random port, checks the id and
//! the question, and retries over TCP when the upstream truncates.
//!
//! The cache keeps each answer in wire form, encoded once as the response to the lowercased
//! question (id 0, RA set, an OPT record last), with the offsets of its TTL fields. A hit is a
//! copy and byte patches ([`Forwarder::serve_cached`]): id, RD/CD/AD flags, the question's case
//! as the client sent it, every TTL lowered by the entry's age, and the OPT record dropped for a
//! client that sent none; no parse and no encode. This is the authoritative ready answers' idea
//! ([`ready`](crate::ready)) but not their table: those are served before the allowed-clients
//! check and to anyone, never age their TTLs, are dropped by zone anchor, and are bounded by
//! clearing everything at once; forwarded answers must stay behind the allowed-clients check,
//! count down, and live in a cache bounded in entries that expires each one at its own TTL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, RData};
use hickory_proto::serialize::binary::BinEncodable;
use moka::sync::Cache;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::wire::{self, HEADER_LEN, MAX_KEY};

/// The longest any answer is cached, whatever its TTL.
const MAX_CACHE_TTL: u32 = 86_400;
/// EDNS payload size we advertise upstream and to clients (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// Why an upstream attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// No upstream is configured (and the system has none but this node).
    #[error("no upstream resolver configured")]
    NoUpstream,
    /// Every upstream failed or the deadline passed.
    #[error("every upstream failed; last: {0}")]
    AllFailed(String),
}

/// The cache key: the lowercased encoded name, type, class and the DO bit
/// ([`wire::key_of`]); EDNS presence is not part of it (see [`Cached`]).
type Key = Box<[u8]>;

/// An upstream answer as a ready response.
#[derive(Debug)]
struct Cached {
    /// The response to the lowercased question: id 0, RA set, RD/CD/AD clear, OPT record last
    /// (payload [`EDNS_PAYLOAD`], DO as in the key).
    wire: Box<[u8]>,
    /// End of the question.
    question_end: usize,
    /// Start of the OPT record: a client without EDNS gets `wire[..opt_at]`.
    opt_at: usize,
    /// Offsets of every TTL field but OPT's.
    ttl_at: Box<[u16]>,
    /// The upstream's AD bit.
    ad: bool,
    stored: Instant,
    ttl: u32,
}

/// What a cached answer is patched with to become the answer to one query.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    /// The query's id.
    pub id: u16,
    /// The query's RD flag.
    pub rd: bool,
    /// The query's CD flag.
    pub cd: bool,
    /// Whether the client may get AD (it set AD or DO); AD is then the upstream's.
    pub ad: bool,
    /// Whether the query had an OPT record (the response then has one).
    pub edns: bool,
    /// The question name as the client encoded it (uncompressed; its case is kept).
    pub name: &'a [u8],
}

/// The forwarding cache key of a question given as its encoded name, type, class and DO bit.
pub fn cache_key(
    name: &[u8],
    qtype: u16,
    qclass: u16,
    dnssec_ok: bool,
    key: &mut [u8; MAX_KEY],
) -> usize {
    wire::key_of(name, qtype, qclass, u8::from(dnssec_ok), key)
}

/// The uncompressed encoding of `query`'s name, as written (case kept).
pub fn encoded_name(query: &Query) -> Option<Vec<u8>> {
    query.name().to_bytes().ok()
}

struct TtlExpiry;

impl moka::Expiry<Key, Arc<Cached>> for TtlExpiry {
    fn expire_after_create(&self, _: &Key, v: &Arc<Cached>, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(v.ttl.into()))
    }
    fn expire_after_update(
        &self,
        _: &Key,
        v: &Arc<Cached>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_secs(v.ttl.into()))
    }
}

/// Upstreams and the answer cache.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Cache<Key, Arc<Cached>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstreams", &self.upstreams)
            .field("timeout", &self.timeout)
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

fn key_for(query: &Query, dnssec_ok: bool) -> Option<Key> {
    let name = encoded_name(query)?;
    if name.len() > wire::MAX_NAME_LEN {
        return None;
    }
    let mut key = [0u8; MAX_KEY];
    let n = cache_key(
        &name,
        u16::from(query.query_type()),
        u16::from(query.query_class()),
        dnssec_ok,
        &mut key,
    );
    Some(key[..n].into())
}

impl Forwarder {
    /// A forwarder to `upstreams` (tried in order) with an overall `timeout` per query and a
    /// cache of at most `cache_entries` answers.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration, cache_entries: u64) -> Self {
        Self {
            upstreams,
            timeout,
            cache: Cache::builder()
                .max_capacity(cache_entries)
                .expire_after(TtlExpiry)
                .build(),
        }
    }

    /// The upstreams in use.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Writes the cached answer for `key` ([`cache_key`]) into `out`, patched for `hit` and
    /// its TTLs lowered by the time it has been cached; truncated (TC, question and OPT only)
    /// if longer than `limit`. Returns whether there was a fresh entry.
    pub fn serve_cached(&self, key: &[u8], hit: &Hit<'_>, limit: usize, out: &mut Vec<u8>) -> bool {
        let Some(c) = self.cache.get(key) else {
            return false;
        };
        let age = u32::try_from(c.stored.elapsed().as_secs()).unwrap_or(u32::MAX);
        if age >= c.ttl || hit.name.len() != c.question_end - HEADER_LEN - 4 {
            return false;
        }
        out.clear();
        let len = if hit.edns { c.wire.len() } else { c.opt_at };
        if len <= limit {
            out.extend_from_slice(&c.wire[..len]);
            wire::lower_ttls(out, &c.ttl_at, age);
            if !hit.edns {
                let ar = u16::from_be_bytes([out[10], out[11]]).saturating_sub(1);
                out[10..12].copy_from_slice(&ar.to_be_bytes());
            }
        } else {
            // What `Message::truncate` makes: header with TC, the question, the OPT record.
            out.extend_from_slice(&c.wire[..c.question_end]);
            out[2] |= 0x02;
            out[6..12].fill(0);
            if hit.edns {
                out.extend_from_slice(&c.wire[c.opt_at..]);
                out[11] = 1;
            }
        }
        out[0..2].copy_from_slice(&hit.id.to_be_bytes());
        out[2] = (out[2] & !0x01) | u8::from(hit.rd);
        out[3] = (out[3] & !0xB0)
            | 0x80
            | if hit.ad && c.ad { 0x20 } else { 0 }
            | if hit.cd { 0x10 } else { 0 };
        out[HEADER_LEN..HEADER_LEN + hit.name.len()].copy_from_slice(hit.name);
        true
    }

    /// Asks the upstreams, caches a cacheable answer, and returns it.
    pub async fn resolve(&self, query: &Query, dnssec_ok: bool) -> Result<Message, ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut last = String::from("deadline passed");
        for (i, upstream) in self.upstreams.iter().enumerate() {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            // Share what is left between the upstreams not yet tried.
            let left = u32::try_from(self.upstreams.len() - i).unwrap_or(1);
            let budget = (deadline - now) / left;
            match tokio::time::timeout(budget, exchange(*upstream, query, dnssec_ok)).await {
                Ok(Ok(resp)) if resp.metadata.response_code != ResponseCode::ServFail => {
                    self.store(query, dnssec_ok, &resp);
                    return Ok(resp);
                }
                Ok(Ok(_)) => last = format!("{upstream}: SERVFAIL"),
                Ok(Err(e)) => last = format!("{upstream}: {e}"),
                Err(_) => last = format!("{upstream}: timed out after {budget:?}"),
            }
            tracing::debug!(%upstream, error = %last, "upstream attempt failed");
        }
        Err(ForwardError::AllFailed(last))
    }

    pub(crate) fn store(&self, query: &Query, dnssec_ok: bool, resp: &Message) {
        self.store_at(query, dnssec_ok, resp, Instant::now());
    }

    /// [`Self::store`] as if the answer had arrived at `stored` (tests age entries with it).
    pub(crate) fn store_at(&self, query: &Query, dnssec_ok: bool, resp: &Message, stored: Instant) {
        let Some(ttl) = cache_ttl(resp) else {
            return;
        };
        match (
            key_for(query, dnssec_ok),
            ready_response(query, dnssec_ok, resp),
        ) {
            (Some(key), Some(mut cached)) => {
                cached.ttl = ttl;
                cached.stored = stored;
                self.cache.insert(key, Arc::new(cached));
            }
            _ => tracing::debug!(name = %query.name(), "answer not cacheable in wire form"),
        }
    }
}

/// `resp` encoded once as the response to the lowercased `query` (see [`Cached`]).
fn ready_response(query: &Query, dnssec_ok: bool, resp: &Message) -> Option<Cached> {
    let mut m = Message::response(0, OpCode::Query);
    m.metadata.recursion_available = true;
    m.metadata.response_code = resp.metadata.response_code;
    let mut q = query.clone();
    q.set_name(query.name().to_lowercase());
    m.add_query(q);
    m.answers = resp.answers.clone();
    m.authorities = resp.authorities.clone();
    m.additionals = resp.additionals.clone();
    let mut e = Edns::new();
    e.set_max_payload(EDNS_PAYLOAD);
    e.set_dnssec_ok(dnssec_ok);
    m.set_edns(e);
    let wire = m.to_vec().ok()?;
    let layout = wire::layout(&wire)?;
    Some(Cached {
        question_end: layout.question_end,
        opt_at: layout.opt_at?,
        ttl_at: layout.ttl_at.into(),
        ad: resp.metadata.authentic_data,
        wire: wire.into(),
        stored: Instant::now(),
        ttl: 0,
    })
}

/// How long an upstream answer may be cached: the lowest answer TTL for a positive answer, the
/// SOA's negative TTL (RFC 2308) for NXDOMAIN and NODATA; `None` for anything else.
fn cache_ttl(resp: &Message) -> Option<u32> {
    if resp.metadata.truncation {
        return None;
    }
    let ttl = match resp.metadata.response_code {
        ResponseCode::NoError if !resp.answers.is_empty() => {
            resp.answers.iter().map(|r| r.ttl).min()?
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            resp.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })?
        }
        _ => return None,
    };
    (ttl > 0).then_some(ttl.min(MAX_CACHE_TTL))
}

#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad response: {0}")]
    Bad(String),
}

/// One question to one upstream: UDP, then TCP if the answer was truncated.
async fn exchange(
    upstream: SocketAddr,
    query: &Query,
    dnssec_ok: bool,
) -> Result<Message, ExchangeError> {
    let mut req = Message::query();
    req.metadata.recursion_desired = true;
    req.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(dnssec_ok);
    req.set_edns(edns);
    let id = req.metadata.id;
    let wire = req
        .to_vec()
        .map_err(|e| ExchangeError::Bad(e.to_string()))?;

    let bind: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(upstream).await?;
    sock.send(&wire).await?;
    let mut buf = vec![0u8; 4096];
    let resp = loop {
        let n = sock.recv(&mut buf).await?;
        // Anything that is not the answer to this question is ignored (spoofing, stale).
        if let Ok(m) = Message::from_vec(&buf[..n])
            && matches_question(&m, id, query)
        {
            break m;
        }
    };
    if !resp.metadata.truncation {
        return Ok(resp);
    }
    let mut tcp = TcpStream::connect(upstream).await?;
    let len = u16::try_from(wire.len()).map_err(|_| ExchangeError::Bad("query too long".into()))?;
    let mut framed = Vec::with_capacity(wire.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&wire);
    tcp.write_all(&framed).await?;
    let len = usize::from(tcp.read_u16().await?);
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await?;
    let m = Message::from_vec(&body).map_err(|e| ExchangeError::Bad(e.to_string()))?;
    if !matches_question(&m, id, query) {
        return Err(ExchangeError::Bad("TCP answer to another question".into()));
    }
    Ok(m)
}

fn matches_question(m: &Message, id: u16, query: &Query) -> bool {
    m.metadata.id == id
        && m.metadata.message_type == MessageType::Response
        && m.queries.len() == 1
        && m.queries[0].query_type() == query.query_type()
        && m.queries[0].query_class() == query.query_class()
        && LowerName::new(m.queries[0].name()) == LowerName::new(query.name())
}
