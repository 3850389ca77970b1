#!/usr/bin/env bash
# Run every libFuzzer target of a GH_FUZZ build for SECONDS each, starting from its checked-in
# seed corpus (read-only: new inputs go to BUILD_DIR/fuzz-corpus/<target>, crashes to
# fuzz/artifacts/). Prints one line per target and "N passed, N failed" at the end.
#   scripts/fuzz.sh BUILD_DIR [SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS]}
secs=${2:-60}
mkdir -p fuzz/artifacts
passed=0
failed=0
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  work="$build/fuzz-corpus/$name"
  mkdir -p "$work"
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$name-" "$work" "fuzz/corpus/$name" >"$build/$name.log" 2>&1; then
    echo "ok   $name ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$build/$name.log" | awk '{print $2}') runs)"
    passed=$((passed + 1))
  else
    echo "FAIL $name: see $build/$name.log and fuzz/artifacts/"
    grep -m5 -E 'ERROR|SUMMARY' "$build/$name.log"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
