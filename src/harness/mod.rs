//! Test harness: start N nodes inside one process on ephemeral ports with their own temporary
//! data directories, wait until they answer, stop one abruptly, and run real external clients
//! (`dig`, `kdig`, `redis-cli`, `curl`) against them.
//!
//! Every wait has a deadline; nothing here sleeps for a fixed time and hopes.
//!
//! Changing admin requests need the node's admin token: [`TestNode::admin_token`],
//! [`TestNode::auth_header`] (for `curl -H`), [`admin_client`] (a reqwest client that sends it),
//! [`read_admin_token`] (for a node run as a process). The `proxima` CLI, run as the same user,
//! finds it by itself through the node's runtime file.
//!
//! [`history`] checks what clients saw of a key-value store under faults against what they
//! were told (lost, resurrected and invented values).

pub mod history;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::api::Health;
use crate::config::Config;
use crate::node::{NodeHandle, NodeOptions};

/// A configuration for a test node: every service on 127.0.0.1 port 0, no bootstrap.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    Config {
        data_dir: Some(data_dir.to_path_buf()),
        admin_listen: any,
        dns_listen: any,
        http_listen: any,
        redis_listen: any,
        quic_listen: any,
        p2p_listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".to_owned()],
        ..Config::default()
    }
}

/// One node of a [`Cluster`], with its temporary data directory.
#[derive(Debug)]
pub struct TestNode {
    handle: Option<NodeHandle>,
    config: Config,
    options: NodeOptions,
    dir: tempfile::TempDir,
}

/// Runtime options of a test node: two worker threads, no emulated WAN.
pub fn test_options() -> NodeOptions {
    NodeOptions {
        worker_threads: Some(2),
        ..NodeOptions::default()
    }
}

impl TestNode {
    /// Starts a node with [`test_config`] adjusted by `tweak`.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> Result<Self> {
        Self::start_with_options(tweak, test_options())
    }

    /// Starts a node with [`test_config`] adjusted by `tweak`, and runtime `options` (for
    /// example a place on an emulated WAN).
    pub fn start_with_options(
        tweak: impl FnOnce(&mut Config),
        options: NodeOptions,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("proxima-test-").tempdir()?;
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let handle = NodeHandle::start(config.clone(), options.clone())?;
        let node = Self {
            handle: Some(handle),
            config,
            options,
            dir,
        };
        node.wait_healthy(Duration::from_secs(20))?;
        Ok(node)
    }

    /// The running node, if it has not been stopped.
    pub fn handle(&self) -> Option<&NodeHandle> {
        self.handle.as_ref()
    }

    fn running(&self) -> &NodeHandle {
        self.handle.as_ref().expect("node is stopped")
    }

    /// `http://ADDR` of the admin endpoint.
    pub fn admin_url(&self) -> String {
        self.running().admin_url()
    }

    /// The admin token (the same across restarts: it lives in the data directory).
    pub fn admin_token(&self) -> String {
        self.running().admin_token().to_owned()
    }

    /// `Authorization: Bearer <token>`, for `curl -H` on changing admin requests.
    pub fn auth_header(&self) -> String {
        auth_header(&self.admin_token())
    }

    /// A reqwest client that sends this node's admin token with every request.
    pub fn admin_client(&self) -> reqwest::Client {
        admin_client(&self.admin_token())
    }

    /// The real address of a service (`admin`, `dns`, `http`, `redis`, `quic`, `p2p`).
    pub fn addr(&self, service: &str) -> Option<String> {
        self.handle
            .as_ref()?
            .service_addr(service)
            .map(str::to_owned)
    }

    /// The data directory (kept until the `TestNode` is dropped, so a restart can reuse it).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops the node abruptly (as `SIGKILL` would).
    pub fn kill(&mut self) {
        if let Some(h) = self.handle.take() {
            h.kill();
        }
    }

    /// Stops the node gracefully.
    pub fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }

    /// Starts the node again on the same data directory and configuration (same identity).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let handle = NodeHandle::start(self.config.clone(), self.options.clone())?;
        self.handle = Some(handle);
        self.wait_healthy(Duration::from_secs(20))
    }

    /// `GET /health`, parsed.
    pub fn health(&self) -> Result<Health> {
        get_health(&self.admin_url())
    }

    /// Waits until `/health` answers, or fails at the deadline.
    pub fn wait_healthy(&self, deadline: Duration) -> Result<()> {
        let url = self.admin_url();
        wait_for(deadline, || get_health(&url).is_ok())
            .with_context(|| format!("node at {url} did not become healthy"))
    }
}

/// Several nodes in one process.
#[derive(Debug, Default)]
pub struct Cluster {
    /// The nodes, in start order.
    pub nodes: Vec<TestNode>,
}

impl Cluster {
    /// Starts `n` nodes with default test configurations and waits until each is healthy.
    pub fn start(n: usize) -> Result<Self> {
        Self::start_with(n, |_, _| {})
    }

    /// Starts `n` nodes, calling `tweak(index, config)` for each before it starts.
    pub fn start_with(n: usize, tweak: impl Fn(usize, &mut Config)) -> Result<Self> {
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            nodes.push(TestNode::start(|c| tweak(i, c))?);
        }
        Ok(Self { nodes })
    }

    /// Starts `n` nodes that form one mesh: node 0 first, every other node bootstrapping from
    /// it, then waits until every node sees all `n` members alive. `options(i)` gives node `i`'s
    /// runtime options (for example its place on an emulated WAN, see [`wan_options`]).
    pub fn start_meshed(
        n: usize,
        tweak: impl Fn(usize, &mut Config),
        options: impl Fn(usize) -> NodeOptions,
        deadline: Duration,
    ) -> Result<Self> {
        let mut cluster = Self {
            nodes: Vec::with_capacity(n),
        };
        for i in 0..n {
            // Node 0 is its own cluster (it creates the cluster key); every other node joins
            // it with a one-time token, as an operator would, and is certified for the cache
            // and the registrar.
            let (bootstrap, token) = match cluster.nodes.first() {
                Some(first) => (
                    vec![first.addr("p2p").context("node 0 has no p2p address")?],
                    Some(cluster.join_token()?),
                ),
                None => (Vec::new(), None),
            };
            cluster.nodes.push(TestNode::start_with_options(
                |c| {
                    c.bootstrap = bootstrap;
                    c.cluster.join_token = token;
                    tweak(i, c);
                },
                options(i),
            )?);
        }
        cluster.wait_all_alive(n, deadline)?;
        Ok(cluster)
    }

    /// A one-time join token from node 0 (the cluster's issuer) granting the cache and
    /// registrar roles: `config.cluster.join_token` for a node that joins later.
    pub fn join_token(&self) -> Result<String> {
        let issuer = self
            .nodes
            .first()
            .and_then(TestNode::handle)
            .context("node 0 is not running")?;
        let token = issuer.info().cluster.new_token(
            vec![
                mesh::trust::ROLE_CACHE.to_owned(),
                mesh::trust::ROLE_REGISTRAR.to_owned(),
            ],
            Duration::from_secs(3600),
        )?;
        Ok(token.to_string())
    }

    /// Waits until every running node sees `n` members alive (itself included).
    pub fn wait_all_alive(&self, n: usize, deadline: Duration) -> Result<()> {
        wait_for(deadline, || {
            self.nodes.iter().filter(|t| t.handle().is_some()).all(|t| {
                t.health().is_ok_and(|h| {
                    h.members
                        .iter()
                        .filter(|m| m.state == mesh::MemberState::Alive)
                        .count()
                        >= n
                })
            })
        })
        .with_context(|| format!("the {n} nodes did not all see each other alive"))
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &TestNode {
        &self.nodes[i]
    }

    /// Node `i`, mutably (to kill or restart it).
    pub fn node_mut(&mut self, i: usize) -> &mut TestNode {
        &mut self.nodes[i]
    }
}

/// Runtime options that put a test node at position `index` of an emulated WAN.
pub fn wan_options(emulator: &std::sync::Arc<mesh::WanEmulator>, index: usize) -> NodeOptions {
    NodeOptions {
        wan: Some(mesh::WanLink {
            emulator: emulator.clone(),
            position: index,
        }),
        name: Some(format!("node{index}")),
        ..test_options()
    }
}

/// Logs to stderr as `RUST_LOG` says, each line naming the node whose runtime thread wrote it
/// (`node3`, see [`wan_options`]); does nothing without `RUST_LOG`. For scenario runs and
/// whole-system tests: `RUST_LOG=cache=debug` shows what every node did in a failing run.
pub fn logs_from_env() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_thread_names(true)
            .try_init();
    }
}

/// Polls `condition` every 20 ms (backing off to 200 ms) until it holds or `deadline` passes.
pub fn wait_for(deadline: Duration, mut condition: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(20);
    loop {
        if condition() {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("condition not met within {deadline:?}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `GET {admin}/health` with a short timeout, from any context (sync or async).
pub fn get_health(admin_url: &str) -> Result<Health> {
    let url = format!("{admin_url}/health");
    let text = http_get(&url)?;
    serde_json::from_str(&text).with_context(|| format!("{url} did not return health JSON"))
}

/// A blocking HTTP GET with a 2 s timeout that works inside or outside a tokio runtime.
pub fn http_get(url: &str) -> Result<String> {
    let url = url.to_owned();
    std::thread::spawn(move || -> Result<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?;
            let resp = client.get(&url).send().await?.error_for_status()?;
            Ok(resp.text().await?)
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("http_get thread panicked"))?
}

/// `Authorization: Bearer <token>`, for `curl -H`.
pub fn auth_header(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// A reqwest client (10 s timeout) that sends `Authorization: Bearer <token>` with every request.
pub fn admin_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("an admin token is a valid header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .expect("a reqwest client")
}

/// The admin token of a node run as a process on `data_dir` (its `admin.token`), once written.
pub fn read_admin_token(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join(crate::api::trust::TOKEN_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// Fails the calling test, with the reason, when an external tool is missing (a test whose
/// tool is missing must never pass by returning early; `scripts/test` installs every tool).
pub fn require_tool(name: &str) {
    assert!(
        have_tool(name),
        "{name} is not installed; run scripts/install-deps test, which installs the test tools"
    );
}

/// Whether an external tool is on `PATH`.
pub fn have_tool(name: &str) -> bool {
    which::which(name).is_ok()
}

/// Runs an external client and returns its output; fails clearly when the tool is missing
/// (`scripts/test` installs every tool the tests use).
pub fn run_tool(name: &str, args: &[&str]) -> Result<Output> {
    let path = which::which(name).with_context(|| {
        format!("{name} is not installed; run scripts/test, which installs the test tools")
    })?;
    let out = Command::new(path)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {name}"))?;
    Ok(out)
}

/// `dig @addr -p port ARGS...` with short timeouts; returns stdout.
pub fn dig(server: SocketAddr, args: &[&str]) -> Result<String> {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let mut full = vec![at.as_str(), "-p", port.as_str(), "+time=2", "+tries=1"];
    full.extend_from_slice(args);
    let out = run_tool("dig", &full)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `redis-cli -h ip -p port ARGS...`; returns stdout.
pub fn redis_cli(server: SocketAddr, args: &[&str]) -> Result<String> {
    let host = server.ip().to_string();
    let port = server.port().to_string();
    let mut full = vec!["-h", host.as_str(), "-p", port.as_str()];
    full.extend_from_slice(args);
    let out = run_tool("redis-cli", &full)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One field of `INFO cluster` at a node's Redis address (through `redis-cli`).
pub fn cluster_info_field(a: SocketAddr, field: &str) -> Option<String> {
    let out = redis_cli(a, &["info", "cluster"]).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// Whether every one of the cache nodes at `addrs` counts `n` members and pulls no range.
pub fn cache_converged(addrs: &[SocketAddr], n: usize) -> bool {
    addrs.iter().all(|a| {
        cluster_info_field(*a, "proxima_members").as_deref() == Some(&n.to_string())
            && cluster_info_field(*a, "proxima_importing_ranges").as_deref() == Some("0")
    })
}

/// `curl -s --max-time 10 ARGS...`; returns the whole output.
pub fn curl(args: &[&str]) -> Result<Output> {
    let mut full = vec!["-s", "--max-time", "10"];
    full.extend_from_slice(args);
    run_tool("curl", &full)
}
