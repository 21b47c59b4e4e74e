#!/usr/bin/env bash
# Serve Vigil with gunicorn on loopback for the HTTP benchmarks (production settings, see
# bench/env.sh). Prints the URL; the server's pid is in $BENCH_DIR/gunicorn.pid.
#
#   bench/serve.sh start [WORKERS]    # default 4 sync workers on 127.0.0.1:8765 (or next free)
#   bench/serve.sh stop
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/env.sh

PIDFILE="$BENCH_DIR/gunicorn.pid"
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "${1:-}" in
start)
    workers="${2:-4}"
    port=8765
    while ! port_is_free "$port"; do port=$((port + 1)); done
    .venv/bin/gunicorn config.wsgi:application --bind "127.0.0.1:$port" \
        --workers "$workers" --worker-class sync --backlog 256 --timeout 60 \
        --pid "$PIDFILE" --daemon --error-logfile "$BENCH_DIR/gunicorn.log" --log-level warning
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    echo "http://127.0.0.1:$port" | tee "$BENCH_DIR/url"
    ;;
stop)
    if [ -f "$PIDFILE" ]; then
        pid="$(cat "$PIDFILE")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$BENCH_DIR/url"
    ;;
*)
    echo "usage: bench/serve.sh start [WORKERS] | stop" >&2
    exit 2
    ;;
esac
