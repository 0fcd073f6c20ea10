#!/usr/bin/env bash
# Makes sure Debian's Chromium and its WebDriver are installed (packages chromium and
# chromium-driver), for the dashboard's browser tests. Nothing downloads a browser of its
# own.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
echo "installing Chromium and ChromeDriver (Debian packages chromium, chromium-driver)" >&2
sudo_or_not=""
[ "$(id -u)" = 0 ] || sudo_or_not="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo_or_not apt-get install -y chromium chromium-driver >&2; then
  $sudo_or_not apt-get update >&2
  $sudo_or_not apt-get install -y chromium chromium-driver >&2
fi
command -v chromedriver >/dev/null 2>&1 || { echo "chromedriver is still missing" >&2; exit 1; }
