#!/usr/bin/env bash
# bench/no_loss.py drives wrk against Debian's nginx; install them when missing (as root).
# A private nginx is started by the benchmark; the package's own service is left alone.
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} = 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-bench-tools: install Debian's ${missing[*]} package(s)" >&2
  exit 1
fi
echo "ensure-bench-tools: installing ${missing[*]} from Debian's packages" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
