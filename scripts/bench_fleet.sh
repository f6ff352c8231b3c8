#!/usr/bin/env bash
# The fleet's figures (issue 18; docs/fleet.md, "Figures"): placements per
# second and etcd's write rate per pair at rest, on a three-member etcd
# cluster in network namespaces. Needs root.
#   scripts/bench_fleet.sh [--pairs 8] [--meetings 4000] [--rest-seconds 20]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_BUILD_DIR:-$root/build}"
[[ -x "$build/tests/tools/tandem-fleet-tool" ]] || "$root/scripts/setup.sh"
exec /usr/bin/python3 "$root/scripts/bench/fleet.py" "$@"
