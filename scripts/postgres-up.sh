#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 (or EVIDENT_TEST_POSTGRES),
# starting the installed Debian cluster if it is down, or installing PostgreSQL first.
set -euo pipefail

url="${EVIDENT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
if ! command -v pg_isready >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian packages postgresql, postgresql-client)" >&2
  sudo_or_not=""
  [ "$(id -u)" = 0 ] || sudo_or_not="sudo"
  $sudo_or_not apt-get install -y postgresql postgresql-client >&2
fi
if pg_isready -q -d "$url"; then
  exit 0
fi
echo "PostgreSQL is not answering at $url; starting the local cluster" >&2
for version in $(ls /etc/postgresql 2>/dev/null); do
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
done
for _ in $(seq 1 30); do
  pg_isready -q -d "$url" && exit 0
  sleep 1
done
echo "PostgreSQL did not come up at $url" >&2
exit 1
