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
