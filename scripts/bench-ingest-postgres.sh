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
apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$scratch/apt.log" 2>&1 || { cat "$scratch/apt.log"; exit 1; }; }
# Sends the workload to a daemon on $1 and reports events/s until every row is committed.
measure_syslog() {
  local name="$1" port="$2"
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  local t0 t1 n=0
  t0=$(date +%s.%N)
  python3 scripts/bench/syslog_send.py 127.0.0.1 "$port" "$scratch/workload.ndjson"
  for _ in $(seq 1 6000); do
    n=$(psql -Atq "$peers" -c "SELECT count(*) FROM security_events")
    [ "$n" -ge "$events" ] && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  [ "$n" -ge "$events" ] || { echo "$name stored only $n of $events events"; exit 1; }
  awk -v n="$events" -v a="$t0" -v b="$t1" -v name="$name" 'BEGIN { printf "%s: %.0f events/s\n", name, n / (b - a) }'
}
conninfo_host=$(echo "$base" | sed -E 's#^postgres(ql)?://([^@/]*@)?([^:/]+).*#\3#')
conninfo_port=$(echo "$base" | sed -E 's#^postgres(ql)?://[^/]*:([0-9]+).*#\2#')
conninfo_user=$(echo "$base" | sed -E 's#^postgres(ql)?://([^@:/]+)@.*#\2#')

if [ "${SYSLOG_PEERS:-1}" = 1 ]; then
  echo "== rsyslog (ompgsql) into the seeds' table"
  apt_install rsyslog rsyslog-pgsql
  mkdir -p "$scratch/rsyslog"
  sed -e "s#@WORKDIR@#$PWD/$scratch/rsyslog#" -e "s#@CONNINFO@#$peers#" -e "s#@PORT@#15514#" \
    scripts/bench/rsyslog.conf >"$scratch/rsyslog/rsyslog.conf"
  "$bin" bench-pg-baselines --database-url "$peers" --reset-table
  rsyslogd -f "$PWD/$scratch/rsyslog/rsyslog.conf" -i "$PWD/$scratch/rsyslog/pid"
  measure_syslog "rsyslog $(rsyslogd -v | head -1 | awk '{print $2}')" 15514
  kill "$(cat "$scratch/rsyslog/pid")"

  echo "== syslog-ng (sql) into the seeds' table"
  apt_install syslog-ng-core syslog-ng-mod-sql libdbd-pgsql
  mkdir -p "$scratch/syslog-ng"
  sed -e "s#@PORT@#15515#" -e "s#@HOST@#$conninfo_host#" -e "s#@PGPORT@#$conninfo_port#" \
    -e "s#@USER@#$conninfo_user#" -e "s#@DB@#evident_peers#" \
    scripts/bench/syslog-ng.conf >"$scratch/syslog-ng/syslog-ng.conf"
  "$bin" bench-pg-baselines --database-url "$peers" --reset-table
  syslog-ng -f "$PWD/$scratch/syslog-ng/syslog-ng.conf" -p "$PWD/$scratch/syslog-ng/pid" \
    -R "$PWD/$scratch/syslog-ng/persist" -c "$PWD/$scratch/syslog-ng/ctl"
  measure_syslog "syslog-ng $(syslog-ng --version | head -1 | awk '{print $3}' | tr -d '()')" 15515
  kill "$(cat "$scratch/syslog-ng/pid")"
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
