#!/usr/bin/env bash
# Deletes the kind cluster `make kind-up` made, with everything in it (volumes included).
set -euo pipefail

CLUSTER=${KIND_CLUSTER_NAME:-conveyor}
say() { printf '\033[1mkind-down:\033[0m %s\n' "$*" >&2; }

command -v kind >/dev/null 2>&1 || { say "kind is not installed: there is no kind cluster to delete"; exit 0; }
if grep -qx "$CLUSTER" <<<"$(kind get clusters 2>/dev/null || true)"; then
  kind delete cluster --name "$CLUSTER"
else
  say "no kind cluster '$CLUSTER'; nothing to do"
fi
