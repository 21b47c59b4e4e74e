#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the benchmarks, started the way .ci/run starts CI's: on
# loopback, on the first free port from 5433, durability off (fsync, synchronous_commit and
# full_page_writes off: it is a benchmark database, thrown away after).
#
#   bench/pg.sh start    # prints DATABASE_URL=... (also kept in $BENCH_DIR/database_url)
#   bench/pg.sh stop     # stops it and deletes its data
#
# BENCH_DIR defaults to /tmp/vigil-bench. Needs Debian's postgresql package (apt-get install
# postgresql); as root the server runs as the postgres user.
set -euo pipefail

BENCH_DIR="${BENCH_DIR:-/tmp/vigil-bench}"
PGDATA="$BENCH_DIR/pgdata"
PG_BIN="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d | sort -V | tail -n1)"
[ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL binaries under /usr/lib/postgresql" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "${1:-}" in
start)
    if [ -f "$PGDATA/postmaster.pid" ]; then
        echo "already running; bench/pg.sh stop first" >&2
        exit 1
    fi
    mkdir -p "$BENCH_DIR"
    rm -rf "$PGDATA"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$BENCH_DIR"
    port=5433
    while ! port_is_free "$port"; do port=$((port + 1)); done
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --no-locale >/dev/null
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$BENCH_DIR/postgresql.log" -w -t 60 start -o \
        "-k $BENCH_DIR -h 127.0.0.1 -p $port -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c shared_buffers=1GB -c max_connections=50" >/dev/null
    as_pg "$PG_BIN/psql" -h "$BENCH_DIR" -p "$port" -U postgres -d postgres -q \
        -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE vigil LOGIN CREATEDB PASSWORD 'vigil'" \
        -c "CREATE DATABASE vigil OWNER vigil"
    url="postgres://vigil:vigil@127.0.0.1:$port/vigil"
    echo "$url" >"$BENCH_DIR/database_url"
    echo "DATABASE_URL=$url"
    ;;
stop)
    if [ -f "$PGDATA/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    rm -rf "$PGDATA" "$BENCH_DIR/database_url"
    ;;
*)
    echo "usage: bench/pg.sh start|stop" >&2
    exit 2
    ;;
esac
