#!/usr/bin/env bash
# Node-to-node verified transfer over loopback QUIC: the Proxima fetcher (proxima/blob/1, bao
# verification of every 16 KiB group on both sides, stored to disk) against iroh-blobs doing the
# same transfer (fs stores), and against one plain quinn stream of the same bytes (no
# verification, client discards), in the same run. Servers on core 0, clients on core 1.
#
#   benches/cdn-transfer/run.sh [SIZE_MIB] [RUNS] [--note TEXT] [--raw-dir benches/results/raw]
#
# Builds both peers in release mode (the iroh peer in its own crate and target dir,
# IROH_TARGET_DIR, so iroh's dependency tree stays out of the workspace). Prints one JSON line
# per transfer, then writes one JSON file under benches/results/raw/ (machine, commit, command
# line, versions, every transfer, medians, ratios; benches/cdn-transfer/raw.py collects them);
# `benches/report transfer` turns it into the section of benches/results/transfer.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HEADER_ARGS=("$0" "$@")
NOTE=""; RAW_DIR=$ROOT/benches/results/raw
POS=()
while [ $# -gt 0 ]; do
  case $1 in
    --note) NOTE=$2; shift 2 ;;
    --raw-dir) RAW_DIR=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) POS+=("$1"); shift ;;
  esac
done
SIZE_MIB=${POS[0]:-1024}
RUNS=${POS[1]:-3}
PX_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
IROH_TARGET=${IROH_TARGET_DIR:-$HOME/.cache/proxima/target-iroh-peer}
W=$(mktemp -d -t cdn-transfer.XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
python3 "$ROOT/benches/rawjson.py" header transfer "$NOTE" -- "${HEADER_ARGS[@]}" >"$W/header.json"
(cd "$ROOT" && cargo build --release -q -p cdn-edge --example transfer_bench)
(cd "$ROOT/benches/iroh-peer" && CARGO_TARGET_DIR=$IROH_TARGET cargo build --release -q)
PX=$PX_TARGET/release/examples/transfer_bench
IR=$IROH_TARGET/release/iroh-peer

cpu_of() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
since() { awk -v a="$(cpu_of "$1")" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }  # pid, cpu_of before

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
  echo "${line%\}},\"server_cpu_s\":$(since "$PXS" "$s0"),\"run\":$run}"
  s0=$(cpu_of "$IRS")
  line=$(taskset -c 1 "$IR" fetch "$W/ir-client" "$IR_ID" "$IR_ADDR" "$HASH")
  echo "${line%\}},\"server_cpu_s\":$(since "$IRS" "$s0"),\"run\":$run}"
  s0=$(cpu_of "$PXS")
  line=$(taskset -c 1 "$PX" raw "$P2P" "$PEER" "$QUIC" "$BYTES")
  echo "${line%\}},\"server_cpu_s\":$(since "$PXS" "$s0"),\"run\":$run}"
done | tee "$W/results.jsonl"
python3 "$ROOT/benches/cdn-transfer/raw.py" "$W/header.json" "$W/results.jsonl" --size-mib "$SIZE_MIB" \
  --bytes "$BYTES" --runs "$RUNS" --hash "$HASH" --proxima-bin "$PX" --iroh-bin "$IR" --raw-dir "$RAW_DIR"
