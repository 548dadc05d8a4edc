//! The cache through the Rust `redis` crate against a running node, in the sessions real
//! applications run: sessions with TTL, rate limiting, a job queue on BLPOP, hash objects,
//! pub/sub cache invalidation (RESP2 and RESP3 push), optimistic transactions, and the cluster
//! client against the one-node cluster.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proxima::harness::TestNode;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

fn start() -> (TestNode, String) {
    let node = TestNode::start(|_| {}).expect("node starts");
    let addr = node.addr("redis").expect("redis service");
    (node, addr)
}

async fn conn(addr: &str) -> MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

/// Polls `f` until it is true or the deadline passes.
async fn eventually<F, Fut>(deadline: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_rate_limits_and_leaderboards() {
    let (_node, addr) = start();
    let mut c = conn(&addr).await;

    // Sessions with a TTL, refreshed on access, gone after expiry.
    let _: () = c.set_ex("session:abc", r#"{"user":42}"#, 60).await.unwrap();
    let s: Option<String> = c.get("session:abc").await.unwrap();
    assert_eq!(s.as_deref(), Some(r#"{"user":42}"#));
    let ttl: i64 = c.ttl("session:abc").await.unwrap();
    assert!((59..=60).contains(&ttl));
    let _: bool = c.pexpire("session:abc", 50).await.unwrap();
    let gone = eventually(Duration::from_secs(5), || {
        let mut c = c.clone();
        async move {
            c.get::<_, Option<String>>("session:abc")
                .await
                .unwrap()
                .is_none()
        }
    })
    .await;
    assert!(gone, "session did not expire");

    // Fixed-window rate limit: INCR + EXPIRE NX in one transaction.
    let mut allowed = 0;
    for _ in 0..5 {
        let (n,): (i64,) = redis::pipe()
            .atomic()
            .incr("rl:user:1", 1)
            .cmd("EXPIRE")
            .arg("rl:user:1")
            .arg(60)
            .arg("NX")
            .ignore()
            .query_async(&mut c)
            .await
            .unwrap();
        if n <= 3 {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3);
    let ttl: i64 = c.ttl("rl:user:1").await.unwrap();
    assert!(ttl > 0);

    // Sliding-window limiter on a sorted set of timestamps.
    for ts in [1000, 1500, 2000, 2600, 3100] {
        let _: () = redis::pipe()
            .zrembyscore("rl:win", 0, ts - 1000)
            .ignore()
            .zadd("rl:win", format!("req{ts}"), ts)
            .ignore()
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let in_window: usize = c.zcard("rl:win").await.unwrap();
    // The window (2100, 3100] holds the requests at 2600 and 3100.
    assert_eq!(in_window, 2);

    // Leaderboard.
    for (who, score) in [("ann", 30.0), ("bob", 50.0), ("cid", 40.0)] {
        let _: () = c.zadd("board", who, score).await.unwrap();
    }
    let _: f64 = c.zincr("board", "ann", 25.0).await.unwrap();
    let top: Vec<(String, f64)> = c.zrevrange_withscores("board", 0, 1).await.unwrap();
    assert_eq!(
        top,
        vec![("ann".to_owned(), 55.0), ("bob".to_owned(), 50.0)]
    );
    let rank: Option<usize> = c.zrevrank("board", "cid").await.unwrap();
    assert_eq!(rank, Some(2));
    let mid: Vec<String> = redis::cmd("ZRANGE")
        .arg("board")
        .arg("(40")
        .arg("+inf")
        .arg("BYSCORE")
        .arg("LIMIT")
        .arg(0)
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(mid, vec!["bob".to_owned()]);

    // Delayed job queue: jobs due by score (time), popped in order.
    let _: () = c
        .zadd_multiple("delayed", &[(300, "job3"), (100, "job1"), (200, "job2")])
        .await
        .unwrap();
    let due: Vec<String> = c.zrangebyscore("delayed", "-inf", 250).await.unwrap();
    assert_eq!(due, vec!["job1", "job2"]);
    let popped: Vec<(String, f64)> = c.zpopmin("delayed", 1).await.unwrap();
    assert_eq!(popped, vec![("job1".to_owned(), 100.0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_with_blocking_pop() {
    let (_node, addr) = start();
    let mut producer = conn(&addr).await;
    // A dedicated connection per blocked consumer, as applications do.
    let mut consumer = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let got: Option<(String, String)> = consumer.blpop("jobs", 10.0).await.unwrap();
        got
    });
    // Wait until the consumer is blocked before pushing (the pop must be woken, not find data).
    let mut probe = conn(&addr).await;
    let blocked = eventually(Duration::from_secs(5), || {
        let mut p = probe.clone();
        async move {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut p)
                .await
                .unwrap();
            list.lines().count() >= 3
        }
    })
    .await;
    assert!(blocked);
    let _: usize = producer.rpush("jobs", "job-1").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(got, Some(("jobs".to_owned(), "job-1".to_owned())));
    // Timeout: nothing arrives.
    let none: Option<(String, String)> = probe.brpop("empty", 0.1).await.unwrap();
    assert_eq!(none, None);
    // Reliable queue: LMOVE to a processing list.
    let _: usize = producer.lpush("q", &["a", "b", "c"]).await.unwrap();
    let moved: String = redis::cmd("LMOVE")
        .arg("q")
        .arg("processing")
        .arg("RIGHT")
        .arg("LEFT")
        .query_async(&mut producer)
        .await
        .unwrap();
    assert_eq!(moved, "a");
    let rest: Vec<String> = producer.lrange("q", 0, -1).await.unwrap();
    assert_eq!(rest, vec!["c", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_objects_and_transactions() {
    let (_node, addr) = start();
    let mut c = conn(&addr).await;
    let _: () = c
        .hset_multiple(
            "user:1",
            &[("name", "Ada"), ("lang", "en"), ("visits", "1")],
        )
        .await
        .unwrap();
    let _: i64 = c.hincr("user:1", "visits", 2).await.unwrap();
    let all: HashMap<String, String> = c.hgetall("user:1").await.unwrap();
    assert_eq!(all.get("visits").map(String::as_str), Some("3"));
    assert_eq!(all.len(), 3);
    let _: usize = c.hdel("user:1", "lang").await.unwrap();
    let n: usize = c.hlen("user:1").await.unwrap();
    assert_eq!(n, 2);

    // Optimistic locking: a WATCHed key changed by another client aborts EXEC.
    let mut other = conn(&addr).await;
    let _: () = redis::cmd("WATCH")
        .arg("balance")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = other.set("balance", 10).await.unwrap();
    let res: Option<(String,)> = redis::pipe()
        .atomic()
        .set("balance", 99)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(res, None, "EXEC must abort after a concurrent write");
    let v: i64 = c.get("balance").await.unwrap();
    assert_eq!(v, 10);
    // Without interference it commits.
    let _: () = redis::cmd("WATCH")
        .arg("balance")
        .query_async(&mut c)
        .await
        .unwrap();
    let res: Option<(String,)> = redis::pipe()
        .atomic()
        .set("balance", 99)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(res, Some(("OK".to_owned(),)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_invalidation_resp2_and_resp3() {
    use futures::StreamExt;
    let (_node, addr) = start();
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("invalidate").await.unwrap();
    pubsub.psubscribe("user:*").await.unwrap();

    // RESP3: push messages on a multiplexed connection.
    let client3 = redis::Client::open(format!("redis://{addr}/?protocol=resp3")).unwrap();
    // redis-rs delivers push messages to an unbounded sender (its API); a test reads three.
    #[allow(clippy::disallowed_methods)]
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut c3 = client3
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    c3.subscribe("invalidate").await.unwrap();

    let mut publisher = conn(&addr).await;
    let n: usize = publisher.publish("invalidate", "user:1").await.unwrap();
    assert_eq!(n, 2);
    let n: usize = publisher.publish("user:7", "changed").await.unwrap();
    assert_eq!(n, 1);

    let mut stream = pubsub.on_message();
    let m = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.get_channel_name(), "invalidate");
    assert_eq!(m.get_payload::<String>().unwrap(), "user:1");
    let m = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.get_channel_name(), "user:7");
    assert_eq!(m.get_pattern::<String>().unwrap(), "user:*");

    // The RESP3 connection gets a `message` push (after its `subscribe` confirmation).
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let p = rx.recv().await.expect("push channel open");
            if p.kind == redis::PushKind::Message {
                return p;
            }
        }
    })
    .await
    .expect("push arrives");
    assert_eq!(
        got.data,
        vec![
            redis::Value::BulkString(b"invalidate".to_vec()),
            redis::Value::BulkString(b"user:1".to_vec())
        ]
    );
    // And the RESP3 connection still answers commands while subscribed.
    let pong: String = redis::cmd("PING").query_async(&mut c3).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_client_against_one_node_cluster() {
    let (_node, addr) = start();
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{addr}/")]).unwrap();
    let mut c = client
        .get_async_connection()
        .await
        .expect("cluster connects");
    for i in 0..50 {
        let _: () = c.set(format!("k{i}"), i).await.unwrap();
    }
    let v: i64 = c.get("k42").await.unwrap();
    assert_eq!(v, 42);
    let _: () = c.set("{user1000}.following", "x").await.unwrap();
    let _: i64 = c.incr("{user1000}.visits", 1).await.unwrap();
    let vals: Vec<Option<String>> = c.mget(&["k1", "k2", "nope"]).await.unwrap();
    assert_eq!(vals, vec![Some("1".to_owned()), Some("2".to_owned()), None]);
}
