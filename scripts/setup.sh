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

# Chromium for the dashboard's browser tests (tests/web, Playwright driving the system browser: Playwright
# cannot download a browser of its own here): Debian's package, with its recommended fonts.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
  else
    echo "setup: /usr/bin/chromium not found, and the browser tests (tests/web) need it: as root," \
      "apt-get install chromium (Debian's package), then run this again" >&2
  fi
fi

# The web dashboard (web/): `npm ci`, then `npm run build` into web/dist, which the api serves at `/`. Only
# when something changed: dependencies when the lockfile is newer than the installed tree, the build when a
# source is newer than it. Needs Node.js 20.19+ (Vite's minimum) with npm.
node_ok() {
  command -v npm >/dev/null && command -v node >/dev/null &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'
}
if node_ok; then
  if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -f web/dist/index.html ] ||
    [ -n "$(find web/src web/index.html web/package.json web/package-lock.json web/vite.config.ts \
      web/tsconfig.json -newer web/dist/index.html -print -quit)" ]; then
    (cd web && npm run --silent build >/dev/null)
    echo "setup: built the web dashboard (web/dist); \`vtp up\` serves it at http://127.0.0.1:8000/"
  fi
else
  echo "setup: Node.js 20.19+ with npm not found ($(node --version 2>/dev/null || echo 'no node')): the web" \
    "dashboard is NOT built, so \`vtp up\` answers / with a page saying so and the browser tests (tests/web)" \
    "fail; install Node.js 20.19 or later with npm, then run this again" >&2
fi
