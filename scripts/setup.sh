#!/usr/bin/env bash
# Create .venv (if missing) and install the platform with the services, trainers and dev extras (editable).
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Installing is skipped when nothing changed since the last install (pyproject.toml is the input).
stamp=.venv/.vtp-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet -e ".[services,trainers,dev]"
  touch "$stamp"
fi

# promtool and prometheus for the observability checks (tests/deploy/test_observability.py): Debian's
# prometheus package. Its maintainer script would start the service where an init system runs: a
# policy-rc.d that refuses every start keeps it from doing so (and is removed again if it was ours), and
# where systemd runs, the unit the package enables is disabled.
install_prometheus() {
  local policy=/usr/sbin/policy-rc.d own_policy="" status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } ||
    status=$?
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
  fi
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  return "$status"
}
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    install_prometheus
  else
    echo "setup: promtool not found, and the observability tests need it: as root," \
      "apt-get install --no-install-recommends prometheus (Debian's package), then run this again" >&2
  fi
fi
