//! cache-near: a read-heavy Redis workload from clients at many nodes. Every client reads the
//! same keys twice: once on a plain connection to its local node (the node proxies each read
//! to the slot's primary over the mesh), once as a cluster-aware client that sent `READONLY`
//! (the local node answers when it holds a copy; otherwise `MOVED` names a replica and the
//! client follows it, paying the matrix RTT to that node).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use redis::aio::MultiplexedConnection;

use super::Params;
use super::browse::client_nodes;
use super::net::Net;
use super::probe::ms;
use super::report::{Report, Table, percentile};

/// A multiplexed connection to `addr`.
pub(crate) async fn connect(addr: std::net::SocketAddr) -> Result<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let con = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .with_context(|| format!("connect to {addr} timed out"))??;
    Ok(con)
}

/// The value written under key `i`.
pub(crate) fn value(seed: u64, i: usize) -> String {
    format!("value-{seed}-{i}-{}", "x".repeat(64))
}

struct ReadResult {
    ms: f64,
    ok: bool,
    local: bool,
    /// What a wrong read returned: `key -> value` at which node.
    wrong: Option<String>,
}

fn wrong(key: &str, got: &redis::RedisResult<Option<String>>, at: usize) -> Option<String> {
    Some(format!("GET {key} at node {at} -> {got:?}"))
}

async fn read_primary(
    con: &mut MultiplexedConnection,
    at: usize,
    key: &str,
    want: &str,
) -> ReadResult {
    let started = Instant::now();
    let got: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(key).query_async(con).await;
    let ok = matches!(got, Ok(Some(ref v)) if v == want);
    ReadResult {
        ms: ms(started.elapsed()),
        ok,
        local: false,
        wrong: if ok { None } else { wrong(key, &got, at) },
    }
}

/// A cluster-aware READONLY client at node `me`.
struct ReadonlyClient {
    me: usize,
    local: MultiplexedConnection,
    others: HashMap<String, (usize, MultiplexedConnection)>,
}

impl ReadonlyClient {
    async fn new(net: &Net, me: usize) -> Result<Self> {
        let a = net.addrs(me).context("client's node is down")?;
        let mut local = connect(a.redis).await?;
        redis::cmd("READONLY").query_async::<()>(&mut local).await?;
        Ok(Self {
            me,
            local,
            others: HashMap::new(),
        })
    }

    async fn read(&mut self, net: &Net, key: &str, want: &str) -> Result<ReadResult> {
        let started = Instant::now();
        let got: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.local)
            .await;
        let e = match got {
            Ok(v) => {
                let ok = v.as_deref() == Some(want);
                return Ok(ReadResult {
                    ms: ms(started.elapsed()),
                    ok,
                    local: true,
                    wrong: if ok {
                        None
                    } else {
                        wrong(key, &Ok(v), self.me)
                    },
                });
            }
            Err(e) => e,
        };
        let Some((host, _slot)) = e.redirect_node() else {
            bail!("GET {key} at node {}: {e}", self.me);
        };
        let host = host.to_owned();
        if !self.others.contains_key(&host) {
            let addr: std::net::SocketAddr = host.parse().context("MOVED to a bad address")?;
            let node = (0..net.n)
                .find(|&i| net.addrs(i).is_some_and(|a| a.redis == addr))
                .with_context(|| format!("MOVED to {addr}, which is no node"))?;
            let mut con = connect(addr).await?;
            redis::cmd("READONLY").query_async::<()>(&mut con).await?;
            self.others.insert(host.clone(), (node, con));
        }
        let (node, con) = self.others.get_mut(&host).expect("inserted");
        let got: Option<String> = redis::cmd("GET").arg(key).query_async(con).await?;
        let ok = got.as_deref() == Some(want);
        Ok(ReadResult {
            ms: ms(started.elapsed()) + net.rtt(self.me, *node),
            ok,
            local: false,
            wrong: if ok {
                None
            } else {
                wrong(key, &Ok(got), *node)
                    .map(|w| format!("{w} (after MOVED from node {})", self.me))
            },
        })
    }
}

/// Runs the scenario.
pub(crate) fn run(p: &Params, report: &mut Report) -> Result<()> {
    let net = Arc::new(Net::start(p, 0, 0, |_, _| {})?);
    report.metric("mesh_formed_s", net.formed_in.as_secs_f64());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let seed = p.seed;
    let keys = p.keys;
    // Written through node 0: each write goes to its slot's primary and replicas.
    let write_ms: Vec<f64> = rt.block_on(async {
        let con = connect(net.addrs(0).context("node 0")?.redis).await?;
        let mut lat = Vec::with_capacity(keys);
        // Twenty writes in flight at a time on one multiplexed connection.
        for chunk in (0..keys).collect::<Vec<_>>().chunks(20) {
            let writes = chunk.iter().map(|&i| {
                let mut con = con.clone();
                async move {
                    let started = Instant::now();
                    redis::cmd("SET")
                        .arg(format!("near:{i}"))
                        .arg(value(seed, i))
                        .query_async::<()>(&mut con)
                        .await
                        .with_context(|| format!("SET near:{i}"))?;
                    Ok::<_, anyhow::Error>(ms(started.elapsed()))
                }
            });
            for r in futures::future::join_all(writes).await {
                lat.push(r?);
            }
        }
        Ok::<_, anyhow::Error>(lat)
    })?;
    super::progress(&format!("{keys} keys written"));
    let clients = client_nodes(net.n, p.clients);
    let reads = p.reads;
    let results = rt.block_on(async {
        let mut per_mode = Vec::new();
        for readonly in [false, true] {
            let tasks = clients.iter().map(|&c| {
                let net = net.clone();
                tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + c as u64);
                    let mut out = Vec::with_capacity(reads);
                    let mut errors = 0usize;
                    let a = net.addrs(c).context("client's node is down")?;
                    let mut plain = connect(a.redis).await?;
                    let mut ro = if readonly {
                        Some(ReadonlyClient::new(&net, c).await?)
                    } else {
                        None
                    };
                    for _ in 0..reads {
                        let i = rng.gen_range(0..keys);
                        let (key, want) = (format!("near:{i}"), value(seed, i));
                        let r = match ro.as_mut() {
                            Some(ro) => ro.read(&net, &key, &want).await,
                            None => Ok(read_primary(&mut plain, c, &key, &want).await),
                        };
                        match r {
                            Ok(r) => out.push(r),
                            Err(_) => errors += 1,
                        }
                    }
                    Ok::<_, anyhow::Error>((out, errors))
                })
            });
            let mut all = Vec::new();
            let mut errors = 0;
            for t in futures::future::join_all(tasks).await {
                match t.expect("client task") {
                    Ok((r, e)) => {
                        all.extend(r);
                        errors += e;
                    }
                    Err(_) => errors += reads,
                }
            }
            per_mode.push((all, errors));
        }
        per_mode
    });
    let mut lat = Report::latency_table(&format!(
        "GET latency at {} client nodes, {} keys (replication factor {}, {} replication)",
        clients.len(),
        keys,
        p.replication_factor,
        if p.sync_replication { "sync" } else { "async" }
    ));
    report.latency("set_via_node0", &write_ms, &mut lat);
    let mut rows = Vec::new();
    for ((reads, errors), label) in results.iter().zip(["primary", "readonly"]) {
        let v: Vec<f64> = reads.iter().map(|r| r.ms).collect();
        report.latency(label, &v, &mut lat);
        let wrong = reads.iter().filter(|r| !r.ok).count();
        for w in reads.iter().filter_map(|r| r.wrong.as_ref()).take(3) {
            report
                .notes
                .push(format!("{label} read returned a wrong value: {w}"));
        }
        let local = reads.iter().filter(|r| r.local).count();
        report.metric(&format!("{label}_errors"), *errors as f64);
        report.metric(&format!("{label}_wrong_values"), wrong as f64);
        report.metric(
            &format!("{label}_local_fraction"),
            local as f64 / reads.len().max(1) as f64,
        );
        rows.push(vec![
            label.to_owned(),
            reads.len().to_string(),
            errors.to_string(),
            wrong.to_string(),
            format!("{:.2}", local as f64 / reads.len().max(1) as f64),
        ]);
    }
    let (pr, ro) = (&results[0].0, &results[1].0);
    let v = |r: &[ReadResult]| r.iter().map(|x| x.ms).collect::<Vec<f64>>();
    for q in [50.0, 99.0] {
        report.metric(
            &format!("readonly_vs_primary_p{q}"),
            percentile(&v(ro), q) / percentile(&v(pr), q),
        );
    }
    report.tables.push(lat);
    report.tables.push(Table {
        title: "Reads: errors, stale or wrong values, share answered by the local node".into(),
        header: ["mode", "reads", "errors", "wrong value", "local share"]
            .map(String::from)
            .to_vec(),
        rows,
    });
    net.stop();
    Ok(())
}
