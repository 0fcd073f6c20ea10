#!/usr/bin/env bash
# Syslog over TCP into the embedded store, beside HTTP ingest of the same events and the
# same stream into rsyslog and syslog-ng writing to PostgreSQL, in one run:
#   - the reference workload (written by `evident bench-pg-baselines`) as RFC 5424
#     messages over one TCP connection, one JSON event per message
#     (scripts/bench/syslog_send.py), into `evident serve --syslog-tcp` with its default
#     configuration (detection, integrity log, sealing), timed from the first byte until
#     every event is committed to disk;
#   - the same events over HTTP (`evident bench --input`, 16 clients, 1000 events per
#     request) into a fresh server, counted as they are acknowledged (committed);
#   - rsyslog (ompgsql) and syslog-ng (sql()) receiving the same messages, timed until
#     every row is in the seeds' table (scripts/bench/peers.sh).
#
#   scripts/bench-syslog.sh [EVENTS] [ROUNDS]      (defaults: 200000 events, 1 round)
#   SYSLOG_PEERS=0 scripts/bench-syslog.sh          (evident only)
#
# Needs the local PostgreSQL (started if down) for the workload file and the peers;
# uses the database evident_peers, dropped and re-created. Scratch under .bench-syslog/.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-200000}"
rounds="${2:-1}"
admin="${EVIDENT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
base="${admin%/*}"
peers="$base/evident_peers"

scripts/postgres-up.sh
cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"
scratch=.bench-syslog
rm -rf "$scratch" && mkdir -p "$scratch"
psql -q "$admin" -c "DROP DATABASE IF EXISTS evident_peers WITH (FORCE)" -c "CREATE DATABASE evident_peers"
"$bin" bench-pg-baselines --database-url "$peers" --events "$events" --dir "$scratch" >/dev/null

# Starts a server on a fresh directory with extra flags; sets $pid, $url, $key.
serve() {
  local dir="$scratch/server"
  rm -rf "$dir" && mkdir -p "$dir"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" "$@" >"$dir/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do [ -s "$dir/evident.addr" ] && break; sleep 0.2; done
  url="http://$(cat "$dir/evident.addr")"
  key="$(cat "$dir/admin.key")"
  for _ in $(seq 1 300); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.2; done
}
processed() {
  curl -sf -H "Authorization: Bearer $key" "$url/api/v1/stats/pipeline" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["processed"])'
}

for round in $(seq 1 "$rounds"); do
  echo "== round $round: evident, syslog over TCP"
  serve --syslog-tcp 127.0.0.1:0
  port=$(awk '$1 == "tcp" { split($2, a, ":"); print a[2] }' "$scratch/server/syslog.addr")
  t0=$(date +%s.%N)
  python3 scripts/bench/syslog_send.py 127.0.0.1 "$port" "$scratch/workload.ndjson"
  n=0
  for _ in $(seq 1 12000); do
    n=$(processed)
    [ "$n" -ge "$events" ] && break
    sleep 0.05
  done
  t1=$(date +%s.%N)
  kill "$pid"; wait "$pid" || true
  [ "$n" -ge "$events" ] || { echo "evident stored only $n of $events syslog events"; exit 1; }
  awk -v n="$events" -v a="$t0" -v b="$t1" 'BEGIN { printf "evident syslog/tcp: %.0f events/s\n", n / (b - a) }'

  echo "== round $round: evident, HTTP"
  serve
  "$bin" bench --url "$url" --key "$key" --input "$scratch/workload.ndjson" --events "$events" \
    --clients 16 --batch 1000 --no-baseline --json | tail -n 1 |
    python3 -c 'import json, sys; print("evident http: %.0f events/s" % json.load(sys.stdin)["events_per_s"])'
  kill "$pid"; wait "$pid" || true
done

if [ "${SYSLOG_PEERS:-1}" = 1 ]; then
  source scripts/bench/peers.sh
  measure_syslog_peers
fi
psql -q "$admin" -c "DROP DATABASE IF EXISTS evident_peers WITH (FORCE)"
rm -rf "$scratch"
