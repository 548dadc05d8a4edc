//! The `[cdn]` section of the node configuration. The gateway's listen address itself is the
//! node's `http_listen`; the store lives in `<data_dir>/blobs`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gateway::GatewayConfig;
use crate::store::StoreConfig;

/// Configuration of the blob store and the HTTP gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdnConfig {
    /// Bytes of blobs on disk above which fetched (unpinned) blobs are evicted, least recently
    /// used first. Published (pinned) blobs are never evicted.
    pub disk_budget: u64,
    /// Bytes of verified blob data kept in memory (the hot tier).
    pub hot_bytes: u64,
    /// Largest blob kept in the hot tier; larger ones stream from disk, verified as read.
    pub hot_max_blob: u64,
    /// Requests the gateway processes at once; more get 429.
    pub max_concurrent: usize,
    /// Connections the gateway keeps open; more are closed on accept.
    pub max_connections: usize,
    /// Longest a gateway request may take, header to last byte.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request header block; larger gets 431.
    pub max_header_bytes: usize,
    /// `Cache-Control: max-age` of named paths (sites change; `/blob/<hash>` never does).
    pub named_max_age: u32,
    /// Largest blob accepted by the upload API.
    pub max_upload_bytes: u64,
}

impl Default for CdnConfig {
    fn default() -> Self {
        let g = GatewayConfig::default();
        Self {
            disk_budget: 10 << 30,
            hot_bytes: 256 << 20,
            hot_max_blob: 1 << 20,
            max_concurrent: g.max_concurrent,
            max_connections: g.max_connections,
            request_timeout: g.request_timeout,
            max_header_bytes: g.max_header_bytes,
            named_max_age: g.named_max_age,
            max_upload_bytes: 16 << 30,
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cdn.{key} = {value}: {problem}")]
pub struct CdnConfigError {
    /// Key inside `[cdn]`.
    pub key: &'static str,
    /// The value.
    pub value: String,
    /// What is allowed.
    pub problem: &'static str,
}

impl CdnConfig {
    /// Checks ranges the types cannot.
    pub fn validate(&self) -> Result<(), CdnConfigError> {
        let bad = |key, value: String, problem| {
            Err(CdnConfigError {
                key,
                value,
                problem,
            })
        };
        if self.max_concurrent == 0 {
            return bad("max_concurrent", "0".into(), "must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "0".into(), "must be at least 1");
        }
        if self.request_timeout.is_zero() {
            return bad(
                "request_timeout",
                "0s".into(),
                "must be positive, e.g. \"30s\"",
            );
        }
        if !(1024..=1 << 20).contains(&self.max_header_bytes) {
            return bad(
                "max_header_bytes",
                self.max_header_bytes.to_string(),
                "must be between 1024 and 1048576",
            );
        }
        if self.hot_max_blob > self.hot_bytes {
            return bad(
                "hot_max_blob",
                self.hot_max_blob.to_string(),
                "must not exceed hot_bytes",
            );
        }
        Ok(())
    }

    /// The store's settings for a store in `dir`.
    pub fn store(&self, dir: impl Into<std::path::PathBuf>) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            disk_budget: self.disk_budget,
            hot_bytes: self.hot_bytes,
            hot_max_blob: self.hot_max_blob,
        }
    }

    /// The gateway's settings.
    pub fn gateway(&self) -> GatewayConfig {
        GatewayConfig {
            max_concurrent: self.max_concurrent,
            max_connections: self.max_connections,
            request_timeout: self.request_timeout,
            max_header_bytes: self.max_header_bytes,
            named_max_age: self.named_max_age,
            identity: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        assert!(CdnConfig::default().validate().is_ok());
        let c = CdnConfig {
            max_header_bytes: 10,
            ..CdnConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "max_header_bytes");
    }
}
