#!/usr/bin/env bash
# CDN edge benchmark: the Proxima gateway against nginx (one worker, sendfile) serving the same
# files, both pinned to core 0, wrk on core 1; and BLAKE3 hashing of the publisher against b3sum.
#
#   benches/cdn/run.sh [PROXIMA_BIN] [DURATION_SECONDS] [RUNS] [--note TEXT] [--big-mib 100]
#                      [--hash-mib 1024] [--raw-dir benches/results/raw]
#
# Each run measures every case on both servers (which goes first alternates run by run). Prints
# one line per case, then writes one JSON file under benches/results/raw/ (machine, commit,
# command line, every wrk run, hashing times, RSS, medians, ratios; benches/cdn/raw.py collects
# them); `benches/report cdn` turns it into the section of benches/results/cdn.md.
# --big-mib and --hash-mib shrink the large file and the hashed file for a quick validation run.
# Needs wrk, nginx, b3sum, taskset, curl, python3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HEADER_ARGS=("$0" "$@")
NOTE=""; BIG_MIB=100; HASH_MIB=1024; RAW_DIR=$ROOT/benches/results/raw
POS=()
while [ $# -gt 0 ]; do
  case $1 in
    --note) NOTE=$2; shift 2 ;;
    --big-mib) BIG_MIB=$2; shift 2 ;;
    --hash-mib) HASH_MIB=$2; shift 2 ;;
    --raw-dir) RAW_DIR=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) POS+=("$1"); shift ;;
  esac
done
BIN=$(realpath "${POS[0]:-./target/release/proxima}")
DUR=${POS[1]:-10}
RUNS=${POS[2]:-3}
SERVER_CORE=0
LOAD_CORE=1
for t in wrk nginx b3sum taskset curl python3; do
  command -v $t >/dev/null || { echo "$t is missing: run scripts/install-deps test (and PATH=/usr/sbin:\$PATH)" >&2; exit 1; }
done
W=$(mktemp -d -t cdn-bench.XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
python3 "$ROOT/benches/rawjson.py" header cdn "$NOTE" -- "${HEADER_ARGS[@]}" >"$W/header.json"
M=$W/measurements.tsv   # what benches/cdn/raw.py reads: wrk, rss and hash lines
mkdir -p "$W/wrk"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Files: the same bytes for both servers.
SITE=$W/site
BIG=${BIG_MIB}m.bin
mkdir -p "$SITE"
head -c 1024 /dev/urandom >"$SITE/1k.bin"
head -c 16384 /dev/urandom >"$SITE/16k.bin"
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$SITE/$BIG"
echo '<h1>bench</h1>' >"$SITE/index.html"
chmod -R a+rX "$W"   # nginx workers run as an unprivileged user

# Proxima node on core 0.
ADMIN=$(free_port); HTTP=$(free_port)
PROXIMA_LOG=warn taskset -c $SERVER_CORE "$BIN" node --data-dir "$W/data" --admin-listen 127.0.0.1:$ADMIN \
  --http-listen 127.0.0.1:$HTTP --dns-listen 127.0.0.1:0 --redis-listen 127.0.0.1:0 \
  --quic-listen 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/udp/0/quic-v1 \
  >"$W/node.log" 2>&1 &
PX=$!; PIDS+=($PX)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$ADMIN/health >/dev/null && break; sleep 0.1; done
"$BIN" name register bench.proxima --node http://127.0.0.1:$ADMIN >/dev/null
"$BIN" publish "$SITE" --name bench.proxima --node http://127.0.0.1:$ADMIN >/dev/null

# nginx: one worker, sendfile, same directory, core 0.
NG=$(free_port)
mkdir -p "$W/nginx"
cat >"$W/nginx/nginx.conf" <<NGINX
worker_processes 1;
worker_cpu_affinity auto;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  etag on;
  server { listen 127.0.0.1:$NG; root $SITE; }
}
NGINX
taskset -c $SERVER_CORE nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" >/dev/null 2>&1 &
NGP=$!; PIDS+=($NGP)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$NG/1k.bin >/dev/null && break; sleep 0.1; done

# Both serve identical bytes.
for f in 1k.bin 16k.bin "$BIG"; do
  cmp <(curl -s -H 'Host: bench.proxima' http://127.0.0.1:$HTTP/$f) <(curl -s http://127.0.0.1:$NG/$f) \
    || { echo "servers disagree on $f"; exit 1; }
done

# wrk's whole output is kept for benches/cdn/raw.py (requests/s, latency distribution,
# transfer/s, errors); one line per case here.
wrk_run() { # run server url conns host file
  local out=$W/wrk/$1-$2-$6-c$4.txt
  taskset -c $LOAD_CORE wrk -t1 -c"$4" -d"${DUR}s" --latency -H "Host: $5" "$3" >"$out" 2>&1 || true
  printf 'wrk\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$6" "$4" "$out" >>"$M"
  awk '/Requests\/sec/{print $2}' "$out"
}
rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }
nginx_rss() { # master + worker
  local t=0; for p in $(pgrep -P "$NGP") "$NGP"; do t=$((t + $(rss_kb "$p"))); done; echo $t
}

echo "nproc: $(nproc); CPU: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'); duration ${DUR}s; runs $RUNS"
for run in $(seq 1 "$RUNS"); do
  if [ $((run % 2)) = 1 ]; then order="proxima nginx"; else order="nginx proxima"; fi
  for c in "1k.bin 1" "1k.bin 64" "16k.bin 1" "16k.bin 64" "$BIG 1" "$BIG 4"; do
    read -r f conns <<<"$c"
    line="run $run $f c=$conns:"
    for s in $order; do
      if [ "$s" = proxima ]; then
        rps=$(wrk_run "$run" proxima "http://127.0.0.1:$HTTP/$f" "$conns" bench.proxima "$f")
      else
        rps=$(wrk_run "$run" nginx "http://127.0.0.1:$NG/$f" "$conns" localhost "$f")
      fi
      line="$line $s ${rps:-?} req/s"
    done
    echo "$line"
  done
  printf 'rss\t%s\t%s\t%s\n' "$run" "$(rss_kb $PX)" "$(nginx_rss)" >>"$M"
done

# Hashing: the publisher (dry run: scan + BLAKE3, one round trip to the node) against b3sum,
# on a HASH_MIB file in the page cache.
HF=$W/hash
mkdir -p "$HF"
head -c $((HASH_MIB * 1024 * 1024)) /dev/urandom >"$HF/data.bin"
b3sum "$HF/data.bin" >/dev/null
for t in 1 2; do
  for run in $(seq 1 "$RUNS"); do
    ps=$( { /usr/bin/time -f %e "$BIN" publish "$HF" --name bench.proxima --dry-run --threads $t \
      --node http://127.0.0.1:$ADMIN >/dev/null; } 2>&1 | tail -1)
    bs=$( { /usr/bin/time -f %e b3sum --num-threads $t "$HF/data.bin" >/dev/null; } 2>&1 | tail -1)
    printf 'hash\t%s\t%s\t%s\t%s\n' "$run" "$t" "$ps" "$bs" >>"$M"
    echo "hashing $HASH_MIB MiB, $t thread(s), run $run: proxima $ps s, b3sum $bs s"
  done
done

python3 "$ROOT/benches/cdn/raw.py" "$W" --bin "$BIN" --seconds "$DUR" --runs "$RUNS" --big "$BIG" \
  --hash-mib "$HASH_MIB" --raw-dir "$RAW_DIR"
