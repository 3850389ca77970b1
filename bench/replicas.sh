#!/usr/bin/env bash
# Throughput of 1, 2 and 3 gateway replicas behind HAProxy, on one PostgreSQL store, as
# docs/deployment.md runs them; everything on this machine, on loopback.
#
#   bench/replicas.sh BUILD_DIR      (starts its own throwaway PostgreSQL cluster through
#                                     tests/unit/store/with-postgres.sh)
#
# The replicas (workers: 2 each, auth on: every request checks its bearer token, and the store's
# revocation counter on PostgreSQL) front the bench fixture (bench/fixture_server) over HTTP.
# HAProxy (Debian's, foreground, configuration in the results folder) balances round-robin with
# no stickiness: consecutive requests of the one MCP session land on different replicas. For
# N = 1, 2, 3 replicas behind it (three HAProxy processes, one per N, all running), loadgen
# --closed runs tools/call with BENCH_CONNS (32) connections for BENCH_DURATION (5) seconds after
# BENCH_WARMUP (1); one run straight to one replica, without HAProxy, is the reference. The four
# take turns, BENCH_ROUNDS (3) times, and the median of each is reported. Every replica, HAProxy, the fixture and the load
# generator share this machine's cores: the figure says what HAProxy and more processes cost on
# the same CPUs, not what more machines would give. Prints req/s, p50/p99 and the ratio to one
# replica behind HAProxy. Every step is bounded; the whole run takes about 90 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
if [ -z "${GH_TEST_PG_HOST:-}" ]; then
  exec tests/unit/store/with-postgres.sh "$0" "$@"
fi
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-32}
OUT=${BENCH_OUT:-$BUILD/bench-results/replicas}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
TEXT="hello from the benchmark"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
for b in gatehouse fixture_server loadgen; do
  [ -x "$BUILD/$b" ] || cmake --build "$BUILD" --target "$b" >/dev/null
done
[ -x "$HAPROXY" ] || { echo "replicas: haproxy is not installed (scripts/deps.sh test)" >&2; exit 1; }

. "$(dirname "$0")/lib.sh"

echo "== replicas behind HAProxy: $(date -u +%FT%TZ), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

FIX_PORT=$(free_port 19031)
"$BUILD/fixture_server" --port "$FIX_PORT" --threads 1 >"$OUT/fixture.log" 2>&1 &
pids+=($!)
wait_log "$OUT/fixture.log" listening "the fixture"

LB_PORT=$(free_port $((FIX_PORT + 1)))
PG="postgresql:///gh_store?host=$GH_TEST_PG_HOST&port=$GH_TEST_PG_PORT&user=postgres"
ports=()
for i in 1 2 3; do
  port=$(free_port $((LB_PORT + i * 10)))
  ports+=("$port")
  cat >"$OUT/gatehouse-$i.yaml" <<YAML
listen: [{address: 127.0.0.1, port: $port}]
workers: 2
log: {level: warn}
store: {postgres: "$PG", key_file: $OUT/master.key}
auth: {issuer: "http://127.0.0.1:$LB_PORT"}
servers:
  - name: fixture
    transport: http
    url: http://127.0.0.1:$FIX_PORT/mcp
YAML
done
rm -f "$OUT/master.key"
"$BUILD/gatehouse" user add bench --no-password -c "$OUT/gatehouse-1.yaml" >/dev/null 2>&1
eval "$("$BUILD/gatehouse" client create --user bench --name bench -c "$OUT/gatehouse-1.yaml" 2>/dev/null |
  sed -n 's/^client_id: /CLIENT_ID=/p; s/^client_secret: /CLIENT_SECRET=/p')"
for i in 1 2 3; do
  "$BUILD/gatehouse" run -c "$OUT/gatehouse-$i.yaml" >"$OUT/gatehouse-$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do wait_log "$OUT/gatehouse-$i.log" '"listening"' "replica $i"; done

start_haproxy() { # N PORT: the first N replicas, on PORT
  {
    printf 'global\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 2s\n'
    printf '  timeout client 30s\n  timeout server 30s\n  retries 3\n  retry-on conn-failure\n'
    printf '  option redispatch 1\nfrontend gatehouse\n  bind 127.0.0.1:%s\n' "$2"
    printf '  default_backend replicas\nbackend replicas\n  balance roundrobin\n'
    printf '  option httpchk GET /healthz\n  default-server inter 1s\n'
    for i in $(seq "$1"); do printf '  server r%s 127.0.0.1:%s check\n' "$i" "${ports[$((i - 1))]}"; done
  } >"$OUT/haproxy-$1.cfg"
  "$HAPROXY" -f "$OUT/haproxy-$1.cfg" -db >"$OUT/haproxy-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$2/healthz" && return 0
    sleep 0.1
  done
  echo "replicas: haproxy did not start: $(cat "$OUT/haproxy-$1.log")" >&2
  exit 1
}
# One HAProxy per N, all running, so that the runs can alternate: the issuer's port fronts all
# three replicas; a token minted there is good on every port (its audience is the issuer's /mcp).
start_haproxy 3 "$LB_PORT"
declare -A URL=([direct]="http://127.0.0.1:${ports[0]}/mcp" [lb3]="http://127.0.0.1:$LB_PORT/mcp")
for n in 1 2; do
  p=$(free_port $((LB_PORT + 100 + n)))
  start_haproxy "$n" "$p"
  URL[lb$n]="http://127.0.0.1:$p/mcp"
done

TOKEN=$(curl -s --max-time 5 -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \
  -d "resource=http://127.0.0.1:$LB_PORT/mcp" "http://127.0.0.1:$LB_PORT/oauth/token" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || { echo "replicas: no token" >&2; exit 1; }
declare -A R
body='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'"$TEXT"'"}}}'
load() { # NAME ROUND
  local f="$OUT/load-$1-$2.txt"
  echo "\$ $BUILD/loadgen --url ${URL[$1]} --mcp-init --closed -c $CONNS --duration $DURATION --warmup $WARMUP -H 'Authorization: Bearer …'" >>"$OUT/commands.txt"
  "$BUILD/loadgen" --url "${URL[$1]}" --mcp-init --closed -c "$CONNS" --duration "$DURATION" \
    --warmup "$WARMUP" -H "Authorization: Bearer $TOKEN" --body "$body" --expect "$TEXT" >"$f" 2>&1 || true
  R[$1.rps]+="$(result "$f" achieved_rps) "
  R[$1.p50]+="$(result "$f" p50_us) "
  R[$1.p99]+="$(result "$f" p99_us) "
  R[$1.err]=$(( ${R[$1.err]:-0} + $(result "$f" errors || echo 1) ))
}
: >"$OUT/commands.txt"
# The configurations in turn, ROUNDS times: a burst of other work on the machine then touches
# every configuration alike, and the median of the rounds is reported.
for r in $(seq "$ROUNDS"); do
  for name in direct lb1 lb2 lb3; do load "$name" "$r"; done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]; else print "-"}'; }
best() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -1; }
for name in direct lb1 lb2 lb3; do
  R[$name.med]=$(echo "${R[$name.rps]}" | median)
  R[$name.best]=$(echo "${R[$name.rps]}" | best)
  R[$name.p50m]=$(echo "${R[$name.p50]}" | median)
  R[$name.p99m]=$(echo "${R[$name.p99]}" | median)
done

printf '%-30s %12s %12s %10s %10s %7s %10s\n' "tools/call, $CONNS connections" "req/s (med)" "req/s (best)" "p50 us" "p99 us" "errors" "vs 1 (LB)"
row() {
  printf '%-30s %12s %12s %10s %10s %7s %10s\n' "$2" "${R[$1.med]}" "${R[$1.best]}" "${R[$1.p50m]}" "${R[$1.p99m]}" "${R[$1.err]}" \
    "$(awk -v a="${R[$1.med]}" -v b="${R[lb1.med]}" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}')"
}
row direct "1 replica, no HAProxy"
row lb1 "1 replica behind HAProxy"
row lb2 "2 replicas behind HAProxy"
row lb3 "3 replicas behind HAProxy"
echo "   ($ROUNDS rounds of $DURATION s each, medians; all on $(nproc) shared CPUs with HAProxy, the"
echo "    fixture, PostgreSQL and the load generator; load average now $(cut -d' ' -f1-3 /proc/loadavg);"
echo "    raw outputs and the exact commands: $OUT)"
