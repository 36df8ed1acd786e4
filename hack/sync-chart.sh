#!/usr/bin/env bash
# Copies the generated CRDs and the manager's RBAC rules into the Helm chart,
# so the chart never drifts from `make manifests`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chart="$root/charts/drover"
[ -d "$chart" ] || exit 0
mkdir -p "$chart/crds"
rm -f "$chart"/crds/*.yaml
cp "$root"/config/crd/bases/*.yaml "$chart/crds/"
if [ -f "$root/config/rbac/role.yaml" ]; then
  # The chart's ClusterRole template includes these rules verbatim.
  awk '/^rules:/{found=1} found' "$root/config/rbac/role.yaml" > "$chart/files/rbac-rules.yaml.tmp"
  mv "$chart/files/rbac-rules.yaml.tmp" "$chart/files/rbac-rules.yaml"
fi
