"""redis-py sessions against a Proxima node: the plain client (RESP2 and RESP3) and
RedisCluster against the one-node cluster. Exits non-zero on the first failed assertion.

Usage: redis_py_session.py HOST PORT
"""
import sys
import threading
import time

import redis
from redis.cluster import RedisCluster

host, port = sys.argv[1], int(sys.argv[2])


def plain(protocol):
    r = redis.Redis(host=host, port=port, protocol=protocol, decode_responses=True)
    p = f"p{protocol}:"
    assert r.ping()
    # Cache-aside with TTL.
    assert r.set(p + "page:/home", "<html>", ex=30)
    assert r.get(p + "page:/home") == "<html>"
    assert 29 <= r.ttl(p + "page:/home") <= 30
    assert r.set(p + "page:/home", "<html2>", xx=True, keepttl=True)
    assert r.ttl(p + "page:/home") > 0
    assert r.getex(p + "page:/home", persist=True) == "<html2>"
    assert r.ttl(p + "page:/home") == -1
    # Counters.
    assert r.incr(p + "views") == 1
    assert r.incrby(p + "views", 9) == 10
    assert r.incrbyfloat(p + "temp", 1.5) == 1.5
    assert r.mset({p + "a": "1", p + "b": "2"})
    assert r.mget([p + "a", p + "b", p + "zz"]) == ["1", "2", None]
    # Hashes.
    r.hset(p + "user:1", mapping={"name": "Ada", "age": "36"})
    assert r.hgetall(p + "user:1") == {"name": "Ada", "age": "36"}
    assert r.hincrby(p + "user:1", "age", 1) == 37
    assert r.hmget(p + "user:1", ["name", "nope"]) == ["Ada", None]
    # Lists, sets, sorted sets.
    r.rpush(p + "q", "a", "b", "c")
    assert r.lrange(p + "q", 0, -1) == ["a", "b", "c"]
    assert r.lpos(p + "q", "c") == 2
    assert r.sadd(p + "tags", "x", "y", "z") == 3
    assert r.sinter([p + "tags"]) == {"x", "y", "z"}
    r.zadd(p + "lb", {"ann": 10, "bob": 20, "cid": 15})
    # RESP2 answers tuples, RESP3 [member, score] pairs (as with real Redis).
    ranked = [tuple(x) for x in r.zrange(p + "lb", 0, -1, desc=True, withscores=True)]
    assert ranked == [("bob", 20.0), ("cid", 15.0), ("ann", 10.0)], ranked
    assert r.zscore(p + "lb", "cid") == 15.0
    assert r.zrank(p + "lb", "bob") == 2
    # Transactions.
    with r.pipeline(transaction=True) as pipe:
        pipe.incr(p + "tx").expire(p + "tx", 60)
        assert pipe.execute() == [1, True]
    # SCAN family.
    keys = set(r.scan_iter(match=p + "*", count=3))
    assert p + "views" in keys and p + "user:1" in keys, keys
    assert dict(r.hscan_iter(p + "user:1")) == {"name": "Ada", "age": "37"}
    # Errors surface as exceptions with Redis's text.
    try:
        r.lpush(p + "user:1", "x")
        raise AssertionError("expected WRONGTYPE")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE"), e
    info = r.info()
    assert info["redis_version"].startswith("7."), info
    assert info["cluster_enabled"] == 1
    assert r.dbsize() > 0
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lfu"}


def pubsub():
    r = redis.Redis(host=host, port=port, decode_responses=True)
    ps = r.pubsub()
    ps.subscribe("invalidate")
    msg = ps.get_message(timeout=5)
    assert msg["type"] == "subscribe", msg
    assert r.publish("invalidate", "user:1") == 1
    msg = ps.get_message(timeout=5)
    assert msg["type"] == "message" and msg["data"] == "user:1", msg
    ps.close()


def blocking_queue():
    r = redis.Redis(host=host, port=port, decode_responses=True)
    got = {}

    def worker():
        got["job"] = redis.Redis(host=host, port=port, decode_responses=True).blpop(["jobs"], timeout=10)

    t = threading.Thread(target=worker)
    t.start()
    deadline = time.time() + 5
    while time.time() < deadline and len(r.client_list()) < 2:
        time.sleep(0.02)
    r.lpush("jobs", "job-7")
    t.join(10)
    assert tuple(got.get("job") or ()) == ("jobs", "job-7"), got
    assert r.blpop(["jobs"], timeout=0.1) is None


def cluster():
    rc = RedisCluster(host=host, port=port, decode_responses=True)
    assert rc.ping()
    for i in range(30):
        rc.set(f"c:{i}", i)
    assert rc.get("c:7") == "7"
    assert rc.mget_nonatomic(["c:1", "c:2", "c:3"]) == ["1", "2", "3"]
    assert rc.keyslot("foo") == 12182
    assert rc.cluster_keyslot("{user1000}.following") == 3443
    rc.hset("{obj}.h", "f", "v")
    assert rc.hget("{obj}.h", "f") == "v"
    rc.zadd("{obj}.z", {"m": 1})
    assert rc.zcard("{obj}.z") == 1
    assert rc.exists("c:1", "c:2") == 2
    nodes = rc.get_nodes()
    assert len(nodes) == 1 and nodes[0].port == port, nodes
    rc.close()


plain(2)
plain(3)
pubsub()
blocking_queue()
cluster()
print("redis-py ok")
