#!/usr/bin/env bash
# The test command: set up .venv, then run the whole suite. Tests start their own nats-server and Postgres.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/contracts -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh

status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
fi
exit "$status"
