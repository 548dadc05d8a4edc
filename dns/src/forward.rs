//! The forwarding resolver: every name outside the ledger TLDs goes, as asked, to the
//! configured upstreams, and the answer comes back as the upstream gave it (rcode, all
//! sections), with its TTLs counting down while it sits in a cache bounded in entries.
//!
//! A lean forwarder on `hickory-proto` rather than `hickory-resolver`: a stub resolver's
//! `lookup()` returns records, not messages, so negative answers (NXDOMAIN with the SOA that
//! tells the client how long to cache it), the AD bit and the authority section would be
//! lost or re-synthesized. Each attempt uses a fresh socket on a random port, checks the id and
//! the question, and retries over TCP when the upstream truncates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{LowerName, RData, RecordType};
use moka::sync::Cache;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    name: LowerName,
    qtype: RecordType,
    qclass: u16,
    dnssec_ok: bool,
}

#[derive(Debug)]
struct Cached {
    response: Message,
    stored: Instant,
    ttl: u32,
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

fn key_of(query: &Query, dnssec_ok: bool) -> Key {
    Key {
        name: LowerName::new(query.name()),
        qtype: query.query_type(),
        qclass: u16::from(query.query_class()),
        dnssec_ok,
    }
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

    /// A cached answer to `query`, its TTLs lowered by the time it has been cached.
    pub fn cached(&self, query: &Query, dnssec_ok: bool) -> Option<Message> {
        let hit = self.cache.get(&key_of(query, dnssec_ok))?;
        let age = u32::try_from(hit.stored.elapsed().as_secs()).unwrap_or(u32::MAX);
        if age >= hit.ttl {
            return None;
        }
        let mut msg = hit.response.clone();
        for r in msg
            .answers
            .iter_mut()
            .chain(msg.authorities.iter_mut())
            .chain(msg.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(msg)
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

    fn store(&self, query: &Query, dnssec_ok: bool, resp: &Message) {
        if let Some(ttl) = cache_ttl(resp) {
            let cached = Cached {
                response: resp.clone(),
                stored: Instant::now(),
                ttl,
            };
            self.cache
                .insert(key_of(query, dnssec_ok), Arc::new(cached));
        }
    }
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
