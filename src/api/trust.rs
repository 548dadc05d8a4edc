//! Trust of the admin API: the admin token, the `Host`/`Origin` check against DNS rebinding and
//! cross-site writes, the bind rule, and the per-user runtime file through which the CLI finds a
//! local node's token.
//!
//! - The token is 32 random bytes as hex in `DATA/admin.token` (mode 0600), created at first
//!   start and reused. Every request whose method is not GET, HEAD or OPTIONS must carry
//!   `Authorization: Bearer <token>` (missing: 401 with `WWW-Authenticate: Bearer`; wrong: 403),
//!   unless `[admin] require_token = false`, which is only accepted on a loopback `admin_listen`.
//! - Every request's `Host` must be an IP literal, `localhost` or one of `[admin] allowed_hosts`
//!   (a request without `Host` passes); a changing request whose `Origin` is another site is
//!   refused. One middleware ([`guard`]) over the whole admin router does both, so routes that
//!   services add later are covered without doing anything.
//! - At start the node writes `{url, token, pid, data_dir}` to
//!   `$XDG_RUNTIME_DIR/proxima/node-IP-PORT.json` (else `~/.local/share/proxima/runtime/`), mode
//!   0600 in a 0700 directory, and removes it at shutdown ([`RuntimeFile`]).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// File name of the admin token inside the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// Environment variable the CLI reads the admin token from.
pub const TOKEN_ENV: &str = "PROXIMA_ADMIN_TOKEN";

/// `[admin]`: who may change things through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Every changing request needs `Authorization: Bearer <DATA/admin.token>` (default true).
    /// `false` (a lab) is accepted only with a loopback `admin_listen`.
    pub require_token: bool,
    /// Host names besides IP literals and `localhost` that requests may name in `Host` (e.g.
    /// the name of a reverse proxy in front of the admin API).
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            require_token: true,
            allowed_hosts: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// Checks the section against the admin listen address: `(key, value, problem)` on error.
    pub fn validate(&self, admin_listen: SocketAddr) -> Result<(), (String, String, String)> {
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok {
                return Err((
                    format!("admin.allowed_hosts[{i}]"),
                    format!("{h:?}"),
                    "expected a host name such as \"node1.example.net\" (no scheme, port or path; \
                     IP literals and localhost are always allowed)"
                        .into(),
                ));
            }
        }
        if !self.require_token && !admin_listen.ip().is_loopback() {
            return Err((
                "admin_listen".into(),
                format!("\"{admin_listen}\""),
                "with [admin] require_token = false the admin API must listen on loopback \
                 (127.0.0.1 or ::1); set require_token = true (the default) to listen beyond it"
                    .into(),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The token file

/// Loads `dir/admin.token`, creating it (32 random bytes as hex, mode 0600, written atomically)
/// if absent.
pub fn load_or_create_token(dir: &Path) -> Result<String> {
    let path = dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_private(&path)?;
            let token = text.trim();
            if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
                bail!(
                    "{} does not hold an admin token (at least 16 visible ASCII characters); \
                     delete it and a new one is made at the next start",
                    path.display()
                );
            }
            Ok(token.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            let token = hex::encode(bytes);
            write_private_atomically(&path, format!("{token}\n").as_bytes())?;
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `bytes` to a temporary file (mode 0600) next to `path`, syncs it and renames it over
/// `path`, so a reader sees the whole file or none.
fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".proxima-tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{} has mode {:o}; the admin token must be readable by its owner only (chmod 600)",
                path.display(),
                mode
            );
        }
    }
    Ok(())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

// ---------------------------------------------------------------------------------------------
// The middleware

/// What the admin API's [`guard`] checks requests against.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The token changing requests must carry; `None` with `require_token = false`.
    token: Option<Arc<str>>,
    /// `[admin] allowed_hosts`, lower case, without a trailing dot.
    allowed_hosts: Arc<[String]>,
    /// Requests refused, by reason (`host`, `origin`, `no_token`, `wrong_token`).
    refused: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >,
}

impl Guard {
    /// A guard for the admin token `token` and the `[admin]` section.
    pub fn new(token: &str, config: &AdminConfig) -> Self {
        if !config.require_token {
            tracing::warn!(
                "[admin] require_token = false: the admin API takes changes without a token"
            );
        }
        Self {
            token: config.require_token.then(|| Arc::from(token)),
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            refused: Default::default(),
        }
    }

    /// Registers `refused_total{reason}` (give it the node's registry: `proxima_admin_…`).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "refused",
            "Admin API requests refused, by reason",
            self.refused.clone(),
        );
    }

    fn count(&self, reason: &str) {
        self.refused
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Whether `Host` value `authority` (`host[:port]`) names this node acceptably: an IP
    /// literal, `localhost`, or an allowed host.
    pub fn host_allowed(&self, authority: &str) -> bool {
        match split_authority(authority) {
            Some(Host::Ip(_)) => true,
            Some(Host::Name(name)) => name == "localhost" || self.allowed_hosts.contains(&name),
            None => false,
        }
    }

    /// Whether a changing request from a page at `origin` may reach the node named by `host`:
    /// the page is on this machine (`localhost`, a loopback IP), on an allowed host, or is the
    /// admin endpoint itself (same host and port as the request's `Host`).
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let Some((_, rest)) = origin.split_once("://") else {
            return false; // `null` (sandboxed frames, file: pages) and anything unparsable
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
            return true;
        }
        match split_authority(authority) {
            Some(Host::Ip(ip)) => ip.is_loopback(),
            Some(Host::Name(name)) => name == "localhost" || self.allowed_hosts.contains(&name),
            None => false,
        }
    }
}

enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Splits `host[:port]` / `[v6][:port]`; `None` if it is malformed.
fn split_authority(authority: &str) -> Option<Host> {
    let authority = authority.trim();
    let port_ok = |p: &str| p.is_empty() || p.parse::<u16>().is_ok();
    if let Some(rest) = authority.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let port = match after {
            "" => "",
            p => p.strip_prefix(':')?,
        };
        if !port_ok(port) {
            return None;
        }
        return inner.parse::<Ipv6Addr>().ok().map(|ip| Host::Ip(ip.into()));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, p),
        None => (authority, ""),
    };
    if host.is_empty() || !port_ok(port) {
        return None;
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Some(Host::Ip(ip.into()));
    }
    Some(Host::Name(host.trim_end_matches('.').to_ascii_lowercase()))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// The bearer token of `Authorization`, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a method changes nothing (and so needs no token).
fn is_read_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The admin API's middleware (see the module docs): `Host`, then `Origin` of changing
/// requests, then their token.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = match headers.get(header::HOST).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(h)) if guard.host_allowed(h) => Some(h),
        Some(h) => {
            tracing::debug!(host = ?h, path = %request.uri().path(), "admin: Host not allowed");
            guard.count("host");
            return refuse(
                StatusCode::FORBIDDEN,
                "Host not allowed: the admin API answers to IP addresses, localhost and \
                 [admin] allowed_hosts only",
            );
        }
    };
    if is_read_only(request.method()) {
        return next.run(request).await;
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        if !guard.origin_allowed(origin, host) {
            tracing::debug!(origin, path = %request.uri().path(), "admin: Origin not allowed");
            guard.count("origin");
            return refuse(
                StatusCode::FORBIDDEN,
                "Origin not allowed: the admin API takes no changes from other sites' pages",
            );
        }
    }
    if let Some(expected) = &guard.token {
        match bearer(headers) {
            None => {
                guard.count("no_token");
                let mut resp = refuse(
                    StatusCode::UNAUTHORIZED,
                    "admin token required: send `Authorization: Bearer <token>` (the token is in \
                     the node's data directory, admin.token); the proxima CLI finds it for a \
                     node on this machine, otherwise pass --token-file FILE or set \
                     PROXIMA_ADMIN_TOKEN",
                );
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return resp;
            }
            Some(t) if !constant_time_eq(t.as_bytes(), expected.as_bytes()) => {
                tracing::debug!(path = %request.uri().path(), "admin: wrong token");
                guard.count("wrong_token");
                return refuse(
                    StatusCode::FORBIDDEN,
                    "wrong admin token: it must be the contents of the node's admin.token \
                     (--token-file FILE or PROXIMA_ADMIN_TOKEN)",
                );
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

// ---------------------------------------------------------------------------------------------
// The runtime file

/// What a running node tells local CLIs, in `RUNTIME_DIR/node-IP-PORT.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// `http://ADDR` of the admin API (a wildcard bind is written as its loopback address).
    pub url: String,
    /// The admin token.
    pub token: String,
    /// The node's process id.
    pub pid: u32,
    /// The node's data directory.
    pub data_dir: String,
}

/// The per-user directory of runtime files: `$XDG_RUNTIME_DIR/proxima` if that is set, else
/// `~/.local/share/proxima/runtime` (the platform's data directory).
pub fn runtime_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("proxima"));
    }
    dirs::data_dir().map(|d| d.join("proxima").join("runtime"))
}

/// `node-127.0.0.1-7300.json` (colons of IPv6 addresses become `_`).
pub fn runtime_file_name(addr: SocketAddr) -> String {
    format!(
        "node-{}-{}.json",
        addr.ip().to_string().replace(':', "_"),
        addr.port()
    )
}

/// The URL a local client reaches `addr` at (a wildcard address becomes loopback).
pub fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// A written runtime file; [`RuntimeFile::remove`] (or dropping it) deletes it if it is still
/// this node's.
#[derive(Debug)]
pub struct RuntimeFile {
    path: PathBuf,
    token: String,
}

impl RuntimeFile {
    /// Writes the runtime file of a node whose admin API is at `addr` into `dir` (created with
    /// mode 0700), after deleting the files of nodes whose process is gone.
    pub fn write(dir: &Path, addr: SocketAddr, token: &str, data_dir: &Path) -> Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        prune_stale(dir);
        let info = RuntimeInfo {
            url: local_url(addr),
            token: token.to_owned(),
            pid: std::process::id(),
            data_dir: data_dir.display().to_string(),
        };
        let path = dir.join(runtime_file_name(addr));
        write_private_atomically(&path, serde_json::to_string_pretty(&info)?.as_bytes())?;
        Ok(Self {
            path,
            token: token.to_owned(),
        })
    }

    /// Writes the runtime file into [`runtime_dir`]; on failure logs why and returns `None` (a
    /// node without one still runs; CLIs then need `--token-file`).
    pub fn publish(addr: SocketAddr, token: &str, data_dir: &Path) -> Option<Self> {
        let dir = runtime_dir()?;
        match Self::write(&dir, addr, token, data_dir) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot write the runtime file; local CLIs need --token-file"
                );
                None
            }
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file (unless another node has written its own there since).
    pub fn remove(self) {
        drop(self);
    }
}

impl Drop for RuntimeFile {
    fn drop(&mut self) {
        let ours = read_runtime_file(&self.path).is_some_and(|i| i.token == self.token);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_runtime_file(path: &Path) -> Option<RuntimeInfo> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Whether process `pid` exists (`true` where that cannot be told).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Deletes runtime files left by nodes that did not stop gracefully (their process is gone).
fn prune_stale(dir: &Path) {
    for (path, info) in runtime_files(dir) {
        if !process_alive(info.pid) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Every readable runtime file in `dir`.
fn runtime_files(dir: &Path) -> Vec<(PathBuf, RuntimeInfo)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("node-") && n.ends_with(".json"))
        })
        .filter_map(|p| read_runtime_file(&p).map(|i| (p, i)))
        .collect()
}

/// `scheme://host:port` of a node URL, for comparing: `localhost` is `127.0.0.1`, the default
/// port is explicit, a path or trailing slash does not count.
pub fn normalize_url(url: &str) -> Option<String> {
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let parsed = reqwest::Url::parse(&url).ok()?;
    // `host_str` is lower case, with IPv6 addresses in brackets.
    let host = match parsed.host_str()? {
        "localhost" => "127.0.0.1",
        h => h,
    };
    Some(format!(
        "{}://{}:{}",
        parsed.scheme(),
        host,
        parsed.port_or_known_default()?
    ))
}

/// The token in the runtime file of the node at `node_url` (a running node first), if any.
pub fn token_from_runtime_files(node_url: &str) -> Option<String> {
    let want = normalize_url(node_url)?;
    let dir = runtime_dir()?;
    let mut matches: Vec<RuntimeInfo> = runtime_files(&dir)
        .into_iter()
        .map(|(_, i)| i)
        .filter(|i| normalize_url(&i.url).as_deref() == Some(want.as_str()))
        .collect();
    matches.sort_by_key(|i| !process_alive(i.pid));
    matches.into_iter().next().map(|i| i.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_token(dir.path()).unwrap();
        let b = load_or_create_token(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn hosts() {
        let g = Guard::new(
            "t",
            &AdminConfig {
                allowed_hosts: vec!["Proxy.Example.".into()],
                ..AdminConfig::default()
            },
        );
        for ok in [
            "127.0.0.1",
            "127.0.0.1:7300",
            "10.1.2.3:80",
            "[::1]:7300",
            "[2001:db8::1]",
            "localhost",
            "LOCALHOST:7300",
            "localhost.:1",
            "proxy.example",
            "proxy.example:443",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7300",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "::1",
            "[::1",
            "127.0.0.1:x",
            "",
            "proxy.example.evil",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        let g = Guard::new("t", &AdminConfig::default());
        let host = Some("10.0.0.5:7300");
        assert!(g.origin_allowed("http://localhost:3000", host));
        assert!(g.origin_allowed("http://127.0.0.1:7300", host));
        assert!(g.origin_allowed("http://[::1]:8080", host));
        assert!(g.origin_allowed("http://10.0.0.5:7300", host));
        assert!(!g.origin_allowed("http://10.0.0.5:8000", host));
        assert!(!g.origin_allowed("http://evil.example", host));
        assert!(!g.origin_allowed("https://evil.example:7300", host));
        assert!(!g.origin_allowed("null", host));
    }

    #[test]
    fn bind_rule_and_allowed_hosts() {
        let lab = AdminConfig {
            require_token: false,
            ..AdminConfig::default()
        };
        assert!(lab.validate("127.0.0.1:7300".parse().unwrap()).is_ok());
        assert!(lab.validate("[::1]:7300".parse().unwrap()).is_ok());
        let (key, value, problem) = lab.validate("0.0.0.0:0".parse().unwrap()).unwrap_err();
        assert_eq!(key, "admin_listen");
        assert!(value.contains("0.0.0.0:0"), "{value}");
        assert!(problem.contains("require_token"), "{problem}");
        assert!(
            AdminConfig::default()
                .validate("0.0.0.0:0".parse().unwrap())
                .is_ok()
        );
        let bad = AdminConfig {
            allowed_hosts: vec!["http://x.example".into()],
            ..AdminConfig::default()
        };
        let (key, _, _) = bad.validate("127.0.0.1:1".parse().unwrap()).unwrap_err();
        assert_eq!(key, "admin.allowed_hosts[0]");
    }

    #[test]
    fn urls_normalize() {
        let n = |u| normalize_url(u).unwrap();
        assert_eq!(n("http://localhost:7300/"), n("http://127.0.0.1:7300"));
        assert_eq!(n("127.0.0.1:7300"), "http://127.0.0.1:7300");
        assert_eq!(n("http://[::1]:7300/x"), "http://[::1]:7300");
        assert_ne!(n("http://127.0.0.1:7301"), n("http://127.0.0.1:7300"));
        assert_eq!(
            local_url("0.0.0.0:9".parse().unwrap()),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            runtime_file_name("[::1]:7300".parse().unwrap()),
            "node-__1-7300.json"
        );
    }

    #[test]
    fn runtime_file_is_private_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().join("rt");
        let f =
            RuntimeFile::write(&rt, "127.0.0.1:7399".parse().unwrap(), "tok", dir.path()).unwrap();
        let info = read_runtime_file(f.path()).unwrap();
        assert_eq!(info.url, "http://127.0.0.1:7399");
        assert_eq!(info.token, "tok");
        assert_eq!(info.pid, std::process::id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(f.path()), 0o600);
            assert_eq!(mode(&rt), 0o700);
        }
        let path = f.path().to_path_buf();
        f.remove();
        assert!(!path.exists());
    }
}
