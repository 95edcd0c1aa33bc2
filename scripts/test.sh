#!/usr/bin/env bash
# The test command: set up .venv, lint, then run the whole suite. Tests start their own nats-server and Postgres.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/contracts -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh

# Strict tools first: a lint or format finding fails the run before the slow part starts.
.venv/bin/ruff check .
.venv/bin/ruff format --check .

status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
fi
exit "$status"
