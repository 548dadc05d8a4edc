//! The node's place in its cluster: which cluster key it believes (the *anchor*), the
//! membership certificate it presents, and, on a node that holds the cluster key, issuing
//! certificates (join tokens, `admit`), renewing them and revoking them.
//!
//! The certificates themselves are `mesh::trust`'s; this module keeps them in the data
//! directory and runs the small protocol that hands them out (ALPN [`ALPN`], one JSON request
//! and one JSON reply per stream, bounded by [`MAX_MESSAGE`]).
//!
//! Files, in `DATA/cluster/` (mode 0600, written with a temporary file and a rename):
//! - `cluster.key`: the cluster's secret key (hex seed), on the nodes that issue
//!   (`[cluster] key_file` to keep it elsewhere). A node started alone with nothing else
//!   creates one: it is its own cluster, as it always was.
//! - `anchor`: the cluster public key this node believes, pinned at the first start (from the
//!   key, a join token, `[cluster] anchor`, or, failing all three, from the certificate its
//!   bootstrap peers present: trust on first use, logged with a warning).
//! - `cert.json` and `issuer`: this node's certificate and who renews it.
//! - `tokens.json`, `revoked.json`: an issuer's outstanding join tokens and revocation list.

pub mod token;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mesh::PeerId;
use mesh::trust::{self, Certificate, ClusterKey, Revocations, TrustPolicy};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use token::JoinToken;

/// ALPN of the certificate protocol.
pub const ALPN: &[u8] = b"proxima/cluster/1";
/// Largest request or reply.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// How long a node started with a join token waits for its issuer to appear and answer.
const JOIN_DEADLINE: Duration = Duration::from_secs(30);
/// How often a certificate's remaining life is checked.
const RENEW_CHECK: Duration = Duration::from_secs(20);
/// Most outstanding join tokens one issuer keeps.
const MAX_TOKENS: usize = 1024;

/// `[cluster]`: who this node believes and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// A lab that believes every member (no certificates): a warning at every start.
    pub open: bool,
    /// The cluster's secret key file (default `DATA/cluster/cluster.key`). A node that holds it
    /// certifies itself and issues certificates to others.
    pub key_file: Option<PathBuf>,
    /// The cluster public key to believe (hex), if not learned from the key or a join token.
    pub anchor: Option<String>,
    /// Roles a key-holding node certifies itself with.
    pub roles: Vec<String>,
    /// Lifetime of the certificates this node issues, in days.
    pub cert_days: u32,
    /// A one-time join token (`proxima cluster token`): this node obtains its certificate with
    /// it when it joins.
    pub join_token: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            open: false,
            key_file: None,
            anchor: None,
            roles: vec![trust::ROLE_CACHE.into(), trust::ROLE_REGISTRAR.into()],
            cert_days: 30,
            join_token: None,
        }
    }
}

impl ClusterConfig {
    /// Checks what types alone cannot: `(key, value, problem)`.
    pub fn validate(&self) -> Result<(), (String, String, String)> {
        if let Some(a) = &self.anchor
            && parse_key(a).is_none()
        {
            return Err((
                "cluster.anchor".into(),
                format!("{a:?}"),
                "expected a cluster public key: 64 hex digits".into(),
            ));
        }
        if let Some(t) = &self.join_token
            && JoinToken::parse(t).is_err()
        {
            return Err((
                "cluster.join_token".into(),
                format!("{:?}", t.chars().take(16).collect::<String>()),
                "expected a token printed by `proxima cluster token`".into(),
            ));
        }
        if self.cert_days == 0 || self.cert_days > 3650 {
            return Err((
                "cluster.cert_days".into(),
                self.cert_days.to_string(),
                "expected 1 to 3650 days".into(),
            ));
        }
        if self.roles.len() > trust::MAX_ROLES
            || self
                .roles
                .iter()
                .any(|r| r.is_empty() || r.len() > trust::MAX_ROLE_LEN)
        {
            return Err((
                "cluster.roles".into(),
                format!("{:?}", self.roles),
                "expected at most 8 role names such as \"cache\", \"registrar\"".into(),
            ));
        }
        Ok(())
    }
}

/// A 32-byte key from 64 hex digits.
pub fn parse_key(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).ok()?;
    Some(out)
}

/// Reads a cluster key file (hex seed).
pub fn read_key(path: &Path) -> Result<ClusterKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cluster key {}", path.display()))?;
    let seed = parse_key(&text)
        .with_context(|| format!("{} is not a cluster key (64 hex digits)", path.display()))?;
    Ok(ClusterKey::from_seed(seed))
}

/// Creates a new cluster key file (refusing to overwrite one) and returns the key.
pub fn init_key(path: &Path) -> Result<ClusterKey> {
    if path.exists() {
        bail!(
            "{} already exists: a cluster key is never overwritten",
            path.display()
        );
    }
    let key = ClusterKey::generate();
    write_private(path, &hex::encode(key.seed()))?;
    Ok(key)
}

/// Writes `text` to `path` with mode 0600, through a temporary file, fsync and rename.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A request on [`ALPN`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Redeem a join token's secret for a certificate.
    Join {
        /// The token's secret (hex).
        secret: String,
    },
    /// Re-sign the asking peer's current, still valid certificate with a later expiry.
    Renew,
    /// An issuer hands a certificate to the peer it certifies (`proxima cluster admit`).
    Deliver {
        /// The certificate.
        cert: Certificate,
    },
}

/// A reply on [`ALPN`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// A certificate (and the current revocation list).
    Cert {
        /// The certificate.
        cert: Certificate,
        /// The issuer's revocation list.
        revoked: Option<Revocations>,
    },
    /// Accepted.
    Ok,
    /// Refused, with the reason.
    Refused {
        /// Why.
        reason: String,
    },
}

/// An outstanding join token on its issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    roles: Vec<String>,
    expires: u64,
}

/// The node's cluster membership. Cheap to clone.
#[derive(Clone)]
pub struct ClusterService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterService")
            .field("anchor", &self.anchor().map(hex::encode))
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    mesh: mesh::Mesh,
    key: Option<ClusterKey>,
    open: bool,
    cert_secs: u64,
    anchor: Mutex<Option<[u8; 32]>>,
    cert: Mutex<Option<Certificate>>,
    issuer: Mutex<Option<PeerId>>,
    tokens: Mutex<HashMap<String, Pending>>,
    revoked: Mutex<Option<Revocations>>,
    refused: Family<Vec<(String, String)>, Counter>,
    /// Wakes the renewal task when a new certificate is installed (its life may be short).
    installed: tokio::sync::Notify,
}

/// What `GET /api/cluster` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster public key believed (hex), if any.
    pub anchor: Option<String>,
    /// Whether the cluster is open (no certificates checked).
    pub open: bool,
    /// Whether this node holds the cluster key (issues certificates).
    pub issuer: bool,
    /// This node's certificate.
    pub certificate: Option<Certificate>,
    /// What it grants, as verified here.
    pub standing: trust::Standing,
    /// Peers on the revocation list.
    pub revoked: Vec<String>,
}

impl ClusterService {
    /// The cluster public key this node believes.
    pub fn anchor(&self) -> Option<[u8; 32]> {
        *self.inner.anchor.lock()
    }

    /// Whether this node holds the cluster key.
    pub fn is_issuer(&self) -> bool {
        self.inner.key.is_some()
    }

    /// Status for the admin API.
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            anchor: self.anchor().map(hex::encode),
            open: self.inner.open,
            issuer: self.is_issuer(),
            certificate: self.inner.cert.lock().clone(),
            standing: self.inner.mesh.own_standing(),
            revoked: self
                .inner
                .revoked
                .lock()
                .as_ref()
                .or(self.inner.mesh.revocations().as_ref())
                .map(|r| r.entries.iter().map(|(p, _)| p.clone()).collect())
                .unwrap_or_default(),
        }
    }

    fn key(&self) -> Result<&ClusterKey> {
        self.inner.key.as_ref().context(
            "this node does not hold the cluster key; ask a node that does (proxima cluster status shows `issuer`)",
        )
    }

    /// Creates a one-time join token granting `roles`, valid for `ttl`.
    pub fn new_token(&self, roles: Vec<String>, ttl: Duration) -> Result<JoinToken> {
        let key = self.key()?;
        check_roles(&roles)?;
        let secret: [u8; 16] = rand::random();
        let now = trust::unix_now();
        let mut tokens = self.inner.tokens.lock();
        tokens.retain(|_, p| p.expires > now);
        if tokens.len() >= MAX_TOKENS {
            bail!("{MAX_TOKENS} join tokens are outstanding; let some expire first");
        }
        tokens.insert(
            hex::encode(secret),
            Pending {
                roles,
                expires: now.saturating_add(ttl.as_secs()),
            },
        );
        self.save_tokens(&tokens)?;
        Ok(JoinToken {
            cluster: key.public(),
            issuer: self.inner.mesh.peer_id(),
            secret,
        })
    }

    /// Signs a certificate for `peer` and, if it is a member, delivers it.
    pub async fn admit(&self, peer: PeerId, roles: Vec<String>, secs: u64) -> Result<Certificate> {
        check_roles(&roles)?;
        let cert = self.key()?.certify(peer, &roles, secs);
        if peer == self.inner.mesh.peer_id() {
            self.install(cert.clone()).await?;
        } else if self.inner.mesh.members().iter().any(|m| m.id.peer == peer) {
            match call(
                &self.inner.mesh,
                peer,
                &Request::Deliver { cert: cert.clone() },
            )
            .await
            {
                Ok(Reply::Ok) => {}
                Ok(other) => tracing::warn!(%peer, ?other, "certificate not taken"),
                Err(e) => tracing::warn!(%peer, error = %e, "cannot deliver the certificate"),
            }
        }
        Ok(cert)
    }

    /// Revokes `peer`'s certificates: a new signed list, spread with this node's packets.
    pub async fn revoke(&self, peer: PeerId) -> Result<Revocations> {
        let key = self.key()?;
        let until = self
            .inner
            .mesh
            .members()
            .iter()
            .find(|m| m.id.peer == peer)
            .and_then(|m| m.meta.as_ref()?.cert.as_ref().map(|c| c.not_after))
            .unwrap_or_else(|| trust::unix_now() + self.inner.cert_secs);
        let current = self
            .inner
            .revoked
            .lock()
            .clone()
            .or_else(|| self.inner.mesh.revocations());
        let mut entries = current
            .as_ref()
            .map(|r| r.entries.clone())
            .unwrap_or_default();
        entries.push((peer.to_string(), until));
        let version = current
            .map_or(0, |r| r.version + 1)
            .max(mesh::membership::generation_now());
        let list = key.revoke(version, &entries);
        write_private(
            &self.inner.dir.join("revoked.json"),
            &serde_json::to_string(&list)?,
        )?;
        *self.inner.revoked.lock() = Some(list.clone());
        self.inner.mesh.set_revocations(list.clone()).await;
        Ok(list)
    }

    /// Takes `cert` as this node's certificate if it is valid for this node under the anchor.
    async fn install(&self, cert: Certificate) -> Result<()> {
        let anchor = self
            .anchor()
            .context("no cluster anchor to check it against")?;
        cert.verify(&anchor, &self.inner.mesh.peer_id(), trust::unix_now())
            .map_err(|e| anyhow::anyhow!("certificate refused: {e}"))?;
        write_private(
            &self.inner.dir.join("cert.json"),
            &serde_json::to_string_pretty(&cert)?,
        )?;
        *self.inner.cert.lock() = Some(cert.clone());
        self.inner.mesh.set_certificate(Some(cert)).await;
        self.inner.installed.notify_one();
        Ok(())
    }

    fn save_tokens(&self, tokens: &HashMap<String, Pending>) -> Result<()> {
        write_private(
            &self.inner.dir.join("tokens.json"),
            &serde_json::to_string(tokens)?,
        )
    }

    /// Serves one request from `peer` (authenticated by the QUIC handshake).
    async fn handle(&self, peer: PeerId, req: Request) -> Reply {
        let refuse = |reason: &str| {
            self.inner
                .refused
                .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
                .inc();
            tracing::info!(%peer, reason, "cluster request refused");
            Reply::Refused {
                reason: reason.to_owned(),
            }
        };
        match req {
            Request::Join { secret } => {
                let Some(key) = self.inner.key.as_ref() else {
                    return refuse("not an issuer");
                };
                let pending = {
                    let mut tokens = self.inner.tokens.lock();
                    let p = tokens.remove(&secret);
                    let _ = self.save_tokens(&tokens);
                    p
                };
                let Some(p) = pending.filter(|p| p.expires > trust::unix_now()) else {
                    return refuse("unknown, used or expired join token");
                };
                tracing::info!(%peer, roles = ?p.roles, "join token redeemed");
                Reply::Cert {
                    cert: key.certify(peer, &p.roles, self.inner.cert_secs),
                    revoked: self.inner.revoked.lock().clone(),
                }
            }
            Request::Renew => {
                let Some(key) = self.inner.key.as_ref() else {
                    return refuse("not an issuer");
                };
                // Only a member whose current certificate this node believes may extend it.
                let current = self.inner.mesh.members().into_iter().find(|m| {
                    m.id.peer == peer && matches!(m.standing, trust::Standing::Certified(_))
                });
                let Some(cert) = current.and_then(|m| m.meta?.cert) else {
                    return refuse("no valid certificate to renew");
                };
                Reply::Cert {
                    cert: key.certify(peer, &cert.roles, self.inner.cert_secs),
                    revoked: self.inner.revoked.lock().clone(),
                }
            }
            Request::Deliver { cert } => {
                let from_issuer = self.anchor().is_some_and(|a| {
                    // Whoever delivers it, the certificate speaks for itself: it must be ours
                    // and signed by our cluster.
                    cert.verify(&a, &self.inner.mesh.peer_id(), trust::unix_now())
                        .is_ok()
                });
                if !from_issuer {
                    return refuse("certificate not for this node or not from its cluster");
                }
                *self.inner.issuer.lock() = Some(peer);
                let _ = write_private(&self.inner.dir.join("issuer"), &peer.to_string());
                match self.install(cert).await {
                    Ok(()) => Reply::Ok,
                    Err(_) => refuse("certificate refused"),
                }
            }
        }
    }

    /// Renews this node's certificate once a third of its life is left: a key holder signs it
    /// itself, others ask their issuer.
    async fn renew_if_due(&self) {
        let Some(cert) = self.inner.cert.lock().clone() else {
            return;
        };
        let now = trust::unix_now();
        let life = cert.not_after.saturating_sub(cert.not_before).max(1);
        if cert.not_after.saturating_sub(now) > life / 3 {
            return;
        }
        let me = self.inner.mesh.peer_id();
        let issuer = *self.inner.issuer.lock();
        let renewed = if let Some(key) = &self.inner.key {
            Some(key.certify(me, &cert.roles, self.inner.cert_secs))
        } else if let Some(issuer) = issuer {
            match call(&self.inner.mesh, issuer, &Request::Renew).await {
                Ok(Reply::Cert { cert, .. }) => Some(cert),
                Ok(other) => {
                    tracing::warn!(?other, "certificate renewal refused");
                    None
                }
                Err(e) => {
                    tracing::warn!(%issuer, error = %e, "cannot renew the certificate");
                    None
                }
            }
        } else {
            None
        };
        if let Some(c) = renewed {
            match self.install(c).await {
                Ok(()) => tracing::info!("membership certificate renewed"),
                Err(e) => tracing::warn!(error = %e, "renewed certificate refused"),
            }
        }
    }
}

fn check_roles(roles: &[String]) -> Result<()> {
    if roles.is_empty()
        || roles.len() > trust::MAX_ROLES
        || roles
            .iter()
            .any(|r| r.is_empty() || r.len() > trust::MAX_ROLE_LEN)
    {
        bail!("roles: expected 1 to 8 names such as cache, registrar");
    }
    Ok(())
}

/// One request and its reply to `peer` on [`ALPN`].
async fn call(mesh: &mesh::Mesh, peer: PeerId, req: &Request) -> Result<Reply> {
    let (mut send, mut recv) = mesh.open_bi(peer, ALPN).await?;
    mesh::frame::write(&mut send, &serde_json::to_vec(req)?).await?;
    let _ = send.finish();
    let bytes = tokio::time::timeout(
        Duration::from_secs(10),
        mesh::frame::FrameDecoder::new(MAX_MESSAGE).read(&mut recv),
    )
    .await
    .context("no answer within 10 s")??
    .context("stream ended without an answer")?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Loads (or creates) this node's cluster state, sets what the mesh believes, obtains a
/// certificate with a join token if one is given, and serves [`ALPN`].
pub async fn start(
    config: &ClusterConfig,
    has_bootstrap: bool,
    data_dir: &Path,
    mesh: &mesh::Mesh,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<ClusterService> {
    let dir = data_dir.join("cluster");
    std::fs::create_dir_all(&dir)?;
    let refused = Family::<Vec<(String, String)>, Counter>::default();
    registry.register(
        "refused_requests",
        "Certificate requests refused (bad token, nothing to renew, foreign certificate)",
        refused.clone(),
    );
    if config.open {
        tracing::warn!(
            "[cluster] open = true: every member is believed with every role (a lab setting; \
             any process that reaches this node's ports can own cache slots)"
        );
        mesh.set_trust_policy(TrustPolicy {
            anchor: None,
            open: true,
        })
        .await;
        return Ok(ClusterService {
            inner: Arc::new(Inner {
                dir,
                mesh: mesh.clone(),
                key: None,
                open: true,
                cert_secs: u64::from(config.cert_days) * 86_400,
                anchor: Mutex::new(None),
                cert: Mutex::new(None),
                issuer: Mutex::new(None),
                tokens: Mutex::default(),
                revoked: Mutex::new(None),
                refused,
                installed: tokio::sync::Notify::new(),
            }),
        });
    }
    let key_path = config
        .key_file
        .clone()
        .unwrap_or_else(|| dir.join("cluster.key"));
    let token = config
        .join_token
        .as_deref()
        .map(JoinToken::parse)
        .transpose()?;
    let stored_anchor = std::fs::read_to_string(dir.join("anchor"))
        .ok()
        .and_then(|s| parse_key(&s));
    let configured = config.anchor.as_deref().and_then(parse_key);
    let mut key = if key_path.exists() {
        Some(read_key(&key_path)?)
    } else {
        None
    };
    if key.is_none()
        && token.is_none()
        && stored_anchor.is_none()
        && configured.is_none()
        && !has_bootstrap
    {
        // Alone with nothing else: this node is its own cluster, as a lone node always was.
        key = Some(init_key(&key_path)?);
        tracing::info!(key = %key_path.display(), "created a cluster key: this node is its own cluster");
    }
    // Every source of the anchor must agree: a data directory belongs to one cluster.
    let sources = [
        key.as_ref().map(|k| ("cluster key", k.public())),
        token.as_ref().map(|t| ("join token", t.cluster)),
        configured.map(|a| ("[cluster] anchor", a)),
        stored_anchor.map(|a| ("DATA/cluster/anchor", a)),
    ];
    let mut anchor: Option<(&str, [u8; 32])> = None;
    for (what, a) in sources.into_iter().flatten() {
        match anchor {
            Some((first, b)) if a != b => bail!(
                "the {what} names cluster {} but the {first} names {}; one data directory \
                 belongs to one cluster",
                hex::encode(a),
                hex::encode(b)
            ),
            Some(_) => {}
            None => anchor = Some((what, a)),
        }
    }
    let issuer = std::fs::read_to_string(dir.join("issuer"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .or(token.as_ref().map(|t| t.issuer));
    let cert = std::fs::read_to_string(dir.join("cert.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Certificate>(&s).ok());
    let tokens = std::fs::read_to_string(dir.join("tokens.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let revoked = std::fs::read_to_string(dir.join("revoked.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Revocations>(&s).ok());
    let svc = ClusterService {
        inner: Arc::new(Inner {
            dir: dir.clone(),
            mesh: mesh.clone(),
            key,
            open: false,
            cert_secs: u64::from(config.cert_days) * 86_400,
            anchor: Mutex::new(None),
            cert: Mutex::new(None),
            issuer: Mutex::new(issuer),
            tokens: Mutex::new(tokens),
            revoked: Mutex::new(revoked.clone()),
            refused,
            installed: tokio::sync::Notify::new(),
        }),
    };
    let handler = svc.clone();
    mesh.dataplane()
        .serve_streams(ALPN, move |peer, mut send, mut recv| {
            let svc = handler.clone();
            Box::pin(async move {
                let Ok(Some(bytes)) = mesh::frame::FrameDecoder::new(MAX_MESSAGE)
                    .read(&mut recv)
                    .await
                else {
                    return;
                };
                let reply = match serde_json::from_slice::<Request>(&bytes) {
                    Ok(req) => svc.handle(peer, req).await,
                    Err(_) => Reply::Refused {
                        reason: "malformed request".into(),
                    },
                };
                if let Ok(b) = serde_json::to_vec(&reply) {
                    let _ = mesh::frame::write(&mut send, &b).await;
                }
                let _ = send.finish();
            })
        })?;

    let anchor = match anchor {
        Some((_, a)) => Some(a),
        None => learn_anchor(mesh, shutdown).await,
    };
    if let Some(a) = anchor {
        svc.pin_anchor(a).await?;
        if let Some(list) = revoked {
            mesh.set_revocations(list).await;
        }
    }

    // The certificate: self-signed by a key holder, else the stored one, else a join.
    let me = mesh.peer_id();
    if let Some(k) = svc.inner.key.clone() {
        let c = k.certify(me, &config.roles, svc.inner.cert_secs);
        svc.install(c).await?;
    } else if let Some(c) =
        cert.filter(|c| anchor.is_some_and(|a| c.verify(&a, &me, trust::unix_now()).is_ok()))
    {
        svc.install(c).await?;
    } else if let Some(t) = &token {
        let c = join(mesh, t).await?;
        svc.install(c).await?;
        let _ = write_private(&dir.join("issuer"), &t.issuer.to_string());
        tracing::info!(issuer = %t.issuer, "joined the cluster with a token");
    } else {
        tracing::warn!(
            "this node holds no membership certificate: it serves names and sites, but holds \
             no one's cache data and its cache serves only itself; join with \
             `--join-token` (from `proxima cluster token` on a member) or ask for \
             `proxima cluster admit`"
        );
    }

    let renew = svc.clone();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        loop {
            renew.renew_if_due().await;
            // Checked at least four times in the last third of a certificate's life.
            let pause = renew
                .inner
                .cert
                .lock()
                .as_ref()
                .map(|c| {
                    let left = c.not_after.saturating_sub(trust::unix_now());
                    Duration::from_secs(left / 4)
                })
                .unwrap_or(RENEW_CHECK)
                .clamp(Duration::from_secs(1), RENEW_CHECK);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
                _ = renew.inner.installed.notified() => {}
            }
        }
    });
    Ok(svc)
}

impl ClusterService {
    async fn pin_anchor(&self, anchor: [u8; 32]) -> Result<()> {
        write_private(&self.inner.dir.join("anchor"), &hex::encode(anchor))?;
        *self.inner.anchor.lock() = Some(anchor);
        self.inner
            .mesh
            .set_trust_policy(TrustPolicy {
                anchor: Some(anchor),
                open: false,
            })
            .await;
        Ok(())
    }
}

/// The cluster key presented by the bootstrap peers (trust on first use; a join token pins
/// it instead). Waits up to [`JOIN_DEADLINE`] for one of them to show a certificate.
async fn learn_anchor(mesh: &mesh::Mesh, shutdown: &CancellationToken) -> Option<[u8; 32]> {
    let deadline = tokio::time::Instant::now() + JOIN_DEADLINE;
    loop {
        let boot = mesh.control().bootstrap_peers();
        let found = mesh
            .members()
            .into_iter()
            .filter(|m| boot.contains(&m.id.peer))
            .find_map(|m| {
                let cert = m.meta?.cert?;
                // The certificate must at least be a valid one of the cluster it names.
                let key = cert.cluster_key().ok()?;
                cert.verify(&key, &m.id.peer, trust::unix_now()).ok()?;
                Some((m.id.peer, key))
            });
        if let Some((peer, key)) = found {
            tracing::warn!(
                cluster = %hex::encode(key),
                bootstrap = %peer,
                "believing the cluster key of the bootstrap peer (trust on first use; pinned \
                 from now on; a join token or [cluster] anchor pins it explicitly)"
            );
            return Some(key);
        }
        if tokio::time::Instant::now() >= deadline || shutdown.is_cancelled() {
            tracing::warn!("no bootstrap peer presented a cluster certificate: no cluster known");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redeems a join token with its issuer, waiting for the issuer to be a live member.
async fn join(mesh: &mesh::Mesh, token: &JoinToken) -> Result<Certificate> {
    let deadline = tokio::time::Instant::now() + JOIN_DEADLINE;
    let mut last_err = String::from("the issuer never appeared among the members");
    loop {
        let present = mesh
            .members()
            .iter()
            .any(|m| m.id.peer == token.issuer && m.state == mesh::MemberState::Alive);
        if present {
            let req = Request::Join {
                secret: hex::encode(token.secret),
            };
            match call(mesh, token.issuer, &req).await {
                Ok(Reply::Cert { cert, revoked }) => {
                    cert.verify(&token.cluster, &mesh.peer_id(), trust::unix_now())
                        .map_err(|e| anyhow::anyhow!("the issuer's certificate is invalid: {e}"))?;
                    if let Some(list) = revoked {
                        mesh.set_revocations(list).await;
                    }
                    return Ok(cert);
                }
                Ok(Reply::Refused { reason }) => bail!("the join token was refused: {reason}"),
                Ok(Reply::Ok) => last_err = "unexpected answer".into(),
                Err(e) => last_err = format!("{e:#}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "cannot join the cluster within {JOIN_DEADLINE:?}: {last_err} (issuer {})",
                token.issuer
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
