#!/usr/bin/env bash
# Run every test against one build directory and print one closing line "N passed, N failed".
#   scripts/check.sh BUILD_DIR [phases...]     phases: unit integration postgres interop lint
#                                              (default: all)
# unit        ctest: the C unit tests and the replay of every fuzz target's seed corpus
# integration node --test tests/integration: the real binary on ephemeral ports, bad input, faults
# postgres    the integration tests that live on the store (OAuth, settings, replicas, Redis) once
#             more with the store on PostgreSQL: a throwaway cluster per file (tests/unit/store/
#             with-postgres.sh; the store's unit tests run on it in the unit phase already)
# Tests that need Redis (unit/shared, integration/redis.test.mjs) start a throwaway
# redis-server of their own (tests/unit/shared/with-redis.sh, tests/integration/redis_lib.mjs).
# interop     node --test tests/interop: real MCP clients, servers, the Inspector and the conformance suite
# lint        cppcheck over src/ (warnings are failures), clang-format: the tree is formatted, and
#             the deployment files (scripts/lint-deploy.sh: hadolint and the image's facts on the
#             Dockerfile, kubeconform and kubernetes-validate on deploy/kubernetes/)
# Every test counts: a node test that ran past its time limit (cancelled) or could not run
# (skipped) is a failure, a todo counts by its result; a phase that finds no tests, or whose
# runner exits non-zero with no failed test, counts one failure. The ten slowest tests are
# listed before the closing line.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/check.sh BUILD_DIR [phases...]}
shift
phases=${*:-unit integration postgres interop lint}
export GATEHOUSE_BIN="$PWD/$build/gatehouse"
# Sanitizer builds: the only leaks tolerated are third-party ones listed (with reasons) here.
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
passed=0
failed=0
log_dir="$build/test-logs"
mkdir -p "$log_dir"

# The limit on one node test file (seconds): at least 3x the slowest file under ASan on this 2-core
# machine (measured: integration/oauth_negative.test.mjs 45 s, every other file under 25 s).
file_limit=${GH_TEST_FILE_LIMIT:-300}
durations="$log_dir/durations.tsv" # seconds<TAB>phase: test, for the slowest-ten list
: >"$durations"

# node's TAP summary value: "# pass 12" -> 12 (empty when absent)
tap_count() { grep -E "^# $2 [0-9]+" "$1" | tail -1 | awk '{print $3}'; }

count_node() { # phase log exit_code file → adds one node --test run to the totals
  local phase=$1 log=$2 rc=$3 file=$4 tests p f c s t tf empty
  tests=$(tap_count "$log" tests)
  p=$(tap_count "$log" pass)
  f=$(tap_count "$log" fail)
  c=$(tap_count "$log" cancelled) # ran past its time limit (or its suite's): a failure
  s=$(tap_count "$log" skipped)   # could not run: a failure
  t=$(tap_count "$log" todo)      # counted by its result: ok # TODO passed, not ok # TODO failed
  tf=$(grep -cE '^ *not ok [0-9]+ - .* # TODO' "$log")
  # A file that defines no test is reported as one passing test named by its path.
  empty=$(grep -cE '^ok [0-9]+ - /.*\.test\.mjs$' "$log")
  p=$(( ${p:-0} + ${t:-0} - tf - empty ))
  f=$(( ${f:-0} + ${c:-0} + ${s:-0} + tf ))
  if [ -z "$tests" ]; then
    echo "    (no test summary: the run itself failed, exit $rc; counted as one failure)"
    tail -20 "$log"
    f=$((f + 1))
  elif [ "$tests" -eq 0 ] || [ "$empty" -gt 0 ]; then
    echo "    (no tests found in tests/$phase/$file: counted as one failure)"
    f=$((f + 1))
  elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "    (node --test exited $rc with no failed test: counted as one failure)"
    f=$((f + 1))
  fi
  [ "${c:-0}" -gt 0 ] && echo "    $c cancelled (ran past a time limit): counted as failed"
  [ "${s:-0}" -gt 0 ] && echo "    $s skipped (could not run): counted as failed"
  [ "${t:-0}" -gt 0 ] && echo "    ${t} todo: $((t - tf)) passed, $tf failed"
  grep -E '^ *ok [0-9]+ - .* # (SKIP|TODO)' "$log" | sed 's/^ */    /' | head -10
  # Every test (not suite) with its duration: "ok N - name" ... "duration_ms: X" ... [type: 'suite']
  awk -v phase="$phase" -v file="$file" '
    function flush() { if (name != "" && name !~ /^\// && !suite && ms != "") printf "%.1f\t%s/%s: %s\n", ms / 1000, phase, file, name; name = ""; ms = ""; suite = 0 }
    /^ *(not )?ok [0-9]+ - / { flush(); sub(/^ *(not )?ok [0-9]+ - /, ""); name = $0; next }
    /^ *duration_ms: / { ms = $2; next }
    /^ *type: .suite./ { suite = 1; next }
    END { flush() }' "$log" >>"$durations"
  passed=$((passed + p))
  failed=$((failed + f))
  echo "    $p passed, $f failed"
}

for phase in $phases; do
  case "$phase" in
  unit)
    echo "== unit tests and fuzz corpus replay ($build)"
    # Each test's own limit is set in CMakeLists.txt (3x its duration under ASan, at least);
    # --timeout here is only the default for a test that sets none.
    ctest --test-dir "$build" --output-on-failure --timeout 120 >"$log_dir/unit.log" 2>&1
    rc=$?
    total=$(grep -Eo 'tests failed out of [0-9]+' "$log_dir/unit.log" | awk '{print $5}')
    nfail=$(grep -Eo '[0-9]+ tests failed out of' "$log_dir/unit.log" | awk '{print $1}')
    if [ -z "$total" ] || [ "$total" -eq 0 ]; then
      echo "  ctest found or ran no tests (exit $rc); see $log_dir/unit.log: counted as one failure"
      tail -20 "$log_dir/unit.log"
      failed=$((failed + 1))
    else
      grep -E '\*\*\*|Failed|Exception|Not Run' "$log_dir/unit.log" | head -20
      if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
        echo "  (ctest exited $rc with no failed test: counted as one failure)"
        nfail=1
        total=$((total + 1))
      fi
      passed=$((passed + total - nfail))
      failed=$((failed + nfail))
      echo "  $((total - nfail)) passed, $nfail failed"
    fi
    # "  1/32 Test  #1: unit/auth/test_jwt .....   Passed    0.57 sec"
    sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: ([^ ]+) .* ([0-9.]+) sec$/\2\tunit: \1/p' \
      "$log_dir/unit.log" >>"$durations"
    ;;
  postgres)
    echo "== integration tests on a PostgreSQL store ($build)"
    p0=$passed f0=$failed
    : >"$log_dir/postgres.log"
    for name in oauth_flow oauth_tokens oauth_negative oauth_review user_settings replicas redis xreplica postgres/store_wait; do
      flog="$log_dir/postgres-${name//\//-}.log"
      start_s=$(date +%s)
      (cd tests/integration && GATEHOUSE_TEST_STORE=postgres timeout $((file_limit + 90)) \
        ../unit/store/with-postgres.sh node --test --test-reporter=tap \
        --test-timeout=$((file_limit * 1000)) "./$name.test.mjs") >"$flog" 2>&1
      rc=$?
      cat "$flog" >>"$log_dir/postgres.log"
      grep -E '^ *not ok' -A12 "$flog" | head -40
      echo "  $name.test.mjs ($(($(date +%s) - start_s)) s):"
      count_node postgres "$flog" "$rc" "$name.test.mjs"
    done
    echo "  postgres: $((passed - p0)) passed, $((failed - f0)) failed"
    ;;
  integration | interop)
    echo "== $phase tests ($build)"
    if ! ls tests/$phase/*.test.mjs >/dev/null 2>&1; then
      echo "  no tests in tests/$phase: counted as one failure"
      failed=$((failed + 1))
      continue
    fi
    # One node --test run per file: its own exit code, its own log, and a limit on the whole
    # file (node's --test-timeout applies to a file as a whole; each test's own limit is set in
    # the file where it waits on something). A file cut off by it shows as cancelled.
    : >"$log_dir/$phase.log"
    p0=$passed f0=$failed
    for file in tests/$phase/*.test.mjs; do
      name=$(basename "$file")
      flog="$log_dir/$phase-${name%.test.mjs}.log"
      start_s=$(date +%s)
      (cd "tests/$phase" && timeout $((file_limit + 60)) node --test --test-reporter=tap \
        --test-timeout=$((file_limit * 1000)) "./$name") >"$flog" 2>&1
      rc=$?
      cat "$flog" >>"$log_dir/$phase.log"
      grep -E '^ *not ok' -A12 "$flog" | head -40
      echo "  $name ($(($(date +%s) - start_s)) s):"
      count_node "$phase" "$flog" "$rc" "$name"
    done
    echo "  $phase: $((passed - p0)) passed, $((failed - f0)) failed"
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
    echo "== lint (deployment: Dockerfile, Kubernetes manifests)"
    if scripts/lint-deploy.sh >"$log_dir/deploy-lint.log" 2>&1; then
      passed=$((passed + 1))
      echo "  1 passed, 0 failed"
    else
      head -30 "$log_dir/deploy-lint.log"
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

if [ -s "$durations" ]; then
  echo "== the ten slowest tests (seconds)"
  sort -t$'\t' -k1,1 -rn "$durations" | head -10 | awk -F'\t' '{printf "  %7.1f  %s\n", $1, $2}'
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
