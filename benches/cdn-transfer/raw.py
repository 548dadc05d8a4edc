#!/usr/bin/env python3
"""Collects what benches/cdn-transfer/run.sh measured into one raw JSON file under
benches/results/raw/ (schema proxima-bench-transfer/1, documented in benches/results/raw/README.md).

    python3 benches/cdn-transfer/raw.py HEADER.json RESULTS.jsonl --size-mib N --bytes B --runs R
        --hash H --proxima-bin PX --iroh-bin IR [--raw-dir DIR]

HEADER.json: benches/rawjson.py header, taken when the run started. RESULTS.jsonl: one line per
transfer as the tools print it ({tool, bytes, seconds, mib_s, client_cpu_s, client_max_rss_kib,
...}) with server_cpu_s and run added by the script.
"""
import argparse, datetime, json, os, re, sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import rawjson  # noqa: E402  (benches/rawjson.py)

TOOLS = ["proxima", "iroh-blobs", "quinn-raw"]
FIGURES = ["mib_s", "seconds", "client_cpu_s", "server_cpu_s", "client_max_rss_kib", "first_group_ms"]
# (figure, label, ours over peer: throughput; else a cost, peer over ours), peers: above 1, ours is better.
RATIOS = [("iroh-blobs", "mib_s", "MiB/s", True), ("iroh-blobs", "client_cpu_s", "client CPU s", False),
          ("iroh-blobs", "server_cpu_s", "server CPU s", False), ("quinn-raw", "mib_s", "MiB/s", True)]


def locked(lockfile, crate):
    """The version of a crate in a Cargo.lock (the first one listed)."""
    try:
        text = open(lockfile).read()
    except FileNotFoundError:
        return None
    m = re.search(rf'\nname = "{re.escape(crate)}"\nversion = "([^"]+)"', text)
    return m.group(1) if m else None


def binary(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"path": path}
    return {"path": path, "bytes": st.st_size, "mtime": datetime.datetime.fromtimestamp(
        st.st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("header")
    ap.add_argument("results")
    ap.add_argument("--size-mib", type=int, required=True)
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--hash", required=True)
    ap.add_argument("--proxima-bin", required=True)
    ap.add_argument("--iroh-bin", required=True)
    ap.add_argument("--raw-dir", default=rawjson.RAW)
    a = ap.parse_args()
    with open(a.header) as f:
        result = json.load(f)
    measurements = [json.loads(l) for l in open(a.results) if l.startswith("{")]
    lock, iroh_lock = os.path.join(rawjson.ROOT, "Cargo.lock"), os.path.join(rawjson.ROOT, "benches", "iroh-peer", "Cargo.lock")
    result.update({
        "versions": {"proxima": f"cdn-edge {locked(lock, 'cdn-edge')} (examples/transfer_bench, at the commit above)",
                     "quinn": locked(lock, "quinn"), "iroh-blobs": locked(iroh_lock, "iroh-blobs"),
                     "iroh": locked(iroh_lock, "iroh")},
        "binaries": {"proxima": binary(a.proxima_bin), "iroh-blobs": binary(a.iroh_bin)},
        "settings": {"size_mib": a.size_mib, "bytes": a.bytes, "runs": a.runs, "hash": a.hash,
                     "order": TOOLS, "pinning": {"servers": "taskset -c 0", "clients": "taskset -c 1"}},
    })
    by = {t: sorted((m for m in measurements if m["tool"] == t), key=lambda m: m["run"]) for t in TOOLS}
    medians = {}
    for t, ms in by.items():
        if ms:
            medians[t] = {"tool": t, **{k: rawjson.med(m.get(k) for m in ms) for k in FIGURES},
                          "runs_mib_s": [m["mib_s"] for m in ms]}
    ratios = []
    for peer, fig, label, throughput in RATIOS:
        if "proxima" not in medians or peer not in medians:
            continue
        runs = sorted({m["run"] for m in by["proxima"]} & {m["run"] for m in by[peer]})
        pick = lambda t: [next(m.get(fig) for m in by[t] if m["run"] == r) for r in runs]
        ratios.append({"case": f"{a.size_mib:,} MiB blob", "figure": label, "ours": "proxima", "peer": peer,
                       "ours_median": medians["proxima"][fig], "peer_median": medians[peer][fig],
                       **rawjson.ratio_entry(pick("proxima"), pick(peer), ours_over_peer=throughput)})
    result.update({"measurements": measurements, "medians": medians, "ratios": ratios})
    path = rawjson.write(result, a.raw_dir)
    for r in ratios:
        print(f"proxima vs {r['peer']}, {r['figure']}: {r['of_medians']}x (per-run median {r['median_of_runs']}x; "
              "above 1: proxima better)")
    print(f"raw: {os.path.relpath(path, rawjson.ROOT)}")


if __name__ == "__main__":
    main()
