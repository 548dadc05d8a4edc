"""A realistic redis-py RedisCluster session against a Proxima mesh (several nodes).
Exits non-zero on the first failed assertion.

Usage: redis_py_cluster.py HOST PORT
"""
import sys

from redis.cluster import RedisCluster

host, port = sys.argv[1], int(sys.argv[2])

rc = RedisCluster(host=host, port=port, decode_responses=True)
assert rc.ping()
nodes = rc.get_nodes()
assert len(nodes) >= 3, nodes
assert rc.keyslot("foo") == 12182
assert rc.cluster_keyslot("{user1000}.following") == 3443

# Cache-aside with TTLs over many slots.
for i in range(500):
    assert rc.set(f"py:page:{i}", f"<html {i}>", ex=60)
for i in range(0, 500, 13):
    assert rc.get(f"py:page:{i}") == f"<html {i}>"
    assert 55 <= rc.ttl(f"py:page:{i}") <= 60

# Counters and hashes.
assert rc.incr("py:views") == 1
assert rc.incrby("py:views", 41) == 42
rc.hset("py:user:1", mapping={"name": "Ada", "lang": "en"})
assert rc.hgetall("py:user:1") == {"name": "Ada", "lang": "en"}
assert rc.hincrby("py:user:1", "visits", 3) == 3

# Multi-key commands within a hash tag, and across slots (client-side split).
rc.rpush("{py:q}todo", "a", "b", "c")
assert rc.lmove("{py:q}todo", "{py:q}doing", "LEFT", "RIGHT") == "a"
assert rc.lrange("{py:q}doing", 0, -1) == ["a"]
rc.sadd("{py:s}a", "x", "y")
rc.sadd("{py:s}b", "y", "z")
assert rc.sinter("{py:s}a", "{py:s}b") == {"y"}
assert rc.mget_nonatomic(["py:page:1", "py:page:2", "py:nope"]) == ["<html 1>", "<html 2>", None]

# A cluster pipeline spanning slots.
pipe = rc.pipeline()
for i in range(100):
    pipe.set(f"py:pipe:{i}", i)
pipe.execute()
pipe = rc.pipeline()
for i in range(100):
    pipe.get(f"py:pipe:{i}")
assert pipe.execute() == [str(i) for i in range(100)]

# Sorted sets: a leaderboard.
rc.zadd("py:board", {"ann": 10, "bob": 30, "cy": 20})
assert rc.zrevrange("py:board", 0, 1) == ["bob", "cy"]

# Reads from replicas.
ro = RedisCluster(host=host, port=port, decode_responses=True, read_from_replicas=True)
for i in range(0, 500, 17):
    assert ro.get(f"py:page:{i}") == f"<html {i}>"

assert rc.delete("py:views") == 1
assert rc.get("py:views") is None
print("redis-py cluster session ok")
