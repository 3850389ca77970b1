#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster:
#
#   tests/unit/store/with-postgres.sh COMMAND [ARGS...]
#
# initdb makes a cluster in a new temporary directory, pg_ctl starts it listening on a Unix socket
# in that directory and on a free loopback port, and the command runs with
#   GH_TEST_PG_HOST  the socket directory      GH_TEST_PG_PORT  the port
#   GH_TEST_PG_BINDIR  where psql and the server's programs are (superuser "postgres", trust
#                    over the socket: a test may create databases of its own)
#   GH_TEST_PG_DBS   the databases made for it: gh_store, gh_newer, gh_fresh, gh_broken (trust
#                    over the socket, as "postgres"), gh_full (owned by the role below)
#   GH_TEST_PG_PASSWORD_ROLE  "gh_pw", a role that logs in over TCP with the password in
#                    GH_TEST_PG_PASSWORD (scram-sha-256), to test credentials right and wrong
#   GH_TEST_PG_RESTART, GH_TEST_PG_STOP, GH_TEST_PG_START  shell commands that restart, stop
#                    and start the server (its clients lose their connections), to test that
#                    the store connects again
# The cluster is stopped and its directory removed when the command ends, whatever its exit.
# It runs with fsync=off (throwaway data); GH_PG_SERVER_OPTS adds server options, e.g.
# "-c fsync=on" to measure writes as a real server makes them.
# initdb and pg_ctl refuse to run as root: as root, the cluster runs as the unprivileged
# "postgres" user (runuser). The system's own PostgreSQL service is never touched.
set -euo pipefail

bindir=${GH_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "with-postgres: no PostgreSQL server found (/usr/lib/postgresql/*/bin/initdb);" \
    "install it with scripts/deps.sh" >&2
  exit 1
fi

as=()
if [ "$(id -u)" = 0 ]; then
  as=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/gh-pg-XXXXXX)
chmod 0755 "$dir"
[ ${#as[@]} -gt 0 ] && chown postgres: "$dir"
started=0
cleanup() {
  if [ "$started" = 1 ]; then
    "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --no-locale -E UTF8 \
  --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }

# a free loopback port: a random one, another if the server cannot listen on it
for attempt in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off"
  opts+=" ${GH_PG_SERVER_OPTS:-}"
  if "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "$opts" \
    start >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [ "$started" != 1 ]; then
  echo "with-postgres: the throwaway cluster did not start:" >&2
  cat "$dir/server.log" >&2 || true
  exit 1
fi

psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres)
password="gh-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"${as[@]}" "${psql[@]}" -c "CREATE DATABASE gh_store" -c "CREATE DATABASE gh_newer" \
  -c "CREATE DATABASE gh_fresh" -c "CREATE DATABASE gh_broken" \
  -c "CREATE ROLE gh_pw LOGIN PASSWORD '$password'" -c "CREATE DATABASE gh_full OWNER gh_pw" >/dev/null

export GH_TEST_PG_BINDIR=$bindir GH_TEST_PG_HOST=$dir GH_TEST_PG_PORT=$port GH_TEST_PG_DBS="gh_store gh_newer gh_fresh gh_broken gh_full"
export GH_TEST_PG_PASSWORD_ROLE=gh_pw GH_TEST_PG_PASSWORD=$password
ctl="${as[*]} $bindir/pg_ctl -D $dir/data -l $dir/server.log -w -t 30"
export GH_TEST_PG_RESTART="$ctl -m fast restart" GH_TEST_PG_STOP="$ctl -m fast stop"
export GH_TEST_PG_START="$ctl -o '$opts' start"
set +e
"$@"
rc=$?
set -e
exit $rc
