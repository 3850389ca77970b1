#!/usr/bin/env bash
# Gatehouse benchmark: the cost the gateway adds, measured side by side against the bench
# fixture in one run (see docs/performance.md for the method and the targets).
#
#   bench/run.sh BUILD_DIR            (make bench runs it on build/)
#
# 1. fixed-rate tools/call at 1k and 5k req/s: straight to the fixture, then through the gateway
#    (bench/loadgen, open loop, latency from the scheduled send time);
# 2. saturation throughput, straight vs through (wrk + bench/tools_call.lua; loadgen --closed as
#    a second opinion), with the server CPU time each run used;
# 3. RSS per idle MCP session (10k sessions through the gateway);
# 4. RSS with 10k open SSE streams (through the gateway; bare h2o in the fixture as reference).
# The gateway parts run when BUILD_DIR/gatehouse answers MCP; otherwise they say
# "gateway not available" and the direct figures are still printed.
#
# With auth on (the default, BENCH_AUTH=1) the gateway is its own OAuth authorization server: the
# run creates a user and a confidential client in a throwaway store, gets an access token with the
# client_credentials grant and sends it on every request (validation cached, as in production).
# A peer gateway (agentgateway: ../shared/peers/run-agentgateway beside the repository, or
# BENCH_PEER=path; BENCH_PEER=none to skip) is measured in the same run in front of the same
# fixture, without auth (its configuration has none); its row is printed beside ours, or one
# line says why it was skipped.
#
# Knobs (environment): BENCH_DURATION (10 s measured per fixed-rate run), BENCH_WARMUP (2 s more
# before it),
# BENCH_RATES ("1000 5000"), BENCH_SAT_DURATION (10), BENCH_CONNS (16, fixed rate),
# BENCH_SAT_CONNS (32), BENCH_SESSIONS (10000), BENCH_PIN (0: nothing pinned, the default, see
# docs/performance.md; 1: load generator on CPU 0, fixture on CPU 1, gateway unpinned, for a
# quiet dedicated machine), BENCH_OUT (BUILD_DIR/bench-results).
# Every step is bounded in time; the whole run takes about four minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
RATES=${BENCH_RATES:-"1000 5000"}
SAT_DURATION=${BENCH_SAT_DURATION:-10}
CONNS=${BENCH_CONNS:-16}
SAT_CONNS=${BENCH_SAT_CONNS:-32}
SESSIONS=${BENCH_SESSIONS:-10000}
PIN=${BENCH_PIN:-0}
AUTH=${BENCH_AUTH:-1}
PEER=${BENCH_PEER:-$(cd .. && pwd)/shared/peers/run-agentgateway}
OUT=${BENCH_OUT:-$BUILD/bench-results}
TEXT="hello from the benchmark"

FIXTURE=$BUILD/fixture_server
LOADGEN=$BUILD/loadgen
GATEHOUSE=$BUILD/gatehouse

die() { echo "bench: $*" >&2; exit 1; }
for b in "$FIXTURE" "$LOADGEN"; do
  [ -x "$b" ] || cmake --build "$BUILD" --target "$(basename "$b")" >/dev/null ||
    die "$b is missing and could not be built"
done
command -v wrk >/dev/null || die "wrk is not installed (scripts/deps.sh bench)"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# Sessions and SSE streams need one descriptor each, in the gateway and in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((SESSIONS + 1000)) ]; then
  echo "bench: warning: ulimit -n is $(ulimit -n), below $SESSIONS sessions; raise the hard limit" >&2
fi

if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  ON_LOAD="taskset -c 0"
  ON_FIXTURE="taskset -c 1"
else
  ON_LOAD=""
  ON_FIXTURE=""
fi

. "$(dirname "$0")/lib.sh"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# CPU time (user+system, all threads) of a process, in milliseconds.
cpu_ms() {
  local t
  t=$(awk '{print $14 + $15}' "/proc/$1/stat")
  echo $((t * 1000 / $(getconf CLK_TCK)))
}

# Run a logged command: "$ command" goes to the log and to commands.txt, output to $1.
run_logged() {
  local out=$1
  shift
  # The bearer token is a throwaway store's, but it is still not printed.
  { printf '$'; printf ' %q' "$@"; echo; } | sed "${TOKEN:+s/$TOKEN/<token>/g}" | tee -a "$OUT/commands.txt" >&2
  "$@" >"$out" 2>&1 || true
}

# tools_list URL INIT_FILE OUT_FILE [curl args…]: a tools/list in the session loadgen --init-only
# opened (its output in INIT_FILE), the answer in OUT_FILE.
tools_list() {
  local url=$1 init=$2 out=$3 sid ver
  shift 3
  sid=$(sed -n 's/^session_id=//p' "$init")
  ver=$(sed -n 's/^protocol_version=//p' "$init")
  curl -s --max-time 5 -H 'Content-Type: application/json' "$@" \
    -H 'Accept: application/json, text/event-stream' ${sid:+-H "Mcp-Session-Id: $sid"} \
    -H "MCP-Protocol-Version: $ver" \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' "$url" >"$out" || true
}

tools_call_body() {
  printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":{"text":"%s"}}}' "$1" "$TEXT"
}

: >"$OUT/commands.txt"
echo "== Gatehouse benchmark: $(date -u +%FT%TZ), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{exit !($1 > 0.5)}' /proc/loadavg; then
  echo "   warning: the machine is not idle (load average above 0.5); figures will be noisy"
fi
echo "   pinning: ${ON_LOAD:-none} (load) / ${ON_FIXTURE:-none} (fixture) / gateway unpinned; results in $OUT"

# --- the fixture ------------------------------------------------------------------------------
FIX_PORT=$(free_port 18931)
$ON_FIXTURE "$FIXTURE" --port "$FIX_PORT" --threads 1 >"$OUT/fixture.log" 2>&1 &
FIX_PID=$!
pids+=("$FIX_PID")
wait_log "$OUT/fixture.log" listening "the fixture"
FIX_URL=http://127.0.0.1:$FIX_PORT/mcp

# --- the gateway, when it works ---------------------------------------------------------------
GW=0
GW_WHY="$GATEHOUSE not built"
GW_PORT=$(free_port $((FIX_PORT + 1)))
GW_URL=http://127.0.0.1:$GW_PORT/mcp
GW_H=() # loadgen arguments that every request to the gateway carries (the bearer token)
TOKEN=
TOOL=echo
if [ -x "$GATEHOUSE" ]; then
  cat >"$OUT/gatehouse.yaml" <<EOF
listen: [{address: 127.0.0.1, port: $GW_PORT}]
workers: 2
log: {level: warn}
servers:
  - name: fixture
    transport: http
    url: $FIX_URL
EOF
  if [ "$AUTH" = 1 ]; then
    rm -f "$OUT"/bench.db*
    cat >>"$OUT/gatehouse.yaml" <<EOF
store: {sqlite: $OUT/bench.db}
auth: {issuer: "http://127.0.0.1:$GW_PORT", access_token_ttl: 1h}
EOF
    { "$GATEHOUSE" -c "$OUT/gatehouse.yaml" user add bench --no-password &&
      "$GATEHOUSE" -c "$OUT/gatehouse.yaml" client create --user bench --name bench >"$OUT/client.txt"; } \
      >/dev/null 2>"$OUT/auth-setup.txt" ||
      die "could not create the benchmark's user and client: $(cat "$OUT/auth-setup.txt")"
  fi
  "$GATEHOUSE" run -c "$OUT/gatehouse.yaml" >"$OUT/gatehouse.log" 2>&1 &
  GW_PID=$!
  pids+=("$GW_PID")
  GW_WHY="it did not answer initialize at $GW_URL within 10 s"
  for _ in $(seq 100); do
    if ! kill -0 "$GW_PID" 2>/dev/null; then
      GW_WHY="'gatehouse run' exited: $(tail -n 1 "$OUT/gatehouse.log")"
      break
    fi
    if [ "$AUTH" = 1 ] && [ -z "${TOKEN:-}" ]; then
      TOKEN=$(curl -s --max-time 5 \
        -u "$(sed -n 's/^client_id: *//p' "$OUT/client.txt"):$(sed -n 's/^client_secret: *//p' "$OUT/client.txt")" \
        -d grant_type=client_credentials -d scope=mcp --data-urlencode "resource=$GW_URL" \
        "http://127.0.0.1:$GW_PORT/oauth/token" 2>/dev/null |
        sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p') || true
      if [ -z "$TOKEN" ]; then
        sleep 0.1
        continue
      fi
      GW_H=(-H "Authorization: Bearer $TOKEN")
    fi
    if "$LOADGEN" --url "$GW_URL" "${GW_H[@]}" --init-only >"$OUT/gw-init.txt" 2>&1; then
      GW=1
      break
    fi
    sleep 0.1
  done
fi
if [ "$GW" = 1 ]; then
  # The tool may be exposed as "echo" or namespaced as "fixture__echo".
  tools_list "$GW_URL" "$OUT/gw-init.txt" "$OUT/gw-tools.txt" ${TOKEN:+-H "Authorization: Bearer $TOKEN"}
  grep -q '"fixture__echo"' "$OUT/gw-tools.txt" && TOOL=fixture__echo
  echo "   gateway: $GW_URL (pid $GW_PID), tool $TOOL, auth $([ "$AUTH" = 1 ] && echo "on (bearer token, validation cached)" || echo off)"
else
  echo "   gateway not available: $GW_WHY"
  echo "   (the direct-to-fixture figures below are still valid; rerun when 'gatehouse run' works)"
fi

# --- the peer gateway, when it is there -----------------------------------------------------------
PEER_OK=0
PEER_WHY=""
PEER_TOOL=echo
if [ "$PEER" = none ]; then
  PEER_WHY="BENCH_PEER=none"
elif [ ! -x "$PEER" ]; then
  PEER_WHY="$PEER not found (BENCH_PEER=path to run-agentgateway)"
else
  PEER_PORT=$(free_port $((GW_PORT + 1)))
  PEER_URL=http://127.0.0.1:$PEER_PORT/mcp
  "$PEER" "$PEER_PORT" "$FIX_URL" 2 >"$OUT/peer.log" 2>&1 &
  PEER_PID=$!
  pids+=("$PEER_PID")
  PEER_WHY="it did not answer initialize at $PEER_URL within 20 s"
  for _ in $(seq 200); do
    if ! kill -0 "$PEER_PID" 2>/dev/null; then
      PEER_WHY="it exited: $(tail -n 1 "$OUT/peer.log")"
      break
    fi
    if "$LOADGEN" --url "$PEER_URL" --init-only >"$OUT/peer-init.txt" 2>&1; then
      PEER_OK=1
      break
    fi
    sleep 0.1
  done
  if [ "$PEER_OK" = 1 ]; then
    # The script exec()s the binary, so $PEER_PID is the peer itself (its CPU time is read).
    tools_list "$PEER_URL" "$OUT/peer-init.txt" "$OUT/peer-tools.txt"
    PEER_TOOL=$(grep -o '"name":"[A-Za-z0-9_]*echo"' "$OUT/peer-tools.txt" | head -n 1 | cut -d'"' -f4)
    PEER_TOOL=${PEER_TOOL:-echo}
    echo "   peer: agentgateway at $PEER_URL (pid $PEER_PID), tool $PEER_TOOL, no auth"
  fi
fi
[ "$PEER_OK" = 1 ] || echo "   peer gateway skipped: $PEER_WHY"

declare -A R # R[key]=value, for the table

# --- 1. fixed rate -------------------------------------------------------------------------------
fixed_rate() { # fixed_rate NAME URL TOOL RATE [PID: CPU time measured per call]
  local f="$OUT/rate-$1-$4.txt" h=() c0=0 c1=0
  [ "$1" = gateway ] && h=("${GW_H[@]}")
  [ -n "${5:-}" ] && c0=$(cpu_ms "$5")
  run_logged "$f" $ON_LOAD "$LOADGEN" --url "$2" "${h[@]}" --mcp-init --rate "$4" --duration $((DURATION + WARMUP)) \
    --warmup "$WARMUP" -c "$CONNS" --body "$(tools_call_body "$3")" --expect "$TEXT"
  R[$1.$4.p50]=$(result "$f" p50_us)
  R[$1.$4.p99]=$(result "$f" p99_us)
  R[$1.$4.achieved]=$(result "$f" achieved_rps)
  R[$1.$4.errors]=$(result "$f" errors)
  if [ -n "${5:-}" ]; then
    c1=$(cpu_ms "$5")
    R[$1.$4.cpu_us]=$(awk -v ms=$((c1 - c0)) -v r="${R[$1.$4.achieved]:-0}" -v d=$((DURATION + WARMUP)) \
      'BEGIN {printf "%.0f", (r > 0 ? ms * 1000 / (r * d) : 0)}')
    echo "    $1: ${R[$1.$4.cpu_us]} us of its own CPU per call ($((c1 - c0)) ms over $((DURATION + WARMUP)) s)"
  fi
  grep -E '^  (target|completed|latency|service)' "$f" | sed 's/^/  /'
}
echo
echo "-- fixed-rate tools/call (latency from the scheduled send time, us)"
for rate in $RATES; do
  fixed_rate direct "$FIX_URL" echo "$rate"
  if [ "$GW" = 1 ]; then fixed_rate gateway "$GW_URL" "$TOOL" "$rate" "$GW_PID"; fi
  if [ "$PEER_OK" = 1 ]; then fixed_rate peer "$PEER_URL" "$PEER_TOOL" "$rate" "$PEER_PID"; fi
done

# --- 2. saturation ------------------------------------------------------------------------------
saturate() { # saturate NAME URL TOOL SERVER_PIDS...
  local name=$1 url=$2 tool=$3
  shift 3
  local sid ver c0=0 c1=0 p h=() own0 own1
  [ "$name" = gateway ] && h=("${GW_H[@]}")
  "$LOADGEN" --url "$url" "${h[@]}" --init-only >"$OUT/init-$name.txt" 2>&1 || true
  sid=$(sed -n 's/^session_id=//p' "$OUT/init-$name.txt")
  ver=$(sed -n 's/^protocol_version=//p' "$OUT/init-$name.txt")
  sed "s/\"name\":\"echo\"/\"name\":\"$tool\"/" bench/tools_call.lua >"$OUT/tools_call-$name.lua"
  for p in "$@"; do c0=$((c0 + $(cpu_ms "$p"))); done
  own0=$(cpu_ms "$1")
  run_logged "$OUT/wrk-$name.txt" $ON_LOAD wrk -t1 -c "$SAT_CONNS" -d "${SAT_DURATION}s" \
    -s "$OUT/tools_call-$name.lua" "$url" -- "$sid" "$ver" "$([ "$name" = gateway ] && echo "$TOKEN")"
  for p in "$@"; do c1=$((c1 + $(cpu_ms "$p"))); done
  own1=$(cpu_ms "$1")
  R[$name.sat]=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$OUT/wrk-$name.txt")
  R[$name.sat_n]=$(awk '/requests in/ {print $1; exit}' "$OUT/wrk-$name.txt")
  R[$name.sat_us]=$(awk -v n="${R[$name.sat_n]:-0}" -v ms=$((own1 - own0)) 'BEGIN {printf "%.0f", (n > 0 ? ms * 1000 / n : 0)}')
  R[$name.sat_cpu]=$(awk -v n="${R[$name.sat]}" -v d="$SAT_DURATION" -v ms=$((c1 - c0)) \
    'BEGIN {printf "%.0f", (ms > 0 ? n * d / (ms / 1000) : 0)}')
  R[$name.sat_errors]=$(awk '/Non-2xx|Socket errors/' "$OUT/wrk-$name.txt" | tr -s ' ' | tr '\n' ';')
  run_logged "$OUT/closed-$name.txt" $ON_LOAD "$LOADGEN" --url "$url" "${h[@]}" --mcp-init --closed \
    -c "$SAT_CONNS" --duration 5 --warmup 1 --body "$(tools_call_body "$tool")" --expect "$TEXT"
  R[$name.closed]=$(result "$OUT/closed-$name.txt" achieved_rps)
  echo "    wrk ${R[$name.sat]} req/s (${R[$name.sat]:-0} x ${SAT_DURATION}s over $(((c1 - c0)))ms server CPU = ${R[$name.sat_cpu]} req per server CPU-second; ${R[$name.sat_us]} us of its own CPU per call) ${R[$name.sat_errors]}; loadgen --closed ${R[$name.closed]} req/s"
}
echo
echo "-- saturation, $SAT_CONNS connections"
saturate direct "$FIX_URL" echo "$FIX_PID"
if [ "$GW" = 1 ]; then saturate gateway "$GW_URL" "$TOOL" "$GW_PID" "$FIX_PID"; fi
if [ "$PEER_OK" = 1 ]; then saturate peer "$PEER_URL" "$PEER_TOOL" "$PEER_PID" "$FIX_PID"; fi

# --- 3 and 4. memory per session and per SSE stream ----------------------------------------------
# open_sessions NAME URL SERVER_PID [--sse]: RSS before, K sessions, RSS while they exist.
open_sessions() {
  local name=$1 url=$2 pid=$3 sse=${4:-}
  local f="$OUT/sessions-$name.txt" before after lg n h=()
  [ "$pid" = "${GW_PID:-}" ] && h=("${GW_H[@]}")
  before=$(rss_kib "$pid")
  echo "\$ $LOADGEN --url $url ${h[*]:+-H 'Authorization: Bearer …'} --sessions $SESSIONS $sse --hold 60 --open-timeout 60" |
    tee -a "$OUT/commands.txt" >&2
  "$LOADGEN" --url "$url" "${h[@]}" --sessions "$SESSIONS" $sse --hold 60 --open-timeout 60 >"$f" 2>&1 &
  lg=$!
  for _ in $(seq 700); do grep -q '^READY' "$f" && break; kill -0 "$lg" 2>/dev/null || break; sleep 0.1; done
  sleep 1 # let the server settle (lazy frees, buffers returned)
  after=$(rss_kib "$pid")
  kill -USR1 "$lg" 2>/dev/null || true
  wait "$lg" 2>/dev/null || true
  n=$(result "$f" established)
  R[$name.before]=$before
  R[$name.after]=$after
  R[$name.n]=${n:-0}
  R[$name.per]=$(awk -v b="$before" -v a="$after" -v n="${n:-0}" 'BEGIN {printf "%.0f", (n > 0 ? (a - b) * 1024 / n : 0)}')
  echo "    $name: $(grep '^RESULT' "$f" | cut -d' ' -f2-)"
  echo "    $name: VmRSS ${before} KiB -> ${after} KiB = ${R[$name.per]} B per session"
}
echo
echo "-- memory: $SESSIONS sessions"
if [ "$GW" = 1 ]; then
  open_sessions gw-idle "$GW_URL" "$GW_PID"
  open_sessions gw-sse "$GW_URL" "$GW_PID" --sse
fi
# Reference: what bare h2o holds per open event stream (the fixture with --sse-get).
REF_PORT=$(free_port $((GW_PORT + 1)))
$ON_FIXTURE "$FIXTURE" --port "$REF_PORT" --threads 1 --sse-get >"$OUT/fixture-sse.log" 2>&1 &
REF_PID=$!
pids+=("$REF_PID")
wait_log "$OUT/fixture-sse.log" listening "the fixture with --sse-get"
open_sessions fixture-sse "http://127.0.0.1:$REF_PORT/mcp" "$REF_PID" --sse

# --- the table -------------------------------------------------------------------------------------
v() { echo "${R[$1]:--}"; }
ratio() { awk -v a="${R[$1]:-}" -v b="${R[$2]:-}" 'BEGIN {if (a == "" || b == "" || b == 0) print "-"; else printf "%.0f%%", 100 * a / b}'; }
added() { awk -v a="${R[$1]:-}" -v b="${R[$2]:-}" 'BEGIN {if (a == "" || b == "") print "-"; else printf "%+d", a - b}'; }
verdict() { # verdict VALUE OP LIMIT
  awk -v x="$1" -v op="$2" -v l="$3" 'BEGIN {if (x == "-" || x == "") {print ""; exit}
    sub(/%$/, "", x); sub(/^\+/, "", x); ok = (op == "<=") ? (x + 0 <= l) : (x + 0 >= l); print ok ? "PASS" : "FAIL"}'
}
echo
echo "== results (one run; latency in us from the scheduled send time; peer = agentgateway, no auth)"
row() { # row MEASURE DIRECT GATEWAY GW_VS PEER PEER_VS TARGET VERDICT
  printf '%-32s %9s %9s %10s %9s %10s  %-8s %s\n' "$@"
}
row "measure" "direct" "gateway" "gw vs dir" "peer" "peer vs dir" "target" ""
for rate in $RATES; do
  for q in p50 p99; do
    a=$(added "gateway.$rate.$q" "direct.$rate.$q")
    tgt=""
    [ "$rate" = 1000 ] && [ $q = p50 ] && tgt="<= +50"
    [ "$rate" = 1000 ] && [ $q = p99 ] && tgt="<= +250"
    [ "$rate" = 5000 ] && [ $q = p50 ] && tgt="<= +100"
    lim=${tgt#<= +}
    row "tools/call $q @ $rate req/s" "$(v "direct.$rate.$q")" "$(v "gateway.$rate.$q")" "$a" \
      "$(v "peer.$rate.$q")" "$(added "peer.$rate.$q" "direct.$rate.$q")" "$tgt" \
      "$([ -n "$tgt" ] && verdict "$a" "<=" "$lim")"
  done
  row "own CPU per call @ $rate (us)" "" "$(v "gateway.$rate.cpu_us")" "" "$(v "peer.$rate.cpu_us")" "" \
    "$([ "$rate" = 1000 ] && echo "<= 60")" "$([ "$rate" = 1000 ] && verdict "$(v "gateway.$rate.cpu_us")" "<=" 60)"
done
row "saturation, wrk (req/s)" "$(v direct.sat)" "$(v gateway.sat)" "$(ratio gateway.sat direct.sat)" \
  "$(v peer.sat)" "$(ratio peer.sat direct.sat)" ">= 50%" "$(verdict "$(ratio gateway.sat direct.sat)" ">=" 50)"
row "saturation, loadgen --closed" "$(v direct.closed)" "$(v gateway.closed)" "$(ratio gateway.closed direct.closed)" \
  "$(v peer.closed)" "$(ratio peer.closed direct.closed)"
row "own CPU per call, saturated (us)" "$(v direct.sat_us)" "$(v gateway.sat_us)" "" "$(v peer.sat_us)" "" \
  "<= 30" "$(verdict "$(v gateway.sat_us)" "<=" 30)"
row "req per server CPU-second" "$(v direct.sat_cpu)" "$(v gateway.sat_cpu)" "$(ratio gateway.sat_cpu direct.sat_cpu)" \
  "$(v peer.sat_cpu)" "$(ratio peer.sat_cpu direct.sat_cpu)"
printf '%-34s %12s %12s %12s  %-14s %s\n' "RSS per idle session (B)" "stateless" "$(v gw-idle.per)" "" \
  "<= 16384" "$(verdict "$(v gw-idle.per)" "<=" 16384)"
printf '%-34s %12s %12s\n' "RSS with $SESSIONS SSE streams (KiB)" "$(v fixture-sse.after)" "$(v gw-sse.after)"
printf '%-34s %12s %12s\n' "RSS per SSE stream (B)" "$(v fixture-sse.per)" "$(v gw-sse.per)"
echo "   (SSE 'direct' = bare h2o holding the streams in the fixture with --sse-get: the floor)"
if [ "$GW" != 1 ]; then echo "   gateway not available: $GW_WHY"; fi
if [ "$PEER_OK" != 1 ]; then echo "   peer gateway skipped: $PEER_WHY"; fi
echo "   exact commands: $OUT/commands.txt; raw outputs beside it"

# 5. what authenticating one request costs (token cold vs cached, API key), in-process.
echo
"$BUILD/auth_validate" 2>/dev/null | tee "$OUT/auth_validate.txt"
