#!/usr/bin/env bash
# The live stream under load, in one run per line: ingest with no subscriber and with N
# WebSocket subscribers taking every event, then a steady rate with them attached,
# timing each event from its commit (the message's committed_at) to each subscriber.
#
#   scripts/bench-stream.sh                   (the matrix recorded in BENCHMARKS.md)
#   scripts/bench-stream.sh SUBSCRIBERS RATE  (one line)
#   PINNED=1 scripts/bench-stream.sh ...      (server on CPU 0, load and subscribers on
#                                              CPU 1: what the server itself pays)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"
if [ $# -ge 2 ]; then
  runs=("$1 $2")
else
  runs=("10 1000" "10 10000" "100 1000" "100 3000" "100 10000")
fi
for run in "${runs[@]}"; do
  set -- $run
  echo "== $1 subscribers, $2 events/s"
  if [ -n "${PINNED:-}" ]; then
    taskset -c 1 "$bin" bench-stream --server-cpus 0 --subscribers "$1" --rate "$2" \
      --seconds 20 --events 100000 --dir .bench-data
  else
    "$bin" bench-stream --subscribers "$1" --rate "$2" --seconds 20 --events 100000 --dir .bench-data
  fi
done
