#!/usr/bin/env python3
"""Collects what benches/cdn/run.sh measured into one raw JSON file under benches/results/raw/
(schema proxima-bench-cdn/1, documented in benches/results/raw/README.md).

    python3 benches/cdn/raw.py WORKDIR --bin BIN --seconds S --runs N --big FILE --hash-mib M [--raw-dir DIR]

WORKDIR holds header.json (benches/rawjson.py header, taken when the run started), site/ (the
files served), wrk/ (wrk's output of every measurement) and measurements.tsv, one line each:

    wrk  RUN SERVER FILE CONNECTIONS WRK_OUTPUT_FILE
    rss  RUN PROXIMA_KIB NGINX_KIB
    hash RUN THREADS PROXIMA_SECONDS B3SUM_SECONDS
"""
import argparse, datetime, json, os, re, sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import rawjson  # noqa: E402  (benches/rawjson.py)

UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}  # wrk's units are binary
TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", v)
    return round(float(m.group(1)) * TIME[m.group(2)], 4) if m else None


def size(v):
    m = re.fullmatch(r"([\d.]+)(B|KB|MB|GB|TB)", v)
    return round(float(m.group(1)) * UNITS[m.group(2)]) if m else None


def parse_wrk(text):
    """Requests/s, latency percentiles (ms), bytes/s, requests and errors from wrk --latency."""
    find = lambda pat: (lambda m: m.groups() if m else None)(re.search(pat, text))
    out = {"rps": None, "p50_ms": None, "p75_ms": None, "p90_ms": None, "p99_ms": None, "bytes_per_s": None,
           "requests": None, "errors": 0}
    if (g := find(r"Requests/sec:\s+([\d.]+)")):
        out["rps"] = float(g[0])
    for p in ("50", "75", "90", "99"):
        if (g := find(rf"\n\s+{p}%\s+(\S+)")):
            out[f"p{p}_ms"] = ms(g[0])
    if (g := find(r"Transfer/sec:\s+(\S+)")):
        out["bytes_per_s"] = size(g[0])
    if (g := find(r"(\d+) requests in ")):
        out["requests"] = int(g[0])
    if (g := find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")):
        out["errors"] += sum(int(x) for x in g)
    if (g := find(r"Non-2xx or 3xx responses: (\d+)")):
        out["errors"] += int(g[0])
    return out


def label(nbytes, conns):
    for unit, n in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= n and nbytes % n == 0:
            return f"{nbytes // n} {unit}, {conns} connection{'s' if conns != 1 else ''}"
    return f"{nbytes} B, {conns} connection{'s' if conns != 1 else ''}"


def number(v):
    try:
        return float(v)
    except ValueError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--big", required=True, help="name of the large file")
    ap.add_argument("--hash-mib", type=int, required=True)
    ap.add_argument("--raw-dir", default=rawjson.RAW)
    a = ap.parse_args()
    w = a.workdir
    with open(os.path.join(w, "header.json")) as f:
        result = json.load(f)
    files = {n: os.path.getsize(os.path.join(w, "site", n)) for n in ("1k.bin", "16k.bin", a.big)}
    measurements, rss, hashes = [], [], []
    with open(os.path.join(w, "measurements.tsv")) as f:
        for line in f:
            kind, *v = line.rstrip("\n").split("\t")
            if kind == "wrk":
                run, server, name, conns, path = int(v[0]), v[1], v[2], int(v[3]), v[4]
                m = {"run": run, "server": server, "case": label(files[name], conns), "file": name,
                     "bytes": files[name], "connections": conns}
                m.update(parse_wrk(open(path).read()))
                measurements.append(m)
            elif kind == "rss":
                rss.append({"run": int(v[0]), "proxima": int(v[1]), "nginx": int(v[2])})
            elif kind == "hash":
                hashes.append({"run": int(v[0]), "threads": int(v[1]), "proxima_s": number(v[2]), "b3sum_s": number(v[3])})
    cases = list(dict.fromkeys(m["case"] for m in measurements))
    st = os.stat(a.bin)
    result.update({
        "versions": {"proxima": rawjson.first_line(rawjson.sh(a.bin, "--version")),
                     "nginx": rawjson.first_line(rawjson.sh("nginx", "-v")),
                     "wrk": (rawjson.first_line(rawjson.sh("wrk", "-v")) or "").split(" Copyright")[0] or None,
                     "b3sum": rawjson.first_line(rawjson.sh("b3sum", "--version"))},
        "node": {"binary": a.bin, "binary_bytes": st.st_size, "binary_mtime": datetime.datetime.fromtimestamp(
            st.st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")},
        "settings": {"seconds": a.seconds, "runs": a.runs, "wrk": ["-t1", f"-d{a.seconds}s", "--latency"],
                     "files": files, "cases": cases, "hash_mib": a.hash_mib, "hash_threads": [1, 2],
                     "nginx": "worker_processes 1; sendfile on; tcp_nopush on; access_log off",
                     "pinning": {"servers": "taskset -c 0", "wrk": "taskset -c 1"}},
    })
    medians, ratios = {}, []
    for case in cases:
        runs = {}
        for server in ("proxima", "nginx"):
            ms_ = sorted((m for m in measurements if m["case"] == case and m["server"] == server), key=lambda m: m["run"])
            runs[server] = ms_
            medians[f"{server}/{case}"] = {
                "server": server, "case": case, **{k: rawjson.med(m[k] for m in ms_) for k in
                                                  ("rps", "p50_ms", "p99_ms", "bytes_per_s")},
                "errors": sum(m["errors"] for m in ms_), "runs_rps": [m["rps"] for m in ms_]}
        r = rawjson.ratio_entry([m["rps"] for m in runs["proxima"]], [m["rps"] for m in runs["nginx"]])
        ratios.append({"case": case, "figure": "requests/s", "ours": "proxima", "peer": "nginx",
                       "ours_median": medians[f"proxima/{case}"]["rps"], "peer_median": medians[f"nginx/{case}"]["rps"], **r})
    hashing = {}
    for t in (1, 2):
        hs = sorted((h for h in hashes if h["threads"] == t), key=lambda h: h["run"])
        if not hs:
            continue
        p, b = [h["proxima_s"] for h in hs], [h["b3sum_s"] for h in hs]
        hashing[str(t)] = {"proxima_s": rawjson.med(p), "b3sum_s": rawjson.med(b), "runs_proxima_s": p, "runs_b3sum_s": b}
        ratios.append({"case": f"hashing {a.hash_mib:,} MiB, {t} thread{'s' if t > 1 else ''}", "figure": "seconds",
                       "ours": "proxima publish", "peer": "b3sum",
                       "ours_median": rawjson.med(p), "peer_median": rawjson.med(b),
                       **rawjson.ratio_entry(p, b, ours_over_peer=False)})
    result.update({"measurements": measurements, "hashing_runs": hashes, "rss_kib": rss,
                   "medians": medians, "hashing": hashing, "ratios": ratios})
    path = rawjson.write(result, a.raw_dir)
    for r in ratios:
        print(f"{r['case']}: {r['figure']} {r['of_medians']}x (per-run median {r['median_of_runs']}x; above 1: proxima better)")
    print(f"raw: {os.path.relpath(path, rawjson.ROOT)}")


if __name__ == "__main__":
    main()
