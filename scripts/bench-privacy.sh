#!/usr/bin/env bash
# Ingest cost of personal data protection: the same HTTP workload (batches of 1000 from
# 16 clients; every event carries a user id and an address, so every event is sealed)
# against a server with protection off (--personal-fields none) and on (the default),
# alternated over three rounds. The integrity log is on in both.
#
#   scripts/bench-privacy.sh [EVENTS]     (default 200000)
#
# With BASELINE_BIN=<an evident binary built from before the integrity log>, the
# baseline rounds run that binary instead: the cost of the log and sealing together.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-200000}"
cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"
rate() {
  local exe="$1"
  shift
  "$exe" bench --events "$events" --clients 16 --batch 1000 --no-baseline --json "$@" |
    tail -n 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["events_per_s"])'
}
if [ -n "${BASELINE_BIN:-}" ]; then
  label="baseline binary (no log, no sealing)"
else
  label="protection off"
fi
for round in 1 2 3; do
  if [ -n "${BASELINE_BIN:-}" ]; then
    off=$(rate "$BASELINE_BIN")
  else
    off=$(rate "$bin" --serve-arg=--personal-fields --serve-arg=none)
  fi
  on=$(rate "$bin")
  python3 -c "import sys; off, on = float(sys.argv[1]), float(sys.argv[2]); print(f'round $round: $label {off:,.0f} events/s, log and sealing on {on:,.0f} events/s, cost {100 * (1 - on / off):.1f}%')" "$off" "$on"
done
rm -rf .bench-data
