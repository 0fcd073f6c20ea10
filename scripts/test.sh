#!/usr/bin/env bash
# Runs evident's whole test suite. Starts whatever the tests need first, so this one
# command works on a fresh machine: the PostgreSQL tests need a local server (each test
# makes a database of its own on it; the restart test runs a server of its own), and the
# dashboard's tests need Debian's Chromium and ChromeDriver, the syslog tests logger,
# rsyslog and openssl (each installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/postgres-up.sh
scripts/browser-up.sh
scripts/syslog-up.sh
cargo test --workspace --locked "$@"
