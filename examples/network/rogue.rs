//! rogue-member: an uncertified process with a fresh key joins a certified, password-protected
//! mesh and tries every attack that worked before membership certificates, each as its own
//! step with its own count (`attack_<step>` = how many attempts succeeded; must be 0):
//!
//! - `slots`: it advertises `redis`; does any honest node's map give it slots?
//! - `session`: it opens a proxied cache session and sends `SET`/`GET`; is anything answered?
//! - `link`: it sends a replication link frame carrying a key state; does the key appear?
//! - `future_version`: the same with version `u64::MAX` over an existing key; does it change?
//! - `pull` and `merge`: it asks for every range; does any key state come back?
//! - `sybil_majority`: identities advertising `redis` join and die; does any honest node lose
//!   its majority (`CLUSTERDOWN` for writes)?
//! - `steer_http`: it advertises an HTTP address that does not answer for it; does any DNS
//!   answer for a site name it?
//! - `registrar`: it answers "whom do you follow?" with itself; does a new node follow it?
//! - `admin_post` and `admin_rebinding`: a `POST` without a token, a request with
//!   `Host: evil.example`; is either accepted?
//! - `resp_http`: a browser-style `POST` to a Redis port followed by a command; answered?
//!
//! Meanwhile clients write and read through the honest nodes (with the password): the honest
//! cache must keep serving (`lost_writes` = 0, `clusterdown_writes` = 0). Each refusal is read
//! back from `/metrics` (`refusals_*`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{BufMut, BytesMut};
use cache::cluster::proto;

use super::Params;
use super::browse;
use super::net::Net;
use super::probe;
use super::report::{Report, Table};

const PASSWORD: &str = "secret";
/// An HTTP address the rogue advertises; nothing listens there.
const ROGUE_HTTP: &str = "127.0.0.77:80";

/// The rogue: a raw mesh member (no node, no certificate) on its own runtime.
struct Rogue {
    rt: tokio::runtime::Runtime,
    mesh: mesh::Mesh,
}

impl Rogue {
    fn start(net: &Net, position: usize, advertise: &[(&str, &str)]) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let boot = net.addrs(0).context("node 0")?.p2p;
        let wan = net.wan.clone();
        let services: Vec<(String, String)> = advertise
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mesh = rt.block_on(async move {
            let mut mc = mesh::MeshConfig::local();
            mc.control.bootstrap = vec![boot.parse()?];
            mc.wan = Some(mesh::WanLink {
                emulator: wan,
                position,
            });
            mc.membership = mesh::MembershipConfig::wan();
            mc.services.extend(services);
            let key = mesh::keypair_from_seed(rand::random());
            let mut registry = prometheus_client::registry::Registry::default();
            let m = mesh::Mesh::start(key, mc, &mut registry).await?;
            Ok::<_, anyhow::Error>(m)
        })?;
        Ok(Self { rt, mesh })
    }

    fn peer(&self) -> String {
        self.mesh.peer_id().to_string()
    }

    /// Opens a cache stream of `kind` to `peer`, sends `frames`, and returns every frame
    /// answered within `wait` (an honest node closes the stream at once).
    fn cache_stream(
        &self,
        peer: mesh::PeerId,
        hello: Vec<u8>,
        frames: Vec<Vec<u8>>,
        wait: Duration,
    ) -> Vec<bytes::Bytes> {
        self.rt.block_on(async {
            let Ok((mut send, mut recv)) = self.mesh.open_bi(peer, proto::ALPN).await else {
                return Vec::new();
            };
            if mesh::frame::write(&mut send, &hello).await.is_err() {
                return Vec::new();
            }
            for f in &frames {
                if mesh::frame::write(&mut send, f).await.is_err() {
                    break;
                }
            }
            let _ = send.finish();
            let mut got = Vec::new();
            let dec = mesh::frame::FrameDecoder::new(proto::MAX_FRAME);
            while let Ok(Ok(Some(f))) = tokio::time::timeout(wait, dec.read(&mut recv)).await {
                got.push(f);
            }
            got
        })
    }
}

/// A link frame `[u64 seq]` + one key-state record setting `key` to `value` at `ver`.
fn link_frame(key: &[u8], value: &[u8], ver: u64) -> Vec<u8> {
    let mut states = BytesMut::new();
    proto::encode_key_state(&mut states, key, ver, |out| {
        proto::command(out, &[b"SET", key, value]);
    });
    let mut f = BytesMut::new();
    f.put_u64(1);
    proto::Record::Keys(states.freeze()).encode(&mut f);
    f.to_vec()
}

fn redis_cmd(addr: SocketAddr, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://:{PASSWORD}@{addr}/"))?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(3))?;
    con.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(&mut con)
}

fn redis_string(addr: SocketAddr, args: &[&str]) -> Option<String> {
    match redis_cmd(addr, args).ok()? {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        redis::Value::SimpleString(s) => Some(s),
        redis::Value::VerbatimString { text, .. } => Some(text),
        redis::Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Raw HTTP request to `addr`; the status code, if any answer came.
fn http_status(addr: &str, request: &str) -> Option<u16> {
    let host = addr.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sends a browser-style POST followed by a command to a RESP port: true if anything came back.
fn resp_answers_http(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ =
        s.write_all(format!("POST / HTTP/1.1\r\nHost: {addr}\r\n\r\nECHO pwned\r\n").as_bytes());
    let mut buf = [0u8; 256];
    matches!(s.read(&mut buf), Ok(n) if n > 0)
}

/// The honest workload: writes through every honest node in turn; returns (acked keys,
/// CLUSTERDOWN answers, other failures).
fn write_round(net: &Net, round: usize, keys: usize) -> (Vec<String>, usize, usize) {
    let live = net.live();
    let (mut acked, mut down, mut failed) = (Vec::new(), 0, 0);
    for k in 0..keys {
        let i = live[k % live.len()];
        let Some(a) = net.addrs(i) else { continue };
        let key = format!("honest:{round}:{k}");
        match redis_cmd(a.redis, &["SET", &key, &key]) {
            Ok(_) => acked.push(key),
            Err(e) if e.to_string().contains("CLUSTERDOWN") => down += 1,
            Err(_) => failed += 1,
        }
    }
    (acked, down, failed)
}

/// Runs the scenario.
pub(crate) fn run(p: &Params, report: &mut Report) -> Result<()> {
    let net = Arc::new(Net::start(p, 1, 1.min(p.nodes - 1), |_, c| {
        c.cache.requirepass = PASSWORD.into();
    })?);
    let rogue_pos = net.n;
    report.metric("mesh_formed_s", net.formed_in.as_secs_f64());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (sites, _) = rt.block_on(browse::publish_and_spread(&net, p))?;
    let honest: Vec<usize> = net.live();
    let (mut acked, mut clusterdown, mut failed_writes) = (Vec::new(), 0, 0);
    let mut round = 0;
    let mut write = |acked: &mut Vec<String>, down: &mut usize, failed: &mut usize| {
        let (a, d, f) = write_round(&net, round, p.keys.max(10));
        round += 1;
        acked.extend(a);
        *down += d;
        *failed += f;
    };
    write(&mut acked, &mut clusterdown, &mut failed_writes);

    let rogue = Rogue::start(
        &net,
        rogue_pos,
        &[("redis", "127.0.0.1:1"), ("http", ROGUE_HTTP)],
    )?;
    let rogue_peer = rogue.peer();
    let joined = proxima::harness::wait_for(Duration::from_secs(30), || {
        net.all_see(&honest, &rogue_peer, true)
    })
    .is_ok();
    report.metric("rogue_joined", if joined { 1.0 } else { 0.0 });
    super::progress(&format!("rogue joined: {joined}"));
    let mut steps: Vec<(&str, usize, usize)> = Vec::new();
    let peers: Vec<mesh::PeerId> = honest
        .iter()
        .filter_map(|&i| net.peer_id(i)?.parse().ok())
        .collect();

    // slots: the maps follow the membership within a poll; watch them for a few seconds (an
    // early exit when the attack succeeds).
    let rogue_id = cache::cluster::view::node_id(&rogue.mesh.peer_id());
    let count_taken = || {
        honest
            .iter()
            .filter_map(|&i| net.addrs(i))
            .filter(|a| {
                redis_string(a.redis, &["CLUSTER", "NODES"]).is_some_and(|n| n.contains(&rogue_id))
            })
            .count()
    };
    let _ = proxima::harness::wait_for(Duration::from_secs(3), || count_taken() > 0);
    let taken = count_taken();
    steps.push(("slots", taken, honest.len()));

    // session
    let mut answered = 0;
    for &peer in &peers {
        let mut f = vec![0u8, 0u8];
        f.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$13\r\nrogue:session\r\n$1\r\n1\r\n");
        if !rogue
            .cache_stream(
                peer,
                vec![proto::KIND_SESSION],
                vec![f],
                Duration::from_secs(2),
            )
            .is_empty()
        {
            answered += 1;
        }
    }
    steps.push(("session", answered, peers.len()));

    // link, and future_version over an acknowledged key
    let victim = acked
        .first()
        .cloned()
        .unwrap_or_else(|| "honest:0:0".into());
    for &peer in &peers {
        rogue.cache_stream(
            peer,
            vec![proto::KIND_LINK],
            vec![
                link_frame(b"rogue:link", b"1", 1),
                link_frame(victim.as_bytes(), b"rogue", u64::MAX),
            ],
            Duration::from_millis(500),
        );
    }
    let any = honest.first().and_then(|&i| net.addrs(i));
    let link_applied = || {
        any.as_ref()
            .and_then(|a| redis_string(a.redis, &["EXISTS", "rogue:link"]))
            .is_some_and(|v| v == "1")
    };
    let _ = proxima::harness::wait_for(Duration::from_secs(2), link_applied);
    let link_ok = link_applied();
    steps.push(("link", usize::from(link_ok), peers.len()));
    let changed = any
        .as_ref()
        .and_then(|a| redis_string(a.redis, &["GET", &victim]))
        .is_some_and(|v| v == "rogue");
    steps.push(("future_version", usize::from(changed), 1));

    // pull and merge: every range
    let all: Vec<u16> = (0..cache::cluster::view::GROUPS as u16).collect();
    let ranges = proto::encode_ranges(&all);
    let (mut pulled, mut merged) = (0, 0);
    for &peer in &peers {
        let mut hello = vec![proto::KIND_PULL];
        hello.extend_from_slice(&ranges);
        pulled += rogue
            .cache_stream(peer, hello, Vec::new(), Duration::from_secs(2))
            .iter()
            .filter(|f| proto::decode_ranges(f).is_ok_and(|r| r.len() < all.len()))
            .count();
        let mut hello = vec![proto::KIND_MERGE];
        hello.extend_from_slice(&ranges);
        merged += rogue
            .cache_stream(peer, hello, Vec::new(), Duration::from_secs(2))
            .iter()
            .filter(|f| !f.is_empty())
            .count();
    }
    steps.push(("pull", pulled, peers.len()));
    steps.push(("merge", merged, peers.len()));

    // sybil_majority: more identities than honest nodes join, advertise redis, then die.
    let sybils: Vec<Rogue> = (0..honest.len() + 1)
        .filter_map(|_| Rogue::start(&net, rogue_pos, &[("redis", "127.0.0.1:2")]).ok())
        .collect();
    let sybil_peers: Vec<String> = sybils.iter().map(Rogue::peer).collect();
    let _ = proxima::harness::wait_for(Duration::from_secs(30), || {
        sybil_peers.iter().all(|s| net.all_see(&honest, s, true))
    });
    drop(sybils);
    let _ = proxima::harness::wait_for(Duration::from_secs(60), || {
        sybil_peers.iter().all(|s| net.all_see(&honest, s, false))
    });
    let lost_majority = honest
        .iter()
        .filter_map(|&i| net.addrs(i))
        .filter(|a| {
            redis_string(a.redis, &["CLUSTER", "INFO"])
                .is_some_and(|s| s.contains("cluster_state:fail"))
        })
        .count();
    let down_before = clusterdown;
    write(&mut acked, &mut clusterdown, &mut failed_writes);
    steps.push((
        "sybil_majority",
        lost_majority + (clusterdown - down_before),
        honest.len(),
    ));

    // steer_http: DNS answers for every site at every honest node.
    let _ = proxima::harness::wait_for(Duration::from_secs(15), || {
        honest.iter().filter_map(|&i| net.addrs(i)).all(|a| {
            probe::metric(&a.admin, "proxima_steering_http_checks_total", "refused") >= 1.0
        })
    });
    let mut steered = 0;
    for &i in &honest {
        let Some(a) = net.addrs(i) else { continue };
        for s in &sites {
            if let Ok(ans) = rt.block_on(probe::resolve(a.dns, &s.name, Duration::from_secs(3))) {
                steered += ans
                    .addrs
                    .iter()
                    .filter(|ip| ip.to_string() == ROGUE_HTTP.split(':').next().unwrap_or(""))
                    .count();
            }
        }
    }
    steps.push(("steer_http", steered, honest.len() * sites.len()));

    // registrar: the rogue answers the ledger hello naming itself; a new node must not follow.
    let rogue_name = rogue.peer();
    let hello_reply = serde_json::to_vec(&serde_json::json!({
        "reply": "hello", "registrar": rogue_name, "records": 1_000_000
    }))?;
    let _ = rogue.mesh.dataplane().serve_streams(
        proxima::names::ledger_sync::LEDGER_ALPN,
        move |_peer, mut send, mut recv| {
            let reply = hello_reply.clone();
            Box::pin(async move {
                let _ = mesh::frame::FrameDecoder::new(4096).read(&mut recv).await;
                let _ = mesh::frame::write(&mut send, &reply).await;
                let _ = send.finish();
            })
        },
    );
    let follows_rogue = new_node_follows(&net, rogue_pos, &rogue_name).unwrap_or_else(|e| {
        report
            .notes
            .push(format!("registrar step: the new node did not start: {e:#}"));
        false
    });
    steps.push(("registrar", usize::from(follows_rogue), 1));

    // admin_post and admin_rebinding
    let (mut posted, mut rebound) = (0, 0);
    for &i in &honest {
        let Some(a) = net.addrs(i) else { continue };
        let host = a.admin.trim_start_matches("http://").to_owned();
        let body = r#"{"name":"evil.proxima","years":1}"#;
        let post = format!(
            "POST /api/names HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        if http_status(&a.admin, &post).is_some_and(|s| (200..300).contains(&s)) {
            posted += 1;
        }
        let get = "GET /health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
        if http_status(&a.admin, get).is_some_and(|s| (200..300).contains(&s)) {
            rebound += 1;
        }
    }
    steps.push(("admin_post", posted, honest.len()));
    steps.push(("admin_rebinding", rebound, honest.len()));

    // resp_http
    let answered_http = honest
        .iter()
        .filter_map(|&i| net.addrs(i))
        .filter(|a| resp_answers_http(a.redis))
        .count();
    steps.push(("resp_http", answered_http, honest.len()));

    // The honest cache after everything: every acknowledged write reads back.
    write(&mut acked, &mut clusterdown, &mut failed_writes);
    let reader = honest
        .first()
        .and_then(|&i| net.addrs(i))
        .context("a node")?;
    let lost = acked
        .iter()
        .filter(|k| redis_string(reader.redis, &["GET", k]).as_deref() != Some(k.as_str()))
        .count();
    report.metric("acknowledged_writes", acked.len() as f64);
    report.metric("lost_writes", lost as f64);
    report.metric("clusterdown_writes", clusterdown as f64);
    report.metric("failed_writes", failed_writes as f64);

    let mut rows = Vec::new();
    for (name, ok, tries) in &steps {
        report.metric(&format!("attack_{name}"), *ok as f64);
        rows.push(vec![name.to_string(), tries.to_string(), ok.to_string()]);
    }
    report.tables.push(Table {
        title: "Rogue member: attacks tried and how many succeeded".into(),
        header: ["attack", "attempts", "succeeded"]
            .map(String::from)
            .to_vec(),
        rows,
    });
    // Each refusal, as the honest nodes count it.
    let sum = |name: &str, label: &str| -> f64 {
        honest
            .iter()
            .filter_map(|&i| net.addrs(i))
            .map(|a| probe::metric(&a.admin, name, label))
            .sum()
    };
    let refusals = [
        (
            "cache_streams",
            "proxima_cache_uncertified_streams_refused",
            "",
        ),
        (
            "http_checks",
            "proxima_steering_http_checks_total",
            "refused",
        ),
        ("certificates", "proxima_mesh_certificates_refused", ""),
        ("admin", "proxima_admin_refused_total", ""),
        ("resp_http", "proxima_cache_http_closed_total", ""),
    ];
    let mut rows = Vec::new();
    for (label, name, l) in refusals {
        let v = sum(name, l);
        report.metric(&format!("refusals_{label}"), v);
        rows.push(vec![name.to_string(), format!("{v}")]);
    }
    report.tables.push(Table {
        title: "Refusals counted by the honest nodes (/metrics)".into(),
        header: ["metric", "sum over honest nodes"]
            .map(String::from)
            .to_vec(),
        rows,
    });
    rogue
        .rt
        .block_on(rogue.mesh.leave(Duration::from_millis(200)));
    net.stop();
    Ok(())
}

/// Starts a fresh node that bootstraps from node 0 with no token, and says whether it chose
/// the rogue as its registrar.
fn new_node_follows(net: &Net, position: usize, rogue: &str) -> Result<bool> {
    let boot = net.addrs(0).context("node 0")?.p2p;
    let node = proxima::harness::TestNode::start_with_options(
        |c| {
            c.bootstrap = vec![boot];
            c.log = "warn".into();
            c.naming.registrar_wait = Duration::from_secs(15);
        },
        proxima::harness::wan_options(&net.wan, position),
    )?;
    let chosen = std::fs::read_to_string(node.data_dir().join("ledger").join("registrar"))
        .unwrap_or_default();
    Ok(chosen.trim() == rogue)
}
