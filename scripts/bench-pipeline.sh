#!/usr/bin/env bash
# The admission-pipeline benchmark behind BENCHMARKS.md: sustained durable throughput of
# the reference mix at 1, 10 and 100 clients, ack latency per priority meanwhile, and the
# server's peak memory under overload (fire-and-forget as fast as the clients can).
#
#   scripts/bench-pipeline.sh [EVENTS]     (default 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-300000}"

cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"

for clients in 1 10 100; do
  echo "== sustained, $clients clients, 100 events per request, with ack-latency probes"
  "$bin" bench --events "$events" --clients "$clients" --batch 100 --probe --no-baseline --json
done
echo "== sustained, 16 clients, 1000 events per request, with ack-latency probes"
"$bin" bench --events "$events" --clients 16 --batch 1000 --probe --no-baseline --json
echo "== overload: 64 clients, fire and forget, 1000 events per request"
"$bin" bench --events $((events * 2)) --clients 64 --batch 1000 --overload --probe --no-baseline --json
rm -rf .bench-data
