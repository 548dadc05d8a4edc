"""What every benchmark's raw JSON file under benches/results/raw/ starts with, and how it is
written; shared by benches/cache/run, benches/cdn/raw.py and benches/cdn-transfer/raw.py (the
layout is the one of benches/dns/run, documented in benches/results/raw/README.md).

From Python:

    import rawjson
    result = rawjson.header("cache", note, sys.argv)   # schema, bench, note, started, machine, commit, command
    ...                                                # versions, settings, measurements, medians, ratios
    path = rawjson.write(result)                       # adds finished and the end load average

From a bash script, the header is taken at the start and finished by the script's helper:

    python3 benches/rawjson.py header BENCH NOTE -- "$0" "$@" >"$W/header.json"
"""
import datetime, json, os, platform, re, shlex, socket, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAW = os.path.join(ROOT, "benches", "results", "raw")


def sh(*cmd):
    """stdout and stderr of a command, stripped; None when the command is missing."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        return (r.stdout + r.stderr).strip()
    except (FileNotFoundError, PermissionError):
        return None


def first_line(s):
    return s.splitlines()[0] if s else None


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def machine():
    cpu = open("/proc/cpuinfo").read()
    m = re.search(r"model name\s*:\s*(.*)", cpu)
    return {"hostname": socket.gethostname(), "nproc": os.cpu_count(), "cpu_model": m.group(1) if m else None,
            "kernel": platform.release(), "loadavg_start": list(os.getloadavg())}


def commit():
    head = sh("git", "rev-parse", "HEAD")
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":!benches/results"], cwd=ROOT).returncode != 0
    return {"hash": head, "dirty": dirty, "subject": sh("git", "log", "-1", "--format=%s")}


def command(argv):
    """The command line, shell-quoted, its program relative to the repository root."""
    prog = os.path.abspath(argv[0])
    if prog.startswith(ROOT + os.sep):
        prog = os.path.relpath(prog, ROOT)
    return shlex.join([prog, *argv[1:]])


def header(bench, note, argv):
    return {"schema": f"proxima-bench-{bench}/1", "bench": bench, "note": note or "", "started": now(),
            "machine": machine(), "commit": commit(), "command": command(argv)}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b, digits=3):
    return round(a / b, digits) if a is not None and b else None


def ratio_entry(ours_runs, peer_runs, ours_over_peer=True):
    """Ratio of the medians and the median of the per-run ratios, from two lists of per-run
    figures in run order (None where a run has no figure). ours_over_peer: throughput (ours /
    peer); otherwise a cost (peer / ours). Either way, above 1 means ours is better."""
    pairs = [(x, y) for x, y in zip(ours_runs, peer_runs) if x is not None and y is not None and x and y]
    per_run = [(x / y if ours_over_peer else y / x) for x, y in pairs]
    mo, mp = med(ours_runs), med(peer_runs)
    of_medians = ratio(mo, mp) if ours_over_peer else ratio(mp, mo)
    return {"of_medians": of_medians, "median_of_runs": round(med(per_run), 3) if per_run else None,
            "per_run": [round(r, 3) for r in per_run]}


def write(result, raw_dir=RAW):
    """Adds finished and the end load average, writes BENCH-<UTC start>-<commit>.json under
    raw_dir and returns its path."""
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    result["finished"] = now()
    # Keep the header's keys first, as in the DNS files.
    order = ["schema", "bench", "note", "started", "finished", "machine", "commit", "command"]
    out = {k: result[k] for k in order if k in result}
    out.update({k: v for k, v in result.items() if k not in out})
    started = datetime.datetime.fromisoformat(result["started"])
    short = (result["commit"]["hash"] or "unknown")[:9]
    os.makedirs(raw_dir, exist_ok=True)
    path = os.path.join(raw_dir, f"{result['bench']}-{started.strftime('%Y%m%dT%H%M%SZ')}-{short}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    return path


if __name__ == "__main__":
    # python3 benches/rawjson.py header BENCH NOTE -- COMMAND...
    if len(sys.argv) < 5 or sys.argv[1] != "header" or sys.argv[4] != "--":
        raise SystemExit("usage: rawjson.py header BENCH NOTE -- COMMAND...")
    json.dump(header(sys.argv[2], sys.argv[3], sys.argv[5:]), sys.stdout)
    print()
