//! `proxima name ...` and `proxima contracts ...`: the CLI side of the naming service.
//!
//! Name commands talk to a running node's admin API (`/api/names`, see [`crate::names::api`]);
//! names are validated here too, so a malformed name fails before any request is sent.
//! `contracts deploy` talks to an Ethereum JSON-RPC endpoint directly.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::client::DEFAULT_NODE_URL;
use naming::{ETH_KEY_ENV, NameInfo, RecordView, keystore};

/// Which node to talk to.
#[derive(Args, Debug, Clone)]
pub struct NodeUrl {
    /// Admin URL of the node to talk to.
    #[arg(long, env = "PROXIMA_NODE", default_value = DEFAULT_NODE_URL)]
    pub node: String,
}

/// `proxima name ...`
#[derive(Subcommand, Debug)]
pub enum NameCommand {
    /// Register a name (first come, first served) with a new zone key.
    Register {
        /// The name, e.g. blog.proxima.
        name: String,
        /// Registration periods (years on the default ledger).
        #[arg(long, default_value_t = 1)]
        years: u32,
        #[command(flatten)]
        target: NodeUrl,
    },
    /// Show a name's owner, zone key, expiry and zone.
    Show {
        /// The name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: NodeUrl,
    },
    /// Add or update a record (A, AAAA, CNAME, TXT, MX, CAA, SRV, HTTPS, SITE); re-signs the zone.
    Set {
        /// The owner name: the registered name or a name below it.
        name: String,
        /// Record type.
        #[arg(value_name = "TYPE")]
        rtype: String,
        /// Value in zone-file form, e.g. 192.0.2.7 or "10 mail.x.proxima" (quote it if it has
        /// spaces).
        value: String,
        /// TTL in seconds.
        #[arg(long)]
        ttl: Option<u32>,
        #[command(flatten)]
        target: NodeUrl,
    },
    /// Remove a name's records of a type (only those equal to VALUE if given).
    Rm {
        /// The owner name.
        name: String,
        /// Record type.
        #[arg(value_name = "TYPE")]
        rtype: String,
        /// Only records with this value.
        value: Option<String>,
        #[command(flatten)]
        target: NodeUrl,
    },
    /// List the records of a name's zone.
    Records {
        /// The name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: NodeUrl,
    },
    /// Extend a registration.
    Renew {
        /// The name.
        name: String,
        /// Periods to add.
        #[arg(long, default_value_t = 1)]
        years: u32,
        #[command(flatten)]
        target: NodeUrl,
    },
    /// Give a name to another owner (hex Ed25519 key, or 0x address on Ethereum).
    Transfer {
        /// The name.
        name: String,
        /// The new owner.
        new_owner: String,
        #[command(flatten)]
        target: NodeUrl,
    },
    /// Replace the zone key with a new one and re-sign the zone.
    RotateKey {
        /// The name.
        name: String,
        #[command(flatten)]
        target: NodeUrl,
    },
    /// List the names this node holds zones for.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: NodeUrl,
    },
}

/// `proxima contracts ...`
#[derive(Subcommand, Debug)]
pub enum ContractsCommand {
    /// Deploy the NameRegistry contract; prints its address and deployment block.
    Deploy {
        /// Ethereum JSON-RPC endpoint.
        #[arg(long)]
        rpc: String,
        /// File with the deployer's account key (hex). Default: the ETH_PRIVATE_KEY variable.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Registration period in days.
        #[arg(long, default_value_t = 365)]
        term_days: u64,
        /// Fee per period, in wei.
        #[arg(long, default_value = "0")]
        fee_wei: String,
    },
}

struct Api {
    base: reqwest::Url,
    http: reqwest::Client,
}

impl Api {
    fn new(node: &str) -> Result<Self> {
        let base = if node.contains("://") {
            node.to_owned()
        } else {
            format!("http://{node}")
        };
        let base =
            reqwest::Url::parse(&base).with_context(|| format!("bad --node URL {node:?}"))?;
        let http = crate::client::admin_http(
            base.as_str(),
            reqwest::Client::builder().timeout(Duration::from_secs(60)),
        )?;
        Ok(Self { base, http })
    }

    fn url(&self, segments: &[&str]) -> Result<reqwest::Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("--node must be an http URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach the node at {} (is `proxima node` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            let msg = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(body);
            bail!("{msg}");
        }
        serde_json::from_str(&body).with_context(|| format!("unexpected answer: {body}"))
    }

    /// `POST /api/names/{name}/{action}` with a JSON body: renew, transfer, rotate-key.
    async fn name_action(
        &self,
        name: &str,
        action: &str,
        body: serde_json::Value,
    ) -> Result<NameInfo> {
        let url = self.url(&["api", "names", name, action])?;
        self.send(self.http.post(url).json(&body)).await
    }
}

fn check_name(name: &str) -> Result<()> {
    naming::Name::parse(name)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("invalid name {name:?}: {e}"))
}

/// Runs a name command; returns what to print.
pub async fn run_name(cmd: NameCommand) -> Result<String> {
    match cmd {
        NameCommand::Register {
            name,
            years,
            target,
        } => {
            check_name(&name)?;
            let api = Api::new(&target.node)?;
            let info: NameInfo = api
                .send(
                    api.http
                        .post(api.url(&["api", "names"])?)
                        .json(&json!({ "name": name, "years": years })),
                )
                .await?;
            Ok(format!(
                "registered {} until {} (owner {}, zone key {})\n",
                info.name, info.expires, info.owner, info.zone_key
            ))
        }
        NameCommand::Show { name, json, target } => {
            check_name(&name)?;
            let api = Api::new(&target.node)?;
            let info: NameInfo = api
                .send(api.http.get(api.url(&["api", "names", &name])?))
                .await?;
            if json {
                return Ok(serde_json::to_string_pretty(&info)? + "\n");
            }
            Ok(render_info(&info))
        }
        NameCommand::Set {
            name,
            rtype,
            value,
            ttl,
            target,
        } => {
            check_name(&name)?;
            let api = Api::new(&target.node)?;
            let records: Vec<RecordView> = api
                .send(
                    api.http
                        .post(api.url(&["api", "names", &name, "records"])?)
                        .json(&json!({ "type": rtype, "value": value, "ttl": ttl })),
                )
                .await?;
            Ok(render_records(&records))
        }
        NameCommand::Rm {
            name,
            rtype,
            value,
            target,
        } => {
            check_name(&name)?;
            let api = Api::new(&target.node)?;
            let mut url = api.url(&["api", "names", &name, "records"])?;
            url.query_pairs_mut().append_pair("type", &rtype);
            if let Some(v) = &value {
                url.query_pairs_mut().append_pair("value", v);
            }
            let v: serde_json::Value = api.send(api.http.delete(url)).await?;
            Ok(format!("removed {} record(s)\n", v["removed"]))
        }
        NameCommand::Records { name, json, target } => {
            check_name(&name)?;
            let api = Api::new(&target.node)?;
            let records: Vec<RecordView> = api
                .send(api.http.get(api.url(&["api", "names", &name, "records"])?))
                .await?;
            if json {
                return Ok(serde_json::to_string_pretty(&records)? + "\n");
            }
            Ok(render_records(&records))
        }
        NameCommand::Renew {
            name,
            years,
            target,
        } => {
            check_name(&name)?;
            let api = Api::new(&target.node)?;
            let info = api
                .name_action(&name, "renew", json!({ "years": years }))
                .await?;
            Ok(format!("{} renewed until {}\n", info.name, info.expires))
        }
        NameCommand::Transfer {
            name,
            new_owner,
            target,
        } => {
            check_name(&name)?;
            let api = Api::new(&target.node)?;
            let info = api
                .name_action(&name, "transfer", json!({ "new_owner": new_owner }))
                .await?;
            Ok(format!("{} now belongs to {}\n", info.name, info.owner))
        }
        NameCommand::RotateKey { name, target } => {
            check_name(&name)?;
            let api = Api::new(&target.node)?;
            let info = api.name_action(&name, "rotate-key", json!({})).await?;
            Ok(format!(
                "{} has a new zone key {} (zone re-signed, sequence {})\n",
                info.name,
                info.zone_key,
                info.zone.as_ref().map_or(0, |z| z.sequence)
            ))
        }
        NameCommand::List { json, target } => {
            let api = Api::new(&target.node)?;
            let infos: Vec<NameInfo> = api.send(api.http.get(api.url(&["api", "names"])?)).await?;
            if json {
                return Ok(serde_json::to_string_pretty(&infos)? + "\n");
            }
            let mut out = String::new();
            for i in infos {
                out.push_str(&format!(
                    "{}\t{}\texpires {}\n",
                    i.name,
                    if i.live { "live" } else { "expired" },
                    i.expires
                ));
            }
            Ok(out)
        }
    }
}

fn render_info(i: &NameInfo) -> String {
    let mut out = format!(
        "name:      {}\nledger:    {}\nowner:     {}{}\nzone key:  {}{}\nexpires:   {} ({})\n",
        i.name,
        i.ledger,
        i.owner,
        if i.owned_by_this_node {
            " (this node)"
        } else {
            ""
        },
        i.zone_key,
        if i.zone_key_held { " (held here)" } else { "" },
        i.expires,
        if i.live { "live" } else { "expired" },
    );
    match &i.zone {
        Some(z) => {
            out.push_str(&format!(
                "zone:      sequence {}, {} records\n",
                z.sequence,
                z.records.len()
            ));
            out.push_str(&render_records(&z.records));
        }
        None => out.push_str("zone:      none held\n"),
    }
    out
}

fn render_records(records: &[RecordView]) -> String {
    records
        .iter()
        .map(|r| format!("{}\t{}\t{}\t{}\n", r.owner, r.ttl, r.rtype, r.value))
        .collect()
}

/// Runs a contracts command; returns what to print.
pub async fn run_contracts(cmd: ContractsCommand) -> Result<String> {
    match cmd {
        ContractsCommand::Deploy {
            rpc,
            key_file,
            term_days,
            fee_wei,
        } => {
            let secret = match key_file {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))?;
                    keystore::read_secret_hex(&text, "--key-file")?
                }
                None => {
                    let v = std::env::var(ETH_KEY_ENV).map_err(|_| {
                        anyhow::anyhow!("give the deployer key with --key-file or {ETH_KEY_ENV}")
                    })?;
                    keystore::read_secret_hex(&v, ETH_KEY_ENV)?
                }
            };
            let fee: alloy_u256::U256 = fee_wei
                .parse()
                .map_err(|_| anyhow::anyhow!("--fee-wei must be a decimal number"))?;
            let (address, block) = contracts::deploy(
                &rpc,
                &naming::OwnerKey::Secp256k1(secret),
                Duration::from_secs(term_days.saturating_mul(86_400)),
                fee,
            )
            .await?;
            Ok(format!(
                "NameRegistry deployed at {address} (block {block})\nrun nodes with: --ledger eth --eth-rpc {rpc} --eth-registry {address}\n(and [naming] eth_from_block = {block})\n"
            ))
        }
    }
}

mod alloy_u256 {
    pub(crate) use contracts::U256;
}
