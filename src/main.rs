//! `proxima`: run a node, or talk to one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};
use serde::Serialize;

use proxima::client::{self, DEFAULT_NODE_URL};
use proxima::config::{self, Config, LedgerKind, LogFormat};
use proxima::node::{NodeHandle, NodeOptions};

#[derive(Parser, Debug)]
#[command(name = "proxima", version, about = "A decentralized edge network node", long_about = None)]
struct Cli {
    /// File holding the node's admin token (DATA/admin.token). Default: PROXIMA_ADMIN_TOKEN, else
    /// the runtime file of the node at --node on this machine.
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node (zero configuration needed on one machine).
    Node(Box<NodeArgs>),
    /// Show a running node's status.
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: NodeTarget,
    },
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Publish a site directory at a name (hash, upload what the node lacks, sign the zone).
    Publish(proxima::cli::publish::PublishCmd),
    /// Fetch a blob (HASH) or a site's file (NAME/PATH) through a node, verified.
    Get(proxima::cli::publish::GetCmd),
    /// Register names and edit their signed records (through a node).
    #[command(subcommand)]
    Name(proxima::cli::name::NameCommand),
    /// Deploy the NameRegistry contract to an Ethereum endpoint.
    #[command(subcommand)]
    Contracts(proxima::cli::name::ContractsCommand),
    /// Cluster membership: keys, join tokens, certificates, revocation.
    #[command(subcommand)]
    Cluster(proxima::cli::cluster::ClusterCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(proxima::cli::system::CompletionsCmd),
    /// Print the man page, or write it and one page per subcommand into a directory.
    Man(proxima::cli::system::ManCmd),
    /// Route the node's TLDs to it through systemd-resolved (split DNS), or undo that.
    #[command(subcommand)]
    Resolver(proxima::cli::system::ResolverCommand),
}

#[derive(Args, Debug, Clone)]
struct NodeTarget {
    /// Admin URL of the node to talk to.
    #[arg(long, env = "PROXIMA_NODE", default_value = DEFAULT_NODE_URL)]
    node: String,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the effective configuration (file < PROXIMA_* environment < flags).
    Show(Box<NodeArgs>),
    /// Print a commented example configuration file.
    Example,
}

/// Flags of `proxima node` (and `config show`). Every one overrides the file and environment.
#[derive(Args, Debug, Clone, Serialize)]
struct NodeArgs {
    /// TOML configuration file.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Data directory (identity, ledger, zones, blobs).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Admin HTTP listen address (/health, /metrics, API).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_listen: Option<SocketAddr>,
    /// DNS listen address (UDP and TCP).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_listen: Option<SocketAddr>,
    /// HTTP gateway listen address.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_listen: Option<SocketAddr>,
    /// Redis protocol listen address.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_listen: Option<SocketAddr>,
    /// QUIC data-plane listen address.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    quic_listen: Option<SocketAddr>,
    /// libp2p listen multiaddr (repeatable).
    #[arg(long)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    p2p_listen: Vec<String>,
    /// Bootstrap peer multiaddr (repeatable).
    #[arg(long)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bootstrap: Vec<String>,
    /// IP advertised to other nodes for services listening on 0.0.0.0 (default: the route
    /// to the first bootstrap peer, else the first non-loopback interface address).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    advertise_addr: Option<std::net::IpAddr>,
    /// Ledger to follow.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<LedgerKind>,
    /// Ethereum JSON-RPC URL (with --ledger eth).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    eth_rpc: Option<String>,
    /// NameRegistry contract address (with --ledger eth).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    eth_registry: Option<String>,
    /// Acknowledge cache writes only once the slot's live replicas applied them
    /// (`[cache] sync_replication`).
    #[arg(long)]
    #[serde(
        rename = "cache",
        skip_serializing_if = "std::ops::Not::not",
        serialize_with = "cache_sync_flag"
    )]
    cache_sync_replication: bool,
    /// A one-time join token from `proxima cluster token` (`[cluster] join_token`): the node
    /// obtains its membership certificate with it when it joins.
    #[arg(long)]
    #[serde(
        rename = "cluster",
        skip_serializing_if = "Option::is_none",
        serialize_with = "join_token_flag"
    )]
    join_token: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,
}

/// `--cache-sync-replication` as the `[cache]` table `{ sync_replication = true }`.
fn cache_sync_flag<S: serde::Serializer>(on: &bool, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry("sync_replication", on)?;
    m.end()
}

/// `--join-token T` as the `[cluster]` table `{ join_token = T }`.
fn join_token_flag<S: serde::Serializer>(t: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry("join_token", t)?;
    m.end()
}

impl NodeArgs {
    fn load(&self) -> Result<Config, config::ConfigError> {
        Config::load(self.config.as_deref(), self)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(path) = cli.token_file {
        client::set_token_file(path);
    }
    match cli.command {
        Command::Node(args) => run_node(*args),
        Command::Status { json, target } => {
            let out = block_on(client::status(&target.node, json))?;
            print!("{out}");
            if !out.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Name(cmd) => {
            print!("{}", block_on(proxima::cli::name::run_name(cmd))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Contracts(cmd) => {
            print!("{}", block_on(proxima::cli::name::run_contracts(cmd))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster(cmd) => {
            print!("{}", block_on(proxima::cli::cluster::run(cmd))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish(cmd) => {
            print!("{}", block_on(proxima::cli::publish::run_publish(cmd))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Get(cmd) => {
            print!("{}", block_on(proxima::cli::publish::run_get(cmd))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions(cmd) => {
            proxima::cli::system::completions(&cmd, Cli::command());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(cmd) => {
            print!("{}", proxima::cli::system::man(&cmd, Cli::command())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Resolver(cmd) => proxima::cli::system::resolver(cmd),
        Command::Config(ConfigCommand::Example) => {
            print!("{}", config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Show(args)) => {
            let config = args.load()?;
            print!("{}", config.to_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_node(args: NodeArgs) -> Result<ExitCode> {
    let config = match args.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    proxima::telemetry::init(config.log_format, &config.log);
    // Signal handlers go in before the node starts (and takes the data-dir lock), so a SIGTERM
    // that arrives at any point after that is a clean shutdown, never the default kill.
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stopped = signals.block_on(async { Signals::install() })?;
    let node = NodeHandle::start(config, NodeOptions::default())?;
    let stop = node.shutdown_token();
    signals.block_on(async {
        stopped.recv().await;
        tracing::info!("signal received; shutting down");
    });
    stop.cancel();
    node.wait();
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM, registered up front.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}
