#!/usr/bin/env bash
# The ingest benchmark behind BENCHMARKS.md: durable HTTP throughput for batches of
# 1 and 1000 events, each beside the naive security_events table measured on the same
# events in the same run.
#
#   scripts/bench.sh [EVENTS]      (default 200000; the reference generator's default is 1000000)
#
# Runs in a scratch directory (.bench-data) on the current disk: put the checkout on the
# disk you want to measure. The machine should be otherwise idle.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-200000}"

cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"

echo "== batch 1000, 16 clients, $events events"
"$bin" bench --events "$events" --clients 16 --batch 1000 --json
echo "== batch 1, 256 clients, $events events"
"$bin" bench --events "$events" --clients 256 --batch 1 --json
rm -rf .bench-data
