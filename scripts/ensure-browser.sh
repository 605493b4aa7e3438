#!/usr/bin/env bash
# The console tests drive Debian's Chromium; install it when it is missing (as root).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-browser: /usr/bin/chromium is missing; install Debian's chromium package" >&2
  exit 1
fi
echo "ensure-browser: installing chromium from Debian's packages" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
