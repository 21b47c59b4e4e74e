# Sourced by the benchmark scripts: Vigil's production settings against the benchmark database,
# plain HTTP on loopback (no TLS proxy in front, so no SSL redirect).
#
#   . bench/env.sh     (after bench/pg.sh start)
BENCH_DIR="${BENCH_DIR:-/tmp/vigil-bench}"
[ -f "$BENCH_DIR/database_url" ] || { echo "run bench/pg.sh start first" >&2; return 1; }
export BENCH_DIR
export VIGIL_ENV=production
export DATABASE_URL="$(cat "$BENCH_DIR/database_url")"
export SECRET_KEY="bench-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
export ALLOWED_HOSTS=127.0.0.1,localhost
export SECURE_SSL_REDIRECT=false
export VIGIL_VAR_DIR="$BENCH_DIR/var"
export LOG_LEVEL=WARNING
unset CELERY_BROKER_URL CELERY_RESULT_BACKEND DEBUG
