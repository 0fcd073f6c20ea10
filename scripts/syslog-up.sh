#!/usr/bin/env bash
# Installs the real syslog clients the syslog tests drive, from Debian's packages, when
# missing: util-linux's logger (package bsdutils), rsyslog (forwarding to evident) and
# openssl (s_client for TLS, and the test certificate).
set -euo pipefail
missing=()
command -v logger >/dev/null 2>&1 || missing+=(bsdutils)
command -v rsyslogd >/dev/null 2>&1 || missing+=(rsyslog)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} for the syslog tests"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
