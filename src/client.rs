//! The client side of the CLI: commands that talk to a running node's admin API.
//!
//! Every command builds its HTTP client with [`admin_http`], which sends the admin token found by
//! [`admin_token`]: `--token-file FILE` ([`set_token_file`]), else `PROXIMA_ADMIN_TOKEN`, else
//! the runtime file of the node at `--node` on this machine (see [`crate::api::trust`]), else
//! none (the node then answers 401 with a message naming `--token-file`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::api::Health;
use crate::api::trust;

/// The admin address of a node started with the defaults.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:7300";

static TOKEN_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Makes every later admin client of this process read its token from `path` (the global
/// `--token-file` flag). The first call wins.
pub fn set_token_file(path: PathBuf) {
    let _ = TOKEN_FILE.set(path);
}

/// The admin token to send to the node at `node` (see the module docs), if one is known.
pub fn admin_token(node: &str) -> Result<Option<String>> {
    if let Some(path) = TOKEN_FILE.get() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --token-file {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            bail!("--token-file {} is empty", path.display());
        }
        return Ok(Some(token.to_owned()));
    }
    if let Ok(token) = std::env::var(trust::TOKEN_ENV)
        && !token.trim().is_empty()
    {
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(trust::token_from_runtime_files(node))
}

/// An HTTP client for the admin API of the node at `node`, from `builder` (timeouts), that
/// sends the admin token with every request if one is known.
pub fn admin_http(node: &str, builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = admin_token(node)? {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the admin token has characters a header cannot carry")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(builder.default_headers(headers).build()?)
}

/// A client of one node's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:7300`).
    pub fn new(base: &str) -> Result<Self> {
        // A name operation may wait out an election of the registrar group (up to 14 s).
        Self::with_timeout(base, Duration::from_secs(30))
    }

    /// A client for `base` whose requests may take up to `timeout` (a registrar catching up).
    pub fn with_timeout(base: &str, timeout: Duration) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let base = if base.contains("://") {
            base
        } else {
            format!("http://{base}")
        };
        let http = admin_http(&base, reqwest::Client::builder().timeout(timeout))?;
        Ok(Self { base, http })
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<Health> {
        let url = format!("{}/health", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the node at {} (is `proxima node` running?)",
                    self.base
                )
            })?
            .error_for_status()?;
        resp.json()
            .await
            .context("the node's /health is not the expected JSON")
    }

    /// `GET path` as JSON (error statuses are errors).
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let resp = self.http.get(&url).send().await.with_context(|| {
            format!(
                "cannot reach the node at {} (is `proxima node` running?)",
                self.base
            )
        })?;
        let resp = resp.error_for_status()?;
        resp.json().await.context("the answer is not JSON")
    }

    /// `POST path` with a JSON body; the status and the JSON answer (`{}` if not JSON).
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(reqwest::StatusCode, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the node at {} (is `proxima node` running?)",
                    self.base
                )
            })?;
        let status = resp.status();
        let v = resp.json().await.unwrap_or(serde_json::json!({}));
        Ok((status, v))
    }

    /// `DELETE path`; the status and the JSON answer (`{}` if not JSON).
    pub async fn delete_json(
        &self,
        path: &str,
    ) -> Result<(reqwest::StatusCode, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let resp = self.http.delete(&url).send().await.with_context(|| {
            format!(
                "cannot reach the node at {} (is `proxima node` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let v = resp.json().await.unwrap_or(serde_json::json!({}));
        Ok((status, v))
    }

    /// `GET /health` as raw JSON.
    pub async fn health_json(&self) -> Result<serde_json::Value> {
        self.get_json("/health").await
    }
}

/// `proxima status`: a readable summary, or the raw JSON with `json`.
pub async fn status(node: &str, json: bool) -> Result<String> {
    let client = AdminClient::new(node)?;
    if json {
        let value = client.health_json().await?;
        return Ok(serde_json::to_string_pretty(&value)?);
    }
    let h = client.health().await?;
    let mut out = String::new();
    use std::fmt::Write;
    let _ = writeln!(out, "proxima {} — {}", h.version, h.status);
    let _ = writeln!(out, "peer id   {}", h.peer_id);
    let _ = writeln!(out, "uptime    {}", format_uptime(h.uptime_secs));
    let _ = writeln!(out, "data dir  {}", h.data_dir);
    let _ = writeln!(out, "services");
    for (name, s) in &h.services {
        let _ = writeln!(out, "  {name:<8} {:<22} {}", s.listen, s.protocol);
    }
    if !h.members.is_empty() {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"));
        let _ = writeln!(out, "members");
        let _ = writeln!(
            out,
            "  {:<54} {:<8} {:<22} {:>12} {:>12}",
            "peer", "state", "quic", "coord dist", "rtt"
        );
        for m in &h.members {
            let me = if m.is_self { " (self)" } else { "" };
            let state = serde_json::to_value(m.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<54} {:<8} {:<22} {:>12} {:>12}",
                format!("{}{me}", m.peer_id),
                state,
                m.quic,
                ms(m.coord_distance_ms),
                ms(m.rtt_ms)
            );
        }
    }
    Ok(out)
}

fn format_uptime(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..60 => format!("{secs:.1}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
