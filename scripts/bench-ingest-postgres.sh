#!/usr/bin/env bash
# Durable ingest into PostgreSQL, side by side on one workload, in one run:
#   - evident over HTTP (16 clients, 1000 events per request) into its PostgreSQL store;
#   - the seeds' `security_events` table with the seeds' six indexes (GIN included),
#     loaded by psql COPY, by 1000-row INSERT statements, and by one INSERT per event
#     from a pool of 16 connections (`evident bench-pg-baselines`);
#   - rsyslog (ompgsql) and syslog-ng (sql()) receiving the same events as JSON syslog
#     messages over TCP and writing them into that table in 1000-row transactions
#     (configurations in scripts/bench/). The script installs them from Debian's
#     packages; the two conflict, so each replaces the other in turn.
#
#   scripts/bench-ingest-postgres.sh [EVENTS]     (default 200000)
#   SYSLOG_PEERS=0 scripts/bench-ingest-postgres.sh   (without the two syslog daemons)
#
# Needs the local PostgreSQL (started if down); uses the databases evident_ingest and
# evident_peers, dropped and re-created. Scratch files go under .bench-pg/.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-200000}"
admin="${EVIDENT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
base="${admin%/*}"

scripts/postgres-up.sh
cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"
scratch=.bench-pg
rm -rf "$scratch" && mkdir -p "$scratch/server"
for db in evident_ingest evident_peers; do
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done

echo "== the seeds' table: COPY, 1000-row INSERTs, one INSERT per event"
"$bin" bench-pg-baselines --database-url "$base/evident_peers" --events "$events" --dir "$scratch"

peers="$base/evident_peers"
source scripts/bench/peers.sh
if [ "${SYSLOG_PEERS:-1}" = 1 ]; then
  measure_syslog_peers
fi

echo "== evident over HTTP into PostgreSQL"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$scratch/server" --database-url "$base/evident_ingest" \
  >"$scratch/server/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do [ -s "$scratch/server/evident.addr" ] && break; sleep 0.2; done
"$bin" bench --url "http://$(cat "$scratch/server/evident.addr")" --key "$(cat "$scratch/server/admin.key")" \
  --input "$scratch/workload.ndjson" --events "$events" --clients 16 --batch 1000 --no-baseline --json
kill "$pid"; wait "$pid" || true
psql -q "$admin" -c "DROP DATABASE IF EXISTS evident_peers WITH (FORCE)"
rm -rf "$scratch"
