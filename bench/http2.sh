#!/usr/bin/env bash
# HTTP/1.1 against HTTP/2 through the gateway, and optionally a second gateway binary beside it
# (before/after a change), in front of the bench fixture, in interleaved rounds:
#
#   bench/http2.sh BUILD_DIR [OTHER_GATEHOUSE_BINARY]
#
# HTTP/1.1: loadgen --closed -c 32 (tools/call echo). HTTP/2: h2load (Debian's nghttp2-client,
# scripts/deps.sh bench) with 4 connections and 8 streams each, the same call. Each round runs
# every (binary, protocol) pair for BENCH_DURATION seconds (default 5) after 1 s of warm-up;
# BENCH_ROUNDS rounds (default 3). Prints one line per run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OTHER=${2:-}
DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=${BENCH_OUT:-$BUILD/bench-results/http2}
mkdir -p "$OUT"
die() { echo "bench: $*" >&2; exit 1; }
for b in fixture_server loadgen gatehouse; do
  [ -x "$BUILD/$b" ] || cmake --build "$BUILD" --target "$b" >/dev/null || die "$BUILD/$b is missing"
done
command -v h2load >/dev/null || die "h2load is not installed (apt-get install nghttp2-client, or scripts/deps.sh bench)"

. "$(dirname "$0")/lib.sh"

FIX_PORT=$(free_port 19300)
"$BUILD/fixture_server" --port "$FIX_PORT" --threads 1 >"$OUT/fixture.log" 2>&1 &
pids+=($!)
wait_log "$OUT/fixture.log" listening "the fixture"

names=(this)
bins=("$BUILD/gatehouse")
[ -n "$OTHER" ] && names+=(other) && bins+=("$OTHER")
declare -A PORT
next=$((FIX_PORT + 1))
for i in "${!names[@]}"; do
  n=${names[$i]}
  PORT[$n]=$(free_port "$next")
  next=$((${PORT[$n]} + 1))
  cat >"$OUT/$n.yaml" <<EOF
listen: [{address: 127.0.0.1, port: ${PORT[$n]}}]
workers: 2
http2: true
log: {level: warn}
servers: [{name: fixture, transport: http, url: "http://127.0.0.1:$FIX_PORT/mcp"}]
EOF
  "${bins[$i]}" run -c "$OUT/$n.yaml" >"$OUT/$n.log" 2>&1 &
  pids+=($!)
done
for n in "${names[@]}"; do
  for _ in $(seq 100); do
    "$BUILD/loadgen" --url "http://127.0.0.1:${PORT[$n]}/mcp" --init-only >/dev/null 2>&1 && break
    sleep 0.1
  done
done

BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello from the benchmark"}}}'
printf '%s' "$BODY" >"$OUT/body.json"
declare -A ALL
echo "== HTTP/1.1 and HTTP/2 through the gateway: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in "${!names[@]}"; do echo "   ${names[$i]}: ${bins[$i]} on port ${PORT[${names[$i]}]}"; done
for r in $(seq "$ROUNDS"); do
  for n in "${names[@]}"; do
    url="http://127.0.0.1:${PORT[$n]}/mcp"
    sid=$("$BUILD/loadgen" --url "$url" --init-only 2>/dev/null | sed -n 's/^session_id=//p')
    h1=$("$BUILD/loadgen" --url "$url" --mcp-init --closed -c 32 --duration "$DURATION" --warmup 1 \
      --body "$BODY" --expect hello 2>/dev/null |
      awk '/^RESULT/ {for (i = 2; i <= NF; i++) {split($i, kv, "="); if (kv[1] == "achieved_rps") printf "%.0f", kv[2]}}')
    h2load -c 4 -m 8 -t 1 -D "$DURATION" --warm-up-time=1 -d "$OUT/body.json" \
      -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
      -H "mcp-session-id: $sid" -H 'mcp-protocol-version: 2025-11-25' "$url" >"$OUT/h2load-$n-$r.txt" 2>&1 || true
    h2=$(awk '/^finished in/ {gsub(/,/, "", $4); printf "%.0f", $4}' "$OUT/h2load-$n-$r.txt")
    bad=$(awk '/^status codes:/ {print $5 + $7 + $9}' "$OUT/h2load-$n-$r.txt" | tr -d ',')
    ALL[$n.h1]+="${h1:-0} "
    ALL[$n.h2]+="${h2:-0} "
    echo "   round $r $n: HTTP/1.1 ${h1:-?} req/s | HTTP/2 ${h2:-?} req/s (non-2xx: ${bad:-?})"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR ? a[int((NR + 1) / 2)] : "-")}'; }
echo "== medians (req/s)"
printf '   %-6s %10s %10s\n' "" "HTTP/1.1" "HTTP/2"
for n in "${names[@]}"; do
  printf '   %-6s %10s %10s\n' "$n" "$(echo "${ALL[$n.h1]}" | median)" "$(echo "${ALL[$n.h2]}" | median)"
done
