//! The client side of the CLI: commands that talk to a running node's admin API.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::admin::Health;

/// The admin address of a node started with the defaults.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:7300";

/// A client of one node's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:7300`).
    pub fn new(base: &str) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let base = if base.contains("://") {
            base
        } else {
            format!("http://{base}")
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
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

    /// `GET /health` as raw JSON.
    pub async fn health_json(&self) -> Result<serde_json::Value> {
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
        resp.json().await.context("the node's /health is not JSON")
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
