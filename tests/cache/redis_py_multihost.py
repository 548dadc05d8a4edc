"""redis-py against one host of the multi-host test (tests/multihost.rs), run from another
host's network namespace. Exits non-zero on the first failed check; prints one JSON line.

Usage: redis_py_multihost.py HOST PORT PASSWORD --members N
           [--write PREFIX] [--read PREFIX ...] [--count N] [--replicas]

- the map the host gives (CLUSTER SLOTS) covers the 16384 slots with N members, every address
  in 198.18.0.0/24 (never 0.0.0.0 or 127.0.0.1), and a key owned elsewhere gets MOVED to one
  of them;
- RedisCluster (with the password) sees N nodes at those addresses, writes COUNT keys
  PREFIX:i over many slots and reads back every key of each --read prefix;
- --replicas: every key read is on every owner the map names (READONLY GET on a direct
  connection to each owner answers from that owner's copy), within a deadline.
"""
import argparse
import ipaddress
import json
import sys
import time

from redis import Redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

NET = ipaddress.ip_network("198.18.0.0/24")
SLOTS = 16384


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def reachable(host):
    try:
        return ipaddress.ip_address(host) in NET
    except ValueError:
        return False


def text(b):
    return b.decode() if isinstance(b, bytes) else str(b)


p = argparse.ArgumentParser()
p.add_argument("host")
p.add_argument("port", type=int)
p.add_argument("password")
p.add_argument("--members", type=int, required=True)
p.add_argument("--write")
p.add_argument("--read", nargs="*", default=[])
p.add_argument("--count", type=int, default=200)
p.add_argument("--replicas", action="store_true")
a = p.parse_args()

# The raw map, on one connection that asked for it (so it gets MOVED, not proxying).
plain = Redis(host=a.host, port=a.port, password=a.password, single_connection_client=True)
conn = plain.connection
conn.send_command("CLUSTER", "MYID")
myid = text(conn.read_response())
conn.send_command("CLUSTER", "SLOTS")
ranges = []  # (first, last, [(host, port, id), ...]) with the primary first
for r in conn.read_response():
    owners = [(text(n[0]), int(n[1]), text(n[2])) for n in r[2:]]
    ranges.append((int(r[0]), int(r[1]), owners))
ranges.sort()
covered = 0
for first, last, owners in ranges:
    check(first == covered, f"slot {covered} missing from CLUSTER SLOTS: {ranges[:3]}...")
    covered = last + 1
    for h, port, _ in owners:
        check(reachable(h), f"CLUSTER SLOTS from {a.host} names {h}:{port}")
check(covered == SLOTS, f"CLUSTER SLOTS covers {covered} slots")
addrs = sorted({(h, port) for _, _, o in ranges for h, port, _ in o})
ids = {i for _, _, o in ranges for _, _, i in o}
check(len(addrs) == a.members and len(ids) == a.members,
      f"CLUSTER SLOTS from {a.host} names {addrs} ({len(ids)} ids), expected {a.members}")

# A key whose primary is another node: MOVED to that node's reachable address.
elsewhere = next(r for r in ranges if r[2][0][2] != myid)
n = 0
while not (elsewhere[0] <= key_slot(f"mv:{n}".encode()) <= elsewhere[1]):
    n += 1
conn.send_command("GET", f"mv:{n}")
try:
    conn.read_response()
    check(False, f"GET mv:{n} (slot of {elsewhere[2][0]}) on {a.host} was not MOVED")
except Exception as e:  # redis-py raises MovedError("SLOT HOST:PORT") or ResponseError
    moved = str(e).split()[-1]
mh, mp = moved.rsplit(":", 1)
check(reachable(mh), f"MOVED from {a.host} to {moved}")
check((mh, int(mp)) == elsewhere[2][0][:2], f"MOVED to {moved}, map says {elsewhere[2][0]}")
plain.close()

# The cluster client, with the password.
rc = RedisCluster(host=a.host, port=a.port, password=a.password, decode_responses=True)
nodes = sorted((nd.host, nd.port) for nd in rc.get_nodes())
check(all(reachable(h) for h, _ in nodes), f"RedisCluster via {a.host} was given {nodes}")
check(len(nodes) == a.members, f"RedisCluster via {a.host} sees {nodes}")
written = 0
if a.write:
    for i in range(a.count):
        check(rc.set(f"{a.write}:{i}", f"v-{a.write}-{i}"), f"SET {a.write}:{i}")
        written += 1
keys = [f"{pre}:{i}" for pre in a.read + ([a.write] if a.write else []) for i in range(a.count)]
for k in keys:
    v = rc.get(k)
    pre, i = k.rsplit(":", 1)
    check(v == f"v-{pre}-{i}", f"GET {k} via {a.host} = {v!r}")
slots_used = len({key_slot(k.encode()) for k in keys})

# Every key on every owner the map names (its primary and its replicas).
copies = 0
if a.replicas:
    conns = {}

    def owner_conn(h, port):
        if (h, port) not in conns:
            c = Redis(host=h, port=port, password=a.password, single_connection_client=True,
                      decode_responses=True)
            c.execute_command("READONLY")
            conns[(h, port)] = c
        return conns[(h, port)]

    def owners_of(k):
        s = key_slot(k.encode())
        return next(o for f, l, o in ranges if f <= s <= l)

    missing = [(k, h, port) for k in keys for h, port, _ in owners_of(k)]
    check(all(len(owners_of(k)) >= 2 for k in keys), "a slot has no replica in the map")
    deadline = time.monotonic() + 20
    while True:
        left = []
        for k, h, port in missing:
            pre, i = k.rsplit(":", 1)
            if owner_conn(h, port).get(k) != f"v-{pre}-{i}":
                left.append((k, h, port))
        copies += len(missing) - len(left)
        missing = left
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(not missing, f"{len(missing)} copies missing, e.g. {missing[:5]}")

print(json.dumps({
    "host": a.host,
    "members": [f"{h}:{port}" for h, port in addrs],
    "moved": moved,
    "written": written,
    "read": len(keys),
    "slots": slots_used,
    "copies": copies,
}))
