//! The cache through `redis-cli` against a running node: the commands a shell user types,
//! one-node cluster answers, INFO/COMMAND/CONFIG introspection, and RESP3 with `-3`.

use std::net::SocketAddr;

use proxima::harness::{TestNode, redis_cli};

fn node() -> (TestNode, SocketAddr) {
    let node = TestNode::start(|_| {}).expect("node starts");
    let addr: SocketAddr = node.addr("redis").expect("redis service").parse().unwrap();
    (node, addr)
}

fn cli(addr: SocketAddr, args: &[&str]) -> String {
    redis_cli(addr, args)
        .expect("redis-cli runs")
        .trim_end()
        .to_owned()
}

#[test]
fn strings_counters_expiry_and_types() {
    let (_node, a) = node();
    assert_eq!(cli(a, &["set", "greeting", "hello"]), "OK");
    assert_eq!(cli(a, &["get", "greeting"]), "hello");
    assert_eq!(cli(a, &["append", "greeting", " world"]), "11");
    assert_eq!(cli(a, &["getrange", "greeting", "0", "4"]), "hello");
    assert_eq!(cli(a, &["incr", "hits"]), "1");
    assert_eq!(cli(a, &["incrby", "hits", "41"]), "42");
    assert_eq!(cli(a, &["incrbyfloat", "hits", "0.5"]), "42.5");
    assert_eq!(
        cli(a, &["incr", "greeting"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(cli(a, &["set", "s", "v", "ex", "100"]), "OK");
    let ttl: i64 = cli(a, &["ttl", "s"]).parse().unwrap();
    assert!((99..=100).contains(&ttl), "ttl {ttl}");
    assert_eq!(cli(a, &["set", "s", "v2", "keepttl", "get"]), "v");
    assert!(cli(a, &["pttl", "s"]).parse::<i64>().unwrap() > 90_000);
    assert_eq!(cli(a, &["set", "s", "v3", "nx"]), "");
    assert_eq!(cli(a, &["persist", "s"]), "1");
    assert_eq!(cli(a, &["ttl", "s"]), "-1");
    assert_eq!(cli(a, &["ttl", "missing"]), "-2");
    assert_eq!(cli(a, &["hset", "h", "f", "v"]), "1");
    assert_eq!(cli(a, &["type", "h"]), "hash");
    assert_eq!(
        cli(a, &["get", "h"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        cli(a, &["set", "k", "v", "ex", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(cli(a, &["set", "k", "v", "nx", "xx"]), "ERR syntax error");
    assert_eq!(
        cli(a, &["get"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert!(cli(a, &["nosuchcommand", "x"]).starts_with("ERR unknown command 'nosuchcommand'"));
    assert_eq!(cli(a, &["dbsize"]), "4"); // greeting, hits, s, h
    assert_eq!(cli(a, &["expire", "hits", "100", "gt"]), "0");
    assert_eq!(cli(a, &["expire", "hits", "100", "nx"]), "1");
    assert_eq!(cli(a, &["del", "hits", "h", "nothere"]), "2");
}

#[test]
fn one_node_cluster_answers() {
    let (_node, a) = node();
    assert_eq!(cli(a, &["cluster", "keyslot", "foo"]), "12182");
    assert_eq!(
        cli(a, &["cluster", "keyslot", "{user1000}.following"]),
        "3443"
    );
    assert_eq!(cli(a, &["cluster", "keyslot", "123456789"]), "12739");
    let slots = cli(a, &["cluster", "slots"]);
    assert!(slots.starts_with("0\n16383\n127.0.0.1\n"), "{slots}");
    assert!(slots.contains(&a.port().to_string()));
    let info = cli(a, &["cluster", "info"]);
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_slots_assigned:16384"));
    let id = cli(a, &["cluster", "myid"]);
    assert_eq!(id.len(), 40);
    let nodes = cli(a, &["cluster", "nodes"]);
    assert!(nodes.starts_with(&id) && nodes.contains("myself,master") && nodes.contains("0-16383"));
    let shards = cli(a, &["cluster", "shards"]);
    assert!(shards.contains("online"), "{shards}");
    // Alone, the node holds every slot and answers as a standalone Redis: SORT patterns and a
    // script's keys of several slots are served (a mesh of several refuses them).
    cli(a, &["rpush", "ids", "2", "1"]);
    cli(
        a,
        &["mset", "w_1", "20", "w_2", "10", "o_1", "one", "o_2", "two"],
    );
    assert_eq!(
        cli(a, &["sort", "ids", "by", "w_*", "get", "o_*"]),
        "two\none"
    );
    let script = "redis.call('set', KEYS[1], 'x'); redis.call('set', KEYS[2], 'y'); return redis.call('mget', KEYS[1], KEYS[2])";
    assert_eq!(cli(a, &["eval", script, "2", "foo", "bar"]), "x\ny");
}

#[test]
fn introspection_info_command_config() {
    let (_node, a) = node();
    let info = cli(a, &["info"]);
    for field in [
        "redis_version:7.2.4",
        "arch_bits:64",
        "cluster_enabled:1",
        "used_memory:",
        "connected_clients:",
    ] {
        assert!(info.contains(field), "INFO lacks {field}");
    }
    let count: usize = cli(a, &["command", "count"]).parse().unwrap();
    assert!(count > 150, "{count}");
    let get = cli(a, &["command", "info", "get"]);
    assert!(get.contains("readonly") && get.contains("fast"), "{get}");
    assert_eq!(
        cli(a, &["command", "getkeys", "mset", "a", "1", "b", "2"]),
        "a\nb"
    );
    assert_eq!(
        cli(
            a,
            &[
                "command",
                "getkeys",
                "zunionstore",
                "dst",
                "2",
                "k1",
                "k2",
                "weights",
                "1",
                "2"
            ]
        ),
        "dst\nk1\nk2"
    );
    assert_eq!(cli(a, &["config", "set", "maxmemory", "100mb"]), "OK");
    assert_eq!(
        cli(a, &["config", "get", "maxmemory"]),
        "maxmemory\n104857600"
    );
    assert_eq!(cli(a, &["config", "set", "appendonly", "no"]), "OK");
    assert_eq!(
        cli(a, &["config", "set", "nosuch", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(cli(a, &["client", "setname", "tester"]), "OK");
    assert!(cli(a, &["client", "list"]).contains("laddr="));
    assert_eq!(cli(a, &["select", "0"]), "OK");
    assert_eq!(cli(a, &["select", "1"]), "ERR DB index is out of range");
    // RESP3: maps and doubles as redis-cli -3 shows them.
    let hello = cli(a, &["-3", "hello", "3"]);
    assert!(hello.contains("proto") && hello.contains('3'), "{hello}");
    assert_eq!(cli(a, &["zadd", "z", "1.5", "m"]), "1");
    assert_eq!(
        cli(a, &["-3", "--no-raw", "zscore", "z", "m"]),
        "(double) 1.5"
    );
}
