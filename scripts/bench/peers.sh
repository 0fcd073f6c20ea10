# Shared by the benchmark scripts that measure rsyslog and syslog-ng writing into
# PostgreSQL (source it; needs $scratch, $peers (a PostgreSQL URL), $events and $bin).
# Each daemon is installed from Debian's packages (the two conflict, so each replaces
# the other in turn), receives the workload as RFC 5424 messages over TCP (one JSON
# event per message, scripts/bench/syslog_send.py) and inserts rows into the seeds'
# security_events table in 1000-row transactions (configurations beside this file).

apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$scratch/apt.log" 2>&1 || { cat "$scratch/apt.log"; exit 1; }; }

# Sends the workload to a daemon on port $2 and prints "$1: N events/s" once every row
# is committed.
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

# rsyslog with ompgsql, then syslog-ng with sql(), each into an emptied table.
measure_syslog_peers() {
  local host port user
  host=$(echo "$peers" | sed -E 's#^postgres(ql)?://([^@/]*@)?([^:/]+).*#\3#')
  port=$(echo "$peers" | sed -E 's#^postgres(ql)?://[^/]*:([0-9]+).*#\2#')
  user=$(echo "$peers" | sed -E 's#^postgres(ql)?://([^@:/]+)@.*#\2#')

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
  sed -e "s#@PORT@#15515#" -e "s#@HOST@#$host#" -e "s#@PGPORT@#$port#" \
    -e "s#@USER@#$user#" -e "s#@DB@#${peers##*/}#" \
    scripts/bench/syslog-ng.conf >"$scratch/syslog-ng/syslog-ng.conf"
  "$bin" bench-pg-baselines --database-url "$peers" --reset-table
  syslog-ng -f "$PWD/$scratch/syslog-ng/syslog-ng.conf" -p "$PWD/$scratch/syslog-ng/pid" \
    -R "$PWD/$scratch/syslog-ng/persist" -c "$PWD/$scratch/syslog-ng/ctl"
  measure_syslog "syslog-ng $(syslog-ng --version | head -1 | awk '{print $3}' | tr -d '()')" 15515
  kill "$(cat "$scratch/syslog-ng/pid")"
}
