//! The HTTP gateway: sites and raw blobs to browsers, on pingora's HTTP/1 server sessions.
//!
//! `Host` (port stripped) -> [`SiteResolver`] -> manifest hash -> manifest (a blob, decoded and
//! cached) -> path resolution -> blob -> verified bytes, streamed as they are read.
//!
//! We drive pingora's [`HttpServerApp`] from our own accept loop on a listener the caller bound
//! (port 0 works and the caller knows the real address), instead of pingora's `Server`: `Server`
//! owns process-wide signal handling, its own runtimes and exits the process, which cannot work
//! for many nodes in one test process. Our loop runs on the node's runtime, so killing a node
//! (dropping its runtime) closes the listener and every connection at once, and a graceful
//! shutdown stops accepting on the node's cancellation token. Bodies are written chunk by chunk
//! as they are verified, never buffered whole (pingora's `ServeHttp` would buffer).

mod conn;
pub mod request;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::Hash;
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest, Resolution};
use crate::store::{Blob, BlobSource};
use request::{PathError, RangeRequest, if_none_match, normalize_host, parse_path, parse_range};

/// `Cache-Control` of content-addressed paths: the bytes can never change.
pub const IMMUTABLE: &str = "public, max-age=29030400, immutable";
/// Bytes read, verified and written per step when streaming a large blob.
const STREAM_CHUNK: u64 = 1 << 20;

/// Maps a site host to the hash of its current manifest. Implemented by the node over the
/// naming service's verified zones; the gateway knows nothing of names.
pub trait SiteResolver: Send + Sync + 'static {
    /// The manifest hash for `host` (lowercase, no port, no trailing dot), if a site is there.
    fn manifest_for(&self, host: &str) -> Option<Hash>;
}

/// Limits and caching of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Requests processed at once; more get 429.
    pub max_concurrent: usize,
    /// Open connections; more are closed on accept.
    pub max_connections: usize,
    /// Longest a request may take from its first header byte to its last body byte.
    pub request_timeout: Duration,
    /// Largest request header block; larger gets 431.
    pub max_header_bytes: usize,
    /// `max-age` of named (mutable) paths.
    pub named_max_age: u32,
    /// Answers [`IDENTITY_PATH`] challenges with the node key, so that other nodes can check
    /// that this address answers for this node before they send visitors here.
    pub identity: Option<IdentitySigner>,
}

/// Path of the identity challenge: `GET /.well-known/proxima/identity?challenge=<64 hex>`
/// answers the hex Ed25519 signature of [`IDENTITY_DOMAIN`] followed by the 32 challenge bytes.
pub const IDENTITY_PATH: &str = "/.well-known/proxima/identity";
/// What an identity signature covers before the challenge.
pub const IDENTITY_DOMAIN: &[u8] = b"proxima/http-identity/1\0";

/// A function that signs bytes with the node key.
pub type SignFn = dyn Fn(&[u8]) -> [u8; 64] + Send + Sync;

/// Signs identity challenges with the node key.
#[derive(Clone)]
pub struct IdentitySigner(pub Arc<SignFn>);

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySigner")
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 1024,
            max_connections: 16384,
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            named_max_age: 60,
            identity: None,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    code: u16,
}

#[derive(Default, Clone)]
struct Metrics {
    /// Responses by status code.
    responses: Family<StatusLabel, Counter>,
    /// Body bytes written.
    body_bytes: Counter,
    /// Requests refused with 429.
    busy: Counter,
    /// Connections open.
    connections: Gauge,
    /// Responses cut short because a blob failed verification mid-stream.
    verify_failures: Counter,
}

/// The gateway application.
pub struct Gateway {
    config: GatewayConfig,
    resolver: Arc<dyn SiteResolver>,
    source: Arc<dyn BlobSource>,
    manifests: moka::sync::Cache<Hash, Arc<Manifest>>,
    permits: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    metrics: Metrics,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish()
    }
}

/// An error while answering: it decides whether the connection may be reused.
#[derive(Debug)]
struct Abort;

impl Gateway {
    /// A gateway over `resolver` and `source`.
    pub fn new(
        config: GatewayConfig,
        resolver: Arc<dyn SiteResolver>,
        source: Arc<dyn BlobSource>,
    ) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            config,
            resolver,
            source,
            manifests: moka::sync::Cache::builder()
                .max_capacity(64 << 20)
                .weigher(|_, m: &Arc<Manifest>| {
                    u32::try_from(m.entries.len() * 128 + 256).unwrap_or(u32::MAX)
                })
                .build(),
            metrics: Metrics::default(),
        })
    }

    /// Registers the gateway's metrics (give it a prefixed sub-registry).
    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.metrics;
        registry.register(
            "responses",
            "HTTP responses by status code",
            m.responses.clone(),
        );
        registry.register(
            "body_bytes",
            "Response body bytes written",
            m.body_bytes.clone(),
        );
        registry.register(
            "busy",
            "Requests refused with 429 at the concurrency limit",
            m.busy.clone(),
        );
        registry.register("connections", "Open connections", m.connections.clone());
        registry.register(
            "verify_failures",
            "Responses cut short because a blob failed verification",
            m.verify_failures.clone(),
        );
    }

    /// Serves connections from `listener` until `shutdown` is cancelled (then stops accepting
    /// and closes the listener; connections in flight finish their current request).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let (watch_tx, watch_rx) = tokio::sync::watch::channel(false);
        let addr = listener.local_addr().ok();
        tracing::info!(?addr, "gateway serving");
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(v) => v,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "connection limit reached; closing");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let app = self.clone();
            let watch = watch_rx.clone();
            tokio::spawn(async move {
                app.metrics.connections.inc();
                let stream: pingora_core::protocols::Stream =
                    Box::new(conn::BufferedConn::new(tcp));
                let _ = app.process_new(stream, &watch).await;
                app.metrics.connections.dec();
                drop(permit);
            });
        }
        let _ = watch_tx.send(true);
        drop(listener);
        tracing::info!(?addr, "gateway stopped");
    }

    fn count(&self, code: u16) {
        self.metrics
            .responses
            .get_or_create(&StatusLabel { code })
            .inc();
    }

    async fn respond_text(
        &self,
        session: &mut ServerSession,
        code: u16,
        content_type: &str,
        body: Bytes,
        extra: &[(&'static str, String)],
    ) -> Result<(), Abort> {
        let mut h = ResponseHeader::build(code, Some(4 + extra.len())).map_err(|_| Abort)?;
        let _ = h.insert_header("Content-Type", content_type);
        let _ = h.insert_header("Content-Length", body.len());
        let _ = h.insert_header("Cache-Control", "no-store");
        for (k, v) in extra {
            let _ = h.insert_header(*k, v.as_str());
        }
        self.count(code);
        session
            .write_response_header(Box::new(h))
            .await
            .map_err(|_| Abort)?;
        if !body.is_empty() {
            self.metrics.body_bytes.inc_by(body.len() as u64);
            session
                .write_response_body(body, true)
                .await
                .map_err(|_| Abort)?;
        }
        Ok(())
    }

    async fn error_page(
        &self,
        session: &mut ServerSession,
        code: u16,
        message: &str,
    ) -> Result<(), Abort> {
        let reason = http::StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let body = format!(
            "<!doctype html><title>{code} {reason}</title><h1>{code} {reason}</h1><p>{}</p>\n",
            html_escape(message)
        );
        self.respond_text(
            session,
            code,
            "text/html; charset=utf-8",
            Bytes::from(body),
            &[],
        )
        .await
    }

    /// Answers one request whose header has been read.
    async fn handle(&self, session: &mut ServerSession) -> Result<(), Abort> {
        let method = session.req_header().method.clone();
        if method != http::Method::GET && method != http::Method::HEAD {
            let body = Bytes::from_static(b"only GET and HEAD\n");
            return self
                .respond_text(
                    session,
                    405,
                    "text/plain",
                    body,
                    &[("Allow", "GET, HEAD".into())],
                )
                .await;
        }
        let header_bytes = session
            .as_http1()
            .map(|s| s.get_headers_raw_bytes().len())
            .unwrap_or(0);
        if header_bytes > self.config.max_header_bytes {
            return self
                .error_page(session, 431, "The request header is too large.")
                .await;
        }
        let raw_path = session.req_header().uri.path().to_owned();
        if raw_path == IDENTITY_PATH {
            let query = session.req_header().uri.query().unwrap_or("").to_owned();
            let challenge = query
                .strip_prefix("challenge=")
                .filter(|c| c.len() == 64)
                .and_then(|c| {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(c, &mut out).ok().map(|()| out)
                });
            return match (&self.config.identity, challenge) {
                (Some(signer), Some(c)) => {
                    let sig = (signer.0)(&[IDENTITY_DOMAIN, &c].concat());
                    let body = Bytes::from(hex::encode(sig));
                    self.respond_text(
                        session,
                        200,
                        "text/plain",
                        body,
                        &[("Cache-Control", "no-store".into())],
                    )
                    .await
                }
                (None, _) => self.error_page(session, 404, "No identity here.").await,
                (_, None) => {
                    self.error_page(session, 400, "Expected ?challenge= and 64 hex digits.")
                        .await
                }
            };
        }
        if let Some(rest) = raw_path.strip_prefix("/blob/") {
            let Ok(hash) = rest.trim_end_matches('/').parse::<Hash>() else {
                return self
                    .error_page(
                        session,
                        400,
                        "Expected /blob/ followed by a 64-digit BLAKE3 hash.",
                    )
                    .await;
            };
            let Some(blob) = self.open(hash, session).await? else {
                return self
                    .error_page(session, 404, "This node does not hold that blob.")
                    .await;
            };
            let ct = "application/octet-stream";
            return self.serve_blob(session, blob, ct, 200, IMMUTABLE).await;
        }
        let host = session
            .get_header(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| session.req_header().uri.host().map(str::to_owned));
        let Some(host) = host.as_deref().and_then(normalize_host) else {
            return self
                .error_page(session, 400, "A Host header naming a site is required.")
                .await;
        };
        let path = match parse_path(&raw_path) {
            Ok(p) => p,
            Err(e @ (PathError::TooLong | PathError::NotAbsolute)) => {
                return self.error_page(session, 400, &e.to_string()).await;
            }
            Err(e) => return self.error_page(session, 400, &e.to_string()).await,
        };
        // Browsers resolve every `*.localhost` name to loopback themselves (RFC 6761), so
        // `http://blog.proxima.localhost:PORT/` opens a site through a local node before any
        // resolver is set up (the dashboard links sites this way, as IPFS gateways do).
        let manifest_hash = self.resolver.manifest_for(&host).or_else(|| {
            host.strip_suffix(".localhost")
                .and_then(|site| self.resolver.manifest_for(site))
        });
        let Some(manifest_hash) = manifest_hash else {
            let msg = format!(
                "No site is published at {host} on this node. Sites are served by name through \
                 the Host header (e.g. Host: blog.proxima) once `proxima publish DIR --name NAME` \
                 has set the name's site record; raw content is at /blob/HASH."
            );
            return self.error_page(session, 404, &msg).await;
        };
        let Some(manifest) = self.manifest(manifest_hash, session).await? else {
            return self
                .error_page(
                    session,
                    502,
                    "The site's manifest is not available on this node.",
                )
                .await;
        };
        let cache = format!("public, max-age={}", self.config.named_max_age);
        match manifest.resolve(&path) {
            Resolution::File {
                entry,
                status,
                path: _,
            } => {
                let Some(blob) = self.open(entry.hash, session).await? else {
                    return self
                        .error_page(
                            session,
                            502,
                            "A file of this site is not available on this node.",
                        )
                        .await;
                };
                if blob.size() != entry.size {
                    return self
                        .error_page(session, 502, "A file of this site has the wrong size.")
                        .await;
                }
                self.serve_blob(session, blob, &entry.content_type, status, &cache)
                    .await
            }
            Resolution::Redirect { location, status } => {
                let body = Bytes::from(format!("Redirecting to {location}\n"));
                self.respond_text(
                    session,
                    status,
                    "text/plain; charset=utf-8",
                    body,
                    &[("Location", location), ("Cache-Control", cache)],
                )
                .await
            }
            Resolution::Status(410) => self.error_page(session, 410, "This page is gone.").await,
            Resolution::Status(code) => {
                self.error_page(session, code, "This site has no such page.")
                    .await
            }
        }
    }

    /// Opens a blob; a store failure becomes a 5xx answer (`Ok(None)` means absent).
    async fn open(&self, hash: Hash, session: &mut ServerSession) -> Result<Option<Blob>, Abort> {
        match self.source.blob(hash).await {
            Ok(b) => Ok(b),
            Err(crate::store::StoreError::Corrupt(_)) => {
                self.metrics.verify_failures.inc();
                Ok(None)
            }
            Err(e) => {
                tracing::error!(%hash, error = %e, "blob store failed");
                self.error_page(session, 500, "The blob store failed.")
                    .await?;
                Err(Abort)
            }
        }
    }

    async fn manifest(
        &self,
        hash: Hash,
        session: &mut ServerSession,
    ) -> Result<Option<Arc<Manifest>>, Abort> {
        if let Some(m) = self.manifests.get(&hash) {
            return Ok(Some(m));
        }
        let Some(blob) = self.open(hash, session).await? else {
            return Ok(None);
        };
        if blob.size() > MAX_MANIFEST_BYTES as u64 {
            return Ok(None);
        }
        let bytes = read(&blob, 0, blob.size()).await;
        let Ok(bytes) = bytes else {
            return Ok(None);
        };
        match Manifest::decode(&bytes) {
            Ok(m) => {
                let m = Arc::new(m);
                self.manifests.insert(hash, m.clone());
                Ok(Some(m))
            }
            Err(e) => {
                tracing::warn!(%hash, error = %e, "site record points at a blob that is not a manifest");
                Ok(None)
            }
        }
    }

    async fn serve_blob(
        &self,
        session: &mut ServerSession,
        blob: Blob,
        content_type: &str,
        status: u16,
        cache_control: &str,
    ) -> Result<(), Abort> {
        let size = blob.size();
        let etag = format!("\"{}\"", blob.hash());
        let header = |code: u16, hint: usize| -> Result<ResponseHeader, Abort> {
            let mut h = ResponseHeader::build(code, Some(hint + 5)).map_err(|_| Abort)?;
            let _ = h.insert_header("ETag", etag.as_str());
            let _ = h.insert_header("Cache-Control", cache_control);
            let _ = h.insert_header("Accept-Ranges", "bytes");
            let _ = h.insert_header("X-Content-Type-Options", "nosniff");
            Ok(h)
        };
        if status == 200
            && let Some(inm) = session
                .get_header(http::header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
            && if_none_match(inm, &etag)
        {
            let h = header(304, 0)?;
            self.count(304);
            return session
                .write_response_header(Box::new(h))
                .await
                .map_err(|_| Abort);
        }
        let mut range = if status == 200 {
            parse_range(
                session
                    .get_header(http::header::RANGE)
                    .and_then(|v| v.to_str().ok()),
                size,
            )
        } else {
            RangeRequest::Full
        };
        // If-Range: only honour the range when the validator still matches.
        if let Some(ir) = session
            .get_header(http::header::IF_RANGE)
            .and_then(|v| v.to_str().ok())
            && ir.trim() != etag
        {
            range = RangeRequest::Full;
        }
        let head = session.req_header().method == http::Method::HEAD;
        match range {
            RangeRequest::Full => {
                let mut h = header(status, 2)?;
                let _ = h.insert_header("Content-Type", content_type);
                let _ = h.insert_header("Content-Length", size);
                self.count(status);
                session
                    .write_response_header(Box::new(h))
                    .await
                    .map_err(|_| Abort)?;
                if head {
                    return Ok(());
                }
                self.stream(session, &blob, 0, size).await
            }
            RangeRequest::Unsatisfiable => {
                let mut h = header(416, 2)?;
                let _ = h.insert_header("Content-Range", format!("bytes */{size}"));
                let _ = h.insert_header("Content-Length", 0);
                self.count(416);
                session
                    .write_response_header(Box::new(h))
                    .await
                    .map_err(|_| Abort)
            }
            RangeRequest::Ranges(ranges) if ranges.len() == 1 => {
                let (s, e) = ranges[0];
                let mut h = header(206, 3)?;
                let _ = h.insert_header("Content-Type", content_type);
                let _ = h.insert_header("Content-Range", format!("bytes {s}-{e}/{size}"));
                let _ = h.insert_header("Content-Length", e - s + 1);
                self.count(206);
                session
                    .write_response_header(Box::new(h))
                    .await
                    .map_err(|_| Abort)?;
                if head {
                    return Ok(());
                }
                self.stream(session, &blob, s, e - s + 1).await
            }
            RangeRequest::Ranges(ranges) => {
                // multipart/byteranges (RFC 9110 section 14.6), length computed up front.
                let boundary = format!("PROXIMA-{}", &blob.hash().to_hex()[..16]);
                let part_head = |s: u64, e: u64| {
                    format!(
                        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {s}-{e}/{size}\r\n\r\n"
                    )
                };
                let tail = format!("\r\n--{boundary}--\r\n");
                let total: u64 = ranges
                    .iter()
                    .map(|&(s, e)| part_head(s, e).len() as u64 + (e - s + 1))
                    .sum::<u64>()
                    + tail.len() as u64;
                let mut h = header(206, 2)?;
                let _ = h.insert_header(
                    "Content-Type",
                    format!("multipart/byteranges; boundary={boundary}"),
                );
                let _ = h.insert_header("Content-Length", total);
                self.count(206);
                session
                    .write_response_header(Box::new(h))
                    .await
                    .map_err(|_| Abort)?;
                if head {
                    return Ok(());
                }
                for (s, e) in ranges {
                    self.write(session, Bytes::from(part_head(s, e))).await?;
                    self.stream(session, &blob, s, e - s + 1).await?;
                }
                self.write(session, Bytes::from(tail)).await
            }
        }
    }

    async fn write(&self, session: &mut ServerSession, data: Bytes) -> Result<(), Abort> {
        self.metrics.body_bytes.inc_by(data.len() as u64);
        session
            .write_response_body(data, false)
            .await
            .map_err(|_| Abort)
    }

    /// Writes `len` bytes from `offset`, verified. Large blobs are read and verified on a
    /// blocking thread one chunk ahead of the socket, through a channel of two chunks.
    async fn stream(
        &self,
        session: &mut ServerSession,
        blob: &Blob,
        offset: u64,
        len: u64,
    ) -> Result<(), Abort> {
        if let Blob::Memory { .. } = blob {
            let data = blob.read_verified(offset, len).map_err(|_| Abort)?;
            return self.write(session, data).await;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, ()>>(2);
        let reader = blob.clone();
        let producer = tokio::task::spawn_blocking(move || {
            let end = offset + len;
            let mut at = offset;
            while at < end {
                let n = (end - at).min(STREAM_CHUNK);
                // A blob still arriving hands out what is verified so far (at least one
                // group), so the first bytes leave before the first MiB has arrived.
                let chunk = match reader.read_some(at, n) {
                    Ok(c) if !c.is_empty() => Ok(c),
                    _ => Err(()),
                };
                let Ok(got) = chunk.as_ref().map(|c| c.len() as u64) else {
                    let _ = tx.blocking_send(chunk);
                    return;
                };
                if tx.blocking_send(chunk).is_err() {
                    return;
                }
                at += got;
            }
        });
        let mut sent = 0;
        while let Some(chunk) = rx.recv().await {
            let Ok(chunk) = chunk else {
                self.metrics.verify_failures.inc();
                tracing::error!(hash = %blob.hash(), "blob failed verification mid-stream; closing the connection");
                return Err(Abort);
            };
            sent += chunk.len() as u64;
            self.write(session, chunk).await?;
        }
        let _ = producer.await;
        if sent != len {
            return Err(Abort);
        }
        Ok(())
    }
}

async fn read(blob: &Blob, offset: u64, len: u64) -> Result<Bytes, ()> {
    match blob {
        Blob::Memory { .. } => blob.read_verified(offset, len).map_err(|_| ()),
        Blob::File(_) | Blob::Arriving(_) => {
            let b = blob.clone();
            tokio::task::spawn_blocking(move || b.read_verified(offset, len))
                .await
                .map_err(|_| ())?
                .map_err(|_| ())
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[async_trait]
impl HttpServerApp for Gateway {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        session.set_read_timeout(Some(self.config.request_timeout));
        session.set_write_timeout(Some(self.config.request_timeout));
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        match tokio::time::timeout_at(deadline, session.read_request()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return None,
            Ok(Err(e)) => {
                // Malformed or oversized header: answer once and close.
                let code = if e.to_string().contains("larger than")
                    || e.to_string().contains("TooManyHeaders")
                {
                    431
                } else if matches!(e.etype(), pingora_core::ErrorType::ReadTimedout) {
                    408
                } else {
                    400
                };
                let _ = self.error_page(&mut session, code, "Bad request.").await;
                let _ = session.finish().await;
                return None;
            }
            Err(_) => return None,
        }
        if *shutdown.borrow() {
            session.set_keepalive(None);
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.busy.inc();
            let ok = self
                .respond_text(
                    &mut session,
                    429,
                    "text/plain",
                    Bytes::from_static(b"busy, retry shortly\n"),
                    &[("Retry-After", "1".into())],
                )
                .await;
            return finish(session, ok.is_ok()).await;
        };
        let handled = tokio::time::timeout_at(deadline, self.handle(&mut session)).await;
        drop(permit);
        let ok = match handled {
            Ok(r) => r.is_ok(),
            Err(_) => {
                if session.response_written().is_none() {
                    let _ = self
                        .error_page(&mut session, 503, "The request timed out.")
                        .await;
                }
                false
            }
        };
        finish(session, ok).await
    }
}

async fn finish(session: ServerSession, reusable: bool) -> Option<ReusedHttpStream> {
    if !reusable {
        return None;
    }
    let settings = HttpPersistentSettings::for_session(&session);
    match session.finish().await {
        Ok(Some(s)) => Some(ReusedHttpStream::from_reusable_stream(s, settings)),
        _ => None,
    }
}

/// Binds the gateway's listener (port 0 picks one; read the real address from it).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests;
