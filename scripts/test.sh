#!/usr/bin/env bash
# Runs evident's whole test suite. Starts whatever the tests need first, so this one
# command works on a fresh machine (today the tests need nothing beyond cargo: the
# embedded store is SQLite, compiled in).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked "$@"
