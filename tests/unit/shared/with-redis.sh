#!/usr/bin/env bash
# Run a command against a throwaway redis-server:
#
#   tests/unit/shared/with-redis.sh COMMAND [ARGS...]
#
# redis-server starts in a new temporary directory, on a free loopback port, without persistence
# and with a password, and the command runs with
#   GH_TEST_REDIS_PORT      the port              GH_TEST_REDIS_PASSWORD  its requirepass
#   GH_TEST_REDIS_STOP, GH_TEST_REDIS_START  shell commands that kill the server (SIGKILL: its
#                           clients lose their connections) and start it again on the same port
#   GH_TEST_REDIS_PAUSE, GH_TEST_REDIS_RESUME  SIGSTOP and SIGCONT: a server that stops answering
#                           while its connections stay open
# The server is stopped and its directory removed when the command ends, whatever its exit. The
# system's own Redis service is never touched.
set -euo pipefail

server=${GH_REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
if [ ! -x "$server" ]; then
  echo "with-redis: no redis-server found; install it with scripts/deps.sh test" >&2
  exit 1
fi
dir=$(mktemp -d /tmp/gh-redis-XXXXXX)
password="gh-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cleanup() {
  [ -f "$dir/pid" ] && kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

start() { # port: 0 when it listens, else 1
  "$server" --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --requirepass "$password" --daemonize yes --pidfile "$dir/pid" --logfile "$dir/server.log" \
    >/dev/null 2>&1 || return 1
  for _ in $(seq 1 100); do
    grep -q 'Ready to accept connections' "$dir/server.log" 2>/dev/null && return 0
    grep -q 'Address already in use\|Could not create server' "$dir/server.log" 2>/dev/null && return 1
    sleep 0.05
  done
  return 1
}
started=0
for attempt in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  : >"$dir/server.log"
  if start "$port"; then
    started=1
    break
  fi
done
if [ "$started" != 1 ]; then
  echo "with-redis: redis-server did not start:" >&2
  cat "$dir/server.log" >&2 || true
  exit 1
fi

export GH_TEST_REDIS_PORT=$port GH_TEST_REDIS_PASSWORD=$password
export GH_TEST_REDIS_PAUSE="kill -STOP \$(cat $dir/pid)" GH_TEST_REDIS_RESUME="kill -CONT \$(cat $dir/pid)"
export GH_TEST_REDIS_STOP="kill -9 \$(cat $dir/pid); while kill -0 \$(cat $dir/pid) 2>/dev/null; do sleep 0.02; done; rm -f $dir/pid"
export GH_TEST_REDIS_START="$server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir $dir --requirepass $password --daemonize yes --pidfile $dir/pid --logfile $dir/server.log; for i in \$(seq 1 100); do [ -f $dir/pid ] && redis-cli -p $port -a $password --no-auth-warning ping >/dev/null 2>&1 && break; sleep 0.05; done"
set +e
"$@"
rc=$?
set -e
exit $rc
