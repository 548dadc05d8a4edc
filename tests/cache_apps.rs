//! The application patterns job queues, rate limiters and stream workers are built on, through
//! the Rust `redis` crate, against one node and against a 3-node mesh (through the crate's
//! cluster client, which follows `MOVED` as applications on Redis Cluster do; each pattern's
//! keys share a hash tag, so they share a slot):
//!
//! - a BullMQ-style queue: a Lua script moves a job from `wait` to `active` and takes its lock
//!   atomically; workers block on the queue (`BLMOVE`) and complete jobs with a second script;
//! - a Sidekiq-style reliable fetch: `BLMOVE` into a per-worker processing list, a worker that
//!   dies leaves its job there, and the reaper puts it back;
//! - a token-bucket rate limiter in Lua (`EVALSHA`, loaded on `NOSCRIPT` as clients do);
//! - a stream consumer group with two consumers, one of which crashes: its pending entries are
//!   claimed by the other (`XAUTOCLAIM`), and every entry is acknowledged exactly once.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use proxima::harness::{Cluster, TestNode, test_options};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, Commands, Connection, ConnectionLike, RedisResult, Value};

/// How long a blocked client may take to be served.
const SERVED_WITHIN: Duration = Duration::from_secs(10);

/// Where the patterns run: one node, or a cluster through a cluster client.
#[derive(Clone)]
struct Target {
    addrs: Vec<SocketAddr>,
    cluster: bool,
}

/// A plain or a cluster connection.
enum Conn {
    Plain(Connection),
    Cluster(Box<ClusterConnection>),
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Plain(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Plain(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Plain(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Plain(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}

impl Target {
    fn connect(&self) -> Conn {
        if self.cluster {
            let urls: Vec<String> = self.addrs.iter().map(|a| format!("redis://{a}/")).collect();
            let client = ClusterClient::builder(urls)
                .connection_timeout(Duration::from_secs(5))
                .response_timeout(Duration::from_secs(15))
                .build()
                .expect("cluster client");
            Conn::Cluster(Box::new(client.get_connection().expect("connects")))
        } else {
            Conn::Plain(plain(self.addrs[0]))
        }
    }

    /// Clients blocked on every node of the target (`INFO clients`, each node's own).
    fn blocked(&self) -> u32 {
        self.addrs
            .iter()
            .map(|a| {
                let info: String = redis::cmd("INFO")
                    .arg("clients")
                    .query(&mut plain(*a))
                    .unwrap_or_default();
                info.lines()
                    .find_map(|l| l.strip_prefix("blocked_clients:"))
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Waits until `n` clients are blocked.
    fn wait_blocked(&self, n: u32) {
        proxima::harness::wait_for(SERVED_WITHIN, || self.blocked() >= n)
            .unwrap_or_else(|_| panic!("{n} clients did not block"));
    }
}

fn plain(addr: SocketAddr) -> Connection {
    redis::Client::open(format!("redis://{addr}/"))
        .expect("client")
        .get_connection()
        .expect("connects")
}

fn redis_addr(n: &TestNode) -> SocketAddr {
    n.addr("redis").expect("redis").parse().expect("addr")
}

/// Runs `f` on its own connection in a thread; its result arrives on the returned channel.
fn in_thread<T: Send + 'static>(
    t: &Target,
    f: impl FnOnce(&mut Conn) -> T + Send + 'static,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    let t = t.clone();
    std::thread::spawn(move || {
        let mut c = t.connect();
        let _ = tx.send(f(&mut c));
    });
    rx
}

/// BullMQ's move-to-active, reduced to its shape: pop the next job id from `wait` into
/// `active`, lock it for a worker with a TTL, and count the attempt, in one atomic step.
const MOVE_TO_ACTIVE: &str = r#"
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if not id then return false end
redis.call('SET', KEYS[3] .. id .. ':lock', ARGV[1], 'PX', ARGV[2])
redis.call('HINCRBY', KEYS[3] .. id, 'attempts', 1)
return {id, redis.call('HGET', KEYS[3] .. id, 'data')}
"#;

/// Completes a job if the worker still holds its lock: out of `active`, into `completed`.
const COMPLETE: &str = r#"
if redis.call('GET', KEYS[3] .. ARGV[1] .. ':lock') ~= ARGV[2] then
  return redis.error_reply('ERR lock lost for ' .. ARGV[1])
end
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('DEL', KEYS[3] .. ARGV[1] .. ':lock')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"#;

fn bullmq_queue(t: &Target) {
    let mut c = t.connect();
    let (wait, active, completed, job) = (
        "{bull}:wait",
        "{bull}:active",
        "{bull}:completed",
        "{bull}:job:",
    );
    let _: () = redis::cmd("DEL")
        .arg(&[wait, active, completed])
        .query(&mut c)
        .unwrap();
    for i in 0..20 {
        let _: () = c
            .hset(format!("{job}{i}"), "data", format!("payload-{i}"))
            .unwrap();
        let _: () = c.lpush(wait, i).unwrap();
    }
    let move_to_active = redis::Script::new(MOVE_TO_ACTIVE);
    let complete = redis::Script::new(COMPLETE);
    let mut done = BTreeSet::new();
    for n in 0..20 {
        let got: Option<(String, String)> = move_to_active
            .key(wait)
            .key(active)
            .key(job)
            .arg("worker-1")
            .arg(30_000)
            .invoke(&mut c)
            .unwrap();
        let (id, data) = got.expect("a job is waiting");
        assert_eq!(data, format!("payload-{id}"));
        let ok: i64 = complete
            .key(active)
            .key(completed)
            .key(job)
            .arg(&id)
            .arg("worker-1")
            .arg(n)
            .invoke(&mut c)
            .unwrap();
        assert_eq!(ok, 1);
        done.insert(id.parse::<u32>().unwrap());
    }
    assert_eq!(done, (0..20).collect());
    let empty: Option<(String, String)> = move_to_active
        .key(wait)
        .key(active)
        .key(job)
        .arg("worker-1")
        .arg(30_000)
        .invoke(&mut c)
        .unwrap();
    assert!(empty.is_none(), "the queue is drained");
    // A lock held by someone else refuses the completion with the script's own error.
    let _: () = c.set(format!("{job}x:lock"), "worker-2").unwrap();
    let err = complete
        .key(active)
        .key(completed)
        .key(job)
        .arg("x")
        .arg("worker-1")
        .arg(0)
        .invoke::<i64>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("lock lost for x"), "{err}");
    // A worker waiting on an empty queue is woken by the next job, and only one worker gets it.
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            in_thread(t, move |c| {
                redis::cmd("BLMOVE")
                    .arg(&["{bull}:wait", "{bull}:active", "RIGHT", "LEFT", "5"])
                    .query::<Option<String>>(c)
                    .unwrap()
            })
        })
        .collect();
    // Both workers are blocked before the job arrives (they would otherwise race the push).
    t.wait_blocked(2);
    let _: () = c.lpush(wait, "late").unwrap();
    let answers: Vec<Option<String>> = waiting
        .into_iter()
        .map(|rx| rx.recv_timeout(SERVED_WITHIN).expect("worker answered"))
        .collect();
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.as_deref() == Some("late"))
            .count(),
        1,
        "{answers:?}"
    );
    let active_now: Vec<String> = c.lrange(active, 0, -1).unwrap();
    assert_eq!(active_now, vec!["late".to_owned()]);
}

fn reliable_fetch(t: &Target) {
    let mut c = t.connect();
    let (queue, proc_a, proc_b) = ("{sq}:queue", "{sq}:processing:a", "{sq}:processing:b");
    let _: () = redis::cmd("DEL")
        .arg(&[queue, proc_a, proc_b])
        .query(&mut c)
        .unwrap();
    let jobs: Vec<String> = (0..10).map(|i| format!("job-{i}")).collect();
    for j in &jobs {
        let _: () = c.lpush(queue, j).unwrap();
    }
    // Worker A takes a job and dies before acknowledging it: its connection is dropped.
    {
        let mut a = t.connect();
        let taken: Option<String> = redis::cmd("BLMOVE")
            .arg(&[queue, proc_a, "RIGHT", "LEFT", "1"])
            .query(&mut a)
            .unwrap();
        assert_eq!(taken.as_deref(), Some("job-0"));
    }
    // Worker B processes the rest, acknowledging each (LREM from its processing list).
    let mut b = t.connect();
    let mut processed = BTreeSet::new();
    loop {
        let taken: Option<String> = redis::cmd("BLMOVE")
            .arg(&[queue, proc_b, "RIGHT", "LEFT", "0.2"])
            .query(&mut b)
            .unwrap();
        let Some(job) = taken else { break };
        let removed: i64 = b.lrem(proc_b, 1, &job).unwrap();
        assert_eq!(removed, 1);
        processed.insert(job);
        assert!(processed.len() <= jobs.len(), "a job came back twice");
    }
    // The reaper finds A's orphaned job and puts it back; B gets it.
    let orphans: Vec<String> = c.lrange(proc_a, 0, -1).unwrap();
    assert_eq!(orphans, vec!["job-0".to_owned()]);
    let back: Option<String> = redis::cmd("LMOVE")
        .arg(&[proc_a, queue, "RIGHT", "RIGHT"])
        .query(&mut c)
        .unwrap();
    assert_eq!(back.as_deref(), Some("job-0"));
    let taken: Option<String> = redis::cmd("BLMOVE")
        .arg(&[queue, proc_b, "RIGHT", "LEFT", "1"])
        .query(&mut b)
        .unwrap();
    let _: i64 = b.lrem(proc_b, 1, taken.as_deref().unwrap()).unwrap();
    processed.extend(taken);
    assert_eq!(processed, jobs.iter().cloned().collect());
    let left: i64 = c.llen(queue).unwrap();
    assert_eq!(left, 0);
}

/// A token bucket: `capacity` tokens, refilled at `rate` per second; takes one if it can.
const TOKEN_BUCKET: &str = r#"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + (now - ts) / 1000 * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000))
return {allowed, tostring(tokens)}
"#;

fn token_bucket(t: &Target) {
    let mut c = t.connect();
    let _: () = c.del("{rl}:user:7").unwrap();
    // A client that knows only the SHA: NOSCRIPT first, then it loads the script.
    for a in &t.addrs {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut plain(*a))
            .unwrap();
    }
    let sha = redis::Script::new(TOKEN_BUCKET).get_hash().to_owned();
    let err = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("{rl}:user:7")
        .query::<Value>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOSCRIPT"), "{err}");
    let bucket = redis::Script::new(TOKEN_BUCKET);
    // Ten requests at the same instant: five pass (the capacity), five are refused.
    let t0: i64 = 1_700_000_000_000;
    let mut allowed = 0;
    for _ in 0..10 {
        let (ok, _tokens): (i64, String) = bucket
            .key("{rl}:user:7")
            .arg(5)
            .arg(2)
            .arg(t0)
            .invoke(&mut c)
            .unwrap();
        allowed += ok;
    }
    assert_eq!(allowed, 5);
    // One second later two tokens came back (rate 2/s).
    let mut later = 0;
    for _ in 0..3 {
        let (ok, _): (i64, String) = bucket
            .key("{rl}:user:7")
            .arg(5)
            .arg(2)
            .arg(t0 + 1000)
            .invoke(&mut c)
            .unwrap();
        later += ok;
    }
    assert_eq!(later, 2);
    // The script is cached where it ran (the node owning the key's slot).
    let loaded = t.addrs.iter().any(|a| {
        redis::cmd("SCRIPT")
            .arg("EXISTS")
            .arg(bucket.get_hash())
            .query::<Vec<bool>>(&mut plain(*a))
            .is_ok_and(|v| v == vec![true])
    });
    assert!(loaded);
    let ttl: i64 = c.pttl("{rl}:user:7").unwrap();
    assert!((1..=2500).contains(&ttl), "ttl {ttl}");
}

/// Entry ids of an `XREADGROUP` reply (one stream).
fn ids_of(reply: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    if let Value::Array(streams) = reply {
        for s in streams {
            if let Value::Array(parts) = s
                && let Some(Value::Array(entries)) = parts.get(1)
            {
                for e in entries {
                    if let Value::Array(kv) = e
                        && let Some(Value::BulkString(id)) = kv.first()
                    {
                        ids.push(String::from_utf8_lossy(id).into_owned());
                    }
                }
            }
        }
    }
    ids
}

/// Acknowledges `id` in group `billing`; it must have been pending.
fn ack(c: &mut Conn, stream: &str, id: &str) {
    let n: i64 = redis::cmd("XACK")
        .arg(stream)
        .arg("billing")
        .arg(id)
        .query(c)
        .unwrap();
    assert_eq!(n, 1, "{id} was pending");
}

/// Entries pending in group `billing` (`XPENDING` summary).
fn pending(c: &mut Conn, stream: &str) -> i64 {
    let summary: Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg("billing")
        .query(c)
        .unwrap();
    match &summary {
        Value::Array(s) => match s[0] {
            Value::Int(n) => n,
            _ => panic!("{summary:?}"),
        },
        _ => panic!("{summary:?}"),
    }
}

fn stream_group(t: &Target) {
    let mut c = t.connect();
    let stream = "{orders}:stream";
    let _: () = c.del(stream).unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", stream, "billing", "$", "MKSTREAM"])
        .query(&mut c)
        .unwrap();
    let mut added = BTreeSet::new();
    for i in 0..30 {
        let id: String = c.xadd(stream, "*", &[("order", i)]).unwrap();
        added.insert(id);
    }
    let mut acked = BTreeSet::new();
    // Consumer A reads ten, acknowledges four, and crashes.
    {
        let mut a = t.connect();
        let got: Value = redis::cmd("XREADGROUP")
            .arg(&[
                "GROUP", "billing", "a", "COUNT", "10", "STREAMS", stream, ">",
            ])
            .query(&mut a)
            .unwrap();
        let ids = ids_of(&got);
        assert_eq!(ids.len(), 10);
        for id in &ids[..4] {
            ack(&mut a, stream, id);
            acked.insert(id.clone());
        }
    }
    // Consumer B reads the rest of the stream and acknowledges it.
    let mut b = t.connect();
    loop {
        let got: Value = redis::cmd("XREADGROUP")
            .arg(&[
                "GROUP", "billing", "b", "COUNT", "7", "STREAMS", stream, ">",
            ])
            .query(&mut b)
            .unwrap();
        let ids = ids_of(&got);
        if ids.is_empty() {
            break;
        }
        for id in ids {
            ack(&mut b, stream, &id);
            assert!(acked.insert(id), "an entry was delivered to two consumers");
        }
    }
    // A's six unacknowledged entries are pending for A; B claims them and finishes them.
    assert_eq!(pending(&mut b, stream), 6);
    let claimed: Value = redis::cmd("XAUTOCLAIM")
        .arg(&[stream, "billing", "b", "0", "0-0", "COUNT", "100"])
        .query(&mut b)
        .unwrap();
    let Value::Array(parts) = &claimed else {
        panic!("{claimed:?}")
    };
    let ids = ids_of(&Value::Array(vec![Value::Array(vec![
        Value::BulkString(stream.into()),
        parts[1].clone(),
    ])]));
    assert_eq!(ids.len(), 6, "{claimed:?}");
    for id in ids {
        ack(&mut b, stream, &id);
        assert!(acked.insert(id));
    }
    assert_eq!(acked, added, "every entry acknowledged exactly once");
    assert_eq!(pending(&mut b, stream), 0);
    // A consumer blocked on the group is woken by the next entry.
    let waiting = in_thread(t, move |c| {
        let got: Value = redis::cmd("XREADGROUP")
            .arg(&[
                "GROUP",
                "billing",
                "b",
                "BLOCK",
                "5000",
                "STREAMS",
                "{orders}:stream",
                ">",
            ])
            .query(c)
            .unwrap();
        ids_of(&got)
    });
    t.wait_blocked(1);
    let id: String = c.xadd(stream, "*", &[("order", 99)]).unwrap();
    assert_eq!(
        waiting.recv_timeout(SERVED_WITHIN).expect("consumer woke"),
        vec![id]
    );
}

fn every_pattern(t: &Target) {
    bullmq_queue(t);
    reliable_fetch(t);
    token_bucket(t);
    stream_group(t);
}

#[test]
fn application_patterns_on_one_node() {
    let node = TestNode::start(|_| {}).expect("node starts");
    every_pattern(&Target {
        addrs: vec![redis_addr(&node)],
        cluster: false,
    });
}

#[test]
fn application_patterns_through_a_three_node_mesh() {
    let cluster = Cluster::start_meshed(
        3,
        |_, c| c.cache.sync_replication = true,
        |_| test_options(),
        Duration::from_secs(30),
    )
    .expect("3 nodes");
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(redis_addr).collect();
    proxima::harness::wait_for(Duration::from_secs(30), || {
        addrs.iter().all(|a| {
            proxima::harness::redis_cli(*a, &["info", "cluster"]).is_ok_and(|i| {
                i.contains("proxima_members:3") && i.contains("proxima_importing_ranges:0")
            })
        })
    })
    .expect("the 3 nodes converge");
    every_pattern(&Target {
        addrs,
        cluster: true,
    });
}
