#!/usr/bin/env bash
# Query latency of the API's common filters on both stores, each loaded with the same
# workload (`evident bench-load`, directly into the store), then served and queried over
# HTTP one request at a time (`evident bench-queries`).
#
#   scripts/bench-query.sh [EVENTS] [ROUNDS]      (defaults 10000000 and 200)
#
# Needs the local PostgreSQL (scripts/postgres-up.sh starts it); uses the database
# `evident_bench`, dropped and re-created. Scratch data goes under .bench-query/.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
rounds="${2:-200}"
admin="${EVIDENT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
pg_url="${admin%/*}/evident_bench"

scripts/postgres-up.sh
cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"
scratch=.bench-query
rm -rf "$scratch" && mkdir -p "$scratch/sqlite" "$scratch/pg"
psql -q "$admin" -c "DROP DATABASE IF EXISTS evident_bench WITH (FORCE)" -c "CREATE DATABASE evident_bench"

echo "== loading $events events into the embedded store"
"$bin" bench-load --events "$events" --data-dir "$scratch/sqlite"
echo "== loading $events events into PostgreSQL"
"$bin" bench-load --events "$events" --database-url "$pg_url"
psql -q "$pg_url" -c "ANALYZE"

measure() {
  local name="$1" dir="$2"; shift 2
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" "$@" >"$dir/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do [ -s "$dir/evident.addr" ] && break; sleep 0.2; done
  echo "== $name"
  "$bin" bench-queries --url "http://$(cat "$dir/evident.addr")" --key "$(cat "$dir/admin.key")" \
    --events "$events" --rounds "$rounds" --json
  kill "$pid"; wait "$pid" || true
}
measure "embedded store (SQLite)" "$scratch/sqlite"
measure "PostgreSQL" "$scratch/pg" --database-url "$pg_url"
rm -rf "$scratch"
