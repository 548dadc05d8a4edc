#!/usr/bin/env bash
# CDN edge benchmark: the Proxima gateway against nginx (one worker, sendfile) serving the same
# files, both pinned to core 0, wrk on core 1; and BLAKE3 hashing of the publisher against b3sum.
#
#   benches/cdn/run.sh [PROXIMA_BIN] [DURATION_SECONDS] [RUNS]
#
# Prints a Markdown table per run; quote medians. Needs wrk, nginx, b3sum, taskset, curl.
set -euo pipefail
BIN=${1:-./target/release/proxima}
DUR=${2:-10}
RUNS=${3:-3}
SERVER_CORE=0
LOAD_CORE=1
W=$(mktemp -d -t cdn-bench.XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Files: the same bytes for both servers.
SITE=$W/site
mkdir -p "$SITE"
head -c 1024 /dev/urandom >"$SITE/1k.bin"
head -c 16384 /dev/urandom >"$SITE/16k.bin"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$SITE/100m.bin"
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
cat >"$W/nginx/nginx.conf" <<EOF
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
EOF
taskset -c $SERVER_CORE nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" >/dev/null 2>&1 &
NGP=$!; PIDS+=($NGP)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$NG/1k.bin >/dev/null && break; sleep 0.1; done

# Both serve identical bytes.
for f in 1k.bin 16k.bin 100m.bin; do
  cmp <(curl -s -H 'Host: bench.proxima' http://127.0.0.1:$HTTP/$f) <(curl -s http://127.0.0.1:$NG/$f) \
    || { echo "servers disagree on $f"; exit 1; }
done

# wrk: requests/s, p50, p99 (wrk's latency distribution), transfer/s.
wrk_run() { # url conns host
  local out
  out=$(taskset -c $LOAD_CORE wrk -t1 -c"$2" -d"${DUR}s" --latency -H "Host: $3" "$1" 2>&1)
  local rps p50 p99 xfer
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  xfer=$(echo "$out" | awk '/Transfer\/sec/{print $2}')
  echo "$rps $p50 $p99 $xfer"
}
rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }
nginx_rss() { # master + worker
  local t=0; for p in $(pgrep -P "$NGP") "$NGP"; do t=$((t + $(rss_kb "$p"))); done; echo $t
}

echo "nproc: $(nproc); CPU: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'); duration ${DUR}s; runs $RUNS"
for run in $(seq 1 "$RUNS"); do
  echo
  echo "### run $run"
  echo
  echo "| case | proxima req/s | nginx req/s | ratio | proxima p50/p99 | nginx p50/p99 | proxima MB/s | nginx MB/s |"
  echo "|---|---|---|---|---|---|---|---|"
  for c in "1k.bin 1" "1k.bin 64" "16k.bin 1" "16k.bin 64" "100m.bin 1" "100m.bin 4"; do
    set -- $c
    read -r prps pp50 pp99 pxfer < <(wrk_run "http://127.0.0.1:$HTTP/$1" "$2" bench.proxima)
    read -r nrps np50 np99 nxfer < <(wrk_run "http://127.0.0.1:$NG/$1" "$2" localhost)
    ratio=$(python3 -c "print(f'{float(\"$prps\")/float(\"$nrps\"):.2f}')")
    echo "| $1 c=$2 | $prps | $nrps | $ratio | $pp50/$pp99 | $np50/$np99 | $pxfer | $nxfer |"
  done
  echo
  echo "RSS after run: proxima $(( $(rss_kb $PX) / 1024 )) MiB, nginx $(( $(nginx_rss) / 1024 )) MiB"
done

# Hashing: the publisher (dry run: scan + BLAKE3, one round trip to the node) against b3sum,
# on a 1 GiB file in the page cache.
HF=$W/hash
mkdir -p "$HF"
head -c $((1024 * 1024 * 1024)) /dev/urandom >"$HF/1g.bin"
b3sum "$HF/1g.bin" >/dev/null
echo
echo "| hashing 1 GiB | threads | proxima s | b3sum s | ratio (b3sum time / proxima time) |"
echo "|---|---|---|---|---|"
for t in 1 2; do
  for run in $(seq 1 "$RUNS"); do
    ps=$( { /usr/bin/time -f %e "$BIN" publish "$HF" --name bench.proxima --dry-run --threads $t \
      --node http://127.0.0.1:$ADMIN >/dev/null; } 2>&1 | tail -1)
    bs=$( { /usr/bin/time -f %e b3sum --num-threads $t "$HF/1g.bin" >/dev/null; } 2>&1 | tail -1)
    ratio=$(python3 -c "print(f'{$bs/$ps:.2f}')")
    echo "| run $run | $t | $ps | $bs | $ratio |"
  done
done
