#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the test suite.
#   .ci/postgres.sh start DIR   -> prints the database URL on stdout
#   .ci/postgres.sh stop DIR
# The server listens on 127.0.0.1 only, with password authentication for
# the test role, and keeps everything (data, socket, log) inside DIR.
set -euo pipefail
cmd=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "postgres.sh: PostgreSQL server binaries not found (apt-get install -y postgresql)" >&2; exit 2; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null
    as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -q -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE ledger LOGIN PASSWORD 'ledger' CREATEDB" \
      -c "CREATE DATABASE ledger_test OWNER ledger" >/dev/null
    echo "postgresql://ledger:ledger@127.0.0.1:$port/ledger_test"
    ;;
  stop)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: postgres.sh start|stop DIR" >&2; exit 2 ;;
esac
