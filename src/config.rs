//! Node configuration: embedded defaults, overridden by a TOML file, then by `PROXIMA_*`
//! environment variables, then by command-line flags.
//!
//! Every default works on one machine: services listen on 127.0.0.1 on unprivileged ports.
//! Nested sections map to environment variables with a double underscore, e.g.
//! `PROXIMA_ADMIN_LISTEN=127.0.0.1:0` or `PROXIMA_CACHE__MAXMEMORY=...`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The commented example printed by `proxima config example`.
pub const EXAMPLE: &str = include_str!("config_example.toml");

/// Environment variable prefix for configuration overrides.
pub const ENV_PREFIX: &str = "PROXIMA_";

/// Which ledger answers "who controls this name".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LedgerKind {
    /// The hash-chained ledger in the data directory (default).
    #[default]
    Embedded,
    /// The NameRegistry contract on an Ethereum JSON-RPC endpoint.
    Eth,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The effective configuration of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the node keeps its identity, ledger, zones and blobs. Default: the user's data
    /// directory (`~/.local/share/proxima` on Linux).
    pub data_dir: Option<PathBuf>,
    /// Admin HTTP endpoint: `/health`, `/metrics`, the dashboard and the CLI's API.
    pub admin_listen: SocketAddr,
    /// DNS (UDP and TCP).
    pub dns_listen: SocketAddr,
    /// HTTP gateway for sites and blobs.
    pub http_listen: SocketAddr,
    /// Redis protocol (RESP2/RESP3).
    pub redis_listen: SocketAddr,
    /// QUIC data plane between nodes.
    pub quic_listen: SocketAddr,
    /// libp2p control-plane listen addresses (multiaddrs).
    pub p2p_listen: Vec<String>,
    /// libp2p multiaddrs of peers to join at start.
    pub bootstrap: Vec<String>,
    /// The IP other nodes reach this one at, advertised to members for every service that
    /// listens on an unspecified address (`0.0.0.0`). Default: the local IP of the route to
    /// the first bootstrap peer, else the first non-loopback interface address.
    pub advertise_addr: Option<IpAddr>,
    /// Which ledger to follow.
    pub ledger: LedgerKind,
    /// Ethereum JSON-RPC endpoint (with `ledger = "eth"`).
    pub eth_rpc: Option<String>,
    /// Address of the deployed NameRegistry contract (with `ledger = "eth"`).
    pub eth_registry: Option<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Default log filter when `RUST_LOG` is not set (tracing env-filter syntax).
    pub log: String,
    /// Admin API trust: `require_token`, `allowed_hosts` (`[admin]`; see `api::trust`).
    pub admin: crate::api::trust::AdminConfig,
    /// DNS: ledger TLDs, forwarding upstreams, allowed clients, rate limiting (`[dns]`).
    pub dns: dns::DnsConfig,
    /// Naming: ledger TLD, authoritative TLDs, Ethereum account key file (`[naming]`).
    pub naming: crate::names::NamingConfig,
    /// Cache: `maxmemory`, eviction policy, `requirepass`, client and request bounds (`[cache]`).
    pub cache: cache::Config,
    /// CDN edge: blob store disk budget and hot tier, gateway limits (`[cdn]`).
    pub cdn: cdn_edge::CdnConfig,
    /// Cluster membership: the cluster key or anchor, join token, certificate roles (`[cluster]`).
    pub cluster: crate::cluster::ClusterConfig,
    /// Mesh options: a private network key (`[mesh]`).
    pub mesh: MeshSection,
}

/// `[mesh]`: options of the node's mesh beyond its listen addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MeshSection {
    /// A private deployment's network key (64 hex digits, or an IPFS `swarm.key`; create one
    /// with `proxima cluster network-key FILE`): peers without it are refused at the handshake
    /// of both planes. The libp2p control plane then runs on TCP (QUIC addresses become TCP
    /// ones on the same port).
    pub network_key_file: Option<PathBuf>,
    /// Bits of identity work every member's key must carry (0 = none): a new node key is
    /// minted until its identity hash has that many leading zero bits (16 bits: about a second
    /// of CPU), and SWIM packets from identities with less are refused. Every node of a
    /// deployment must use the same value. It prices Sybil identities; it does not stop them.
    pub identity_work_bits: u32,
}

impl Config {
    /// The mesh's configuration: listen and bootstrap addresses, the advertised IP, the
    /// network key, identity work; zone records pushed through the DHT must decode and carry
    /// a valid signature. Service addresses are filled in by the node.
    pub fn mesh_config(&self) -> anyhow::Result<mesh::MeshConfig> {
        use anyhow::Context;
        let parse = |key: &str, list: &[String]| -> anyhow::Result<Vec<mesh::Multiaddr>> {
            list.iter()
                .map(|a| {
                    a.parse()
                        .with_context(|| format!("{key}: {a:?} is not a multiaddr"))
                })
                .collect()
        };
        let mut mc = mesh::MeshConfig::local();
        mc.quic_listen = self.quic_listen;
        mc.advertise_ip = self.advertise_addr;
        if let Some(path) = &self.mesh.network_key_file {
            let key = read_network_key(path)
                .map_err(|e| anyhow::anyhow!("mesh.network_key_file {}: {e}", path.display()))?;
            mc.network_key = Some(key);
            tracing::info!("private network: peers without the network key are refused");
        }
        mc.control.listen = parse("p2p_listen", &self.p2p_listen)?;
        mc.control.bootstrap = parse("bootstrap", &self.bootstrap)?;
        mc.control.validator = Some(crate::names::spread::dht_validator());
        mc.membership.identity_work_bits = self.mesh.identity_work_bits;
        Ok(mc)
    }
}

/// Reads a network key file: 64 hex digits, alone or as the last line of an IPFS
/// `swarm.key` (`/key/swarm/psk/1.0.0/`, `/base16/`, key).
pub fn read_network_key(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    let mut key = [0u8; 32];
    hex::decode_to_slice(line, &mut key).map_err(|_| {
        "expected 64 hex digits (alone or as the last line of a swarm.key)".to_owned()
    })?;
    Ok(key)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 7300)),
            dns_listen: SocketAddr::from(([127, 0, 0, 1], 5300)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8300)),
            redis_listen: SocketAddr::from(([127, 0, 0, 1], 6300)),
            quic_listen: SocketAddr::from(([127, 0, 0, 1], 4300)),
            p2p_listen: vec!["/ip4/127.0.0.1/udp/4301/quic-v1".to_owned()],
            bootstrap: Vec::new(),
            advertise_addr: None,
            ledger: LedgerKind::Embedded,
            eth_rpc: None,
            eth_registry: None,
            log_format: LogFormat::Text,
            log: "info".to_owned(),
            admin: crate::api::trust::AdminConfig::default(),
            dns: dns::DnsConfig::default(),
            naming: crate::names::NamingConfig::default(),
            cache: cache::Config::default(),
            cdn: cdn_edge::CdnConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            mesh: MeshSection::default(),
        }
    }
}

/// A configuration that cannot be used, with the key, the value and what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: `{key}` = {value}: {problem}{source_hint}")]
pub struct ConfigError {
    /// Dotted key, e.g. `admin_listen`.
    pub key: String,
    /// The offending value as written (or `<missing>`).
    pub value: String,
    /// What is wrong and what is allowed.
    pub problem: String,
    /// Where the value came from, e.g. ` (from environment variable PROXIMA_ADMIN_LISTEN)`.
    pub source_hint: String,
}

impl Config {
    /// Layers defaults, the optional TOML file, `PROXIMA_*` environment variables and `flags`
    /// (a serializable struct whose `None` fields are skipped), then validates the result.
    pub fn load<F: Serialize>(file: Option<&Path>, flags: &F) -> Result<Self, ConfigError> {
        if let Some(path) = file
            && !path.exists()
        {
            return Err(ConfigError {
                key: "--config".into(),
                value: format!("{:?}", path.display().to_string()),
                problem: "file does not exist".into(),
                source_hint: String::new(),
            });
        }
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            // PROXIMA_NODE and PROXIMA_ADMIN_TOKEN are the CLI's, not configuration.
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .ignore(&["node", "admin_token"])
                    .split("__"),
            )
            .merge(Serialized::defaults(flags));
        let config: Config = figment.extract().map_err(|e| describe(&figment, e))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, problem: &str| ConfigError {
            key: key.into(),
            value,
            problem: problem.into(),
            source_hint: String::new(),
        };
        for (i, addr) in self.p2p_listen.iter().enumerate() {
            if !addr.starts_with('/') {
                return Err(bad(
                    &format!("p2p_listen[{i}]"),
                    format!("{addr:?}"),
                    "expected a multiaddr such as /ip4/127.0.0.1/udp/4301/quic-v1",
                ));
            }
        }
        for (i, addr) in self.bootstrap.iter().enumerate() {
            if !addr.starts_with('/') {
                return Err(bad(
                    &format!("bootstrap[{i}]"),
                    format!("{addr:?}"),
                    "expected a multiaddr such as /ip4/127.0.0.1/udp/4301/quic-v1",
                ));
            }
        }
        if self.ledger == LedgerKind::Eth {
            if self.eth_rpc.is_none() {
                return Err(bad(
                    "eth_rpc",
                    "<missing>".into(),
                    "required with ledger = \"eth\": an Ethereum JSON-RPC URL such as http://127.0.0.1:8545",
                ));
            }
            if self.eth_registry.is_none() {
                return Err(bad(
                    "eth_registry",
                    "<missing>".into(),
                    "required with ledger = \"eth\": the NameRegistry contract address (0x...)",
                ));
            }
        }
        if let Some(rpc) = &self.eth_rpc
            && !(rpc.starts_with("http://") || rpc.starts_with("https://"))
        {
            return Err(bad(
                "eth_rpc",
                format!("{rpc:?}"),
                "expected an http:// or https:// URL",
            ));
        }
        if let Some(addr) = &self.eth_registry {
            let hex_part = addr.strip_prefix("0x").unwrap_or("");
            if hex_part.len() != 40 || !hex_part.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(
                    "eth_registry",
                    format!("{addr:?}"),
                    "expected a 20-byte hex address such as 0x5FbDB2315678afecb367f032d93F642f64180aa3",
                ));
            }
        }
        if let Err((key, value, problem)) = self.cluster.validate() {
            return Err(bad(&key, value, &problem));
        }
        self.validate_admin()?;
        if self.mesh.identity_work_bits > 32 {
            return Err(bad(
                "mesh.identity_work_bits",
                self.mesh.identity_work_bits.to_string(),
                "expected 0 (none) to 32 bits; 16 costs about a second per identity",
            ));
        }
        if let Some(path) = &self.mesh.network_key_file
            && let Err(problem) = read_network_key(path)
        {
            return Err(bad(
                "mesh.network_key_file",
                format!("{:?}", path.display().to_string()),
                &problem,
            ));
        }
        if let Err((key, value, problem)) = self.naming.validate() {
            return Err(bad(&key, value, &problem));
        }
        if let Err(e) = self.dns.validate() {
            return Err(bad(
                &format!("dns.{}", e.key),
                format!("{:?}", e.value),
                &e.problem,
            ));
        }
        if let Err(e) = self.cdn.validate() {
            return Err(bad(&format!("cdn.{}", e.key), e.value, e.problem));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return Err(bad(
                "log",
                format!("{:?}", self.log),
                "expected a tracing filter such as \"info\" or \"info,dns=debug\"",
            ));
        }
        Ok(())
    }

    /// The `[admin]` checks, among them the bind rule (no non-loopback `admin_listen` without
    /// `require_token`); the node runs them at start too.
    pub fn validate_admin(&self) -> Result<(), ConfigError> {
        self.admin
            .validate(self.admin_listen)
            .map_err(|(key, value, problem)| ConfigError {
                key,
                value,
                problem,
                source_hint: String::new(),
            })
    }

    /// The data directory to use: the configured one or the platform default.
    pub fn resolved_data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// The configuration as TOML, for `proxima config show`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// `~/.local/share/proxima` (or the platform's equivalent); `./proxima-data` if there is none.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("proxima"))
        .unwrap_or_else(|| PathBuf::from("proxima-data"))
}

/// What a key accepts, for error messages.
fn allowed(key: &str) -> &'static str {
    match key.rsplit('.').next().unwrap_or(key) {
        k if k.ends_with("_listen") && k != "p2p_listen" => {
            "expected HOST:PORT such as 127.0.0.1:7300 (port 0 picks a free port)"
        }
        "p2p_listen" | "bootstrap" => "expected a list of multiaddrs",
        "ledger" => "allowed values: \"embedded\", \"eth\"",
        "log_format" => "allowed values: \"text\", \"json\"",
        "data_dir" => "expected a directory path",
        "require_token" => "expected true or false",
        "allowed_hosts" => "expected a list of host names",
        _ => "see `proxima config example` for the allowed keys and values",
    }
}

fn describe(figment: &Figment, err: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let key = if err.path.is_empty() {
        match &err.kind {
            Kind::UnknownField(field, _) => field.clone(),
            _ => "<config>".into(),
        }
    } else {
        err.path.join(".")
    };
    let value = figment
        .find_value(&key)
        .ok()
        .map(|v| match v {
            figment::value::Value::String(_, s) => format!("{s:?}"),
            other => format!("{other:?}"),
        })
        .unwrap_or_else(|| "<unset>".into());
    let problem = match &err.kind {
        Kind::UnknownField(field, _) => {
            format!("unknown key `{field}`; see `proxima config example` for the allowed keys")
        }
        kind => format!("{kind}; {}", allowed(&key)),
    };
    let source_hint = err
        .metadata
        .as_ref()
        .map(|m| {
            if m.name.contains("environment") {
                format!(
                    " (from environment variable {ENV_PREFIX}{})",
                    key.to_uppercase().replace('.', "__")
                )
            } else if let Some(src) = &m.source {
                format!(" (from {src})")
            } else {
                format!(" (from {})", m.name)
            }
        })
        .unwrap_or_default();
    ConfigError {
        key,
        value,
        problem,
        source_hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Default)]
    struct NoFlags {}

    #[test]
    fn example_file_parses_to_the_defaults() {
        let parsed: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(EXAMPLE))
            .extract()
            .expect("example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn bad_value_names_the_key_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "admin_listen = \"nonsense\"\n").unwrap();
        let err = Config::load(Some(&path), &NoFlags {}).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.key, "admin_listen", "{msg}");
        assert!(msg.contains("nonsense"), "{msg}");
        assert!(msg.contains("HOST:PORT"), "{msg}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "admn_listen = \"127.0.0.1:1\"\n").unwrap();
        let err = Config::load(Some(&path), &NoFlags {}).unwrap_err();
        assert!(err.to_string().contains("admn_listen"), "{err}");
    }

    #[test]
    fn flags_override_file() {
        #[derive(Serialize)]
        struct Flags {
            admin_listen: Option<SocketAddr>,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "admin_listen = \"127.0.0.1:1111\"\nhttp_listen = \"127.0.0.1:2222\"\n",
        )
        .unwrap();
        let flags = Flags {
            admin_listen: Some("127.0.0.1:3333".parse().unwrap()),
        };
        let c = Config::load(Some(&path), &flags).unwrap();
        assert_eq!(c.admin_listen.port(), 3333);
        assert_eq!(c.http_listen.port(), 2222);
    }

    #[test]
    fn eth_ledger_needs_rpc() {
        let c = Config {
            ledger: LedgerKind::Eth,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "eth_rpc");
    }
}
