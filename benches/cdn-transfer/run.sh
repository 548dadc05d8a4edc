#!/usr/bin/env bash
# Node-to-node verified transfer over loopback QUIC: the Proxima fetcher (proxima/blob/1, bao
# verification of every 16 KiB group on both sides, stored to disk) against iroh-blobs doing the
# same transfer (fs stores), and against one plain quinn stream of the same bytes (no
# verification, client discards), in the same run. Servers on core 0, clients on core 1.
#
#   benches/cdn-transfer/run.sh [SIZE_MIB] [RUNS]
#
# Builds both peers in release mode (the iroh peer in its own crate and target dir, so iroh's
# dependency tree stays out of the workspace). Prints one JSON line per transfer, then medians.
set -euo pipefail
SIZE_MIB=${1:-1024}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PX_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
IROH_TARGET=${IROH_TARGET_DIR:-$HOME/.cache/proxima/target-iroh-peer}
(cd "$ROOT" && cargo build --release -q -p cdn-edge --example transfer_bench)
(cd "$ROOT/benches/iroh-peer" && CARGO_TARGET_DIR=$IROH_TARGET cargo build --release -q)
PX=$PX_TARGET/release/examples/transfer_bench
IR=$IROH_TARGET/release/iroh-peer
W=$(mktemp -d -t cdn-transfer.XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

cpu_of() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }

# Proxima server: one blob of SIZE_MIB MiB in its store.
mkfifo "$W/px-in" "$W/ir-in"
taskset -c 0 "$PX" serve "$W/px-server" "$SIZE_MIB" <"$W/px-in" >"$W/px-server.out" 2>"$W/px-server.err" &
PXS=$!; PIDS+=("$PXS")
exec 7>"$W/px-in"
for _ in $(seq 1 600); do grep -q READY "$W/px-server.out" 2>/dev/null && break; sleep 0.2; done
read -r _ P2P PEER QUIC HASH <"$W/px-server.out"
DATA=$(find "$W/px-server/store/data" -name "$HASH.data")
BYTES=$(stat -c %s "$DATA")

# iroh-blobs server on the same bytes.
taskset -c 0 "$IR" serve "$W/ir-server" "$DATA" <"$W/ir-in" >"$W/ir-server.out" 2>"$W/ir-server.err" &
IRS=$!; PIDS+=("$IRS")
exec 8>"$W/ir-in"
for _ in $(seq 1 600); do grep -q READY "$W/ir-server.out" 2>/dev/null && break; sleep 0.2; done
read -r _ IR_ID IR_ADDR IR_HASH <"$W/ir-server.out"
[ "$IR_HASH" = "$HASH" ] || { echo "iroh hashes the file to $IR_HASH, proxima to $HASH" >&2; exit 1; }

echo "# $SIZE_MIB MiB, $RUNS runs; $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
for run in $(seq 1 "$RUNS"); do
  s0=$(cpu_of "$PXS")
  line=$(taskset -c 1 "$PX" fetch "$W/px-client" "$P2P" "$HASH")
  echo "${line%\}},\"server_cpu_s\":$(echo "$(cpu_of "$PXS") - $s0" | bc),\"run\":$run}"
  s0=$(cpu_of "$IRS")
  line=$(taskset -c 1 "$IR" fetch "$W/ir-client" "$IR_ID" "$IR_ADDR" "$HASH")
  echo "${line%\}},\"server_cpu_s\":$(echo "$(cpu_of "$IRS") - $s0" | bc),\"run\":$run}"
  s0=$(cpu_of "$PXS")
  line=$(taskset -c 1 "$PX" raw "$P2P" "$PEER" "$QUIC" "$BYTES")
  echo "${line%\}},\"server_cpu_s\":$(echo "$(cpu_of "$PXS") - $s0" | bc),\"run\":$run}"
done | tee "$W/results.jsonl"
python3 - "$W/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault(r["tool"], []).append(r)
med = lambda xs: statistics.median(xs)
print("| tool | MiB/s (median) | per run | client CPU s | server CPU s | client max RSS MiB |")
print("|---|---|---|---|---|---|")
for tool, rs in by.items():
    runs = ", ".join("%.0f" % r["mib_s"] for r in rs)
    print("| %s | %.0f | %s | %.2f | %.2f | %.0f |" % (
        tool, med([r["mib_s"] for r in rs]), runs,
        med([r["client_cpu_s"] for r in rs]), med([r["server_cpu_s"] for r in rs]),
        med([r["client_max_rss_kib"] for r in rs]) / 1024))
if "proxima" in by and "iroh-blobs" in by:
    ratios = [p["mib_s"] / i["mib_s"] for p, i in zip(by["proxima"], by["iroh-blobs"])]
    print("\nproxima / iroh-blobs throughput: median %.2f (per run %s)" % (
        med(ratios), ", ".join("%.2f" % x for x in ratios)))
PY
