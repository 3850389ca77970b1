# Shared by the benchmark scripts (sourced, never run): the processes they start, free loopback
# ports, waiting for a log line and reading loadgen's RESULT line.

# Every process a script starts goes in `pids`; they are stopped when the script exits.
pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap bench_cleanup EXIT

# A free loopback port at or above $1.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# wait_log FILE PATTERN WHAT: up to 15 s for PATTERN in FILE, else name WHAT and exit.
wait_log() {
  for _ in $(seq 150); do grep -q "$2" "$1" && return 0; sleep 0.1; done
  echo "bench: $3 did not start: $(tail -5 "$1")" >&2
  exit 1
}

# The value of key=... in the RESULT line of a loadgen output file.
result() { awk -v k="$2" '/^RESULT/ {for (i = 2; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) print kv[2]}}' "$1"; }
