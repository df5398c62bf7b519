#!/usr/bin/env bash
# What the test suite needs beyond npm packages: the redis-server binary (each
# test file starts its own server), PostgreSQL's server programs (the Postgres
# tests make and start a cluster of their own) and Chromium (the dashboard's
# browser test).
# Installed with apt-get when missing and we may (root on Debian or Ubuntu);
# otherwise we stop here, saying what to install, rather than fail halfway.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${missing[*]} with apt-get" >&2
  log=$(mktemp)
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    exit 1
  fi
  rm -f "$log"
  exit 0
fi

echo "test-deps: the tests need ${missing[*]} on the PATH:" >&2
echo "  sudo apt-get install -y ${missing[*]}   (Debian, Ubuntu)" >&2
echo "  brew install redis postgresql && set CHROMIUM_PATH to a Chromium or Chrome binary   (macOS)" >&2
exit 1
