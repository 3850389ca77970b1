#!/usr/bin/env bash
# Run every test against one build directory and print one closing line "N passed, N failed".
#   scripts/check.sh BUILD_DIR [phases...]     phases: unit integration interop (default: all)
# unit        ctest: the C unit tests and the replay of every fuzz target's seed corpus
# integration node --test tests/integration: the real binary on ephemeral ports, bad input, faults
# interop     node --test tests/interop: real MCP clients, servers, the Inspector and the conformance suite
# lint        cppcheck over src/ (warnings are failures), and clang-format: the tree is formatted
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/check.sh BUILD_DIR [phases...]}
shift
phases=${*:-unit integration interop lint}
export GATEHOUSE_BIN="$PWD/$build/gatehouse"
# Sanitizer builds: the only leaks tolerated are third-party ones listed (with reasons) here.
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
passed=0
failed=0
log_dir="$build/test-logs"
mkdir -p "$log_dir"

count_node() { # file → adds "# pass N" / "# fail N" of a TAP run
  local p f
  p=$(grep -E '^# pass [0-9]+' "$1" | tail -1 | awk '{print $3}')
  f=$(grep -E '^# fail [0-9]+' "$1" | tail -1 | awk '{print $3}')
  if [ -z "$p" ] && [ -z "$f" ]; then
    echo "  (no test summary: the run itself failed; counted as one failure)"
    f=1
  fi
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  echo "  ${p:-0} passed, ${f:-0} failed"
}

for phase in $phases; do
  case "$phase" in
  unit)
    echo "== unit tests and fuzz corpus replay ($build)"
    ctest --test-dir "$build" --output-on-failure --timeout 120 >"$log_dir/unit.log" 2>&1
    total=$(grep -Eo 'tests failed out of [0-9]+' "$log_dir/unit.log" | awk '{print $5}')
    nfail=$(grep -Eo '[0-9]+ tests failed out of' "$log_dir/unit.log" | awk '{print $1}')
    if [ -z "$total" ]; then
      echo "  ctest did not run; see $log_dir/unit.log"
      tail -20 "$log_dir/unit.log"
      failed=$((failed + 1))
    else
      grep -E '\*\*\*|Failed|Exception' "$log_dir/unit.log" | head -20
      passed=$((passed + total - nfail))
      failed=$((failed + nfail))
      echo "  $((total - nfail)) passed, $nfail failed"
    fi
    ;;
  integration | interop)
    echo "== $phase tests ($build)"
    if [ ! -d "tests/$phase" ] || ! ls tests/$phase/*.test.mjs >/dev/null 2>&1; then
      echo "  no tests in tests/$phase"
      continue
    fi
    (cd "tests/$phase" && timeout 900 node --test --test-reporter=tap --test-concurrency=1 ./*.test.mjs) \
      >"$log_dir/$phase.log" 2>&1
    grep -E '^not ok' -A12 "$log_dir/$phase.log" | head -60
    count_node "$log_dir/$phase.log"
    ;;
  lint)
    echo "== lint (cppcheck)"
    if cppcheck --quiet --enable=warning,portability --inline-suppr --std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=1 \
        -I src --suppress=missingIncludeSystem --suppress=unknownMacro --error-exitcode=1 src/ >"$log_dir/lint.log" 2>&1; then
      passed=$((passed + 1))
      echo "  1 passed, 0 failed"
    else
      head -20 "$log_dir/lint.log"
      failed=$((failed + 1))
      echo "  0 passed, 1 failed"
    fi
    echo "== lint (clang-format)"
    if clang-format --dry-run --Werror $(git ls-files '*.c' '*.h') >"$log_dir/format.log" 2>&1; then
      passed=$((passed + 1))
      echo "  1 passed, 0 failed"
    else
      head -20 "$log_dir/format.log"
      echo "  (run make format)"
      failed=$((failed + 1))
      echo "  0 passed, 1 failed"
    fi
    ;;
  *)
    echo "unknown phase $phase" >&2
    exit 2
    ;;
  esac
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
