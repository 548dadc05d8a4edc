//! State shared by every connection of one cache server (one per node; nothing global).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::db::{Db, Policy};
use crate::metrics::Metrics;
use crate::pubsub::PubSub;
use crate::resp::Limits;

/// Counters for `INFO stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused (`maxclients`).
    pub rejected: AtomicU64,
    /// Commands run.
    pub commands: AtomicU64,
    /// Bytes read from clients.
    pub net_in: AtomicU64,
    /// Bytes written to clients.
    pub net_out: AtomicU64,
    /// Connections closed for protocol errors.
    pub protocol_errors: AtomicU64,
}

/// One connected client, as `CLIENT LIST` shows it.
#[derive(Debug)]
pub struct ClientInfo {
    /// `CLIENT ID`.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// When it connected.
    pub created: Instant,
    /// `CLIENT SETNAME`.
    pub name: Mutex<String>,
    /// `CLIENT SETINFO LIB-NAME` / `LIB-VER`.
    pub lib: Mutex<(String, String)>,
    /// Cancelled to disconnect the client (`CLIENT KILL`, a full pub/sub queue).
    pub kill: CancellationToken,
    /// Number of channel and pattern subscriptions.
    pub subs: AtomicUsize,
    /// RESP3.
    pub resp3: AtomicBool,
    /// What it did last, its query buffer, its modes (`CLIENT LIST`).
    pub activity: crate::introspect::Activity,
    /// The ACL user it is logged in as.
    pub user: Mutex<Vec<u8>>,
    /// Its message queue (tracking invalidations redirected to it).
    pub queue: crate::pubsub::Subscriber,
}

/// The shared state of one cache server.
#[derive(Debug)]
pub struct Shared {
    /// The keyspace.
    pub db: Mutex<Db>,
    /// Channel and pattern subscriptions.
    pub pubsub: Mutex<PubSub>,
    /// `CONFIG GET`/`SET` parameters (lowercase name -> value).
    pub params: RwLock<BTreeMap<String, String>>,
    /// `requirepass` (empty = none).
    pub requirepass: RwLock<String>,
    max_bulk: AtomicUsize,
    /// Connected clients by id.
    pub clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    next_id: AtomicU64,
    /// Counters.
    pub stats: Stats,
    /// Start time.
    pub started: Instant,
    /// 40 hex characters: `run_id` in INFO and the node id in `CLUSTER MYID/NODES`.
    pub node_id: String,
    /// The real listen address.
    pub addr: SocketAddr,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Maximum number of clients.
    pub maxclients: AtomicUsize,
    /// `min-replicas-to-write`: a standalone node has no replicas, so any value above 0
    /// refuses writes with `NOREPLICAS`, as Redis without replicas does. In a cluster the
    /// node's own replication settings (`cache.sync_replication`) govern writes instead.
    pub min_replicas_to_write: AtomicUsize,
    /// Where keys live when the server runs on a mesh (the cluster); unset: every slot is
    /// here.
    pub placement: std::sync::OnceLock<Arc<dyn crate::placement::Placement>>,
    /// Command, error, slow log and latency records.
    pub intro: crate::introspect::Introspection,
    /// Lua scripts and functions (EVAL, FUNCTION) and what runs now.
    pub scripting: crate::script::Scripting,
    /// ACL users and the ACL log.
    pub acl: RwLock<crate::acl::Acl>,
    /// Client-side caching: tracking clients and the keys they read.
    pub tracking: Mutex<crate::tracking::Table>,
}

/// Parameters `CONFIG GET` knows, with their defaults. Persistence and encoding knobs are
/// accepted (test harnesses set them) and have no effect on a cache.
const PARAM_DEFAULTS: &[(&str, &str)] = &[
    ("maxmemory", "0"),
    ("maxmemory-policy", "allkeys-lfu"),
    ("maxmemory-samples", "5"),
    ("lfu-log-factor", "10"),
    ("lfu-decay-time", "1"),
    ("proto-max-bulk-len", "536870912"),
    ("maxclients", "10000"),
    ("timeout", "0"),
    ("tcp-keepalive", "300"),
    ("databases", "1"),
    ("save", ""),
    ("appendonly", "no"),
    ("appendfsync", "everysec"),
    ("dir", "/nonexistent"),
    ("dbfilename", "dump.rdb"),
    ("hz", "10"),
    ("dynamic-hz", "yes"),
    ("loglevel", "notice"),
    ("notify-keyspace-events", ""),
    ("tracking-table-max-keys", "1000000"),
    ("acllog-max-len", "128"),
    ("acl-pubsub-default", "resetchannels"),
    ("cluster-enabled", "yes"),
    ("io-threads", "1"),
    ("activedefrag", "no"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("hash-max-listpack-entries", "128"),
    ("hash-max-listpack-value", "64"),
    ("list-max-listpack-size", "-2"),
    ("list-compress-depth", "0"),
    ("set-max-intset-entries", "512"),
    ("set-max-listpack-entries", "128"),
    ("set-max-listpack-value", "64"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("stream-node-max-bytes", "4096"),
    ("stream-node-max-entries", "100"),
    ("hll-sparse-max-bytes", "3000"),
    ("slowlog-log-slower-than", "10000"),
    ("slowlog-max-len", "128"),
    ("latency-tracking", "yes"),
    ("latency-monitor-threshold", "0"),
    (
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    ("client-query-buffer-limit", "1073741824"),
    ("stop-writes-on-bgsave-error", "yes"),
    ("rdbcompression", "yes"),
    ("rdbchecksum", "yes"),
    ("repl-diskless-sync", "yes"),
    ("replica-read-only", "yes"),
    ("protected-mode", "yes"),
    ("enable-debug-command", "no"),
    ("lua-time-limit", "5000"),
    ("min-replicas-to-write", "0"),
    ("min-replicas-max-lag", "10"),
    ("busy-reply-threshold", "5000"),
    // Accepted and shown as Redis shows them; no effect on a cache node.
    ("maxmemory-clients", "0"),
    ("repl-backlog-size", "1048576"),
    ("replicaof", ""),
    ("daemonize", "no"),
    ("key-load-delay", "0"),
    ("latency-tracking-info-percentiles", "50 99 99.9"),
    // Proxima's own: stop a script after this many ms even if it wrote (0: never).
    ("proxima-script-time-limit", "0"),
];

/// Parameters fixed at start (`CONFIG SET` refuses them).
pub const IMMUTABLE_PARAMS: &[&str] = &["daemonize", "databases", "cluster-enabled"];
/// Parameters `CONFIG GET` shows only when asked for by their exact name.
pub const HIDDEN_PARAMS: &[&str] = &["key-load-delay"];
/// Other names of parameters (alias, name), as `CONFIG GET` reports both.
pub const PARAM_ALIASES: &[(&str, &str)] = &[
    ("slaveof", "replicaof"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
];

/// The error a write gets when fewer replicas than `min-replicas-to-write` are in sync.
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

impl Shared {
    /// `Err(NOREPLICAS)` if writes need more good replicas than this node has.
    pub fn replicas_ok(&self) -> Result<(), &'static str> {
        let want = self.min_replicas_to_write.load(Ordering::Relaxed);
        if want > 0 && self.placement.get().map_or(0, |p| p.replicas()) < want {
            return Err(NOREPLICAS);
        }
        Ok(())
    }

    /// Shared state for a server listening on `addr`.
    pub fn new(addr: SocketAddr, requirepass: String, metrics: Metrics) -> Self {
        let mut params: BTreeMap<String, String> = PARAM_DEFAULTS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        params.insert("port".into(), addr.port().to_string());
        params.insert("bind".into(), addr.ip().to_string());
        params.insert("requirepass".into(), requirepass.clone());
        let mut acl = crate::acl::Acl::default();
        acl.set_default_password(requirepass.as_bytes());
        let node_id: String = (0..40)
            .map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)]))
            .collect();
        Self {
            db: Mutex::new(Db::new()),
            pubsub: Mutex::new(PubSub::default()),
            params: RwLock::new(params),
            requirepass: RwLock::new(requirepass),
            max_bulk: AtomicUsize::new(crate::resp::DEFAULT_MAX_BULK),
            clients: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            stats: Stats::default(),
            started: Instant::now(),
            node_id,
            addr,
            metrics,
            maxclients: AtomicUsize::new(10000),
            min_replicas_to_write: AtomicUsize::new(0),
            placement: std::sync::OnceLock::new(),
            intro: Default::default(),
            scripting: Default::default(),
            tracking: Mutex::new(Default::default()),
            acl: RwLock::new(acl),
        }
    }

    /// A fresh client id.
    pub fn next_client_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Parser limits for an authenticated connection.
    #[inline]
    pub fn limits(&self) -> Limits {
        Limits {
            max_bulk: self.max_bulk.load(Ordering::Relaxed),
            authenticated: true,
        }
    }

    /// Whether a new connection must authenticate (the `default` user has a password or is
    /// off).
    pub fn needs_auth(&self) -> bool {
        !self.acl.read().default_nopass()
    }

    /// Whether `user` and `pass` authenticate here (an enabled ACL user with that password,
    /// or without one; `default` has `requirepass`).
    pub fn password_ok(&self, user: &[u8], pass: &[u8]) -> bool {
        self.acl.read().password_ok(user, pass)
    }

    /// Applies `CONFIG SET name value`; `Err` with Redis's message.
    pub fn set_param(&self, name: &str, value: &str) -> Result<(), String> {
        let name = name.to_ascii_lowercase();
        // An old name sets the parameter it stands for (one value, shown under both).
        let name = PARAM_ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, real)| (*real).to_owned());
        let invalid = |why: &str| {
            format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
        };
        if !self.params.read().contains_key(&name) {
            return Err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        }
        match name.as_str() {
            "maxmemory" => {
                let v = parse_memory(value)
                    .ok_or_else(|| invalid("argument must be a memory value"))?;
                let mut db = self.db.lock();
                db.maxmemory = v as usize;
                // Redis evicts at once to the new bound (the evictions are notified after
                // the command).
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let _ = db.ensure_memory(now);
            }
            "maxmemory-policy" => {
                let (p, _) = Policy::parse(value).ok_or_else(|| invalid("argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"))?;
                self.db.lock().policy = p;
            }
            "maxmemory-samples" => {
                let v: usize = value
                    .parse()
                    .ok()
                    .filter(|v| (1..=64).contains(v))
                    .ok_or_else(|| invalid("argument must be between 1 and 64 inclusive"))?;
                self.db.lock().samples = v;
            }
            "lfu-log-factor" => {
                let v: u32 = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.db.lock().lfu_log_factor = v;
            }
            "lfu-decay-time" => {
                let v: u32 = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.db.lock().lfu_decay_time = v;
            }
            "proto-max-bulk-len" => {
                let v = parse_memory(value)
                    .filter(|v| *v >= 1024 * 1024)
                    .ok_or_else(|| invalid("argument must be a memory value"))?;
                self.max_bulk.store(v as usize, Ordering::Relaxed);
            }
            "requirepass" => {
                *self.requirepass.write() = value.to_owned();
                self.acl.write().set_default_password(value.as_bytes());
            }
            "min-replicas-to-write" => {
                let v: usize = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.min_replicas_to_write.store(v, Ordering::Relaxed);
            }
            "min-replicas-max-lag" => {
                value
                    .parse::<u64>()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
            }
            "maxclients" => {
                let v: usize = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.maxclients.store(v, Ordering::Relaxed);
            }
            "slowlog-log-slower-than" => {
                let v: i64 = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.intro.slowlog_slower_than.store(v, Ordering::Relaxed);
            }
            "slowlog-max-len" => {
                let v: usize = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.intro.slowlog_max_len.store(v, Ordering::Relaxed);
                self.intro.slowlog_trim(v);
            }
            "latency-monitor-threshold" => {
                let v: u64 = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.intro.latency_threshold.store(v, Ordering::Relaxed);
            }
            "latency-tracking" => {
                let v = match value.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(invalid("argument must be 'yes' or 'no'")),
                };
                self.intro.latency_tracking.store(v, Ordering::Relaxed);
            }
            "maxmemory-clients" => {
                if let Some(pct) = value.strip_suffix('%') {
                    let p: u64 = pct
                        .parse()
                        .map_err(|_| invalid("argument must be a memory or percent value"))?;
                    if p > 100 {
                        return Err(invalid("percentage argument must be less or equal to 100"));
                    }
                } else {
                    parse_memory(value)
                        .ok_or_else(|| invalid("argument must be a memory or percent value"))?;
                }
            }
            "client-query-buffer-limit" | "repl-backlog-size" => {
                parse_memory(value).ok_or_else(|| invalid("argument must be a memory value"))?;
            }
            "latency-tracking-info-percentiles" => {
                let mut ps = Vec::new();
                for w in value.split_whitespace() {
                    match w.parse::<f64>() {
                        Ok(p) if (0.0..=100.0).contains(&p) => ps.push(p),
                        _ => {
                            return Err(invalid(
                                "latency-tracking-info-percentiles should be a list of numbers between 0 and 100",
                            ));
                        }
                    }
                }
                let shown: Vec<String> = ps.iter().map(f64::to_string).collect();
                *self.intro.percentiles.lock() = ps;
                self.params.write().insert(name, shown.join(" "));
                return Ok(());
            }
            "port" => {
                let p: u16 = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                if p != self.addr.port() {
                    // The node's listener is set by its configuration; a port that cannot
                    // be bound is reported as Redis reports it.
                    return Err(match std::net::TcpListener::bind((self.addr.ip(), p)) {
                        Err(e) => invalid(&format!("Unable to listen on this port: {e}")),
                        Ok(_) => invalid("the port of a cache node is set by its configuration"),
                    });
                }
            }
            "notify-keyspace-events" => {
                let f = crate::notify::parse_flags(value.as_bytes()).ok_or_else(|| {
                    invalid("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
                })?;
                let mut db = self.db.lock();
                db.log.flags = f;
                crate::notify::refresh(self, &mut db);
            }
            "acl-pubsub-default" => {
                let all = match value.to_ascii_lowercase().as_str() {
                    "allchannels" => true,
                    "resetchannels" => false,
                    _ => {
                        return Err(invalid(
                            "argument(s) must be one of the following: allchannels, resetchannels",
                        ));
                    }
                };
                self.acl.write().pubsub_all = all;
            }
            "acllog-max-len" => {
                let v: usize = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                let mut acl = self.acl.write();
                acl.log_max = v;
                let n = acl.log_len().min(v);
                acl.truncate_log(n);
            }
            "tracking-table-max-keys" => {
                let v: usize = value
                    .parse()
                    .map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                crate::tracking::set_max_keys(self, v);
            }
            "databases" if value != "1" => {
                return Err(invalid("a cache node has exactly one database"));
            }
            _ => {}
        }
        // Sizes read back in bytes, as Redis shows them.
        let stored = match name.as_str() {
            "maxmemory" | "proto-max-bulk-len" | "client-query-buffer-limit" => {
                parse_memory(value).map_or_else(|| value.to_owned(), |v| v.to_string())
            }
            "notify-keyspace-events" => crate::notify::format_flags(
                crate::notify::parse_flags(value.as_bytes()).unwrap_or(0),
            ),
            _ => value.to_owned(),
        };
        self.params.write().insert(name, stored);
        Ok(())
    }
}

/// Parses a Redis memory value (`100`, `1kb`, `10mb`, `1gb`, `1k`, `1m`, `1g`).
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1024 * 1024,
        "g" => 1_000_000_000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}
