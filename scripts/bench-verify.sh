#!/usr/bin/env bash
# Speed of `evident verify` on the embedded store: loads EVENTS reference events with
# `evident bench-load` (each commit extends the integrity log), then times the walk that
# rehashes every event and rebuilds the tree, three times.
#
#   scripts/bench-verify.sh [EVENTS]     (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-1000000}"
scratch=.bench-verify
cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"
rm -rf "$scratch"
"$bin" bench-load --events "$events" --data-dir "$scratch/data"
# No server ran, so no checkpoint was signed: any key will do, and every event is
# walked and reported as an unverified tail.
key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
for run in 1 2 3; do
  t0=$(date +%s.%N)
  "$bin" verify --data-dir "$scratch/data" --public-key "$key" > /dev/null
  t1=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print(f'run $run: {n} events in {s:.2f} s: {n/s:,.0f} events/s')" "$t0" "$t1" "$events"
done
