#!/usr/bin/env bash
# The dashboard's live tail under a steady 1,000 events/s for 60 s in headless
# Chromium: the page's JavaScript heap after a warm-up against the end.
#
#   scripts/bench-dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/browser-up.sh
cargo test --release --locked -p evident --test integration \
  -- --ignored --nocapture bench_the_live_tail_memory_under_a_steady_flow
