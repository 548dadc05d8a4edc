//! Verified blob transfer between nodes over the mesh's QUIC data plane ([`ALPN`]).
//!
//! A client opens a stream, sends one [`Request`] (a hash and chunk-group ranges) and reads the
//! response: a header with the blob's size, then the bao encoding of the requested groups
//! (parents and 16 KiB groups in pre-order) in bounded data frames ([`wire`]). The server
//! re-verifies everything it reads from disk before sending it ([`codec::Source`]); the client
//! verifies every parent and group as it arrives ([`codec::Decoder`]) and stops at the first
//! mismatch, so no altered byte is ever written or served. Asking for the size proof (the last
//! group first) makes the size trustworthy before the data starts.
//!
//! Reading the network and verifying overlap: while frame N is hashed on a blocking thread,
//! frame N+1 is read ([`exchange`]).

pub mod codec;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mesh::frame::{FrameDecoder, FrameError};
use mesh::{PeerId, RecvStream, SendStream};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

pub use codec::{DecodeError, Decoder, EncodeError, Progress, Source};
pub use wire::{Request, Status};

use crate::Hash;
use crate::store::Store;

/// The data-plane protocol name.
pub const ALPN: &[u8] = b"proxima/blob/1";
/// Longest a server waits for the request frame.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response frame a client accepts.
pub const MAX_FRAME: usize = wire::MAX_DATA_FRAME;

/// Where a server finds what it serves.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The blob `hash`, ready to stream, if held here.
    async fn source(&self, hash: Hash) -> Option<Source>;
}

#[async_trait::async_trait]
impl Provider for Store {
    async fn source(&self, hash: Hash) -> Option<Source> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let blob = store.get(hash).ok().flatten()?;
            Some(Source::from_blob(blob))
        })
        .await
        .ok()
        .flatten()
    }
}

/// Server metrics.
#[derive(Debug, Default, Clone)]
struct ServerMetrics {
    requests: Counter,
    bytes: Counter,
    busy: Counter,
    not_found: Counter,
    bad_requests: Counter,
    local_failures: Counter,
}

/// The serving side of [`ALPN`].
pub struct Server {
    provider: Arc<dyn Provider>,
    permits: Arc<Semaphore>,
    metrics: ServerMetrics,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// A server over `provider` streaming at most `max_concurrent` responses at once (more
    /// are answered [`Status::Busy`], and the client tries another provider).
    pub fn new(provider: Arc<dyn Provider>, max_concurrent: usize) -> Arc<Self> {
        Arc::new(Self {
            provider,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            metrics: ServerMetrics::default(),
        })
    }

    /// Registers the server's metrics (give it a prefixed sub-registry).
    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.metrics;
        registry.register("requests", "Transfer requests answered", m.requests.clone());
        registry.register("bytes", "Transfer frame bytes sent", m.bytes.clone());
        registry.register("busy", "Transfer requests refused as busy", m.busy.clone());
        registry.register(
            "not_found",
            "Transfer requests for blobs not held here",
            m.not_found.clone(),
        );
        registry.register(
            "bad_requests",
            "Malformed transfer requests",
            m.bad_requests.clone(),
        );
        registry.register(
            "local_failures",
            "Responses stopped because the local copy failed verification or I/O",
            m.local_failures.clone(),
        );
    }

    /// Serves [`ALPN`] on `plane`.
    pub fn serve_on(self: &Arc<Self>, plane: &mesh::DataPlane) -> Result<(), mesh::DataPlaneError> {
        let this = self.clone();
        plane.serve_streams(ALPN, move |peer, send, recv| {
            Box::pin(this.clone().handle(peer, send, recv))
        })
    }

    /// Answers one stream.
    pub async fn handle(self: Arc<Self>, peer: PeerId, mut send: SendStream, mut recv: RecvStream) {
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT,
            FrameDecoder::new(wire::MAX_REQUEST).read(&mut recv),
        )
        .await;
        let Ok(Ok(Some(payload))) = read else {
            self.metrics.bad_requests.inc();
            return;
        };
        self.metrics.requests.inc();
        let request = match Request::decode(&payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "malformed transfer request");
                self.metrics.bad_requests.inc();
                let _ = answer(&mut send, wire::header(Status::BadRequest, 0)).await;
                return;
            }
        };
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.busy.inc();
            let _ = answer(&mut send, wire::header(Status::Busy, 0)).await;
            return;
        };
        let Some(source) = self.provider.source(request.hash).await else {
            self.metrics.not_found.inc();
            let _ = answer(&mut send, wire::header(Status::NotFound, 0)).await;
            return;
        };
        let size = source.size();
        if mesh::frame::write(&mut send, &wire::header(Status::Ok, size))
            .await
            .is_err()
        {
            return;
        }
        let sections = codec::sections(size, &request);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, EncodeError>>(4);
        tokio::task::spawn_blocking(move || {
            let r = codec::encode(&source, &sections, |frame| {
                tx.blocking_send(Ok(frame)).is_ok()
            });
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(e));
            }
        });
        while let Some(item) = rx.recv().await {
            match item {
                Ok(frame) => {
                    self.metrics.bytes.inc_by(frame.len() as u64);
                    if send.write_chunk(frame).await.is_err() {
                        return;
                    }
                }
                Err(EncodeError::Closed) => return,
                Err(e) => {
                    self.metrics.local_failures.inc();
                    tracing::error!(hash = %request.hash, error = %e, "stopping a transfer: the local copy failed");
                    let _ = mesh::frame::write(&mut send, &wire::error(1, &e.to_string())).await;
                    break;
                }
            }
        }
        let _ = send.finish();
    }
}

async fn answer(send: &mut SendStream, payload: Bytes) -> Result<(), FrameError> {
    mesh::frame::write(send, &payload).await?;
    let _ = send.finish();
    Ok(())
}

/// Why one request to one provider failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The response failed verification or was malformed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A frame could not be read (bound exceeded, bad version, stream error).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// No stream could be opened.
    #[error(transparent)]
    Connect(#[from] mesh::DataPlaneError),
    /// The request could not be encoded.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// No frame arrived within the stall timeout.
    #[error("the provider stalled")]
    Timeout,
    /// The stream ended before the response was complete.
    #[error("the response ended early")]
    Truncated,
    /// Storing verified data failed locally (not the peer's fault).
    #[error("local: {0}")]
    Local(String),
}

impl TransferError {
    /// Whether the peer provably misbehaved (altered data, protocol violation).
    pub fn is_corrupt(&self) -> bool {
        match self {
            Self::Decode(e) => e.is_corrupt(),
            Self::Frame(FrameError::TooLarge { .. } | FrameError::Version(_)) => true,
            _ => false,
        }
    }

    /// Whether the failure is ours, not the peer's.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local(_))
    }
}

/// What the caller wants after a verified frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Stop this response (what remains is not needed any more).
    Stop,
}

/// Sends `request` on `(send, recv)` and verifies the response with `decoder`, handing each
/// frame's verified [`Progress`] to `sink` on a blocking thread, in order. Frame N+1 is read
/// while frame N is verified. Each frame must arrive within `stall`.
pub async fn exchange<S>(
    mut send: SendStream,
    mut recv: RecvStream,
    request: &Request,
    decoder: Decoder,
    stall: Duration,
    sink: S,
) -> Result<(), TransferError>
where
    S: FnMut(Progress) -> Result<Flow, TransferError> + Send + 'static,
{
    mesh::frame::write(&mut send, &request.encode()?).await?;
    let _ = send.finish();
    let frames = FrameDecoder::new(MAX_FRAME);
    type Verified<S> = (Decoder, S, Result<Flow, TransferError>);
    let mut idle: Option<(Decoder, S)> = Some((decoder, sink));
    let mut running: Option<tokio::task::JoinHandle<Verified<S>>> = None;
    loop {
        let read = tokio::time::timeout(stall, frames.read(&mut recv)).await;
        if let Some(job) = running.take() {
            let (d, s, r) = job
                .await
                .map_err(|e| TransferError::Local(format!("verifier task: {e}")))?;
            match r {
                Ok(Flow::Continue) => idle = Some((d, s)),
                Ok(Flow::Stop) => {
                    let _ = recv.stop(0u32.into());
                    return Ok(());
                }
                Err(e) => {
                    let _ = recv.stop(1u32.into());
                    return Err(e);
                }
            }
        }
        let frame = match read {
            Err(_) => return Err(TransferError::Timeout),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(None)) => {
                return match idle {
                    Some((d, _)) if d.is_done() => Ok(()),
                    _ => Err(TransferError::Truncated),
                };
            }
            Ok(Ok(Some(f))) => f,
        };
        let Some((mut d, mut s)) = idle.take() else {
            return Err(TransferError::Local("verifier state lost".into()));
        };
        running = Some(tokio::task::spawn_blocking(move || {
            let r = d.feed(frame).map_err(TransferError::from).and_then(&mut s);
            (d, s, r)
        }));
    }
}
