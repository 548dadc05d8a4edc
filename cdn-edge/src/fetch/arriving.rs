//! A blob still arriving, as the gateway sees it, and the fetcher as a [`BlobSource`].

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{Fetch, Fetcher, Phase};
use crate::Hash;
use crate::store::{Arriving, Blob, BlobSource, ReadError, StoreError};
use crate::transfer::codec::GROUP;

/// Reads of a blob being fetched: each waits until the chunk groups it covers are verified,
/// then reads them from the fetch's temporary file (bytes written only after verification).
pub(crate) struct ArrivingBlob {
    pub(crate) fetch: Arc<Fetch>,
    pub(crate) size: u64,
    pub(crate) wait: Duration,
}

impl Arriving for ArrivingBlob {
    fn hash(&self) -> Hash {
        self.fetch.hash
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_verified(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        self.read(offset, len, true)
    }

    fn read_some(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        self.read(offset, len, false)
    }
}

impl ArrivingBlob {
    /// Waits until the groups of `offset..offset+len` are verified (`all`), or only the first
    /// of them (then returns the verified run from `offset`), and reads them.
    fn read(&self, offset: u64, len: u64, all: bool) -> Result<Bytes, ReadError> {
        let mut end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let (g0, g1) = (offset / GROUP, (end - 1) / GROUP);
        let deadline = Instant::now() + self.wait;
        let mut w = self.fetch.lock();
        loop {
            let missing = if all {
                (g0..=g1).find(|g| !w.is_verified(*g))
            } else {
                (!w.is_verified(g0)).then_some(g0)
            };
            let Some(missing) = missing else { break };
            if let Some(why) = &w.failed {
                return Err(ReadError::Unavailable(self.fetch.hash, why.clone()));
            }
            // Steer the next claim toward what this reader needs.
            w.want = Some(missing);
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadError::Unavailable(
                    self.fetch.hash,
                    "timed out waiting for the fetch".into(),
                ));
            }
            w = self
                .fetch
                .cond
                .wait_timeout(w, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if !all {
            let last = (g0..=g1)
                .take_while(|g| w.is_verified(*g))
                .last()
                .unwrap_or(g0);
            end = end.min((last + 1) * GROUP);
        }
        let Some(file) = w.file.clone() else {
            return Err(ReadError::Unavailable(self.fetch.hash, "no data".into()));
        };
        drop(w);
        let mut buf = BytesMut::zeroed((end - offset) as usize);
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf.freeze())
    }
}

#[async_trait::async_trait]
impl BlobSource for Fetcher {
    async fn blob(&self, hash: Hash) -> Result<Option<Blob>, StoreError> {
        if let Some(b) = BlobSource::blob(&self.inner.store, hash).await? {
            return Ok(Some(b));
        }
        let fetch = self.start(hash);
        let wait = self.inner.config.wait_timeout;
        let mut rx = fetch.phase.subscribe();
        let phase = tokio::time::timeout(wait, rx.wait_for(|p| *p != Phase::Starting))
            .await
            .ok()
            .and_then(|r| r.ok().map(|p| p.clone()));
        match phase {
            Some(Phase::Sized(size)) if size > self.inner.config.stream_above => {
                Ok(Some(Blob::Arriving(Arc::new(ArrivingBlob {
                    fetch,
                    size,
                    wait,
                }))))
            }
            Some(Phase::Sized(_)) | Some(Phase::Done) => {
                let done = tokio::time::timeout(
                    wait,
                    rx.wait_for(|p| matches!(p, Phase::Done | Phase::Failed(_))),
                )
                .await
                .ok()
                .and_then(|r| r.ok().map(|p| p.clone()));
                if done == Some(Phase::Done) {
                    BlobSource::blob(&self.inner.store, hash).await
                } else {
                    Ok(None)
                }
            }
            _ => Ok(None),
        }
    }
}
