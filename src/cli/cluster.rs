//! `proxima cluster ...`: the cluster key, join tokens, certificates and revocation.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::client::DEFAULT_NODE_URL;

/// `proxima cluster`.
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create a cluster key (a file to keep safe: whoever holds it admits members). A node
    /// started alone creates one in its data directory by itself; use this to keep it
    /// elsewhere (`[cluster] key_file`).
    Init {
        /// Where to write it (default: the data directory's `cluster/cluster.key`).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The data directory whose default key file to create.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Create a network key file (IPFS swarm.key format, mode 0600) for `[mesh]
    /// network_key_file`: a private deployment where peers without it are refused at the
    /// handshake. Copy it to every node.
    NetworkKey {
        /// Where to write it (never overwritten).
        file: PathBuf,
    },
    /// Print a one-time join token (for `proxima node --join-token`), from a node that holds
    /// the cluster key.
    Token {
        /// Roles the joining node is certified with (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "cache")]
        roles: Vec<String>,
        /// How long the token may be redeemed, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Certify a node by its peer id (signed by the node at --node, which must hold the
    /// cluster key, and handed to the peer if it is a member); prints the certificate.
    Admit {
        /// The peer id to certify.
        peer: String,
        /// Roles (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "cache")]
        roles: Vec<String>,
        /// Lifetime in days.
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a node's certificates: a signed list that spreads to every member.
    Revoke {
        /// The peer id to revoke.
        peer: String,
        #[command(flatten)]
        target: Target,
    },
    /// This node's cluster, certificate and standing.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// The registrar group: the members that keep the name ledger together (Raft).
    #[command(subcommand)]
    Registrar(RegistrarCommand),
}

/// `proxima cluster registrar`.
#[derive(Subcommand, Debug)]
pub enum RegistrarCommand {
    /// Add a member to the registrar group (it must be a live member holding the `registrar`
    /// role); it catches up, then votes. Groups of 1, 3 or 5 members tolerate 0, 1 or 2 losses.
    Add {
        /// The peer id of the node to add.
        peer: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a member from the registrar group (not the current leader: stop it first).
    Remove {
        /// The peer id of the member to remove.
        peer: String,
        #[command(flatten)]
        target: Target,
    },
    /// The group as the node at --node sees it: leader, voters, term.
    Status {
        #[command(flatten)]
        target: Target,
    },
}

/// Which node to talk to.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Admin URL of the node.
    #[arg(long, env = "PROXIMA_NODE", default_value = DEFAULT_NODE_URL)]
    pub node: String,
}

/// Runs a `proxima cluster` command; returns what to print.
pub async fn run(cmd: ClusterCommand) -> Result<String> {
    match cmd {
        ClusterCommand::Init { key_file, data_dir } => {
            let path = key_file.unwrap_or_else(|| {
                data_dir
                    .unwrap_or_else(crate::config::default_data_dir)
                    .join("cluster")
                    .join("cluster.key")
            });
            let key = crate::cluster::init_key(&path)?;
            Ok(format!(
                "cluster key written to {} (mode 0600)\ncluster {}\n",
                path.display(),
                hex::encode(key.public())
            ))
        }
        ClusterCommand::NetworkKey { file } => {
            if file.exists() {
                bail!(
                    "{} already exists: a key file is never overwritten",
                    file.display()
                );
            }
            let key: [u8; 32] = rand::random();
            crate::cluster::write_private(
                &file,
                &format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", hex::encode(key)),
            )?;
            Ok(format!(
                "network key written to {} (mode 0600); set [mesh] network_key_file on every node\n",
                file.display()
            ))
        }
        ClusterCommand::Token { roles, ttl, target } => {
            let v = post(
                &target.node,
                "/api/cluster/tokens",
                serde_json::json!({ "roles": roles, "ttl_secs": ttl }),
            )
            .await?;
            let t = v["token"].as_str().context("no token in the answer")?;
            Ok(format!("{t}\n"))
        }
        ClusterCommand::Admit {
            peer,
            roles,
            days,
            target,
        } => {
            let v = post(
                &target.node,
                "/api/cluster/admit",
                serde_json::json!({ "peer": peer, "roles": roles, "days": days }),
            )
            .await?;
            Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
        }
        ClusterCommand::Revoke { peer, target } => {
            let v = post(
                &target.node,
                "/api/cluster/revoke",
                serde_json::json!({ "peer": peer }),
            )
            .await?;
            Ok(format!(
                "revoked; list version {} with {} entries\n",
                v["version"],
                v["entries"].as_array().map_or(0, Vec::len)
            ))
        }
        ClusterCommand::Status { target } => {
            let v = crate::client::AdminClient::new(&target.node)?
                .get_json("/api/cluster")
                .await?;
            Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
        }
        ClusterCommand::Registrar(cmd) => registrar(cmd).await,
    }
}

async fn registrar(cmd: RegistrarCommand) -> Result<String> {
    // A new member may take up to a minute to catch up before it votes.
    let slow = |node: &str| crate::client::AdminClient::with_timeout(node, Duration::from_secs(90));
    let v = match cmd {
        RegistrarCommand::Add { peer, target } => {
            let path = "/api/cluster/registrars";
            let (status, v) = slow(&target.node)?
                .post_json(path, &serde_json::json!({ "peer": peer }))
                .await?;
            if !status.is_success() {
                bail!(
                    "{} {path}: {}",
                    status.as_u16(),
                    v["error"].as_str().unwrap_or("refused")
                );
            }
            v
        }
        RegistrarCommand::Remove { peer, target } => {
            let client = slow(&target.node)?;
            let path = format!("/api/cluster/registrars/{peer}");
            let (status, v) = client.delete_json(&path).await?;
            if !status.is_success() {
                bail!(
                    "{} {path}: {}",
                    status.as_u16(),
                    v["error"].as_str().unwrap_or("refused")
                );
            }
            v
        }
        RegistrarCommand::Status { target } => {
            crate::client::AdminClient::new(&target.node)?
                .get_json("/api/cluster/registrars")
                .await?
        }
    };
    Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
}

async fn post(node: &str, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
    let client = crate::client::AdminClient::new(node)?;
    let (status, v) = client.post_json(path, &body).await?;
    if !status.is_success() {
        bail!(
            "{} {path}: {}",
            status.as_u16(),
            v["error"].as_str().unwrap_or("refused")
        );
    }
    Ok(v)
}
