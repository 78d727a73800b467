#!/usr/bin/env bash
# Installs the servers the tests and benchmarks start: redis-server (Debian) and Azurite (npm,
# into .tools/ of this checkout); with --bench also MariaDB, whose store keeps Azurite's upload
# rate flat for the benchmarks' headline runs. Idempotent; skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  # the package starts a system service on 6379; the tests start their own on free ports
fi

if [ ! -x .tools/node_modules/.bin/azurite ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "installing nodejs + npm (apt)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  fi
  echo "installing azurite (npm, into .tools/)"
  mkdir -p .tools
  (cd .tools && npm install --no-audit --no-fund --silent azurite@3 >/dev/null)
fi
if [ "${1:-}" = "--bench" ] && ! { command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; }; then
  echo "installing mariadb-server (apt; the bench starts its own private server)"
  # Keep apt from starting the system service: the bench runs mariadbd on a free loopback port.
  cleanup=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    cleanup="/usr/sbin/policy-rc.d"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mariadb-server >/dev/null || true
  if [ -n "$cleanup" ]; then $SUDO rm -f "$cleanup"; fi
fi
echo "tools: $(redis-server --version | cut -d' ' -f3) azurite $(.tools/node_modules/.bin/azurite --version)"
