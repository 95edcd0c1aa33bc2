#!/usr/bin/env bash
# The main command: set up .venv, then `vtp demo` (starts the platform in ./.vtp, trains a tiny resnet18 on a
# synthetic dataset, downloads the checkpoint, stops the platform). Extra arguments go to `vtp demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh

exec .venv/bin/vtp demo "$@"
