//! Client side of the workloads: a DNS A query over UDP (hand-built, bounded parser), a page
//! fetch over HTTP with time to first byte, and content verification against the published
//! files' BLAKE3 hashes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::sites::Site;

/// A DNS answer.
#[derive(Debug, Clone)]
pub(crate) struct DnsAnswer {
    /// Query to reply.
    pub elapsed: Duration,
    /// RCODE.
    pub rcode: u8,
    /// A records, in answer order.
    pub addrs: Vec<IpAddr>,
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len()).unwrap_or(63).min(63));
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, A, IN
    q
}

/// Skips a (possibly compressed) name at `at`; returns the offset after it.
fn skip_name(p: &[u8], mut at: usize) -> Result<usize> {
    for _ in 0..128 {
        let len = *p.get(at).context("truncated name")?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
    bail!("name too long")
}

fn u16_at(p: &[u8], at: usize) -> Result<u16> {
    let b = p.get(at..at + 2).context("truncated")?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// Parses the A records of a response (bounded by the packet; nothing is allocated from
/// lengths the packet claims).
pub(crate) fn parse_a(p: &[u8], id: u16) -> Result<(u8, Vec<IpAddr>)> {
    if p.len() < 12 || u16_at(p, 0)? != id {
        bail!("not our response");
    }
    let rcode = p[3] & 0x0f;
    let (qd, an) = (u16_at(p, 4)?, u16_at(p, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(p, at)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        at = skip_name(p, at)?;
        let (rtype, rdlen) = (u16_at(p, at)?, usize::from(u16_at(p, at + 8)?));
        let rdata = p.get(at + 10..at + 10 + rdlen).context("truncated rdata")?;
        if rtype == 1 && rdlen == 4 {
            addrs.push(IpAddr::V4(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            )));
        }
        at += 10 + rdlen;
    }
    Ok((rcode, addrs))
}

/// Asks `server` for `name`'s A records over UDP.
pub(crate) async fn resolve(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<DnsAnswer> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let id: u16 = rand::random();
    let started = Instant::now();
    sock.send_to(&query(id, name), server).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (len, from) = tokio::time::timeout(left, sock.recv_from(&mut buf))
            .await
            .with_context(|| format!("no DNS answer from {server} for {name}"))??;
        if from != server {
            continue;
        }
        if let Ok((rcode, addrs)) = parse_a(&buf[..len], id) {
            return Ok(DnsAnswer {
                elapsed: started.elapsed(),
                rcode,
                addrs,
            });
        }
    }
}

/// One page visit through one node.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageVisit {
    /// Request sent to the first byte of the index page's response (measured).
    pub ttfb: Duration,
    /// Until every file of the page was received and checked (measured).
    pub full: Duration,
    /// Files whose bytes did not match the published hash (must never happen).
    pub unverified: usize,
    /// Bytes received.
    pub bytes: u64,
}

/// Fetches `site`'s index page and then its other files in parallel from the gateway at
/// `http`, with a new connection (as a browser's first visit to that address), and checks every
/// body against the published hash. A non-200 status or a transport error fails the visit; a
/// body that does not match its hash counts in `unverified`.
pub(crate) async fn visit(http: SocketAddr, site: &Site, timeout: Duration) -> Result<PageVisit> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(8)
        .build()?;
    let url = |path: &str| format!("http://{http}/{}", path.trim_start_matches('/'));
    let started = Instant::now();
    let resp = client
        .get(url("/"))
        .header(reqwest::header::HOST, &site.name)
        .send()
        .await
        .with_context(|| format!("GET {} via {http}", site.name))?;
    let ttfb = started.elapsed();
    if resp.status() != reqwest::StatusCode::OK {
        bail!("GET {}/ via {http}: {}", site.name, resp.status());
    }
    let body = resp.bytes().await?;
    let mut out = PageVisit {
        ttfb,
        bytes: body.len() as u64,
        ..PageVisit::default()
    };
    if !site.matches("index.html", &body) {
        out.unverified += 1;
    }
    let fetches = site.assets().map(|path| {
        let client = client.clone();
        let u = url(path);
        async move {
            let r = client
                .get(&u)
                .header(reqwest::header::HOST, &site.name)
                .send()
                .await
                .with_context(|| format!("GET {u}"))?;
            if r.status() != reqwest::StatusCode::OK {
                bail!("GET {}/{path} via {http}: {}", site.name, r.status());
            }
            Ok::<_, anyhow::Error>((path, r.bytes().await?))
        }
    });
    for r in futures::future::join_all(fetches).await {
        let (path, body) = r?;
        out.bytes += body.len() as u64;
        if !site.matches(path, &body) {
            out.unverified += 1;
        }
    }
    out.full = started.elapsed();
    Ok(out)
}

/// Milliseconds of a duration.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A `/metrics` counter summed over the lines that start with `name` and contain `label`.
pub(crate) fn metric(admin: &str, name: &str, label: &str) -> f64 {
    let text = proxima::harness::http_get(&format!("{admin}/metrics")).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
