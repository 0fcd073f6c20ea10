#!/usr/bin/env bash
# The tamper-evidence recipe at full size: a store of 100,000 events with 100 signed
# checkpoints, then 1,000 trials, each one random mutation made behind the store's back
# (a bit of any column, a stored hash, a deleted, forged or swapped row, a cut tail, a
# rolled-back, altered or re-signed checkpoint); every one must be caught, single-row
# edits named by their sequence number. Usage: scripts/tamper-trials.sh [events] [trials] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/evident-target}"
EVIDENT_TAMPER_EVENTS="${1:-100000}" EVIDENT_TAMPER_TRIALS="${2:-1000}" EVIDENT_TAMPER_SEED="${3:-7}" \
  cargo test --release --locked -p evident-store --lib tamper_tests -- --nocapture
